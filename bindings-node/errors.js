'use strict'
// The package's error class. index.js registers it with the native addon once, at load: the
// addon then throws LicenseBackupError instances itself (and puts them in `end` events), so no
// call converts errors in JavaScript. check.js throws it for arguments it rejects.

const { ErrorCode } = require('./generated.js')

/**
 * The error of every failing call and operation: `code` is symbolic, `errno` numeric. A
 * cancelled operation's error (`CANCELLED`) is named `'AbortError'`, as the platform names the
 * error of an aborted signal; every other is named `'LicenseBackupError'`.
 */
class LicenseBackupError extends Error {
  /**
   * @param {keyof typeof ErrorCode} code
   * @param {string} message
   * @param {{ cause?: unknown }} [options]
   */
  constructor(code, message, options) {
    if (typeof code !== 'string' || !Object.hasOwn(ErrorCode, code)) {
      // Not an error code: the caller's bad argument, reported in this class.
      throw new LicenseBackupError('INVALID_ARGUMENT', `code must be an error code (ErrorCode), not ${typeof code === 'string' ? JSON.stringify(code) : typeof code}`)
    }
    super(typeof message === 'string' ? message : text(message), options)
    this.name = code === 'CANCELLED' ? 'AbortError' : 'LicenseBackupError'
    this.code = code
    this.errno = ErrorCode[code]
  }
}

/** `value` as a message, as `Error` would make it, or its tag when it has no string form. */
function text(value) {
  try {
    return String(value)
  } catch {
    return Object.prototype.toString.call(value)
  }
}

/** Sets `cause` on an error the addon made, as the constructor's `{ cause }` option would. */
function withCause(err, cause) {
  if (cause !== undefined) Object.defineProperty(err, 'cause', { value: cause, writable: true, configurable: true })
  return err
}

/** A LicenseBackupError with code INVALID_ARGUMENT. */
function invalidArgument(message) {
  return new LicenseBackupError('INVALID_ARGUMENT', message)
}

module.exports = { LicenseBackupError, withCause, invalidArgument }
