//! What the command-line tool needs from the core: `archive::inspect` (an archive's header and
//! framing, read without any key, and how its verdict compares with what a restore finds) and
//! `LicenseStore::list_catalog`.

mod common;

use common::*;
use license_backup::archive::{ARCHIVE_FILE_NAME, HEADER_LEN, inspect, read_header_at};
use license_backup::*;
use sha2::{Digest, Sha256};

/// A device with 6 licenses (2 restricted) backed up, and a second device to ask the quota.
struct Fixture {
    w: World,
    rb: BackupRestorer,
    good: Vec<u8>,
}

fn fixture() -> Fixture {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 6, 3);
    backup(&ra, false).0.unwrap();
    let good = read_all(&archive_path(&w));
    let (_, rb) = w.device("b");
    Fixture { w, rb, good }
}

/// Byte offsets of the frames: license records, then the end record.
fn frames(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        out.push(pos);
        pos += 21 + u32::from_le_bytes(bytes[pos + 17..pos + 21].try_into().unwrap()) as usize;
    }
    out
}

#[test]
fn an_intact_archive_shows_its_header_count_and_key_id_digest() {
    let f = fixture();
    let path = archive_path(&f.w);
    let info = inspect(&path).unwrap();
    assert!(info.is_intact(), "{:?}", info.damage);
    assert_eq!(info.path, path);
    assert_eq!(info.size, f.good.len() as u64);
    assert_eq!(info.format_version, archive::FORMAT_VERSION);
    assert_eq!(info.header, read_header_at(&path).unwrap());
    assert_eq!(info.licenses, 4, "6 licenses, 2 of them restricted");
    // The digest a version-2 header commits to and a restore compares: SHA-256 of the domain
    // label and the key IDs in archive (store) order.
    let mut digest = Sha256::new();
    digest.update(archive::KEY_IDS_DOMAIN);
    for i in [1, 2, 4, 5] {
        digest.update(key_id(i).as_bytes());
    }
    assert_eq!(info.key_ids_digest, <[u8; 32]>::from(digest.finalize()));
    // The folder that holds the archive names it too.
    assert_eq!(inspect(&f.w.path("backup")).unwrap(), info);
    assert_eq!(read_all(&path), f.good, "inspect never writes");
}

#[test]
fn an_empty_backup_is_intact_with_no_licenses() {
    let w = World::new();
    let (_, r) = w.device("a");
    backup(&r, false).0.unwrap();
    let info = inspect(&archive_path(&w)).unwrap();
    assert!(info.is_intact());
    assert_eq!(info.licenses, 0);
    assert_eq!(info.key_ids_digest, <[u8; 32]>::from(Sha256::digest(archive::KEY_IDS_DOMAIN)));
}

#[test]
fn missing_unreadable_headers_and_other_versions_are_errors() {
    let f = fixture();
    let path = archive_path(&f.w);
    let empty = f.w.folder("empty");
    assert_eq!(inspect(&empty).unwrap_err().code(), ErrorCode::ArchiveMissing);
    assert_eq!(inspect(&empty.join(ARCHIVE_FILE_NAME)).unwrap_err().code(), ErrorCode::ArchiveMissing);
    for at in [0, 8, 30, 100, HEADER_LEN - 1] {
        let mut bytes = f.good.clone();
        bytes[at] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        // Without its magic the file is not an archive at all; any other flip is damage.
        let expected = if at < 8 { ErrorCode::WrongFileKind } else { ErrorCode::ArchiveCorrupt };
        assert_eq!(inspect(&path).unwrap_err().code(), expected, "header byte {at}");
    }
    // Version 3 with a valid checksum: a version this library does not read.
    let mut bytes = f.good.clone();
    bytes[8..10].copy_from_slice(&3u16.to_le_bytes());
    let sum = Sha256::digest(&bytes[..HEADER_LEN - 16]);
    bytes[HEADER_LEN - 16..HEADER_LEN].copy_from_slice(&sum[..16]);
    std::fs::write(&path, &bytes).unwrap();
    let err = inspect(&path).unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnsupportedVersion);
    assert!(err.message().contains("version 3"), "{err}");
    std::fs::write(&path, b"hello").unwrap();
    assert_eq!(inspect(&path).unwrap_err().code(), ErrorCode::WrongFileKind);
    // A FIFO in place of the archive is refused without being opened (which would block).
    #[cfg(unix)]
    {
        std::fs::remove_file(&path).unwrap();
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(inspect(&f.w.path("backup")).unwrap_err().code(), ErrorCode::WrongFileKind);
    }
}

