'use strict'
// Every public call of the package, with its JavaScript types, and its errors.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')
const { lb, REPO, tempDir, generatedKeyId, generatedLicense, world, record } = require('./helpers.js')

/** Asserts that `fn` throws (or the Promise rejects with) a LicenseBackupError `code`. */
function isCode(code) {
  return (err) => {
    assert.ok(err instanceof lb.LicenseBackupError, `expected a LicenseBackupError, got ${err && err.stack}`)
    assert.ok(err instanceof Error)
    // A cancelled operation's error is named as the platform names an aborted one.
    assert.equal(err.name, code === 'CANCELLED' ? 'AbortError' : 'LicenseBackupError')
    assert.equal(err.code, code)
    assert.equal(err.errno, lb.ErrorCode[code])
    assert.ok(err.message.length > 0)
    return true
  }
}

test('LicenseStore: licenses, content keys, catalog, verify, close', (t) => {
  const dir = tempDir(t)
  const store = lb.LicenseStore.open(path.join(dir, 'device.db'))
  assert.match(store.deviceId(), /^[0-9a-f]{32}$/)
  assert.equal(store.licenseCount(), 0)
  assert.equal(typeof store.licenseCount(), 'number') // a number, never a BigInt

  const l1 = generatedLicense('5a', 1)
  store.addLicense(l1)
  assert.throws(() => store.addLicense(l1), isCode('LICENSE_EXISTS'))
  store.addLicense({ ...l1, issuer: 'https://other.example' }, { replace: true })
  // A plain Uint8Array works as well as a Buffer.
  const l2 = { ...generatedLicense('5a', 2), contentKey: new Uint8Array([1, 2, 3, 4]) }
  const l3 = generatedLicense('5a', 3, { restricted: true, counted: true })
  store.addLicenses([l2, l3])
  assert.throws(() => store.addLicenses([generatedLicense('5a', 4), l2]), isCode('LICENSE_EXISTS'))
  assert.equal(store.licenseCount(), 3, 'a failed batch adds nothing')
  store.addLicenses([l2], { replace: true })

  const got = store.getLicense(l1.keyId)
  assert.equal(got.keyId, l1.keyId)
  assert.equal(got.issuer, 'https://other.example')
  assert.equal(got.issuedAt, 1700000001)
  assert.deepEqual(
    { ...got.rights },
    { play: true, burn: true, transfer: true, backupAllowed: true },
    'absent optional fields (no expiry, unlimited plays) are left out',
  )
  assert.equal('contentKey' in got, false, 'a listed license never carries its content key')
  assert.equal(store.getLicense(l3.keyId).rights.playsRemaining, 3)
  assert.equal(store.getLicense(l3.keyId).rights.backupAllowed, false)
  assert.equal(store.getLicense(generatedKeyId('5a', 99)), null)
  // Key IDs are accepted in any case, with or without hyphens, and given back lowercase.
  assert.equal(store.getLicense(l1.keyId.toUpperCase().replaceAll('-', '')).keyId, l1.keyId)
  assert.deepEqual(store.listLicenses().map((l) => l.keyId), [1, 2, 3].map((i) => generatedKeyId('5a', i)))

  const key = store.contentKey(l1.keyId)
  assert.ok(Buffer.isBuffer(key))
  assert.equal(key.toString('ascii'), 'content-key-5a-1')
  assert.deepEqual([...store.contentKey(l2.keyId)], [1, 2, 3, 4])
  key.fill(0) // the caller owns its copy
  assert.equal(store.contentKey(l1.keyId).toString('ascii'), 'content-key-5a-1')
  assert.throws(() => store.contentKey(generatedKeyId('5a', 99)), isCode('LICENSE_NOT_FOUND'))

  assert.equal(store.catalogEntry(l1.keyId), null)
  store.setCatalogEntry(l1.keyId, { title: 'Heroes', artist: 'David Bowie', filePath: '/music/heroes.wma' })
  assert.deepEqual({ ...store.catalogEntry(l1.keyId) }, { title: 'Heroes', artist: 'David Bowie', filePath: '/music/heroes.wma' })
  assert.equal(store.getLicense(l1.keyId).catalog.title, 'Heroes')
  store.setCatalogEntry(l1.keyId, { title: 'Heroes (live)' })
  assert.equal(store.catalogEntry(l1.keyId).artist, undefined)
  assert.equal(store.removeCatalogEntry(l1.keyId), true)
  assert.equal(store.removeCatalogEntry(l1.keyId), false)

  assert.equal(store.verify(), 3)
  assert.equal(store.removeLicense(l2.keyId), true)
  assert.equal(store.removeLicense(l2.keyId), false)
  assert.equal(store.licenseCount(), 2)

  assert.equal(store.closed, false)
  store.close()
  store.close()
  assert.equal(store.closed, true)
  assert.throws(() => store.licenseCount(), isCode('INVALID_ARGUMENT'))
})

