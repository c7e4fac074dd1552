// Type declarations of the license-backup npm package (the JavaScript layer in index.js): the
// classes. Their records, option objects, events and property accessors are declared in
// generated.d.ts, which `make generate` writes from the core's interface definition.

import { EventEmitter } from 'node:events'
import type {
  BackupRestorerEvents,
  BackupRestorerMethods,
  BackupRestorerProperties,
  EmbeddedServiceMethods,
  ErrorCodeName,
  LicenseStoreMethods,
  RemoteServiceMethods,
  RemoteServiceOptions,
  ServiceOptions,
  StoreOptions,
} from './generated'

// The generated types: records, option objects, events and their payloads.
export { ErrorCode, EVENTS } from './generated'
export type * from './generated'
// setLogger and its record types (logging.d.ts).
export { setLogger, LogLevel, LogRecord, Logger, LoggerOptions } from './logging'

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

/** What `Protector.host` takes: functions of the application on Buffers (they run on the main thread). */
export interface HostProtector {
  /** Wraps the 32-byte seed; only `unwrap` of the same protector can turn the result back. */
  wrap(seed: Buffer): Uint8Array
  /** The seed, or null when `wrapped` was not wrapped by this protector (PROTECTOR_MISMATCH). */
  unwrap(wrapped: Buffer): Uint8Array | null
}

/**
 * Who holds the secret seed of a store or a service. `Protector.unprotected()` (the default)
 * keeps it in clear in the file: whoever copies the file has every content key it seals.
 */
export declare class Protector {
  private constructor()
  /** The seed in clear in the file. */
  static unprotected(): Protector
  /** The platform keystore (Secret Service, Keychain, Credential Manager), entries under `service`. */
  static keyring(service?: string): Protector
  /** The application's own functions, for example built on Electron's `safeStorage`. */
  static host(protector: HostProtector): Protector
  /** 'unprotected', 'keyring' or 'host'. */
  readonly kind: 'unprotected' | 'keyring' | 'host'
}

/** The licenses on this device; content keys are sealed to the device key at rest. */
export declare class LicenseStore {
  private constructor()
  /** Opens the store at `path`, creating it (with a fresh device identity) if needed. */
  static open(path: string, options?: StoreOptions): LicenseStore
  /** Whether close() was called. */
  readonly closed: boolean
  /** Releases the native store handle now (a restorer keeps its own until it is closed). */
  close(): void
}

/** The in-process License Management Service, its key pair and quota ledger in a local file. */
export declare class EmbeddedService {
  private constructor()
  /** Opens (or creates) the ledger at `path`. */
  static open(path: string, options?: ServiceOptions): EmbeddedService
  /** Whether close() was called. */
  readonly closed: boolean
  /** Releases the native handle now. */
  close(): void
}

/** A License Management Service over HTTPS (docs/service-protocol.md): a content provider's server. */
export declare class RemoteService {
  private constructor()
  /**
   * A client of the service at `url` (`https://host[:port][/prefix]`; `http://` only for a
   * loopback address). Nothing is sent until a call needs the service.
   */
  static open(url: string, options?: RemoteServiceOptions): RemoteService
}

/**
 * Backs up and restores the licenses of one store (WMCreateBackupRestorer). Listeners run on
 * the main thread, in order; a listener that throws stops the operation (CALLBACK_FAILED, with
 * what it threw as the error's `cause`).
 */
export declare class BackupRestorer extends EventEmitter {
  constructor(store: LicenseStore, service: EmbeddedService | RemoteService)

  on<E extends keyof BackupRestorerEvents>(event: E, listener: (...args: BackupRestorerEvents[E]) => void): this
  once<E extends keyof BackupRestorerEvents>(event: E, listener: (...args: BackupRestorerEvents[E]) => void): this
  addListener<E extends keyof BackupRestorerEvents>(event: E, listener: (...args: BackupRestorerEvents[E]) => void): this
  prependListener<E extends keyof BackupRestorerEvents>(event: E, listener: (...args: BackupRestorerEvents[E]) => void): this
  prependOnceListener<E extends keyof BackupRestorerEvents>(event: E, listener: (...args: BackupRestorerEvents[E]) => void): this
  off<E extends keyof BackupRestorerEvents>(event: E, listener: (...args: BackupRestorerEvents[E]) => void): this
  removeListener<E extends keyof BackupRestorerEvents>(event: E, listener: (...args: BackupRestorerEvents[E]) => void): this
  emit<E extends keyof BackupRestorerEvents>(event: E, ...args: BackupRestorerEvents[E]): boolean

  /** Whether close() was called. */
  readonly closed: boolean
  /** Cancels any running operation and releases native resources. */
  close(): void
}

/** The methods of each class and the property accessors, generated from the core's definition. */
export interface LicenseStore extends LicenseStoreMethods {}
export interface EmbeddedService extends EmbeddedServiceMethods {}
export interface RemoteService extends RemoteServiceMethods {}
export interface BackupRestorer extends BackupRestorerMethods, BackupRestorerProperties {}

/** WMCreateBackupRestorer: the same as `new BackupRestorer(store, service)`. */
export declare function createBackupRestorer(store: LicenseStore, service: EmbeddedService | RemoteService): BackupRestorer
