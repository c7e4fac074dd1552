//! The archive under damage and inspection: tamper, truncation, versions, secrets. A damaged
//! version-2 archive is refused before the service is contacted, so it costs no quota.

mod common;

use std::path::Path;

use common::*;
use license_backup::archive::{self, ARCHIVE_FILE_NAME, HEADER_LEN, RecordReader, read_header_at};
use license_backup::*;

/// Byte offsets of the frames of an archive: license records, then the end record.
fn frames(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        out.push(pos);
        let len = u32::from_le_bytes(bytes[pos + 17..pos + 21].try_into().unwrap()) as usize;
        pos += 21 + len;
    }
    out
}

struct Fixture {
    w: World,
    b: std::sync::Arc<LicenseStore>,
    rb: BackupRestorer,
    good: Vec<u8>,
}

fn fixture() -> Fixture {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 6, 3);
    backup(&ra, false).0.unwrap();
    let good = read_all(&archive_path(&w));
    let (b, rb) = w.device("b");
    fill(&b, 1, 0);
    Fixture { w, b, rb, good }
}

impl Fixture {
    fn restore_damaged(&self, bytes: &[u8]) -> (ErrorCode, Vec<&'static str>) {
        std::fs::write(archive_path(&self.w), bytes).unwrap();
        let before = snapshot(&self.b);
        let ledger = self.w.service.audit().unwrap();
        let (res, rec) = restore(&self.rb, RestoreFlags::default());
        assert_eq!(snapshot(&self.b), before, "a failed restore leaves the store untouched");
        let after = self.w.service.audit().unwrap();
        assert_eq!(
            (after.pending, after.confirmed, after.placements),
            (ledger.pending, ledger.confirmed, ledger.placements),
            "a failed restore is charged nothing"
        );
        (res.expect_err("damaged archive restored").code(), rec.kinds())
    }
}

#[test]
fn flipped_bytes_anywhere_are_corrupt() {
    let f = fixture();
    let fr = frames(&f.good);
    assert_eq!(fr.len(), 5, "4 license records and the end record");
    let last = f.good.len() - 1;
    for (what, at) in [
        ("magic", 0),
        ("version", 8),
        ("archive id", 30),
        ("origin device", 45),
        ("created at", 60),
        ("service fingerprint", 70),
        ("origin key", 90),
        ("license count", 115),
        ("key-ID digest", 130),
        ("record digest", 160),
        ("enc", 190),
        ("wrapped key", 230),
        ("header checksum", 270),
        ("record type", fr[1]),
        ("record key id", fr[1] + 5),
        ("record length", fr[2] + 17),
        ("record ciphertext", fr[2] + 30),
        ("end record", fr[4] + 25),
        ("last byte", last),
    ] {
        let mut bytes = f.good.clone();
        bytes[at] ^= 0x01;
        let (code, events) = f.restore_damaged(&bytes);
        // Without its magic the file is not an archive at all.
        let want = if what == "magic" { ErrorCode::WrongFileKind } else { ErrorCode::ArchiveCorrupt };
        assert_eq!(code, want, "flip in {what} at {at}");
        assert_eq!(events, ["end"], "flip in {what} at {at}: found before connecting to the service");
    }
    assert_eq!(f.w.service.audit().unwrap(), LedgerAudit { devices: 1, ..LedgerAudit::default() });
}

#[test]
fn damage_in_records_is_found_before_the_service_is_asked() {
    let f = fixture();
    let fr = frames(&f.good);
    let mut bytes = f.good.clone();
    bytes[fr[1] + 40] ^= 0x80;
    let (code, events) = f.restore_damaged(&bytes);
    assert_eq!(code, ErrorCode::ArchiveCorrupt);
    assert_eq!(events, ["end"]);
    // The same damage with a header recomputed to match (checksum and record digest): only the
    // service can tell the header was altered, and it refuses before recording anything.
    let c = writer::commitment_of(&bytes[HEADER_LEN..]);
    bytes[152..184].copy_from_slice(&c.2);
    let sum = <sha2::Sha256 as sha2::Digest>::digest(&bytes[..HEADER_LEN - 16]);
    bytes[HEADER_LEN - 16..HEADER_LEN].copy_from_slice(&sum[..16]);
    let (code, events) = f.restore_damaged(&bytes);
    assert_eq!(code, ErrorCode::ArchiveCorrupt);
    assert_eq!(events, ["connecting", "disconnecting", "end"]);
    assert_eq!(f.w.service.audit().unwrap(), LedgerAudit { devices: 1, ..LedgerAudit::default() });
}

