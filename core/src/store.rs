//! The license store: a transactional SQLite database holding this device's identity, its
//! licenses (content keys sealed to the device key) and the application's content catalog.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};
use zeroize::Zeroizing;

use crate::archive::LicenseFields;
use crate::crypto::{KeyPair, NoncePool, SealingKey};
use crate::error::{Error, ErrorCode, Result};
use crate::file_kind::{self, FileKind};
use crate::key_id::KeyId;
use crate::license::{CatalogEntry, ConflictPolicy, License, NewLicense, Rights};

/// The schema version this library writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS device (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    device_id   BLOB NOT NULL CHECK (length(device_id) = 16),
    seed        BLOB NOT NULL CHECK (length(seed) = 32),
    created_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS licenses (
    key_id          BLOB PRIMARY KEY CHECK (length(key_id) = 16),
    sealed_key      BLOB NOT NULL,
    play            INTEGER NOT NULL,
    burn            INTEGER NOT NULL,
    transfer        INTEGER NOT NULL,
    backup_allowed  INTEGER NOT NULL,
    expires_at      INTEGER,
    plays_remaining INTEGER,
    issuer          TEXT NOT NULL,
    issued_at       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS catalog (
    key_id     BLOB PRIMARY KEY CHECK (length(key_id) = 16),
    title      TEXT,
    artist     TEXT,
    file_path  TEXT
) WITHOUT ROWID;
";

const LICENSE_COLUMNS: &str = "l.key_id, l.play, l.burn, l.transfer, l.backup_allowed, l.expires_at, \
     l.plays_remaining, l.issuer, l.issued_at, c.key_id IS NOT NULL, c.title, c.artist, c.file_path, l.sealed_key";

/// This device's keys, loaded from the store.
pub(crate) struct DeviceKeys {
    pub(crate) pair: KeyPair,
    storage: SealingKey,
    /// The device ID, computed once: it is part of every content key's associated data, and
    /// hashing the public key for each license cost a SHA-256 per seal and per open.
    id: [u8; 16],
}

/// The constant prefix of a content key's associated data.
const CONTENT_KEY_AAD: &[u8; 29] = b"license-backup/v1/content-key";

impl DeviceKeys {
    pub(crate) fn new(pair: KeyPair) -> Self {
        let storage = pair.derive_key(b"store content keys");
        let id = pair.id();
        DeviceKeys { pair, storage, id }
    }

    pub(crate) fn id(&self) -> [u8; 16] {
        self.id
    }

    fn aad(&self, key_id: &KeyId) -> [u8; 61] {
        let mut aad = [0u8; 61];
        aad[..29].copy_from_slice(CONTENT_KEY_AAD);
        aad[29..45].copy_from_slice(&self.id);
        aad[45..].copy_from_slice(key_id.as_bytes());
        aad
    }

    /// Seals a content key to this device.
    pub(crate) fn seal_content_key(&self, key_id: &KeyId, content_key: &[u8]) -> Vec<u8> {
        self.storage.seal_random(content_key, &self.aad(key_id))
    }

    /// [`DeviceKeys::seal_content_key`] with a nonce from `nonces` (many keys in a row).
    pub(crate) fn seal_content_key_from(&self, nonces: &mut NoncePool, key_id: &KeyId, content_key: &[u8]) -> Vec<u8> {
        self.storage.seal_random_from(nonces, content_key, &self.aad(key_id))
    }

    /// Appends the sealed content key to `out`, with a nonce from `nonces`.
    pub(crate) fn seal_content_key_into(
        &self,
        nonces: &mut NoncePool,
        key_id: &KeyId,
        content_key: &[u8],
        out: &mut Vec<u8>,
    ) {
        self.storage.seal_random_into(nonces, content_key, &self.aad(key_id), out);
    }

    /// Opens, in place, a content key sealed to this device whose nonce and tag were split off
    /// (see [`SealingKey::split_random`]): a backup opens it inside the record it is sealed into.
    pub(crate) fn open_content_key_in_place(
        &self,
        key_id: &KeyId,
        nonce: &[u8; 12],
        key: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<()> {
        if self.storage.open_detached(nonce, key, &self.aad(key_id), tag) { Ok(()) } else { Err(cannot_open(key_id)) }
    }

    /// Opens a content key sealed to this device.
    pub(crate) fn open_content_key(&self, key_id: &KeyId, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.storage.open_random(sealed, &self.aad(key_id)).ok_or_else(|| cannot_open(key_id))
    }
}

fn cannot_open(key_id: &KeyId) -> Error {
    Error::new(ErrorCode::Storage, format!("the content key of {key_id} cannot be opened with this device's key"))
}

/// Formats a 16-byte device ID as 32 lowercase hex digits.
pub(crate) fn device_id_hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// A persistent, transactional store of the licenses on this device.
///
/// Opening a path that does not exist creates a store with a fresh device identity. Every call
/// is a transaction of its own; backup and restore open their own connections, so the store may
/// be used (read, and written between operations) while an operation runs.
pub struct LicenseStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    busy: AtomicBool,
}

impl std::fmt::Debug for LicenseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseStore").field("path", &self.path).finish_non_exhaustive()
    }
}

