//! The ledger in a SQLite file: what the embedded service keeps on the device, and the layout a
//! networked service keeps in its own database (the same tables, in PostgreSQL types).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use super::ledger::{
    DeviceRecord, Entry, Ledger, LedgerTx, MAX_ENTRY_LEN, PERMANENT, Reservation, ReservationRef, ReservationState,
};
use crate::crypto::{self, KeyPair};
use crate::error::{Error, ErrorCode, Result};
use crate::file_kind::{self, FileKind};
use crate::key_id::KeyId;
use crate::protector::{ProtectedFile, Protector};
use crate::service::{EMBEDDED_ACCOUNT, RequestId};
use crate::sqlite::{LogWriteback, RawInsert};

/// The ledger layout this library writes (`PRAGMA user_version` of the ledger file). Version 1
/// had a row per license and device, version 2 a row per license with its devices packed and an
/// audit row per restore, version 3 kept the service's seed in the `secret` table (in clear or
/// wrapped by a protector); version 4 adds accounts, devices, reservations, and tags each device
/// of a license with the reservation that placed it; version 5 keeps the service keys a rotation
/// replaced (`retired_secrets`), so their archives stay restorable; version 6 keeps each distinct
/// list of entries once (`entry_sets`), a license's row naming its list (a restore's licenses
/// share one: ~45% fewer bytes a row to write, log and copy back).
const LEDGER_VERSION: i64 = 6;

/// The size of the write-ahead log beyond which a commit starts a checkpoint (SQLite's own
/// automatic checkpoint starts at 1000 pages).
const LOG_CHECKPOINT_BYTES: u64 = 4 << 20;

/// Rows per multi-row `INSERT` into the placements (one restore's chunk of key IDs, see
/// `authority.rs`): each statement inside the reservation's transaction keeps a statement
/// journal of the pages it changes, so fewer, longer statements copy fewer pages.
const ROWS_PER_INSERT: usize = 1024;

/// Chunks of placements written between two requests to start writing the ledger's log
/// ([`LogWriteback`]): ~8,000 rows, ~0.25 MB of log.
const WRITEBACK_CHUNKS: u32 = 8;

/// Rows per multi-row upsert of placements that change ([`LedgerTx::put_many_placements`]).
const PUT_ROWS: usize = 256;

/// The page size of a ledger this library creates, in bytes (an existing ledger keeps its own).
/// A restore's reservation appends a row per license: at 1M licenses, 16 KiB pages took the
/// embedded service's part of a restore from 0.47 to 0.41 s (4 KiB, SQLite's default; 32 and
/// 64 KiB were no faster), `docs/performance.md`.
pub(crate) const LEDGER_PAGE_SIZE: u32 = 16384;

/// SQLite's page cache for the ledger, in KiB. A restore's reservation touches its pages in key
/// order, so a small cache loses nothing (1.5 MiB measured no faster), and memory stays flat:
/// the default (2 MiB) would fill up with a big ledger and not with a small one.
const LEDGER_CACHE_KIB: i64 = 512;

/// The tables (besides `secret`, `crate::secret::SECRET_SCHEMA`, which holds the service's seed).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS devices (
    device_id  BLOB PRIMARY KEY CHECK (length(device_id) = 16),
    account    INTEGER NOT NULL,
    counts_as  BLOB NOT NULL CHECK (length(counts_as) = 16),
    public_key BLOB CHECK (public_key IS NULL OR length(public_key) = 32),
    since      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS devices_by_account ON devices (account);
CREATE TABLE IF NOT EXISTS reservations (
    id         INTEGER PRIMARY KEY,
    account    INTEGER NOT NULL,
    request_id BLOB CHECK (request_id IS NULL OR length(request_id) = 16),
    archive_id BLOB NOT NULL CHECK (length(archive_id) = 16),
    device_id  BLOB NOT NULL CHECK (length(device_id) = 16),
    counted_as BLOB NOT NULL CHECK (length(counted_as) = 16),
    replaces   BLOB CHECK (replaces IS NULL OR length(replaces) = 16),
    licenses   INTEGER NOT NULL,
    key_digest BLOB NOT NULL CHECK (length(key_digest) = 32),
    state      TEXT NOT NULL CHECK (state IN ('pending', 'confirmed', 'released', 'expired')),
    created_at INTEGER NOT NULL,
    settled_at INTEGER,
    UNIQUE (account, request_id)
);
CREATE INDEX IF NOT EXISTS reservations_by_state ON reservations (account, state, created_at);
CREATE TABLE IF NOT EXISTS entry_sets (
    id      INTEGER PRIMARY KEY,
    entries BLOB NOT NULL UNIQUE CHECK (length(entries) >= 17)
);
CREATE TABLE IF NOT EXISTS placements (
    account   INTEGER NOT NULL,
    key_id    BLOB NOT NULL CHECK (length(key_id) = 16),
    entry_set INTEGER NOT NULL,
    PRIMARY KEY (account, key_id)
) WITHOUT ROWID;
";

/// A ledger in a SQLite file. One connection, used by one transaction at a time. The service's
/// seed is in the file's `secret` table, in clear or wrapped by the [`Protector`] the ledger is
/// opened with; once opened it is held here.
pub struct SqliteLedger {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// The service's keys, the current one first, then the retired ones, newest first.
    keys: Mutex<Vec<KeyPair>>,
    /// Copies a big write-ahead log back into the file after a commit ([`SqliteTx::commit`]).
    checkpointer: crate::sqlite::Checkpointer,
}

impl Drop for SqliteLedger {
    fn drop(&mut self) {
        // Old page images (a seed replaced by its wrapped form) do not linger in the WAL.
        self.checkpointer.wait();
        if let Ok(conn) = self.conn.lock() {
            crate::sqlite::truncate_wal(&conn);
        }
    }
}

impl std::fmt::Debug for SqliteLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLedger").field("path", &self.path).finish_non_exhaustive()
    }
}

fn table_has_column(tx: &Connection, table: &str, column: &str) -> Result<bool> {
    Ok(tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
        params![table, column],
        |r| r.get(0),
    )?)
}

fn malformed() -> Error {
    Error::new(ErrorCode::Storage, "malformed row in the service ledger")
}

/// Moves the seed of a ledger of version 1 or 2 (`service_key (singleton, seed)`) to the
/// `secret` table, in clear, in the caller's transaction.
fn migrate_seed(tx: &Connection) -> Result<()> {
    tx.execute_batch(crate::secret::SECRET_SCHEMA)?;
    let has_table: bool =
        tx.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'service_key')", [], |r| r.get(0))?;
    if !has_table {
        return Ok(());
    }
    let seed: Option<Vec<u8>> =
        tx.query_row("SELECT seed FROM service_key WHERE singleton = 1", [], |r| r.get(0)).optional()?;
    if let Some(seed) = seed {
        let seed = Zeroizing::new(seed);
        let pair = KeyPair::from_seed_slice(&seed)?;
        let file = ProtectedFile { kind: FileKind::Ledger, file_id: crypto::random_array() };
        crate::secret::insert(tx, &file, &pair, &Protector::unprotected())?;
    }
    tx.execute_batch("DROP TABLE service_key;")?;
    Ok(())
}

