// Type declarations of the license-backup npm package (the JavaScript layer in index.js): the
// classes. Their records, option objects, events and property accessors are declared in
// generated.d.ts, which `make generate` writes from the core's interface definition. The Node
// types (EventEmitter, Buffer, AbortSignal) come from @types/node, an optional peer dependency.
/// <reference types="node" />

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
export { setLogger } from './logging'
export type { LogLevel, LogRecord, Logger, LoggerOptions } from './logging'

/**
 * The error of every failing call and operation, and of every bad argument (INVALID_ARGUMENT,
 * naming the argument). A cancelled operation's error (code CANCELLED) is named 'AbortError',
 * as the platform names the error of an aborted signal.
 */
export declare class LicenseBackupError extends Error {
  constructor(code: ErrorCodeName, message: string, options?: { cause?: unknown })
  /** 'AbortError' when `code` is CANCELLED, else 'LicenseBackupError'. */
  readonly name: 'LicenseBackupError' | 'AbortError'
  /** The symbolic code, such as `'BACKUP_EXISTS'`. */
  readonly code: ErrorCodeName
  /** The stable number of the code, such as 204: `ErrorCode[code]`. */
  readonly errno: number
  /**
   * For CALLBACK_FAILED: what the listener threw (or its Promise rejected with). For CANCELLED
   * through an AbortSignal: the signal's reason.
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
 * The events of a BackupRestorer (`begin` ... `end`, generated) and `error`: a listener's failure
 * that could no longer change an operation's outcome (an `end` listener's, or a late rejection).
 */
export interface BackupRestorerEmitterEvents extends BackupRestorerEvents {
  error: [error: LicenseBackupError]
}

/** A listener: it may be async (a rejection of its Promise counts as a throw, see README). */
export type Listener<E extends keyof BackupRestorerEmitterEvents> = (...args: BackupRestorerEmitterEvents[E]) => void

/**
 * Backs up and restores the licenses of one store (WMCreateBackupRestorer). Listeners run on
 * the main thread, in order; a listener that throws (or whose Promise rejects while the
 * operation can still be stopped) stops the operation (CALLBACK_FAILED, with what it threw as
 * the error's `cause`). An `end` listener's failure never changes the outcome: it is emitted as
 * `error`, or is a process warning when there is no `error` listener.
 */
export declare class BackupRestorer extends EventEmitter {
  constructor(store: LicenseStore, service: EmbeddedService | RemoteService)

  on<E extends keyof BackupRestorerEmitterEvents>(event: E, listener: Listener<E>): this
  once<E extends keyof BackupRestorerEmitterEvents>(event: E, listener: Listener<E>): this
  addListener<E extends keyof BackupRestorerEmitterEvents>(event: E, listener: Listener<E>): this
  prependListener<E extends keyof BackupRestorerEmitterEvents>(event: E, listener: Listener<E>): this
  prependOnceListener<E extends keyof BackupRestorerEmitterEvents>(event: E, listener: Listener<E>): this
  off<E extends keyof BackupRestorerEmitterEvents>(event: E, listener: Listener<E>): this
  removeListener<E extends keyof BackupRestorerEmitterEvents>(event: E, listener: Listener<E>): this
  emit<E extends keyof BackupRestorerEmitterEvents>(event: E, ...args: BackupRestorerEmitterEvents[E]): boolean

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
