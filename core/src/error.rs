//! Stable error codes and the crate's error type.
//!
//! Every failure the engine reports carries an [`ErrorCode`]: a stable number (like an HRESULT)
//! and a stable symbolic name. Bindings map each code to their own idiom (exception subclasses,
//! `Error.code`, a Swift enum) and keep both the code and the message.

use std::fmt;

macro_rules! error_codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $num:literal, $sym:literal, $msg:literal; )*) => {
        /// A stable error code. The numbers and symbolic names never change once published.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[doc = $doc])* $variant = $num, )*
        }

        impl ErrorCode {
            /// Every code, in numeric order. Generated from the same list as the enum, so no code
            /// can be missing from it.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The stable number of this code.
            pub const fn number(self) -> u32 {
                self as u32
            }

            /// The stable symbolic name, such as `"BACKUP_EXISTS"`.
            pub const fn name(self) -> &'static str {
                match self { $( ErrorCode::$variant => $sym, )* }
            }

            /// The Rust variant name, such as `"BackupExists"`: the form bindings use for classes.
            pub const fn variant_name(self) -> &'static str {
                match self { $( ErrorCode::$variant => stringify!($variant), )* }
            }

            /// The code's documentation (what it means, for generated documentation).
            pub const fn doc(self) -> &'static str {
                match self { $( ErrorCode::$variant => concat!($($doc),*), )* }
            }

            /// A generic, user-presentable description of the code.
            pub const fn description(self) -> &'static str {
                match self { $( ErrorCode::$variant => $msg, )* }
            }

            /// Looks a code up by its symbolic name.
            pub fn from_name(name: &str) -> Option<ErrorCode> {
                match name { $( $sym => Some(ErrorCode::$variant), )* _ => None }
            }

            /// Looks a code up by its number.
            pub fn from_number(number: u32) -> Option<ErrorCode> {
                match number { $( $num => Some(ErrorCode::$variant), )* _ => None }
            }
        }
    };
}

