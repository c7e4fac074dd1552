//! The ledger in PostgreSQL: the storage interface of the service's logic
//! ([`license_backup::service::Ledger`]) over a pool of `tokio-postgres` connections
//! (`deadpool-postgres`), for any number of service instances on one database.
//!
//! **Isolation.** A transaction that writes runs at `READ COMMITTED` and, before its first
//! statement about an account, takes that account's row lock (`SELECT ... FOR NO KEY UPDATE`
//! on `accounts`): every check-then-write of one account (the quota of each license, the
//! reservation of a request ID) is serialized across all instances, and every statement after
//! the lock sees what the previous holders committed. A transaction names one account, so it
//! takes one lock and no two authorizations deadlock. Reads (quota queries, audits) run in a
//! `REPEATABLE READ READ ONLY` snapshot and take no lock. Serializable transactions with retry
//! were not chosen: a request's key IDs are streamed from its body and consumed once, so a
//! transaction cannot be replayed on a serialization failure (`docs/deploy.md`).
//!
//! **Bulk.** No statement is made per license: licenses the ledger has not seen are inserted a
//! chunk at a time (the key IDs as one array parameter); the rows of a chunk's known licenses
//! are read in one statement with the reservations they name, a lookup outside a chunk reads
//! the rows that follow it in key-ID order (the order of archives), and rewritten rows are sent
//! together, in key-ID order, before the commit.
//!
//! **Faults.** A lost connection, a restarting server, a lock or statement timeout, a
//! serialization or deadlock failure and an exhausted pool all fail with
//! `SERVICE_UNAVAILABLE` (retryable: a device retries with the same request ID and is
//! answered from the reservation if it was committed); an uncommitted transaction is rolled
//! back, or its connection dropped, which PostgreSQL rolls back. Other database errors are
//! `STORAGE`.
//!
//! The storage interface is synchronous: its calls block on the runtime's [`Handle`], so they
//! run on blocking threads (`spawn_blocking`), never on the runtime's own.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use license_backup::protocol::PublishedKey;
use license_backup::service::ledger::{
    DeviceRecord, Ledger, LedgerTx, PERMANENT, Reservation, ReservationRef, ReservationState,
};
use license_backup::{
    Authority, DeviceRegistration, Error, ErrorCode, FileKind, KeyId, LedgerAudit, ProtectedFile, Protector, Quota,
    RequestId, RestoreGrant, RestoreRequest, Result, ServiceError, ServicePolicy, Settlement,
};
use tokio::runtime::Handle;
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use crate::pg_tls;
use zeroize::Zeroizing;

use crate::BoxFuture;
use crate::auth::Account;
use crate::ledger::{AuthorityLedger, KeyIdReceiver, Ledger as ServedLedger};

/// The schema's migrations, in order: (version, name, SQL). Each runs once, in a transaction,
/// recorded in `lb_schema_migrations`.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[(1, "ledger", include_str!("../migrations/0001_ledger.sql"))];

/// The advisory lock that serializes migrations when instances start together.
const MIGRATION_LOCK: i64 = 0x6c62_6c65_6467_6572; // "lbledger"

/// Placement rows read per statement by an audit's pass.
const AUDIT_PAGE: i64 = 10_000;

/// Placement rows read ahead in key-ID order by one lookup.
const RANGE_ROWS: i64 = 256;

/// Rewritten placement rows kept before they are sent in one statement.
const UNSENT_ROWS: usize = 4096;

/// How the pool and its sessions behave.
#[derive(Clone, Debug)]
pub struct PgSettings {
    /// Connections in the pool (each instance's share of the server's `max_connections`).
    pub max_connections: usize,
    /// How long a request waits for a free connection before it fails with
    /// `SERVICE_UNAVAILABLE`.
    pub acquire_timeout: Duration,
    /// How long a transaction waits for its account's lock (`lock_timeout`).
    pub lock_timeout: Duration,
    /// The longest one statement may run (`statement_timeout`).
    pub statement_timeout: Duration,
    /// How long a session may sit idle inside a transaction before the server ends it
    /// (`idle_in_transaction_session_timeout`): a request stalled mid-stream cannot hold its
    /// account's lock for longer.
    pub idle_in_transaction_timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(30),
            statement_timeout: Duration::from_secs(60),
            idle_in_transaction_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A ledger in a PostgreSQL database.
pub struct PgLedger {
    pool: Pool,
    handle: Handle,
    settings: PgSettings,
    protector: Protector,
    /// The service keys' seeds, the current one first; empty until [`PgLedger::prepare`].
    seeds: Mutex<Vec<Zeroizing<[u8; 32]>>>,
    migrated: AtomicBool,
}

impl std::fmt::Debug for PgLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLedger").field("settings", &self.settings).finish_non_exhaustive()
    }
}

fn unavailable(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::ServiceUnavailable, message)
}

/// The SQLSTATEs a retry can cure: connection exceptions (class 08), serialization failure and
/// deadlock (40001, 40P01), lock not available (55P03), query canceled by a timeout (57014),
/// the server shutting down or starting (57P01-57P03), too many connections (53300), and a
/// unique key raced by another transaction (23505).
fn retryable(state: &str) -> bool {
    state.starts_with("08")
        || matches!(state, "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" | "53300" | "23505")
}

