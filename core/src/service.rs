//! The License Management Service: it authorizes restores, enforces the restore quota and
//! hands the archive's data key to the restoring device.
//!
//! [`LicenseService`] is the interface; [`EmbeddedService`] is the in-process default whose
//! ledger lives in its own SQLite file, so everything runs on one machine with no setup.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, OptionalExtension, params};

use crate::archive::{self, ARCHIVE_KEY_INFO, GRANT_INFO};
use crate::clock::now_secs;
use crate::crypto::{self, KeyPair, PUBLIC_KEY_LEN, WrappedKey};
use crate::error::{Error, ErrorCode, Result};
use crate::file_kind::{self, FileKind};
use crate::key_id::KeyId;
use crate::protector::{ProtectedFile, Protector};

/// The classic policy: a license may live on at most four distinct devices.
pub const DEFAULT_MAX_DEVICES: u32 = 4;
/// The page a refusal points to by default.
pub const DEFAULT_REFUSAL_URL: &str = "https://licenses.example.com/restore-limit";

/// What a restoring device sends the service.
#[derive(Clone, Debug)]
pub struct RestoreRequest {
    /// The archive header's authenticated prefix (see `docs/archive-format.md`).
    pub header: Vec<u8>,
    /// The archive's data key, wrapped to the service.
    pub wrapped_key: WrappedKey,
    /// The restoring device's ID.
    pub device_id: [u8; 16],
    /// The restoring device's public key; the grant is wrapped to it.
    pub device_public_key: [u8; PUBLIC_KEY_LEN],
    /// How many licenses the archive holds: the length of the key-ID stream that comes with
    /// the request.
    pub licenses: u64,
}

/// The key IDs of an archive, streamed to the service in archive order (read from the archive
/// as the service consumes them, so memory stays flat however many licenses there are). An
/// item is an error when the archive cannot be read; the service then fails with it.
pub type KeyIdStream<'a> = dyn Iterator<Item = Result<KeyId>> + 'a;

/// The service's permission to restore: the data key, wrapped to the restoring device.
#[derive(Clone, Debug)]
pub struct RestoreGrant {
    /// The data key, wrapped with HPKE to the device's public key.
    pub wrapped_key: WrappedKey,
}

/// Why the service refused a restore, and where the user can learn more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The stable code (`RESTORE_LIMIT_EXCEEDED`, ...).
    pub code: ErrorCode,
    /// A human-readable reason.
    pub message: String,
    /// A page the application can show.
    pub url: String,
}

/// How a service call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceError {
    /// The service answered with a refusal (reported with a `Refused` event).
    Refused(Refusal),
    /// The call failed (unreachable service, wrong key, ...).
    Failed(Error),
}

impl From<Error> for ServiceError {
    fn from(e: Error) -> Self {
        ServiceError::Failed(e)
    }
}

/// What the quota allows for restoring an archive onto a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Licenses in the archive.
    pub licenses: u64,
    /// Distinct devices a license may live on.
    pub max_devices: u32,
    /// How many more new devices could still receive every license in the archive (the
    /// minimum over its licenses).
    pub restores_remaining: u32,
    /// This device already counts for every license, so restoring onto it again is free.
    pub device_already_counted: bool,
}

impl Quota {
    /// Whether a restore onto this device would be authorized now.
    pub fn can_restore(&self) -> bool {
        self.device_already_counted || self.restores_remaining > 0
    }
}

/// A License Management Service. Implementations must be thread-safe; the engine calls them
/// from operation worker threads.
pub trait LicenseService: Send + Sync {
    /// The service's public key (X25519, 32 bytes), which backups wrap their data key to.
    fn public_key(&self) -> Result<[u8; PUBLIC_KEY_LEN]>;

