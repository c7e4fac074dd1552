'use strict'
// Shared by the test files: the package under test, temporary folders, generated licenses.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

// `make test-node` runs these tests in a fresh folder where the packed tarball is installed, so
// `license-backup` resolves to node_modules/license-backup; LB_REPO points at the repository.
const lb = require('license-backup')
const REPO = process.env.LB_REPO ?? path.resolve(__dirname, '..', '..')

function tempDir(t, prefix = 'lb-node-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * A host protector built on Node's own crypto: AES-256-GCM with a random nonce. `unwrap`
 * answers null for bytes another key wrapped; every seed it sees is kept in `seen`.
 */
function gcmProtector(keyByte) {
  const crypto = require('node:crypto')
  const key = Buffer.alloc(32, keyByte)
  const seen = []
  return {
    seen,
    wrap(seed) {
      seen.push(Buffer.from(seed))
      const iv = crypto.randomBytes(12)
      const cipher = crypto.createCipheriv('aes-256-gcm', key, iv)
      const body = Buffer.concat([cipher.update(seed), cipher.final()])
      return Buffer.concat([iv, body, cipher.getAuthTag()])
    },
    unwrap(wrapped) {
      const iv = wrapped.subarray(0, 12)
      const tag = wrapped.subarray(wrapped.length - 16)
      const decipher = crypto.createDecipheriv('aes-256-gcm', key, iv)
      decipher.setAuthTag(tag)
      try {
        const seed = Buffer.concat([decipher.update(wrapped.subarray(12, wrapped.length - 16)), decipher.final()])
        seen.push(Buffer.from(seed))
        return seed
      } catch {
        return null
      }
    },
  }
}

/** A host protector whose keystore is locked: both functions throw. */
class KeystoreLocked extends Error {}
function failingProtector() {
  const fail = () => {
    throw new KeystoreLocked('the keystore is locked')
  }
  return { wrap: fail, unwrap: fail }
}

/** The protector an `open_store` step names (tests/scenarios/README.md). */
function scenarioProtector(name) {
  if (name == null) return undefined
  if (name === 'failing') return lb.Protector.host(failingProtector())
  return lb.Protector.host(gcmProtector(Number(name.slice('host:'.length))))
}

/** The key ID of generated license `i` (tests/scenarios/README.md). */
function generatedKeyId(prefix, i) {
  return `${prefix}000000-0000-0000-0000-${i.toString(16).padStart(12, '0')}`
}

/** Generated license `i`, exactly as tests/scenarios/README.md defines it. */
function generatedLicense(prefix, i, { restricted = false, counted = false } = {}) {
  const rights = { play: true, burn: true, transfer: true, backupAllowed: !restricted }
  if (counted) rights.playsRemaining = i
  return {
    keyId: generatedKeyId(prefix, i),
    contentKey: Buffer.from(`content-key-${prefix}-${i}`, 'ascii'),
    rights,
    issuer: 'https://issuer.example',
    issuedAt: 1700000000 + i,
  }
}

/** A store with `count` generated licenses (titled `Track i` unless `titles` is false), a service, and a restorer over both. */
function world(t, { count = 3, restricted = [], maxDevices, progressInterval, titles = count <= 50 } = {}) {
  const dir = tempDir(t)
  const backup = path.join(dir, 'backup')
  fs.mkdirSync(backup)
  const service = lb.EmbeddedService.open(path.join(dir, 'service.db'), { maxDevices })
  const store = lb.LicenseStore.open(path.join(dir, 'A.db'))
  const licenses = []
  for (let i = 1; i <= count; i++) licenses.push(generatedLicense('5a', i, { restricted: restricted.includes(i) }))
  if (licenses.length) store.addLicenses(licenses)
  // One transaction each: only small worlds get catalog titles.
  if (titles) for (let i = 1; i <= count; i++) store.setCatalogEntry(generatedKeyId('5a', i), { title: `Track ${i}` })
  const restorer = new lb.BackupRestorer(store, service)
  restorer.backupPath = backup
  restorer.restorePath = backup
  if (progressInterval) restorer.progressInterval = progressInterval
  t.after(() => {
    restorer.close()
    store.close()
    service.close()
  })
  return { dir, backup, service, store, restorer }
}

/** Records every event a restorer emits, as [name, payload] pairs. */
function record(restorer) {
  const seen = []
  for (const name of lb.EVENTS) restorer.on(name, (e) => seen.push([name, e]))
  return seen
}

module.exports = {
  lb,
  REPO,
  tempDir,
  generatedKeyId,
  generatedLicense,
  world,
  record,
  gcmProtector,
  failingProtector,
  KeystoreLocked,
  scenarioProtector,
}