/// Moves an earlier ledger layout (versions 1 to 3, told apart by their columns) to version 4,
/// in the caller's transaction: every device a license lived on becomes a permanent entry of
/// the embedded account, and every recorded restore a confirmed reservation.
fn migrate(tx: &Connection) -> Result<()> {
    let v1 = table_has_column(tx, "placements", "device_id")?;
    let v2 = table_has_column(tx, "placements", "devices")?;
    if !v1 && !v2 {
        return Ok(());
    }
    tx.execute_batch("ALTER TABLE placements RENAME TO placements_old;")?;
    let restores = table_has_column(tx, "restores", "archive_id")?;
    if restores {
        tx.execute_batch("ALTER TABLE restores RENAME TO restores_old;")?;
    }
    tx.execute_batch(SCHEMA)?;
    tx.execute("INSERT OR IGNORE INTO accounts (name) VALUES (?1)", [EMBEDDED_ACCOUNT])?;
    let account: i64 = tx.query_row("SELECT id FROM accounts WHERE name = ?1", [EMBEDDED_ACCOUNT], |r| r.get(0))?;
    {
        let sql = if v1 {
            "SELECT key_id, device_id FROM placements_old ORDER BY key_id, device_id"
        } else {
            "SELECT key_id, devices FROM placements_old ORDER BY key_id"
        };
        let mut read = tx.prepare(sql)?;
        let mut write = tx.prepare("INSERT INTO placements (account, key_id, entry_set) VALUES (?1, ?2, ?3)")?;
        let mut rows = read.query([])?;
        let mut current: Option<(Vec<u8>, Vec<u8>)> = None;
        let mut flush = |row: Option<(Vec<u8>, Vec<u8>)>| -> Result<()> {
            if let Some((key_id, entries)) = row {
                write.execute(params![account, key_id, entry_set(tx, &entries)?])?;
            }
            Ok(())
        };
        while let Some(row) = rows.next()? {
            let (kid, devices): (Vec<u8>, Vec<u8>) = (row.get(0)?, row.get(1)?);
            if kid.len() != 16 || devices.is_empty() || devices.len() % 16 != 0 {
                return Err(malformed());
            }
            let mut entries = Vec::with_capacity(devices.len() / 16 * MAX_ENTRY_LEN);
            for d in devices.chunks_exact(16) {
                Entry { device: d.try_into().expect("16 bytes"), reservation: PERMANENT }.encode(&mut entries);
            }
            match &mut current {
                Some((k, e)) if *k == kid => e.extend_from_slice(&entries),
                _ => flush(current.replace((kid, entries)))?,
            }
        }
        flush(current)?;
    }
    if restores {
        tx.execute(
            "INSERT INTO reservations (account, request_id, archive_id, device_id, counted_as, replaces, licenses, \
             key_digest, state, created_at, settled_at) \
             SELECT ?1, NULL, archive_id, device_id, device_id, NULL, licenses, zeroblob(32), 'confirmed', at, at \
             FROM restores_old",
            [account],
        )?;
        tx.execute_batch("DROP TABLE restores_old;")?;
    }
    tx.execute_batch("DROP TABLE placements_old;")?;
    Ok(())
}

/// Moves placements of versions 4 and 5 (their entries in every row) to version 6 (each distinct
/// list of entries once, in `entry_sets`), in the caller's transaction.
fn migrate_entry_sets(tx: &Connection) -> Result<()> {
    if !table_has_column(tx, "placements", "entries")? {
        return Ok(());
    }
    tx.execute_batch("ALTER TABLE placements RENAME TO placements_v5;")?;
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(
        "INSERT INTO entry_sets (entries) SELECT DISTINCT entries FROM placements_v5; \
         INSERT INTO placements (account, key_id, entry_set) \
           SELECT p.account, p.key_id, s.id FROM placements_v5 p JOIN entry_sets s ON s.entries = p.entries; \
         DROP TABLE placements_v5;",
    )?;
    Ok(())
}

/// The number of the list of entries `entries` in `entry_sets`, if it is there.
fn known_entry_set(conn: &Connection, entries: &[u8]) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM entry_sets WHERE entries = ?1")?
        .query_row([entries], |r| r.get(0))
        .optional()?)
}

/// The number of the list of entries `entries` in `entry_sets`, added if it is not there.
fn entry_set(conn: &Connection, entries: &[u8]) -> Result<i64> {
    if let Some(id) = known_entry_set(conn, entries)? {
        return Ok(id);
    }
    conn.prepare_cached("INSERT INTO entry_sets (entries) VALUES (?1)")?.execute([entries])?;
    Ok(conn.last_insert_rowid())
}

/// Reads lists of entries by number, keeping the last few read (a restore's licenses share one,
/// or a handful).
struct EntrySets<'c> {
    read: rusqlite::CachedStatement<'c>,
    known: std::collections::HashMap<i64, Vec<u8>>,
}

impl<'c> EntrySets<'c> {
    /// Lists kept at most; beyond, the kept ones are forgotten (memory stays flat whatever the
    /// ledger holds).
    const KEPT: usize = 256;

    fn new(conn: &'c Connection) -> Result<Self> {
        Ok(EntrySets {
            read: conn.prepare_cached("SELECT entries FROM entry_sets WHERE id = ?1")?,
            known: Default::default(),
        })
    }

    /// The entries of list `id` (`STORAGE` for a row naming no list).
    fn get(&mut self, id: i64) -> Result<&Vec<u8>> {
        if !self.known.contains_key(&id) {
            let entries: Vec<u8> = self.read.query_row([id], |r| r.get(0)).optional()?.ok_or_else(malformed)?;
            if self.known.len() >= Self::KEPT {
                self.known.clear();
            }
            self.known.insert(id, entries);
        }
        Ok(&self.known[&id])
    }
}

impl SqliteLedger {
    /// Opens (or creates) the ledger at `path`, unprotected (the service's seed in clear in the
    /// file): [`SqliteLedger::open_with`] with [`Protector::unprotected`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &Protector::unprotected())
    }

    /// Opens (or creates) the ledger at `path`, moving an earlier layout to the current one; the
    /// service's seed is made on first use and kept wrapped by `protector` (an unprotected
    /// ledger is protected in place); a protected ledger opened without its protector fails
    /// with `PROTECTOR_REQUIRED`, with one that cannot unwrap it with `PROTECTOR_MISMATCH` or
    /// `PROTECTOR_FAILED`, changing nothing.
    pub fn open_with(path: impl AsRef<Path>, protector: &Protector) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if path.as_os_str().is_empty() {
            return Err(Error::invalid("the service ledger path is empty"));
        }
        file_kind::check(&path, FileKind::Ledger)?;
        let mut conn = crate::sqlite::open_connection_with(&path, Some(LEDGER_PAGE_SIZE))?;
        conn.pragma_update(None, "cache_size", -LEDGER_CACHE_KIB)?;
        conn.set_prepared_statement_cache_capacity(32);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > LEDGER_VERSION {
            return Err(Error::new(
                ErrorCode::Storage,
                format!("service ledger version {version} is newer than this library supports ({LEDGER_VERSION})"),
            ));
        }
        // Migrations run only on a ledger (checked again with SQLite's whole view).
        file_kind::check_tables(&path, FileKind::Ledger, &file_kind::tables(&tx)?)?;
        if version < LEDGER_VERSION {
            migrate_seed(&tx)?;
            migrate(&tx)?;
            migrate_entry_sets(&tx)?;
            tx.execute_batch(SCHEMA)?;
            tx.execute_batch(crate::secret::SECRET_SCHEMA)?;
            tx.execute_batch(crate::secret::RETIRED_SCHEMA)?;
            tx.pragma_update(None, "user_version", LEDGER_VERSION)?;
        }
        let application_id: i32 = tx.pragma_query_value(None, "application_id", |r| r.get(0))?;
        if application_id != crate::file_kind::LEDGER_APPLICATION_ID {
            FileKind::Ledger.mark(&tx)?;
        }
        let (current, _) = crate::secret::open_or_create(&tx, FileKind::Ledger, protector, KeyPair::generate)?;
        let mut keys = vec![current];
        keys.extend(crate::secret::open_retired(&tx, FileKind::Ledger, protector)?);
        tx.commit()?;
        // Into the main file now, so the kind is in its header for every later open.
        file_kind::checkpoint(&conn);
        // A restore's reservation (a row per license) is a big commit: its log is copied back
        // on a thread after the ledger's next commit ([`SqliteTx::commit`]) instead of inside
        // it; statement journals stay in memory.
        crate::sqlite::no_autocheckpoint(&conn)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        Ok(SqliteLedger { path, conn: Mutex::new(conn), keys: Mutex::new(keys), checkpointer: Default::default() })
    }

    /// Rotates the service key: a fresh key, wrapped by `protector` (the one the ledger was
    /// opened with), becomes current, and the key it replaces is kept, as it was stored, among
    /// the retired keys: archives made for it stay restorable. Returns the new key's public
    /// key. An [`crate::service::Authority`] reads the keys when it is made: open it again to
    /// use the new key.
    pub fn rotate_key(&self, protector: &Protector) -> Result<[u8; 32]> {
        let fresh = KeyPair::generate();
        let file = {
            let conn = self.lock()?;
            crate::secret::file(&conn, FileKind::Ledger)?
                .ok_or_else(|| Error::new(ErrorCode::Storage, "the service ledger has no secret key"))?
        };
        // Wrapped before the transaction: no protector call while the ledger is locked.
        let replacement = crate::secret::Replacement::new(&file, &fresh, protector)?;
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // The protector must be the ledger's: it opens the current key as stored.
        let current = crate::secret::load(&tx, FileKind::Ledger, protector)?;
        crate::secret::retire(&tx, &replacement, crate::clock::now_secs())?;
        tx.commit()?;
        let mut keys = self.keys.lock().map_err(|_| Error::internal("service ledger lock poisoned"))?;
        keys.retain(|k| k.id() != current.id());
        keys.insert(0, current);
        keys.insert(0, fresh);
        Ok(keys[0].public_bytes())
    }

    /// The path of the ledger file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| Error::internal("service ledger lock poisoned"))
    }

    fn begin(&self, sql: &str) -> Result<Box<dyn LedgerTx + '_>> {
        let conn = self.lock()?;
        conn.execute_batch(sql)?;
        Ok(Box::new(SqliteTx { kept: KeptInserts::default(), conn, open: true, account: None, ledger: self }))
    }
}

