//! The embedded License Management Service: the service's logic in process, for one account,
//! its ledger in a SQLite file on the device.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{
    Authority, DeviceRegistration, KeyIdStream, LedgerAudit, LicenseService, Quota, RequestId, RestoreGrant,
    RestoreRequest, ServiceError, ServiceOptions, ServicePolicy, Settlement, SqliteLedger,
};
use crate::archive;
use crate::crypto::PUBLIC_KEY_LEN;
use crate::error::{Error, ErrorCode, Result};
use crate::key_id::KeyId;

/// The account an embedded service serves: its ledger is on the user's own device, so there
/// is one user and one account (see `docs/security.md`).
pub const EMBEDDED_ACCOUNT: &str = "local";

/// The in-process License Management Service. Its key pair and quota ledger live in a SQLite
/// file; several devices (stores) on one machine share it by opening the same file, all in one
/// account.
pub struct EmbeddedService {
    authority: Authority<SqliteLedger>,
    online: AtomicBool,
}

impl std::fmt::Debug for EmbeddedService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedService")
            .field("path", &self.path())
            .field("policy", self.policy())
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
        let authority = Authority::new(SqliteLedger::open_with(path, &protector)?, policy)?;
        Ok(EmbeddedService { authority, online: AtomicBool::new(true) })
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
        self.authority.policy()
    }

    /// The path of the ledger file.
    pub fn path(&self) -> &Path {
        self.authority.ledger().path()
    }

    /// The service's logic and ledger.
    pub fn authority(&self) -> &Authority<SqliteLedger> {
        &self.authority
    }

    /// Recovers an archive's data key (the service holds the private key it is wrapped to).
    /// For audit and recovery tools; restores go through [`LicenseService::authorize_restore`].
    pub fn unwrap_data_key(&self, header: &archive::ArchiveHeader) -> Result<zeroize::Zeroizing<[u8; 32]>> {
        self.authority.unwrap_data_key(header)
    }

    /// What the ledger holds: reservations by state, licenses and devices counted.
    pub fn audit(&self) -> Result<LedgerAudit> {
        self.authority.audit(EMBEDDED_ACCOUNT)
    }

    /// The devices a license counts on (16-byte IDs, sorted; a device's new identities count as
    /// the identity they replaced).
    pub fn devices_of(&self, key_id: &KeyId) -> Result<Vec<[u8; 16]>> {
        self.authority.devices_of(EMBEDDED_ACCOUNT, key_id)
    }
}

impl LicenseService for EmbeddedService {
    fn public_key(&self) -> Result<[u8; PUBLIC_KEY_LEN]> {
        Ok(self.authority.public_key())
    }

    fn register_device(&self, registration: &DeviceRegistration) -> Result<()> {
        self.check_online()?;
        self.authority.register_device(EMBEDDED_ACCOUNT, registration)
    }

    fn authorize_restore(
        &self,
        request: &RestoreRequest,
        key_ids: &mut KeyIdStream<'_>,
    ) -> Result<RestoreGrant, ServiceError> {
        self.check_online()?;
        self.authority.authorize_restore(EMBEDDED_ACCOUNT, request, key_ids)
    }

    fn confirm_restore(&self, request_id: &RequestId) -> Result<Settlement> {
        self.check_online()?;
        self.authority.confirm_restore(EMBEDDED_ACCOUNT, request_id)
    }

    fn release_restore(&self, request_id: &RequestId) -> Result<Settlement> {
        self.check_online()?;
        self.authority.release_restore(EMBEDDED_ACCOUNT, request_id)
    }

    fn quota(&self, request: &RestoreRequest, key_ids: &mut KeyIdStream<'_>) -> Result<Quota> {
        self.check_online()?;
        self.authority.quota(EMBEDDED_ACCOUNT, request, key_ids)
    }
}
