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
use crate::crypto::{self, KeyPair, PUBLIC_KEY_LEN, WrappedKey};
use crate::error::{Error, ErrorCode, Result};
use crate::key_id::KeyId;
use crate::store::now_secs;

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
    /// The key IDs in the archive.
    pub key_ids: Vec<KeyId>,
}

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
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
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

    /// Authorizes a restore: checks the quota, records the device, and re-wraps the data key.
    fn authorize_restore(&self, request: &RestoreRequest) -> Result<RestoreGrant, ServiceError>;

    /// Reports the quota for restoring these licenses (from the archive made on
    /// `origin_device`) onto `device_id`, without changing anything.
    fn quota(&self, origin_device: &[u8; 16], device_id: &[u8; 16], key_ids: &[KeyId]) -> Result<Quota>;
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

const LEDGER_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS service_key (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    seed      BLOB NOT NULL CHECK (length(seed) = 32)
);
CREATE TABLE IF NOT EXISTS placements (
    key_id     BLOB NOT NULL,
    device_id  BLOB NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (key_id, device_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS restores (
    id         INTEGER PRIMARY KEY,
    archive_id BLOB NOT NULL,
    device_id  BLOB NOT NULL,
    licenses   INTEGER NOT NULL,
    at         INTEGER NOT NULL
);
";

/// The in-process License Management Service. Its key pair and quota ledger live in a SQLite
/// file; several devices (stores) on one machine share it by opening the same file.
pub struct EmbeddedService {
    path: PathBuf,
    conn: Mutex<Connection>,
    keys: KeyPair,
    policy: ServicePolicy,
    online: AtomicBool,
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
    /// policy.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with_policy(path, ServicePolicy::default())
    }

    /// Opens the ledger at `path` with a policy.
    pub fn open_with_policy(path: impl AsRef<Path>, policy: ServicePolicy) -> Result<Self> {
        if policy.max_devices == 0 {
            return Err(Error::invalid("max_devices must be at least 1"));
        }
        let path = path.as_ref().to_path_buf();
        let mut conn = crate::store::open_connection(&path)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(LEDGER_SCHEMA)?;
        let seed: Option<Vec<u8>> =
            tx.query_row("SELECT seed FROM service_key WHERE singleton = 1", [], |r| r.get(0)).optional()?;
        let keys = match seed {
            Some(seed) => KeyPair::from_seed_slice(&seed)?,
            None => {
                let keys = KeyPair::generate();
                tx.execute("INSERT INTO service_key (singleton, seed) VALUES (1, ?1)", [keys.seed().as_slice()])?;
                keys
            }
        };
        tx.commit()?;
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

/// How many distinct devices hold `key_id`, and whether `device_id` is one of them; the origin
/// device counts even before the ledger has seen it.
fn placement(conn: &Connection, key_id: &KeyId, origin: &[u8; 16], device_id: &[u8; 16]) -> Result<(u32, bool)> {
    let mut stmt = conn.prepare_cached("SELECT device_id FROM placements WHERE key_id = ?1")?;
    let mut rows = stmt.query([key_id.as_bytes().as_slice()])?;
    let (mut count, mut has_origin, mut has_device) = (0u32, false, false);
    while let Some(row) = rows.next()? {
        let dev: Vec<u8> = row.get(0)?;
        count += 1;
        has_origin |= dev == origin;
        has_device |= dev == device_id;
    }
    if !has_origin {
        count += 1;
        has_device |= origin == device_id;
    }
    Ok((count, has_device))
}

impl LicenseService for EmbeddedService {
    fn public_key(&self) -> Result<[u8; PUBLIC_KEY_LEN]> {
        Ok(self.keys.public_bytes())
    }

    fn authorize_restore(&self, request: &RestoreRequest) -> Result<RestoreGrant, ServiceError> {
        self.check_online()?;
        let auth = archive::parse_authenticated_header(&request.header)?;
        let data_key = self.unwrap(&auth, &request.header, &request.wrapped_key)?;
        if crypto::fingerprint(&request.device_public_key) != request.device_id {
            return Err(Error::invalid("the device ID does not match the device public key").into());
        }
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(Error::from)?;
        let mut over = 0u64;
        for kid in &request.key_ids {
            let (count, has_device) = placement(&tx, kid, &auth.origin_device, &request.device_id)?;
            if !has_device && count >= self.policy.max_devices {
                over += 1;
            }
        }
        if over > 0 {
            return Err(ServiceError::Refused(Refusal {
                code: ErrorCode::RestoreLimitExceeded,
                message: format!(
                    "{over} of {} licenses already live on the maximum of {} devices",
                    request.key_ids.len(),
                    self.policy.max_devices
                ),
                url: self.policy.refusal_url.clone(),
            }));
        }
        {
            let now = now_secs();
            let mut insert = tx
                .prepare_cached("INSERT OR IGNORE INTO placements (key_id, device_id, first_seen) VALUES (?1, ?2, ?3)")
                .map_err(Error::from)?;
            for kid in &request.key_ids {
                insert
                    .execute(params![kid.as_bytes().as_slice(), auth.origin_device.as_slice(), now])
                    .map_err(Error::from)?;
                insert
                    .execute(params![kid.as_bytes().as_slice(), request.device_id.as_slice(), now])
                    .map_err(Error::from)?;
            }
            tx.execute(
                "INSERT INTO restores (archive_id, device_id, licenses, at) VALUES (?1, ?2, ?3, ?4)",
                params![auth.archive_id.as_slice(), request.device_id.as_slice(), request.key_ids.len() as i64, now],
            )
            .map_err(Error::from)?;
        }
        tx.commit().map_err(Error::from)?;
        let aad = grant_aad(&auth.archive_id, &request.device_id);
        let wrapped_key = crypto::wrap_to(&request.device_public_key, data_key.as_slice(), GRANT_INFO, &aad)?;
        Ok(RestoreGrant { wrapped_key })
    }

    fn quota(&self, origin_device: &[u8; 16], device_id: &[u8; 16], key_ids: &[KeyId]) -> Result<Quota> {
        self.check_online()?;
        let conn = self.lock()?;
        let mut remaining = self.policy.max_devices;
        let mut counted = true;
        for kid in key_ids {
            let (count, has_device) = placement(&conn, kid, origin_device, device_id)?;
            remaining = remaining.min(self.policy.max_devices.saturating_sub(count));
            counted &= has_device;
        }
        Ok(Quota {
            licenses: key_ids.len() as u64,
            max_devices: self.policy.max_devices,
            restores_remaining: remaining,
            device_already_counted: counted && !key_ids.is_empty(),
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