    /// Authorizes a restore of the licenses in `key_ids` (all of them, in order, or none):
    /// checks the quota, records the device, and re-wraps the data key. The engine checks that
    /// the stream was read to its end before it uses a grant.
    fn authorize_restore(
        &self,
        request: &RestoreRequest,
        key_ids: &mut KeyIdStream<'_>,
    ) -> Result<RestoreGrant, ServiceError>;

    /// Reports the quota for restoring these licenses (from the archive made on
    /// `origin_device`) onto `device_id`, without changing anything.
    fn quota(&self, origin_device: &[u8; 16], device_id: &[u8; 16], key_ids: &mut KeyIdStream<'_>) -> Result<Quota>;
}

/// Policy of the embedded service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePolicy {
    /// Distinct devices a license may live on (the original plus restores); at least 1.
    pub max_devices: u32,
    /// The URL a refusal points to.
    pub refusal_url: String,
}

impl ServicePolicy {
    /// The default policy with the values given: what every binding's
    /// `EmbeddedService(path, max_devices=None, refusal_url=None)` builds.
    pub fn with_overrides(max_devices: Option<u32>, refusal_url: Option<String>) -> Self {
        let default = ServicePolicy::default();
        ServicePolicy {
            max_devices: max_devices.unwrap_or(default.max_devices),
            refusal_url: refusal_url.unwrap_or(default.refusal_url),
        }
    }
}

impl Default for ServicePolicy {
    fn default() -> Self {
        ServicePolicy { max_devices: DEFAULT_MAX_DEVICES, refusal_url: DEFAULT_REFUSAL_URL.to_string() }
    }
}

/// The ledger layout this library writes (`PRAGMA user_version` of the ledger file). Version 1
/// had one `placements` row per license and device; version 2 keeps one row per license with
/// its devices packed in one value, which halves the rows a restore writes; version 3 keeps the
/// service's seed in the `secret` table (in clear, or wrapped by a protector).
const LEDGER_VERSION: i64 = 3;

/// Rows per multi-row `INSERT` into the ledger.
const LEDGER_ROWS_PER_INSERT: usize = 64;

/// The ledger: the service's key, one row per license with the distinct devices it lives on
/// (16-byte device IDs, sorted, concatenated: at most `max_devices` of them), and an audit row
/// per authorized restore. A networked service keeps the same shape (a `bytea`/array column).
const LEDGER_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS placements (
    key_id  BLOB PRIMARY KEY CHECK (length(key_id) = 16),
    devices BLOB NOT NULL CHECK (length(devices) > 0 AND length(devices) % 16 = 0)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS restores (
    id         INTEGER PRIMARY KEY,
    archive_id BLOB NOT NULL,
    device_id  BLOB NOT NULL,
    licenses   INTEGER NOT NULL,
    at         INTEGER NOT NULL
);
";

/// Moves the seed of a version-2 ledger (`service_key (singleton, seed)`) to the `secret`
/// table, in clear, in the caller's transaction.
fn migrate_v2(tx: &Connection) -> Result<()> {
    tx.execute_batch(crate::secret::SECRET_SCHEMA)?;
    let has_table: bool =
        tx.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'service_key')", [], |r| r.get(0))?;
    if !has_table {
        return Ok(());
    }
    let seed: Option<Vec<u8>> =
        tx.query_row("SELECT seed FROM service_key WHERE singleton = 1", [], |r| r.get(0)).optional()?;
    if let Some(seed) = seed {
        let seed = zeroize::Zeroizing::new(seed);
        let pair = KeyPair::from_seed_slice(&seed)?;
        let file = ProtectedFile { kind: FileKind::Ledger, file_id: crypto::random_array() };
        crate::secret::insert(tx, &file, &pair, &Protector::unprotected())?;
    }
    tx.execute_batch("DROP TABLE service_key;")?;
    Ok(())
}

/// How an embedded service is opened: its policy, and which [`Protector`] holds the service's
/// secret seed (which unwraps every archive's data key). There is no default protector: the
/// choice is named.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// The quota policy.
    pub policy: ServicePolicy,
    /// The protector of the service's seed.
    pub protector: Protector,
}

