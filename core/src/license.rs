//! What a license is: its rights, its public description and its catalog metadata.

use zeroize::{Zeroize, Zeroizing};

use crate::error::Result;
use crate::interface::{self, ArgPath};
use crate::key_id::KeyId;

/// Longest content key accepted, in bytes.
pub const MAX_CONTENT_KEY_LEN: usize = 1024;
/// Longest text field (issuer, title, artist, file path) accepted, in bytes of UTF-8.
pub const MAX_TEXT_LEN: usize = 4096;

/// What the content owner allows the holder of a license to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rights {
    /// The content may be played.
    pub play: bool,
    /// The content may be burned to a CD.
    pub burn: bool,
    /// The content may be transferred to a portable device.
    pub transfer: bool,
    /// The license may be backed up and restored. A license without this right is reported
    /// with a `RestrictedLicense` event during a backup and never enters an archive.
    pub backup_allowed: bool,
    /// When the license expires, in seconds since the Unix epoch; `None` never expires.
    pub expires_at: Option<i64>,
    /// How many plays remain; `None` is unlimited. Survives backup and restore unchanged.
    pub plays_remaining: Option<u32>,
}

impl Default for Rights {
    /// Play, burn, transfer and backup allowed; no expiry; unlimited plays.
    fn default() -> Self {
        Rights { play: true, burn: true, transfer: true, backup_allowed: true, expires_at: None, plays_remaining: None }
    }
}

impl Rights {
    /// Checks every field against its limits in the interface definition (`path` names the
    /// rights in messages).
    pub(crate) fn validate(&self, path: &ArgPath<'_>) -> Result<()> {
        if let Some(expires_at) = self.expires_at {
            interface::TIMESTAMP.check_int(path.field("expires_at"), expires_at.into())?;
        }
        Ok(())
    }

    /// The narrower of two sets of rights: each right only if both grant it, the earlier
    /// expiry, the fewer plays (`None`, no limit, is the widest). What a restore keeps when the
    /// store holds, or held, the license it brings back.
    pub fn narrower(&self, other: &Rights) -> Rights {
        fn min<T: Ord + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, None) => a,
                (None, b) => b,
            }
        }
        Rights {
            play: self.play && other.play,
            burn: self.burn && other.burn,
            transfer: self.transfer && other.transfer,
            backup_allowed: self.backup_allowed && other.backup_allowed,
            expires_at: min(self.expires_at, other.expires_at),
            plays_remaining: min(self.plays_remaining, other.plays_remaining),
        }
    }
}

/// Content metadata an application keeps about a protected file, by key ID.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The title of the song or film.
    pub title: Option<String>,
    /// The artist.
    pub artist: Option<String>,
    /// Where the protected file lives on this device.
    pub file_path: Option<String>,
}

impl CatalogEntry {
    /// A catalog entry that only has a title.
    pub fn titled(title: impl Into<String>) -> Self {
        CatalogEntry { title: Some(title.into()), ..Default::default() }
    }

    /// Checks every field against its limits in the interface definition.
    pub(crate) fn validate(&self) -> Result<()> {
        check_catalog_fields(self.title.as_deref(), self.artist.as_deref(), self.file_path.as_deref())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.title.is_none() && self.artist.is_none() && self.file_path.is_none()
    }
}

/// Checks a catalog entry's fields against their limits in the interface definition: what
/// `set_catalog_entry` and a restore's decoded records are both held to.
pub(crate) fn check_catalog_fields(title: Option<&str>, artist: Option<&str>, file_path: Option<&str>) -> Result<()> {
    let entry = ArgPath::arg("entry");
    for (name, field) in [("title", title), ("artist", artist), ("file_path", file_path)] {
        if let Some(text) = field {
            interface::TEXT.check_text(entry.field(name), text)?;
        }
    }
    Ok(())
}

/// Checks a license's fields against their limits in the interface definition: what
/// `add_license` and a restore's decoded records are both held to.
pub(crate) fn check_license_fields(
    content_key_len: usize,
    issuer: &str,
    issued_at: i64,
    rights: &Rights,
) -> Result<()> {
    let license = ArgPath::arg("license");
    interface::CONTENT_KEY.check_bytes(license.field("content_key"), content_key_len)?;
    interface::TEXT.check_text(license.field("issuer"), issuer)?;
    interface::TIMESTAMP.check_int(license.field("issued_at"), issued_at.into())?;
    rights.validate(&license.field("rights"))
}