/// A database error as the service reports it.
pub fn db_error(e: tokio_postgres::Error) -> Error {
    if let Some(tls) = pg_tls::tls_failure(&e) {
        return tls;
    }
    match e.code() {
        Some(state) if retryable(state.code()) => {
            unavailable(format!("the ledger database cannot complete the request now (SQLSTATE {}): {e}", state.code()))
        }
        Some(state) => Error::new(ErrorCode::Storage, format!("ledger database (SQLSTATE {}): {e}", state.code())),
        None => unavailable(format!("the ledger database is unreachable: {e}")),
    }
}

fn pool_error(e: PoolError, settings: &PgSettings) -> Error {
    match e {
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => unavailable(format!(
            "the ledger is busy: all {} database connections stayed in use for {:?}",
            settings.max_connections, settings.acquire_timeout
        )),
        PoolError::Timeout(_) => unavailable("the ledger database did not answer in time"),
        PoolError::Backend(e) => db_error(e),
        other => unavailable(format!("the ledger's connection pool: {other}")),
    }
}

fn malformed() -> Error {
    Error::new(ErrorCode::Storage, "malformed row in the service ledger")
}

fn array16(v: Vec<u8>) -> Result<[u8; 16]> {
    v.try_into().map_err(|_| malformed())
}

fn opt16(v: Option<Vec<u8>>) -> Result<Option<[u8; 16]>> {
    v.map(array16).transpose()
}

impl PgLedger {
    /// A ledger on the database at `url` (`postgres://user:password@host:port/database`, with
    /// libpq's `sslmode` and `sslrootcert`: [`crate::pg_tls`]), the service keys in it wrapped
    /// by `protector`, calling the database on `handle`'s runtime. Connects lazily: nothing is
    /// read until [`PgLedger::prepare`].
    pub fn new(url: &str, settings: PgSettings, protector: Protector, handle: Handle) -> Result<Self> {
        let (url, tls) = pg_tls::split_url(url)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            Error::new(ErrorCode::InvalidArgument, format!("the ledger URL is not a PostgreSQL URL: {e}"))
        })?;
        let ms = |d: Duration| d.as_millis().max(1);
        config
            .ssl_mode(tls.mode.driver_mode())
            .application_name("license-backup-service")
            .connect_timeout(settings.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .options(format!(
                "-c lock_timeout={} -c statement_timeout={} -c idle_in_transaction_session_timeout={}",
                ms(settings.lock_timeout),
                ms(settings.statement_timeout),
                ms(settings.idle_in_transaction_timeout)
            ));
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match pg_tls::connector(&tls)? {
            Some(tls) => Manager::from_config(config, tls, manager_config),
            None => Manager::from_config(config, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(settings.max_connections.max(1))
            .wait_timeout(Some(settings.acquire_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::new(ErrorCode::Internal, format!("ledger pool: {e}")))?;
        Ok(PgLedger {
            pool,
            handle,
            settings,
            protector,
            seeds: Mutex::new(Vec::new()),
            migrated: AtomicBool::new(false),
        })
    }

    /// The pool settings.
    pub fn settings(&self) -> &PgSettings {
        &self.settings
    }

    async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(|e| pool_error(e, &self.settings))
    }

    /// Applies the migrations the database lacks and opens the service keys (making the first
    /// one on a new ledger, and wrapping clear seeds in place when a protector is configured),
    /// all in one transaction under an advisory lock, so that instances starting together agree;
    /// returns the versions applied. Blocks: call it off the runtime. Fails with `STORAGE` when
    /// the database holds a newer schema than this server knows, with the protector codes when
    /// the keys do not open, with `SERVICE_UNAVAILABLE` when the database cannot be reached.
    pub fn prepare(&self) -> Result<Vec<i32>> {
        let (applied, keys) = self.block_on(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db_error)?;
            let applied = migrate(&tx).await?;
            let file = ledger_file(&tx).await?;
            let keys = open_keys(&tx, &file, &self.protector).await?;
            tx.commit().await.map_err(db_error)?;
            Ok::<_, Error>((applied, keys))
        })??;
        *self.seeds.lock().unwrap_or_else(|p| p.into_inner()) = keys;
        self.migrated.store(true, Ordering::Release);
        Ok(applied)
    }

    /// Makes a fresh current service key (wrapped by the configured protector); the key it
    /// replaces is kept, retired, so archives made for it stay restorable. Instances use the new
    /// key once restarted. Blocks: call it off the runtime.
    pub fn rotate_key(&self) -> Result<()> {
        self.block_on(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db_error)?;
            migrate(&tx).await?;
            let file = ledger_file(&tx).await?;
            // The configured protector must open the keys as stored before a new one is made.
            open_keys(&tx, &file, &self.protector).await?;
            tx.execute("UPDATE service_keys SET state = 'retired', retired_at = now() WHERE state = 'current'", &[])
                .await
                .map_err(db_error)?;
            insert_fresh_key(&tx, &file, &self.protector).await?;
            tx.commit().await.map_err(db_error)
        })?
    }

    /// Records the public key and fingerprint of each service key (in the order of
    /// [`Ledger::service_seeds`]) where the ledger does not have them yet.
    pub async fn record_public_keys(&self, public_keys: &[[u8; 32]]) -> Result<()> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id FROM service_keys ORDER BY (state = 'current') DESC, retired_at DESC NULLS LAST, id DESC",
                &[],
            )
            .await
            .map_err(db_error)?;
        for (row, public_key) in rows.iter().zip(public_keys) {
            let id: i64 = row.get(0);
            let fingerprint = license_backup::protocol::device_id_of(public_key);
            client
                .execute(
                    "UPDATE service_keys SET public_key = $2, fingerprint = $3 WHERE id = $1 AND public_key IS NULL",
                    &[&id, &public_key.as_slice(), &fingerprint.as_slice()],
                )
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    /// The schema version of the database (0 before the first migration).
    pub async fn schema_version(&self) -> Result<i32> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT CASE WHEN to_regclass('lb_schema_migrations') IS NULL THEN 0 \
                 ELSE (SELECT coalesce(max(version), 0) FROM lb_schema_migrations) END",
                &[],
            )
            .await
            .map_err(db_error)?;
        Ok(row.get(0))
    }

    /// Whether the ledger can serve: migrated, and the database answers.
    pub async fn ready(&self) -> Result<()> {
        if !self.migrated.load(Ordering::Acquire) {
            return Err(unavailable("the ledger database is not migrated yet (is it reachable?)"));
        }
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(db_error)?;
        Ok(())
    }

    /// Whether the migrations ran (this process).
    pub fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }

    /// Runs `f` on the ledger's runtime from a thread that is not one of its workers (a
    /// blocking-pool thread, or one outside the runtime); on a worker thread it panics.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> Result<F::Output> {
        Ok(self.handle.block_on(f))
    }

    fn begin(&self, write: bool) -> Result<Box<dyn LedgerTx + '_>> {
        if !self.is_migrated() {
            return Err(unavailable("the ledger database is not migrated yet (is it reachable?)"));
        }
        let sql = if write {
            "BEGIN ISOLATION LEVEL READ COMMITTED"
        } else {
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        };
        let client = self.block_on(async {
            let client = self.client().await?;
            client.batch_execute(sql).await.map_err(db_error)?;
            Ok::<_, Error>(client)
        })??;
        Ok(Box::new(PgTx {
            ledger: self,
            client: Some(client),
            write,
            open: true,
            account: None,
            chunk: Vec::new(),
            read_ahead: HashMap::new(),
            range: None,
            unsent: BTreeMap::new(),
            reservations_ahead: HashMap::new(),
        }))
    }
}

