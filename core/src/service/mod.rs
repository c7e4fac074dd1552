//! The License Management Service: it registers devices, authorizes restores, enforces the
//! restore quota and hands the archive's data key to the restoring device.
//!
//! * [`LicenseService`] is what a device talks to (the engine calls it from its operations);
//!   [`EmbeddedService`] is the in-process default whose ledger lives in a local SQLite file.
//! * [`Authority`] is the service's logic (attribution, commitments, the quota, reservations),
//!   for one account at a time, over a [`Ledger`]: the embedded service runs it for its single
//!   account over [`SqliteLedger`]; a networked service runs the same logic for the account of
//!   each caller.
//!
//! The trust model is in `docs/security.md`.

mod authority;
mod embedded;
pub mod ledger;
mod sqlite_ledger;

pub use authority::Authority;
pub use embedded::{EMBEDDED_ACCOUNT, EmbeddedService};
pub use ledger::{Ledger, LedgerTx};
pub use sqlite_ledger::SqliteLedger;

use crate::crypto::{PUBLIC_KEY_LEN, WrappedKey};
use crate::error::{Error, ErrorCode, Result};
use crate::key_id::KeyId;
use crate::protector::Protector;

/// The classic policy: a license may live on at most four distinct devices.
pub const DEFAULT_MAX_DEVICES: u32 = 4;
/// The page a refusal points to by default.
pub const DEFAULT_REFUSAL_URL: &str = "https://licenses.example.com/restore-limit";
/// How long a reservation may stay pending before it counts as confirmed for good (30 days).
pub const DEFAULT_RESERVATION_TTL_SECS: u64 = 30 * 24 * 3600;

/// The ID a device gives a restore request: 16 random bytes. A retried request (same ID, same
/// request) is answered from the ledger with the same reservation; the device confirms or
/// releases the reservation by this ID.
pub type RequestId = [u8; 16];

/// HPKE `info` of a device registration proof.
pub(crate) const REGISTRATION_INFO: &[u8] = b"license-backup/v2/register-device";
/// HPKE `info` of the proof that a restoring device holds the identity it replaces.
pub(crate) const SUCCESSION_INFO: &[u8] = b"license-backup/v2/replace-identity";

/// What a device proves to register with a service: that it holds the private key of
/// `public_key` (an HPKE auth-mode seal to the service, see `docs/security.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRegistration {
    /// The device ID: the fingerprint of `public_key`.
    pub device_id: [u8; 16],
    /// The device's X25519 public key.
    pub public_key: [u8; PUBLIC_KEY_LEN],
    /// The proof of possession, bound to the service and to this key.
    pub proof: WrappedKey,
}

/// The associated data of a registration proof: the service key's fingerprint, the device ID
/// and its public key.
pub(crate) fn registration_aad(
    service_fingerprint: &[u8; 16],
    device_id: &[u8; 16],
    public_key: &[u8; 32],
) -> [u8; 64] {
    let mut aad = [0u8; 64];
    aad[..16].copy_from_slice(service_fingerprint);
    aad[16..32].copy_from_slice(device_id);
    aad[32..].copy_from_slice(public_key);
    aad
}

/// What an individualizing restore sends about the identity it replaces: the old identity and
/// a proof that the restoring device holds its private key, bound to this request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityProof {
    /// The identity being replaced (the device's current ID).
    pub device_id: [u8; 16],
    /// Its public key.
    pub public_key: [u8; PUBLIC_KEY_LEN],
    /// The proof of possession (HPKE auth mode, as the old identity, to the service).
    pub proof: WrappedKey,
}

/// The associated data of a succession proof: the request, the archive, the new identity and
/// the old one.
pub(crate) fn succession_aad(
    request_id: &RequestId,
    archive_id: &[u8; 16],
    new_device: &[u8; 16],
    old_device: &[u8; 16],
) -> [u8; 64] {
    let mut aad = [0u8; 64];
    aad[..16].copy_from_slice(request_id);
    aad[16..32].copy_from_slice(archive_id);
    aad[32..48].copy_from_slice(new_device);
    aad[48..].copy_from_slice(old_device);
    aad
}

/// What a restoring device sends the service, for a restore and (the same request) for a quota
/// query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreRequest {
    /// Chosen by the device, fresh for each restore; see [`RequestId`].
    pub request_id: RequestId,
    /// The archive header's authenticated prefix (see `docs/archive-format.md`).
    pub header: Vec<u8>,
    /// The archive's data key, wrapped to the service.
    pub wrapped_key: WrappedKey,
    /// The restoring device's ID (its new identity when individualizing).
    pub device_id: [u8; 16],
    /// The restoring device's public key; the grant is wrapped to it.
    pub device_public_key: [u8; PUBLIC_KEY_LEN],
    /// How many licenses the archive holds: the length of the key-ID stream that comes with
    /// the request (checked against the stream and, in a version-2 archive, the header).
    pub licenses: u64,
    /// When individualizing: the identity the restore replaces, with its proof.
    pub replaces: Option<IdentityProof>,
}

/// The key IDs of an archive, streamed to the service in archive order (read from the archive
/// as the service consumes them, so memory stays flat however many licenses there are). An
/// item is an error when the archive cannot be read; the service then fails with it.
pub type KeyIdStream<'a> = dyn Iterator<Item = Result<KeyId>> + 'a;

/// The service's permission to restore: the data key, wrapped to the restoring device. It is a
/// reservation: it counts against the quota until the device confirms it (the restore landed)
/// or releases it (nothing was applied).
#[derive(Clone, Debug)]
pub struct RestoreGrant {
    /// The data key, wrapped with HPKE to the device's public key, bound to the archive, the
    /// device and the request (see [`grant_aad`]).
    pub wrapped_key: WrappedKey,
}

