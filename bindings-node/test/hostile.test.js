'use strict'
// Hostile listeners (docs/reliability.md, section 5): listeners that block for a while, call
// the store and the restorer from inside an event, cancel from inside an event, or await the
// operation's own Promise from a listener. Every test runs under a timeout, so a deadlock fails
// it instead of hanging the suite.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')
const { lb, generatedKeyId, generatedLicense, world, record } = require('./helpers.js')

const TIMEOUT = { timeout: 60_000 }
// A re-entrant store call must not wait on anything the operation holds: far below the store's
// 10 s busy timeout, so a lock stall fails instead of passing slowly.
const REENTRY_LIMIT_MS = 3_000

function isCode(code) {
  return (err) => err instanceof lb.LicenseBackupError && err.code === code && err.errno === lb.ErrorCode[code]
}

function busyWait(ms) {
  const until = Date.now() + ms
  while (Date.now() < until) {
    // Listeners are synchronous: this blocks the main thread (and the worker waiting for it).
  }
}

/** A second device restoring from the world's backup folder, on the same service. */
function deviceB(t, w) {
  const store = lb.LicenseStore.open(path.join(w.dir, 'B.db'))
  const restorer = new lb.BackupRestorer(store, w.service)
  restorer.restorePath = w.backup
  restorer.backupPath = w.backup
  restorer.progressInterval = 1
  t.after(() => {
    restorer.close()
    store.close()
  })
  return { store, restorer }
}

test('a listener that blocks for a while: the operation completes, events in order, timers still fire', TIMEOUT, async (t) => {
  const { restorer } = world(t, { count: 8, progressInterval: 1 })
  const seen = record(restorer)
  let timeoutFired = false
  let intervalTicks = 0
  setTimeout(() => (timeoutFired = true), 1)
  const interval = setInterval(() => intervalTicks++, 5)
  t.after(() => clearInterval(interval))
  let blocked = 0
  const block = () => {
    blocked++
    busyWait(150)
  }
  restorer.on('begin', block)
  restorer.on('progress', (e) => (e.done === 3 || e.done === 6) && block())
  restorer.on('end', block)
  const started = Date.now()
  const summary = await restorer.backupLicenses()
  assert.ok(Date.now() - started >= 600, 'the four blocking listeners were waited for')
  assert.equal(summary.licenses, 8)
  assert.equal(blocked, 4)
  assert.deepEqual(seen.map(([n]) => n), ['begin', ...Array(8).fill('progress'), 'end'])
  assert.deepEqual(seen.filter(([n]) => n === 'progress').map(([, e]) => e.done), [1, 2, 3, 4, 5, 6, 7, 8])
  assert.equal(seen.at(-1)[1].error, null)
  // Timers scheduled before the operation fire (between events, and after it).
  await new Promise((resolve) => setTimeout(resolve, 20))
  assert.equal(timeoutFired, true)
  assert.ok(intervalTicks > 0)
})

/** Listeners that read and write the store and the restorer on every event. */
function reenter(store, restorer, prefix) {
  const calls = []
  const errors = []
  let n = 0
  for (const name of lb.EVENTS) {
    restorer.on(name, () => {
      n++
      try {
        const started = Date.now()
        const listed = store.listLicenses()
        const count = store.licenseCount()
        store.addLicense(generatedLicense(prefix, n))
        store.setCatalogEntry(generatedKeyId(prefix, n), { title: `added in ${name}` })
        const quota = restorer.restoreQuota()
        const interval = restorer.progressInterval
        calls.push({ name, listed: listed.length, count, quota, interval, ms: Date.now() - started })
      } catch (err) {
        errors.push(err)
      }
    })
  }
  return { calls, errors }
}

for (const kind of ['backup', 'restore', 'restore-individualize']) {
  test(`store and restorer calls from inside listeners during a ${kind}`, TIMEOUT, async (t) => {
    const w = world(t, { count: 5, progressInterval: 1 })
    await w.restorer.backupLicenses() // an archive for restoreQuota (and for the restore)
    const target = kind === 'backup' ? { store: w.store, restorer: w.restorer } : deviceB(t, w)
    const before = target.store.licenseCount()
    const { calls, errors } = reenter(target.store, target.restorer, '7b')
    const summary =
      kind === 'backup'
        ? await target.restorer.backupLicenses({ overwrite: true })
        : await target.restorer.restoreLicenses({ individualize: kind === 'restore-individualize' })
    assert.deepEqual(errors, [])
    assert.equal(calls.at(-1).name, 'end')
    // A backup reads its snapshot after `begin` returns: the license added there is in it.
    assert.equal(summary.licenses, kind === 'backup' ? 6 : 5)
    calls.forEach((c, i) => {
      assert.ok(c.ms < REENTRY_LIMIT_MS, JSON.stringify(c))
      assert.equal(c.listed, c.count)
      assert.ok(kind === 'backup' ? [5, 6].includes(c.quota.licenses) : c.quota.licenses === 5, JSON.stringify(c))
      assert.equal(c.interval, 1)
      if (kind === 'backup') assert.equal(c.count, before + i)
    })
    const keys = new Set(target.store.listLicenses().map((l) => l.keyId))
    for (let i = 1; i <= calls.length; i++) assert.ok(keys.has(generatedKeyId('7b', i)))
    assert.equal(target.store.licenseCount(), before + calls.length + (kind === 'backup' ? 0 : 5))
    assert.equal(target.store.verify(), target.store.licenseCount())
    assert.equal(target.store.catalogEntry(generatedKeyId('7b', 1)).title, `added in ${calls[0].name}`)
  })
}