/// Applies the migrations the database lacks, in the caller's transaction, under the
/// migrations' advisory lock; returns the versions applied.
async fn migrate(tx: &deadpool_postgres::Transaction<'_>) -> Result<Vec<i32>> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(db_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS lb_schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(db_error)?;
    let have: Option<i32> =
        tx.query_one("SELECT max(version) FROM lb_schema_migrations", &[]).await.map_err(db_error)?.get(0);
    let have = have.unwrap_or(0);
    let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if have > latest {
        return Err(Error::new(
            ErrorCode::Storage,
            format!("the ledger's schema is at version {have}, newer than this server knows ({latest})"),
        ));
    }
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > have) {
        tx.batch_execute(sql).await.map_err(db_error)?;
        tx.execute("INSERT INTO lb_schema_migrations (version, name) VALUES ($1, $2)", &[version, name])
            .await
            .map_err(db_error)?;
        applied.push(*version);
    }
    Ok(applied)
}

/// The ledger's identity for protectors (made on first use).
async fn ledger_file(tx: &deadpool_postgres::Transaction<'_>) -> Result<ProtectedFile> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| Error::new(ErrorCode::Internal, format!("no randomness: {e}")))?;
    tx.execute("INSERT INTO ledger_file (file_id) VALUES ($1) ON CONFLICT DO NOTHING", &[&id.as_slice()])
        .await
        .map_err(db_error)?;
    let row = tx.query_one("SELECT file_id FROM ledger_file", &[]).await.map_err(db_error)?;
    Ok(ProtectedFile { kind: FileKind::Ledger, file_id: array16(row.get(0))? })
}

/// A protector's failure as one of the protector codes.
fn protector_error(protector: &Protector, what: &str, e: Error) -> Error {
    match e.code() {
        ErrorCode::ProtectorMismatch | ErrorCode::ProtectorFailed => e,
        _ => Error::new(
            ErrorCode::ProtectorFailed,
            format!("the {} protector failed to {what}: {}", protector.label(), e.message()),
        ),
    }
}

/// A seed as stored: in clear without a protector, else wrapped by it (checked to open again).
fn wrap_seed(seed: &[u8; 32], file: &ProtectedFile, protector: &Protector) -> Result<Vec<u8>> {
    let Some(p) = protector.get() else { return Ok(seed.to_vec()) };
    let wrapped = p.wrap(seed, file).map_err(|e| protector_error(protector, "wrap", e))?;
    if unwrap_seed(&wrapped, file, protector)?.as_slice() != seed.as_slice() {
        return Err(Error::new(
            ErrorCode::ProtectorMismatch,
            format!("the {} protector does not give back what it wrapped", protector.label()),
        ));
    }
    Ok(wrapped)
}

