'use strict'
// Every entry point of the package with its arguments, for the bad-input sweep
// (bad-inputs.test.js) and the property-based tests (properties.test.js): each argument's kind,
// the JavaScript types that kind takes, and a valid value.

const path = require('node:path')
const { lb } = require('./helpers.js')

/** One value of every JavaScript type. */
const SAMPLES = [
  ['undefined', undefined], ['null', null], ['boolean', true], ['number', 42], ['bigint', 1n], ['string', 'text'],
  ['symbol', Symbol('s')], ['function', () => {}], ['object', {}], ['array', []],
]
// The JavaScript types each kind of argument takes (the samples of these types are left out).
const TAKES = {
  text: ['string'], bool: ['boolean'], int: ['number'], record: ['object'], list: ['array'],
  options: ['undefined', 'null', 'object'], optionalText: ['undefined', 'null', 'string'], object: [], value: ['string', 'number', 'boolean'],
}
const KEY = '01234567-89ab-cdef-0123-456789abcdef'
const LICENSE = () => ({ keyId: KEY, contentKey: Buffer.alloc(16, 7), rights: {}, issuer: 'text', issuedAt: 1 })
// [call, [[argument, kind, valid value (a function of the world)], ...], call it, async]
const SIGNATURES = [
  ['LicenseStore.open', [['path', 'text', (w) => path.join(w.root, 'x.db')], ['options', 'options', () => ({})]], (w, ...a) => lb.LicenseStore.open(...a).close()],
  ['LicenseStore.addLicense', [['license', 'record', LICENSE], ['options', 'options', () => ({})]], (w, ...a) => w.store.addLicense(...a)],
  ['LicenseStore.addLicenses', [['licenses', 'list', () => [LICENSE()]], ['options', 'options', () => ({})]], (w, ...a) => w.store.addLicenses(...a)],
  ['LicenseStore.getLicense', [['keyId', 'text', () => KEY]], (w, ...a) => w.store.getLicense(...a)],
  ['LicenseStore.removeLicense', [['keyId', 'text', () => KEY]], (w, ...a) => w.store.removeLicense(...a)],
  ['LicenseStore.contentKey', [['keyId', 'text', () => KEY]], (w, ...a) => w.store.contentKey(...a)],
  ['LicenseStore.updateRights', [['keyId', 'text', () => KEY], ['rights', 'record', () => ({})]], (w, ...a) => w.store.updateRights(...a)],
  ['LicenseStore.usePlay', [['keyId', 'text', () => KEY]], (w, ...a) => w.store.usePlay(...a)],
  ['LicenseStore.setCatalogEntry', [['keyId', 'text', () => KEY], ['entry', 'record', () => ({})]], (w, ...a) => w.store.setCatalogEntry(...a)],
  ['LicenseStore.catalogEntry', [['keyId', 'text', () => KEY]], (w, ...a) => w.store.catalogEntry(...a)],
  ['LicenseStore.removeCatalogEntry', [['keyId', 'text', () => KEY]], (w, ...a) => w.store.removeCatalogEntry(...a)],
  ['EmbeddedService.open', [['path', 'text', (w) => path.join(w.root, 's.db')], ['options', 'options', () => ({})]], (w, ...a) => lb.EmbeddedService.open(...a).close()],
  ['EmbeddedService.setOnline', [['online', 'bool', () => true]], (w, ...a) => w.service.setOnline(...a)],
  ['RemoteService.open', [['url', 'text', () => 'https://lms.example'], ['options', 'options', () => ({})]], (w, ...a) => lb.RemoteService.open(...a)],
  ['BackupRestorer', [['store', 'object', (w) => w.store], ['service', 'object', (w) => w.service]], (w, ...a) => new lb.BackupRestorer(...a).close()],
  ['createBackupRestorer', [['store', 'object', (w) => w.store], ['service', 'object', (w) => w.service]], (w, ...a) => lb.createBackupRestorer(...a).close()],
  ['BackupRestorer.setProperty', [['name', 'text', () => 'BackupPath'], ['BackupPath', 'value', (w) => w.root]], (w, ...a) => w.restorer.setProperty(...a)],
  ['BackupRestorer.getProperty', [['name', 'text', () => 'BackupPath']], (w, ...a) => w.restorer.getProperty(...a)],
  ['BackupRestorer.propertyByIndex', [['index', 'int', () => 0]], (w, ...a) => w.restorer.propertyByIndex(...a)],
  ['BackupRestorer.removeProperty', [['name', 'text', () => 'BackupPath']], (w, ...a) => w.restorer.removeProperty(...a)],
  ['BackupRestorer.restoreQuota', [['options', 'options', () => ({})]], (w, ...a) => w.restorer.restoreQuota(...a)],
  ['BackupRestorer.backupLicenses', [['options', 'options', () => ({})]], (w, ...a) => w.restorer.backupLicenses(...a), 'async'],
  ['BackupRestorer.restoreLicenses', [['options', 'options', () => ({})]], (w, ...a) => w.restorer.restoreLicenses(...a), 'async'],
  ['Protector.keyring', [['service', 'optionalText', () => 'svc']], (w, ...a) => lb.Protector.keyring(...a)],
  ['Protector.host', [['protector', 'object', () => ({ wrap: (b) => b, unwrap: (b) => b })]], (w, ...a) => lb.Protector.host(...a)],
  ['LicenseBackupError', [['code', 'text', () => 'INTERNAL'], ['message', 'any', () => 'm']], (w, ...a) => new lb.LicenseBackupError(...a)],
]
/** The JavaScript type of `value`, as TAKES names them. */
function typeOf(value) {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  return typeof value
}

/** What a message must never show: the binding's or the engine's internals. */
const INTERNALS = /Failed to convert|napi|non of these types|Cannot read|is not a function|private member|undefined \(reading/i

module.exports = { SAMPLES, TAKES, SIGNATURES, INTERNALS, typeOf }