#[test]
fn truncation_at_every_record_boundary_and_inside_is_corrupt() {
    let f = fixture();
    let mut cuts: Vec<usize> = frames(&f.good);
    cuts.extend([0, 7, HEADER_LEN - 1, HEADER_LEN + 3, f.good.len() - 1]);
    for cut in cuts {
        let (code, _) = f.restore_damaged(&f.good[..cut]);
        // An empty file is a placeholder a dead backup left: no archive.
        let want = if cut == 0 { ErrorCode::ArchiveMissing } else { ErrorCode::ArchiveCorrupt };
        assert_eq!(code, want, "cut at {cut}");
    }
}

#[test]
fn swapped_records_and_appended_bytes_are_corrupt() {
    let f = fixture();
    let fr = frames(&f.good);
    let (r0, r1) = (&f.good[fr[0]..fr[1]], &f.good[fr[1]..fr[2]]);
    let mut swapped = f.good[..fr[0]].to_vec();
    swapped.extend_from_slice(r1);
    swapped.extend_from_slice(r0);
    swapped.extend_from_slice(&f.good[fr[2]..]);
    assert_eq!(f.restore_damaged(&swapped).0, ErrorCode::ArchiveCorrupt);
    let mut longer = f.good.clone();
    longer.push(0);
    assert_eq!(f.restore_damaged(&longer).0, ErrorCode::ArchiveCorrupt);
    let mut spliced = f.good.clone();
    let other = {
        let w2 = World::new();
        let (a2, ra2) = w2.device("a");
        fill(&a2, 6, 3);
        backup(&ra2, false).0.unwrap();
        read_all(&archive_path(&w2))
    };
    let ofr = frames(&other);
    spliced.splice(fr[1]..fr[2], other[ofr[1]..ofr[2]].iter().copied());
    assert_eq!(f.restore_damaged(&spliced).0, ErrorCode::ArchiveCorrupt, "a record from another archive");
}

#[test]
fn a_newer_format_version_is_unsupported() {
    use sha2::{Digest, Sha256};
    let f = fixture();
    let mut bytes = f.good.clone();
    bytes[8] = 3;
    let digest = Sha256::digest(&bytes[..HEADER_LEN - 16]);
    bytes[HEADER_LEN - 16..HEADER_LEN].copy_from_slice(&digest[..16]);
    let (code, events) = f.restore_damaged(&bytes);
    assert_eq!(code, ErrorCode::UnsupportedVersion);
    assert_eq!(events, ["end"], "found before connecting to the service");
}

#[test]
fn restricted_licenses_never_enter_the_archive_and_keys_are_not_in_clear() {
    let f = fixture();
    let path = archive_path(&f.w);
    let header = read_header_at(&path).unwrap();
    let key = f.w.service.unwrap_data_key(&header).unwrap();
    let (_, mut reader) = RecordReader::open(&path, &key).unwrap();
    let mut ids = Vec::new();
    while let Some(l) = reader.next_license().unwrap() {
        assert!(l.license.rights.backup_allowed);
        assert_eq!(l.content_key.as_slice(), content_key_for(&l.license.key_id).as_slice());
        ids.push(l.license.key_id);
    }
    assert_eq!(ids, [key_id(1), key_id(2), key_id(4), key_id(5)]);
    for i in 1..=6 {
        let ck = content_key(i);
        assert!(!f.good.windows(ck.len()).any(|w| w == ck.as_slice()), "content key {i} in clear");
        assert!(!f.good.windows(7).any(|w| w == b"Track 3"), "titles are sealed too");
    }
    // The archive is in the folder under its documented name, and nothing else is.
    assert!(Path::new(&f.w.path("backup")).join(ARCHIVE_FILE_NAME).exists());
}

fn content_key_for(id: &KeyId) -> Vec<u8> {
    let n = u32::from_be_bytes(id.as_bytes()[12..].try_into().unwrap());
    content_key(n)
}