pub(crate) fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)
        .map_err(|e| Error::new(ErrorCode::Storage, format!("cannot open license store {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| Error::new(ErrorCode::Storage, format!("{} is not a license store: {e}", path.display())))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl LicenseStore {
    /// Opens the store at `path`, creating it (with a fresh device identity) if it does not
    /// exist. The folder that holds it must exist.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if path.as_os_str().is_empty() {
            return Err(Error::invalid("the store path is empty"));
        }
        if path.is_dir() {
            return Err(Error::new(ErrorCode::NotAFolder, format!("{} is a folder, not a store file", path.display())));
        }
        file_kind::check(&path, FileKind::Store)?;
        let mut conn = open_connection(&path)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(Error::new(
                ErrorCode::Storage,
                format!("store schema version {version} is newer than this library supports ({SCHEMA_VERSION})"),
            ));
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Again with SQLite's whole view (a WAL included), before the schema is touched.
        file_kind::check_tables(&path, FileKind::Store, &file_kind::tables(&tx)?)?;
        tx.execute_batch(SCHEMA)?;
        FileKind::Store.mark(&tx)?;
        let has_device: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM device)", [], |r| r.get(0))?;
        if !has_device {
            let pair = KeyPair::generate();
            tx.execute(
                "INSERT INTO device (singleton, device_id, seed, created_at) VALUES (1, ?1, ?2, ?3)",
                params![pair.id().as_slice(), pair.seed().as_slice(), now_secs()],
            )?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        // Into the main file now, so the kind is in its header for every later open.
        file_kind::checkpoint(&conn);
        Ok(LicenseStore { path, conn: Mutex::new(conn), busy: AtomicBool::new(false) })
    }

    /// The path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().map_err(|_| Error::internal("license store lock poisoned"))?;
        f(&mut conn)
    }

    /// This device's identity: 32 hex digits, a fingerprint of its public key. It changes when a
    /// restore individualizes the device.
    pub fn device_id(&self) -> Result<String> {
        self.with_conn(|c| Ok(device_id_hex(&load_device(c)?.id())))
    }

    /// Adds a license. With [`ConflictPolicy::Keep`] an existing key ID is an error
    /// (`LICENSE_EXISTS`) and the stored license is left as it is; with
    /// [`ConflictPolicy::Replace`] it is replaced.
    pub fn add_license(&self, license: &NewLicense, policy: ConflictPolicy) -> Result<()> {
        self.add_licenses(std::slice::from_ref(license), policy)
    }

    /// Adds many licenses in one transaction: all are added, or none (the first conflict under
    /// [`ConflictPolicy::Keep`] fails the whole batch with `LICENSE_EXISTS`).
    pub fn add_licenses(&self, licenses: &[NewLicense], policy: ConflictPolicy) -> Result<()> {
        for l in licenses {
            l.validate()?;
        }
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // Inside the write transaction: an individualizing restore (from another
            // connection) cannot replace the device key between this read and the insert.
            let device = load_device(&tx)?;
            {
                let sql = match policy {
                    ConflictPolicy::Keep => "INSERT INTO licenses VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    ConflictPolicy::Replace => {
                        "INSERT OR REPLACE INTO licenses VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                    }
                };
                let mut stmt = tx.prepare_cached(sql)?;
                let mut nonces = NoncePool::new(licenses.len());
                for l in licenses {
                    let sealed = device.seal_content_key_from(&mut nonces, &l.key_id, &l.content_key);
                    let res = insert_row(&mut stmt, &l.key_id, &sealed, &l.rights, &l.issuer, l.issued_at);
                    match res {
                        Err(rusqlite::Error::SqliteFailure(e, _))
                            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                        {
                            return Err(Error::new(
                                ErrorCode::LicenseExists,
                                format!("a license with key ID {} is already in the store", l.key_id),
                            ));
                        }
                        other => {
                            other?;
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The license with this key ID, without its content key; `None` if there is none.
    pub fn get_license(&self, key_id: &KeyId) -> Result<Option<License>> {
        self.with_conn(|c| {
            let sql = format!(
                "SELECT {LICENSE_COLUMNS} FROM licenses l LEFT JOIN catalog c ON c.key_id = l.key_id WHERE l.key_id = ?1"
            );
            Ok(c.query_row(&sql, [key_id.as_bytes().as_slice()], license_from_row).optional()?)
        })
    }

    /// Every license, ordered by key ID, without content keys.
    pub fn list_licenses(&self) -> Result<Vec<License>> {
        self.with_conn(|c| {
            let sql = format!(
                "SELECT {LICENSE_COLUMNS} FROM licenses l LEFT JOIN catalog c ON c.key_id = l.key_id ORDER BY l.key_id"
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map([], license_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Removes a license; returns whether there was one. Its catalog entry stays.
    pub fn remove_license(&self, key_id: &KeyId) -> Result<bool> {
        self.with_conn(|c| Ok(c.execute("DELETE FROM licenses WHERE key_id = ?1", [key_id.as_bytes().as_slice()])? > 0))
    }

    /// How many licenses the store holds.
    pub fn license_count(&self) -> Result<u64> {
        self.with_conn(|c| Ok(c.query_row("SELECT count(*) FROM licenses", [], |r| r.get::<_, i64>(0))? as u64))
    }

    /// The content key of a license, opened with this device's key: what a player needs to
    /// decrypt the content. `LICENSE_NOT_FOUND` if there is no such license.
    pub fn content_key(&self, key_id: &KeyId) -> Result<Vec<u8>> {
        self.with_conn(|c| {
            // One read transaction: the device key and the sealed key come from one snapshot.
            let tx = c.transaction()?;
            let device = load_device(&tx)?;
            let sealed: Option<Vec<u8>> = tx
                .query_row("SELECT sealed_key FROM licenses WHERE key_id = ?1", [key_id.as_bytes().as_slice()], |r| {
                    r.get(0)
                })
                .optional()?;
            let sealed = sealed.ok_or_else(|| not_found(key_id))?;
            Ok(device.open_content_key(key_id, &sealed)?.to_vec())
        })
    }

    /// Sets (replaces) the catalog entry of a key ID. The catalog is independent of the
    /// licenses: an application may describe content whose license is not (yet) on the device.
    pub fn set_catalog_entry(&self, key_id: &KeyId, entry: &CatalogEntry) -> Result<()> {
        entry.validate()?;
        self.with_conn(|c| {
            c.execute(
                "INSERT OR REPLACE INTO catalog (key_id, title, artist, file_path) VALUES (?1, ?2, ?3, ?4)",
                params![key_id.as_bytes().as_slice(), entry.title, entry.artist, entry.file_path],
            )?;
            Ok(())
        })
    }

    /// The catalog entry of a key ID, if there is one.
    pub fn catalog_entry(&self, key_id: &KeyId) -> Result<Option<CatalogEntry>> {
        self.with_conn(|c| {
            Ok(c.query_row(
                "SELECT title, artist, file_path FROM catalog WHERE key_id = ?1",
                [key_id.as_bytes().as_slice()],
                |r| Ok(CatalogEntry { title: r.get(0)?, artist: r.get(1)?, file_path: r.get(2)? }),
            )
            .optional()?)
        })
    }

    /// Removes the catalog entry of a key ID; returns whether there was one.
    pub fn remove_catalog_entry(&self, key_id: &KeyId) -> Result<bool> {
        self.with_conn(|c| Ok(c.execute("DELETE FROM catalog WHERE key_id = ?1", [key_id.as_bytes().as_slice()])? > 0))
    }

    /// Checks the database's integrity (`PRAGMA integrity_check`) and that every content key
    /// opens with the device key. Returns the number of licenses checked.
    pub fn verify(&self) -> Result<u64> {
        self.with_conn(|c| {
            // One read transaction: the device key and the sealed keys come from one snapshot.
            let tx = c.transaction()?;
            let status: String = tx.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
            if status != "ok" {
                return Err(Error::new(ErrorCode::Storage, format!("integrity check failed: {status}")));
            }
            let device = load_device(&tx)?;
            let mut stmt = tx.prepare("SELECT key_id, sealed_key FROM licenses")?;
            let mut rows = stmt.query([])?;
            let mut n = 0;
            while let Some(row) = rows.next()? {
                let key_id = KeyId::from_slice(&row.get::<_, Vec<u8>>(0)?)?;
                device.open_content_key(&key_id, &row.get::<_, Vec<u8>>(1)?)?;
                n += 1;
            }
            Ok(n)
        })
    }

    /// Marks the store as running an operation; `BUSY` if one already runs.
    pub(crate) fn mark_busy(&self) -> Result<()> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(Error::new(ErrorCode::Busy, "another backup or restore is already running on this store"));
        }
        Ok(())
    }

    /// Clears the busy mark.
    pub(crate) fn clear_busy(&self) {
        self.busy.store(false, Ordering::Release);
    }
}

/// Columns of a row of the `licenses` table.
const LICENSE_ROW_COLUMNS: usize = 10;

/// Binds one license's values, in the column order of the `licenses` table, at parameters
/// `at .. at + LICENSE_ROW_COLUMNS` of a prepared `INSERT ... VALUES (?, ...)`.
fn bind_license_row(
    stmt: &mut rusqlite::Statement<'_>,
    at: usize,
    key_id: &KeyId,
    sealed_key: &[u8],
    r: &Rights,
    issuer: &str,
    issued_at: i64,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(at, key_id.as_bytes().as_slice())?;
    stmt.raw_bind_parameter(at + 1, sealed_key)?;
    stmt.raw_bind_parameter(at + 2, r.play)?;
    stmt.raw_bind_parameter(at + 3, r.burn)?;
    stmt.raw_bind_parameter(at + 4, r.transfer)?;
    stmt.raw_bind_parameter(at + 5, r.backup_allowed)?;
    stmt.raw_bind_parameter(at + 6, r.expires_at)?;
    stmt.raw_bind_parameter(at + 7, r.plays_remaining)?;
    stmt.raw_bind_parameter(at + 8, issuer)?;
    stmt.raw_bind_parameter(at + 9, issued_at)
}

/// Executes a prepared `INSERT ... INTO <licenses table> VALUES (?1 .. ?10)` for one license.
fn insert_row(
    stmt: &mut rusqlite::CachedStatement<'_>,
    key_id: &KeyId,
    sealed_key: &[u8],
    r: &Rights,
    issuer: &str,
    issued_at: i64,
) -> rusqlite::Result<usize> {
    bind_license_row(stmt, 1, key_id, sealed_key, r, issuer, issued_at)?;
    stmt.raw_execute()
}

fn not_found(key_id: &KeyId) -> Error {
    Error::new(ErrorCode::LicenseNotFound, format!("no license with key ID {key_id}"))
}

pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Loads the device's keys.
pub(crate) fn load_device(conn: &Connection) -> Result<DeviceKeys> {
    let seed: Vec<u8> = conn
        .query_row("SELECT seed FROM device WHERE singleton = 1", [], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::new(ErrorCode::Storage, "the store has no device identity"))?;
    let seed = Zeroizing::new(seed);
    Ok(DeviceKeys::new(KeyPair::from_seed_slice(&seed)?))
}

fn license_from_row(r: &Row<'_>) -> rusqlite::Result<License> {
    let key_id: Vec<u8> = r.get(0)?;
    let key_id = KeyId::from_slice(&key_id)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e)))?;
    let has_catalog: bool = r.get(9)?;
    Ok(License {
        key_id,
        rights: Rights {
            play: r.get(1)?,
            burn: r.get(2)?,
            transfer: r.get(3)?,
            backup_allowed: r.get(4)?,
            expires_at: r.get(5)?,
            plays_remaining: r.get(6)?,
        },
        issuer: r.get(7)?,
        issued_at: r.get(8)?,
        catalog: if has_catalog {
            Some(CatalogEntry { title: r.get(10)?, artist: r.get(11)?, file_path: r.get(12)? })
        } else {
            None
        },
    })
}

/// The connection a backup reads the store through: read-only work, so its page cache is
/// kept small. A backup reads each page once, in key order (the licenses and the catalog side
/// by side), so a large cache holds nothing it reads again and only makes memory grow with
/// the store.
pub(crate) fn open_backup_connection(path: &Path) -> Result<Connection> {
    file_kind::check(path, FileKind::Store)?;
    let conn = open_connection(path)?;
    conn.pragma_update(None, "cache_size", BACKUP_CACHE_KIB)?;
    Ok(conn)
}

/// The page cache of a backup's connection: a negative `cache_size` is in KiB.
const BACKUP_CACHE_KIB: i64 = -256;

/// A query stepped through SQLite's C API directly, for the backup's scan: reading a column
/// through rusqlite costs three to four calls into SQLite (its type, its value, its length,
/// and rusqlite's checks around them) where the scan needs one or two, and the scan reads
/// fourteen columns a license (callgrind: ~2,300 of the ~6,100 instructions a license of the
/// reading thread were in those calls). Values are borrowed until the next [`RawRows::step`].
struct RawRows<'c> {
    stmt: *mut rusqlite::ffi::sqlite3_stmt,
    db: *mut rusqlite::ffi::sqlite3,
    _conn: std::marker::PhantomData<&'c Connection>,
}

impl<'c> RawRows<'c> {
    /// Prepares `sql` (one statement, no parameters) on `conn`.
    fn prepare(conn: &'c Connection, sql: &str) -> Result<Self> {
        use rusqlite::ffi;
        // SAFETY: the handle is `conn`'s open database, used on this thread only while `conn`
        // is borrowed (`'c`); `sql` is passed with its length, so it needs no NUL.
        unsafe {
            let db = conn.handle();
            let mut stmt = std::ptr::null_mut();
            let rc = ffi::sqlite3_prepare_v2(
                db,
                sql.as_ptr().cast(),
                sql.len() as std::os::raw::c_int,
                &mut stmt,
                std::ptr::null_mut(),
            );
            if rc != ffi::SQLITE_OK || stmt.is_null() {
                return Err(raw_error(db, rc));
            }
            Ok(RawRows { stmt, db, _conn: std::marker::PhantomData })
        }
    }

    /// Moves to the next row: `false` past the last one.
    fn step(&mut self) -> Result<bool> {
        use rusqlite::ffi;
        // SAFETY: `stmt` is a prepared statement of a connection still borrowed (`'c`), and no
        // value borrowed from the previous row outlives this `&mut self` call.
        match unsafe { ffi::sqlite3_step(self.stmt) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            rc => Err(raw_error(self.db, rc)),
        }
    }

    fn is_null(&self, i: i32) -> bool {
        // SAFETY: `stmt` is valid and on a row (only called between a `step` that returned
        // true and the next); an index out of range reads as NULL.
        unsafe { rusqlite::ffi::sqlite3_column_type(self.stmt, i) == rusqlite::ffi::SQLITE_NULL }
    }

    fn int(&self, i: i32) -> i64 {
        // SAFETY: as in `is_null`.
        unsafe { rusqlite::ffi::sqlite3_column_int64(self.stmt, i) }
    }

    fn opt_int(&self, i: i32) -> Option<i64> {
        (!self.is_null(i)).then(|| self.int(i))
    }

    /// The column's bytes (a BLOB, or the UTF-8 of a TEXT), empty for NULL.
    fn bytes(&self, i: i32) -> &[u8] {
        // SAFETY: as in `is_null`. `sqlite3_column_blob` then `sqlite3_column_bytes` is the
        // documented order; the pointer stays valid until the statement is stepped, reset or
        // finalized, which needs `&mut self`, so the slice cannot outlive it.
        unsafe {
            let ptr = rusqlite::ffi::sqlite3_column_blob(self.stmt, i);
            let len = rusqlite::ffi::sqlite3_column_bytes(self.stmt, i);
            if ptr.is_null() || len <= 0 { &[] } else { std::slice::from_raw_parts(ptr.cast::<u8>(), len as usize) }
        }
    }

    fn text(&self, i: i32) -> Result<&str> {
        std::str::from_utf8(self.bytes(i)).map_err(|_| Error::new(ErrorCode::Storage, "text in the store is not UTF-8"))
    }

    fn opt_text(&self, i: i32) -> Result<Option<&str>> {
        if self.is_null(i) { Ok(None) } else { self.text(i).map(Some) }
    }
}

impl Drop for RawRows<'_> {
    fn drop(&mut self) {
        // SAFETY: `stmt` was prepared by `prepare` and is finalized once, here.
        unsafe {
            rusqlite::ffi::sqlite3_finalize(self.stmt);
        }
    }
}

/// The error SQLite reports for `rc` on `db`, as rusqlite would make it.
fn raw_error(db: *mut rusqlite::ffi::sqlite3, rc: std::os::raw::c_int) -> Error {
    // SAFETY: `db` is an open connection; `sqlite3_errmsg` returns a NUL-terminated string
    // SQLite owns, copied here before any other call on `db`.
    let message = unsafe { std::ffi::CStr::from_ptr(rusqlite::ffi::sqlite3_errmsg(db)) }.to_string_lossy().into_owned();
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rc), Some(message)).into()
}

