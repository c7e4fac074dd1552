//! Exit codes: one per class of error, stable, derived from the library's error codes.
//!
//! A class follows the hundreds of the library's code (1xx arguments, 2xx paths, 3xx archive,
//! 4xx service, 6xx store), so codes added later fall into the right class without a change
//! here; a few codes a script wants to tell apart have a class of their own.

use license_backup::{Error, ErrorCode};

/// Success (for `quota`: a restore would be allowed).
pub const OK: u8 = 0;
/// A bug or an unexpected failure.
pub const INTERNAL: u8 = 1;
/// A bad command line.
pub const USAGE: u8 = 2;
/// A folder or file given on the command line is missing or unusable.
pub const PATH: u8 = 3;
/// The folder already holds a backup.
pub const BACKUP_EXISTS: u8 = 4;
/// The archive is missing, damaged, of another version or for another service.
pub const ARCHIVE: u8 = 5;
/// The License Management Service refused the restore.
pub const REFUSED: u8 = 6;
/// The service could not be reached or failed.
pub const SERVICE: u8 = 7;
/// The license store cannot be read or written.
pub const STORE: u8 = 8;
/// Cancelled by Ctrl-C (or SIGTERM, SIGHUP).
pub const CANCELLED: u8 = 130;

/// Every exit code with its class and what it covers: the table `--help` and `docs/cli.md`
/// show.
pub const TABLE: &[(u8, &str, &str)] = &[
    (OK, "ok", "done (quota: a restore would be allowed)"),
    (INTERNAL, "internal", "a bug or unexpected failure: INTERNAL, CALLBACK_FAILED, BUSY"),
    (USAGE, "usage", "bad command line or argument: INVALID_ARGUMENT, other 1xx"),
    (PATH, "path", "missing or unusable path: 2xx codes, WRONG_FILE_KIND"),
    (BACKUP_EXISTS, "backup-exists", "BACKUP_EXISTS: the folder holds a backup (use --overwrite)"),
    (ARCHIVE, "archive", "ARCHIVE_MISSING, ARCHIVE_CORRUPT, WRONG_KEY, ...: 3xx codes"),
    (REFUSED, "refused", "the service refused the restore (quota: it would refuse)"),
    (SERVICE, "service", "the License Management Service is unavailable: 4xx codes"),
    (STORE, "store", "the store cannot be read or written, or verify failed: 6xx"),
    (CANCELLED, "cancelled", "Ctrl-C, SIGTERM or SIGHUP: cancelled, nothing changed"),
];

/// The exit code for a library error code; `refused` when the service refused the operation
/// (a REFUSED event was seen), whatever its code.
pub fn for_code(code: ErrorCode, refused: bool) -> u8 {
    if refused {
        return REFUSED;
    }
    match code {
        ErrorCode::Cancelled => CANCELLED,
        ErrorCode::BackupExists => BACKUP_EXISTS,
        ErrorCode::ArchiveMissing => ARCHIVE,
        // A file named on the command line (store, ledger, archive) is not of its kind.
        ErrorCode::WrongFileKind => PATH,
        ErrorCode::RestoreLimitExceeded => REFUSED,
        _ => match code.number() / 100 {
            1 => USAGE,
            2 => PATH,
            3 => ARCHIVE,
            4 => SERVICE,
            6 => STORE,
            _ => INTERNAL,
        },
    }
}

/// The exit-code table as `--help` prints it.
pub fn help_table() -> String {
    let mut text = String::from("Exit codes:\n");
    for (code, class, what) in TABLE {
        text.push_str(&format!("  {code:>3}  {class:<13} {what}\n"));
    }
    text
}

/// A failed command: a library error code (the CLI's own errors use the library's codes too),
/// a message, and what the user can do about it.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
    /// What the user can do, when there is something specific to say.
    pub hint: Option<String>,
    /// The service refused the operation (a REFUSED event was seen).
    pub refused: bool,
}

impl Failure {
    /// A failure with the default hint of its code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure { code, message: message.into(), hint: default_hint(code).map(str::to_string), refused: false }
    }

    /// Replaces the hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The exit code.
    pub fn exit_code(&self) -> u8 {
        for_code(self.code, self.refused)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::new(e.code(), e.message())
    }
}

/// What a user can do about an error, per code.
fn default_hint(code: ErrorCode) -> Option<&'static str> {
    Some(match code {
        ErrorCode::BackupExists => "use --overwrite",
        ErrorCode::PathNotFound => "check the path; a backup folder must exist before the backup",
        ErrorCode::NotAFolder => "give the folder that holds (or will hold) licenses.lbk",
        ErrorCode::NotWritable => "check the folder's permissions, and that the medium is not read-only or full",
        ErrorCode::ArchiveMissing => "--from names the folder that holds licenses.lbk",
        ErrorCode::ArchiveCorrupt => {
            "the archive is damaged or was altered; `license-backup inspect` locates framing damage"
        }
        ErrorCode::UnsupportedVersion => "the archive was written by another version of license-backup",
        ErrorCode::WrongKey => {
            "the archive was made for another License Management Service: use the --service it was backed up with"
        }
        ErrorCode::ServiceUnavailable => "check --service, then try again",
        ErrorCode::RestoreLimitExceeded => {
            "`license-backup quota` shows what remains; restoring onto a device that already counts is free"
        }
        ErrorCode::AuthenticationFailed => {
            "check --token-file (or LICENSE_BACKUP_TOKEN): the service refused the token"
        }
        ErrorCode::ServiceNotTrusted => "a self-hosted service needs --ca-file with its CA, or --cert-pin",
        ErrorCode::ServiceKeyNotPinned => "the service's key is not one given with --service-key",
        ErrorCode::RateLimited => "the service is busy; try again later",
        ErrorCode::Cancelled => "nothing was changed",
        ErrorCode::Storage => "check that --store names this device's license store",
        ErrorCode::Internal => "this is a bug in license-backup; please report it",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_library_code_has_a_documented_class() {
        let documented: Vec<u8> = TABLE.iter().map(|(c, _, _)| *c).collect();
        for &code in ErrorCode::ALL {
            let exit = for_code(code, false);
            assert_ne!(exit, OK, "{code}");
            assert!(documented.contains(&exit), "{code} exits {exit}, which the table does not list");
        }
        assert_eq!(for_code(ErrorCode::ServiceUnavailable, true), REFUSED);
        assert_eq!(for_code(ErrorCode::NotWritable, false), PATH);
        assert_eq!(for_code(ErrorCode::WrongKey, false), ARCHIVE);
        assert_eq!(for_code(ErrorCode::Storage, false), STORE);
        assert_eq!(for_code(ErrorCode::InvalidArgument, false), USAGE);
    }
}
