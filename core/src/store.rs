//! The license store: a transactional SQLite database holding this device's identity, its
//! licenses (content keys sealed to the device key, each seal bound to its row, and the
//! application's catalog entry of the same key ID beside it, unsealed), tombstones of removed
//! licenses, and the catalog entries of key IDs with no license on the device.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::clock::now_secs;
use crate::crypto::{KeyPair, NoncePool};
use crate::device::{DeviceKeys, RowFields, device_id_hex};
use crate::error::{Error, ErrorCode, Result};
use crate::file_kind::{self, FileKind};
use crate::key_id::KeyId;
use crate::license::{CatalogEntry, ConflictPolicy, ContentKey, License, LicenseFields, NewLicense, Rights};
use crate::protector::Protector;
use crate::secret;
use crate::sqlite::{Binder, Checkpointer, RawRows, STORE_PAGE_SIZE, open_connection_with, truncate_wal};

/// The schema version this library writes and reads.
pub const SCHEMA_VERSION: i64 = 4;

/// The migration steps, in order: step `n` moves a store from version `n - 1` to `n`. Each is
/// idempotent (it checks what is there) and runs, like all of them, in the one transaction that
/// opens the store: a store is migrated entirely or not at all.
const MIGRATIONS: &[(i64, MigrationStep)] =
    &[(1, migrate_to_1), (2, migrate_to_2), (3, migrate_to_3), (4, migrate_to_4)];

/// One migration step, run in the opening transaction.
type MigrationStep = fn(&Connection) -> Result<()>;

/// Version 1: the device (with its seed in clear), the licenses (content keys sealed to the
/// device, bound to the device ID and the key ID only) and the catalog.
fn migrate_to_1(tx: &Connection) -> Result<()> {
    tx.execute_batch(
        "
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
",
    )?;
    Ok(())
}

/// Version 2: the device's seed moves to the `secret` table (in clear, or wrapped by a
/// protector), every content key is sealed again bound to its whole row (rights, expiry, plays,
/// issuer, issue time), and removed licenses leave an authenticated tombstone.
fn migrate_to_2(tx: &Connection) -> Result<()> {
    tx.execute_batch(secret::SECRET_SCHEMA)?;
    tx.execute_batch(
        "
CREATE TABLE IF NOT EXISTS tombstones (
    key_id          BLOB PRIMARY KEY CHECK (length(key_id) = 16),
    play            INTEGER NOT NULL,
    burn            INTEGER NOT NULL,
    transfer        INTEGER NOT NULL,
    backup_allowed  INTEGER NOT NULL,
    expires_at      INTEGER,
    plays_remaining INTEGER,
    issuer          TEXT NOT NULL,
    issued_at       INTEGER NOT NULL,
    removed_at      INTEGER NOT NULL,
    seal            BLOB NOT NULL
) WITHOUT ROWID;
",
    )?;
    let has_seed: bool =
        tx.query_row("SELECT EXISTS (SELECT 1 FROM pragma_table_info('device') WHERE name = 'seed')", [], |r| {
            r.get(0)
        })?;
    if !has_seed {
        return Ok(());
    }
    let seed: Option<Vec<u8>> =
        tx.query_row("SELECT seed FROM device WHERE singleton = 1", [], |r| r.get(0)).optional()?;
    if let Some(seed) = seed {
        let seed = Zeroizing::new(seed);
        let device = DeviceKeys::new(KeyPair::from_seed_slice(&seed)?);
        let file = crate::protector::ProtectedFile { kind: FileKind::Store, file_id: crate::crypto::random_array() };
        secret::insert(tx, &file, &device.pair, &Protector::unprotected())?;
        reseal_v1_rows(tx, &device)?;
    }
    tx.execute_batch("ALTER TABLE device DROP COLUMN seed;")?;
    Ok(())
}