test('malformed arguments are INVALID_ARGUMENT', (t) => {
  const dir = tempDir(t)
  const store = lb.LicenseStore.open(path.join(dir, 'device.db'))
  t.after(() => store.close())
  assert.throws(() => store.getLicense('not-a-key-id'), isCode('INVALID_ARGUMENT'))
  assert.throws(() => store.getLicense(42), isCode('INVALID_ARGUMENT'))
  assert.throws(() => store.addLicense({ keyId: generatedKeyId('5a', 1) }), isCode('INVALID_ARGUMENT'))
  assert.throws(() => store.addLicense({ ...generatedLicense('5a', 1), contentKey: 'not bytes' }), isCode('INVALID_ARGUMENT'))
  assert.throws(() => store.addLicense({ ...generatedLicense('5a', 1), contentKey: Buffer.alloc(0) }), isCode('INVALID_ARGUMENT'))
  assert.throws(() => new lb.BackupRestorer({}, {}), isCode('INVALID_ARGUMENT'))
  assert.throws(() => new lb.LicenseStore(), isCode('INVALID_ARGUMENT'))
})

test('opening a store or a service where it cannot be is STORAGE', (t) => {
  const dir = tempDir(t)
  assert.throws(() => lb.LicenseStore.open(path.join(dir, 'missing', 'x.db')), isCode('STORAGE'))
  assert.throws(() => lb.EmbeddedService.open(path.join(dir, 'missing', 's.db')), isCode('STORAGE'))
  assert.throws(() => lb.EmbeddedService.open(''), isCode('INVALID_ARGUMENT'))
  assert.throws(() => lb.LicenseStore.open(''), isCode('INVALID_ARGUMENT'))
})

test('a file of another kind is WRONG_FILE_KIND and left byte for byte as it was', (t) => {
  const dir = tempDir(t)
  const junk = path.join(dir, 'junk.db')
  fs.writeFileSync(junk, 'this is not a database at all, not even close')
  const one = path.join(dir, 'one-byte.db')
  fs.writeFileSync(one, 'x')
  const store = lb.LicenseStore.open(path.join(dir, 'store.db'))
  store.close()
  const ledger = lb.EmbeddedService.open(path.join(dir, 'ledger.db'))
  ledger.close()
  const files = [junk, one, path.join(dir, 'store.db'), path.join(dir, 'ledger.db')]
  const before = files.map((f) => fs.readFileSync(f))
  for (const f of [junk, one, path.join(dir, 'ledger.db')]) {
    assert.throws(() => lb.LicenseStore.open(f), isCode('WRONG_FILE_KIND'), f)
  }
  for (const f of [junk, one, path.join(dir, 'store.db')]) {
    assert.throws(() => lb.EmbeddedService.open(f), isCode('WRONG_FILE_KIND'), f)
  }
  files.forEach((f, i) => assert.deepEqual(fs.readFileSync(f), before[i], f))
})

test('path and media errors carry their codes: PATH_INVALID, NOT_WRITABLE', async (t) => {
  const a = world(t)
  a.restorer.backupPath = path.join(tempDir(t), 'n'.repeat(300))
  await assert.rejects(a.restorer.backupLicenses(), isCode('PATH_INVALID'))
  a.restorer.backupPath = '/proc'
  await assert.rejects(a.restorer.backupLicenses(), isCode('NOT_WRITABLE'))
  for (const [name, errno] of Object.entries({ NO_SPACE: 206, MEDIA_FAILURE: 207, DEVICE_GONE: 208, PATH_INVALID: 209, NOT_READABLE: 210, WRONG_FILE_KIND: 604 })) {
    assert.equal(lb.ErrorCode[name], errno, name)
    assert.equal(new lb.LicenseBackupError(name, 'm').errno, errno)
  }
})

