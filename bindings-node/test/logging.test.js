'use strict'
// setLogger: the engine's diagnostics reach the application's logger as records, on the main
// thread, filtered by level; nothing is logged (or printed) without a logger; a throwing logger
// never crashes; no record carries key material.

const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')
const { lb, tempDir, world } = require('./helpers.js')

/** Waits (turning the event loop) until `predicate()` holds, up to 10 s. */
async function until(predicate, what) {
  const deadline = Date.now() + 10_000
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

const ended = (records, operation) =>
  records.filter((r) => r.message === 'operation ended' && r.fields.operation === operation)

test('a function logger gets every record at its level as { level, target, message, fields }', async (t) => {
  const records = []
  lb.setLogger((r) => records.push(r), { level: 'debug' })
  t.after(() => lb.setLogger(null))
  const a = world(t, { count: 5, restricted: [2] })
  const summary = await a.restorer.backupLicenses()
  assert.equal(summary.licenses, 4)
  await until(() => ended(records, 'backup').length === 1, 'the backup end record')
  const end = ended(records, 'backup')[0]
  assert.deepEqual(
    { level: end.level, outcome: end.fields.outcome, licenses: end.fields.licenses, restricted: end.fields.restricted },
    { level: 'info', outcome: 'OK', licenses: '4', restricted: '1' },
  )
  assert.match(end.target, /^license_backup::/)
  assert.ok(records.some((r) => r.message === 'operation started' && r.fields.operation === 'backup'))

  // A restore on a second device: the service connection at debug, then its end.
  const store = lb.LicenseStore.open(path.join(a.dir, 'B.db'))
  const b = new lb.BackupRestorer(store, a.service)
  b.restorePath = a.backup
  t.after(() => {
    b.close()
    store.close()
  })
  assert.equal((await b.restoreLicenses()).licenses, 4)
  await until(() => ended(records, 'restore').length === 1, 'the restore end record')
  assert.ok(records.some((r) => r.level === 'debug' && r.message === 'connecting to the service'))

  // A failure: WARN with the code.
  await assert.rejects(a.restorer.backupLicenses(), (e) => e.code === 'BACKUP_EXISTS')
  await until(() => ended(records, 'backup').length === 2, 'the failed backup record')
  const failed = ended(records, 'backup')[1]
  assert.deepEqual([failed.level, failed.fields.outcome], ['warn', 'BACKUP_EXISTS'])

  // No content key, in any form, in any record.
  const all = JSON.stringify(records)
  for (let i = 1; i <= 5; i++) {
    const key = Buffer.from(`content-key-5a-${i}`, 'ascii')
    assert.ok(!all.includes(key.toString('ascii')) && !all.includes(key.toString('hex')), `content key ${i} logged`)
  }
})

test('the level filters records out before they reach JavaScript; null stops logging', async (t) => {
  const records = []
  lb.setLogger((r) => records.push(r), { level: 'warn' })
  t.after(() => lb.setLogger(null))
  const a = world(t)
  await a.restorer.backupLicenses()
  await assert.rejects(a.restorer.backupLicenses(), (e) => e.code === 'BACKUP_EXISTS')
  await until(() => records.length > 0, 'the warning')
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.ok(records.every((r) => r.level === 'warn' || r.level === 'error'), JSON.stringify(records))
  assert.equal(ended(records, 'backup').length, 1)

  lb.setLogger(null)
  records.length = 0
  await a.restorer.backupLicenses({ overwrite: true })
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.deepEqual(records, [])
})

test('a console-like logger is called as logger[level](message, record)', async (t) => {
  const calls = []
  const logger = {}
  for (const level of ['error', 'warn', 'info', 'debug']) logger[level] = (message, record) => calls.push([level, message, record])
  lb.setLogger(logger)
  t.after(() => lb.setLogger(null))
  const a = world(t)
  await a.restorer.backupLicenses()
  await until(() => calls.some(([, m]) => m === 'operation ended'), 'the end record')
  const [level, message, record] = calls.find(([, m]) => m === 'operation ended')
  assert.deepEqual([level, message, record.fields.outcome], ['info', 'operation ended', 'OK'])
  // The default level is info: no debug record.
  assert.ok(calls.every(([l]) => l !== 'debug'))
})

test('a logger that throws becomes a process warning; the operation is not affected', async (t) => {
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  t.after(() => process.off('warning', onWarning))
  lb.setLogger(() => {
    throw new Error('logger is broken')
  })
  t.after(() => lb.setLogger(null))
  const a = world(t)
  assert.equal((await a.restorer.backupLicenses()).licenses, 3)
  const ours = () => warnings.find((w) => w.code === 'LICENSE_BACKUP_LOGGER_FAILED')
  await until(ours, 'the warning')
  assert.equal(ours().name, 'LicenseBackupWarning')
  assert.equal(ours().cause.message, 'logger is broken')
  assert.match(ours().message, /logger is broken/)
})

test('setLogger refuses what is not a logger or a level with INVALID_ARGUMENT', () => {
  const invalid = (e) => e instanceof lb.LicenseBackupError && e.code === 'INVALID_ARGUMENT'
  assert.throws(() => lb.setLogger(42), invalid)
  assert.throws(() => lb.setLogger({ info() {} }), invalid)
  assert.throws(() => lb.setLogger(() => {}, { level: 'verbose' }), invalid)
})

test('without a logger nothing is printed, and the process exits on its own', (t) => {
  const dir = tempDir(t)
  const script = path.join(dir, 'child.js')
  fs.writeFileSync(
    script,
    `'use strict'
    const path = require('node:path'); const fs = require('node:fs')
    const lb = require('license-backup')
    const dir = process.argv[2]
    fs.mkdirSync(path.join(dir, 'backup'))
    const service = lb.EmbeddedService.open(path.join(dir, 'service.db'))
    const store = lb.LicenseStore.open(path.join(dir, 'device.db'))
    store.addLicenses([{ keyId: '5a000000-0000-0000-0000-000000000001', contentKey: Buffer.from('k'), rights: { play: true, burn: true, transfer: true, backupAllowed: true }, issuer: 'https://issuer.example', issuedAt: 1700000000 }])
    const r = new lb.BackupRestorer(store, service)
    r.backupPath = path.join(dir, 'backup')
    r.backupLicenses().then(() => r.backupLicenses()).catch(() => {
      // A logger set now and left set must not keep the process alive either.
      lb.setLogger(() => {}, { level: 'trace' })
    })
    `,
  )
  const child = spawnSync(process.execPath, [script, dir], {
    env: { ...process.env, NODE_PATH: path.join(path.dirname(require.resolve('license-backup')), '..') },
    encoding: 'utf8',
    timeout: 60_000,
  })
  assert.equal(child.status, 0, child.stderr)
  assert.equal(child.stdout, '')
  assert.equal(child.stderr, '')
})
