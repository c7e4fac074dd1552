//! Key protectors: who holds the 32-byte secret seed of a store (the device identity, which
//! seals every content key) or of an embedded service's ledger (which unwraps every archive's
//! data key).
//!
//! Without a protector ([`Protector::unprotected`]) the seed sits in clear in the file, beside
//! what it protects: whoever copies the file has every secret in it. With a protector the file
//! holds the seed only wrapped by it: the platform's keystore ([`KeyringProtector`], with the
//! `keyring` feature), or a function the host application supplies (a [`KeyProtector`]
//! implemented by a binding over a Python object, a JavaScript object, a Swift protocol).

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::error::{Error, ErrorCode, Result};
pub use crate::file_kind::FileKind;

/// The file whose secret a protector wraps or unwraps: its kind and a random 16-byte ID made
/// when the file was created (it moves with the file). A protector that keeps a key per file
/// (the keystore protector) names it after these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtectedFile {
    /// Store or ledger.
    pub kind: FileKind,
    /// The file's random ID.
    pub file_id: [u8; 16],
}

impl ProtectedFile {
    /// `store-<32 hex digits>` or `ledger-<32 hex digits>`.
    pub fn name(&self) -> String {
        let hex: String = self.file_id.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}-{hex}", self.kind.name())
    }
}

/// Wraps and unwraps a file's 32-byte secret seed. Implementations: [`KeyringProtector`] (the
/// platform keystore) and each binding's host protector (an object with `wrap`/`unwrap`).
///
/// `wrap` must return bytes that only `unwrap` of the same protector can turn back into the
/// seed; the store keeps them in place of the seed. Errors: a protector that cannot unwrap
/// what it is given (another key, another keystore) returns `PROTECTOR_MISMATCH`; one that
/// fails otherwise returns `PROTECTOR_FAILED`. Any other code is reported as
/// `PROTECTOR_FAILED`. A call may block (a keystore prompt); the engine holds no lock of its
/// own meanwhile, but may hold the file's write transaction (when a file is created or
/// protected).
pub trait KeyProtector: Send + Sync {
    /// A short description for messages, such as `"keyring (Secret Service)"` or `"host"`.
    fn label(&self) -> String;

    /// Wraps `secret` (32 bytes) for `file`.
    fn wrap(&self, secret: &[u8], file: &ProtectedFile) -> Result<Vec<u8>>;

    /// Unwraps what [`KeyProtector::wrap`] returned for `file`.
    fn unwrap(&self, wrapped: &[u8], file: &ProtectedFile) -> Result<Zeroizing<Vec<u8>>>;
}

/// The protector a store or a ledger is opened with: [`Protector::unprotected`], or a
/// [`KeyProtector`]. There is no default: every opening names its choice.
#[derive(Clone)]
pub struct Protector(Option<Arc<dyn KeyProtector>>);

impl std::fmt::Debug for Protector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

impl Protector {
    /// No protector: the secret seed is kept in clear in the file. Whoever can read the file
    /// (a copy, a backup of the disk) has every content key it seals and can forge its rows.
    pub fn unprotected() -> Self {
        Protector(None)
    }

    /// The secret seed is kept wrapped by `protector`.
    pub fn new(protector: Arc<dyn KeyProtector>) -> Self {
        Protector(Some(protector))
    }

    /// The platform keystore ([`KeyringProtector::new`] with the default service name).
    #[cfg(feature = "keyring")]
    pub fn keyring() -> Self {
        Protector::new(Arc::new(KeyringProtector::new(KeyringProtector::DEFAULT_SERVICE)))
    }

    /// The protector, if any.
    pub fn get(&self) -> Option<&Arc<dyn KeyProtector>> {
        self.0.as_ref()
    }

    /// Whether this is [`Protector::unprotected`].
    pub fn is_unprotected(&self) -> bool {
        self.0.is_none()
    }

    /// `"unprotected"` or the protector's label.
    pub fn label(&self) -> String {
        match &self.0 {
            None => "unprotected".into(),
            Some(p) => p.label(),
        }
    }

    /// Wraps a seed, mapping the protector's errors to the protector codes.
    pub(crate) fn wrap(&self, secret: &[u8; 32], file: &ProtectedFile) -> Result<Option<Vec<u8>>> {
        let Some(p) = &self.0 else { return Ok(None) };
        p.wrap(secret, file).map(Some).map_err(|e| protector_error(&p.label(), "wrap", e))
    }

    /// Unwraps a seed, mapping the protector's errors to the protector codes; a result that is
    /// not 32 bytes is `PROTECTOR_MISMATCH`.
    pub(crate) fn unwrap(&self, wrapped: &[u8], file: &ProtectedFile) -> Result<Zeroizing<[u8; 32]>> {
        let Some(p) = &self.0 else {
            return Err(Error::new(
                ErrorCode::ProtectorRequired,
                format!("the {} is protected by a key protector; open it with that protector", file.kind.name()),
            ));
        };
        let seed = p.unwrap(wrapped, file).map_err(|e| protector_error(&p.label(), "unwrap", e))?;
        let seed: [u8; 32] = seed.as_slice().try_into().map_err(|_| {
            Error::new(
                ErrorCode::ProtectorMismatch,
                format!(
                    "the {} protector cannot unwrap this {}'s secret (it returned {} bytes)",
                    p.label(),
                    file.kind.name(),
                    seed.len()
                ),
            )
        })?;
        Ok(Zeroizing::new(seed))
    }
}