test('BackupRestorer properties: by name, by index, accessors, errors', (t) => {
  const { restorer, backup } = world(t)
  assert.equal(restorer.propertyCount(), 2)
  assert.deepEqual({ ...restorer.propertyByIndex(0) }, { name: 'BackupPath', value: backup })
  assert.deepEqual({ ...restorer.propertyByIndex(1) }, { name: 'RestorePath', value: backup })
  assert.throws(() => restorer.propertyByIndex(2), isCode('INVALID_ARGUMENT'))
  assert.equal(restorer.backupPath, backup)
  assert.equal(restorer.getProperty('RestorePath'), backup)

  assert.equal(restorer.progressInterval, null)
  assert.equal(restorer.getProperty('ProgressInterval'), null)
  restorer.progressInterval = 7
  assert.equal(restorer.getProperty('ProgressInterval'), 7)
  restorer.setProperty('ProgressInterval', 4294967295)
  assert.equal(restorer.progressInterval, 4294967295)
  assert.throws(() => restorer.setProperty('ProgressInterval', 0), isCode('INVALID_ARGUMENT'))
  assert.throws(() => restorer.setProperty('ProgressInterval', -1), isCode('INVALID_ARGUMENT'))
  assert.throws(() => restorer.setProperty('ProgressInterval', 1.5), isCode('INVALID_ARGUMENT'))
  assert.throws(() => restorer.setProperty('ProgressInterval', 2 ** 32), isCode('INVALID_ARGUMENT'))
  assert.throws(() => restorer.setProperty('ProgressInterval', '5'), isCode('WRONG_PROPERTY_TYPE'))
  assert.throws(() => restorer.setProperty('BackupPath', 5), isCode('WRONG_PROPERTY_TYPE'))
  assert.throws(() => restorer.setProperty('BackupPath', true), isCode('WRONG_PROPERTY_TYPE'))
  assert.throws(() => restorer.setProperty('BackupPath', ''), isCode('INVALID_ARGUMENT'))
  assert.throws(() => restorer.setProperty('BackupPath', null), isCode('WRONG_PROPERTY_TYPE'))
  assert.throws(() => restorer.setProperty('Nope', null), isCode('UNKNOWN_PROPERTY'))
  assert.throws(() => restorer.setProperty('BackupPath', 1.5), isCode('WRONG_PROPERTY_TYPE'))
  assert.throws(() => restorer.setProperty('Nope', 'x'), isCode('UNKNOWN_PROPERTY'))
  assert.throws(() => restorer.getProperty('backuppath'), isCode('UNKNOWN_PROPERTY'))
  assert.throws(() => restorer.removeProperty('Nope'), isCode('UNKNOWN_PROPERTY'))
  assert.equal(restorer.propertyCount(), 3)

  assert.equal(restorer.removeProperty('ProgressInterval'), true)
  assert.equal(restorer.removeProperty('ProgressInterval'), false)
  restorer.backupPath = null
  assert.equal(restorer.backupPath, null)
  assert.deepEqual({ ...restorer.propertyByIndex(0) }, { name: 'RestorePath', value: backup })
  restorer.removeAllProperties()
  assert.equal(restorer.propertyCount(), 0)
  assert.equal(restorer.restorePath, null)
})

