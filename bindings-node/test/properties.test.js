'use strict'
// Property-based tests (fast-check) of the JavaScript boundary: whatever value a caller puts in
// a field of a license, an option or a property, the package either accepts it, exactly when
// the interface definition (core/interface.json: type, range, limits) says it is valid, or
// throws a LicenseBackupError (INVALID_ARGUMENT, or the property's own code) naming it, and a
// rejected call changes nothing. The oracle below reads the definition; the package must agree.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')
const fc = require('fast-check')
const { lb, REPO, tempDir, generatedLicense } = require('./helpers.js')
const { SIGNATURES, TAKES, INTERNALS, typeOf } = require('./signatures.js')

const iface = JSON.parse(fs.readFileSync(path.join(REPO, 'core', 'interface.json'), 'utf8'))
const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase())
const fieldsOf = (record) => new Map(iface.records[record].map((f) => [camel(f.name), f]))
const RIGHTS = fieldsOf('Rights')
const LICENSE = fieldsOf('NewLicense')
const CATALOG = fieldsOf('CatalogEntry')

/** Whether the definition accepts `value` for `field` (the oracle). */
function valid(value, field) {
  let kind = field.type
  if (value === null || value === undefined) return kind.endsWith('?')
  kind = kind.replace(/\?$/, '')
  switch (kind) {
    case 'bool':
      return typeof value === 'boolean'
    case 'u32':
    case 'i64':
    case 'u64':
      return typeof value === 'number' && Number.isInteger(value) && value >= field.min && value <= field.max
    case 'string': {
      if (typeof value !== 'string' || value.includes('\0')) return false
      const size = Buffer.byteLength(value, 'utf8')
      return size >= (field.min_bytes ?? 0) && size <= (field.max_bytes ?? Infinity)
    }
    case 'bytes':
      return value instanceof Uint8Array && value.length >= field.min_len && value.length <= field.max_len
    default:
      throw new Error(`no oracle for ${kind}`)
  }
}

// Anything a caller might pass, with the interesting integers and sizes near the limits.
const BOUNDARIES = [0, 1, -1, 1.5, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 63, -(2 ** 53) + 1, -(2 ** 53), NaN, Infinity, -Infinity, -0]
const anything = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.constantFrom(...BOUNDARIES),
  fc.bigInt(),
  fc.string({ maxLength: 20 }),
  fc.constantFrom('no', 'yes', 'a\0b', '', '5'),
  fc.integer({ min: 4090, max: 4100 }).map((n) => 'é'.repeat(n >> 1) + 'a'.repeat(n & 1)),
  fc.uint8Array({ maxLength: 20 }),
  fc.integer({ min: 1020, max: 1030 }).map((n) => Buffer.alloc(n, 1)),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.object({ maxDepth: 1 }),
)
const RUNS = { numRuns: 300 }

/** The store, service and restorer the properties run against. */
function device(t) {
  const dir = tempDir(t, 'lb-fast-check-')
  const store = lb.LicenseStore.open(path.join(dir, 'device.db'))
  const restorer = new lb.BackupRestorer(store, lb.EmbeddedService.open(path.join(dir, 'service.db')))
  t.after(() => (restorer.close(), store.close()))
  return { dir, store, restorer }
}

let unique = 0

/** Calls `fn`; checks that it throws exactly when `ok` is false, with one of `codes`. */
function check(fn, ok, named, d, codes = ['INVALID_ARGUMENT']) {
  const before = d.store.licenseCount()
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof lb.LicenseBackupError, `not a LicenseBackupError: ${err}`)
    assert.ok(!ok, `rejected a valid value: ${err.message}`)
    assert.ok(codes.includes(err.code), `${err.code}: ${err.message}`)
    assert.ok(err.message.includes(named), `the message names ${named}: ${err.message}`)
    assert.equal(d.store.licenseCount(), before, 'a rejected call changed the store')
    return
  }
  assert.ok(ok, 'accepted an invalid value')
}

/** Whether a record accepts `value` for `spec`: left out (undefined), a field takes its default. */
function fieldOk(value, spec) {
  if (value === undefined) return 'default' in spec
  if (value === null) return spec.type.endsWith('?')
  return valid(value, spec)
}