for (const how of ['cancel method', 'AbortController']) {
  test(`cancel from inside a listener (${how}): END(CANCELLED) last, backup and restore`, TIMEOUT, async (t) => {
    const w = world(t, { count: 10, progressInterval: 1 })
    await w.restorer.backupLicenses()
    const archive = fs.readFileSync(path.join(w.backup, 'licenses.lbk'))
    const b = deviceB(t, w)
    for (const [restorer, op] of [[w.restorer, 'backup'], [b.restorer, 'restore']]) {
      const seen = record(restorer)
      const controller = new AbortController()
      const cancel = (e) => {
        if (e.done !== 3) return
        if (how === 'AbortController') controller.abort(new Error('cancel pressed'))
        else if (op === 'backup') restorer.cancelLicenseBackup()
        else restorer.cancelLicenseRestore()
      }
      restorer.on('progress', cancel)
      const options = { signal: controller.signal }
      const err = await (op === 'backup' ? restorer.backupLicenses({ ...options, overwrite: true }) : restorer.restoreLicenses(options)).catch((e) => e)
      restorer.off('progress', cancel)
      assert.ok(isCode('CANCELLED')(err), String(err))
      if (how === 'AbortController') assert.equal(err.cause, controller.signal.reason)
      // The cancel took effect at that very event: END right after it, once, last.
      const names = seen.map(([n]) => n)
      assert.deepEqual(names.slice(-4), ['progress', 'progress', 'progress', 'end'])
      assert.equal(names.filter((n) => n === 'end').length, 1)
      assert.ok(isCode('CANCELLED')(seen.at(-1)[1].error))
    }
    assert.deepEqual(fs.readFileSync(path.join(w.backup, 'licenses.lbk')), archive, 'the cancelled backup left the archive')
    assert.equal(b.store.licenseCount(), 0, 'the cancelled restore changed nothing')
  })
}

test("awaiting the operation's own Promise inside a listener does not block; it settles after end", TIMEOUT, async (t) => {
  const { restorer } = world(t, { count: 4, progressInterval: 1 })
  const seen = record(restorer)
  let operation
  let settledAfter
  let listenerReturned = false
  restorer.once('begin', async () => {
    // `operation` is set synchronously after backupLicenses() returns; the first event comes later.
    const summary = await operation
    settledAfter = { events: seen.length, licenses: summary.licenses }
  })
  restorer.once('progress', () => {
    listenerReturned = true
  })
  operation = restorer.backupLicenses()
  const summary = await operation
  await new Promise(setImmediate)
  assert.equal(summary.licenses, 4)
  assert.equal(listenerReturned, true, 'the events after the awaiting listener were delivered')
  assert.deepEqual(settledAfter, { events: seen.length, licenses: 4 })
  assert.equal(seen.at(-1)[0], 'end')
})

// Events cross to the main thread in batches (hundreds of events per call when the listener is
// slower than the engine): a cancel or a throw in the middle of one must stop right there.
for (const how of ['cancel', 'throw']) {
  test(`a ${how} in the middle of a long run of events stops delivery at that event`, TIMEOUT, async (t) => {
    const { restorer, backup } = world(t, { count: 3000, progressInterval: 1 })
    const seen = record(restorer)
    const bug = new Error('listener bug at 1700')
    const stopAt = (e) => {
      if (e.done !== 1700) return
      busyWait(20) // let the engine queue up many more events meanwhile
      if (how === 'cancel') restorer.cancelLicenseBackup()
      else throw bug
    }
    restorer.on('progress', stopAt)
    const err = await restorer.backupLicenses().catch((e) => e)
    assert.ok(isCode(how === 'cancel' ? 'CANCELLED' : 'CALLBACK_FAILED')(err), String(err))
    if (how === 'throw') assert.equal(err.cause, bug)
    const progress = seen.filter(([n]) => n === 'progress').map(([, e]) => e.done)
    assert.equal(progress.length, 1700)
    progress.forEach((done, i) => assert.equal(done, i + 1))
    assert.deepEqual(seen.slice(-2).map(([n]) => n), ['progress', 'end'])
    assert.equal(fs.existsSync(path.join(backup, 'licenses.lbk')), false, 'nothing was committed')
  })
}
