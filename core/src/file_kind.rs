//! Every file this library writes knows its kind, and every open checks it first.
//!
//! * The license store and the service ledger are SQLite databases, told apart by
//!   `PRAGMA application_id` ([`STORE_APPLICATION_ID`], [`LEDGER_APPLICATION_ID`]) and by their
//!   tables (the store has `device` and `licenses`, the ledger `service_key` and `placements`);
//!   files made by earlier releases have application ID 0 and are recognised by their tables.
//! * The archive starts with the magic `LICBAKUP` (`crate::archive::MAGIC`).
//!
//! [`check`] reads the file's first 100 bytes with plain file I/O, and for an application ID of
//! 0 the table list through a read-only connection, **before** SQLite opens the file for
//! writing (before the WAL pragma, which already writes): a file of another kind, or a
//! non-empty file that is not ours, is refused with `WRONG_FILE_KIND` and not one byte of it
//! changes. Migrations run only on files that passed.

use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, ErrorCode, Result};

/// `PRAGMA application_id` of a license store: ASCII `LBst`.
pub const STORE_APPLICATION_ID: i32 = i32::from_be_bytes(*b"LBst");
/// `PRAGMA application_id` of an embedded service's ledger: ASCII `LBlg`.
pub const LEDGER_APPLICATION_ID: i32 = i32::from_be_bytes(*b"LBlg");

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The kinds of SQLite file this library opens (and whose secret a key protector wraps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A device's license store (its secret: the device's seed).
    Store,
    /// An embedded License Management Service's ledger (its secret: the service's seed).
    Ledger,
}

impl FileKind {
    /// `"store"` or `"ledger"`: the short name keystore entries and wrapped secrets are bound to.
    pub const fn name(self) -> &'static str {
        match self {
            FileKind::Store => "store",
            FileKind::Ledger => "ledger",
        }
    }

    /// `"license store"` or `"service ledger"`, for messages.
    fn description(self) -> &'static str {
        match self {
            FileKind::Store => "license store",
            FileKind::Ledger => "service ledger",
        }
    }

    fn application_id(self) -> i32 {
        match self {
            FileKind::Store => STORE_APPLICATION_ID,
            FileKind::Ledger => LEDGER_APPLICATION_ID,
        }
    }

    /// Tables only a file of this kind has (any release).
    fn signature_tables(self) -> &'static [&'static str] {
        match self {
            FileKind::Store => &["device", "licenses"],
            FileKind::Ledger => &["service_key", "placements"],
        }
    }

    fn other(self) -> FileKind {
        match self {
            FileKind::Store => FileKind::Ledger,
            FileKind::Ledger => FileKind::Store,
        }
    }

    /// The application ID to write into a file of this kind (in its schema transaction).
    pub(crate) fn mark(self, conn: &Connection) -> Result<()> {
        conn.pragma_update(None, "application_id", self.application_id())?;
        Ok(())
    }
}

fn refuse(path: &Path, kind: FileKind, what: &str) -> Error {
    Error::new(
        ErrorCode::WrongFileKind,
        format!("{} is {what}, not a {}; it was left unchanged", path.display(), kind.description()),
    )
}

/// The write-ahead log SQLite keeps beside the database at `db` (`<db>-wal`, the same bytes
/// as the database's name, UTF-8 or not).
pub(crate) fn log_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Checks that the file at `path` is a `kind` file, or absent, or empty (a new one is then
/// made there), without writing anything.
pub(crate) fn check(path: &Path, kind: FileKind) -> Result<()> {
    let mut head = Vec::with_capacity(100);
    // Only a regular file is opened: opening a FIFO would block.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return Err(refuse(path, kind, "not a regular file"));
    }
    match std::fs::File::open(path) {
        Ok(f) => {
            if f.metadata().is_ok_and(|m| m.is_dir()) {
                return Err(Error::new(
                    ErrorCode::NotAFolder,
                    format!("{} is a folder, not a {} file", path.display(), kind.description()),
                ));
            }
            f.take(100).read_to_end(&mut head).map_err(|e| {
                Error::new(
                    ErrorCode::Storage,
                    format!("cannot read the {} {}: {e}", kind.description(), path.display()),
                )
            })?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        // SQLite reports the reason (a missing folder, no permission) when it opens the path.
        Err(_) => return Ok(()),
    }
    if head.is_empty() {
        return Ok(());
    }
    if !head.starts_with(SQLITE_MAGIC) {
        let what = if head.starts_with(crate::archive::MAGIC) {
            "a license backup archive"
        } else {
            "not a database of this library"
        };
        return Err(refuse(path, kind, what));
    }
    if head.len() < 100 {
        return Err(refuse(path, kind, "a truncated database"));
    }
    let application_id = i32::from_be_bytes(head[68..72].try_into().expect("4 bytes"));
    match application_id {
        id if id == kind.application_id() => Ok(()),
        id if id == kind.other().application_id() => {
            Err(refuse(path, kind, &format!("a {}", kind.other().description())))
        }
        // Files from earlier releases (and a new file SQLite has just created) carry no ID.
        0 => check_tables(path, kind, &legacy_tables(path)?),
        id => Err(refuse(path, kind, &format!("a database of another application (application_id {id:#010x})"))),
    }
}

/// The tables of a database without an application ID, read through a read-only connection
/// (which cannot write the file; a WAL left by a crash is read with it when SQLite can).
fn legacy_tables(path: &Path) -> Result<Vec<String>> {
    let read_only = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let immutable = || Connection::open_with_flags(format!("file:{}?immutable=1", uri_path(path)), read_only);
    let conn = if log_path(path).exists() {
        // Part of the database may be in the WAL: a read-only connection reads it too (and may
        // touch the -shm index, never the database or the WAL).
        Connection::open_with_flags(path, read_only).or_else(|_| immutable())
    } else {
        // The file is the whole database: read as immutable, nothing is created beside it.
        immutable()
    };
    let tables = conn.and_then(|c| tables(&c));
    tables.map_err(|e| {
        Error::new(ErrorCode::WrongFileKind, format!("{} cannot be read as a database: {e}", path.display()))
    })
}

/// `path` escaped for a `file:` URI.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii() && !matches!(b, b'%' | b'?' | b'#') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Copies what the WAL holds into the main file (best effort: a reader elsewhere may hold it
/// back), so the header shows the application ID to plain file reads.
pub(crate) fn checkpoint(conn: &Connection) {
    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
}

/// The names of the tables in `conn`'s main database.
pub(crate) fn tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM main.sqlite_master WHERE type = 'table'")?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

/// Checks a database's tables: none (a new file), or those of `kind` and not of the other.
pub(crate) fn check_tables(path: &Path, kind: FileKind, tables: &[String]) -> Result<()> {
    if tables.is_empty() {
        return Ok(());
    }
    let has = |k: FileKind| k.signature_tables().iter().any(|t| tables.iter().any(|n| n == t));
    if has(kind.other()) {
        return Err(refuse(path, kind, &format!("a {}", kind.other().description())));
    }
    if !has(kind) {
        return Err(refuse(path, kind, "a database of another program"));
    }
    Ok(())
}