/// Version 3: the services this device registered with (`crate::registration`), and the
/// journal of restore reservations not yet settled with their service (`crate::journal`).
fn migrate_to_3(tx: &Connection) -> Result<()> {
    tx.execute_batch(
        "
CREATE TABLE IF NOT EXISTS registrations (
    service_key   BLOB NOT NULL CHECK (length(service_key) = 16),
    device_id     BLOB NOT NULL CHECK (length(device_id) = 16),
    registered_at INTEGER NOT NULL,
    PRIMARY KEY (service_key, device_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS restore_journal (
    request_id  BLOB PRIMARY KEY CHECK (length(request_id) = 16),
    service_key BLOB NOT NULL CHECK (length(service_key) = 16),
    archive_id  BLOB NOT NULL CHECK (length(archive_id) = 16),
    state       TEXT NOT NULL CHECK (state IN ('requested', 'committed', 'releasing')),
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;
",
    )?;
    Ok(())
}

/// Version 4: a license's catalog entry moves into its row (`title`, `artist`, `file_path`, and
/// `cataloged` saying whether there is an entry), so a license and its entry are one row, one
/// B-tree insert; the `catalog` table keeps only the entries of key IDs with no license. The
/// seal binds the same fields as before (the catalog is the application's unsealed metadata).
fn migrate_to_4(tx: &Connection) -> Result<()> {
    let has_columns: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('licenses') WHERE name = 'cataloged')",
        [],
        |r| r.get(0),
    )?;
    if !has_columns {
        tx.execute_batch(
            "
ALTER TABLE licenses ADD COLUMN title TEXT;
ALTER TABLE licenses ADD COLUMN artist TEXT;
ALTER TABLE licenses ADD COLUMN file_path TEXT;
ALTER TABLE licenses ADD COLUMN cataloged INTEGER NOT NULL DEFAULT 0 CHECK (cataloged IN (0, 1));
",
        )?;
    }
    tx.execute_batch(
        "
UPDATE licenses SET title = c.title, artist = c.artist, file_path = c.file_path, cataloged = 1
    FROM catalog c WHERE c.key_id = licenses.key_id;
DELETE FROM catalog WHERE key_id IN (SELECT key_id FROM licenses);
",
    )?;
    Ok(())
}

/// Seals every content key of a version-1 store again, bound to its row.
fn reseal_v1_rows(tx: &Connection, device: &DeviceKeys) -> Result<()> {
    let mut nonces = NoncePool::new(usize::MAX);
    let mut read =
        tx.prepare(&format!("SELECT {ROW_COLUMNS} FROM licenses WHERE key_id > ?1 ORDER BY key_id LIMIT 1024"))?;
    let mut update = tx.prepare("UPDATE licenses SET sealed_key = ?2 WHERE key_id = ?1")?;
    let mut after: Vec<u8> = Vec::new();
    loop {
        let chunk: Vec<StoredRow> = read.query_map([&after], stored_row)?.collect::<rusqlite::Result<_>>()?;
        let Some(last) = chunk.last() else { break };
        after = last.key_id.as_bytes().to_vec();
        for row in &chunk {
            let key = device.open_v1(&row.key_id, &row.sealed)?;
            update.execute(params![
                row.key_id.as_bytes().as_slice(),
                device.seal_row(&mut nonces, &row.fields(), &key)
            ])?;
        }
    }
    Ok(())
}

/// The columns of a license row that its seal binds, and the sealed key, in [`stored_row`]'s
/// order.
pub(crate) const ROW_COLUMNS: &str =
    "key_id, play, burn, transfer, backup_allowed, expires_at, plays_remaining, issuer, issued_at, sealed_key";

/// A license row (or a tombstone, whose seal stands in the sealed key's place) as stored.
pub(crate) struct StoredRow {
    pub(crate) key_id: KeyId,
    pub(crate) rights: Rights,
    pub(crate) issuer: String,
    pub(crate) issued_at: i64,
    pub(crate) sealed: Vec<u8>,
}

impl StoredRow {
    pub(crate) fn fields(&self) -> RowFields<'_> {
        RowFields { key_id: &self.key_id, rights: &self.rights, issuer: &self.issuer, issued_at: self.issued_at }
    }
}

/// The key ID and rights of a row whose first seven columns are those of [`ROW_COLUMNS`].
fn key_id_and_rights(r: &rusqlite::Row<'_>) -> rusqlite::Result<(KeyId, Rights)> {
    let key_id: Vec<u8> = r.get(0)?;
    let key_id = KeyId::from_slice(&key_id)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e)))?;
    let rights = Rights {
        play: r.get(1)?,
        burn: r.get(2)?,
        transfer: r.get(3)?,
        backup_allowed: r.get(4)?,
        expires_at: r.get(5)?,
        plays_remaining: r.get(6)?,
    };
    Ok((key_id, rights))
}

/// Reads a row selected with [`ROW_COLUMNS`] (or the tombstone columns in the same order).
pub(crate) fn stored_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRow> {
    let (key_id, rights) = key_id_and_rights(r)?;
    Ok(StoredRow { key_id, rights, issuer: r.get(7)?, issued_at: r.get(8)?, sealed: r.get(9)? })
}

/// The columns of a tombstone, in [`stored_row`]'s order.
pub(crate) const TOMBSTONE_COLUMNS: &str =
    "key_id, play, burn, transfer, backup_allowed, expires_at, plays_remaining, issuer, issued_at, seal";

/// The tombstone of a key ID, checked against its seal, if there is one.
pub(crate) fn tombstone(conn: &Connection, device: &DeviceKeys, key_id: &KeyId) -> Result<Option<StoredRow>> {
    let row = conn
        .prepare_cached(&format!("SELECT {TOMBSTONE_COLUMNS} FROM main.tombstones WHERE key_id = ?1"))?
        .query_row([key_id.as_bytes().as_slice()], stored_row)
        .optional()?;
    if let Some(t) = &row {
        device.check_tombstone(&t.fields(), &t.sealed)?;
    }
    Ok(row)
}

