// Type declarations of logging.js: the engine's diagnostics for the application's logger.

/** How severe a record is, most severe first. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace'

/** One record of the engine's log. It never holds a content key, a wrapped key or a token. */
export interface LogRecord {
  level: LogLevel
  /** The engine module that logged it, such as `license_backup::operation`. */
  target: string
  message: string
  /** The record's structured values (`operation`, `outcome`, `licenses`, ...), as text. */
  fields: Record<string, string>
}

/** A function called with each record, or a console-like object (`console`, pino, winston). */
export type Logger =
  | ((record: LogRecord) => void)
  | {
      error(message: string, record: LogRecord): void
      warn(message: string, record: LogRecord): void
      info(message: string, record: LogRecord): void
      debug(message: string, record: LogRecord): void
      trace?(message: string, record: LogRecord): void
    }

export interface LoggerOptions {
  /** The most verbose level delivered; `'info'` unless given. */
  level?: LogLevel
}

/**
 * Sends the engine's records at `options.level` and above to `logger` on the main thread, after
 * the call that logged them; `null` stops logging. Nothing is logged until a logger is set. A
 * logger that throws never crashes the process: its error becomes a process warning.
 */
export declare function setLogger(logger: Logger | null, options?: LoggerOptions): void