impl Ledger for SqliteLedger {
    fn service_seeds(&self) -> Result<Vec<Zeroizing<[u8; 32]>>> {
        let keys = self.keys.lock().map_err(|_| Error::internal("service ledger lock poisoned"))?;
        Ok(keys.iter().map(|k| Zeroizing::new(*k.seed())).collect())
    }

    fn write(&self) -> Result<Box<dyn LedgerTx + '_>> {
        self.begin("BEGIN IMMEDIATE")
    }

    fn read(&self) -> Result<Box<dyn LedgerTx + '_>> {
        self.begin("BEGIN")
    }
}

/// A transaction on the ledger's connection (rolled back when dropped uncommitted).
struct SqliteTx<'a> {
    /// Declared before `conn`: dropped, so finalized, while the connection is still held.
    kept: KeptInserts,
    conn: MutexGuard<'a, Connection>,
    open: bool,
    /// The last account looked up: (name, row id or `None` when it has none yet).
    account: Option<(String, Option<i64>)>,
    ledger: &'a SqliteLedger,
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// The many-row statements a restore runs for every chunk of licenses, each prepared at its
/// first use in a transaction and kept for the rest of it, its values bound in place (through
/// rusqlite's cache each run looked up a statement of up to ~20 KB of text by hashing it, and
/// copied every value bound).
#[derive(Default)]
struct KeptInserts {
    /// Licenses new to the ledger ([`ROWS_PER_INSERT`] rows).
    fresh: Option<RawInsert<'static>>,
    /// Rows that change ([`PUT_ROWS`] rows).
    upsert: Option<RawInsert<'static>>,
    /// The log written to disk while the transaction runs (from its first chunk of placements).
    writeback: Option<LogWriteback>,
}

impl KeptInserts {
    /// Whether the transaction ran a many-row statement.
    fn wrote_many(&self) -> bool {
        self.fresh.is_some() || self.upsert.is_some()
    }

    /// Called after each chunk of rows written to the ledger at `path`.
    fn wrote(&mut self, path: &Path) {
        self.writeback.get_or_insert_with(|| LogWriteback::new(path, WRITEBACK_CHUNKS)).wrote();
    }
}

/// The statement in `slot`, prepared on `conn` from `sql()` if this transaction has not yet.
fn kept<'s>(
    slot: &'s mut Option<RawInsert<'static>>,
    conn: &Connection,
    sql: impl FnOnce() -> String,
) -> Result<&'s mut RawInsert<'static>> {
    Ok(match slot {
        Some(stmt) => stmt,
        none => {
            let stmt = RawInsert::prepare(conn, &sql())?;
            // SAFETY: kept in the transaction's `kept`, dropped before its `conn` (field order),
            // and used only through `&mut SqliteTx`, which holds the connection's lock.
            none.insert(unsafe { stmt.detach() })
        }
    })
}

/// Placement rows found, by key ID.
type PlacementRows = std::collections::HashMap<[u8; 16], Vec<u8>>;

fn blob16(v: Vec<u8>) -> Result<[u8; 16]> {
    v.try_into().map_err(|_| malformed())
}

fn reservation_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Reservation, String)> {
    let array16 = |i: usize| -> rusqlite::Result<[u8; 16]> {
        let v: Vec<u8> = r.get(i)?;
        v.try_into()
            .map_err(|_| rusqlite::Error::InvalidColumnType(i, "16-byte blob".into(), rusqlite::types::Type::Blob))
    };
    let opt16 = |i: usize| -> rusqlite::Result<Option<[u8; 16]>> {
        let v: Option<Vec<u8>> = r.get(i)?;
        v.map(|v| {
            v.try_into()
                .map_err(|_| rusqlite::Error::InvalidColumnType(i, "16-byte blob".into(), rusqlite::types::Type::Blob))
        })
        .transpose()
    };
    let digest: Vec<u8> = r.get(8)?;
    let state: String = r.get(9)?;
    Ok((
        Reservation {
            id: r.get(0)?,
            account: r.get(1)?,
            request_id: opt16(2)?,
            archive_id: array16(3)?,
            device_id: array16(4)?,
            counted_as: array16(5)?,
            replaces: opt16(6)?,
            licenses: r.get::<_, i64>(7)? as u64,
            key_digest: digest.try_into().map_err(|_| {
                rusqlite::Error::InvalidColumnType(8, "32-byte blob".into(), rusqlite::types::Type::Blob)
            })?,
            state: ReservationState::Pending,
            created_at: r.get(10)?,
            settled_at: r.get(11)?,
        },
        state,
    ))
}

const RESERVATION_COLUMNS: &str = "r.id, a.name, r.request_id, r.archive_id, r.device_id, r.counted_as, r.replaces, \
     r.licenses, r.key_digest, r.state, r.created_at, r.settled_at";

