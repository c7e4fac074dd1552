'use strict'
// Validation of arguments before they reach the native layer: every value is checked against
// its spec in generated.js (written from the core's interface definition), so each binding
// rejects the same inputs with the same code and a message naming the argument. A value that
// passes is returned in the form the native layer takes (defaults filled in, nulls dropped).

const { RECORDS, PARAMS, PROPERTIES } = require('./generated.js')
// What went wrong: the core's code and a message naming the argument.
const { LicenseBackupError } = require('./errors.js')

/** A short description of a JavaScript value for a message. */
function describe(value) {
  switch (typeof value) {
    case 'string':
      return value.length <= 40 ? JSON.stringify(value) : `a string of ${value.length} characters`
    case 'bigint':
      return `${value}n`
    case 'number':
    case 'boolean':
      return String(value)
    case 'undefined':
      return 'undefined'
    case 'function':
      return 'a function'
    default:
      if (value === null) return 'null'
      if (Array.isArray(value)) return `an array of ${value.length}`
      if (value instanceof Uint8Array) return `${value.length} bytes`
      return 'an object'
  }
}

function invalid(path, spec, value, got = describe(value)) {
  return new LicenseBackupError('INVALID_ARGUMENT', `${path} must be ${spec.expect}, not ${got}`)
}

const isPlainObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)

/** A key of `record` that is not one of `known`, with the closest known key as a hint. */
function unknownKey(path, value, known) {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue
    const near = known.find((k) => k.toLowerCase() === key.toLowerCase())
    const hint = near ? ` (did you mean ${near}?)` : ` (known: ${known.join(', ')})`
    return new LicenseBackupError('INVALID_ARGUMENT', `${path} has no field ${key}${hint}`)
  }
  return null
}

/** `value` checked against `spec` at `path`; returns the native form. */
function checkValue(value, spec, path) {
  switch (spec.kind) {
    case 'bool':
      if (typeof value !== 'boolean') throw invalid(path, spec, value)
      return value
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < spec.min || value > spec.max) {
        throw invalid(path, spec, value)
      }
      return value
    case 'text': {
      if (typeof value !== 'string') throw invalid(path, spec, value)
      const bytes = Buffer.byteLength(value, 'utf8')
      if (bytes < spec.min || bytes > spec.max) throw invalid(path, spec, value, `${bytes} bytes`)
      if (value.includes('\0')) throw new LicenseBackupError('INVALID_ARGUMENT', `${path} must not contain a NUL character`)
      return value
    }
    case 'bytes':
      if (!(value instanceof Uint8Array)) throw invalid(path, spec, value)
      if (value.length < spec.min || value.length > spec.max) throw invalid(path, spec, value)
      return value
    case 'seconds':
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > spec.max) throw invalid(path, spec, value)
      if (spec.positive && value === 0) throw invalid(path, spec, value)
      return value
    case 'keyId':
      // The core parses it (INVALID_ARGUMENT for a malformed one).
      if (typeof value !== 'string') throw invalid(path, spec, value)
      return value
    case 'optional':
      return value === null || value === undefined ? undefined : checkValue(value, spec.of, path)
    case 'list':
      if (!Array.isArray(value)) throw invalid(path, spec, value)
      return value.map((v, i) => checkValue(v, spec.of, `${path}[${i}]`))
    case 'record':
      return checkRecord(value, spec.record, path, spec)
    case 'object':
      // An object of the JavaScript layer's own (a Protector): index.js checks it.
      return value
    default:
      throw new Error(`check.js cannot check a ${spec.kind}`)
  }
}

/**
 * A record (a plain object with only the record's fields) checked field by field; a field
 * left out (or undefined) takes its default, and is an error when it has none.
 */
function checkRecord(value, name, path, spec = { expect: `a ${name}` }) {
  if (!isPlainObject(value)) throw invalid(path, spec, value)
  const fields = RECORDS[name]
  const bad = unknownKey(path, value, fields.map(([key]) => key))
  if (bad) throw bad
  const out = {}
  for (const [key, fieldSpec, fallback] of fields) {
    const given = value[key]
    if (given === undefined && fallback === undefined) {
      throw new LicenseBackupError('INVALID_ARGUMENT', `${path}.${key} is missing: it must be ${fieldSpec.expect}`)
    }
    const checked = checkValue(given === undefined ? fallback : given, fieldSpec, `${path}.${key}`)
    if (checked !== undefined && checked !== null) out[key] = checked
  }
  return out
}

/**
 * An options object (`undefined` or `null`: every default) checked against record `name`; a
 * field that is undefined or null takes its default. `extra` names keys the JavaScript layer
 * handles itself (`signal`). Returns the fields' values in order, then `extra`'s.
 */
function checkOptions(value, name, path = 'options', extra = []) {
  if (value === undefined || value === null) value = {}
  if (!isPlainObject(value)) throw invalid(path, { expect: `an options object (${name})` }, value)
  const fields = RECORDS[name]
  const bad = unknownKey(path, value, [...fields.map(([key]) => key), ...extra])
  if (bad) throw bad
  const out = fields.map(([key, spec, fallback]) => {
    const given = value[key] ?? fallback
    return checkValue(given, spec, `${path}.${key}`)
  })
  return [...out, ...extra.map((key) => value[key])]
}

/**
 * A property value: a string, a number or a boolean (the property's own type and range are
 * checked by the core, a number by `number_value`); anything else is WRONG_PROPERTY_TYPE, as
 * the core reports a value of another type.
 */
function checkPropertyValue(name, value) {
  if (typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') return value
  const prop = PROPERTIES.find((p) => p.name === name)
  const expected = { string: 'String', u32: 'U32', bool: 'Bool' }[prop?.type] ?? 'known'
  throw new LicenseBackupError('WRONG_PROPERTY_TYPE', `property ${name} takes a ${expected} value, not ${describe(value)}`)
}

/** The positional arguments of operation `key` (`'LicenseStore.addLicense'`), checked. */
function checkParams(key, args) {
  return PARAMS[key].map(([name, spec], i) => checkValue(args[i], spec, name))
}

module.exports = { checkValue, checkRecord, checkOptions, checkParams, checkPropertyValue, describe }