impl ServiceOptions {
    /// `policy`, the seed in clear in the ledger ([`Protector::unprotected`]).
    pub fn unprotected(policy: ServicePolicy) -> Self {
        ServiceOptions { policy, protector: Protector::unprotected() }
    }

    /// `policy`, the seed wrapped by `protector`.
    pub fn protected(policy: ServicePolicy, protector: Protector) -> Self {
        ServiceOptions { policy, protector }
    }
}

/// Moves a version-1 ledger (`placements (key_id, device_id, first_seen)`, a row per license
/// and device) to version 2, in the caller's transaction.
fn migrate_v1(tx: &Connection) -> Result<()> {
    let v1: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('placements') WHERE name = 'device_id')",
        [],
        |r| r.get(0),
    )?;
    if !v1 {
        return Ok(());
    }
    tx.execute_batch("ALTER TABLE placements RENAME TO placements_v1;")?;
    tx.execute_batch(LEDGER_SCHEMA)?;
    {
        let mut read = tx.prepare("SELECT key_id, device_id FROM placements_v1 ORDER BY key_id, device_id")?;
        let mut write = tx.prepare("INSERT INTO placements (key_id, devices) VALUES (?1, ?2)")?;
        let mut rows = read.query([])?;
        let mut current: Option<(Vec<u8>, Vec<u8>)> = None;
        while let Some(row) = rows.next()? {
            let (kid, dev): (Vec<u8>, Vec<u8>) = (row.get(0)?, row.get(1)?);
            if dev.len() != 16 {
                return Err(Error::new(ErrorCode::Storage, "malformed device ID in the service ledger"));
            }
            match &mut current {
                Some((k, devices)) if *k == kid => devices.extend_from_slice(&dev),
                _ => {
                    if let Some((k, devices)) = current.replace((kid, dev)) {
                        write.execute(params![k, devices])?;
                    }
                }
            }
        }
        if let Some((k, devices)) = current {
            write.execute(params![k, devices])?;
        }
    }
    tx.execute_batch("DROP TABLE placements_v1;")?;
    Ok(())
}

/// The in-process License Management Service. Its key pair and quota ledger live in a SQLite
/// file; several devices (stores) on one machine share it by opening the same file.
pub struct EmbeddedService {
    path: PathBuf,
    conn: Mutex<Connection>,
    keys: KeyPair,
    policy: ServicePolicy,
    online: AtomicBool,
}

impl Drop for EmbeddedService {
    fn drop(&mut self) {
        if let Ok(conn) = self.conn.lock() {
            crate::sqlite::truncate_wal(&conn);
        }
    }
}

