// Compiled (not run) by `make test-node` with `tsc --noEmit`: the shipped declarations are valid
// TypeScript, and event listeners are typed by event name. Each @ts-expect-error line must fail
// to compile, so a declaration that became too loose fails the check.

import {
  BackupRestorer,
  EmbeddedService,
  ErrorCode,
  LicenseBackupError,
  LicenseStore,
  createBackupRestorer,
  type EndEvent,
  type License,
  type ProgressEvent,
  type Summary,
} from '../index'

async function usage(): Promise<void> {
  const store: LicenseStore = LicenseStore.open('/tmp/device.db')
  const service = EmbeddedService.open('/tmp/service.db', { maxDevices: 4, refusalUrl: 'https://x.example' })
  const restorer: BackupRestorer = createBackupRestorer(store, service)
  store.addLicense(
    {
      keyId: '0f8fad5b-d9cb-469f-a165-70867728950e',
      contentKey: new Uint8Array([1, 2, 3]),
      rights: { play: true, burn: false, transfer: false, backupAllowed: true, playsRemaining: 3 },
      issuer: 'https://issuer.example',
      issuedAt: 1_700_000_000,
    },
    { replace: true },
  )
  const licenses: License[] = store.listLicenses()
  const key: Buffer = store.contentKey(licenses[0].keyId)
  const count: number = store.licenseCount()

  restorer.backupPath = '/media/usb'
  restorer.progressInterval = 10
  restorer.on('progress', (e: ProgressEvent) => console.log(e.done / e.total))
  restorer.on('progress', (e) => e.operation satisfies 'backup' | 'restore')
  restorer.on('restrictedLicense', ({ keyId, title }) => console.log(keyId, title ?? 'unknown title'))
  restorer.on('refused', ({ code, message, url }) => console.log(code, message, url))
  // Every event carries when the core emitted it, on the clock of process.hrtime.bigint().
  restorer.on('end', (e) => console.log(process.hrtime.bigint() - e.emittedNs))
  restorer.on('connecting', (e) => e.emittedNs satisfies bigint)
  // @ts-expect-error: emittedNs is a bigint, not a number
  restorer.on('progress', (e) => e.emittedNs satisfies number)
  restorer.once('end', (e: EndEvent) => console.log(e.error?.code, e.summary?.licenses))
  // @ts-expect-error: progress events have no keyId
  restorer.on('progress', (e) => e.keyId)
  // @ts-expect-error: an event the restorer does not emit
  restorer.on('finished', () => {})

  const controller = new AbortController()
  const summary: Summary = await restorer.backupLicenses({ overwrite: true, signal: controller.signal })
  const restored: Summary = await restorer.restoreLicenses({ individualize: false, replaceExisting: true })
  // @ts-expect-error: counts are numbers, not BigInts
  const big: bigint = summary.licenses
  const quota = restorer.restoreQuota()
  const remaining: number = quota.restoresRemaining

  try {
    await restorer.backupLicenses()
  } catch (err) {
    if (err instanceof LicenseBackupError && err.code === 'BACKUP_EXISTS') {
      const errno: 204 = ErrorCode.BACKUP_EXISTS
      const code: 'BACKUP_EXISTS' = err.code
      console.log(errno, code, err.errno satisfies number)
    }
  }
  // @ts-expect-error: not an error code
  new LicenseBackupError('NOT_A_CODE', 'x')
  console.log(key, count, restored, big, remaining)
  restorer.close()
  store.close()
  service.close()
}

void usage