error_codes! {
    /// An argument was malformed or out of range.
    InvalidArgument = 101, "INVALID_ARGUMENT", "invalid argument";
    /// A property name is not one of the known properties.
    UnknownProperty = 102, "UNKNOWN_PROPERTY", "unknown property";
    /// A property value has the wrong type for its name.
    WrongPropertyType = 103, "WRONG_PROPERTY_TYPE", "wrong property value type";
    /// The `BackupPath` or `RestorePath` property an operation needs is not set.
    PathNotSet = 104, "PATH_NOT_SET", "path property not set";
    /// The folder named by a path property does not exist.
    PathNotFound = 201, "PATH_NOT_FOUND", "folder does not exist";
    /// The path names something that is not a folder.
    NotAFolder = 202, "NOT_A_FOLDER", "path is not a folder";
    /// The folder cannot be written to.
    NotWritable = 203, "NOT_WRITABLE", "folder is not writable";
    /// A backup already exists in the folder and the overwrite flag was not given.
    BackupExists = 204, "BACKUP_EXISTS", "a backup already exists in the folder";
    /// There is no backup archive in the restore folder.
    ArchiveMissing = 205, "ARCHIVE_MISSING", "no backup archive in the folder";
    /// The device holding the folder, the store or the service's ledger is full (or the file
    /// grew past what its file system allows, such as 4 GiB on FAT32). A backup that runs out
    /// of space removes its temporary file and leaves the previous archive as it was; a store
    /// or ledger write that runs out of space is rolled back.
    NoSpace = 206, "NO_SPACE", "not enough space on the device";
    /// The device reported an input/output error: failing media, or media removed while in use.
    MediaFailure = 207, "MEDIA_FAILURE", "the device reported an I/O error";
    /// The device or network share holding the folder is no longer connected (a USB stick
    /// pulled out, a file-system driver that stopped, a share that went away).
    DeviceGone = 208, "DEVICE_GONE", "the device is no longer connected";
    /// The path cannot name a file on this system: a name longer than the file system allows,
    /// or too many levels of symbolic links.
    PathInvalid = 209, "PATH_INVALID", "the path is too long or cannot be resolved";
    /// The folder or the archive cannot be read: permission denied.
    NotReadable = 210, "NOT_READABLE", "the folder or archive cannot be read";
    /// The archive is damaged, truncated or was tampered with.
    ArchiveCorrupt = 301, "ARCHIVE_CORRUPT", "backup archive is corrupt or was tampered with";
    /// The archive was written by an unknown format version.
    UnsupportedVersion = 302, "UNSUPPORTED_VERSION", "unsupported archive version";
    /// The archive was made for another License Management Service, or a key does not match.
    WrongKey = 303, "WRONG_KEY", "archive key does not match this service or device";
    /// The License Management Service could not be reached or failed.
    ServiceUnavailable = 401, "SERVICE_UNAVAILABLE", "license management service unavailable";
    /// The service refused the restore: a license already lives on the maximum number of devices.
    RestoreLimitExceeded = 402, "RESTORE_LIMIT_EXCEEDED", "restore limit exceeded";
    /// The License Management Service rejected the application's credentials (its token).
    AuthenticationFailed = 410, "AUTHENTICATION_FAILED", "the license management service rejected the credentials";
    /// A message between the device and the License Management Service broke the protocol
    /// (a malformed, oversized or unexpected answer, or a request the service could not read).
    ProtocolViolation = 411, "PROTOCOL_VIOLATION", "license management service protocol error";
    /// The License Management Service's TLS certificate does not verify or does not match the
    /// pinned certificate.
    ServiceNotTrusted = 412, "SERVICE_NOT_TRUSTED", "the license management service's certificate is not trusted";
    /// The service's current key is not one the application pinned: a backup does not wrap to it.
    ServiceKeyNotPinned = 413, "SERVICE_KEY_NOT_PINNED", "the license management service's key is not pinned";
    /// The License Management Service asked the caller to slow down; try again later.
    RateLimited = 414, "RATE_LIMITED", "too many requests to the license management service";
    /// The request is larger than the License Management Service accepts (too many licenses).
    RequestTooLarge = 415, "REQUEST_TOO_LARGE", "request too large for the license management service";
    /// The archive was made on (or the device is registered with) another account of the service.
    ForeignDevice = 403, "FOREIGN_DEVICE", "the device belongs to another account";
    /// The operation was cancelled.
    Cancelled = 501, "CANCELLED", "operation cancelled";
    /// Another operation is already running on this store.
    Busy = 502, "BUSY", "another operation is already running";
    /// A status callback raised an error or panicked; the operation was stopped.
    CallbackFailed = 503, "CALLBACK_FAILED", "a status callback failed";
    /// The license store could not be read or written.
    Storage = 601, "STORAGE", "license store error";
    /// No license with that key ID is in the store.
    LicenseNotFound = 602, "LICENSE_NOT_FOUND", "license not found";
    /// A license with that key ID is already in the store.
    LicenseExists = 603, "LICENSE_EXISTS", "a license with this key ID already exists";
    /// The file is not of the kind the call opens: a service ledger or an archive opened as a
    /// license store, a store opened as a ledger, or a file that is not this library's at all.
    /// Nothing in it was changed.
    WrongFileKind = 604, "WRONG_FILE_KIND", "the file is not of the expected kind";
    /// The file's secret is wrapped by a key protector and none was given: open it with the
    /// protector it was protected with. Nothing was changed.
    ProtectorRequired = 610, "PROTECTOR_REQUIRED", "the file is protected: a key protector is required";
    /// The key protector given cannot unwrap the file's secret (another keystore, another key, a
    /// file copied from another device, or a protected file opened with another protector).
    ProtectorMismatch = 611, "PROTECTOR_MISMATCH", "the key protector cannot unwrap this file's secret";
    /// The key protector failed (the keystore is unavailable or locked, or a host protector
    /// raised an error, which is attached as the cause). Nothing was changed.
    ProtectorFailed = 612, "PROTECTOR_FAILED", "the key protector failed";
    /// A license row (rights, expiry, plays, issuer, issue time, key) or a tombstone was
    /// changed outside this library: its seal does not match. The message names the key ID.
    LicenseTampered = 613, "LICENSE_TAMPERED", "a license was changed outside the library";
    /// No plays remain on the license.
    PlaysExhausted = 614, "PLAYS_EXHAUSTED", "no plays remain on the license";
    /// The license has expired.
    LicenseExpired = 615, "LICENSE_EXPIRED", "the license has expired";
    /// The license does not grant the right to play.
    PlayNotAllowed = 616, "PLAY_NOT_ALLOWED", "the license does not allow playing";
    /// An internal error (a bug): the engine panicked or an invariant broke.
    Internal = 900, "INTERNAL", "internal error";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error type of every fallible call: a stable [`ErrorCode`] and a human-readable message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    code: ErrorCode,
    message: String,
}

impl Error {
    /// Creates an error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message (never empty).
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidArgument, message)
    }

    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::ArchiveCorrupt, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Internal, message)
    }

    pub(crate) fn cancelled() -> Self {
        Error::new(ErrorCode::Cancelled, "the operation was cancelled")
    }
}

/// SQLite's errors: `NO_SPACE` when the disk holding the database is full (`SQLITE_FULL`: the
/// store's or the ledger's write was refused for space, the transaction rolled back), `STORAGE`
/// for everything else.
impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        tracing::warn!(target: "license_backup::storage", error = %err, "SQLite error");
        match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => {
                Error::new(ErrorCode::NoSpace, format!("the disk holding the database is full: {err}"))
            }
            _ => Error::new(ErrorCode::Storage, format!("license store: {err}")),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut numbers = HashSet::new();
        let mut names = HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(numbers.insert(code.number()), "duplicate number {}", code.number());
            assert!(names.insert(code.name()), "duplicate name {}", code.name());
            assert_eq!(ErrorCode::from_name(code.name()), Some(code));
            assert_eq!(ErrorCode::from_number(code.number()), Some(code));
            assert!(!code.description().is_empty());
        }
        assert_eq!(ErrorCode::from_name("NOPE"), None);
        assert_eq!(ErrorCode::from_number(0), None);
    }

    #[test]
    fn display_shows_code_and_message() {
        let e = Error::new(ErrorCode::BackupExists, "licenses.lbk exists");
        assert_eq!(e.to_string(), "BACKUP_EXISTS: licenses.lbk exists");
        assert_eq!(e.code().number(), 204);
    }
}