#[test]
fn framing_damage_is_located() {
    let f = fixture();
    let path = archive_path(&f.w);
    let fr = frames(&f.good);
    assert_eq!(fr.len(), 5);
    // (what, bytes, damage offset, damage record, license records before it, message)
    type Case<'a> = (&'a str, Vec<u8>, u64, u64, u64, &'a str);
    let cases: Vec<Case> = vec![
        ("unknown type of record 2", with(&f.good, |b| b[fr[2]] = 7), fr[2] as u64, 2, 2, "unknown record type 7"),
        ("length of record 1 out of range", with(&f.good, |b| b[fr[1] + 20] = 0xff), fr[1] as u64, 1, 1, "length"),
        ("cut inside record 3", f.good[..fr[3] + 30].to_vec(), fr[3] as u64, 3, 3, "truncated inside record 3"),
        ("cut before the end record", f.good[..fr[4]].to_vec(), fr[4] as u64, 4, 4, "without an end record"),
        ("cut right after the header", f.good[..HEADER_LEN].to_vec(), HEADER_LEN as u64, 0, 0, "without an end"),
        ("bytes after the end record", [&f.good[..], b"xy"].concat(), f.good.len() as u64, 5, 4, "2 unexpected bytes"),
        ("end record with a key ID", with(&f.good, |b| b[fr[4] + 1] = 1), fr[4] as u64, 4, 4, "malformed end record"),
    ];
    for (what, bytes, offset, record, licenses, message) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let info = inspect(&path).unwrap();
        let damage = info.damage.clone().unwrap_or_else(|| panic!("{what}: not found"));
        assert_eq!(damage.error.code(), ErrorCode::ArchiveCorrupt, "{what}");
        assert!(damage.error.message().contains(message), "{what}: {}", damage.error);
        assert_eq!((damage.offset, damage.record), (offset, record), "{what}");
        assert_eq!(info.licenses, licenses, "{what}: license records before the damage");
        assert_eq!(info.header, read_header_at(&path).unwrap(), "{what}: the header is still shown");
        assert!(!info.is_intact());
    }
}

fn with(bytes: &[u8], change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = bytes.to_vec();
    change(&mut b);
    b
}

/// Every truncation and every flipped byte of a small archive: whatever the restore's scan (run
/// by `restore_quota`, before any key is used) rejects, `inspect` rejects too, with the same
/// code, and an archive `inspect` calls intact passes the scan. In a version-2 archive both find
/// every one of them without a key (the header commits to every record byte).
#[test]
fn inspect_agrees_with_the_restore_scan_on_every_truncation_and_flipped_byte() {
    let f = fixture();
    let path = archive_path(&f.w);
    let mut damaged_variants = Vec::new();
    for cut in 0..f.good.len() {
        damaged_variants.push((format!("cut at {cut}"), f.good[..cut].to_vec()));
    }
    for at in 0..f.good.len() {
        damaged_variants.push((format!("flip at {at}"), with(&f.good, |b| b[at] ^= 1)));
    }
    let (mut intact, mut stricter) = (0, 0);
    for (what, bytes) in damaged_variants {
        std::fs::write(&path, &bytes).unwrap();
        let inspected = inspect(&path);
        let scanned = f.rb.restore_quota();
        let inspect_ok = matches!(&inspected, Ok(info) if info.is_intact());
        match (&scanned, inspect_ok) {
            (Ok(_), true) => intact += 1,
            (Err(e), false) => {
                let code = match &inspected {
                    Ok(info) => info.damage.as_ref().unwrap().error.code(),
                    Err(e) => e.code(),
                };
                assert_eq!(code, e.code(), "{what}: the same code as the restore");
            }
            (Err(e), true) => panic!("{what}: the restore scan rejects it ({e}) but inspect calls it intact"),
            (Ok(_), false) => {
                let damage = inspected.as_ref().ok().and_then(|i| i.damage.clone());
                let message = damage.map(|d| d.error.message().to_string()).unwrap_or_default();
                assert_eq!(message, "malformed end record", "{what}: inspect rejects what the scan accepts");
                let (res, _) = restore(&f.rb, RestoreFlags::default());
                assert_eq!(res.unwrap_err().code(), ErrorCode::ArchiveCorrupt, "{what}: the restore rejects it");
                stricter += 1;
            }
        }
    }
    // Flips inside a ciphertext keep the framing, not the record digest: none is intact.
    assert_eq!((intact, stricter), (0, 0), "every variant is damage to both");
}

#[test]
fn list_catalog_holds_entries_with_and_without_a_license() {
    let w = World::new();
    let (a, _) = w.device("a");
    assert!(a.list_catalog().unwrap().is_empty());
    fill(&a, 3, 0);
    let orphan = KeyId::from_bytes([0xff; 16]);
    let entry = CatalogEntry { title: Some("Not yet bought".into()), artist: Some("Band".into()), file_path: None };
    a.set_catalog_entry(&orphan, &entry).unwrap();
    a.remove_catalog_entry(&key_id(2)).unwrap();
    let catalog = a.list_catalog().unwrap();
    let expected = vec![
        (key_id(1), CatalogEntry::titled("Track 1")),
        (key_id(3), CatalogEntry::titled("Track 3")),
        (orphan, entry),
    ];
    assert_eq!(catalog, expected, "ordered by key ID, the orphan entry included, the removed one gone");
}