impl std::fmt::Debug for EmbeddedService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedService")
            .field("path", &self.path)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl EmbeddedService {
    /// Opens (or creates, with a fresh key pair) the service ledger at `path`, with the default
    /// policy, unprotected ([`ServiceOptions::unprotected`]: the service's seed in clear in the
    /// ledger).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, ServiceOptions::unprotected(ServicePolicy::default()))
    }

    /// Opens the ledger at `path` with a policy, unprotected.
    pub fn open_with_policy(path: impl AsRef<Path>, policy: ServicePolicy) -> Result<Self> {
        Self::open_with(path, ServiceOptions::unprotected(policy))
    }

    /// Opens the ledger at `path` with `options`. With a protector, a new ledger keeps its seed
    /// only wrapped by it and an unprotected ledger is protected in place (one transaction); a
    /// protected ledger opened without its protector fails with `PROTECTOR_REQUIRED`, with one
    /// that cannot unwrap it with `PROTECTOR_MISMATCH` or `PROTECTOR_FAILED`, changing nothing.
    pub fn open_with(path: impl AsRef<Path>, options: ServiceOptions) -> Result<Self> {
        crate::interface::check_path("path", path.as_ref())?;
        let ServiceOptions { policy, protector } = options;
        if policy.max_devices == 0 {
            return Err(Error::invalid("max_devices must be at least 1"));
        }
        crate::interface::TEXT.check_text("refusal_url", &policy.refusal_url)?;
        let path = path.as_ref().to_path_buf();
        file_kind::check(&path, FileKind::Ledger)?;
        let mut conn = crate::sqlite::open_connection(&path)?;
        conn.pragma_update(None, "cache_size", -crate::sqlite::STREAMING_CACHE_KIB)?;
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
        if version < 2 {
            migrate_v1(&tx)?;
        }
        if version < 3 {
            migrate_v2(&tx)?;
        }
        tx.execute_batch(LEDGER_SCHEMA)?;
        tx.execute_batch(crate::secret::SECRET_SCHEMA)?;
        FileKind::Ledger.mark(&tx)?;
        tx.pragma_update(None, "user_version", LEDGER_VERSION)?;
        let (keys, _) = crate::secret::open_or_create(&tx, FileKind::Ledger, &protector, KeyPair::generate)?;
        tx.commit()?;
        // Into the main file now, so the kind is in its header for every later open.
        file_kind::checkpoint(&conn);
        Ok(EmbeddedService { path, conn: Mutex::new(conn), keys, policy, online: AtomicBool::new(true) })
    }

    /// Takes the service offline (or back online): while offline every call that needs the
    /// service fails with `SERVICE_UNAVAILABLE`, as a networked service does when it cannot be
    /// reached. Lets an application (and its tests) show what an outage looks like.
    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Release);
    }

    fn check_online(&self) -> Result<()> {
        if self.online.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Error::new(ErrorCode::ServiceUnavailable, "the License Management Service is offline"))
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &ServicePolicy {
        &self.policy
    }

    /// The path of the ledger file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Recovers an archive's data key (the service holds the private key it is wrapped to).
    /// For audit and recovery tools; restores go through [`LicenseService::authorize_restore`].
    pub fn unwrap_data_key(&self, header: &archive::ArchiveHeader) -> Result<zeroize::Zeroizing<[u8; 32]>> {
        let auth = archive::parse_authenticated_header(&header.authenticated)?;
        self.unwrap(&auth, &header.authenticated, &header.wrapped_key)
    }

    fn unwrap(
        &self,
        auth: &archive::AuthenticatedHeader,
        aad: &[u8],
        wrapped: &WrappedKey,
    ) -> Result<zeroize::Zeroizing<[u8; 32]>> {
        if auth.service_key_fingerprint != self.keys.id() {
            return Err(Error::new(ErrorCode::WrongKey, "the archive was made for another License Management Service"));
        }
        let key = self
            .keys
            .unwrap(wrapped, ARCHIVE_KEY_INFO, aad)
            .map_err(|_| Error::corrupt("the archive's wrapped key does not open: the header was altered"))?;
        let key: [u8; 32] =
            key.as_slice().try_into().map_err(|_| Error::corrupt("the archive's data key has the wrong length"))?;
        Ok(zeroize::Zeroizing::new(key))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| Error::internal("service ledger lock poisoned"))
    }
}

/// The devices a license lives on, as the ledger holds them: sorted 16-byte IDs.
struct Devices<'a>(&'a [u8]);

impl Devices<'_> {
    fn contains(&self, device: &[u8; 16]) -> bool {
        self.0.chunks_exact(16).any(|d| d == device)
    }

    /// How many distinct devices hold the license, and whether `device_id` is one of them; the
    /// origin device counts even before the ledger has seen it.
    fn placement(&self, origin: &[u8; 16], device_id: &[u8; 16]) -> (u32, bool) {
        let mut count = (self.0.len() / 16) as u32;
        let mut has_device = self.contains(device_id);
        if !self.contains(origin) {
            count += 1;
            has_device |= origin == device_id;
        }
        (count, has_device)
    }

    /// These devices with `add` added (kept sorted, no duplicates).
    fn with(&self, add: &[&[u8; 16]]) -> Vec<u8> {
        let mut all: Vec<[u8; 16]> =
            self.0.chunks_exact(16).map(|d| d.try_into().expect("16 bytes")).chain(add.iter().map(|d| **d)).collect();
        all.sort_unstable();
        all.dedup();
        all.concat()
    }
}