fn unwrap_seed(stored: &[u8], file: &ProtectedFile, protector: &Protector) -> Result<Zeroizing<[u8; 32]>> {
    let Some(p) = protector.get() else {
        return Err(Error::new(
            ErrorCode::ProtectorRequired,
            "the ledger's service keys are protected by a key protector; configure that protector",
        ));
    };
    let seed = p.unwrap(stored, file).map_err(|e| protector_error(protector, "unwrap", e))?;
    let seed: [u8; 32] = seed.as_slice().try_into().map_err(|_| {
        Error::new(
            ErrorCode::ProtectorMismatch,
            format!("the {} protector cannot unwrap the ledger's keys", protector.label()),
        )
    })?;
    Ok(Zeroizing::new(seed))
}

async fn insert_fresh_key(
    tx: &deadpool_postgres::Transaction<'_>,
    file: &ProtectedFile,
    protector: &Protector,
) -> Result<()> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut_slice()).map_err(|e| Error::new(ErrorCode::Internal, format!("no randomness: {e}")))?;
    let stored = wrap_seed(&seed, file, protector)?;
    tx.execute(
        "INSERT INTO service_keys (state, protector, seed) VALUES ('current', $1, $2)",
        &[&protector.label(), &stored],
    )
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The service keys' seeds, the current one first, then the retired ones, newest first; a
/// fresh current key when there is none; clear seeds wrapped in place when a protector is given.
async fn open_keys(
    tx: &deadpool_postgres::Transaction<'_>,
    file: &ProtectedFile,
    protector: &Protector,
) -> Result<Vec<Zeroizing<[u8; 32]>>> {
    let sql = "SELECT id, protector, seed FROM service_keys \
               ORDER BY (state = 'current') DESC, retired_at DESC NULLS LAST, id DESC";
    let mut rows = tx.query(sql, &[]).await.map_err(db_error)?;
    if rows.is_empty() {
        insert_fresh_key(tx, file, protector).await?;
        rows = tx.query(sql, &[]).await.map_err(db_error)?;
    }
    let mut seeds = Vec::with_capacity(rows.len());
    for row in &rows {
        let (id, label, stored): (i64, String, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
        let stored = Zeroizing::new(stored);
        let seed = if label == "unprotected" {
            let seed: [u8; 32] = stored.as_slice().try_into().map_err(|_| malformed())?;
            let seed = Zeroizing::new(seed);
            if !protector.is_unprotected() {
                let wrapped = wrap_seed(&seed, file, protector)?;
                tx.execute(
                    "UPDATE service_keys SET protector = $2, seed = $3 WHERE id = $1",
                    &[&id, &protector.label(), &wrapped],
                )
                .await
                .map_err(db_error)?;
            }
            seed
        } else {
            unwrap_seed(&stored, file, protector)?
        };
        seeds.push(seed);
    }
    Ok(seeds)
}

impl Ledger for PgLedger {
    fn service_seeds(&self) -> Result<Vec<Zeroizing<[u8; 32]>>> {
        let seeds = self.seeds.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if seeds.is_empty() {
            return Err(unavailable("the ledger database has not been opened yet (is it reachable?)"));
        }
        Ok(seeds)
    }

    fn write(&self) -> Result<Box<dyn LedgerTx + '_>> {
        self.begin(true)
    }

    fn read(&self) -> Result<Box<dyn LedgerTx + '_>> {
        self.begin(false)
    }
}

/// One transaction on a pooled connection; rolled back when dropped uncommitted (its
/// connection is discarded if the rollback fails).
struct PgTx<'a> {
    ledger: &'a PgLedger,
    client: Option<Object>,
    write: bool,
    open: bool,
    /// The account of this transaction: (name, row ID or `None` when it has none).
    account: Option<(String, Option<i64>)>,
    /// The key IDs of the last [`LedgerTx::insert_placements`]: the logic reads the rows of
    /// those it did not insert next, so they are read in one statement.
    chunk: Vec<[u8; 16]>,
    /// Rows read ahead (`None`: the license has no row).
    read_ahead: HashMap<[u8; 16], Option<Vec<u8>>>,
    /// The key-ID range (inclusive; `None`: to the end) whose every row is in `read_ahead`:
    /// archives list their licenses in key-ID order, so a lookup outside a chunk reads the rows
    /// that follow it in one statement.
    range: Option<([u8; 16], Option<[u8; 16]>)>,
    /// Rows written by [`LedgerTx::put_placements`] and not yet sent: sent in one statement
    /// (in key-ID order) every 4,096 rows, before an insert that names one of them, a full
    /// pass, or the commit.
    unsent: BTreeMap<[u8; 16], Vec<u8>>,
    /// Reservations read ahead: those named by the rows read ahead (the logic asks for each
    /// one's state next). Dropped when this transaction changes a reservation.
    reservations_ahead: HashMap<ReservationRef, Option<Reservation>>,
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        if self.open {
            let rolled_back =
                self.ledger.block_on(async { client.batch_execute("ROLLBACK").await.is_ok() }).unwrap_or(false);
            if !rolled_back {
                // Out of the pool: closing the connection rolls the transaction back.
                drop(Object::take(client));
            }
        }
    }
}

const RESERVATION_COLUMNS: &str = "r.id, a.name, r.request_id, r.archive_id, r.device_id, r.counted_as, r.replaces, \
     r.licenses, r.key_digest, r.state, r.created_at, r.settled_at";

