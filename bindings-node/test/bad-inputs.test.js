'use strict'
// The shared bad-input table (tests/bad-inputs/: generated from the interface definition, plus
// hand-picked rows), run through the installed package: every row's value, put at its place
// in an otherwise valid call, is rejected with the row's code as a LicenseBackupError before
// anything changes (or accepted, for the boundary rows), and the message names the argument.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')
const { lb, REPO, tempDir } = require('./helpers.js')

const DIR = path.join(REPO, 'tests', 'bad-inputs')
const read = (f) => JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8'))
const generated = read('generated.json')
const handPicked = read('hand-picked.json')
const CALLS = { ...generated.calls, ...handPicked.calls }
const ROWS = [...generated.rows, ...handPicked.rows]

const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase())
const ABSENT = Symbol('absent')

/** A table value as a JavaScript value (tests/bad-inputs/README.md), record keys in camelCase. */
function decode(value, root) {
  if (Array.isArray(value)) return value.map((v) => decode(v, root))
  if (value === null || typeof value !== 'object') return value
  const keys = Object.keys(value)
  if (keys.length === 1 && keys[0].startsWith('$')) {
    const arg = value[keys[0]]
    switch (keys[0]) {
      case '$float':
        return Number(arg)
      case '$int':
        return Number(arg)
      case '$bigint':
        return BigInt(arg)
      case '$bytes':
        return Buffer.alloc(arg, 7)
      case '$text':
        return 'a'.repeat(arg)
      case '$path':
        return path.join(root, arg)
      case '$absent':
        return ABSENT
      default:
        throw new Error(`unknown value ${keys[0]}`)
    }
  }
  const out = {}
  for (const [k, v] of Object.entries(value)) {
    const decoded = decode(v, root)
    if (decoded !== ABSENT) out[camel(k)] = decoded
  }
  return out
}

/** Puts the row's value at its target and path in the JSON arguments. */
function put(args, row) {
  if (row.path.length === 0) {
    args[row.target] = row.value
    return
  }
  let place = args[row.target] ?? (args[row.target] = {})
  for (const key of row.path.slice(0, -1)) {
    place = Array.isArray(place) ? place[0] : place
    place = place[key]
  }
  place = Array.isArray(place) ? place[0] : place
  place[row.path[row.path.length - 1]] = row.value
}

/** Starts an operation and waits for its end; only whether the call accepted its arguments counts. */
async function operation(start) {
  try {
    await start()
  } catch (err) {
    if (err.code === 'INVALID_ARGUMENT') throw err
  }
}

// The JavaScript form of each call of the table.
const FORMS = {
  'LicenseStore.open': (w, a, o) => lb.LicenseStore.open(a.path, o).close(),
  'LicenseStore.add_license': (w, a, o) => w.store.addLicense(a.license, o),
  'LicenseStore.add_licenses': (w, a, o) => w.store.addLicenses(a.licenses, o),
  'LicenseStore.get_license': (w, a) => w.store.getLicense(a.keyId),
  'LicenseStore.remove_license': (w, a) => w.store.removeLicense(a.keyId),
  'LicenseStore.content_key': (w, a) => w.store.contentKey(a.keyId),
  'LicenseStore.update_rights': (w, a) => w.store.updateRights(a.keyId, a.rights),
  'LicenseStore.use_play': (w, a) => w.store.usePlay(a.keyId),
  'LicenseStore.set_catalog_entry': (w, a) => w.store.setCatalogEntry(a.keyId, a.entry),
  'LicenseStore.catalog_entry': (w, a) => w.store.catalogEntry(a.keyId),
  'LicenseStore.remove_catalog_entry': (w, a) => w.store.removeCatalogEntry(a.keyId),
  'EmbeddedService.open': (w, a, o) => lb.EmbeddedService.open(a.path, o).close(),
  'RemoteService.open': (w, a, o) => lb.RemoteService.open(a.url, o),
  'EmbeddedService.set_online': (w, a) => w.service.setOnline(a.online),
  'EmbeddedService.audit': (w) => w.service.audit(),
  'BackupRestorer.set_property': (w, a) => w.restorer.setProperty(a.name, a.value),
  'BackupRestorer.get_property': (w, a) => w.restorer.getProperty(a.name),
  'BackupRestorer.property_by_index': (w, a) => w.restorer.propertyByIndex(a.index),
  'BackupRestorer.remove_property': (w, a) => w.restorer.removeProperty(a.name),
  'BackupRestorer.backup_licenses': (w, a, o) => operation(() => w.restorer.backupLicenses(o)),
  'BackupRestorer.restore_licenses': (w, a, o) => operation(() => w.restorer.restoreLicenses(o)),
  // Its outcome in a folder with no archive (ARCHIVE_MISSING) does not count.
  'BackupRestorer.restore_quota': (w, a, o) => {
    try {
      w.restorer.restoreQuota(o)
    } catch (err) {
      if (err.code !== 'ARCHIVE_MISSING') throw err
    }
  },
}
// Calls with no JavaScript form: Operation.wait is the Promise an operation returns.
const NO_FORM = new Set(['Operation.wait'])