test('any value in any field of a license', (t) => {
  const d = device(t)
  const fields = [...[...RIGHTS.keys()].map((f) => ['rights', f]), ...['contentKey', 'issuer', 'issuedAt'].map((f) => [null, f])]
  fc.assert(
    fc.property(fc.constantFrom(...fields), anything, ([within, field], value) => {
      const license = generatedLicense('7b', ++unique)
      const spec = within ? RIGHTS.get(field) : LICENSE.get(field)
      if (within) license.rights = { ...license.rights, [field]: value }
      else license[field] = value
      check(() => d.store.addLicense(license), fieldOk(value, spec), field, d)
    }),
    RUNS,
  )
})

test('any value in any field of a catalog entry', (t) => {
  const d = device(t)
  fc.assert(
    fc.property(fc.constantFrom(...CATALOG.keys()), anything, (field, value) => {
      const keyId = `7c000000-0000-0000-0000-${(++unique).toString(16).padStart(12, '0')}`
      check(() => d.store.setCatalogEntry(keyId, { [field]: value }), fieldOk(value, CATALOG.get(field)), field, d)
    }),
    RUNS,
  )
})

test('any value for an option, and any unknown option', (t) => {
  const d = device(t)
  const maxDevices = fieldsOf('ServiceOptions').get('maxDevices')
  fc.assert(
    fc.property(anything, fc.string({ minLength: 1, maxLength: 12 }), (value, key) => {
      const file = path.join(d.dir, `service-${++unique}.db`)
      const ok = value === null || value === undefined || valid(value, maxDevices)
      check(() => lb.EmbeddedService.open(file, { maxDevices: value }).close(), ok, 'maxDevices', d)
      const known = ['maxDevices', 'refusalUrl'].includes(key) || key === '__proto__'
      if (!known) check(() => lb.EmbeddedService.open(file, { [key]: 1 }).close(), false, key, d)
    }),
    RUNS,
  )
})

test('any value for a property', (t) => {
  const d = device(t)
  const prop = iface.properties.find((p) => p.name === 'ProgressInterval')
  fc.assert(
    fc.property(anything, (value) => {
      const number = typeof value === 'number'
      const ok = number && Number.isInteger(value) && value >= prop.min && value <= prop.max
      const codes = number ? ['INVALID_ARGUMENT'] : ['WRONG_PROPERTY_TYPE']
      check(() => d.restorer.setProperty('ProgressInterval', value), ok, 'ProgressInterval', d, codes)
    }),
    RUNS,
  )
})

test('any value for any argument of any call: accepted, or a LicenseBackupError; a type the argument does not take names it', async (t) => {
  const d = device(t)
  const service = lb.EmbeddedService.open(path.join(d.dir, 'sweep-service.db'))
  t.after(() => service.close())
  const w = { root: d.dir, store: d.store, service, restorer: d.restorer }
  // Random paths are left out: a valid one would create a file where the test runs.
  const cases = SIGNATURES.flatMap((sig) => sig[1].map((param, i) => [sig, i]).filter(([, i]) => sig[1][i][0] !== 'path'))
  const value = fc.oneof(anything, fc.constantFrom(Symbol('s'), () => {}, new Date(0), new Map(), Object.create(null), [null], [undefined]))
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...cases), value, async ([[call, params, fn, async], i], v) => {
      const [name, kind] = params[i]
      const args = params.map(([, , valid]) => valid(w))
      args[i] = v
      let err = null
      try {
        const out = fn(w, ...args)
        if (async) err = await out.then(() => null, (e) => e)
      } catch (e) {
        assert.ok(!async, `${call} threw instead of rejecting`)
        err = e
      }
      const takes = TAKES[kind]
      if (takes && !takes.includes(typeOf(v))) {
        assert.ok(err, `${call} accepted ${typeOf(v)} for ${name}`)
        assert.ok(err.message.includes(name), `the message names ${name}: ${err.message}`)
      }
      if (err) {
        assert.ok(err instanceof lb.LicenseBackupError, `${call}(${name}): ${err && err.stack}`)
        assert.ok(Object.hasOwn(lb.ErrorCode, err.code), err.code)
        assert.doesNotMatch(err.message, INTERNALS)
      }
    }),
    RUNS,
  )
})