/// Writes (or replaces) the tombstone of a removed license, sealed by `device`.
pub(crate) fn put_tombstone(
    conn: &Connection,
    device: &DeviceKeys,
    nonces: &mut NoncePool,
    row: &RowFields<'_>,
) -> Result<()> {
    let r = row.rights;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO main.tombstones (key_id, play, burn, transfer, backup_allowed, expires_at, \
         plays_remaining, issuer, issued_at, removed_at, seal) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        row.key_id.as_bytes().as_slice(),
        r.play,
        r.burn,
        r.transfer,
        r.backup_allowed,
        r.expires_at,
        r.plays_remaining,
        row.issuer,
        row.issued_at,
        now_secs(),
        device.seal_tombstone(nonces, row),
    ])?;
    Ok(())
}

/// What a tombstone of a license whose row was tampered with records: nothing is allowed, so a
/// restore of its key ID can grant nothing.
pub(crate) fn nothing_allowed() -> Rights {
    Rights {
        play: false,
        burn: false,
        transfer: false,
        backup_allowed: false,
        expires_at: Some(0),
        plays_remaining: Some(0),
    }
}

const LICENSE_COLUMNS: &str = "key_id, play, burn, transfer, backup_allowed, expires_at, plays_remaining, issuer, \
     issued_at, cataloged, title, artist, file_path, sealed_key";

/// The columns of the `licenses` table in the order [`bind_license_values`] binds them: the
/// license's (sealed by its row), then its catalog entry's.
pub(crate) const LICENSE_INSERT_COLUMNS: &str = "key_id, sealed_key, play, burn, transfer, backup_allowed, \
     expires_at, plays_remaining, issuer, issued_at, title, artist, file_path, cataloged";

/// What an upsert of a license row changes in the row it replaces: the license, not the
/// catalog entry the row holds.
pub(crate) const LICENSE_UPSERT: &str = "ON CONFLICT (key_id) DO UPDATE SET sealed_key = excluded.sealed_key, \
     play = excluded.play, burn = excluded.burn, transfer = excluded.transfer, \
     backup_allowed = excluded.backup_allowed, expires_at = excluded.expires_at, \
     plays_remaining = excluded.plays_remaining, issuer = excluded.issuer, issued_at = excluded.issued_at";

/// How a store is opened: which [`Protector`] holds its secret seed. There is no default: the
/// choice is named ([`StoreOptions::unprotected`] or [`StoreOptions::protected`]).
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The protector of the device's seed.
    pub protector: Protector,
}

impl StoreOptions {
    /// The device's seed in clear in the store file (see [`Protector::unprotected`]).
    pub fn unprotected() -> Self {
        StoreOptions { protector: Protector::unprotected() }
    }

    /// The device's seed wrapped by `protector`.
    pub fn protected(protector: Protector) -> Self {
        StoreOptions { protector }
    }
}

/// The device's keys as a store and its operations use them: opened once through the
/// protector and kept (wiped when dropped); opened again only when the store's device changed
/// (an individualizing restore through another store object or process).
pub(crate) struct StoreKeys {
    protector: Protector,
    cached: Mutex<Option<Arc<DeviceKeys>>>,
}

impl StoreKeys {
    /// The device's keys for the snapshot `conn` reads (the caller holds its transaction).
    pub(crate) fn load(&self, conn: &Connection) -> Result<Arc<DeviceKeys>> {
        let id: Vec<u8> = conn
            .query_row("SELECT device_id FROM main.device WHERE singleton = 1", [], |r| r.get(0))
            .optional()?
            .ok_or_else(|| Error::new(ErrorCode::Storage, "the store has no device identity"))?;
        if let Some(keys) = self.cached.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if keys.id().as_slice() == id.as_slice() {
                return Ok(Arc::clone(keys));
            }
        }
        let keys = Arc::new(DeviceKeys::new(secret::load(conn, FileKind::Store, &self.protector)?));
        if keys.id().as_slice() != id.as_slice() {
            return Err(Error::new(ErrorCode::Storage, "the store's device ID does not match its key"));
        }
        self.remember(Arc::clone(&keys));
        Ok(keys)
    }

    /// Keeps `keys` (a restore that individualized the device hands its new keys over).
    pub(crate) fn remember(&self, keys: Arc<DeviceKeys>) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(keys);
    }

    /// The protector the store was opened with.
    pub(crate) fn protector(&self) -> &Protector {
        &self.protector
    }
}

/// A persistent, transactional store of the licenses on this device.
///
/// Opening a path that does not exist creates a store with a fresh device identity. Every call
/// is a transaction of its own; backup and restore open their own connections, so the store may
/// be used (read, and written between operations) while an operation runs.
///
/// Every read that hands rights to the application ([`LicenseStore::get_license`],
/// [`LicenseStore::list_licenses`], [`LicenseStore::content_key`], [`LicenseStore::verify`],
/// a backup) checks each row against its seal and fails with `LICENSE_TAMPERED`, naming the key
/// ID, when it was edited outside this library.
pub struct LicenseStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    keys: Arc<StoreKeys>,
    busy: AtomicBool,
    /// Copies a restore's write-ahead log back into the file after the restore has ended.
    checkpointer: Arc<Checkpointer>,
}