const INTERFACE = JSON.parse(fs.readFileSync(path.join(REPO, 'core', 'interface.json'), 'utf8'))
// The objects of the world a method's form calls.
const INSTANCES = { LicenseStore: 'store', EmbeddedService: 'service', BackupRestorer: 'restorer' }

/**
 * The call's form: FORMS', or for a method that returns when done (what has generated entry
 * points) the method of the world's object with its parameters in order, then its options.
 */
function formOf(call) {
  if (FORMS[call]) return FORMS[call]
  const [object, name] = call.split('.')
  const op = INTERFACE.operations.find((o) => o.object === object && o.name === name)
  if (!op || op.call !== 'method' || op.starts || !INSTANCES[object]) return undefined
  return (w, a, o) => w[INSTANCES[object]][camel(name)](...op.params.map((p) => a[camel(p.name)]), ...(op.options ? [o] : []))
}

function world(t) {
  const root = tempDir(t, 'lb-bad-input-')
  fs.mkdirSync(path.join(root, 'backup'))
  const store = lb.LicenseStore.open(path.join(root, 'device.db'))
  const service = lb.EmbeddedService.open(path.join(root, 'service.db'))
  const restorer = new lb.BackupRestorer(store, service)
  restorer.backupPath = path.join(root, 'backup')
  restorer.restorePath = path.join(root, 'backup')
  t.after(() => (restorer.close(), store.close(), service.close()))
  return { root, store, service, restorer }
}

for (const row of ROWS) {
  test(row.id, { skip: NO_FORM.has(row.call) && 'no JavaScript form' }, async (t) => {
    const spec = CALLS[row.call]
    const args = structuredClone({ ...spec.args, ...(row.args ?? {}) })
    let options
    if (row.target === 'options') options = { [row.path[0]]: row.value }
    else put(args, row)
    const w = world(t)
    const jsArgs = decode(args, w.root)
    const jsOptions = options === undefined ? undefined : decode(options, w.root)
    const form = formOf(row.call)
    if (row.call === 'LicenseStore.update_rights' || row.call === 'LicenseStore.use_play') {
      // A call about a license: the license is there (when the key ID is one).
      try {
        w.store.addLicense({ keyId: jsArgs.keyId, contentKey: Buffer.alloc(16, 7), rights: {}, issuer: 'https://issuer.example', issuedAt: 1 })
      } catch {}
    }
    const count = w.store.licenseCount()
    if (row.expect === null) {
      await form(w, jsArgs, jsOptions)
      return
    }
    await assert.rejects(
      async () => form(w, jsArgs, jsOptions),
      (err) => {
        assert.ok(err instanceof lb.LicenseBackupError, `a LicenseBackupError, not ${err}`)
        assert.equal(err.code, row.expect, err.message)
        if (row.expect === 'INVALID_ARGUMENT') {
          // A property value's message names the property.
          const named = row.path.length ? camel(row.path[row.path.length - 1]) : (row.args?.name ?? camel(row.target))
          assert.ok(err.message.includes(named), `the message names ${named}: ${err.message}`)
          assert.doesNotMatch(err.message, /Failed to convert|napi/i, 'no binding internals in the message')
        }
        return true
      },
    )
    assert.equal(w.store.licenseCount(), count, 'nothing changed')
  })
}