/// The associated data of a restore grant: the archive ID, the device ID and the request ID.
pub(crate) fn grant_aad(archive_id: &[u8; 16], device_id: &[u8; 16], request_id: &RequestId) -> [u8; 48] {
    let mut aad = [0u8; 48];
    aad[..16].copy_from_slice(archive_id);
    aad[16..32].copy_from_slice(device_id);
    aad[32..].copy_from_slice(request_id);
    aad
}

/// How a reservation ended, as the service's ledger has it after a confirm or a release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// The restore counts (confirmed, or pending for longer than the service keeps
    /// reservations open).
    Confirmed,
    /// The restore does not count.
    Released,
    /// The service has no reservation with this ID (it was never made, or belongs to another
    /// account): nothing counts.
    Unknown,
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

impl ServiceError {
    /// The error a caller reports: the refusal's code and message, or the failure.
    pub fn into_error(self) -> Error {
        match self {
            ServiceError::Refused(r) => Error::new(r.code, r.message),
            ServiceError::Failed(e) => e,
        }
    }
}

/// What the quota allows for restoring an archive onto a device, as the service would decide
/// it now (pending reservations of other restores count).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Licenses in the archive.
    pub licenses: u64,
    /// Distinct devices a license may live on.
    pub max_devices: u32,
    /// How many more new devices could still receive every license in the archive (the
    /// minimum over its licenses).
    pub restores_remaining: u32,
    /// This device already counts for every license, so restoring onto it again is free. When
    /// individualizing, the new identity counts as the one it replaces.
    pub device_already_counted: bool,
    /// Whether the service would authorize this restore now: every license either already
    /// counts this device or has room for one more.
    pub allowed: bool,
}

impl Quota {
    /// Whether a restore onto this device would be authorized now ([`Quota::allowed`]).
    pub fn can_restore(&self) -> bool {
        self.allowed
    }
}

/// What a ledger holds for one account: reservations by state, live placements, devices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerAudit {
    /// Reservations granted and not yet confirmed or released (they count).
    pub pending: u64,
    /// Reservations confirmed by their device (they count).
    pub confirmed: u64,
    /// Reservations released by their device (they do not count).
    pub released: u64,
    /// Reservations left pending past the service's limit (they count, for good).
    pub expired: u64,
    /// Licenses with at least one device counted.
    pub licenses: u64,
    /// (license, device) pairs that count.
    pub placements: u64,
    /// Devices known to belong to the account (registered, or new identities of them).
    pub devices: u64,
}

/// A License Management Service, as a device sees it. Implementations must be thread-safe; the
/// engine calls them from operation worker threads.
///
/// A restore is: [`LicenseService::authorize_restore`] (a reservation), then exactly one of
/// [`LicenseService::confirm_restore`] (after the store committed) or
/// [`LicenseService::release_restore`] (nothing was applied); the device keeps a journal so that
/// a crash or an unreachable service only delays that call.
pub trait LicenseService: Send + Sync {
    /// The service's public key (X25519, 32 bytes), which backups wrap their data key to.
    fn public_key(&self) -> Result<[u8; PUBLIC_KEY_LEN]>;

    /// Registers a device with the caller's account (idempotent). A device registers at its
    /// first backup for this service; archives it makes can then be restored only in this
    /// account.
    fn register_device(&self, registration: &DeviceRegistration) -> Result<()>;

    /// Authorizes a restore of the licenses in `key_ids` (all of them, in order, or none):
    /// checks who made the archive, that `key_ids` is what it commits to, and the quota; then
    /// reserves the placements and re-wraps the data key. The engine checks that the stream
    /// was read to its end before it uses a grant.
    fn authorize_restore(
        &self,
        request: &RestoreRequest,
        key_ids: &mut KeyIdStream<'_>,
    ) -> Result<RestoreGrant, ServiceError>;

    /// Confirms the reservation of a restore that landed (idempotent).
    fn confirm_restore(&self, request_id: &RequestId) -> Result<Settlement>;

    /// Releases the reservation of a restore that applied nothing (idempotent).
    fn release_restore(&self, request_id: &RequestId) -> Result<Settlement>;

    /// Whether this restore would be authorized now, and the quota behind the answer: the same
    /// request and key IDs as [`LicenseService::authorize_restore`], the same checks, nothing
    /// changed.
    fn quota(&self, request: &RestoreRequest, key_ids: &mut KeyIdStream<'_>) -> Result<Quota>;
}

/// Policy of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePolicy {
    /// Distinct devices a license may live on (the original plus restores); at least 1.
    pub max_devices: u32,
    /// The URL a refusal points to.
    pub refusal_url: String,
    /// How long a reservation may stay pending; after that it counts as confirmed for good and
    /// a release no longer undoes it.
    pub reservation_ttl_secs: u64,
    /// Whether version-1 archives (not attributable, not committed to their licenses) may be
    /// restored; see `docs/security.md`.
    pub accept_v1_archives: bool,
}

impl ServicePolicy {
    /// The default policy with the values given: what every binding's
    /// `EmbeddedService(path, max_devices=None, refusal_url=None)` builds.
    pub fn with_overrides(max_devices: Option<u32>, refusal_url: Option<String>) -> Self {
        let default = ServicePolicy::default();
        ServicePolicy {
            max_devices: max_devices.unwrap_or(default.max_devices),
            refusal_url: refusal_url.unwrap_or(default.refusal_url),
            ..default
        }
    }
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

impl Default for ServicePolicy {
    fn default() -> Self {
        ServicePolicy {
            max_devices: DEFAULT_MAX_DEVICES,
            refusal_url: DEFAULT_REFUSAL_URL.to_string(),
            reservation_ttl_secs: DEFAULT_RESERVATION_TTL_SECS,
            accept_v1_archives: true,
        }
    }
}