test('backupLicenses and restoreLicenses resolve with the summary, after their events', async (t) => {
  const a = world(t, { count: 5, restricted: [2], progressInterval: 2 })
  const seen = record(a.restorer)
  const summary = await a.restorer.backupLicenses()
  assert.deepEqual(
    { ...summary, bytes: 0, durationMs: 0 },
    { licenses: 4, restricted: 1, skipped: 0, bytes: 0, durationMs: 0 },
  )
  assert.ok(summary.bytes > 0 && Number.isInteger(summary.bytes))
  assert.ok(fs.existsSync(path.join(a.backup, 'licenses.lbk')))
  assert.deepEqual(seen.map(([name]) => name), ['begin', 'restrictedLicense', 'progress', 'progress', 'progress', 'end'])
  // Every payload also carries `emittedNs` (checked in 'emittedNs: ...' below).
  const fields = ([, { emittedNs, ...rest }]) => rest
  assert.deepEqual(fields(seen[0]), { operation: 'backup' })
  assert.deepEqual(fields(seen[1]), { keyId: generatedKeyId('5a', 2), title: 'Track 2' })
  assert.deepEqual(fields(seen[2]), { operation: 'backup', done: 2, total: 5 })
  const end = seen[5][1]
  assert.equal(end.operation, 'backup')
  assert.equal(end.error, null)
  assert.equal(end.summary, summary)

  await assert.rejects(a.restorer.backupLicenses(), isCode('BACKUP_EXISTS'))
  await a.restorer.backupLicenses({ overwrite: true })

  // A second device restores through the same service.
  const store = lb.LicenseStore.open(path.join(a.dir, 'B.db'))
  const b = new lb.BackupRestorer(store, a.service)
  t.after(() => (b.close(), store.close()))
  b.restorePath = a.backup
  const quota = b.restoreQuota()
  assert.deepEqual({ ...quota }, { licenses: 4, maxDevices: 4, restoresRemaining: 3, deviceAlreadyCounted: false, allowed: true })
  const idBefore = store.deviceId()
  const seenB = record(b)
  const restored = await b.restoreLicenses({ individualize: true })
  assert.equal(restored.licenses, 4)
  assert.notEqual(store.deviceId(), idBefore, 'individualize gives the device a new identity')
  assert.deepEqual(seenB.map(([name]) => name), ['connecting', 'disconnecting', 'begin', 'progress', 'end'])
  assert.deepEqual(fields(seenB[0]), {})
  assert.equal(store.contentKey(generatedKeyId('5a', 1)).toString(), 'content-key-5a-1')
  assert.equal(store.getLicense(generatedKeyId('5a', 3)).catalog.title, 'Track 3')
  assert.equal(store.getLicense(generatedKeyId('5a', 2)), null, 'a restricted license never travels')

  const again = await b.restoreLicenses({ replaceExisting: true })
  assert.deepEqual([again.licenses, again.skipped], [4, 0])
  const kept = await b.restoreLicenses()
  assert.deepEqual([kept.licenses, kept.skipped], [0, 4])
})

test('emittedNs: the process.hrtime.bigint() clock, monotonic over an operation, never after the delivery', async (t) => {
  const a = world(t, { count: 600, restricted: [5, 300, 599], progressInterval: 1 })
  const stamps = [] // [name, emittedNs, delivered at]
  for (const name of lb.EVENTS) a.restorer.on(name, (e) => stamps.push([name, e.emittedNs, process.hrtime.bigint()]))
  const started = process.hrtime.bigint()
  await a.restorer.backupLicenses()
  const b = new lb.BackupRestorer(lb.LicenseStore.open(path.join(a.dir, 'B.db')), a.service)
  t.after(() => b.close())
  b.restorePath = a.backup
  b.progressInterval = 7
  for (const name of lb.EVENTS) b.on(name, (e) => stamps.push([name, e.emittedNs, process.hrtime.bigint()]))
  await b.restoreLicenses()
  const finished = process.hrtime.bigint()
  assert.equal(stamps.filter(([n]) => n === 'end').length, 2)
  assert.ok(stamps.length > 600, `${stamps.length} events`)
  let previous = started
  for (const [name, emitted, delivered] of stamps) {
    assert.equal(typeof emitted, 'bigint', name)
    assert.ok(emitted >= previous, `${name}: emitted at ${emitted}, before the previous event (${previous})`)
    assert.ok(emitted <= delivered, `${name}: emitted at ${emitted}, after its delivery at ${delivered}`)
    previous = emitted
  }
  assert.ok(previous <= finished)
})