test('the table covers every call and every kind of bad value the issue lists', () => {
  for (const call of Object.keys(CALLS)) assert.ok(formOf(call) || NO_FORM.has(call), `no JavaScript form of ${call}`)
  const notes = new Set(ROWS.map((r) => r.note))
  for (const needed of ['negative', 'a fraction', 'NaN', 'infinity', '2^32', '2^63', 'a BigInt', 'an unknown option (a typo)']) {
    assert.ok(notes.has(needed), needed)
  }
})

// Every entry point, every argument, every JavaScript type it does not take (undefined, null, a
// boolean, a number, a BigInt, a string, a symbol, a function, an object, an array): a
// LicenseBackupError (INVALID_ARGUMENT, or WRONG_PROPERTY_TYPE for a property value) whose
// message names the argument and shows nothing of the binding's internals; operations reject
// (they never throw); and a method called on something else than its object says so.
const { SAMPLES, TAKES, SIGNATURES, INTERNALS } = require('./signatures.js')

for (const [call, params, fn, async] of SIGNATURES) {
  for (const [i, [name, kind]] of params.entries()) {
    const wrong = SAMPLES.filter(([type]) => !(TAKES[kind] ?? SAMPLES.map(([t]) => t)).includes(type))
    if (wrong.length === 0) continue
    test(`${call}: ${name} of a type it does not take (${wrong.map(([t]) => t).join(', ')})`, async (t) => {
      const w = world(t)
      const count = w.store.licenseCount()
      for (const [type, value] of wrong) {
        const args = params.map(([, , valid]) => valid(w))
        args[i] = value
        let outcome
        try {
          outcome = fn(w, ...args)
        } catch (err) {
          assert.ok(!async, `${call} threw instead of rejecting: ${err}`)
          outcome = Promise.reject(err)
        }
        if (!async && !(outcome instanceof Promise)) assert.fail(`${call} accepted ${type} for ${name}`)
        const err = await Promise.resolve(outcome).then(() => assert.fail(`${call} accepted ${type} for ${name}`), (e) => e)
        assert.ok(err instanceof lb.LicenseBackupError, `${call}(${name}: ${type}) threw ${err && err.stack}`)
        const code = kind === 'value' ? 'WRONG_PROPERTY_TYPE' : 'INVALID_ARGUMENT'
        assert.equal(err.code, code, `${call}(${name}: ${type}): ${err.message}`)
        assert.ok(err.message.includes(name), `${call}(${name}: ${type}): the message names ${name}: ${err.message}`)
        assert.doesNotMatch(err.message, INTERNALS, `${call}(${name}: ${type})`)
      }
      assert.equal(w.store.licenseCount(), count, 'nothing changed')
    })
  }
}

test('every method and accessor called on something else than its object: INVALID_ARGUMENT naming it', async (t) => {
  const w = world(t)
  const classes = [lb.LicenseStore, lb.EmbeddedService, lb.RemoteService, lb.BackupRestorer, lb.Protector]
  let checked = 0
  for (const Class of classes) {
    for (const [name, desc] of Object.entries(Object.getOwnPropertyDescriptors(Class.prototype))) {
      if (name === 'constructor') continue
      for (const receiver of [undefined, {}, Class === lb.LicenseStore ? w.service : w.store]) {
        for (const fn of [desc.value, desc.get, desc.set].filter(Boolean)) {
          let err
          try {
            err = await Promise.resolve(fn.call(receiver, 'x')).then(() => null, (e) => e)
          } catch (e) {
            err = e
          }
          assert.ok(err instanceof lb.LicenseBackupError, `${Class.name}.${name} on ${receiver}: ${err && err.stack}`)
          assert.equal(err.code, 'INVALID_ARGUMENT')
          assert.doesNotMatch(err.message, INTERNALS, `${Class.name}.${name}`)
          checked++
        }
      }
    }
  }
  assert.ok(checked > 60, `only ${checked} checked`)
  // The constructors but BackupRestorer's are private: open() and the factories make the objects.
  for (const Class of classes.filter((c) => c !== lb.BackupRestorer)) {
    assert.throws(() => new Class(), (err) => err instanceof lb.LicenseBackupError && err.code === 'INVALID_ARGUMENT' && /use /.test(err.message))
  }
})