fn reservation_from_row(row: &tokio_postgres::Row) -> Result<Reservation> {
    let digest: Vec<u8> = row.try_get(8).map_err(db_error)?;
    let state: String = row.try_get(9).map_err(db_error)?;
    Ok(Reservation {
        id: row.try_get(0).map_err(db_error)?,
        account: row.try_get(1).map_err(db_error)?,
        request_id: opt16(row.try_get(2).map_err(db_error)?)?,
        archive_id: array16(row.try_get(3).map_err(db_error)?)?,
        device_id: array16(row.try_get(4).map_err(db_error)?)?,
        counted_as: array16(row.try_get(5).map_err(db_error)?)?,
        replaces: opt16(row.try_get(6).map_err(db_error)?)?,
        licenses: u64::try_from(row.try_get::<_, i64>(7).map_err(db_error)?).map_err(|_| malformed())?,
        key_digest: digest.try_into().map_err(|_| malformed())?,
        state: ReservationState::parse(&state)?,
        created_at: row.try_get(10).map_err(db_error)?,
        settled_at: row.try_get(11).map_err(db_error)?,
    })
}

impl PgTx<'_> {
    fn client(&self) -> &Object {
        self.client.as_ref().expect("an open transaction has its connection")
    }

    /// Runs one statement: (SQL, parameters) -> rows.
    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.client();
        self.ledger.block_on(async {
            let stmt = client.prepare_cached(sql).await.map_err(db_error)?;
            client.query(&stmt, params).await.map_err(db_error)
        })?
    }

    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let client = self.client();
        self.ledger.block_on(async {
            let stmt = client.prepare_cached(sql).await.map_err(db_error)?;
            client.execute(&stmt, params).await.map_err(db_error)
        })?
    }

    /// The row ID of `account`. In a transaction that writes, the account's row is created if
    /// missing and locked (held to the end of the transaction) before anything else about the
    /// account is read; a transaction serves one account.
    fn account_id(&mut self, account: &str) -> Result<Option<i64>> {
        if let Some((name, id)) = &self.account {
            if name == account {
                return Ok(*id);
            }
            if self.write {
                return Err(Error::new(ErrorCode::Internal, "a ledger transaction that writes serves one account"));
            }
        }
        let id = if self.write {
            self.execute("INSERT INTO accounts (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", &[&account])?;
            let rows = self.query("SELECT id FROM accounts WHERE name = $1 FOR NO KEY UPDATE", &[&account])?;
            Some(rows.first().ok_or_else(malformed)?.get(0))
        } else {
            self.query("SELECT id FROM accounts WHERE name = $1", &[&account])?.first().map(|r| r.get(0))
        };
        self.account = Some((account.to_string(), id));
        Ok(id)
    }

    /// Sends the rows written and not yet sent, in one statement.
    fn send_unsent(&mut self) -> Result<()> {
        if self.unsent.is_empty() {
            return Ok(());
        }
        let account = self.account.as_ref().and_then(|(_, id)| *id).ok_or_else(malformed)?;
        let unsent = std::mem::take(&mut self.unsent);
        let keys: Vec<&[u8]> = unsent.keys().map(|k| k.as_slice()).collect();
        let rows: Vec<&[u8]> = unsent.values().map(|v| v.as_slice()).collect();
        self.execute(
            "INSERT INTO placements (account, key_id, entries) \
             SELECT $1, k, e FROM unnest($2::bytea[], $3::bytea[]) AS t(k, e) \
             ON CONFLICT (account, key_id) DO UPDATE SET entries = EXCLUDED.entries",
            &[&account, &keys, &rows],
        )?;
        // What was read ahead may predate these rows.
        self.read_ahead.clear();
        self.range = None;
        Ok(())
    }

    /// Reads the reservations `ids` (deduplicated) in one statement, for the lookups that follow.
    fn read_reservations_ahead(&mut self, mut ids: Vec<ReservationRef>) -> Result<()> {
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations r JOIN accounts a ON a.id = r.account \
             WHERE r.id = ANY($1::bigint[])"
        );
        for id in &ids {
            self.reservations_ahead.insert(*id, None);
        }
        for row in self.query(&sql, &[&ids])? {
            let r = reservation_from_row(&row)?;
            self.reservations_ahead.insert(r.id, Some(r));
        }
        Ok(())
    }

    fn one_reservation(&self, condition: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Reservation>> {
        let sql = format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations r JOIN accounts a ON a.id = r.account WHERE {condition}"
        );
        self.query(&sql, params)?.first().map(reservation_from_row).transpose()
    }
}