impl SqliteTx<'_> {
    /// The row ID of `account`; created when `create` (in a write transaction).
    fn account_id(&mut self, account: &str, create: bool) -> Result<Option<i64>> {
        if let Some((name, id)) = &self.account {
            if name == account && (id.is_some() || !create) {
                return Ok(*id);
            }
        }
        let mut id: Option<i64> = self
            .conn
            .prepare_cached("SELECT id FROM accounts WHERE name = ?1")?
            .query_row([account], |r| r.get(0))
            .optional()?;
        if id.is_none() && create {
            self.conn.prepare_cached("INSERT INTO accounts (name) VALUES (?1)")?.execute([account])?;
            id = Some(self.conn.last_insert_rowid());
        }
        self.account = Some((account.to_string(), id));
        Ok(id)
    }

    /// The rows of `key_ids` in the account of row ID `account`, read in one pass over their
    /// range when they are in ascending order (an archive's, as a backup writes them); `None`
    /// when they are not, or when other licenses' rows fill the range (more than twice as many
    /// rows as asked for, plus 64), so a crafted archive cannot make it read more.
    fn placements_in_range(&self, account: i64, key_ids: &[KeyId]) -> Result<Option<PlacementRows>> {
        let (Some(first), Some(last)) = (key_ids.first(), key_ids.last()) else {
            return Ok(Some(PlacementRows::new()));
        };
        if !key_ids.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()) {
            return Ok(None);
        }
        let limit = 2 * key_ids.len() + 64;
        let mut sets = EntrySets::new(&self.conn)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT key_id, entry_set FROM placements WHERE account = ?1 AND key_id BETWEEN ?2 AND ?3 \
             ORDER BY key_id LIMIT ?4",
        )?;
        let mut rows =
            stmt.query(params![account, first.as_bytes().as_slice(), last.as_bytes().as_slice(), limit as i64])?;
        let (mut found, mut seen, mut wanted) = (PlacementRows::new(), 0, key_ids.iter().peekable());
        while let Some(row) = rows.next()? {
            seen += 1;
            let key_id = blob16(row.get(0)?)?;
            while wanted.next_if(|k| k.as_bytes() < &key_id).is_some() {}
            if wanted.next_if(|k| k.as_bytes() == &key_id).is_some() {
                found.insert(key_id, sets.get(row.get(1)?)?.clone());
            }
        }
        Ok((seen < limit).then_some(found))
    }

    /// The rows of `key_ids` in the account of row ID `account`, by `key_id IN (...)` (an index
    /// seek each, one statement for [`ROWS_PER_INSERT`] of them).
    fn placements_listed(&self, account: i64, key_ids: &[KeyId]) -> Result<PlacementRows> {
        let sql = |n: usize| {
            let keys: Vec<String> = (0..n).map(|i| format!("?{}", i + 2)).collect();
            format!("SELECT key_id, entry_set FROM placements WHERE account = ?1 AND key_id IN ({})", keys.join(", "))
        };
        static MANY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let mut found = PlacementRows::new();
        let mut sets = EntrySets::new(&self.conn)?;
        for chunk in key_ids.chunks(ROWS_PER_INSERT) {
            let partial;
            let text = if chunk.len() == ROWS_PER_INSERT {
                MANY.get_or_init(|| sql(ROWS_PER_INSERT))
            } else {
                partial = sql(chunk.len());
                &partial
            };
            let mut stmt = self.conn.prepare_cached(text)?;
            stmt.raw_bind_parameter(1, account)?;
            for (i, kid) in chunk.iter().enumerate() {
                stmt.raw_bind_parameter(2 + i, kid.as_bytes().as_slice())?;
            }
            let mut rows = stmt.raw_query();
            while let Some(row) = rows.next()? {
                found.insert(blob16(row.get(0)?)?, sets.get(row.get(1)?)?.clone());
            }
        }
        Ok(found)
    }

    /// Writes (creates or replaces) the row of one license in the account of row ID `account`.
    fn put_placements_of(&self, account: i64, key_id: &KeyId, entries: &[u8]) -> Result<()> {
        self.put_entry_set_of(account, key_id, entry_set(&self.conn, entries)?)
    }

    /// Writes (creates or replaces) the row of one license, naming the list of entries `set`.
    fn put_entry_set_of(&self, account: i64, key_id: &KeyId, set: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO placements (account, key_id, entry_set) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (account, key_id) DO UPDATE SET entry_set = excluded.entry_set",
            )?
            .execute(params![account, key_id.as_bytes().as_slice(), set])?;
        Ok(())
    }

    fn one_reservation(&self, condition: &str, bind: &[&dyn rusqlite::ToSql]) -> Result<Option<Reservation>> {
        let sql = format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations r JOIN accounts a ON a.id = r.account WHERE {condition}"
        );
        let row = self.conn.prepare_cached(&sql)?.query_row(bind, reservation_from_row).optional()?;
        row.map(|(mut r, state)| {
            r.state = ReservationState::parse(&state)?;
            Ok(r)
        })
        .transpose()
    }
}

