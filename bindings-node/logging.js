'use strict'
// The engine's diagnostics for the application's logger: `setLogger(logger, { level })`.
// Records reach the logger on the main thread, after the call that logged them, as objects
// { level, target, message, fields }. Nothing is logged until a logger is set.

const native = require('./native.js')

const LEVELS = ['error', 'warn', 'info', 'debug', 'trace']

// Argument errors are the package's own (INVALID_ARGUMENT).
const { invalidArgument: invalid } = require('./errors.js')

function toRecord(raw) {
  const fields = {}
  for (const [name, value] of raw.fields) fields[name] = value
  return { level: raw.level, target: raw.target, message: raw.message, fields }
}

/**
 * Sends the engine's log records at `options.level` ('info' unless given) and above to
 * `logger`: a function called with each record, or an object with `error`, `warn`, `info` and
 * `debug` methods (`console`, pino, winston, ...) called as `logger[level](message, record)`
 * (`trace` records go to `trace`, else `debug`). `null` stops logging. A logger that throws
 * never crashes the process or stops an operation: its error becomes a process warning.
 */
function setLogger(logger, options = {}) {
  const level = options?.level ?? 'info'
  if (!LEVELS.includes(level)) {
    throw invalid(`options.level must be one of ${LEVELS.join(', ')} (got ${String(level)})`)
  }
  if (logger === null || logger === undefined) {
    native.setLogSink(null, level)
    return
  }
  let deliver
  if (typeof logger === 'function') {
    deliver = (record) => logger(record)
  } else if (typeof logger === 'object' && ['error', 'warn', 'info', 'debug'].every((m) => typeof logger[m] === 'function')) {
    deliver = (record) => {
      const method = record.level === 'trace' && typeof logger.trace === 'function' ? 'trace' : record.level === 'trace' ? 'debug' : record.level
      logger[method](record.message, record)
    }
  } else {
    throw invalid('logger must be a function, an object with error/warn/info/debug methods, or null')
  }
  native.setLogSink((raw) => {
    try {
      deliver(toRecord(raw))
    } catch (err) {
      // A warning of its own (what the logger threw is its cause): never a crash.
      const warning = new Error(`the license-backup logger threw: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      })
      warning.name = 'LicenseBackupWarning'
      warning.code = 'LICENSE_BACKUP_LOGGER_FAILED'
      process.emitWarning(warning)
    }
  }, level)
}

module.exports = { setLogger, LOG_LEVELS: LEVELS }