impl LedgerTx for PgTx<'_> {
    fn device(&mut self, device_id: &[u8; 16]) -> Result<Option<DeviceRecord>> {
        let rows = self.query(
            "SELECT a.name, d.counts_as, d.public_key, d.since FROM devices d JOIN accounts a ON a.id = d.account \
             WHERE d.device_id = $1",
            &[&device_id.as_slice()],
        )?;
        let Some(row) = rows.first() else { return Ok(None) };
        let public_key: Option<Vec<u8>> = row.get(2);
        Ok(Some(DeviceRecord {
            device_id: *device_id,
            account: row.get(0),
            counts_as: array16(row.get(1))?,
            public_key: public_key.map(|k| k.try_into().map_err(|_| malformed())).transpose()?,
            since: row.get(3),
        }))
    }

    fn insert_device(&mut self, device: &DeviceRecord) -> Result<bool> {
        let account = self.account_id(&device.account)?.ok_or_else(malformed)?;
        let n = self.execute(
            "INSERT INTO devices (device_id, account, counts_as, public_key, since) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT DO NOTHING",
            &[
                &device.device_id.as_slice(),
                &account,
                &device.counts_as.as_slice(),
                &device.public_key.as_ref().map(|k| k.as_slice()),
                &device.since,
            ],
        )?;
        Ok(n == 1)
    }

    fn device_count(&mut self, account: &str) -> Result<u64> {
        let Some(account) = self.account_id(account)? else { return Ok(0) };
        let n: i64 = self.query("SELECT count(*) FROM devices WHERE account = $1", &[&account])?[0].get(0);
        Ok(n as u64)
    }

    fn reservation(&mut self, id: ReservationRef) -> Result<Option<Reservation>> {
        if let Some(r) = self.reservations_ahead.get(&id) {
            return Ok(r.clone());
        }
        self.one_reservation("r.id = $1", &[&id])
    }

    fn reservation_by_request(&mut self, account: &str, request_id: &RequestId) -> Result<Option<Reservation>> {
        let Some(account) = self.account_id(account)? else { return Ok(None) };
        self.one_reservation("r.account = $1 AND r.request_id = $2", &[&account, &request_id.as_slice()])
    }

    fn insert_reservation(&mut self, r: &Reservation) -> Result<ReservationRef> {
        self.reservations_ahead.clear();
        let account = self.account_id(&r.account)?.ok_or_else(malformed)?;
        let licenses =
            i64::try_from(r.licenses).map_err(|_| Error::new(ErrorCode::InvalidArgument, "too many licenses"))?;
        let rows = self.query(
            "INSERT INTO reservations (account, request_id, archive_id, device_id, counted_as, replaces, licenses, \
             key_digest, state, created_at, settled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             RETURNING id",
            &[
                &account,
                &r.request_id.as_ref().map(|x| x.as_slice()),
                &r.archive_id.as_slice(),
                &r.device_id.as_slice(),
                &r.counted_as.as_slice(),
                &r.replaces.as_ref().map(|x| x.as_slice()),
                &licenses,
                &r.key_digest.as_slice(),
                &r.state.as_str(),
                &r.created_at,
                &r.settled_at,
            ],
        )?;
        Ok(rows[0].get(0))
    }

    fn set_reservation_state(&mut self, id: ReservationRef, state: ReservationState, at: i64) -> Result<()> {
        self.reservations_ahead.clear();
        self.execute(
            "UPDATE reservations SET state = $2, settled_at = $3 WHERE id = $1",
            &[&id, &state.as_str(), &at],
        )?;
        Ok(())
    }

    fn set_reservation_digest(&mut self, id: ReservationRef, key_digest: &[u8; 32]) -> Result<()> {
        self.reservations_ahead.clear();
        self.execute("UPDATE reservations SET key_digest = $2 WHERE id = $1", &[&id, &key_digest.as_slice()])?;
        Ok(())
    }

    fn reservations(&mut self, account: &str) -> Result<Vec<Reservation>> {
        let Some(account) = self.account_id(account)? else { return Ok(Vec::new()) };
        let sql = format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations r JOIN accounts a ON a.id = r.account \
             WHERE r.account = $1 ORDER BY r.id"
        );
        self.query(&sql, &[&account])?.iter().map(reservation_from_row).collect()
    }

    fn pending_before(&mut self, account: &str, before: i64) -> Result<Vec<ReservationRef>> {
        let Some(account) = self.account_id(account)? else { return Ok(Vec::new()) };
        let rows = self.query(
            "SELECT id FROM reservations WHERE account = $1 AND state = 'pending' AND created_at <= $2 ORDER BY id",
            &[&account, &before],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn placements(&mut self, account: &str, key_id: &KeyId) -> Result<Option<Vec<u8>>> {
        let Some(account) = self.account_id(account)? else { return Ok(None) };
        let kid = *key_id.as_bytes();
        if let Some(row) = self.unsent.get(&kid) {
            return Ok(Some(row.clone()));
        }
        if let Some(row) = self.read_ahead.get(&kid) {
            return Ok(row.clone());
        }
        if self.chunk.contains(&kid) {
            // The rest of the last chunk's rows, in one statement.
            let wanted: Vec<&[u8]> = self
                .chunk
                .iter()
                .filter(|k| !self.unsent.contains_key(*k) && !self.read_ahead.contains_key(*k))
                .map(|k| k.as_slice())
                .collect();
            let rows = self.query(
                "SELECT key_id, entries FROM placements WHERE account = $1 AND key_id = ANY($2::bytea[])",
                &[&account, &wanted],
            )?;
            let mut found: HashMap<[u8; 16], Option<Vec<u8>>> =
                wanted.iter().map(|k| (<[u8; 16]>::try_from(*k).expect("16 bytes"), None)).collect();
            let mut named: Vec<ReservationRef> = Vec::new();
            for row in &rows {
                let entries: Vec<u8> = row.get(1);
                for e in license_backup::service::ledger::entries(&entries)? {
                    if e.reservation != PERMANENT && !self.reservations_ahead.contains_key(&e.reservation) {
                        named.push(e.reservation);
                    }
                }
                found.insert(array16(row.get(0))?, Some(entries));
            }
            self.read_ahead.extend(found);
            self.read_reservations_ahead(named)?;
            return Ok(self.read_ahead.get(&kid).cloned().flatten());
        }
        if let Some((lo, hi)) = &self.range {
            if kid >= *lo && hi.is_none_or(|h| kid <= h) {
                return Ok(None);
            }
        }
        // This row and the ones after it in key-ID order, in one statement.
        let rows = self.query(
            "SELECT key_id, entries FROM placements WHERE account = $1 AND key_id >= $2 ORDER BY key_id LIMIT $3",
            &[&account, &kid.as_slice(), &RANGE_ROWS],
        )?;
        self.read_ahead.clear();
        let mut named: Vec<ReservationRef> = Vec::new();
        let mut last = None;
        for row in &rows {
            let (key, entries): ([u8; 16], Vec<u8>) = (array16(row.get(0))?, row.get(1));
            for e in license_backup::service::ledger::entries(&entries)? {
                if e.reservation != PERMANENT && !self.reservations_ahead.contains_key(&e.reservation) {
                    named.push(e.reservation);
                }
            }
            self.read_ahead.insert(key, Some(entries));
            last = Some(key);
        }
        self.range = Some((kid, if (rows.len() as i64) < RANGE_ROWS { None } else { last }));
        self.read_reservations_ahead(named)?;
        Ok(self.read_ahead.get(&kid).cloned().flatten())
    }

    fn insert_placements(&mut self, account: &str, key_ids: &[KeyId], entries: &[u8]) -> Result<usize> {
        let account = self.account_id(account)?.ok_or_else(malformed)?;
        // Rows not yet sent stay unsent unless this insert could meet them (a key ID repeated).
        if key_ids.iter().any(|k| self.unsent.contains_key(k.as_bytes())) {
            self.send_unsent()?;
        }
        self.read_ahead.clear();
        self.range = None;
        self.chunk = key_ids.iter().map(|k| *k.as_bytes()).collect();
        // One statement for the whole slice (the key IDs as one array parameter), which also
        // returns the rows of the licenses known before it: the logic reads those next. (The
        // outer query sees the rows as they were before the statement's insert.)
        let keys: Vec<&[u8]> = key_ids.iter().map(|k| k.as_bytes().as_slice()).collect();
        let rows = self.query(
            "WITH inserted AS (INSERT INTO placements (account, key_id, entries) \
             SELECT $1, k, $3 FROM unnest($2::bytea[]) AS k ON CONFLICT DO NOTHING RETURNING 1) \
             SELECT NULL::bytea, NULL::bytea, (SELECT count(*) FROM inserted) \
             UNION ALL SELECT key_id, entries, 0 FROM placements WHERE account = $1 AND key_id = ANY($2::bytea[])",
            &[&account, &keys, &entries],
        )?;
        let mut inserted = 0i64;
        let mut named: Vec<ReservationRef> = Vec::new();
        for kid in &self.chunk {
            // Rows not returned were written by this statement.
            self.read_ahead.insert(*kid, Some(entries.to_vec()));
        }
        for row in &rows {
            let Some(kid) = row.get::<_, Option<Vec<u8>>>(0) else {
                inserted = row.get(2);
                continue;
            };
            let known: Vec<u8> = row.get(1);
            for e in license_backup::service::ledger::entries(&known)? {
                if e.reservation != PERMANENT && !self.reservations_ahead.contains_key(&e.reservation) {
                    named.push(e.reservation);
                }
            }
            self.read_ahead.insert(array16(kid)?, Some(known));
        }
        self.read_reservations_ahead(named)?;
        usize::try_from(inserted).map_err(|_| malformed())
    }

    fn put_placements(&mut self, account: &str, key_id: &KeyId, entries: &[u8]) -> Result<()> {
        self.account_id(account)?.ok_or_else(malformed)?;
        self.unsent.insert(*key_id.as_bytes(), entries.to_vec());
        if self.unsent.len() >= UNSENT_ROWS {
            self.send_unsent()?;
        }
        Ok(())
    }

    fn for_each_placement(&mut self, account: &str, visit: &mut dyn FnMut(&KeyId, &[u8]) -> Result<()>) -> Result<()> {
        let Some(account) = self.account_id(account)? else { return Ok(()) };
        self.send_unsent()?;
        // Pages in key-ID order (memory stays flat over millions of rows).
        let mut after: Vec<u8> = Vec::new();
        loop {
            let rows = self.query(
                "SELECT key_id, entries FROM placements WHERE account = $1 AND key_id > $2 ORDER BY key_id LIMIT $3",
                &[&account, &after, &AUDIT_PAGE],
            )?;
            for row in &rows {
                let kid: Vec<u8> = row.get(0);
                let entries: Vec<u8> = row.get(1);
                let key = KeyId::from_slice(&kid).map_err(|_| malformed())?;
                visit(&key, &entries)?;
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == AUDIT_PAGE => after = last.get(0),
                _ => return Ok(()),
            }
        }
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        self.send_unsent()?;
        let client = self.client();
        self.ledger.block_on(async { client.batch_execute("COMMIT").await.map_err(db_error) })??;
        self.open = false;
        Ok(())
    }
}

/// [`PgLedger`] shared between the server's logic and its start-up task.
pub struct SharedPg(Arc<PgLedger>);

impl Ledger for SharedPg {
    fn service_seeds(&self) -> Result<Vec<Zeroizing<[u8; 32]>>> {
        self.0.service_seeds()
    }

    fn write(&self) -> Result<Box<dyn LedgerTx + '_>> {
        self.0.write()
    }

    fn read(&self) -> Result<Box<dyn LedgerTx + '_>> {
        self.0.read()
    }
}

