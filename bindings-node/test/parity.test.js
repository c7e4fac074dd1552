'use strict'
// Parity with core/interface.json: every error code, event (with its fields), property,
// record field and operation has its idiomatic counterpart in the installed package, both at
// run time and in the shipped TypeScript declarations.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')
const { lb, REPO, world } = require('./helpers.js')

const iface = JSON.parse(fs.readFileSync(path.join(REPO, 'core', 'interface.json'), 'utf8'))
const pkgDir = path.dirname(require.resolve('license-backup/package.json'))
// The package's declarations: the hand-written index.d.ts and the generated.d.ts it re-exports.
const dts = ['index.d.ts', 'generated.d.ts'].map((f) => fs.readFileSync(path.join(pkgDir, f), 'utf8')).join('\n')
const nativeDts = fs.readFileSync(path.join(pkgDir, 'native.d.ts'), 'utf8')

const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase())
const lowerFirst = (s) => s[0].toLowerCase() + s.slice(1)

/** The member names of `interface Name [extends Base, ...] { ... }` in a declaration file, inherited ones included. */
function interfaceFields(text, name) {
  const m = new RegExp(`export interface ${name}(?: extends ([\\w, ]+))? \\{(\\}|[\\s\\S]*?\\n\\})`).exec(text)
  assert.ok(m, `interface ${name} is not declared`)
  const body = m[2].replace(/\/\*\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '')
  const fields = new Set([...body.matchAll(/^\s*(?:readonly\s+)?(\w+)\??:/gm)].map((x) => x[1]))
  for (const base of m[1] ? m[1].split(',').map((b) => b.trim()) : []) {
    for (const f of interfaceFields(text, base)) fields.add(f)
  }
  return fields
}

test('every error code: ErrorCode constant, errno, and its declaration', () => {
  assert.deepEqual(Object.keys(lb.ErrorCode).sort(), iface.errors.map((e) => e.name).sort())
  for (const { name, number } of iface.errors) {
    assert.equal(lb.ErrorCode[name], number, name)
    assert.equal(new lb.LicenseBackupError(name, 'x').errno, number)
    assert.match(dts, new RegExp(`\\b${name}: ${number}\\b`), `the declarations say ${name}: ${number}`)
  }
})

// Payload fields that the JavaScript event carries in another, documented, form.
const EVENT_FIELD_FORM = {
  end: { error: 'error', licenses: 'summary', restricted: 'summary', skipped: 'summary' },
}

test('every event: emitted name, typed listener, every field in its payload type', () => {
  assert.deepEqual([...lb.EVENTS].sort(), iface.events.map((e) => camel(e.name)).sort())
  const eventsMap = interfaceFields(dts, 'BackupRestorerEvents')
  for (const event of iface.events) {
    const name = camel(event.name)
    assert.ok(eventsMap.has(name), `BackupRestorerEvents has '${name}'`)
    const typeName = `${name[0].toUpperCase()}${name.slice(1)}Event`
    assert.match(dts, new RegExp(`${name}: \\[event: ${typeName}\\]`), `'${name}' listeners get a ${typeName}`)
    const fields = interfaceFields(dts, typeName)
    for (const field of event.fields) {
      const form = EVENT_FIELD_FORM[name]?.[field.name] ?? camel(field.name)
      assert.ok(fields.has(form), `${typeName} declares ${form} (for ${event.name}.${field.name})`)
    }
  }
  // The end event's counts are the Summary's.
  for (const f of ['licenses', 'restricted', 'skipped']) assert.ok(interfaceFields(nativeDts, 'Summary').has(f))
})

test('every event metadata field: declared on every event type, carried by every event', async (t) => {
  assert.ok(iface.event_metadata.length > 0)
  const eventsMap = interfaceFields(dts, 'BackupRestorerEvents')
  const metadata = interfaceFields(dts, 'EventMetadata')
  for (const field of iface.event_metadata) {
    assert.ok(metadata.has(camel(field.name)), `EventMetadata declares ${camel(field.name)}`)
    assert.match(dts, new RegExp(`\\n  ${camel(field.name)}: ${field.type === 'u64' ? 'bigint' : '\\w+'}\\n`), `${camel(field.name)} is typed`)
  }
  for (const name of eventsMap) {
    const fields = interfaceFields(dts, `${name[0].toUpperCase()}${name.slice(1)}Event`)
    for (const field of iface.event_metadata) assert.ok(fields.has(camel(field.name)), `${name} events declare ${camel(field.name)}`)
  }
  const a = world(t, { count: 2, restricted: [1], maxDevices: 1 })
  const payloads = []
  for (const name of lb.EVENTS) a.restorer.on(name, (e) => payloads.push([name, e]))
  await a.restorer.backupLicenses()
  await a.restorer.restoreLicenses()
  const b = lb.createBackupRestorer(lb.LicenseStore.open(path.join(a.dir, 'B.db')), a.service)
  t.after(() => b.close())
  b.restorePath = a.backup
  b.on('refused', (e) => payloads.push(['refused', e]))
  await assert.rejects(b.restoreLicenses())
  // Seven kinds here (the scenarios reach every kind the interface has: scenarios.test.js).
  const seen = new Set(payloads.map(([name]) => name))
  assert.ok([...seen].every((name) => lb.EVENTS.includes(name)) && seen.size >= 7, 'the kinds of event observed')
  for (const [name, payload] of payloads) {
    for (const field of iface.event_metadata) {
      const value = payload[camel(field.name)]
      assert.equal(typeof value, field.type === 'u64' ? 'bigint' : typeof value, `'${name}' carries ${camel(field.name)}`)
      if (field.type === 'u64') assert.ok(value > 0n, `'${name}'.${camel(field.name)} is set`)
    }
  }
})

