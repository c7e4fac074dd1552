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

// Error codes only a networked service produces (remote.test.js reaches them).
const NETWORK_ONLY = new Set([
  'AUTHENTICATION_FAILED',
  'PROTOCOL_VIOLATION',
  'SERVICE_NOT_TRUSTED',
  'SERVICE_KEY_NOT_PINNED',
  'RATE_LIMITED',
  'REQUEST_TOO_LARGE',
])

// Generous rates for tests that restore often (the defaults would throttle them).
const TEST_RATES =
  '\n[rate]\nper_account = { per_second = 1000.0, burst = 1000.0 }\nper_device = { per_second = 1000.0, burst = 1000.0 }\n'

/** A server whose limits a test reaches on purpose: one license a request, one request a device. */
const STRICT_CONFIG =
  '[limits]\nmax_licenses = 1\n[rate]\nper_account = { per_second = 1000.0, burst = 1000.0 }\n' +
  'per_device = { per_second = 0.001, burst = 1.0 }\n'

/** The license-backup-service binary: $LICENSE_BACKUP_SERVICE (make test sets it), else the debug build. */
function serviceBinary() {
  const bin = process.env.LICENSE_BACKUP_SERVICE ?? path.join(REPO, 'target', 'debug', 'license-backup-service')
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: cargo build -p license-backup-service`)
  return bin
}

/**
 * A real license-backup-service process on 127.0.0.1, made with `init` in a temporary folder
 * (its own key, token, CA and certificate). `await TestServer.start(t, options)`; stopped at the
 * end of the test.
 */
class TestServer {
  static async start(t, { maxDevices, refusalUrl, extraConfig = '' } = {}) {
    const { execFileSync } = require('node:child_process')
    const folder = path.join(tempDir(t, 'lb-server-'), 'service')
    const args = ['init', folder, '--listen', '127.0.0.1:0']
    if (maxDevices !== undefined) args.push('--max-devices', String(maxDevices))
    if (refusalUrl !== undefined) args.push('--refusal-url', refusalUrl)
    const made = JSON.parse(execFileSync(serviceBinary(), args, { encoding: 'utf8' }))
    fs.appendFileSync(made.config, (extraConfig.includes('[rate]') ? '' : TEST_RATES) + '\n' + extraConfig)
    const server = new TestServer(made, path.join(folder, '..', 'server.log'))
    t.after(() => server.stop())
    await server.launch()
    return server
  }

  constructor(made, log) {
    this.made = made
    this.token = made.token
    this.caFile = made.ca_file
    this.log = log
    this.listen = '127.0.0.1:0'
    this.url = ''
    this.child = null
  }

  async launch() {
    const { spawn } = require('node:child_process')
    const log = fs.openSync(this.log, 'a')
    const child = spawn(serviceBinary(), ['serve', '--config', this.made.config, '--listen', this.listen], {
      stdio: ['ignore', 'pipe', log],
    })
    fs.closeSync(log)
    this.child = child
    const line = await new Promise((resolve, reject) => {
      let buffered = ''
      const onData = (chunk) => {
        buffered += chunk
        const end = buffered.indexOf('\n')
        if (end < 0) return
        child.stdout.off('data', onData)
        child.off('exit', onExit)
        resolve(buffered.slice(0, end))
      }
      const onExit = () => reject(new Error(`the server did not start: ${fs.readFileSync(this.log, 'utf8')}`))
      child.stdout.on('data', onData)
      child.on('exit', onExit)
    })
    // The rest of its standard output is not read: it prints nothing more.
    child.stdout.resume()
    this.url = JSON.parse(line).listening
    this.listen = this.url.split('://')[1]
  }

  /** SIGTERM, and waits for the exit. */
  async stop() {
    const child = this.child
    if (!child) return
    this.child = null
    if (child.exitCode !== null || child.signalCode !== null) return
    await new Promise((resolve) => {
      child.on('exit', resolve)
      child.kill('SIGTERM')
    })
  }

  /** What the server's ledger holds for `account` (its `audit` admin command). */
  audit(account = 'default') {
    const { execFileSync } = require('node:child_process')
    const out = execFileSync(serviceBinary(), ['audit', '--account', account, '--config', this.made.config], {
      encoding: 'utf8',
    })
    const { pending, confirmed, released, expired, licenses, placements, devices } = JSON.parse(out)
    return { pending, confirmed, released, expired, licenses, placements, devices }
  }

  /** A client that trusts this server's CA and has its token; options override. */
  client(options = {}) {
    return lb.RemoteService.open(this.url, { token: this.token, caFile: this.caFile, ...options })
  }
}

module.exports = {
  lb,
  REPO,
  tempDir,
  generatedKeyId,
  generatedLicense,
  world,
  record,
  NETWORK_ONLY,
  STRICT_CONFIG,
  TestServer,
  gcmProtector,
  failingProtector,
  KeystoreLocked,
  scenarioProtector,
}