impl std::fmt::Debug for LicenseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Drop for LicenseStore {
    fn drop(&mut self) {
        // Whatever the WAL still holds (old pages of removed licenses) is copied back, wiped by
        // secure_delete, and the WAL truncated, when no other connection reads the file.
        self.checkpointer.wait();
        if let Ok(conn) = self.conn.lock() {
            truncate_wal(&conn);
        }
    }
}

impl LicenseStore {
    /// Opens the store at `path` without a key protector ([`StoreOptions::unprotected`]: the
    /// device's seed is kept in clear in the file), creating it with a fresh device identity if
    /// it does not exist. The folder that holds it must exist. A protected store fails with
    /// `PROTECTOR_REQUIRED`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, StoreOptions::unprotected())
    }

    /// Opens the store at `path` with `options`, creating it if it does not exist.
    ///
    /// With a protector, a new store keeps its seed only wrapped by it, and an existing
    /// unprotected store is protected in place (in the transaction that opens it: a crash
    /// leaves it unprotected or protected, never in between). A protected store opened without
    /// its protector fails with `PROTECTOR_REQUIRED`; with a protector that cannot unwrap its
    /// seed, with `PROTECTOR_MISMATCH` or `PROTECTOR_FAILED`; either way nothing is changed.
    /// Older stores are migrated in the same transaction.
    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        crate::interface::check_path("path", &path)?;
        if path.is_dir() {
            return Err(Error::new(ErrorCode::NotAFolder, format!("{} is a folder, not a store file", path.display())));
        }
        file_kind::check(&path, FileKind::Store)?;
        let mut conn = open_connection_with(&path, Some(STORE_PAGE_SIZE))?;
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
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (to, step) in MIGRATIONS {
            if version < *to {
                step(&tx)?;
            }
        }
        FileKind::Store.mark(&tx)?;
        let (pair, _) = secret::open_or_create(&tx, FileKind::Store, &options.protector, KeyPair::generate)?;
        let device_id: Option<Vec<u8>> =
            tx.query_row("SELECT device_id FROM device WHERE singleton = 1", [], |r| r.get(0)).optional()?;
        match device_id {
            None => {
                tx.execute(
                    "INSERT INTO device (singleton, device_id, created_at) VALUES (1, ?1, ?2)",
                    params![pair.id().as_slice(), now_secs()],
                )?;
            }
            Some(id) if id.as_slice() != pair.id().as_slice() => {
                return Err(Error::new(ErrorCode::Storage, "the store's device ID does not match its key"));
            }
            Some(_) => {}
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        if version != 0 && version < SCHEMA_VERSION {
            tracing::info!(path = %path.display(), from = version, to = SCHEMA_VERSION, "store schema migrated");
        }
        // Into the main file now, so the kind is in its header for every later open.
        file_kind::checkpoint(&conn);
        tracing::debug!(
            path = %path.display(),
            created = device_id.is_none(),
            protector = options.protector.label(),
            "store opened (its write-ahead log checkpointed)"
        );
        let keys =
            StoreKeys { protector: options.protector, cached: Mutex::new(Some(Arc::new(DeviceKeys::new(pair)))) };
        Ok(LicenseStore {
            path,
            conn: Mutex::new(conn),
            keys: Arc::new(keys),
            busy: AtomicBool::new(false),
            checkpointer: Arc::default(),
        })
    }

    /// The path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The label of the protector the store was opened with (`"unprotected"` without one).
    pub fn protector_label(&self) -> String {
        self.keys.protector().label()
    }

    /// What copies a restore's write-ahead log back into the file once the restore has ended.
    pub(crate) fn checkpointer(&self) -> Arc<Checkpointer> {
        Arc::clone(&self.checkpointer)
    }

    /// The device's keys, shared with the store's operations.
    pub(crate) fn keys(&self) -> Arc<StoreKeys> {
        Arc::clone(&self.keys)
    }

    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().map_err(|_| Error::internal("license store lock poisoned"))?;
        f(&mut conn)
    }

    /// This device's identity: 32 hex digits, a fingerprint of its public key. It changes when a
    /// restore individualizes the device.
    pub fn device_id(&self) -> Result<String> {
        self.with_conn(|c| Ok(device_id_hex(&self.keys.load(c)?.id())))
    }

    /// Adds a license. With [`ConflictPolicy::Keep`] an existing key ID is an error
    /// (`LICENSE_EXISTS`) and the stored license is left as it is; with
    /// [`ConflictPolicy::Replace`] it is replaced.
    pub fn add_license(&self, license: &NewLicense, policy: ConflictPolicy) -> Result<()> {
        self.add_licenses(std::slice::from_ref(license), policy)
    }

    /// Adds many licenses in one transaction: all are added, or none (the first conflict under
    /// [`ConflictPolicy::Keep`] fails the whole batch with `LICENSE_EXISTS`). Adding a license is
    /// the application acquiring it: a tombstone of its key ID (it was removed before) goes.
    pub fn add_licenses(&self, licenses: &[NewLicense], policy: ConflictPolicy) -> Result<()> {
        for l in licenses {
            l.validate()?;
        }
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // Inside the write transaction: an individualizing restore (from another
            // connection) cannot replace the device key between this read and the insert.
            let device = self.keys.load(&tx)?;
            {
                // A license keeps the catalog entry its key ID had (without a license, it was in
                // the catalog table; with one, it stays in the row a replacement updates).
                let sql = format!(
                    "INSERT INTO licenses ({LICENSE_INSERT_COLUMNS}) VALUES ({}) {}",
                    (1..=LICENSE_ROW_COLUMNS).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", "),
                    if policy == ConflictPolicy::Replace { LICENSE_UPSERT } else { "" }
                );
                let mut stmt = tx.prepare_cached(&sql)?;
                let mut forget = tx.prepare_cached("DELETE FROM tombstones WHERE key_id = ?1")?;
                let mut unlisted = tx.prepare_cached(UNLISTED_TAKE)?;
                let mut nonces = NoncePool::new(licenses.len());
                for l in licenses {
                    let row =
                        RowFields { key_id: &l.key_id, rights: &l.rights, issuer: &l.issuer, issued_at: l.issued_at };
                    let sealed = device.seal_row(&mut nonces, &row, &l.content_key);
                    let entry = unlisted.query_row([l.key_id.as_bytes().as_slice()], catalog_entry).optional()?;
                    let res =
                        insert_row(&mut stmt, &l.key_id, &sealed, &l.rights, &l.issuer, l.issued_at, entry.as_ref());
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
                    forget.execute([l.key_id.as_bytes().as_slice()])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The license with this key ID, without its content key; `None` if there is none.
    /// `LICENSE_TAMPERED` if its row was edited outside this library.
    pub fn get_license(&self, key_id: &KeyId) -> Result<Option<License>> {
        self.with_conn(|c| {
            let tx = c.transaction()?;
            let device = self.keys.load(&tx)?;
            let sql = format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE key_id = ?1");
            let found = tx.query_row(&sql, [key_id.as_bytes().as_slice()], license_from_row).optional()?;
            let Some((license, sealed)) = found else { return Ok(None) };
            device.check_row(&row_of(&license), &sealed, &mut Vec::new(), &mut Vec::new())?;
            Ok(Some(license))
        })
    }

    /// Every license, ordered by key ID, without content keys. `LICENSE_TAMPERED` (naming the
    /// first) if a row was edited outside this library.
    pub fn list_licenses(&self) -> Result<Vec<License>> {
        self.with_conn(|c| {
            let tx = c.transaction()?;
            let device = self.keys.load(&tx)?;
            let sql = format!("SELECT {LICENSE_COLUMNS} FROM licenses ORDER BY key_id");
            let mut stmt = tx.prepare(&sql)?;
            let mut rows = stmt.query([])?;
            let (mut aad, mut scratch) = (Vec::new(), Vec::new());
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let (license, sealed) = license_from_row(row)?;
                device.check_row(&row_of(&license), &sealed, &mut aad, &mut scratch)?;
                out.push(license);
            }
            Ok(out)
        })
    }

    /// Removes a license; returns whether there was one. Its catalog entry stays. A tombstone
    /// keeps its key ID and last rights (sealed like the rows), so a restore of an older
    /// archive can never give it back more than it had; one whose row was edited outside this
    /// library is removed too, its tombstone allowing nothing. The freed bytes are overwritten
    /// (`secure_delete`) and the write-ahead log truncated when no other connection reads the
    /// file.
    pub fn remove_license(&self, key_id: &KeyId) -> Result<bool> {
        self.with_conn(|c| {
            let removed = {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let device = self.keys.load(&tx)?;
                let Some(row) = read_row(&tx, key_id)? else { return Ok(false) };
                let mut fields = row.fields();
                let nothing = nothing_allowed();
                if device.check_row(&fields, &row.sealed, &mut Vec::new(), &mut Vec::new()).is_err() {
                    fields.rights = &nothing;
                }
                put_tombstone(&tx, &device, &mut NoncePool::new(1), &fields)?;
                tx.execute(
                    "INSERT OR REPLACE INTO catalog (key_id, title, artist, file_path) \
                     SELECT key_id, title, artist, file_path FROM licenses WHERE key_id = ?1 AND cataloged",
                    [key_id.as_bytes().as_slice()],
                )?;
                tx.execute("DELETE FROM licenses WHERE key_id = ?1", [key_id.as_bytes().as_slice()])?;
                tx.commit()?;
                true
            };
            truncate_wal(c);
            Ok(removed)
        })
    }

    /// How many licenses the store holds.
    pub fn license_count(&self) -> Result<u64> {
        self.with_conn(|c| Ok(c.query_row("SELECT count(*) FROM licenses", [], |r| r.get::<_, i64>(0))? as u64))
    }

    /// The content key of a license, opened with this device's key: what a player needs to
    /// decrypt the content. `LICENSE_NOT_FOUND` if there is no such license, `LICENSE_TAMPERED`
    /// if its row was edited. The returned buffer is wiped when dropped; copies the caller
    /// makes are its own.
    pub fn content_key(&self, key_id: &KeyId) -> Result<ContentKey> {
        self.with_conn(|c| {
            // One read transaction: the device key and the sealed key come from one snapshot.
            let tx = c.transaction()?;
            let device = self.keys.load(&tx)?;
            let row = read_row(&tx, key_id)?.ok_or_else(|| not_found(key_id))?;
            Ok(ContentKey::new(device.open_row(&row.fields(), &row.sealed)?))
        })
    }

    /// Replaces the rights of a license (the application renewed or changed them with its
    /// license server) and seals its row again. `LICENSE_NOT_FOUND` if there is none,
    /// `LICENSE_TAMPERED` if its row was edited outside this library (nothing is changed).
    pub fn update_rights(&self, key_id: &KeyId, rights: &Rights) -> Result<()> {
        rights.validate(&crate::interface::ArgPath::arg("rights"))?;
        self.change(key_id, |_| Ok(rights.clone())).map(|_| ())
    }

    /// Records one play of a license: checks that it may be played now (`PLAY_NOT_ALLOWED`,
    /// `LICENSE_EXPIRED`, `PLAYS_EXHAUSTED` at zero plays remaining), takes one play off a
    /// limited count and seals the row again. Returns the rights after the play.
    pub fn use_play(&self, key_id: &KeyId) -> Result<Rights> {
        self.change(key_id, |r| {
            if !r.play {
                return Err(Error::new(
                    ErrorCode::PlayNotAllowed,
                    format!("the license {key_id} does not allow playing"),
                ));
            }
            if let Some(t) = r.expires_at {
                if t <= now_secs() {
                    return Err(Error::new(ErrorCode::LicenseExpired, format!("the license {key_id} expired at {t}")));
                }
            }
            let mut after = r.clone();
            match r.plays_remaining {
                Some(0) => {
                    return Err(Error::new(
                        ErrorCode::PlaysExhausted,
                        format!("no plays remain on the license {key_id}"),
                    ));
                }
                Some(n) => after.plays_remaining = Some(n - 1),
                None => {}
            }
            Ok(after)
        })
    }

    /// Changes a license's rights with `f` (given the authenticated rights) and seals the row
    /// again, in one transaction. Returns the new rights.
    fn change(&self, key_id: &KeyId, f: impl FnOnce(&Rights) -> Result<Rights>) -> Result<Rights> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let device = self.keys.load(&tx)?;
            let row = read_row(&tx, key_id)?.ok_or_else(|| not_found(key_id))?;
            let key = device.open_row(&row.fields(), &row.sealed)?;
            let rights = f(&row.rights)?;
            let fields = RowFields { rights: &rights, ..row.fields() };
            let sealed = device.seal_row(&mut NoncePool::new(1), &fields, &key);
            tx.execute(
                "UPDATE licenses SET sealed_key = ?2, play = ?3, burn = ?4, transfer = ?5, backup_allowed = ?6, \
                 expires_at = ?7, plays_remaining = ?8 WHERE key_id = ?1",
                params![
                    key_id.as_bytes().as_slice(),
                    sealed,
                    rights.play,
                    rights.burn,
                    rights.transfer,
                    rights.backup_allowed,
                    rights.expires_at,
                    rights.plays_remaining
                ],
            )?;
            tx.commit()?;
            Ok(rights)
        })
    }

    /// Sets (replaces) the catalog entry of a key ID. The catalog is independent of the
    /// licenses: an application may describe content whose license is not (yet) on the device.
    /// It is the application's metadata, not part of a license: it is not sealed.
    pub fn set_catalog_entry(&self, key_id: &KeyId, entry: &CatalogEntry) -> Result<()> {
        entry.validate()?;
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let k = key_id.as_bytes().as_slice();
            let in_row = tx.execute(
                "UPDATE licenses SET title = ?2, artist = ?3, file_path = ?4, cataloged = 1 WHERE key_id = ?1",
                params![k, entry.title, entry.artist, entry.file_path],
            )?;
            if in_row == 0 {
                tx.execute(
                    "INSERT OR REPLACE INTO catalog (key_id, title, artist, file_path) VALUES (?1, ?2, ?3, ?4)",
                    params![k, entry.title, entry.artist, entry.file_path],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The catalog entry of a key ID, if there is one.
    pub fn catalog_entry(&self, key_id: &KeyId) -> Result<Option<CatalogEntry>> {
        self.with_conn(|c| {
            Ok(c.query_row(
                &format!("{CATALOG_SELECT} WHERE key_id = ?1 ORDER BY licensed DESC LIMIT 1"),
                [key_id.as_bytes().as_slice()],
                |r| catalog_entry_at(r, 1),
            )
            .optional()?)
        })
    }

    /// Removes the catalog entry of a key ID; returns whether there was one.
    pub fn remove_catalog_entry(&self, key_id: &KeyId) -> Result<bool> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let k = key_id.as_bytes().as_slice();
            let in_row = tx.execute(
                "UPDATE licenses SET title = NULL, artist = NULL, file_path = NULL, cataloged = 0 \
                 WHERE key_id = ?1 AND cataloged",
                [k],
            )?;
            let unlisted = tx.execute("DELETE FROM catalog WHERE key_id = ?1", [k])?;
            tx.commit()?;
            Ok(in_row + unlisted > 0)
        })
    }

    /// Every catalog entry, ordered by key ID, whether or not a license for it is on the device.
    pub fn list_catalog(&self) -> Result<Vec<(KeyId, CatalogEntry)>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare(&format!("{CATALOG_SELECT} ORDER BY key_id, licensed DESC"))?;
            let mut rows = stmt.query([])?;
            let mut entries: Vec<(KeyId, CatalogEntry)> = Vec::new();
            while let Some(row) = rows.next()? {
                let key_id = KeyId::from_slice(&row.get::<_, Vec<u8>>(0)?)?;
                // A key ID in both places (only an edit outside this library makes one): the
                // license's row is what `get_license` shows.
                if entries.last().is_some_and(|(k, _)| *k == key_id) {
                    continue;
                }
                entries.push((key_id, catalog_entry_at(row, 1)?));
            }
            Ok(entries)
        })
    }

    /// Checks the database's integrity (`PRAGMA integrity_check`), that every license row
    /// matches its seal and every tombstone its own (`LICENSE_TAMPERED`, naming the key ID).
    /// Returns the number of licenses checked.
    pub fn verify(&self) -> Result<u64> {
        self.with_conn(|c| {
            // One read transaction: the device key and the rows come from one snapshot.
            let tx = c.transaction()?;
            let status: String = tx.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
            if status != "ok" {
                return Err(Error::new(ErrorCode::Storage, format!("integrity check failed: {status}")));
            }
            let device = self.keys.load(&tx)?;
            let (mut aad, mut scratch) = (Vec::new(), Vec::new());
            let mut n = 0;
            {
                let mut stmt = tx.prepare(&format!("SELECT {ROW_COLUMNS} FROM licenses"))?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    let row = stored_row(row)?;
                    device.check_row(&row.fields(), &row.sealed, &mut aad, &mut scratch)?;
                    n += 1;
                }
            }
            let mut stmt = tx.prepare(&format!("SELECT {TOMBSTONE_COLUMNS} FROM tombstones"))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let t = stored_row(row)?;
                device.check_tombstone(&t.fields(), &t.sealed)?;
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

/// The row of a key ID, as stored (not checked).
pub(crate) fn read_row(conn: &Connection, key_id: &KeyId) -> Result<Option<StoredRow>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM main.licenses WHERE key_id = ?1"))?
        .query_row([key_id.as_bytes().as_slice()], stored_row)
        .optional()?)
}

