// Type declarations of the license-backup npm package (the JavaScript layer in index.js).
// The record types come from native.d.ts, which `napi build` generates from the Rust source; the
// error codes from generated.d.ts, which `make generate` writes from the core's definition.

import { EventEmitter } from 'node:events'
import type {
  CatalogEntry,
  License,
  NewLicense,
  PropertyEntry,
  Quota,
  Rights,
  Summary,
} from './native'

export type { CatalogEntry, License, NewLicense, PropertyEntry, Quota, Rights, Summary }

import type { ErrorCodeName } from './generated'
export { ErrorCode } from './generated'
export type { ErrorCodeName } from './generated'

/** The error of every failing call and operation. */
export declare class LicenseBackupError extends Error {
  constructor(code: ErrorCodeName, message: string, options?: { cause?: unknown })
  readonly name: 'LicenseBackupError'
  /** The symbolic code, such as `'BACKUP_EXISTS'`. */
  readonly code: ErrorCodeName
  /** The stable number of the code, such as 204: `ErrorCode[code]`. */
  readonly errno: number
  /**
   * For CALLBACK_FAILED: what the listener threw. For CANCELLED through an AbortSignal: the
   * signal's reason.
   */
  readonly cause?: unknown
}

/** Which operation an event belongs to. */
export type Operation = 'backup' | 'restore'

/** What every event carries besides its own fields (`event_metadata` in core/interface.json). */
export interface EventMetadata {
  /**
   * When the core emitted the event, in nanoseconds on the monotonic clock of
   * `process.hrtime.bigint()`: `process.hrtime.bigint() - event.emittedNs` is how long the
   * event waited for delivery. A bigint, so it stays exact (a number would lose nanoseconds
   * once the clock passes 2^53 ns, about 104 days of uptime).
   */
  emittedNs: bigint
}

/** `begin`: the operation's work begins (for a restore: after the service has answered). */
export interface BeginEvent extends EventMetadata {
  operation: Operation
}

/** `progress`: `done` of `total` licenses processed, every `progressInterval` licenses and at the end. */
export interface ProgressEvent extends EventMetadata {
  operation: Operation
  done: number
  total: number
}

/** `restrictedLicense`: a license that may not be backed up, with its catalog title if known. */
export interface RestrictedLicenseEvent extends EventMetadata {
  /** Lowercase hyphenated UUID. */
  keyId: string
  /** The title from the application's catalog, or null. */
  title: string | null
}

/** `connecting`: a restore is connecting to the License Management Service. */
export interface ConnectingEvent extends EventMetadata {}

/** `disconnecting`: the service has answered; the restore disconnects from it. */
export interface DisconnectingEvent extends EventMetadata {}

/** `refused`: the service refused the restore; show `message` and offer `url`. */
export interface RefusedEvent extends EventMetadata {
  code: ErrorCodeName
  errno: number
  message: string
  url: string
}

/** `end`: the operation ended; always the last event, exactly once per operation. */
export interface EndEvent extends EventMetadata {
  operation: Operation
  /** What it did, when it completed; null when it failed. */
  summary: Summary | null
  /** Why it failed (CANCELLED when cancelled); null when it completed. */
  error: LicenseBackupError | null
}

/** The events of a BackupRestorer and their payloads. */
export interface BackupRestorerEvents {
  begin: [event: BeginEvent]
  progress: [event: ProgressEvent]
  restrictedLicense: [event: RestrictedLicenseEvent]
  connecting: [event: ConnectingEvent]
  disconnecting: [event: DisconnectingEvent]
  refused: [event: RefusedEvent]
  end: [event: EndEvent]
}

/** The names of the events a BackupRestorer emits. */
export declare const EVENTS: ReadonlyArray<keyof BackupRestorerEvents>

/** The licenses on this device; content keys are sealed to the device key at rest. */
export declare class LicenseStore {
  private constructor()
  /** Opens the store at `path`, creating it (with a fresh device identity) if needed. */
  static open(path: string): LicenseStore
  /** This device's identity (32 hex digits); a restore with `individualize` changes it. */
  deviceId(): string
  /** Adds a license; with `replace`, replaces one with the same key ID (else LICENSE_EXISTS). */
  addLicense(license: NewLicense, options?: { replace?: boolean }): void
  /** Adds many licenses in one transaction: all of them, or none. */
  addLicenses(licenses: NewLicense[], options?: { replace?: boolean }): void
  /** The license with this key ID (without its content key), or null. */
  getLicense(keyId: string): License | null
  /** Every license, ordered by key ID. */
  listLicenses(): License[]
  /** Removes a license; returns whether there was one. */
  removeLicense(keyId: string): boolean
  /** How many licenses the store holds. */
  licenseCount(): number
  /** The content key, in a new Buffer (LICENSE_NOT_FOUND if there is no such license). */
  contentKey(keyId: string): Buffer
  /** Sets (replaces) the catalog entry of a key ID. */
  setCatalogEntry(keyId: string, entry: CatalogEntry): void
  /** The catalog entry of a key ID, or null. */
  catalogEntry(keyId: string): CatalogEntry | null
  /** Removes the catalog entry of a key ID; returns whether there was one. */
  removeCatalogEntry(keyId: string): boolean
  /** Checks the database and every content key; returns how many licenses were checked. */
  verify(): number
  /** Whether close() was called. */
  readonly closed: boolean
  /** Releases the native store handle now (a restorer keeps its own until it is closed). */
  close(): void
}