/// What the ledger says of one license in a restore from `origin` onto `device`.
enum Check {
    /// The device may receive it; `Some(devices)` is the new row to write (`None`: no change).
    Allowed(Option<Vec<u8>>),
    /// It already lives on the maximum number of devices.
    OverQuota,
}

impl EmbeddedService {
    /// Checks one license against the ledger row `row` (absent: not seen yet).
    fn check(&self, row: Option<&[u8]>, origin: &[u8; 16], device: &[u8; 16]) -> Check {
        let devices = Devices(row.unwrap_or(&[]));
        let (count, has_device) = devices.placement(origin, device);
        if !has_device && count >= self.policy.max_devices {
            return Check::OverQuota;
        }
        let missing: Vec<&[u8; 16]> = [origin, device].into_iter().filter(|d| !devices.contains(d)).collect();
        Check::Allowed((!missing.is_empty()).then(|| devices.with(&missing)))
    }
}

impl LicenseService for EmbeddedService {
    fn public_key(&self) -> Result<[u8; PUBLIC_KEY_LEN]> {
        Ok(self.keys.public_bytes())
    }

    fn authorize_restore(
        &self,
        request: &RestoreRequest,
        key_ids: &mut KeyIdStream<'_>,
    ) -> Result<RestoreGrant, ServiceError> {
        self.check_online()?;
        let auth = archive::parse_authenticated_header(&request.header)?;
        let data_key = self.unwrap(&auth, &request.header, &request.wrapped_key)?;
        if crypto::fingerprint(&request.device_public_key) != request.device_id {
            return Err(Error::invalid("the device ID does not match the device public key").into());
        }
        let (origin, device) = (&auth.origin_device, &request.device_id);
        // Whether a license the ledger has never seen may go to this device: it then lives on
        // the origin and this device (one device when they are the same).
        let fresh_allowed = origin == device || self.policy.max_devices >= 2;
        let fresh_row = Devices(&[]).with(&[origin, device]);
        let mut conn = self.lock()?;
        // One pass, check and record together; a refusal rolls the whole transaction back.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(Error::from)?;
        let (mut over, mut licenses) = (0u64, 0u64);
        {
            let insert_sql = |rows| {
                format!(
                    "INSERT INTO placements (key_id, devices) VALUES {} ON CONFLICT DO NOTHING",
                    crate::sqlite::values_placeholders(2, rows)
                )
            };
            let mut insert_many = tx.prepare(&insert_sql(LEDGER_ROWS_PER_INSERT)).map_err(Error::from)?;
            let mut insert_new = tx.prepare(&insert_sql(1)).map_err(Error::from)?;
            let mut select = tx.prepare("SELECT devices FROM placements WHERE key_id = ?1").map_err(Error::from)?;
            let mut update = tx.prepare("UPDATE placements SET devices = ?2 WHERE key_id = ?1").map_err(Error::from)?;
            // One license: a fresh row when the ledger has not seen it, else the quota check.
            let mut one = |kid: &KeyId, over: &mut u64| -> Result<()> {
                let kid = kid.as_bytes().as_slice();
                if fresh_allowed && *over == 0 && insert_new.execute(params![kid, fresh_row])? == 1 {
                    return Ok(());
                }
                let row: Option<Vec<u8>> = select.query_row([kid], |r| r.get(0)).optional()?;
                match self.check(row.as_deref(), origin, device) {
                    Check::OverQuota => *over += 1,
                    Check::Allowed(Some(devices)) if *over == 0 => {
                        if row.is_some() {
                            update.execute(params![kid, devices])?;
                        } else {
                            insert_new.execute(params![kid, devices])?;
                        }
                    }
                    Check::Allowed(_) => {}
                }
                Ok(())
            };
            let mut chunk: Vec<KeyId> = Vec::with_capacity(LEDGER_ROWS_PER_INSERT);
            let mut key_ids = key_ids.peekable();
            while key_ids.peek().is_some() {
                chunk.clear();
                for kid in key_ids.by_ref().take(LEDGER_ROWS_PER_INSERT) {
                    chunk.push(kid?);
                }
                licenses += chunk.len() as u64;
                // The common case, licenses the ledger has not seen: one statement for many.
                if fresh_allowed && over == 0 && chunk.len() == LEDGER_ROWS_PER_INSERT {
                    let inserted = {
                        for (i, kid) in chunk.iter().enumerate() {
                            insert_many
                                .raw_bind_parameter(1 + 2 * i, kid.as_bytes().as_slice())
                                .map_err(Error::from)?;
                            insert_many.raw_bind_parameter(2 + 2 * i, fresh_row.as_slice()).map_err(Error::from)?;
                        }
                        insert_many.raw_execute().map_err(Error::from)?
                    };
                    if inserted == chunk.len() {
                        continue;
                    }
                    // Some were known: check each (the fresh rows just written check out as is).
                }
                for kid in &chunk {
                    one(kid, &mut over)?;
                }
            }
        }
        if over > 0 {
            drop(tx);
            return Err(ServiceError::Refused(Refusal {
                code: ErrorCode::RestoreLimitExceeded,
                message: format!(
                    "{over} of {licenses} licenses already live on the maximum of {} devices",
                    self.policy.max_devices
                ),
                url: self.policy.refusal_url.clone(),
            }));
        }
        let now = now_secs();
        tx.execute(
            "INSERT INTO restores (archive_id, device_id, licenses, at) VALUES (?1, ?2, ?3, ?4)",
            params![auth.archive_id.as_slice(), device.as_slice(), licenses as i64, now],
        )
        .map_err(Error::from)?;
        tx.commit().map_err(Error::from)?;
        let aad = grant_aad(&auth.archive_id, device);
        let wrapped_key = crypto::wrap_to(&request.device_public_key, data_key.as_slice(), GRANT_INFO, &aad)?;
        Ok(RestoreGrant { wrapped_key })
    }