fn row_of(l: &License) -> RowFields<'_> {
    RowFields { key_id: &l.key_id, rights: &l.rights, issuer: &l.issuer, issued_at: l.issued_at }
}

/// Columns of a row of the `licenses` table.
pub(crate) const LICENSE_ROW_COLUMNS: usize = 14;

/// Takes the catalog entry of a key ID with no license out of the `catalog` table (the license
/// about to be inserted holds it from now on).
pub(crate) const UNLISTED_TAKE: &str = "DELETE FROM main.catalog WHERE key_id = ?1 RETURNING title, artist, file_path";

/// Every catalog entry: those in license rows and those of key IDs with no license
/// (`key_id, title, artist, file_path, licensed`).
const CATALOG_SELECT: &str = "SELECT * FROM (SELECT key_id, title, artist, file_path, 1 AS licensed FROM licenses \
     WHERE cataloged UNION ALL SELECT key_id, title, artist, file_path, 0 FROM catalog)";

/// A catalog entry from three text columns starting at `at`.
fn catalog_entry_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<CatalogEntry> {
    Ok(CatalogEntry { title: r.get(at)?, artist: r.get(at + 1)?, file_path: r.get(at + 2)? })
}

/// A catalog entry selected as `title, artist, file_path`.
pub(crate) fn catalog_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<CatalogEntry> {
    catalog_entry_at(r, 0)
}