/// The PostgreSQL ledger as the server serves it: the library's logic over [`PgLedger`]
/// ([`AuthorityLedger`]) once the database was reached, migrated and its keys opened; until
/// then every call fails with `SERVICE_UNAVAILABLE` and readiness says not ready, while a task
/// retries every second ([`PostgresLedger::open_in_background`]).
pub struct PostgresLedger {
    storage: Arc<PgLedger>,
    policy: ServicePolicy,
    served: OnceLock<AuthorityLedger<SharedPg>>,
}

impl PostgresLedger {
    /// The ledger at `url`; nothing is read yet.
    pub fn new(
        url: &str,
        settings: PgSettings,
        protector: Protector,
        policy: ServicePolicy,
        handle: Handle,
    ) -> Result<Self> {
        let storage = Arc::new(PgLedger::new(url, settings, protector, handle)?);
        Ok(PostgresLedger { storage, policy, served: OnceLock::new() })
    }

    /// The storage.
    pub fn storage(&self) -> &PgLedger {
        &self.storage
    }

    /// Migrates, opens the keys and starts serving; returns the migrations applied. Blocks:
    /// call it off the runtime.
    pub fn open_now(&self) -> Result<Vec<i32>> {
        if self.served.get().is_some() {
            return Ok(Vec::new());
        }
        let applied = self.storage.prepare()?;
        let authority = Authority::new(SharedPg(Arc::clone(&self.storage)), self.policy.clone())?;
        self.storage.block_on(self.storage.record_public_keys(&authority.public_keys()))??;
        let _ = self.served.set(AuthorityLedger::new(authority));
        Ok(applied)
    }

