//! This device's keys: the key pair that identifies it (and that restore grants are wrapped
//! to) and the key that seals content keys at rest in the store, each bound to its license's
//! row.
//!
//! A license row is authenticated by its sealed content key: the associated data of the seal
//! is a canonical encoding of everything that defines the license (the device ID, the key ID,
//! the rights, the expiry, the plays remaining, the issuer and the issue time), so a row whose
//! fields were edited, or a sealed key moved to another row, does not open
//! (`LICENSE_TAMPERED`). A tombstone (a removed license's key ID and last rights) is sealed the
//! same way, with an empty plaintext.

use zeroize::Zeroizing;

use crate::crypto::{KeyPair, NoncePool, SealingKey, TAG_LEN};
use crate::error::{Error, ErrorCode, Result};
use crate::key_id::KeyId;
use crate::license::Rights;

/// This device's keys, loaded from the store.
pub(crate) struct DeviceKeys {
    pub(crate) pair: KeyPair,
    storage: SealingKey,
    /// The device ID, computed once: it is part of every row's associated data.
    id: [u8; 16],
}

/// The constant prefix of a content key's associated data in store layout 1 (the device ID and
/// the key ID only): read once, when a store is migrated.
const CONTENT_KEY_AAD_V1: &[u8; 29] = b"license-backup/v1/content-key";
/// The constant prefix of a license row's associated data.
const LICENSE_AAD: &[u8; 25] = b"license-backup/v2/license";
/// The constant prefix of a tombstone's associated data.
const TOMBSTONE_AAD: &[u8; 27] = b"license-backup/v2/tombstone";
/// Room for a row's associated data without its issuer.
const ROW_AAD_FIXED: usize = 27 + 16 + 16 + 1 + 9 + 5 + 8 + 2;

/// What defines a license, as its seal binds it: everything but the content key and the
/// catalog entry.
#[derive(Clone, Copy)]
pub(crate) struct RowFields<'a> {
    pub(crate) key_id: &'a KeyId,
    pub(crate) rights: &'a Rights,
    pub(crate) issuer: &'a str,
    pub(crate) issued_at: i64,
}

impl DeviceKeys {
    pub(crate) fn new(pair: KeyPair) -> Self {
        let storage = pair.derive_key(b"store content keys");
        let id = pair.id();
        DeviceKeys { pair, storage, id }
    }

    pub(crate) fn id(&self) -> [u8; 16] {
        self.id
    }

    /// Writes the associated data of a row into `out` (cleared first): the prefix, the device
    /// ID, the key ID, the rights (flags, expiry and play count each with a presence byte and a
    /// fixed width), the issue time and the issuer (length-prefixed).
    pub(crate) fn row_aad_into(&self, prefix: &[u8], row: &RowFields<'_>, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(ROW_AAD_FIXED + row.issuer.len());
        out.extend_from_slice(prefix);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(row.key_id.as_bytes());
        let r = row.rights;
        out.push(
            u8::from(r.play) | u8::from(r.burn) << 1 | u8::from(r.transfer) << 2 | u8::from(r.backup_allowed) << 3,
        );
        out.push(u8::from(r.expires_at.is_some()));
        out.extend_from_slice(&r.expires_at.unwrap_or(0).to_le_bytes());
        out.push(u8::from(r.plays_remaining.is_some()));
        out.extend_from_slice(&r.plays_remaining.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&row.issued_at.to_le_bytes());
        out.extend_from_slice(&(row.issuer.len() as u16).to_le_bytes());
        out.extend_from_slice(row.issuer.as_bytes());
    }

    /// The associated data of a license row.
    pub(crate) fn license_aad(&self, row: &RowFields<'_>) -> Vec<u8> {
        let mut aad = Vec::new();
        self.row_aad_into(LICENSE_AAD, row, &mut aad);
        aad
    }

    /// [`DeviceKeys::license_aad`] into a reused buffer.
    pub(crate) fn license_aad_into(&self, row: &RowFields<'_>, out: &mut Vec<u8>) {
        self.row_aad_into(LICENSE_AAD, row, out);
    }

    /// The associated data of a content key in store layout 1.
    fn aad_v1(&self, key_id: &KeyId) -> [u8; 61] {
        let mut aad = [0u8; 61];
        aad[..29].copy_from_slice(CONTENT_KEY_AAD_V1);
        aad[29..45].copy_from_slice(&self.id);
        aad[45..].copy_from_slice(key_id.as_bytes());
        aad
    }