/// Binds one license's values and its catalog entry, in the order of
/// [`LICENSE_INSERT_COLUMNS`], at parameters `at .. at + LICENSE_ROW_COLUMNS` of a prepared
/// `INSERT ... VALUES (?, ...)`.
#[allow(clippy::too_many_arguments)]
fn bind_license_row(
    stmt: &mut rusqlite::Statement<'_>,
    at: usize,
    key_id: &KeyId,
    sealed_key: &[u8],
    r: &Rights,
    issuer: &str,
    issued_at: i64,
    entry: Option<&CatalogEntry>,
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
    stmt.raw_bind_parameter(at + 9, issued_at)?;
    stmt.raw_bind_parameter(at + 10, entry.and_then(|e| e.title.as_deref()))?;
    stmt.raw_bind_parameter(at + 11, entry.and_then(|e| e.artist.as_deref()))?;
    stmt.raw_bind_parameter(at + 12, entry.and_then(|e| e.file_path.as_deref()))?;
    stmt.raw_bind_parameter(at + 13, entry.is_some())
}

/// The same values as [`bind_license_row`], bound without copies through a [`Binder`]; the
/// catalog entry as its three fields.
#[allow(clippy::too_many_arguments)]
pub(crate) fn bind_license_values<'a>(
    b: &mut Binder<'a>,
    at: usize,
    key_id: &'a KeyId,
    sealed_key: &'a [u8],
    r: &Rights,
    issuer: &'a str,
    issued_at: i64,
    entry: Option<[Option<&'a str>; 3]>,
) {
    b.blob(at, key_id.as_bytes());
    b.blob(at + 1, sealed_key);
    b.int(at + 2, Some(i64::from(r.play)));
    b.int(at + 3, Some(i64::from(r.burn)));
    b.int(at + 4, Some(i64::from(r.transfer)));
    b.int(at + 5, Some(i64::from(r.backup_allowed)));
    b.int(at + 6, r.expires_at);
    b.int(at + 7, r.plays_remaining.map(i64::from));
    b.text(at + 8, Some(issuer));
    b.int(at + 9, Some(issued_at));
    let [title, artist, file_path] = entry.unwrap_or([None; 3]);
    b.text(at + 10, title);
    b.text(at + 11, artist);
    b.text(at + 12, file_path);
    b.int(at + 13, Some(i64::from(entry.is_some())));
}