    /// Retries [`PostgresLedger::open_now`] every second on `handle` until it succeeds.
    pub fn open_in_background(self: &Arc<Self>, handle: &Handle) {
        let this = Arc::clone(self);
        handle.spawn(async move {
            loop {
                let attempt = Arc::clone(&this);
                match tokio::task::spawn_blocking(move || attempt.open_now()).await {
                    Ok(Ok(applied)) => {
                        tracing::info!(?applied, "the ledger database is open: ready");
                        return;
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "the ledger database cannot be opened yet; retrying"),
                    Err(e) => tracing::error!(error = %e, "the ledger's start-up task failed; retrying"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// The served logic, once open.
    pub fn served(&self) -> Result<&AuthorityLedger<SharedPg>> {
        self.served.get().ok_or_else(|| unavailable("the ledger database is not reachable yet: not ready"))
    }
}

fn failed<'a, T: Send + 'a, E: From<Error> + Send + 'a>(e: Error) -> BoxFuture<'a, std::result::Result<T, E>> {
    Box::pin(async move { Err(e.into()) })
}

impl ServedLedger for PostgresLedger {
    fn keys(&self) -> Vec<PublishedKey> {
        self.served().map(|l| l.keys()).unwrap_or_default()
    }

    fn ready(&self) -> BoxFuture<'_, Result<()>> {
        match self.served() {
            Ok(l) => l.ready(),
            Err(e) => failed(e),
        }
    }

    fn register_device<'a>(
        &'a self,
        account: &'a Account,
        registration: DeviceRegistration,
    ) -> BoxFuture<'a, Result<()>> {
        match self.served() {
            Ok(l) => l.register_device(account, registration),
            Err(e) => failed(e),
        }
    }

    fn quota<'a>(
        &'a self,
        account: &'a Account,
        request: RestoreRequest,
        key_ids: KeyIdReceiver,
    ) -> BoxFuture<'a, Result<Quota>> {
        match self.served() {
            Ok(l) => l.quota(account, request, key_ids),
            Err(e) => failed(e),
        }
    }

    fn authorize<'a>(
        &'a self,
        account: &'a Account,
        request: RestoreRequest,
        key_ids: KeyIdReceiver,
    ) -> BoxFuture<'a, std::result::Result<RestoreGrant, ServiceError>> {
        match self.served() {
            Ok(l) => l.authorize(account, request, key_ids),
            Err(e) => failed(e),
        }
    }

    fn confirm<'a>(&'a self, account: &'a Account, request_id: RequestId) -> BoxFuture<'a, Result<Settlement>> {
        match self.served() {
            Ok(l) => l.confirm(account, request_id),
            Err(e) => failed(e),
        }
    }

    fn release<'a>(&'a self, account: &'a Account, request_id: RequestId) -> BoxFuture<'a, Result<Settlement>> {
        match self.served() {
            Ok(l) => l.release(account, request_id),
            Err(e) => failed(e),
        }
    }

    fn audit<'a>(&'a self, account: &'a Account) -> BoxFuture<'a, Result<LedgerAudit>> {
        match self.served() {
            Ok(l) => l.audit(account),
            Err(e) => failed(e),
        }
    }
}
