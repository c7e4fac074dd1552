//! The protector of the service keys in the ledger: [`KekFile`], a key-encryption key in a file
//! of its own (or a secret mount) that seals each key seed with AES-256-GCM. The ledger then
//! holds the seeds only sealed: a copy of the ledger (a database backup, a stolen disk image of
//! the database volume) does not give the keys that unwrap every archive's data key.

use std::path::Path;

use license_backup::{Error, ErrorCode, KeyProtector, ProtectedFile};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

/// The length of a key-encryption key file's key: 32 bytes, written as 64 hex digits.
pub const KEK_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// AES-256-GCM under a key read from a file; the associated data is the ledger's
/// [`ProtectedFile::name`], so a sealed seed opens only for the ledger it was made for.
pub struct KekFile {
    key: LessSafeKey,
    label: String,
}

impl KekFile {
    /// Reads the key file: 64 hex digits on its first line (`#` comments may follow).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?,
        );
        let line = text.lines().next().unwrap_or("").trim();
        let bytes = Zeroizing::new(
            license_backup::protocol::unhex(line, KEK_LEN, "key")
                .map_err(|_| format!("{}: the first line must be 64 hex digits", path.display()))?,
        );
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| "cannot use the key".to_string())?;
        Ok(KekFile { key: LessSafeKey::new(key), label: format!("key file {}", path.display()) })
    }

    /// Writes a fresh random key to `path` (which must not exist), readable by its owner only.
    pub fn create(path: &Path) -> Result<(), String> {
        let mut key = Zeroizing::new([0u8; KEK_LEN]);
        getrandom::fill(key.as_mut()).map_err(|e| format!("no random numbers: {e}"))?;
        let text = Zeroizing::new(format!(
            "{}\n# license-backup-service: the key that seals the service keys in the ledger; keep it secret and \
             apart from the ledger's backups\n",
            license_backup::protocol::hex(key.as_ref())
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        use std::io::Write;
        options
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

impl KeyProtector for KekFile {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn wrap(&self, secret: &[u8], file: &ProtectedFile) -> license_backup::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::new(ErrorCode::ProtectorFailed, format!("no random: {e}")))?;
        let mut out = secret.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(file.name().as_bytes()), &mut out)
            .map_err(|_| Error::new(ErrorCode::ProtectorFailed, "AES-GCM sealing failed"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&out);
        Ok(sealed)
    }

    fn unwrap(&self, wrapped: &[u8], file: &ProtectedFile) -> license_backup::Result<Zeroizing<Vec<u8>>> {
        let mismatch = || Error::new(ErrorCode::ProtectorMismatch, "the key file cannot open this ledger's keys");
        if wrapped.len() < NONCE_LEN + 16 {
            return Err(mismatch());
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| mismatch())?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plain =
            self.key.open_in_place(nonce, Aad::from(file.name().as_bytes()), &mut buf).map_err(|_| mismatch())?;
        Ok(Zeroizing::new(plain.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use license_backup::FileKind;

    #[test]
    fn seals_open_only_with_the_key_and_for_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.kek"), dir.path().join("b.kek"));
        KekFile::create(&a).unwrap();
        KekFile::create(&b).unwrap();
        assert!(KekFile::create(&a).is_err(), "never overwrites a key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (ka, kb) = (KekFile::load(&a).unwrap(), KekFile::load(&b).unwrap());
        let file = ProtectedFile { kind: FileKind::Ledger, file_id: [1; 16] };
        let sealed = ka.wrap(&[7; 32], &file).unwrap();
        assert!(!sealed.windows(32).any(|w| w == [7; 32]), "the seed is not in the sealed bytes");
        assert_eq!(*ka.unwrap(&sealed, &file).unwrap(), vec![7; 32]);
        assert_eq!(kb.unwrap(&sealed, &file).unwrap_err().code(), ErrorCode::ProtectorMismatch);
        let other = ProtectedFile { kind: FileKind::Ledger, file_id: [2; 16] };
        assert_eq!(ka.unwrap(&sealed, &other).unwrap_err().code(), ErrorCode::ProtectorMismatch);
        std::fs::write(&a, "not hex").unwrap();
        assert!(KekFile::load(&a).is_err());
    }
}