test('every event payload carries its fields at run time (every kind: scenarios.test.js)', async (t) => {
  const a = world(t, { count: 2, restricted: [1], maxDevices: 1 })
  const payloads = {}
  for (const name of lb.EVENTS) a.restorer.on(name, (e) => (payloads[name] ??= e))
  await a.restorer.backupLicenses()
  await a.restorer.restoreLicenses()
  const b = lb.createBackupRestorer(lb.LicenseStore.open(path.join(a.dir, 'B.db')), a.service)
  t.after(() => b.close())
  b.restorePath = a.backup
  b.on('refused', (e) => (payloads.refused = e))
  await assert.rejects(b.restoreLicenses())
  assert.ok(Object.keys(payloads).length >= 7, 'seven kinds of event observed')
  for (const event of iface.events.filter((e) => payloads[camel(e.name)])) {
    const name = camel(event.name)
    for (const field of event.fields) {
      const form = EVENT_FIELD_FORM[name]?.[field.name] ?? camel(field.name)
      assert.ok(form in payloads[name], `'${name}' payload has ${form}`)
      if (form === 'summary') assert.ok(field.name in payloads[name].summary, `end summary has ${field.name}`)
    }
  }
})

test('every property: a name BackupRestorer accepts and an accessor', (t) => {
  const { restorer } = world(t)
  for (const { name, type } of iface.properties) {
    const accessor = lowerFirst(name)
    const desc = Object.getOwnPropertyDescriptor(lb.BackupRestorer.prototype, accessor)
    assert.ok(desc && desc.get && desc.set, `BackupRestorer has a ${accessor} accessor`)
    assert.match(dts, new RegExp(`\\n  ${accessor}: (string|number|boolean) \\| null`), `index.d.ts declares ${accessor}`)
    const value = { string: '/tmp', u32: 3, bool: true }[type]
    restorer.setProperty(name, value)
    assert.equal(restorer[accessor], value)
  }
})

// Where a record is represented otherwise in JavaScript.
const RECORD_FORM = {
  BackupFlags: ['BackupOptions', dts],
  RestoreFlags: ['RestoreOptions', dts],
  ServiceOptions: ['ServiceOptions', dts],
  StoreOptions: ['StoreOptions', dts],
  RemoteServiceOptions: ['RemoteServiceOptions', dts],
  AddOptions: ['AddOptions', dts],
  QuotaOptions: ['QuotaOptions', dts],
  PropertyEntry: ['PropertyEntry', dts],
}
const INLINE = new Set()

test('every record field, camelCase, in the declarations', () => {
  for (const [record, fields] of Object.entries(iface.records)) {
    if (INLINE.has(record)) continue
    const [name, text] = RECORD_FORM[record] ?? [record, nativeDts]
    const declared = interfaceFields(text, name)
    for (const field of fields) assert.ok(declared.has(camel(field.name)), `${name} declares ${camel(field.name)}`)
    // The public declaration file re-exports the generated records.
    if (!RECORD_FORM[record]) assert.match(dts, new RegExp(`\\b${record}\\b`), `index.d.ts exports ${record}`)
  }
})

// Operations of the core's Operation handle live on in JavaScript idiom.
const OPERATION_FORM = {
  'Operation.wait': 'the Promise backupLicenses()/restoreLicenses() return',
  'Operation.cancel': 'AbortSignal (options.signal) and cancelLicenseBackup()/cancelLicenseRestore()',
  'Operation.is_finished': "the 'end' event and the settled Promise",
  'Protector.label': "the kind getter ('unprotected', 'keyring' or 'host')",
}

test('every operation: a method (or its documented JavaScript form)', () => {
  const classes = {
    LicenseStore: lb.LicenseStore,
    EmbeddedService: lb.EmbeddedService,
    RemoteService: lb.RemoteService,
    BackupRestorer: lb.BackupRestorer,
  }
  for (const op of iface.operations) {
    const key = `${op.object}.${op.name}`
    if (OPERATION_FORM[key]) continue
    if (op.object === 'Protector') {
      // Static factories: Protector.unprotected(), .keyring(service), .host({ wrap, unwrap }).
      assert.equal(typeof lb.Protector[camel(op.name)], 'function', `Protector.${camel(op.name)}`)
      assert.match(dts, new RegExp(`static ${camel(op.name)}\\(`), `index.d.ts declares Protector.${camel(op.name)}`)
      continue
    }
    const cls = classes[op.object]
    assert.ok(cls, `no class for ${op.object}`)
    if (op.name === 'open') {
      assert.equal(typeof cls.open, 'function', `${op.object}.open`)
    } else if (op.name === 'create') {
      assert.equal(typeof lb.createBackupRestorer, 'function')
    } else if (op.call === 'getter') {
      const name = camel(op.name)
      assert.ok(Object.getOwnPropertyDescriptor(cls.prototype, name)?.get, `${op.object}.prototype.${name} is a getter`)
      assert.match(dts, new RegExp(`\\n  readonly ${name}: `), `the declarations say ${op.object}.${name}`)
    } else {
      const method = camel(op.name)
      assert.equal(typeof cls.prototype[method], 'function', `${op.object}.prototype.${method}`)
      assert.match(dts, new RegExp(`\\n  ${method}\\(`), `the declarations say ${op.object}.${method}`)
    }
  }
})
