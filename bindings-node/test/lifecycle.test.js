'use strict'
// Threads and lifetime: events on the main thread, in order, before the Promise settles; a
// finished operation does not keep Node alive; a throwing listener cancels cleanly; AbortSignal.

const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')
const { isMainThread } = require('node:worker_threads')
const { lb, tempDir, world, record } = require('./helpers.js')

function isCode(code) {
  return (err) => err instanceof lb.LicenseBackupError && err.code === code && err.errno === lb.ErrorCode[code]
}

/** Runs `source` in a child `node`, where `license-backup` resolves to the installed package. */
function runChild(t, source) {
  const dir = tempDir(t)
  const script = path.join(dir, 'child.js')
  fs.writeFileSync(script, source)
  const child = spawnSync(process.execPath, [script, dir], {
    env: { ...process.env, NODE_PATH: path.join(path.dirname(require.resolve('license-backup')), '..') },
    encoding: 'utf8',
    timeout: 60_000,
  })
  return Object.assign(child, { script })
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
  const licenses = []
  for (let i = 1; i <= 50; i++) {
    licenses.push({ keyId: '5a000000-0000-0000-0000-' + i.toString(16).padStart(12, '0'),
      contentKey: Buffer.from('key ' + i), rights: { play: true, burn: true, transfer: true, backupAllowed: true },
      issuer: 'https://issuer.example', issuedAt: 1700000000 + i })
  }
  store.addLicenses(licenses)
  const restorer = new lb.BackupRestorer(store, service)
  restorer.backupPath = path.join(dir, 'backup')
  restorer.progressInterval = 5
  let events = 0
  for (const name of lb.EVENTS) restorer.on(name, () => events++)
`

test('a process that ran a backup exits by itself, with status 0', (t) => {
  const child = runChild(
    t,
    `${CHILD_PRELUDE}
    restorer.backupLicenses().then((summary) => {
      console.log(JSON.stringify({ licenses: summary.licenses, events }))
      // No close(), no process.exit(): nothing native may keep the event loop alive.
    })
  `,
  )
  assert.equal(child.error, undefined, `the child did not exit by itself: ${child.error}`)
  assert.equal(child.status, 0, child.stderr)
  assert.deepEqual(JSON.parse(child.stdout), { licenses: 50, events: 12 })
})

test('a running operation keeps the process alive until it ends, then lets it exit', (t) => {
  const child = runChild(
    t,
    `${CHILD_PRELUDE}
    restorer.on('end', (e) => console.log('end', e.summary.licenses, events))
    restorer.backupLicenses() // not awaited: the operation alone must keep Node running
  `,
  )
  assert.equal(child.error, undefined, `the child did not exit by itself: ${child.error}`)
  assert.equal(child.status, 0, child.stderr)
  assert.equal(child.stdout.trim(), 'end 50 12')
})

test('a listener that throws in a child process does not crash it', (t) => {
  const child = runChild(
    t,
    `${CHILD_PRELUDE}
    restorer.on('progress', () => { throw new Error('listener bug') })
    restorer.backupLicenses().catch((err) => {
      console.log(err.code, err.cause.message)
      restorer.close(); store.close(); service.close()
    })
  `,
  )
  assert.equal(child.error, undefined, `the child did not exit by itself: ${child.error}`)
  assert.equal(child.status, 0, child.stderr)
  assert.equal(child.stdout.trim(), 'CALLBACK_FAILED listener bug')
})

test('events arrive on the main thread, in order, all before the Promise settles', async (t) => {
  const { restorer } = world(t, { count: 1000, progressInterval: 1 })
  const seen = []
  let settled = false
  restorer.on('progress', (e) => {
    assert.equal(isMainThread, true)
    assert.equal(settled, false, 'an event arrived after the Promise settled')
    seen.push(e.done)
  })
  restorer.on('end', () => assert.equal(settled, false))
  const summary = await restorer.backupLicenses()
  settled = true
  assert.equal(summary.licenses, 1000)
  assert.equal(seen.length, 1000)
  seen.forEach((done, i) => assert.equal(done, i + 1))
})

test('a throwing listener cancels the operation: CALLBACK_FAILED with the error as cause', async (t) => {
  const { restorer, backup } = world(t, { count: 20, progressInterval: 1 })
  const seen = record(restorer)
  const bug = new RangeError('listener bug')
  const thrower = (e) => {
    if (e.done === 3) throw bug
  }
  restorer.on('progress', thrower)
  const err = await restorer.backupLicenses().then(
    () => assert.fail('should have failed'),
    (e) => e,
  )
  assert.ok(isCode('CALLBACK_FAILED')(err), String(err))
  assert.equal(err.cause, bug)
  assert.match(err.message, /listener bug/)
  // The failing event was the last before END, and END still came, once, last.
  const names = seen.map(([n]) => n)
  assert.deepEqual(names, ['begin', 'progress', 'progress', 'progress', 'end'])
  assert.ok(isCode('CALLBACK_FAILED')(seen.at(-1)[1].error))
  assert.equal(fs.existsSync(path.join(backup, 'licenses.lbk')), false, 'nothing was written')

  // The restorer is usable again at once.
  restorer.off('progress', thrower)
  const summary = await restorer.backupLicenses()
  assert.equal(summary.licenses, 20)
})

test('throwing something that is not an Error (the end listener: listeners.test.js)', async (t) => {
  const { restorer } = world(t, { count: 3 })
  restorer.once('begin', () => {
    throw 'a string'
  })
  const err = await restorer.backupLicenses().catch((e) => e)
  assert.ok(isCode('CALLBACK_FAILED')(err))
  assert.equal(err.cause, 'a string')
  assert.match(err.message, /"a string"/)
  await restorer.backupLicenses({ overwrite: true })
})

test('AbortSignal: aborting cancels, the Promise rejects with CANCELLED after end', async (t) => {
  const { restorer, backup } = world(t, { count: 300, progressInterval: 1 })
  const controller = new AbortController()
  const seen = record(restorer)
  restorer.on('progress', (e) => {
    if (e.done === 10) controller.abort(new Error('user pressed cancel'))
  })
  const err = await restorer.backupLicenses({ signal: controller.signal }).catch((e) => e)
  assert.ok(isCode('CANCELLED')(err), String(err))
  assert.equal(err.cause, controller.signal.reason)
  assert.equal(seen.at(-1)[0], 'end')
  assert.ok(seen.length < 300)
  assert.equal(fs.existsSync(path.join(backup, 'licenses.lbk')), false)

  // An already aborted signal: rejected at once, nothing starts.
  const before = seen.length
  const err2 = await restorer.backupLicenses({ signal: AbortSignal.abort('too late') }).catch((e) => e)
  assert.ok(isCode('CANCELLED')(err2))
  assert.equal(err2.cause, 'too late')
  assert.equal(seen.length, before)

  // A signal aborted after the operation ended changes nothing; not a signal is an error.
  const late = new AbortController()
  await restorer.backupLicenses({ signal: late.signal })
  late.abort()
  await assert.rejects(restorer.backupLicenses({ signal: {} }), isCode('INVALID_ARGUMENT'))
})

test('AbortSignal: a restore aborted after the service answered costs nothing', async (t) => {
  const { dir, backup, service, restorer } = world(t, { count: 5 })
  await restorer.backupLicenses()
  const store = lb.LicenseStore.open(path.join(dir, 'B.db'))
  const b = new lb.BackupRestorer(store, service)
  t.after(() => {
    b.close()
    store.close()
  })
  b.restorePath = backup
  for (const event of ['disconnecting', 'begin']) {
    const controller = new AbortController()
    b.once(event, () => controller.abort(new Error('user pressed cancel')))
    const err = await b.restoreLicenses({ signal: controller.signal }).catch((e) => e)
    assert.ok(isCode('CANCELLED')(err), String(err))
  }
  assert.equal(store.licenseCount(), 0)
  assert.deepEqual(
    { ...service.audit() },
    { pending: 0, confirmed: 0, released: 2, expired: 0, licenses: 0, placements: 0, devices: 1 },
  )
  const quota = b.restoreQuota()
  assert.deepEqual({ ...quota }, { licenses: 5, maxDevices: 4, restoresRemaining: 3, deviceAlreadyCounted: false, allowed: true })
  assert.deepEqual({ ...b.restoreQuota({ individualize: true }) }, { ...quota })
})

test('cancelLicenseBackup / cancelLicenseRestore cancel the running operation', async (t) => {
  const { restorer } = world(t, { count: 300, progressInterval: 1 })
  restorer.once('progress', () => restorer.cancelLicenseBackup())
  await assert.rejects(restorer.backupLicenses(), isCode('CANCELLED'))
  await restorer.backupLicenses()
  restorer.once('progress', () => restorer.cancelLicenseRestore())
  const restore = restorer.restoreLicenses()
  await assert.rejects(restore, isCode('CANCELLED'))
  // Cancelling with nothing running does nothing.
  restorer.cancelLicenseBackup()
  restorer.cancelLicenseRestore()
})

test('starting a second operation while one runs is BUSY, without events', async (t) => {
  const { restorer } = world(t, { count: 50, progressInterval: 10 })
  const seen = record(restorer)
  const first = restorer.backupLicenses()
  await assert.rejects(restorer.restoreLicenses(), isCode('BUSY'))
  await assert.rejects(restorer.backupLicenses(), isCode('BUSY'))
  await first
  assert.equal(seen.filter(([n]) => n === 'end').length, 1)
})

// process.exit() (or an Electron app quitting) while a backup runs: the wrapper cancels it at
// 'exit' and waits for its work to stop, so the previous archive stays and no temporary file is
// left; without the overwrite flag no licenses.lbk appears.
for (const [how, overwrite] of [['from a progress listener', true], ['from a timer', true], ['from a timer', false]]) {
  test(`process.exit() ${how} mid-backup (overwrite ${overwrite}) leaves the old archive and no temporary file`, (t) => {
    const exitCall = how === 'from a timer'
      ? `restorer.on('progress', (e) => { if (e.done === 20000) setTimeout(() => { console.log('exiting'); process.exit(0) }, 0) })`
      : `restorer.on('progress', (e) => { if (e.done === 20000) { console.log('exiting'); process.exit(0) } })`
    const child = runChild(
      t,
      `${CHILD_PRELUDE}
      // 50 licenses went into a first archive; 60,000 more make the second backup long.
      ;(async () => {
        await restorer.backupLicenses()
        fs.copyFileSync(path.join(dir, 'backup', 'licenses.lbk'), path.join(dir, 'first.lbk'))
        if (!${overwrite}) fs.unlinkSync(path.join(dir, 'backup', 'licenses.lbk'))
        const more = []
        for (let i = 51; i <= 60050; i++) {
          more.push({ keyId: '5b000000-0000-0000-0000-' + i.toString(16).padStart(12, '0'),
            contentKey: Buffer.from('key ' + i), rights: { play: true, burn: true, transfer: true, backupAllowed: true },
            issuer: 'https://issuer.example', issuedAt: 1700000000 + i })
        }
        store.addLicenses(more)
        ${exitCall}
        restorer.on('end', () => console.log('end'))
        restorer.backupLicenses({ overwrite: ${overwrite} })
      })()
    `,
    )
    assert.equal(child.error, undefined, `${child.error}`)
    assert.equal(child.status, 0, child.stderr)
    assert.match(child.stdout, /exiting/)
    assert.doesNotMatch(child.stdout, /^end$/m, 'the backup ended before the exit: the test proves nothing')
    const dir = path.dirname(child.script)
    const files = fs.readdirSync(path.join(dir, 'backup'))
    if (overwrite) {
      assert.deepEqual(files, ['licenses.lbk'], 'only the archive is left')
      assert.deepEqual(fs.readFileSync(path.join(dir, 'backup', 'licenses.lbk')), fs.readFileSync(path.join(dir, 'first.lbk')))
    } else {
      assert.deepEqual(files, [], 'no archive, no temporary file')
    }
  })
}
