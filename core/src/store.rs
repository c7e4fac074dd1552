//! The license store: a transactional SQLite database holding this device's identity, its
//! licenses (content keys sealed to the device key) and the application's content catalog.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, OptionalExtension, Row, params};
use zeroize::Zeroizing;

use crate::clock::now_secs;
use crate::crypto::{KeyPair, NoncePool};
use crate::device::{DeviceKeys, device_id_hex};
use crate::error::{Error, ErrorCode, Result};
use crate::key_id::KeyId;
use crate::license::{CatalogEntry, ConflictPolicy, License, LicenseFields, NewLicense, Rights};
use crate::sqlite::{RawRows, open_connection};

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

impl LicenseStore {
    /// Opens the store at `path`, creating it (with a fresh device identity) if it does not
    /// exist. The folder that holds it must exist.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        crate::interface::check_path("path", &path)?;
        if path.is_dir() {
            return Err(Error::new(ErrorCode::NotAFolder, format!("{} is a folder, not a store file", path.display())));
        }
        let mut conn = open_connection(&path)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(Error::new(
                ErrorCode::Storage,
                format!("store schema version {version} is newer than this library supports ({SCHEMA_VERSION})"),
            ));
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
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
pub(crate) const LICENSE_ROW_COLUMNS: usize = 10;

/// Binds one license's values, in the column order of the `licenses` table, at parameters
/// `at .. at + LICENSE_ROW_COLUMNS` of a prepared `INSERT ... VALUES (?, ...)`.
pub(crate) fn bind_license_row(
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
        assert_eq!(LicenseStore::open(&junk).unwrap_err().code(), ErrorCode::Storage);
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