test('restore errors: refused (with URL), offline service, missing archive, path not set', async (t) => {
  const a = world(t, { count: 2, maxDevices: 1 })
  await assert.rejects(a.restorer.restoreLicenses(), isCode('ARCHIVE_MISSING'))
  await a.restorer.backupLicenses()
  const store = lb.LicenseStore.open(path.join(a.dir, 'B.db'))
  const b = new lb.BackupRestorer(store, a.service)
  t.after(() => (b.close(), store.close()))
  await assert.rejects(b.restoreLicenses(), isCode('PATH_NOT_SET'))
  assert.throws(() => b.restoreQuota(), isCode('PATH_NOT_SET'))
  b.restorePath = a.backup
  assert.equal(b.restoreQuota().restoresRemaining, 0)
  const refused = []
  b.on('refused', (e) => refused.push(e))
  await assert.rejects(b.restoreLicenses(), isCode('RESTORE_LIMIT_EXCEEDED'))
  assert.equal(refused.length, 1)
  assert.equal(refused[0].code, 'RESTORE_LIMIT_EXCEEDED')
  assert.equal(refused[0].errno, 402)
  assert.match(refused[0].url, /^https:\/\//)
  assert.ok(refused[0].message.length > 0)

  a.service.setOnline(false)
  await assert.rejects(a.restorer.restoreLicenses(), isCode('SERVICE_UNAVAILABLE'))
  a.service.setOnline(true)
  await a.restorer.restoreLicenses()
})

test('every error code has a constant, and LicenseBackupError carries code and errno', () => {
  const codes = Object.entries(lb.ErrorCode)
  const iface = JSON.parse(fs.readFileSync(path.join(REPO, 'core', 'interface.json'), 'utf8'))
  assert.deepEqual(codes, iface.errors.map((e) => [e.name, e.number]))
  assert.ok(Object.isFrozen(lb.ErrorCode))
  for (const [code, errno] of codes) {
    const err = new lb.LicenseBackupError(code, 'message', { cause: 'why' })
    assert.ok(isCode(code)(err))
    assert.equal(err.errno, errno)
    assert.equal(err.cause, 'why')
  }
  assert.throws(() => new lb.LicenseBackupError('NOPE', 'x'), isCode('INVALID_ARGUMENT'))
})

test('createBackupRestorer is the same as the constructor', (t) => {
  const { store, service } = world(t)
  const r = lb.createBackupRestorer(store, service)
  assert.ok(r instanceof lb.BackupRestorer)
  r.close()
})

test('close(): calls on a closed object fail; a closed restorer cancels its operation', async (t) => {
  const { restorer, service } = world(t, { count: 200, progressInterval: 1 })
  const done = restorer.backupLicenses()
  restorer.once('progress', () => restorer.close())
  await assert.rejects(done, isCode('CANCELLED'))
  assert.equal(restorer.closed, true)
  assert.throws(() => restorer.propertyCount(), isCode('INVALID_ARGUMENT'))
  await assert.rejects(restorer.backupLicenses(), isCode('INVALID_ARGUMENT'))
  service.close()
  assert.equal(service.closed, true)
  assert.throws(() => service.setOnline(true), isCode('INVALID_ARGUMENT'))
})

test('in a worker thread the addon throws that thread\'s own LicenseBackupError', async (t) => {
  const { Worker } = require('node:worker_threads')
  const dir = tempDir(t)
  const source = `
    const { parentPort, workerData } = require('node:worker_threads')
    const lb = require(workerData.pkg)
    const store = lb.LicenseStore.open(require('node:path').join(workerData.dir, 'worker.db'))
    const restorer = new lb.BackupRestorer(store, lb.EmbeddedService.open(require('node:path').join(workerData.dir, 'svc.db')))
    restorer.backupLicenses().catch((err) => {
      parentPort.postMessage([err instanceof lb.LicenseBackupError, err.code, err.name])
      restorer.close(); store.close()
    })
  `
  const worker = new Worker(source, { eval: true, workerData: { pkg: require.resolve('license-backup'), dir } })
  const [message] = await require('node:events').once(worker, 'message')
  assert.deepEqual(message, [true, 'PATH_NOT_SET', 'LicenseBackupError'])
  await require('node:events').once(worker, 'exit')
  // The main thread's class is still the one its errors are made with.
  assert.throws(() => lb.LicenseStore.open(path.join(dir, 'missing', 'x.db')), (err) => err instanceof lb.LicenseBackupError)
})