#[test]
fn content_keys_never_appear_in_clear_in_the_store_file() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 20, 0);
    let (b, rb) = w.device("b");
    backup(&ra, false).0.unwrap();
    restore(&rb, RestoreFlags { individualize: true, replace_existing: false }).0.unwrap();
    drop((ra, rb));
    for store in [a, b] {
        let path = store.path().to_path_buf();
        let mut bytes = std::fs::read(&path).unwrap();
        let wal = path.with_extension("db-wal");
        if let Ok(extra) = std::fs::read(wal) {
            bytes.extend(extra);
        }
        for i in 1..=20 {
            let ck = content_key(i);
            assert!(!bytes.windows(ck.len()).any(|w| w == ck.as_slice()), "content key {i} in {}", path.display());
        }
    }
}

/// A version-1 archive (as the previous release wrote them) still restores, under version-1
/// rules: no commitment to check before connecting, so damage inside a record is found after
/// the service answered; the reservation is then released, so it costs nothing either.
#[test]
fn version_1_archives_restore_under_their_own_rules() {
    let w = World::new();
    let (b, rb) = w.device("b");
    let service_key = w.service.public_key().unwrap();
    let origin = writer::random::<16>();
    let records: Vec<writer::Record> =
        (1..=3u32).map(|i| writer::Record::license(*key_id(i).as_bytes(), &content_key(i), Some("Old"))).collect();
    let good = writer::v1_archive(&service_key, &origin, &records);
    assert_eq!(archive::read_header(&mut good.as_slice()).unwrap().version, 1);
    let fr = {
        let mut out = Vec::new();
        let mut pos = archive::V1_HEADER_LEN;
        while pos < good.len() {
            out.push(pos);
            pos += 21 + u32::from_le_bytes(good[pos + 17..pos + 21].try_into().unwrap()) as usize;
        }
        out
    };
    let mut damaged = good.clone();
    damaged[fr[1] + 30] ^= 1;
    std::fs::write(archive_path(&w), &damaged).unwrap();
    let (res, rec) = restore(&rb, RestoreFlags::default());
    assert_eq!(res.unwrap_err().code(), ErrorCode::ArchiveCorrupt);
    assert_eq!(rec.kinds(), ["connecting", "disconnecting", "begin", "end"]);
    let audit = w.service.audit().unwrap();
    assert_eq!((audit.pending, audit.released, audit.placements), (0, 1, 0), "{audit:?}");

    std::fs::write(archive_path(&w), &good).unwrap();
    assert!(rb.restore_quota().unwrap().allowed);
    let (res, _) = restore(&rb, RestoreFlags::default());
    assert_eq!(res.unwrap().licenses, 3);
    assert_eq!(b.content_key(&key_id(2)).unwrap(), content_key(2));
    // Version-1 rules: the origin the header names counts, with the restoring device.
    let mut expected = vec![origin, hex16(&b.device_id().unwrap())];
    expected.sort();
    assert_eq!(w.service.devices_of(&key_id(1)).unwrap(), expected);

    // A service whose policy refuses version-1 archives says so, before recording anything.
    let strict = std::sync::Arc::new(
        EmbeddedService::open_with_policy(
            w.path("service.db"),
            ServicePolicy { accept_v1_archives: false, ..ServicePolicy::default() },
        )
        .unwrap(),
    );
    let (_, rc) = {
        let store = std::sync::Arc::new(LicenseStore::open(w.path("c.db")).unwrap());
        let r = create_backup_restorer(std::sync::Arc::clone(&store), strict.clone());
        r.set_property("RestorePath", PropertyValue::String(w.path("backup").display().to_string())).unwrap();
        (store, r)
    };
    assert_eq!(rc.restore_quota().unwrap_err().code(), ErrorCode::UnsupportedVersion);
    let (res, rec) = restore(&rc, RestoreFlags::default());
    assert_eq!(res.unwrap_err().code(), ErrorCode::UnsupportedVersion);
    assert_eq!(rec.kinds(), ["connecting", "disconnecting", "refused", "end"]);
    assert_eq!(strict.audit().unwrap().confirmed, 1);
}