/** Options of EmbeddedService.open. */
export interface ServiceOptions {
  /** Distinct devices a license may live on (default 4). */
  maxDevices?: number
  /** The page a refusal points to. */
  refusalUrl?: string
}

/** The in-process License Management Service, its key pair and quota ledger in a local file. */
export declare class EmbeddedService {
  private constructor()
  /** Opens (or creates) the ledger at `path`. */
  static open(path: string, options?: ServiceOptions): EmbeddedService
  /** Takes the service offline (SERVICE_UNAVAILABLE) or back online. */
  setOnline(online: boolean): void
  /** Whether close() was called. */
  readonly closed: boolean
  /** Releases the native handle now. */
  close(): void
}

/** Options of backupLicenses (the core's BackupFlags, plus cancellation). */
export interface BackupOptions {
  /** Replace an archive already in the folder (else BACKUP_EXISTS, and it is left untouched). */
  overwrite?: boolean
  /** Aborting cancels the backup: the Promise rejects with CANCELLED after `end`. */
  signal?: AbortSignal
}

/** Options of restoreLicenses (the core's RestoreFlags, plus cancellation). */
export interface RestoreOptions {
  /** Give this device a fresh identity and re-bind every license to it. */
  individualize?: boolean
  /** Replace licenses the device already has with their archived copies. */
  replaceExisting?: boolean
  /** Aborting cancels the restore: the Promise rejects with CANCELLED after `end`. */
  signal?: AbortSignal
}

/** A property value: string (paths), number (an unsigned 32-bit integer) or boolean. */
export type PropertyValue = string | number | boolean

/**
 * Backs up and restores the licenses of one store (WMCreateBackupRestorer). Listeners run on
 * the main thread, in order; a listener that throws stops the operation (CALLBACK_FAILED, with
 * what it threw as the error's `cause`).
 */
export declare class BackupRestorer extends EventEmitter {
  constructor(store: LicenseStore, service: EmbeddedService)

  on<E extends keyof BackupRestorerEvents>(event: E, listener: (...args: BackupRestorerEvents[E]) => void): this
  once<E extends keyof BackupRestorerEvents>(event: E, listener: (...args: BackupRestorerEvents[E]) => void): this
  addListener<E extends keyof BackupRestorerEvents>(event: E, listener: (...args: BackupRestorerEvents[E]) => void): this
  prependListener<E extends keyof BackupRestorerEvents>(event: E, listener: (...args: BackupRestorerEvents[E]) => void): this
  prependOnceListener<E extends keyof BackupRestorerEvents>(event: E, listener: (...args: BackupRestorerEvents[E]) => void): this
  off<E extends keyof BackupRestorerEvents>(event: E, listener: (...args: BackupRestorerEvents[E]) => void): this
  removeListener<E extends keyof BackupRestorerEvents>(event: E, listener: (...args: BackupRestorerEvents[E]) => void): this
  emit<E extends keyof BackupRestorerEvents>(event: E, ...args: BackupRestorerEvents[E]): boolean

  /** Sets a property (UNKNOWN_PROPERTY, WRONG_PROPERTY_TYPE, INVALID_ARGUMENT). */
  setProperty(name: string, value: PropertyValue): void
  /** A property's value, or null when it is not set. */
  getProperty(name: string): PropertyValue | null
  /** The index-th property set (INVALID_ARGUMENT when out of range). */
  propertyByIndex(index: number): PropertyEntry
  /** How many properties are set. */
  propertyCount(): number
  /** Removes a property; returns whether it was set. */
  removeProperty(name: string): boolean
  /** Removes every property. */
  removeAllProperties(): void
  /** The BackupPath property: the folder a backup writes to; null removes it. */
  backupPath: string | null
  /** The RestorePath property: the folder a restore reads from; null removes it. */
  restorePath: string | null
  /** The ProgressInterval property (default 100); null removes it. */
  progressInterval: number | null

  /** Backs up to backupPath; resolves after the `end` event with the summary. */
  backupLicenses(options?: BackupOptions): Promise<Summary>
  /** Restores from restorePath through the service; resolves after `end` with the summary. */
  restoreLicenses(options?: RestoreOptions): Promise<Summary>
  /** Cancels the running backup, if any (its Promise rejects with CANCELLED). */
  cancelLicenseBackup(): void
  /** Cancels the running restore, if any. */
  cancelLicenseRestore(): void
  /** What the restore quota allows for the archive in restorePath onto this device. */
  restoreQuota(): Quota
  /** Whether close() was called. */
  readonly closed: boolean
  /** Cancels any running operation and releases native resources. */
  close(): void
}

/** WMCreateBackupRestorer: the same as `new BackupRestorer(store, service)`. */
export declare function createBackupRestorer(store: LicenseStore, service: EmbeddedService): BackupRestorer