/// A license as an application adds it to the store: the only type that carries a content key
/// in clear, and only on its way in.
#[derive(Clone, PartialEq, Eq)]
pub struct NewLicense {
    /// The key ID.
    pub key_id: KeyId,
    /// The content key (secret). Encrypted to the device key before it is stored.
    pub content_key: Vec<u8>,
    /// The rights granted.
    pub rights: Rights,
    /// Who issued the license (a license server URL or name).
    pub issuer: String,
    /// When it was issued, in seconds since the Unix epoch.
    pub issued_at: i64,
}

impl std::fmt::Debug for NewLicense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewLicense")
            .field("key_id", &self.key_id)
            .field("content_key", &"<secret>")
            .field("rights", &self.rights)
            .field("issuer", &self.issuer)
            .field("issued_at", &self.issued_at)
            .finish()
    }
}

impl Drop for NewLicense {
    /// Wipes the content key.
    fn drop(&mut self) {
        self.content_key.zeroize();
    }
}

impl NewLicense {
    /// Checks every field against its limits in the interface definition.
    pub(crate) fn validate(&self) -> Result<()> {
        check_license_fields(self.content_key.len(), &self.issuer, self.issued_at, &self.rights)
    }
}

/// A content key opened from the store: wiped from memory when dropped. It derefs to its
/// bytes; a copy the caller makes (`to_vec()`, a binding's bytes object) is the caller's to
/// wipe.
#[derive(Clone)]
pub struct ContentKey(Zeroizing<Vec<u8>>);

impl ContentKey {
    pub(crate) fn new(key: Zeroizing<Vec<u8>>) -> Self {
        ContentKey(key)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for ContentKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for ContentKey {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentKey(<{} secret bytes>)", self.0.len())
    }
}

impl<T: AsRef<[u8]> + ?Sized> PartialEq<T> for ContentKey {
    fn eq(&self, other: &T) -> bool {
        self.0.as_slice() == other.as_ref()
    }
}

impl Eq for ContentKey {}

/// A license as the store describes it: everything but the content key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct License {
    /// The key ID.
    pub key_id: KeyId,
    /// The rights granted.
    pub rights: Rights,
    /// Who issued the license.
    pub issuer: String,
    /// When it was issued, in seconds since the Unix epoch.
    pub issued_at: i64,
    /// The catalog entry for this key ID, if the application keeps one.
    pub catalog: Option<CatalogEntry>,
}

/// A license's fields without its content key, borrowed: a backup encodes them into an archive
/// record straight from the store's row, without building a [`License`], and a restore binds
/// them from the decrypted record straight into SQL.
pub(crate) struct LicenseFields<'a> {
    /// The license's key ID.
    pub(crate) key_id: KeyId,
    /// Its rights.
    pub(crate) rights: Rights,
    /// Who issued it.
    pub(crate) issuer: &'a str,
    /// When, in seconds since the Unix epoch.
    pub(crate) issued_at: i64,
    /// Catalog metadata (all `None` without a catalog entry).
    pub(crate) title: Option<&'a str>,
    /// See `title`.
    pub(crate) artist: Option<&'a str>,
    /// See `title`.
    pub(crate) file_path: Option<&'a str>,
}

impl<'a> From<&'a License> for LicenseFields<'a> {
    fn from(l: &'a License) -> Self {
        let c = l.catalog.as_ref();
        LicenseFields {
            key_id: l.key_id,
            rights: l.rights.clone(),
            issuer: &l.issuer,
            issued_at: l.issued_at,
            title: c.and_then(|c| c.title.as_deref()),
            artist: c.and_then(|c| c.artist.as_deref()),
            file_path: c.and_then(|c| c.file_path.as_deref()),
        }
    }
}

impl LicenseFields<'_> {
    /// Whether the record carries catalog metadata.
    pub(crate) fn has_catalog(&self) -> bool {
        self.title.is_some() || self.artist.is_some() || self.file_path.is_some()
    }
}

/// What to do when a license being added or restored has a key ID the store already holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConflictPolicy {
    /// Keep the license already on the device (the default): adding fails with
    /// `LICENSE_EXISTS`; a restore skips the archived copy and counts it as skipped.
    #[default]
    Keep,
    /// Replace the license on the device with the new or archived one.
    Replace,
}

impl ConflictPolicy {
    /// [`ConflictPolicy::Replace`] when `replace` is true, else [`ConflictPolicy::Keep`]: the
    /// `replace` flag of the bindings' `add_license` and the restore's `replace_existing`.
    pub const fn from_replace(replace: bool) -> Self {
        if replace { ConflictPolicy::Replace } else { ConflictPolicy::Keep }
    }
}
