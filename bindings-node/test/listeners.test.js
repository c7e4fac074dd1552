'use strict'
// Listeners that fail, as applications write them: async listeners whose Promise rejects (never a
// crash; a rejection stops the operation when it is noticed before the commit), `end` listeners
// that throw or reject (the END rule: the outcome stands, the failure goes to 'error' listeners or
// becomes a process warning), and cancellation as an AbortError that keeps its code.

const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')
const timers = require('node:timers/promises')
const { lb, tempDir, world, record } = require('./helpers.js')

const isCode = (code) => (err) => err instanceof lb.LicenseBackupError && err.code === code && err.errno === lb.ErrorCode[code]
const archive = (backup) => path.join(backup, 'licenses.lbk')

/** The next process warning (emitted on a later tick), and the warnings meanwhile, as a Promise. */
function nextWarning() {
  return new Promise((resolve) => process.once('warning', resolve))
}

/** Runs `source` in a child `node` where `license-backup` resolves to the installed package. */
function runChild(t, source) {
  const dir = tempDir(t)
  const script = path.join(dir, 'child.js')
  fs.writeFileSync(script, source)
  return spawnSync(process.execPath, [script, dir], {
    env: { ...process.env, NODE_PATH: path.join(path.dirname(require.resolve('license-backup')), '..') },
    encoding: 'utf8',
    timeout: 60_000,
  })
}

const CHILD_PRELUDE = `
  'use strict'
  const path = require('node:path')
  const fs = require('node:fs')
  const lb = require('license-backup')
  const dir = process.argv[2]
  fs.mkdirSync(path.join(dir, 'backup'))
  const service = lb.EmbeddedService.open(path.join(dir, 'service.db'))
  const store = lb.LicenseStore.open(path.join(dir, 'device.db'))
  store.addLicense({ keyId: '5a000000-0000-0000-0000-000000000001', contentKey: Buffer.from('key'),
    rights: {}, issuer: 'https://issuer.example', issuedAt: 1 })
  const restorer = new lb.BackupRestorer(store, service)
  restorer.backupPath = path.join(dir, 'backup')
  const done = () => { restorer.close(); store.close(); service.close() }
`

// --- the END rule ---------------------------------------------------------------------------

test('an end listener that throws: the backup resolves, its archive stands, the error goes to the error listener', async (t) => {
  const { restorer, backup } = world(t, { count: 5 })
  const bug = new TypeError('end listener bug')
  const errors = []
  restorer.on('error', (err) => errors.push(err))
  restorer.once('end', () => {
    throw bug
  })
  const summary = await restorer.backupLicenses()
  assert.equal(summary.licenses, 5)
  assert.ok(fs.existsSync(archive(backup)), 'the archive was written')
  assert.equal(errors.length, 1)
  assert.ok(isCode('CALLBACK_FAILED')(errors[0]), String(errors[0]))
  assert.equal(errors[0].cause, bug)
  assert.match(errors[0].message, /a listener of 'end' threw after the backup could no longer be stopped; its outcome stands: TypeError: end listener bug/)
})

test('an end listener that throws without an error listener: a process warning, never a crash', async (t) => {
  const { restorer } = world(t, { count: 2 })
  restorer.once('end', () => {
    throw new Error('end bug')
  })
  const warning = nextWarning()
  const summary = await restorer.backupLicenses()
  assert.equal(summary.licenses, 2)
  const w = await warning
  assert.ok(isCode('CALLBACK_FAILED')(w), String(w))
  assert.equal(w.cause.message, 'end bug')
})

test('an end listener that throws does not change a failure either, nor a restore that was applied', async (t) => {
  const { dir, restorer, backup, service } = world(t, { count: 4 })
  await restorer.backupLicenses()
  const errors = []
  restorer.on('error', (err) => errors.push(err))
  restorer.once('end', () => {
    throw new Error('end bug')
  })
  // The failure is the operation's own (BACKUP_EXISTS), not CALLBACK_FAILED.
  await assert.rejects(restorer.backupLicenses(), isCode('BACKUP_EXISTS'))
  assert.equal(errors.length, 1)

  const store = lb.LicenseStore.open(path.join(dir, 'other.db'))
  const other = new lb.BackupRestorer(store, service)
  t.after(() => (other.close(), store.close()))
  other.restorePath = backup
  other.on('error', (err) => errors.push(err))
  other.once('end', () => {
    throw new Error('end bug after a restore')
  })
  const summary = await other.restoreLicenses()
  assert.equal(summary.licenses, 4)
  assert.equal(store.licenseCount(), 4, 'the restore stands')
  assert.equal(errors.length, 2)
  assert.equal(errors[1].cause.message, 'end bug after a restore')
})

test("an error listener that throws: both failures become process warnings", async (t) => {
  const { restorer } = world(t, { count: 1 })
  restorer.on('error', () => {
    throw new Error('error listener bug')
  })
  restorer.once('end', () => {
    throw new Error('end bug')
  })
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  t.after(() => process.off('warning', onWarning))
  await restorer.backupLicenses()
  await timers.setImmediate()
  assert.deepEqual(warnings.map((w) => w.message.replace(/:.*/s, '')).sort(), ["a listener of 'end' threw after the backup could no longer be stopped; its outcome stands", 'error listener bug'])
})

// --- async listeners ---------------------------------------------------------------------------

