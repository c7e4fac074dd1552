'use strict'
// Licenses at rest through the Node package: host protectors built on node:crypto (called on the
// main thread during a synchronous open, through a thread-safe function when a restore
// individualizes on its worker), their errors with what they threw as `cause`, a row edited in
// the file, the play counter and no rollback, and a byte scan of every file for secrets.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')
const { lb, tempDir, generatedLicense, gcmProtector, failingProtector, KeystoreLocked } = require('./helpers.js')

function filesUnder(dir) {
  return fs.readdirSync(dir, { recursive: true }).map((f) => path.join(dir, f)).filter((f) => fs.statSync(f).isFile())
}

function restorer(store, service, folder) {
  const r = new lb.BackupRestorer(store, service)
  r.backupPath = folder
  r.restorePath = folder
  return r
}

test('a host protector keeps every seed and content key out of every file, individualizing on a worker', async (t) => {
  const dir = tempDir(t)
  const folder = path.join(dir, 'backup')
  fs.mkdirSync(folder)
  const host = gcmProtector(1)
  const protector = lb.Protector.host(host)
  const service = lb.EmbeddedService.open(path.join(dir, 'service.db'), { protector })
  const a = lb.LicenseStore.open(path.join(dir, 'a.db'), { protector })
  assert.equal(a.protectorLabel, 'host (JavaScript)')
  a.addLicenses(Array.from({ length: 30 }, (_, i) => generatedLicense('5a', i + 1)))
  const ra = restorer(a, service, folder)
  assert.equal((await ra.backupLicenses()).licenses, 30)
  const b = lb.LicenseStore.open(path.join(dir, 'b.db'), { protector })
  const rb = restorer(b, service, folder)
  const before = b.deviceId()
  // The new identity's seed is wrapped by the JavaScript protector from the restore's worker.
  const seen = host.seen.length
  assert.equal((await rb.restoreLicenses({ individualize: true })).licenses, 30)
  assert.ok(host.seen.length > seen, 'the protector was called during the restore')
  assert.notEqual(b.deviceId(), before)
  assert.deepEqual(b.contentKey(generatedLicense('5a', 7).keyId), Buffer.from('content-key-5a-7'))
  a.removeLicense(generatedLicense('5a', 1).keyId)
  for (const x of [ra, rb]) x.close()
  for (const x of [a, b, service]) x.close()
  const secrets = [...Array.from({ length: 30 }, (_, i) => Buffer.from(`content-key-5a-${i + 1}`)), ...host.seen]
  for (const f of filesUnder(dir)) {
    const data = fs.readFileSync(f)
    for (const s of secrets) assert.ok(!data.includes(s), `a secret in clear in ${path.basename(f)}`)
  }
  const reopened = lb.LicenseStore.open(path.join(dir, 'b.db'), { protector })
  assert.equal(reopened.verify(), 30)
  reopened.close()
})

test('protector errors: required, mismatch, failed with the cause; the file is unchanged', (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'a.db')
  const mine = lb.Protector.host(gcmProtector(2))
  lb.LicenseStore.open(file, { protector: mine }).close()
  const bytes = fs.readFileSync(file)
  assert.throws(() => lb.LicenseStore.open(file), { code: 'PROTECTOR_REQUIRED' })
  assert.throws(() => lb.LicenseStore.open(file, { protector: lb.Protector.host(gcmProtector(3)) }), {
    code: 'PROTECTOR_MISMATCH',
  })
  assert.throws(
    () => lb.LicenseStore.open(file, { protector: lb.Protector.host(failingProtector()) }),
    (err) => err.code === 'PROTECTOR_FAILED' && err.cause instanceof KeystoreLocked && /keystore is locked/.test(err.message),
  )
  assert.throws(() => lb.Protector.host({ wrap: 1 }), { code: 'INVALID_ARGUMENT' })
  assert.throws(() => lb.LicenseStore.open(file, { protector: { wrap() {}, unwrap() {} } }), { code: 'INVALID_ARGUMENT' })
  assert.deepEqual(fs.readFileSync(file), bytes)
  lb.LicenseStore.open(file, { protector: mine }).close()
})

test('a protector that throws during an individualizing restore rejects with PROTECTOR_FAILED and its cause', async (t) => {
  const dir = tempDir(t)
  const folder = path.join(dir, 'backup')
  fs.mkdirSync(folder)
  const host = gcmProtector(4)
  let fail = false
  const flaky = {
    wrap: (seed) => {
      if (fail) throw new KeystoreLocked('locked while restoring')
      return host.wrap(seed)
    },
    unwrap: (w) => host.unwrap(w),
  }
  const store = lb.LicenseStore.open(path.join(dir, 'a.db'), { protector: lb.Protector.host(flaky) })
  store.addLicenses([1, 2, 3].map((i) => generatedLicense('5a', i)))
  const r = restorer(store, lb.EmbeddedService.open(path.join(dir, 's.db')), folder)
  await r.backupLicenses()
  const id = store.deviceId()
  fail = true
  await assert.rejects(r.restoreLicenses({ individualize: true }), (err) => err.code === 'PROTECTOR_FAILED' && err.cause instanceof KeystoreLocked)
  assert.equal(store.deviceId(), id)
  assert.equal(store.verify(), 3)
  r.close()
  store.close()
})

test('a row edited in the file is refused, naming the license', (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'a.db')
  const store = lb.LicenseStore.open(file)
  const license = { ...generatedLicense('5a', 1), issuer: 'https://issuer.example/MARKER' }
  store.addLicense(license)
  store.close()
  const data = fs.readFileSync(file)
  const at = data.indexOf('MARKER')
  assert.ok(at > 0)
  data.write('MARKET', at)
  fs.writeFileSync(file, data)
  const reopened = lb.LicenseStore.open(file)
  assert.throws(() => reopened.listLicenses(), (err) => err.code === 'LICENSE_TAMPERED' && err.message.includes(license.keyId))
  assert.throws(() => reopened.contentKey(license.keyId), { code: 'LICENSE_TAMPERED' })
  reopened.close()
})

test('plays are counted and an older archive gives none back', async (t) => {
  const dir = tempDir(t)
  const folder = path.join(dir, 'backup')
  fs.mkdirSync(folder)
  const store = lb.LicenseStore.open(path.join(dir, 'a.db'))
  const license = generatedLicense('5a', 1)
  store.addLicense(license)
  store.updateRights(license.keyId, { play: true, burn: true, transfer: true, backupAllowed: true, playsRemaining: 2 })
  const r = restorer(store, lb.EmbeddedService.open(path.join(dir, 's.db')), folder)
  await r.backupLicenses()
  assert.equal(store.usePlay(license.keyId).playsRemaining, 1)
  assert.equal(store.usePlay(license.keyId).playsRemaining, 0)
  assert.throws(() => store.usePlay(license.keyId), { code: 'PLAYS_EXHAUSTED' })
  await r.restoreLicenses({ replaceExisting: true })
  assert.equal(store.getLicense(license.keyId).rights.playsRemaining, 0)
  r.close()
  store.close()
})