    fn quota(&self, origin_device: &[u8; 16], device_id: &[u8; 16], key_ids: &mut KeyIdStream<'_>) -> Result<Quota> {
        self.check_online()?;
        let conn = self.lock()?;
        // One read transaction: every license is checked against the same ledger.
        let tx = conn.unchecked_transaction()?;
        let mut select = tx.prepare_cached("SELECT devices FROM placements WHERE key_id = ?1")?;
        let mut remaining = self.policy.max_devices;
        let (mut counted, mut licenses) = (true, 0u64);
        for kid in key_ids {
            let kid = kid?;
            licenses += 1;
            let row: Option<Vec<u8>> = select.query_row([kid.as_bytes().as_slice()], |r| r.get(0)).optional()?;
            let (count, has_device) = Devices(row.as_deref().unwrap_or(&[])).placement(origin_device, device_id);
            remaining = remaining.min(self.policy.max_devices.saturating_sub(count));
            counted &= has_device;
        }
        Ok(Quota {
            licenses,
            max_devices: self.policy.max_devices,
            restores_remaining: remaining,
            device_already_counted: counted && licenses > 0,
        })
    }
}

/// The associated data of a restore grant: the archive ID and the device ID.
pub(crate) fn grant_aad(archive_id: &[u8; 16], device_id: &[u8; 16]) -> [u8; 32] {
    let mut aad = [0u8; 32];
    aad[..16].copy_from_slice(archive_id);
    aad[16..].copy_from_slice(device_id);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kid(n: u8) -> KeyId {
        KeyId::from_bytes([n; 16])
    }

    fn stream(keys: &[KeyId]) -> impl Iterator<Item = Result<KeyId>> + '_ {
        keys.iter().copied().map(Ok)
    }

    fn devices(conn: &Connection, key: &KeyId) -> Vec<[u8; 16]> {
        let row: Vec<u8> = conn
            .query_row("SELECT devices FROM placements WHERE key_id = ?1", [key.as_bytes().as_slice()], |r| r.get(0))
            .unwrap();
        row.chunks_exact(16).map(|d| d.try_into().unwrap()).collect()
    }

    #[test]
    fn a_version_1_ledger_is_migrated_and_keeps_its_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let origin = [1u8; 16];
        {
            // The layout the previous release wrote: a row per license and device.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE placements (key_id BLOB NOT NULL, device_id BLOB NOT NULL, first_seen INTEGER NOT NULL,
                     PRIMARY KEY (key_id, device_id)) WITHOUT ROWID;",
            )
            .unwrap();
            for (k, dev) in [(1u8, 1u8), (1, 2), (1, 3), (1, 4), (2, 1), (2, 5)] {
                conn.execute(
                    "INSERT INTO placements VALUES (?1, ?2, 0)",
                    params![kid(k).as_bytes().as_slice(), [dev; 16].as_slice()],
                )
                .unwrap();
            }
        }
        let service = EmbeddedService::open(&path).unwrap();
        {
            let conn = service.lock().unwrap();
            let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
            assert_eq!(version, LEDGER_VERSION);
            assert_eq!(devices(&conn, &kid(1)), [[1; 16], [2; 16], [3; 16], [4; 16]]);
            assert_eq!(devices(&conn, &kid(2)), [[1; 16], [5; 16]]);
            let old: bool = conn
                .query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'placements_v1')", [], |r| r.get(0))
                .unwrap();
            assert!(!old, "the old table is dropped");
        }
        // License 1 is on four devices: a fifth is refused, one of the four is free.
        let q = service.quota(&origin, &[9; 16], &mut stream(&[kid(1), kid(2)])).unwrap();
        assert_eq!((q.licenses, q.restores_remaining, q.device_already_counted), (2, 0, false));
        let q = service.quota(&origin, &[3; 16], &mut stream(&[kid(1)])).unwrap();
        assert!(q.device_already_counted && q.can_restore());
        let q = service.quota(&origin, &[9; 16], &mut stream(&[kid(2)])).unwrap();
        assert_eq!(q.restores_remaining, 2);
        drop(service);
        // Opening again finds version 2 and changes nothing.
        let service = EmbeddedService::open(&path).unwrap();
        assert_eq!(devices(&service.lock().unwrap(), &kid(1)).len(), 4);
    }

    #[test]
    fn a_newer_ledger_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", LEDGER_VERSION + 1).unwrap();
        assert_eq!(EmbeddedService::open(&path).unwrap_err().code(), ErrorCode::Storage);
    }

    #[test]
    fn device_sets_stay_sorted_and_distinct() {
        let row = Devices(&[]).with(&[&[5; 16], &[2; 16], &[5; 16]]);
        assert_eq!(row, [[2u8; 16], [5; 16]].concat());
        let d = Devices(&row);
        assert_eq!(d.placement(&[2; 16], &[7; 16]), (2, false));
        assert_eq!(d.placement(&[9; 16], &[5; 16]), (3, true), "the origin counts before the ledger saw it");
        assert_eq!(d.placement(&[9; 16], &[9; 16]), (3, true));
        assert_eq!(Devices(&row).with(&[&[3; 16]]), [[2u8; 16], [3; 16], [5; 16]].concat());
    }
}
