'use strict'
// RemoteService against a real license-backup-service process on 127.0.0.1: options, trust,
// tokens, pinned service keys, the quota query, and every network error code as a
// LicenseBackupError with its code.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const { test } = require('node:test')
const { lb, tempDir, generatedLicense, record, STRICT_CONFIG, TestServer } = require('./helpers.js')

function device(t, dir, name, service, count = 0) {
  fs.mkdirSync(dir, { recursive: true })
  const store = lb.LicenseStore.open(path.join(dir, `${name}.db`))
  const licenses = []
  for (let i = 1; i <= count; i++) licenses.push(generatedLicense('5a', i))
  if (licenses.length) store.addLicenses(licenses)
  const restorer = new lb.BackupRestorer(store, service)
  fs.mkdirSync(path.join(dir, 'backup'), { recursive: true })
  restorer.backupPath = path.join(dir, 'backup')
  restorer.restorePath = path.join(dir, 'backup')
  t.after(() => {
    restorer.close()
    store.close()
  })
  return restorer
}

async function rejectsWith(promise, code) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof lb.LicenseBackupError, `${err}`)
    assert.equal(err.code, code, `${err.message}`)
    assert.equal(err.errno, lb.ErrorCode[code])
    return true
  })
}

test('backup, quota and restore through the server', async (t) => {
  const server = await TestServer.start(t, { maxDevices: 2 })
  const dir = tempDir(t)
  const service = server.client({ timeout: 10, retries: 1 })
  assert.equal(service.url, server.url)
  const a = device(t, dir, 'a', service, 25)
  assert.equal((await a.backupLicenses()).licenses, 25)
  const b = device(t, dir, 'b', service)
  const q = b.restoreQuota()
  assert.deepEqual([q.licenses, q.maxDevices, q.restoresRemaining, q.deviceAlreadyCounted], [25, 2, 1, false])
  const seen = record(b)
  assert.equal((await b.restoreLicenses()).licenses, 25)
  assert.deepEqual(seen.slice(0, 2).map(([name]) => name), ['connecting', 'disconnecting'])
  await rejectsWith(device(t, dir, 'c', service).restoreLicenses(), 'RESTORE_LIMIT_EXCEEDED')
})

test('every network error code, from a real server', async (t) => {
  const server = await TestServer.start(t)
  const strict = await TestServer.start(t, { extraConfig: STRICT_CONFIG })
  const dir = tempDir(t)
  const backup = (name, service, count = 1) => device(t, path.join(dir, name), name, service, count).backupLicenses()
  await rejectsWith(backup('token', server.client({ token: 'not-the-token' })), 'AUTHENTICATION_FAILED')
  await rejectsWith(backup('noca', lb.RemoteService.open(server.url, { token: server.token })), 'SERVICE_NOT_TRUSTED')
  await rejectsWith(backup('key', server.client({ serviceKeys: ['00'.repeat(16)] })), 'SERVICE_KEY_NOT_PINNED')
  const wrongPath = lb.RemoteService.open(`${server.url}/not-a-service`, { token: server.token, caFile: server.caFile })
  await rejectsWith(backup('path', wrongPath), 'PROTOCOL_VIOLATION')
  assert.equal((await backup('pinned', server.client({ caFile: undefined, certPins: [server.made.cert_sha256] }))).licenses, 1)
  assert.equal((await backup('keyok', server.client({ serviceKeys: [server.made.key_fingerprint] }))).licenses, 1)
  // The strict server: one license a request, one request a device.
  const strictService = strict.client({ retries: 0 })
  const big = path.join(dir, 'big')
  await device(t, big, 'a', strictService, 2).backupLicenses()
  await rejectsWith(device(t, big, 'b', strictService).restoreLicenses(), 'REQUEST_TOO_LARGE')
  const small = path.join(dir, 'small')
  await device(t, small, 'a', strictService, 1).backupLicenses()
  const b = device(t, small, 'b', strictService)
  b.restoreQuota()
  assert.throws(() => b.restoreQuota(), (err) => err.code === 'RATE_LIMITED')
})

test('an unreachable service: SERVICE_UNAVAILABLE, no archive', async (t) => {
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port
      s.close(() => resolve(p))
    })
  })
  const dir = tempDir(t)
  const r = device(t, dir, 'a', lb.RemoteService.open(`http://127.0.0.1:${port}`, { timeout: 1, retries: 0 }), 2)
  await rejectsWith(r.backupLicenses(), 'SERVICE_UNAVAILABLE')
  assert.ok(!fs.existsSync(path.join(dir, 'backup', 'licenses.lbk')))
})

test('bad options are refused at once', () => {
  const bad = [
    ['http://licenses.example.com', {}],
    ['ftp://x', {}],
    ['https://x.example', { token: 'a b' }],
    ['https://x.example', { token: 'a\r\nX-Injected: 1' }],
    ['https://x.example', { certPins: ['abcd'] }],
    ['https://x.example', { serviceKeys: ['xyz'] }],
    ['https://x.example', { timeout: 0 }],
    ['https://x.example', { timeout: NaN }],
    ['https://x.example', { caFile: '/nonexistent.pem' }],
  ]
  for (const [url, options] of bad) {
    assert.throws(() => lb.RemoteService.open(url, options), (err) => err.code === 'INVALID_ARGUMENT', `${url} ${JSON.stringify(options)}`)
  }
  assert.throws(() => new lb.BackupRestorer(null, 'https://x.example'), (err) => err.code === 'INVALID_ARGUMENT')
})
