// The body of the TypeScript consumer projects typescript.test.js type-checks (tsc --noEmit,
// TypeScript 5 and 7, nodenext and bundler resolution, ES module and CommonJS): each project
// puts its own imports of the installed package above it, binding the module to `lb` and
// importing LicenseStore, LicenseBackupError and the type Summary by name. Each line marked
// as an expected error must fail to compile, so a declaration that became too loose fails.

async function usage(): Promise<void> {
  const store: LicenseStore = LicenseStore.open('/tmp/device.db')
  const service = lb.EmbeddedService.open('/tmp/service.db', { maxDevices: 4, refusalUrl: 'https://x.example' })
  const restorer: lb.BackupRestorer = lb.createBackupRestorer(store, service)
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
  const licenses: lb.License[] = store.listLicenses()
  // Buffer, AbortController and process come from @types/node, which the package references.
  const key: Buffer = store.contentKey(licenses[0].keyId)
  const count: number = store.licenseCount()

  restorer.backupPath = '/media/usb'
  restorer.progressInterval = 10
  restorer.on('progress', (e: lb.ProgressEvent) => console.log(e.done / e.total))
  restorer.on('progress', (e) => e.operation satisfies 'backup' | 'restore')
  restorer.on('restrictedLicense', ({ keyId, title }) => console.log(keyId, title ?? 'unknown title'))
  restorer.on('refused', ({ code, message, url }) => console.log(code, message, url))
  // Every event carries when the core emitted it, on the clock of process.hrtime.bigint().
  restorer.on('end', (e) => console.log(process.hrtime.bigint() - e.emittedNs))
  restorer.on('connecting', (e) => e.emittedNs satisfies bigint)
  // An async listener is a listener.
  restorer.on('progress', async (e) => {
    await new Promise((resolve) => setTimeout(resolve, e.done))
  })
  // A listener's failure that could no longer change an outcome (the END rule).
  restorer.on('error', (err) => err.code satisfies lb.ErrorCodeName)
  // @ts-expect-error: emittedNs is a bigint, not a number
  restorer.on('progress', (e) => e.emittedNs satisfies number)
  restorer.once('end', (e: lb.EndEvent) => console.log(e.error?.code, e.summary?.licenses))
  // @ts-expect-error: progress events have no keyId
  restorer.on('progress', (e) => e.keyId)
  // @ts-expect-error: an event the restorer does not emit
  restorer.on('finished', () => {})

  const controller = new AbortController()
  const summary: Summary = await restorer.backupLicenses({ overwrite: true, signal: controller.signal })
  const restored: lb.Summary = await restorer.restoreLicenses({ individualize: false, replaceExisting: true })
  // @ts-expect-error: counts are numbers, not BigInts
  const big: bigint = summary.licenses
  const quota = restorer.restoreQuota()
  const remaining: number = quota.restoresRemaining
  // @ts-expect-error: not an option of a backup
  await restorer.backupLicenses({ overWrite: true })

  try {
    await restorer.backupLicenses()
  } catch (err) {
    if (err instanceof LicenseBackupError && err.code === 'BACKUP_EXISTS') {
      const errno: 204 = lb.ErrorCode.BACKUP_EXISTS
      const code: 'BACKUP_EXISTS' = err.code
      console.log(errno, code, err.errno satisfies number)
    }
    // A cancelled operation's error is an AbortError that keeps its code.
    if (err instanceof Error && err.name === 'AbortError' && err instanceof lb.LicenseBackupError) {
      err.code satisfies lb.ErrorCodeName
    }
  }
  // @ts-expect-error: not an error code
  new LicenseBackupError('NOT_A_CODE', 'x')
  // @ts-expect-error: the constructors are private; use open()
  new LicenseStore()
  console.log(key, count, restored, big, remaining)
  restorer.close()
  store.close()
  service.close()
}

void usage
