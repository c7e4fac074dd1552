//! Service key files: one X25519 key per file, its 32-byte secret seed as 64 hex digits on the
//! first line (a `#` comment may follow on later lines). Made by `license-backup-service keygen`
//! with mode 0600.

use std::io::Write;
use std::path::Path;

use license_backup::ServiceKey;
use license_backup::protocol::{PublishedKey, hex, unhex};

/// Reads a key file.
pub fn read_key(path: &Path) -> Result<ServiceKey, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim();
    let seed =
        unhex(line, 32, "seed").map_err(|_| format!("{}: the first line must be 64 hex digits", path.display()))?;
    Ok(ServiceKey::from_seed(seed.try_into().expect("32 bytes")))
}

/// Writes a fresh key to `path` (which must not exist), readable by its owner only; returns it.
pub fn write_new_key(path: &Path) -> Result<ServiceKey, String> {
    let key = ServiceKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    writeln!(
        f,
        "{}\n# license-backup-service key, fingerprint {}: keep this file secret",
        hex(key.seed()),
        hex(&key.fingerprint())
    )
    .and_then(|()| f.sync_all())
    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(key)
}

/// The keys as `GET /v1/keys` publishes them, the current one first.
pub fn published(keys: &[ServiceKey]) -> Vec<PublishedKey> {
    keys.iter().enumerate().map(|(i, k)| PublishedKey::new(&k.public_key(), i == 0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let key = write_new_key(&path).unwrap();
        assert_eq!(read_key(&path).unwrap().public_key(), key.public_key());
        assert!(write_new_key(&path).is_err(), "never overwrites a key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, "not hex").unwrap();
        assert!(read_key(&path).is_err());
        let p = published(&[key, ServiceKey::generate()]);
        assert!(p[0].current && !p[1].current);
    }
}