    /// Seals a content key into its row, with a nonce from the operating system.
    #[cfg(feature = "bench-internals")]
    pub(crate) fn seal_content_key(&self, row: &RowFields<'_>, content_key: &[u8]) -> Vec<u8> {
        self.storage.seal_random(content_key, &self.license_aad(row))
    }

    /// Seals a content key into its row, with a nonce from `nonces` (many keys in a row).
    pub(crate) fn seal_row(&self, nonces: &mut NoncePool, row: &RowFields<'_>, content_key: &[u8]) -> Vec<u8> {
        self.storage.seal_random_from(nonces, content_key, &self.license_aad(row))
    }

    /// Appends the sealed content key of a row to `out`, with a nonce from `nonces`; `aad` is
    /// a scratch buffer.
    pub(crate) fn seal_row_into(
        &self,
        nonces: &mut NoncePool,
        row: &RowFields<'_>,
        content_key: &[u8],
        aad: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) {
        self.license_aad_into(row, aad);
        self.storage.seal_random_into(nonces, content_key, aad, out);
    }

    /// Opens, in place, a content key whose nonce and tag were split off (see
    /// [`SealingKey::split_random`]) with its row's associated data `aad`: a backup opens it
    /// inside the record it is sealed into.
    pub(crate) fn open_in_place(
        &self,
        key_id: &KeyId,
        aad: &[u8],
        nonce: &[u8; 12],
        key: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<()> {
        if self.storage.open_detached(nonce, key, aad, tag) { Ok(()) } else { Err(tampered(key_id)) }
    }

    /// Opens the content key of a row: `LICENSE_TAMPERED` when the row's fields or its sealed
    /// key were changed outside this library.
    pub(crate) fn open_row(&self, row: &RowFields<'_>, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.storage.open_random(sealed, &self.license_aad(row)).ok_or_else(|| tampered(row.key_id))
    }

    /// Checks a row's seal without keeping its content key (opened into `scratch`, which is
    /// wiped): what every read that hands rights to the application does.
    pub(crate) fn check_row(
        &self,
        row: &RowFields<'_>,
        sealed: &[u8],
        aad: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        self.license_aad_into(row, aad);
        let ok = match SealingKey::split_random(sealed) {
            Some((nonce, ct, tag)) => {
                scratch.clear();
                scratch.extend_from_slice(ct);
                let ok = self.storage.open_detached(nonce, scratch, aad, tag);
                zeroize::Zeroize::zeroize(scratch);
                ok
            }
            None => false,
        };
        if ok { Ok(()) } else { Err(tampered(row.key_id)) }
    }

    /// Opens a content key sealed by store layout 1 (the migration re-seals it into its row).
    pub(crate) fn open_v1(&self, key_id: &KeyId, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.storage.open_random(sealed, &self.aad_v1(key_id)).ok_or_else(|| {
            Error::new(
                ErrorCode::Storage,
                format!("the content key of {key_id} cannot be opened with this device's key"),
            )
        })
    }

    /// Seals a tombstone: a nonce and a tag over no plaintext, bound to its fields.
    pub(crate) fn seal_tombstone(&self, nonces: &mut NoncePool, row: &RowFields<'_>) -> Vec<u8> {
        let mut aad = Vec::new();
        self.row_aad_into(TOMBSTONE_AAD, row, &mut aad);
        self.storage.seal_random_from(nonces, &[], &aad)
    }

    /// Checks a tombstone's seal: `LICENSE_TAMPERED` naming its key ID when it does not match.
    pub(crate) fn check_tombstone(&self, row: &RowFields<'_>, seal: &[u8]) -> Result<()> {
        let mut aad = Vec::new();
        self.row_aad_into(TOMBSTONE_AAD, row, &mut aad);
        if seal.len() == 12 + TAG_LEN && self.storage.open_random(seal, &aad).is_some() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::LicenseTampered,
                format!(
                    "the record of the removed license {} was changed outside this library (its seal does not match)",
                    row.key_id
                ),
            ))
        }
    }
}

/// The error of a row whose seal does not match.
pub(crate) fn tampered(key_id: &KeyId) -> Error {
    Error::new(
        ErrorCode::LicenseTampered,
        format!(
            "the license {key_id} was changed outside this library: its rights, expiry, plays, issuer, issue time or \
             key do not match its seal"
        ),
    )
}

/// Formats a 16-byte device ID as 32 lowercase hex digits.
pub(crate) fn device_id_hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}