test('an async begin listener that rejects stops the backup: CALLBACK_FAILED, its cause, no archive', async (t) => {
  const { restorer, backup } = world(t, { count: 30, progressInterval: 1 })
  const seen = record(restorer)
  const bug = new Error('async listener bug')
  restorer.once('begin', async () => {
    throw bug
  })
  const err = await restorer.backupLicenses().catch((e) => e)
  assert.ok(isCode('CALLBACK_FAILED')(err), String(err))
  assert.equal(err.cause, bug)
  assert.match(err.message, /async listener bug/)
  assert.equal(fs.existsSync(archive(backup)), false, 'nothing was written')
  assert.equal(seen.at(-1)[0], 'end')
  assert.ok(isCode('CALLBACK_FAILED')(seen.at(-1)[1].error))
  // The restorer works again at once.
  assert.equal((await restorer.backupLicenses()).licenses, 30)
})

test('an async connecting listener that rejects stops the restore before anything changes', async (t) => {
  const { dir, restorer, backup, service } = world(t, { count: 5 })
  await restorer.backupLicenses()
  const store = lb.LicenseStore.open(path.join(dir, 'other.db'))
  const other = new lb.BackupRestorer(store, service)
  t.after(() => (other.close(), store.close()))
  other.restorePath = backup
  other.once('connecting', async () => {
    await null
    throw new RangeError('rejected while connecting')
  })
  const err = await other.restoreLicenses().catch((e) => e)
  assert.ok(isCode('CALLBACK_FAILED')(err), String(err))
  assert.equal(err.cause.message, 'rejected while connecting')
  assert.equal(store.licenseCount(), 0)
  assert.equal(service.audit().placements, 0, 'no device was counted')
})

test('a rejection that arrives after end: the outcome stands, the error listener gets it', async (t) => {
  const { restorer, backup } = world(t, { count: 3 })
  const errors = []
  restorer.on('error', (err) => errors.push(err))
  let ended
  const afterEnd = new Promise((resolve) => (ended = resolve))
  restorer.once('end', () => ended())
  // The listener returns a Promise that rejects only once the operation has ended.
  restorer.once('begin', () => afterEnd.then(() => Promise.reject(new Error('too late'))))
  const summary = await restorer.backupLicenses()
  assert.equal(summary.licenses, 3)
  assert.ok(fs.existsSync(archive(backup)))
  await timers.setImmediate()
  assert.equal(errors.length, 1)
  assert.ok(isCode('CALLBACK_FAILED')(errors[0]))
  assert.equal(errors[0].cause.message, 'too late')
  assert.match(errors[0].message, /a listener of 'begin' returned a Promise that rejected/)
})

test('an async end listener that rejects: the outcome stands, a process warning without an error listener', async (t) => {
  const { restorer } = world(t, { count: 2 })
  restorer.once('end', async () => {
    throw new Error('async end bug')
  })
  const warning = nextWarning()
  assert.equal((await restorer.backupLicenses()).licenses, 2)
  const w = await warning
  assert.ok(isCode('CALLBACK_FAILED')(w), String(w))
  assert.equal(w.cause.message, 'async end bug')
})

test('in a child process: rejecting async listeners and a throwing end listener never crash it', (t) => {
  const child = runChild(
    t,
    `${CHILD_PRELUDE}
    restorer.once('begin', async () => { throw new Error('async begin bug') })
    restorer.backupLicenses().catch((err) => {
      console.log(err.code, err.cause.message)
      restorer.once('end', async () => { throw new Error('async end bug') })
      restorer.once('progress', () => { setTimeout(done, 50) })
      return restorer.backupLicenses().then((s) => console.log('resolved', s.licenses))
    })
  `,
  )
  assert.equal(child.status, 0, child.stderr)
  assert.equal(child.stdout.trim(), 'CALLBACK_FAILED async begin bug\nresolved 1')
  assert.match(child.stderr, /LicenseBackupError: a listener of 'end' returned a Promise that rejected/)
})

// --- cancellation as an AbortError -------------------------------------------------------------

test('a cancelled operation rejects with an AbortError that is a LicenseBackupError with code CANCELLED', async (t) => {
  const { restorer } = world(t, { count: 300, progressInterval: 1 })
  const isAbort = (e) => e instanceof Error && e.name === 'AbortError'

  const controller = new AbortController()
  const ends = record(restorer)
  restorer.once('progress', () => controller.abort())
  const err = await restorer.backupLicenses({ signal: controller.signal }).catch((e) => e)
  assert.ok(isAbort(err), `name ${err.name}`)
  assert.ok(isCode('CANCELLED')(err))
  assert.equal(err.cause, controller.signal.reason, 'the cause is the signal reason (a DOMException AbortError)')
  assert.equal(err.cause.name, 'AbortError')
  assert.ok(isAbort(ends.at(-1)[1].error), 'the end event carries the same kind of error')

  // Cancelled by the method, or aborted before it started: the same.
  restorer.once('progress', () => restorer.cancelLicenseBackup())
  assert.ok(isAbort(await restorer.backupLicenses().catch((e) => e)))
  const early = await restorer.backupLicenses({ signal: AbortSignal.abort() }).catch((e) => e)
  assert.ok(isAbort(early) && isCode('CANCELLED')(early))

  // The check an application writes for Node's own aborted operations catches ours too.
  const nodeOwn = await timers.setTimeout(10, null, { signal: AbortSignal.abort() }).catch((e) => e)
  assert.ok(isAbort(nodeOwn))

  // Other errors keep their name.
  const other = await restorer.restoreLicenses().catch((e) => e)
  assert.equal(other.name, 'LicenseBackupError')
  assert.equal(String(new lb.LicenseBackupError('CANCELLED', 'x')), 'AbortError: x')
})
