//! This device's keys: the key pair that identifies it (and that restore grants are wrapped
//! to) and the key that seals content keys at rest in the store.

use zeroize::Zeroizing;

use crate::crypto::{KeyPair, NoncePool, SealingKey};
use crate::error::{Error, ErrorCode, Result};
use crate::key_id::KeyId;

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

    /// [`DeviceKeys::seal_content_key_from`] with a nonce from the operating system.
    #[cfg(feature = "bench-internals")]
    pub(crate) fn seal_content_key(&self, key_id: &KeyId, content_key: &[u8]) -> Vec<u8> {
        self.storage.seal_random(content_key, &self.aad(key_id))
    }

    /// Seals a content key to this device, with a nonce from `nonces` (many keys in a row).
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