/// Executes a prepared `INSERT ... INTO licenses (LICENSE_INSERT_COLUMNS) VALUES (?1 .. ?14)`
/// for one license.
fn insert_row(
    stmt: &mut rusqlite::CachedStatement<'_>,
    key_id: &KeyId,
    sealed_key: &[u8],
    r: &Rights,
    issuer: &str,
    issued_at: i64,
    entry: Option<&CatalogEntry>,
) -> rusqlite::Result<usize> {
    bind_license_row(stmt, 1, key_id, sealed_key, r, issuer, issued_at, entry)?;
    stmt.raw_execute()
}

fn not_found(key_id: &KeyId) -> Error {
    Error::new(ErrorCode::LicenseNotFound, format!("no license with key ID {key_id}"))
}

/// A license selected with `LICENSE_COLUMNS`, and its sealed key.
fn license_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(License, Vec<u8>)> {
    let (key_id, rights) = key_id_and_rights(r)?;
    let has_catalog: bool = r.get(9)?;
    let license = License {
        key_id,
        rights,
        issuer: r.get(7)?,
        issued_at: r.get(8)?,
        catalog: if has_catalog {
            Some(CatalogEntry { title: r.get(10)?, artist: r.get(11)?, file_path: r.get(12)? })
        } else {
            None
        },
    };
    Ok((license, r.get(13)?))
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
pub(crate) fn scan_licenses(
    conn: &Connection,
    mut visit: impl FnMut(&LicenseFields<'_>, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut licenses = RawRows::prepare(
        conn,
        "SELECT key_id, play, burn, transfer, backup_allowed, expires_at, plays_remaining, issuer, issued_at, \
         sealed_key, cataloged, title, artist, file_path FROM licenses ORDER BY key_id",
    )?;
    while licenses.step()? {
        let key_id = raw_key_id(&licenses, 0)?;
        let listed = licenses.int(10) != 0;
        let text = |i| if listed { licenses.opt_text(10 + i) } else { Ok(None) };
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
                let device = store.keys.load(c)?;
                scan_licenses(c, |l, sealed| {
                    let row =
                        RowFields { key_id: &l.key_id, rights: &l.rights, issuer: l.issuer, issued_at: l.issued_at };
                    let key = device.open_row(&row, sealed)?;
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
    fn new_stores_get_the_larger_pages_and_existing_ones_keep_theirs() {
        use crate::sqlite::{create_with_page_size, page_size};
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.db");
        LicenseStore::open(&new).unwrap().add_license(&sample(1), ConflictPolicy::Keep).unwrap();
        assert_eq!(page_size(&new), i64::from(STORE_PAGE_SIZE));
        // A file that already has its page size (4 KiB, SQLite's default, which earlier
        // versions made every store with) keeps it through the open, the schema and writes.
        let old = dir.path().join("old.db");
        create_with_page_size(&old, 4096);
        let store = LicenseStore::open(&old).unwrap();
        store.add_license(&sample(2), ConflictPolicy::Keep).unwrap();
        assert_eq!(store.verify().unwrap(), 1);
        drop(store);
        assert_eq!(page_size(&old), 4096);
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