/// A protector's error as one of the protector codes, its message kept.
fn protector_error(label: &str, what: &str, e: Error) -> Error {
    match e.code() {
        ErrorCode::ProtectorMismatch | ErrorCode::ProtectorFailed => e,
        _ => Error::new(ErrorCode::ProtectorFailed, format!("the {label} protector failed to {what}: {}", e.message())),
    }
}

/// The platform keystore as a protector, through the `keyring` crate: the Secret Service on
/// Linux desktops (GNOME Keyring, KWallet), the Keychain on Apple platforms, the Credential
/// Manager on Windows.
///
/// The keystore holds one random 32-byte wrapping key per file, under the service name given
/// and the account `store-<file ID>` / `ledger-<file ID>` ([`ProtectedFile::name`]); the file
/// holds its seed sealed with it (ChaCha20-Poly1305, bound to the file's kind and ID). A copy
/// of the file on a machine (or a user account) whose keystore lacks that entry cannot be
/// opened (`PROTECTOR_MISMATCH`).
#[cfg(feature = "keyring")]
pub struct KeyringProtector {
    service: String,
}

#[cfg(feature = "keyring")]
impl KeyringProtector {
    /// The service name the default protector files its entries under.
    pub const DEFAULT_SERVICE: &'static str = "license-backup";

    /// A protector filing its entries under `service` (an application may use its own name).
    pub fn new(service: impl Into<String>) -> Self {
        KeyringProtector { service: service.into() }
    }

    fn entry(&self, file: &ProtectedFile) -> Result<keyring::Entry> {
        keyring::Entry::new(&self.service, &file.name()).map_err(|e| keyring_error(&self.service, file, e))
    }

    /// Removes the wrapping key of `file` from the keystore (after the file itself was
    /// deleted): the file can never be opened again. Returns whether there was one.
    pub fn forget(&self, file: &ProtectedFile) -> Result<bool> {
        match self.entry(file)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(keyring_error(&self.service, file, e)),
        }
    }

    fn wrapping_key(&self, file: &ProtectedFile, create: bool) -> Result<Zeroizing<[u8; 32]>> {
        let entry = self.entry(file)?;
        match entry.get_secret() {
            Ok(secret) => {
                let secret = Zeroizing::new(secret);
                let key: [u8; 32] = secret.as_slice().try_into().map_err(|_| {
                    Error::new(
                        ErrorCode::ProtectorMismatch,
                        format!("the keystore entry {}/{} is not a wrapping key", self.service, file.name()),
                    )
                })?;
                Ok(Zeroizing::new(key))
            }
            Err(keyring::Error::NoEntry) if create => {
                let key = Zeroizing::new(crate::crypto::random_array::<32>());
                entry.set_secret(key.as_slice()).map_err(|e| keyring_error(&self.service, file, e))?;
                Ok(key)
            }
            Err(e) => Err(keyring_error(&self.service, file, e)),
        }
    }
}

#[cfg(feature = "keyring")]
fn keyring_error(service: &str, file: &ProtectedFile, e: keyring::Error) -> Error {
    let name = file.name();
    match e {
        keyring::Error::NoEntry => Error::new(
            ErrorCode::ProtectorMismatch,
            format!(
                "the keystore has no key {service}/{name}: this {} was protected on another device or by another user",
                file.kind.name()
            ),
        ),
        e => Error::new(ErrorCode::ProtectorFailed, format!("the keystore failed for {service}/{name}: {e}")),
    }
}

#[cfg(feature = "keyring")]
const KEYRING_AAD: &[u8] = b"license-backup/v2/keyring-wrapped-seed";

#[cfg(feature = "keyring")]
fn keyring_aad(file: &ProtectedFile) -> Vec<u8> {
    let mut aad = KEYRING_AAD.to_vec();
    aad.extend_from_slice(file.kind.name().as_bytes());
    aad.extend_from_slice(&file.file_id);
    aad
}

#[cfg(feature = "keyring")]
impl KeyProtector for KeyringProtector {
    fn label(&self) -> String {
        format!("keyring ({})", self.service)
    }

    fn wrap(&self, secret: &[u8], file: &ProtectedFile) -> Result<Vec<u8>> {
        let key = crate::crypto::SealingKey::new(&*self.wrapping_key(file, true)?);
        let mut nonces = crate::crypto::NoncePool::new(1);
        Ok(key.seal_random_from(&mut nonces, secret, &keyring_aad(file)))
    }

    fn unwrap(&self, wrapped: &[u8], file: &ProtectedFile) -> Result<Zeroizing<Vec<u8>>> {
        let key = crate::crypto::SealingKey::new(&*self.wrapping_key(file, false)?);
        key.open_random(wrapped, &keyring_aad(file)).ok_or_else(|| {
            Error::new(
                ErrorCode::ProtectorMismatch,
                format!(
                    "the keystore key {}/{} does not unwrap this {}'s secret",
                    self.service,
                    file.name(),
                    file.kind.name()
                ),
            )
        })
    }
}