impl LedgerTx for SqliteTx<'_> {
    fn device(&mut self, device_id: &[u8; 16]) -> Result<Option<DeviceRecord>> {
        type Row = (String, Vec<u8>, Option<Vec<u8>>, i64);
        let row: Option<Row> = self
            .conn
            .prepare_cached(
                "SELECT a.name, d.counts_as, d.public_key, d.since FROM devices d JOIN accounts a ON a.id = d.account \
                 WHERE d.device_id = ?1",
            )?
            .query_row([device_id.as_slice()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        row.map(|(account, counts_as, public_key, since)| {
            Ok(DeviceRecord {
                device_id: *device_id,
                account,
                counts_as: blob16(counts_as)?,
                public_key: public_key.map(|k| k.try_into().map_err(|_| malformed())).transpose()?,
                since,
            })
        })
        .transpose()
    }

    fn insert_device(&mut self, device: &DeviceRecord) -> Result<bool> {
        let account = self.account_id(&device.account, true)?.expect("created");
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO devices (device_id, account, counts_as, public_key, since) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                device.device_id.as_slice(),
                account,
                device.counts_as.as_slice(),
                device.public_key.as_ref().map(|k| k.as_slice()),
                device.since
            ])?;
        Ok(n == 1)
    }

    fn device_count(&mut self, account: &str) -> Result<u64> {
        let Some(account) = self.account_id(account, false)? else { return Ok(0) };
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM devices WHERE account = ?1")?
            .query_row([account], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn reservation(&mut self, id: ReservationRef) -> Result<Option<Reservation>> {
        self.one_reservation("r.id = ?1", &[&id])
    }

    fn reservation_by_request(&mut self, account: &str, request_id: &RequestId) -> Result<Option<Reservation>> {
        let Some(account) = self.account_id(account, false)? else { return Ok(None) };
        self.one_reservation("r.account = ?1 AND r.request_id = ?2", &[&account, &request_id.as_slice()])
    }

    fn insert_reservation(&mut self, r: &Reservation) -> Result<ReservationRef> {
        let account = self.account_id(&r.account, true)?.expect("created");
        self.conn
            .prepare_cached(
                "INSERT INTO reservations (account, request_id, archive_id, device_id, counted_as, replaces, licenses, \
                 key_digest, state, created_at, settled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                account,
                r.request_id.as_ref().map(|x| x.as_slice()),
                r.archive_id.as_slice(),
                r.device_id.as_slice(),
                r.counted_as.as_slice(),
                r.replaces.as_ref().map(|x| x.as_slice()),
                r.licenses as i64,
                r.key_digest.as_slice(),
                r.state.as_str(),
                r.created_at,
                r.settled_at
            ])?;
        let id = self.conn.last_insert_rowid();
        debug_assert_ne!(id, PERMANENT, "SQLite row IDs start at 1");
        Ok(id)
    }

    fn set_reservation_state(&mut self, id: ReservationRef, state: ReservationState, at: i64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE reservations SET state = ?2, settled_at = ?3 WHERE id = ?1")?
            .execute(params![id, state.as_str(), at])?;
        Ok(())
    }

    fn set_reservation_digest(&mut self, id: ReservationRef, key_digest: &[u8; 32]) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE reservations SET key_digest = ?2 WHERE id = ?1")?
            .execute(params![id, key_digest.as_slice()])?;
        Ok(())
    }

    fn reservations(&mut self, account: &str) -> Result<Vec<Reservation>> {
        let Some(account) = self.account_id(account, false)? else { return Ok(Vec::new()) };
        let sql = format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations r JOIN accounts a ON a.id = r.account WHERE r.account = ?1 \
             ORDER BY r.id"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([account], reservation_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(mut r, state)| {
                r.state = ReservationState::parse(&state)?;
                Ok(r)
            })
            .collect()
    }

    fn pending_before(&mut self, account: &str, before: i64) -> Result<Vec<ReservationRef>> {
        let Some(account) = self.account_id(account, false)? else { return Ok(Vec::new()) };
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM reservations WHERE account = ?1 AND state = 'pending' AND created_at <= ?2 ORDER BY id",
        )?;
        let ids = stmt.query_map(params![account, before], |r| r.get(0))?.collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(ids)
    }

    fn placements(&mut self, account: &str, key_id: &KeyId) -> Result<Option<Vec<u8>>> {
        let Some(account) = self.account_id(account, false)? else { return Ok(None) };
        let set: Option<i64> = self
            .conn
            .prepare_cached("SELECT entry_set FROM placements WHERE account = ?1 AND key_id = ?2")?
            .query_row(params![account, key_id.as_bytes().as_slice()], |r| r.get(0))
            .optional()?;
        set.map(|set| Ok(EntrySets::new(&self.conn)?.get(set)?.clone())).transpose()
    }

    fn insert_placements(&mut self, account: &str, key_ids: &[KeyId], entries: &[u8]) -> Result<usize> {
        let account = self.account_id(account, true)?.expect("created");
        // A new list (a restore's first chunk) is not added for rows that are all there already
        // (a restore of licenses placed before, read in one pass over their range): nothing
        // would name it.
        let set = match known_entry_set(&self.conn, entries)? {
            Some(set) => set,
            None if self.placements_in_range(account, key_ids)?.is_some_and(|found| found.len() == key_ids.len()) => {
                return Ok(0);
            }
            None => entry_set(&self.conn, entries)?,
        };
        // Every row has the same account (?1) and list of entries (?2): bound once a statement,
        // so a row binds (and SQLite copies) only its key ID.
        let sql = |rows: usize| {
            let values: Vec<String> = (0..rows).map(|i| format!("(?1, ?{}, ?2)", i + 3)).collect();
            format!(
                "INSERT INTO placements (account, key_id, entry_set) VALUES {} ON CONFLICT DO NOTHING",
                values.join(", ")
            )
        };
        let mut inserted = 0;
        let mut chunks = key_ids.chunks_exact(ROWS_PER_INSERT);
        for chunk in &mut chunks {
            let many = kept(&mut self.kept.fresh, &self.conn, || sql(ROWS_PER_INSERT))?;
            inserted += many.execute(|b| {
                b.int(1, Some(account));
                b.int(2, Some(set));
                for (i, kid) in chunk.iter().enumerate() {
                    b.blob(3 + i, kid.as_bytes());
                }
            })?;
        }
        let mut one = self.conn.prepare_cached(&sql(1))?;
        for kid in chunks.remainder() {
            inserted += one.execute(params![account, set, kid.as_bytes().as_slice()])?;
        }
        self.kept.wrote(&self.ledger.path);
        Ok(inserted)
    }

    fn put_placements(&mut self, account: &str, key_id: &KeyId, entries: &[u8]) -> Result<()> {
        let account = self.account_id(account, true)?.expect("created");
        self.put_placements_of(account, key_id, entries)
    }

    fn placements_of(&mut self, account: &str, key_ids: &[KeyId]) -> Result<Vec<Option<Vec<u8>>>> {
        let Some(account) = self.account_id(account, false)? else { return Ok(vec![None; key_ids.len()]) };
        let found = match self.placements_in_range(account, key_ids)? {
            Some(found) => found,
            None => self.placements_listed(account, key_ids)?,
        };
        Ok(key_ids.iter().map(|k| found.get(k.as_bytes()).cloned()).collect())
    }

    fn put_many_placements(&mut self, account: &str, rows: &[(KeyId, Vec<u8>)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let account = self.account_id(account, true)?.expect("created");
        // The rows' lists of entries, numbered (a restore's rows share a few).
        let mut numbered = std::collections::HashMap::<&[u8], i64>::new();
        let mut sets = Vec::with_capacity(rows.len());
        for (_, entries) in rows {
            let set = match numbered.get(entries.as_slice()) {
                Some(&set) => set,
                None => {
                    let set = entry_set(&self.conn, entries)?;
                    numbered.insert(entries, set);
                    set
                }
            };
            sets.push(set);
        }
        let sql = |n: usize| {
            let values: Vec<String> = (0..n).map(|i| format!("(?1, ?{}, ?{})", 2 * i + 2, 2 * i + 3)).collect();
            format!(
                "INSERT INTO placements (account, key_id, entry_set) VALUES {} \
                 ON CONFLICT (account, key_id) DO UPDATE SET entry_set = excluded.entry_set",
                values.join(", ")
            )
        };
        let (mut chunks, mut set_chunks) = (rows.chunks_exact(PUT_ROWS), sets.chunks_exact(PUT_ROWS));
        for (chunk, sets) in (&mut chunks).zip(&mut set_chunks) {
            kept(&mut self.kept.upsert, &self.conn, || sql(PUT_ROWS))?.execute(|b| {
                b.int(1, Some(account));
                for (i, ((kid, _), set)) in chunk.iter().zip(sets).enumerate() {
                    b.blob(2 * i + 2, kid.as_bytes());
                    b.int(2 * i + 3, Some(*set));
                }
            })?;
        }
        for ((kid, _), set) in chunks.remainder().iter().zip(set_chunks.remainder()) {
            self.put_entry_set_of(account, kid, *set)?;
        }
        self.kept.wrote(&self.ledger.path);
        Ok(())
    }

    fn for_each_placement(&mut self, account: &str, visit: &mut dyn FnMut(&KeyId, &[u8]) -> Result<()>) -> Result<()> {
        let Some(account) = self.account_id(account, false)? else { return Ok(()) };
        let mut sets = EntrySets::new(&self.conn)?;
        let mut stmt =
            self.conn.prepare("SELECT key_id, entry_set FROM placements WHERE account = ?1 ORDER BY key_id")?;
        let mut rows = stmt.query([account])?;
        while let Some(row) = rows.next()? {
            let key_id = KeyId::from_slice(row.get_ref(0)?.as_blob().map_err(|_| malformed())?)?;
            visit(&key_id, sets.get(row.get(1)?)?)?;
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        // A commit that fails leaves the transaction open: dropping it rolls back.
        self.conn.execute_batch("COMMIT")?;
        self.open = false;
        // What SQLite's automatic checkpoint would do (at 1000 pages), on a thread of its own;
        // after a transaction that wrote many rows (a restore's reservation), at the ledger's
        // next commit instead (the restore's confirmation or release, once the store has
        // committed): copying the rows back now would take a core from the restore's apply.
        if !self.kept.wrote_many() {
            self.ledger.checkpointer.start_beyond(&self.ledger.path, LOG_CHECKPOINT_BYTES);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Authority, ServicePolicy};

    fn kid(n: u8) -> KeyId {
        KeyId::from_bytes([n; 16])
    }

    /// Key IDs in the order of `n`.
    fn key(n: u32) -> KeyId {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&n.to_be_bytes());
        KeyId::from_bytes(b)
    }

    /// The layouts earlier releases wrote: version 1 (a row per license and device) and version
    /// 2 (devices packed per license, an audit row per restore).
    fn old_ledger(path: &Path, version: i64) {
        let conn = Connection::open(path).unwrap();
        let rows = [(1u8, 1u8), (1, 2), (1, 3), (1, 4), (2, 1), (2, 5)];
        if version == 1 {
            conn.execute_batch(
                "CREATE TABLE placements (key_id BLOB NOT NULL, device_id BLOB NOT NULL, first_seen INTEGER NOT NULL,
                     PRIMARY KEY (key_id, device_id)) WITHOUT ROWID;",
            )
            .unwrap();
            for (k, dev) in rows {
                conn.execute(
                    "INSERT INTO placements VALUES (?1, ?2, 0)",
                    params![kid(k).as_bytes().as_slice(), [dev; 16].as_slice()],
                )
                .unwrap();
            }
        } else {
            conn.execute_batch(
                "CREATE TABLE service_key (singleton INTEGER PRIMARY KEY, seed BLOB NOT NULL);
                 CREATE TABLE placements (key_id BLOB PRIMARY KEY, devices BLOB NOT NULL) WITHOUT ROWID;
                 CREATE TABLE restores (id INTEGER PRIMARY KEY, archive_id BLOB NOT NULL, device_id BLOB NOT NULL,
                     licenses INTEGER NOT NULL, at INTEGER NOT NULL);
                 PRAGMA user_version = 2;",
            )
            .unwrap();
            conn.execute("INSERT INTO service_key VALUES (1, ?1)", [[7u8; 32].as_slice()]).unwrap();
            conn.execute(
                "INSERT INTO placements VALUES (?1, ?2)",
                params![kid(1).as_bytes().as_slice(), [[1u8; 16], [2; 16], [3; 16], [4; 16]].concat()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO placements VALUES (?1, ?2)",
                params![kid(2).as_bytes().as_slice(), [[1u8; 16], [5; 16]].concat()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO restores (archive_id, device_id, licenses, at) VALUES (?1, ?2, 2, 5)",
                params![[9u8; 16].as_slice(), [5u8; 16].as_slice()],
            )
            .unwrap();
        }
    }

    #[test]
    fn earlier_ledgers_are_migrated_and_keep_their_counts() {
        for version in [1, 2] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ledger.db");
            old_ledger(&path, version);
            let authority = Authority::new(SqliteLedger::open(&path).unwrap(), ServicePolicy::default()).unwrap();
            assert_eq!(authority.devices_of(EMBEDDED_ACCOUNT, &kid(1)).unwrap(), [[1; 16], [2; 16], [3; 16], [4; 16]]);
            assert_eq!(authority.devices_of(EMBEDDED_ACCOUNT, &kid(2)).unwrap(), [[1; 16], [5; 16]]);
            assert!(authority.devices_of("someone else", &kid(1)).unwrap().is_empty(), "another account");
            let audit = authority.audit(EMBEDDED_ACCOUNT).unwrap();
            assert_eq!((audit.licenses, audit.placements), (2, 6), "version {version}");
            assert_eq!(audit.confirmed, u64::from(version == 2), "the restore rows became confirmed reservations");
            if version == 2 {
                assert_eq!(*authority.ledger().service_seeds().unwrap()[0], [7; 32], "the service key is kept");
            }
            let conn = authority.ledger().lock().unwrap();
            let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
            assert_eq!(v, LEDGER_VERSION);
            let old: bool = conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name IN ('placements_old', 'restores_old', 'restores'))",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(!old, "the old tables are dropped");
            drop(conn);
            drop(authority);
            // Opening again finds the current layout and changes nothing.
            let again = Authority::new(SqliteLedger::open(&path).unwrap(), ServicePolicy::default()).unwrap();
            assert_eq!(again.devices_of(EMBEDDED_ACCOUNT, &kid(1)).unwrap().len(), 4);
        }
    }

    /// A protector for tests: XOR with one byte (another byte unwraps to another seed).
    struct Xor(u8);

    impl crate::protector::KeyProtector for Xor {
        fn label(&self) -> String {
            format!("xor {}", self.0)
        }
        fn wrap(&self, secret: &[u8], _: &ProtectedFile) -> Result<Vec<u8>> {
            Ok(secret.iter().map(|b| b ^ self.0).collect())
        }
        fn unwrap(&self, wrapped: &[u8], _: &ProtectedFile) -> Result<Zeroizing<Vec<u8>>> {
            Ok(Zeroizing::new(wrapped.iter().map(|b| b ^ self.0).collect()))
        }
    }

    fn xor(byte: u8) -> Protector {
        Protector::new(std::sync::Arc::new(Xor(byte)))
    }

    /// The layout the previous release (ledger version 3) wrote: devices packed per license, an
    /// audit row per restore, the service's seed in the `secret` table, in clear or wrapped.
    fn version_3_ledger(path: &Path, protector: &Protector) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "CREATE TABLE placements (
                 key_id  BLOB PRIMARY KEY CHECK (length(key_id) = 16),
                 devices BLOB NOT NULL CHECK (length(devices) > 0 AND length(devices) % 16 = 0)
             ) WITHOUT ROWID;
             CREATE TABLE restores (id INTEGER PRIMARY KEY, archive_id BLOB NOT NULL, device_id BLOB NOT NULL,
                 licenses INTEGER NOT NULL, at INTEGER NOT NULL);",
        )
        .unwrap();
        conn.execute_batch(crate::secret::SECRET_SCHEMA).unwrap();
        let file = ProtectedFile { kind: FileKind::Ledger, file_id: [3; 16] };
        crate::secret::insert(&conn, &file, &KeyPair::from_seed([7; 32]), protector).unwrap();
        conn.execute(
            "INSERT INTO placements VALUES (?1, ?2)",
            params![kid(1).as_bytes().as_slice(), [[1u8; 16], [2; 16], [3; 16], [4; 16]].concat()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO placements VALUES (?1, ?2)",
            params![kid(2).as_bytes().as_slice(), [[1u8; 16], [5; 16]].concat()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO restores (archive_id, device_id, licenses, at) VALUES (?1, ?2, 2, 5)",
            params![[9u8; 16].as_slice(), [5u8; 16].as_slice()],
        )
        .unwrap();
        FileKind::Ledger.mark(&conn).unwrap();
        conn.pragma_update(None, "user_version", 3).unwrap();
    }

    fn layout(path: &Path) -> (i64, Vec<String>, Option<String>) {
        let conn = Connection::open(path).unwrap();
        let version = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").unwrap();
        let tables = stmt.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<Vec<String>>>().unwrap();
        let label = conn.query_row("SELECT protector FROM secret", [], |r| r.get(0)).unwrap();
        (version, tables, label)
    }

    #[test]
    fn a_protected_version_3_ledger_opens_only_with_its_protector_and_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        version_3_ledger(&path, &xor(0x5a));
        let before = layout(&path);
        assert_eq!(before.0, 3);
        // Without its protector, or with another one: the protector codes, nothing migrated.
        let no = SqliteLedger::open(&path).unwrap_err();
        assert_eq!(no.code(), ErrorCode::ProtectorRequired, "{no}");
        assert_eq!(layout(&path), before, "a refused open migrates nothing");
        let wrong = SqliteLedger::open_with(&path, &xor(0x33)).unwrap_err();
        assert_eq!(wrong.code(), ErrorCode::ProtectorMismatch, "{wrong}");
        assert_eq!(layout(&path), before, "a refused open migrates nothing");
        // With it: the current layout, the same seed, still protected, the counts kept.
        let ledger = SqliteLedger::open_with(&path, &xor(0x5a)).unwrap();
        assert_eq!(*ledger.service_seeds().unwrap()[0], [7; 32]);
        let authority = Authority::new(ledger, ServicePolicy::default()).unwrap();
        assert_eq!(authority.devices_of(EMBEDDED_ACCOUNT, &kid(1)).unwrap(), [[1; 16], [2; 16], [3; 16], [4; 16]]);
        assert_eq!(authority.devices_of(EMBEDDED_ACCOUNT, &kid(2)).unwrap(), [[1; 16], [5; 16]]);
        assert_eq!(authority.audit(EMBEDDED_ACCOUNT).unwrap().confirmed, 1);
        drop(authority);
        let (version, tables, label) = layout(&path);
        assert_eq!(version, LEDGER_VERSION);
        assert_eq!(
            tables,
            ["accounts", "devices", "entry_sets", "placements", "reservations", "retired_secrets", "secret"]
        );
        assert_eq!(label.as_deref(), Some("xor 90"), "the seed stays wrapped");
        // The migrated ledger still needs its protector.
        assert_eq!(SqliteLedger::open(&path).unwrap_err().code(), ErrorCode::ProtectorRequired);
    }

    #[test]
    fn an_unprotected_version_3_ledger_is_migrated_and_protected_in_one_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        version_3_ledger(&path, &Protector::unprotected());
        let ledger = SqliteLedger::open_with(&path, &xor(0x11)).unwrap();
        assert_eq!(*ledger.service_seeds().unwrap()[0], [7; 32]);
        drop(ledger);
        let (version, _, label) = layout(&path);
        assert_eq!((version, label.as_deref()), (LEDGER_VERSION, Some("xor 17")));
        let conn = Connection::open(&path).unwrap();
        let seed: Vec<u8> = conn.query_row("SELECT seed FROM secret", [], |r| r.get(0)).unwrap();
        assert_ne!(seed, [7; 32], "the clear seed is replaced by its wrapped form");
        drop(conn);
        let authority = Authority::new(SqliteLedger::open_with(&path, &xor(0x11)).unwrap(), ServicePolicy::default());
        assert_eq!(authority.unwrap().devices_of(EMBEDDED_ACCOUNT, &kid(2)).unwrap().len(), 2);
    }

    #[test]
    fn a_version_4_ledger_gains_the_retired_keys_and_keeps_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let key = SqliteLedger::open(&path).unwrap().service_seeds().unwrap()[0].clone();
        {
            // The layout version 4 wrote: everything but the retired keys.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("DROP TABLE retired_secrets; PRAGMA user_version = 4;").unwrap();
        }
        let ledger = SqliteLedger::open(&path).unwrap();
        assert_eq!(ledger.service_seeds().unwrap(), std::slice::from_ref(&key));
        let (version, tables, _) = layout(&path);
        assert_eq!(version, LEDGER_VERSION);
        assert!(tables.iter().any(|t| t == "retired_secrets"), "{tables:?}");
        ledger.rotate_key(&Protector::unprotected()).unwrap();
        assert_eq!(ledger.service_seeds().unwrap()[1], key, "the old key is kept after the new one");
    }

    #[test]
    fn a_version_5_ledger_keeps_every_placement_with_each_list_of_entries_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        drop(SqliteLedger::open(&path).unwrap());
        // Three lists of entries over 3,000 rows of two accounts, as version 5 wrote them: in
        // every row.
        let list = |n: u8| vec![n; 17 + n as usize];
        let rows: Vec<(i64, KeyId, Vec<u8>)> =
            (0..3000u32).map(|n| (1 + i64::from(n % 2), key(n), list((n % 3) as u8))).collect();
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "DROP TABLE placements; DROP TABLE entry_sets; \
                 CREATE TABLE placements (account INTEGER NOT NULL, \
                   key_id BLOB NOT NULL CHECK (length(key_id) = 16), \
                   entries BLOB NOT NULL CHECK (length(entries) >= 17), \
                   PRIMARY KEY (account, key_id)) WITHOUT ROWID; \
                 INSERT INTO accounts (id, name) VALUES (1, 'a'), (2, 'b'); \
                 PRAGMA user_version = 5;",
            )
            .unwrap();
            let mut insert = conn.prepare("INSERT INTO placements VALUES (?1, ?2, ?3)").unwrap();
            for (account, kid, entries) in &rows {
                insert.execute(params![account, kid.as_bytes().as_slice(), entries]).unwrap();
            }
        }
        let ledger = SqliteLedger::open(&path).unwrap();
        let (version, tables, _) = layout(&path);
        assert_eq!(version, LEDGER_VERSION);
        assert!(!tables.iter().any(|t| t == "placements_v5"), "{tables:?}");
        let conn = Connection::open(&path).unwrap();
        let sets: i64 = conn.query_row("SELECT count(*) FROM entry_sets", [], |r| r.get(0)).unwrap();
        assert_eq!(sets, 3);
        drop(conn);
        let mut tx = ledger.read().unwrap();
        for account in ["a", "b"] {
            let mine: Vec<&(i64, KeyId, Vec<u8>)> =
                rows.iter().filter(|r| r.0 == if account == "a" { 1 } else { 2 }).collect();
            let keys: Vec<KeyId> = mine.iter().map(|r| r.1).collect();
            let want: Vec<Option<Vec<u8>>> = mine.iter().map(|r| Some(r.2.clone())).collect();
            assert_eq!(tx.placements_of(account, &keys).unwrap(), want);
            assert_eq!(tx.placements(account, &keys[7]).unwrap(), want[7]);
            let mut seen = Vec::new();
            tx.for_each_placement(account, &mut |k, e| {
                seen.push((*k, e.to_vec()));
                Ok(())
            })
            .unwrap();
            assert_eq!(seen, mine.iter().map(|r| (r.1, r.2.clone())).collect::<Vec<_>>());
        }
    }

    #[test]
    fn rows_share_their_list_of_entries_and_a_row_naming_none_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let ledger = SqliteLedger::open(&path).unwrap();
        let keys: Vec<KeyId> = (0..3000).map(key).collect();
        let mut tx = ledger.write().unwrap();
        tx.insert_placements("a", &keys, &[1; 34]).unwrap();
        tx.insert_placements("b", &keys, &[1; 34]).unwrap();
        // A second device: every row gets the same longer list, some rows another one.
        let rows: Vec<(KeyId, Vec<u8>)> =
            keys.iter().enumerate().map(|(i, k)| (*k, vec![if i % 1000 == 0 { 3 } else { 2 }; 51])).collect();
        tx.put_many_placements("a", &rows).unwrap();
        tx.commit().unwrap();
        let sets = |path: &Path| -> i64 {
            Connection::open(path).unwrap().query_row("SELECT count(*) FROM entry_sets", [], |r| r.get(0)).unwrap()
        };
        assert_eq!(sets(&path), 3, "6,000 rows, three lists");
        // Rows all placed already: no list is added for them (nothing would name it).
        let mut tx = ledger.write().unwrap();
        assert_eq!(tx.insert_placements("a", &keys[..1024], &[7; 17]).unwrap(), 0);
        tx.commit().unwrap();
        assert_eq!(sets(&path), 3);
        let mut tx = ledger.read().unwrap();
        assert_eq!(tx.placements("a", &keys[1]).unwrap(), Some(vec![2; 51]));
        assert_eq!(tx.placements("a", &keys[1000]).unwrap(), Some(vec![3; 51]));
        assert_eq!(tx.placements("b", &keys[1]).unwrap(), Some(vec![1; 34]));
        drop(tx);
        // A ledger edited to name a list it does not have: a storage error, not a license
        // placed nowhere.
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE placements SET entry_set = 99 WHERE key_id = ?1", [keys[5].as_bytes().as_slice()])
            .unwrap();
        let mut tx = ledger.read().unwrap();
        assert_eq!(tx.placements("a", &keys[5]).unwrap_err().code(), ErrorCode::Storage);
        assert_eq!(tx.placements_of("a", &keys[..10]).unwrap_err().code(), ErrorCode::Storage);
        let mut reversed = keys[..10].to_vec();
        reversed.reverse();
        assert_eq!(tx.placements_of("b", &reversed).unwrap_err().code(), ErrorCode::Storage);
        assert_eq!(tx.for_each_placement("a", &mut |_, _| Ok(())).unwrap_err().code(), ErrorCode::Storage);
    }

    #[test]
    fn a_newer_ledger_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", LEDGER_VERSION + 1).unwrap();
        assert_eq!(SqliteLedger::open(&path).unwrap_err().code(), ErrorCode::Storage);
    }

    #[test]
    fn new_ledgers_get_the_larger_pages_and_existing_ones_keep_theirs() {
        use crate::sqlite::{create_with_page_size, page_size};
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.db");
        drop(SqliteLedger::open(&new).unwrap());
        assert_eq!(page_size(&new), i64::from(LEDGER_PAGE_SIZE));
        // A version-4 ledger of 4 KiB pages (SQLite's default, which earlier versions made
        // every ledger with) keeps them through the migration and a restore's worth of rows.
        let old = dir.path().join("old.db");
        create_with_page_size(&old, 4096);
        let ledger = SqliteLedger::open(&old).unwrap();
        let key_ids: Vec<KeyId> = (0..3000).map(key).collect();
        let mut tx = ledger.write().unwrap();
        assert_eq!(tx.insert_placements("a", &key_ids, &[1; 17]).unwrap(), key_ids.len());
        tx.commit().unwrap();
        drop(ledger);
        assert_eq!(page_size(&old), 4096);
        let ledger = SqliteLedger::open(&old).unwrap();
        let mut tx = ledger.read().unwrap();
        assert_eq!(tx.placements("a", &key_ids[2999]).unwrap(), Some(vec![1; 17]));
    }

    #[test]
    fn placements_are_read_and_written_many_at_a_time_as_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = SqliteLedger::open(dir.path().join("ledger.db")).unwrap();
        let row = |n: u32| vec![(n % 251) as u8; 17 + (n % 3) as usize];
        let mut tx = ledger.write().unwrap();
        // Rows for the even numbers below 6,000 in account a, and for all of them in b (rows in
        // the key range that are not a's).
        let even: Vec<(KeyId, Vec<u8>)> = (0..3000).map(|i| (key(2 * i), row(2 * i))).collect();
        tx.put_many_placements("a", &even).unwrap();
        let all: Vec<(KeyId, Vec<u8>)> = (0..6000).map(|n| (key(n), row(n + 1))).collect();
        tx.put_many_placements("b", &all).unwrap();
        let expect = |keys: &[KeyId], tx: &mut Box<dyn LedgerTx + '_>| -> Vec<Option<Vec<u8>>> {
            keys.iter().map(|k| tx.placements("a", k).unwrap()).collect()
        };
        // Ascending (one range), ascending and sparse (a range that others' rows would fill,
        // and one that a's own rows fill), descending, with repeats, and of an unknown account.
        let cases: Vec<Vec<KeyId>> = vec![
            (100..1124).map(key).collect(),
            (0..1024).map(|i| key(5 * i)).collect(),
            vec![key(0), key(5998)],
            (0..1024).rev().map(key).collect(),
            vec![key(4), key(3), key(4), key(7000)],
            vec![],
        ];
        for keys in &cases {
            let want = expect(keys, &mut tx);
            assert_eq!(tx.placements_of("a", keys).unwrap(), want, "{} keys", keys.len());
            assert_eq!(tx.placements_of("nobody", keys).unwrap(), vec![None; keys.len()]);
        }
        // Rewriting rows (existing and new, more than a statement's worth) then reading them.
        let rewrite: Vec<(KeyId, Vec<u8>)> = (0..700).map(|n| (key(n), vec![9; 20])).collect();
        tx.put_many_placements("a", &rewrite).unwrap();
        let keys: Vec<KeyId> = (0..800).map(key).collect();
        let got = tx.placements_of("a", &keys).unwrap();
        for (n, got) in got.iter().enumerate() {
            let want = if n < 700 {
                Some(vec![9; 20])
            } else if n % 2 == 0 {
                Some(row(n as u32))
            } else {
                None
            };
            assert_eq!(got, &want, "key {n}");
        }
        assert_eq!(tx.placements("b", &key(3)).unwrap(), Some(row(4)), "b's rows are b's");
    }

    #[test]
    fn many_row_inserts_count_only_new_rows_and_bind_each_call_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = SqliteLedger::open(dir.path().join("ledger.db")).unwrap();
        let keys: Vec<KeyId> = (0..2100).map(key).collect();
        {
            let mut tx = ledger.write().unwrap();
            tx.put_placements("a", &keys[5], &[7; 17]).unwrap();
            // Two statements' worth and a remainder; the row already there is kept as it is.
            assert_eq!(tx.insert_placements("a", &keys, &[1; 17]).unwrap(), keys.len() - 1);
            // Again in the same transaction (the statement prepared once): nothing new; then
            // another account's rows with other entries.
            assert_eq!(tx.insert_placements("a", &keys, &[2; 17]).unwrap(), 0);
            assert_eq!(tx.insert_placements("b", &keys[..1024], &[3; 18]).unwrap(), 1024);
            tx.commit().unwrap();
        }
        {
            // Dropped uncommitted: nothing stays.
            let mut tx = ledger.write().unwrap();
            let more: Vec<KeyId> = (3000..4024).map(key).collect();
            assert_eq!(tx.insert_placements("a", &more, &[4; 17]).unwrap(), 1024);
        }
        let mut tx = ledger.read().unwrap();
        assert_eq!(tx.placements("a", &keys[5]).unwrap(), Some(vec![7; 17]));
        assert_eq!(tx.placements("a", &keys[1000]).unwrap(), Some(vec![1; 17]));
        assert_eq!(tx.placements("a", &keys[2099]).unwrap(), Some(vec![1; 17]));
        assert_eq!(tx.placements("b", &keys[1023]).unwrap(), Some(vec![3; 18]));
        assert_eq!(tx.placements("b", &keys[1024]).unwrap(), None);
        assert_eq!(tx.placements("a", &key(3000)).unwrap(), None);
    }

    #[test]
    fn a_many_row_commit_leaves_its_log_to_the_next_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let ledger = SqliteLedger::open(&path).unwrap();
        let log_len = || std::fs::metadata(format!("{}-wal", path.display())).map_or(0, |m| m.len());
        // A restore's reservation: rows enough for a log beyond the checkpoint threshold.
        let keys: Vec<KeyId> = (0..300_000).map(key).collect();
        let mut tx = ledger.write().unwrap();
        assert_eq!(tx.insert_placements("a", &keys, &[1; 34]).unwrap(), keys.len());
        tx.commit().unwrap();
        ledger.checkpointer.wait();
        assert!(log_len() > LOG_CHECKPOINT_BYTES, "the log keeps the rows: {} bytes", log_len());
        // Committed there: another connection reads them all.
        let other = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let rows: i64 = other.query_row("SELECT count(*) FROM placements", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 300_000);
        drop(other);
        assert!(log_len() > LOG_CHECKPOINT_BYTES);
        // The next commit (a restore's confirmation: one row) copies it back.
        let mut tx = ledger.write().unwrap();
        tx.put_placements("a", &keys[0], &[2; 17]).unwrap();
        tx.commit().unwrap();
        ledger.checkpointer.wait();
        assert_eq!(log_len(), 0, "copied back and truncated");
        let mut tx = ledger.read().unwrap();
        assert_eq!(tx.placements("a", &keys[0]).unwrap(), Some(vec![2; 17]));
        assert_eq!(tx.placements("a", &keys[299_999]).unwrap(), Some(vec![1; 34]));
    }

    #[test]
    fn a_transaction_dropped_uncommitted_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = SqliteLedger::open(dir.path().join("ledger.db")).unwrap();
        {
            let mut tx = ledger.write().unwrap();
            tx.put_placements("a", &kid(1), &[0; 17]).unwrap();
            assert_eq!(tx.insert_placements("a", &[kid(1), kid(2)], &[1; 17]).unwrap(), 1);
        }
        let mut tx = ledger.read().unwrap();
        assert_eq!(tx.placements("a", &kid(1)).unwrap(), None);
        assert_eq!(tx.placements("a", &kid(2)).unwrap(), None);
    }
}