/// A 16-byte key ID (the schema checks the length).
fn raw_key_id(rows: &RawRows<'_>, i: i32) -> Result<[u8; 16]> {
    let bytes = rows.bytes(i);
    bytes
        .try_into()
        .map_err(|_| Error::new(ErrorCode::Storage, format!("a key ID of {} bytes in the store", bytes.len())))
}

/// Streams every license, in key-ID order, from one consistent snapshot (the caller holds a
/// read transaction on `conn`): `visit` gets its fields (catalog metadata included) and its
/// content key as sealed at rest, both borrowed from the row (or from buffers reused for the
/// next license).
///
/// The catalog is merged in by key ID (both tables are ordered by it) rather than joined, so
/// no license costs a lookup in the catalog's tree.
pub(crate) fn scan_licenses(
    conn: &Connection,
    mut visit: impl FnMut(&LicenseFields<'_>, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut catalog = RawRows::prepare(conn, "SELECT key_id, title, artist, file_path FROM catalog ORDER BY key_id")?;
    // The key ID of the catalog's current row; `None` past its end.
    let mut entry = if catalog.step()? { Some(raw_key_id(&catalog, 0)?) } else { None };
    let mut licenses = RawRows::prepare(
        conn,
        "SELECT key_id, play, burn, transfer, backup_allowed, expires_at, plays_remaining, issuer, issued_at, \
         sealed_key FROM licenses ORDER BY key_id",
    )?;
    while licenses.step()? {
        let key_id = raw_key_id(&licenses, 0)?;
        while entry.is_some_and(|k| k < key_id) {
            entry = if catalog.step()? { Some(raw_key_id(&catalog, 0)?) } else { None };
        }
        let listed = entry == Some(key_id);
        let text = |i| if listed { catalog.opt_text(i) } else { Ok(None) };
        let plays_remaining = match licenses.opt_int(6) {
            Some(n) => Some(u32::try_from(n).map_err(|_| {
                Error::new(ErrorCode::Storage, format!("a play count of {n} in the store is out of range"))
            })?),
            None => None,
        };
        let fields = LicenseFields {
            key_id: KeyId::from_bytes(key_id),
            rights: Rights {
                play: licenses.int(1) != 0,
                burn: licenses.int(2) != 0,
                transfer: licenses.int(3) != 0,
                backup_allowed: licenses.int(4) != 0,
                expires_at: licenses.opt_int(5),
                plays_remaining,
            },
            issuer: licenses.text(7)?,
            issued_at: licenses.int(8),
            title: text(1)?,
            artist: text(2)?,
            file_path: text(3)?,
        };
        visit(&fields, licenses.bytes(9))?;
    }
    Ok(())
}

/// Counts the licenses in the snapshot `conn` reads.
pub(crate) fn count_licenses(conn: &Connection) -> Result<u64> {
    Ok(conn.query_row("SELECT count(*) FROM licenses", [], |r| r.get::<_, i64>(0))? as u64)
}

/// How many licenses the reading thread of a restore hands to the writing thread at a time.
const APPLY_BATCH: usize = 512;
/// How many batches may wait for the writing thread (memory stays bounded).
const APPLY_QUEUE: usize = 4;
/// SQLite's page cache for the connections that stream a whole store or ledger (a restore's
/// writes, the service's ledger), in KiB. They touch pages in key order, so a small cache loses
/// nothing, and memory stays flat: the default (2 MiB) would fill up with a big store and not
/// with a small one.
pub(crate) const STREAMING_CACHE_KIB: i64 = 512;

/// Licenses re-sealed per read when an individualizing restore re-binds the existing ones.
const RESEAL_CHUNK: usize = 1024;

/// Where a restore goes: the store, the device the restored licenses are bound to, and the
/// single transaction that applies them. Nothing is written before [`RestoreTarget::apply`],
/// which reads the archive once more (every record authenticated again), re-seals each content
/// key to the device and inserts the licenses straight into the store: no copy of the archive
/// is staged anywhere, and the store is locked for that one transaction only.
pub(crate) struct RestoreTarget {
    conn: Connection,
    device: DeviceKeys,
    individualized: bool,
}

/// One license ready to insert; its strings and sealed key live in the batch's buffers.
struct ReadyRow {
    key_id: KeyId,
    sealed: std::ops::Range<usize>,
    rights: Rights,
    issuer: std::ops::Range<usize>,
    issued_at: i64,
    catalog: Option<[Option<std::ops::Range<usize>>; 3]>,
}

/// Licenses decrypted and re-sealed by the reading thread, for the writing thread.
#[derive(Default)]
struct ReadyBatch {
    text: String,
    sealed: Vec<u8>,
    rows: Vec<ReadyRow>,
}

impl ReadyBatch {
    fn push_text(&mut self, s: &str) -> std::ops::Range<usize> {
        let start = self.text.len();
        self.text.push_str(s);
        start..self.text.len()
    }

    fn text(&self, r: &Option<std::ops::Range<usize>>) -> Option<&str> {
        r.as_ref().map(|r| &self.text[r.clone()])
    }
}

impl RestoreTarget {
    /// Opens the store at `path` for a restore. With `individualize`, a fresh device identity is
    /// made now and applied at commit.
    pub(crate) fn new(path: &Path, individualize: bool) -> Result<Self> {
        file_kind::check(path, FileKind::Store)?;
        let conn = open_connection(path)?;
        conn.pragma_update(None, "cache_size", -STREAMING_CACHE_KIB)?;
        let device = if individualize { DeviceKeys::new(KeyPair::generate()) } else { load_device(&conn)? };
        Ok(RestoreTarget { conn, device, individualized: individualize })
    }

    /// The device the restored licenses are bound to.
    pub(crate) fn device(&self) -> &DeviceKeys {
        &self.device
    }

    /// Applies the licenses of `records` to the store in one transaction: re-binds existing
    /// licenses when individualizing, inserts the restored ones under `policy` (a thread reads
    /// and re-seals while this one writes), and adds catalog entries the device does not have.
    /// `expected` is what the earlier passes saw (count, key-ID digest): anything else rolls
    /// back with `ARCHIVE_CORRUPT`, as does any damaged record, and `stop()` (checked between
    /// batches) rolls back with its error. Returns (restored, skipped).
    pub(crate) fn apply<R: std::io::Read + Send>(
        mut self,
        policy: ConflictPolicy,
        records: crate::archive::RecordReader<R>,
        expected: &crate::archive::ScannedArchive,
        stop: &dyn Fn() -> Result<()>,
    ) -> Result<(u64, u64)> {
        let individualized = self.individualized;
        let device = &self.device;
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if !individualized && load_device(&tx)?.id() != device.id() {
            // An individualizing restore (through another store object on this file) replaced
            // the device key since this restore started: the archive was authorized for, and
            // would be sealed to, the old identity. Nothing is applied.
            return Err(Error::new(
                ErrorCode::Busy,
                "another restore gave this device a new identity while this one ran; nothing was restored, \
                 try again",
            ));
        }
        if individualized {
            rebind_all(&tx, device)?;
        }
        let (restored, seen) = std::thread::scope(|scope| -> Result<(u64, u64)> {
            let (ready, incoming) = std::sync::mpsc::sync_channel::<ReadyBatch>(APPLY_QUEUE);
            let reader = std::thread::Builder::new()
                .name("license-reseal".into())
                .spawn_scoped(scope, move || read_and_seal(records, device, ready))
                .map_err(|e| Error::internal(format!("cannot start a restore thread: {e}")))?;
            let written = write_batches(&tx, policy, incoming, stop);
            // The reader stops at its next send once `incoming` is dropped (on an error here).
            let read = reader.join().map_err(|_| Error::internal("the restore's reading thread panicked"))?;
            let restored = written?;
            let seen = read?;
            expected.check_same(&seen)?;
            let count = seen.licenses();
            Ok((restored, count))
        })?;
        tx.commit()?;
        Ok((restored, seen - restored))
    }
}

/// The reading side of [`RestoreTarget::apply`]: decrypts each record, re-seals its content
/// key to `device` and hands the licenses over in batches. Returns the licenses it read.
fn read_and_seal<R: std::io::Read>(
    mut records: crate::archive::RecordReader<R>,
    device: &DeviceKeys,
    ready: std::sync::mpsc::SyncSender<ReadyBatch>,
) -> Result<crate::archive::KeyTally> {
    let mut nonces = NoncePool::new(usize::MAX);
    let mut batch = ReadyBatch::default();
    while let Some(view) = records.next_view()? {
        let f = &view.fields;
        let start = batch.sealed.len();
        device.seal_content_key_into(&mut nonces, &f.key_id, view.content_key, &mut batch.sealed);
        let sealed = start..batch.sealed.len();
        let issuer = batch.push_text(f.issuer);
        let catalog = f.has_catalog().then(|| [f.title, f.artist, f.file_path].map(|t| t.map(|t| batch.push_text(t))));
        batch.rows.push(ReadyRow {
            key_id: f.key_id,
            sealed,
            rights: f.rights.clone(),
            issuer,
            issued_at: f.issued_at,
            catalog,
        });
        if batch.rows.len() == APPLY_BATCH && ready.send(std::mem::take(&mut batch)).is_err() {
            // The writing side stopped (its error is the one reported).
            return Err(Error::cancelled());
        }
    }
    if !batch.rows.is_empty() && ready.send(batch).is_err() {
        return Err(Error::cancelled());
    }
    Ok(records.tally().clone())
}

/// Rows per multi-row `INSERT` statement when a restore writes the store (one statement for
/// many rows costs far less than one per row).
const ROWS_PER_INSERT: usize = 64;

/// `VALUES (?, ?, ...), (...)`: `rows` groups of `columns` placeholders.
pub(crate) fn values_placeholders(columns: usize, rows: usize) -> String {
    let group = format!("({})", vec!["?"; columns].join(", "));
    vec![group; rows].join(", ")
}

/// Inserts `items` with `many` (a statement of [`ROWS_PER_INSERT`] rows of `columns` values)
/// and `one` (a single row) for the rest; `bind(stmt, first, item)` binds an item's values at
/// parameters `first..first + columns`. Returns the rows inserted.
pub(crate) fn insert_chunked<T>(
    many: &mut rusqlite::Statement<'_>,
    one: &mut rusqlite::Statement<'_>,
    columns: usize,
    items: &[T],
    mut bind: impl FnMut(&mut rusqlite::Statement<'_>, usize, &T) -> rusqlite::Result<()>,
) -> rusqlite::Result<usize> {
    let mut inserted = 0;
    let mut chunks = items.chunks_exact(ROWS_PER_INSERT);
    for chunk in &mut chunks {
        for (i, item) in chunk.iter().enumerate() {
            bind(many, 1 + i * columns, item)?;
        }
        inserted += many.raw_execute()?;
    }
    for item in chunks.remainder() {
        bind(one, 1, item)?;
        inserted += one.raw_execute()?;
    }
    Ok(inserted)
}

/// The writing side of [`RestoreTarget::apply`]: inserts every batch; returns how many licenses
/// were added.
fn write_batches(
    tx: &Connection,
    policy: ConflictPolicy,
    incoming: std::sync::mpsc::Receiver<ReadyBatch>,
    stop: &dyn Fn() -> Result<()>,
) -> Result<u64> {
    let verb = match policy {
        ConflictPolicy::Keep => "INSERT OR IGNORE",
        ConflictPolicy::Replace => "INSERT OR REPLACE",
    };
    let licenses =
        |rows| format!("{verb} INTO main.licenses VALUES {}", values_placeholders(LICENSE_ROW_COLUMNS, rows));
    let catalog = |rows| {
        format!(
            "INSERT OR IGNORE INTO main.catalog (key_id, title, artist, file_path) VALUES {}",
            values_placeholders(4, rows)
        )
    };
    let (mut licenses_many, mut licenses_one) = (tx.prepare(&licenses(ROWS_PER_INSERT))?, tx.prepare(&licenses(1))?);
    let (mut catalog_many, mut catalog_one) = (tx.prepare(&catalog(ROWS_PER_INSERT))?, tx.prepare(&catalog(1))?);
    let mut restored = 0u64;
    for batch in incoming {
        stop()?;
        restored +=
            insert_chunked(&mut licenses_many, &mut licenses_one, LICENSE_ROW_COLUMNS, &batch.rows, |stmt, at, row| {
                let sealed = &batch.sealed[row.sealed.clone()];
                bind_license_row(
                    stmt,
                    at,
                    &row.key_id,
                    sealed,
                    &row.rights,
                    &batch.text[row.issuer.clone()],
                    row.issued_at,
                )
            })? as u64;
        let with_catalog: Vec<&ReadyRow> = batch.rows.iter().filter(|r| r.catalog.is_some()).collect();
        insert_chunked(&mut catalog_many, &mut catalog_one, 4, &with_catalog, |stmt, at, row| {
            let [title, artist, file_path] = row.catalog.as_ref().expect("filtered on catalog");
            stmt.raw_bind_parameter(at, row.key_id.as_bytes().as_slice())?;
            stmt.raw_bind_parameter(at + 1, batch.text(title))?;
            stmt.raw_bind_parameter(at + 2, batch.text(artist))?;
            stmt.raw_bind_parameter(at + 3, batch.text(file_path))
        })?;
    }
    Ok(restored)
}

/// Re-seals every license in the store from its current device key to `device` (an
/// individualizing restore), a chunk at a time so memory stays flat.
fn rebind_all(tx: &Connection, device: &DeviceKeys) -> Result<()> {
    let old = load_device(tx)?;
    let mut nonces = NoncePool::new(usize::MAX);
    let mut read =
        tx.prepare("SELECT key_id, sealed_key FROM main.licenses WHERE key_id > ?1 ORDER BY key_id LIMIT ?2")?;
    let mut update = tx.prepare("UPDATE main.licenses SET sealed_key = ?2 WHERE key_id = ?1")?;
    let mut after: Vec<u8> = Vec::new();
    loop {
        let chunk: Vec<(Vec<u8>, Vec<u8>)> = read
            .query_map(params![after, RESEAL_CHUNK as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let Some((last, _)) = chunk.last() else { break };
        after = last.clone();
        for (kid, sealed) in &chunk {
            let key_id = KeyId::from_slice(kid)?;
            let key = old.open_content_key(&key_id, sealed)?;
            update.execute(params![kid, device.seal_content_key_from(&mut nonces, &key_id, &key)])?;
        }
    }
    tx.execute(
        "UPDATE main.device SET device_id = ?1, seed = ?2, created_at = ?3 WHERE singleton = 1",
        params![device.id().as_slice(), device.pair.seed().as_slice(), now_secs()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: u8) -> NewLicense {
        NewLicense {
            key_id: KeyId::from_bytes([n; 16]),
            content_key: vec![0xA0 ^ n; 16],
            rights: Rights::default(),
            issuer: "https://issuer.example".into(),
            issued_at: 1_700_000_000,
        }
    }

    /// The backup's scan merges the catalog in by key ID: it must say what the SQL join of
    /// `list_licenses` says, with catalog entries before, between and after the licenses,
    /// licenses without an entry, and entries with only some fields; and open every key.
    #[test]
    fn backup_scan_matches_the_joined_listing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LicenseStore::open(dir.path().join("s.db")).unwrap();
        for n in [2u8, 4, 6, 8, 9] {
            let mut l = sample(n);
            l.rights.backup_allowed = n != 4;
            l.rights.expires_at = (n == 6).then_some(1_900_000_000);
            l.rights.plays_remaining = (n == 8).then_some(3);
            store.add_license(&l, ConflictPolicy::Keep).unwrap();
        }
        let entry = |title: Option<&str>, artist: Option<&str>, file_path: Option<&str>| CatalogEntry {
            title: title.map(Into::into),
            artist: artist.map(Into::into),
            file_path: file_path.map(Into::into),
        };
        for (n, e) in [
            (1u8, entry(Some("before"), None, None)),
            (2, entry(Some("Two"), Some("Band"), None)),
            (3, entry(Some("between"), None, None)),
            (4, entry(None, Some("Only artist"), None)),
            (6, entry(None, None, Some("/music/six.mp3"))),
            (7, entry(Some("between again"), None, None)),
            (10, entry(Some("after"), None, None)),
        ] {
            store.set_catalog_entry(&KeyId::from_bytes([n; 16]), &e).unwrap();
        }
        let listed = store.list_licenses().unwrap();
        let mut scanned = Vec::new();
        store
            .with_conn(|c| {
                let device = load_device(c)?;
                scan_licenses(c, |l, sealed| {
                    let key = device.open_content_key(&l.key_id, sealed)?;
                    let fields = |s: Option<&str>| s.map(str::to_owned);
                    let catalog = CatalogEntry {
                        title: fields(l.title),
                        artist: fields(l.artist),
                        file_path: fields(l.file_path),
                    };
                    scanned.push((
                        License {
                            key_id: l.key_id,
                            rights: l.rights.clone(),
                            issuer: l.issuer.to_owned(),
                            issued_at: l.issued_at,
                            catalog: (!catalog.is_empty()).then_some(catalog),
                        },
                        key.to_vec(),
                    ));
                    Ok(())
                })
            })
            .unwrap();
        let listed: Vec<_> = listed.into_iter().map(|l| (l.catalog.clone().filter(|c| !c.is_empty()), l)).collect();
        assert_eq!(scanned.len(), listed.len());
        for ((got, key), (catalog, want)) in scanned.iter().zip(&listed) {
            assert_eq!(got.key_id, want.key_id);
            assert_eq!(got.rights, want.rights);
            assert_eq!((&got.issuer, got.issued_at), (&want.issuer, want.issued_at));
            assert_eq!(&got.catalog, catalog, "{}", want.key_id);
            assert_eq!(key, &vec![0xA0 ^ got.key_id.as_bytes()[0]; 16]);
        }
    }

    #[test]
    fn add_get_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = LicenseStore::open(dir.path().join("s.db")).unwrap();
        store.add_license(&sample(1), ConflictPolicy::Keep).unwrap();
        store.add_license(&sample(2), ConflictPolicy::Keep).unwrap();
        assert_eq!(store.license_count().unwrap(), 2);
        let err = store.add_license(&sample(1), ConflictPolicy::Keep).unwrap_err();
        assert_eq!(err.code(), ErrorCode::LicenseExists);
        let mut changed = sample(1);
        changed.rights.plays_remaining = Some(3);
        store.add_license(&changed, ConflictPolicy::Replace).unwrap();
        let got = store.get_license(&changed.key_id).unwrap().unwrap();
        assert_eq!(got.rights.plays_remaining, Some(3));
        assert_eq!(store.content_key(&changed.key_id).unwrap(), changed.content_key);
        assert_eq!(store.list_licenses().unwrap().len(), 2);
        assert!(store.remove_license(&changed.key_id).unwrap());
        assert!(!store.remove_license(&changed.key_id).unwrap());
        assert_eq!(store.content_key(&changed.key_id).unwrap_err().code(), ErrorCode::LicenseNotFound);
        assert_eq!(store.verify().unwrap(), 1);
    }

    #[test]
    fn identity_persists_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let id = LicenseStore::open(&path).unwrap().device_id().unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(LicenseStore::open(&path).unwrap().device_id().unwrap(), id);
        let other = LicenseStore::open(dir.path().join("t.db")).unwrap().device_id().unwrap();
        assert_ne!(id, other);
    }

    #[test]
    fn catalog_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = LicenseStore::open(dir.path().join("s.db")).unwrap();
        let kid = KeyId::from_bytes([7; 16]);
        assert_eq!(store.catalog_entry(&kid).unwrap(), None);
        let entry = CatalogEntry { title: Some("Song".into()), artist: Some("Band".into()), file_path: None };
        store.set_catalog_entry(&kid, &entry).unwrap();
        assert_eq!(store.catalog_entry(&kid).unwrap(), Some(entry.clone()));
        store.add_license(&sample(7), ConflictPolicy::Keep).unwrap();
        assert_eq!(store.get_license(&kid).unwrap().unwrap().catalog, Some(entry));
        assert!(store.remove_catalog_entry(&kid).unwrap());
        assert_eq!(store.get_license(&kid).unwrap().unwrap().catalog, None);
    }

    #[test]
    fn rejects_bad_input_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = LicenseStore::open(dir.path().join("s.db")).unwrap();
        let mut bad = sample(1);
        bad.content_key.clear();
        assert_eq!(store.add_license(&bad, ConflictPolicy::Keep).unwrap_err().code(), ErrorCode::InvalidArgument);
        assert_eq!(LicenseStore::open(dir.path()).unwrap_err().code(), ErrorCode::NotAFolder);
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![0x42u8; 8192]).unwrap();
        assert_eq!(LicenseStore::open(&junk).unwrap_err().code(), ErrorCode::WrongFileKind);
        assert_eq!(std::fs::read(&junk).unwrap(), vec![0x42u8; 8192]);
    }

    #[test]
    fn content_keys_are_not_stored_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = LicenseStore::open(&path).unwrap();
        let mut l = sample(9);
        l.content_key = b"CLEAR-CONTENT-KEY-MARKER".to_vec();
        store.add_license(&l, ConflictPolicy::Keep).unwrap();
        drop(store);
        let mut bytes = std::fs::read(&path).unwrap();
        if let Ok(wal) = std::fs::read(dir.path().join("s.db-wal")) {
            bytes.extend(wal);
        }
        assert!(!bytes.windows(l.content_key.len()).any(|w| w == l.content_key.as_slice()));
    }
}
