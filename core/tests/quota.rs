//! The restore quota as an attacker would test it: key-ID streams that are not the archive's,
//! forged archives, device IDs that do not match their keys, small-order keys, replayed grants
//! and requests, quota queries through the wrong service, several accounts on one ledger; and
//! the reservations behind "charged only for restores that land": confirm, release, expiry,
//! the store's journal settling what a crash or an outage left.
//!
//! Several accounts: an [`Authority`] over one ledger file, reached through [`AccountClient`],
//! a `LicenseService` that names its account on every call, as a networked service takes it
//! from the caller's credentials.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::writer::{self, DeviceKey, Record};
use common::*;
use license_backup::archive::{self, ArchiveHeader};
use license_backup::*;

/// A device's side of a service with several accounts: every call is made for `account`.
struct AccountClient {
    authority: Arc<Authority<SqliteLedger>>,
    account: String,
}

impl LicenseService for AccountClient {
    fn public_key(&self) -> Result<[u8; 32]> {
        Ok(self.authority.public_key())
    }
    fn register_device(&self, registration: &DeviceRegistration) -> Result<()> {
        self.authority.register_device(&self.account, registration)
    }
    fn authorize_restore(
        &self,
        request: &RestoreRequest,
        key_ids: &mut KeyIdStream<'_>,
    ) -> std::result::Result<RestoreGrant, ServiceError> {
        self.authority.authorize_restore(&self.account, request, key_ids)
    }
    fn confirm_restore(&self, request_id: &RequestId) -> Result<Settlement> {
        self.authority.confirm_restore(&self.account, request_id)
    }
    fn release_restore(&self, request_id: &RequestId) -> Result<Settlement> {
        self.authority.release_restore(&self.account, request_id)
    }
    fn quota(&self, request: &RestoreRequest, key_ids: &mut KeyIdStream<'_>) -> Result<Quota> {
        self.authority.quota(&self.account, request, key_ids)
    }
}

/// A service with two accounts on one ledger, and a store per device.
struct Accounts {
    dir: tempfile::TempDir,
    authority: Arc<Authority<SqliteLedger>>,
}

impl Accounts {
    fn new(policy: ServicePolicy) -> Accounts {
        let dir = tempfile::tempdir().unwrap();
        let ledger = SqliteLedger::open(dir.path().join("ledger.db")).unwrap();
        Accounts { authority: Arc::new(Authority::new(ledger, policy).unwrap()), dir }
    }

    fn client(&self, account: &str) -> Arc<dyn LicenseService> {
        Arc::new(AccountClient { authority: Arc::clone(&self.authority), account: account.into() })
    }

    fn folder(&self, name: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p.display().to_string()
    }

    /// A device of `account`, backing up to and restoring from `folder`.
    fn device(&self, name: &str, account: &str, folder: &str) -> (Arc<LicenseStore>, BackupRestorer) {
        let store = Arc::new(LicenseStore::open(self.dir.path().join(format!("{name}.db"))).unwrap());
        let r = create_backup_restorer(Arc::clone(&store), self.client(account));
        let path = PropertyValue::String(self.folder(folder));
        r.set_property("BackupPath", path.clone()).unwrap();
        r.set_property("RestorePath", path).unwrap();
        (store, r)
    }

    fn archive(&self, folder: &str) -> std::path::PathBuf {
        self.dir.path().join(folder).join(archive::ARCHIVE_FILE_NAME)
    }
}

/// A request to restore the archive at `path` onto `device`, and the archive's key IDs.
fn request_for(path: &std::path::Path, device: &DeviceKey) -> (RestoreRequest, Vec<KeyId>) {
    let bytes = std::fs::read(path).unwrap();
    let header = archive::read_header(&mut bytes.as_slice()).unwrap();
    (request_with(&header, device, &bytes), frame_key_ids(&bytes))
}

fn request_with(header: &ArchiveHeader, device: &DeviceKey, bytes: &[u8]) -> RestoreRequest {
    RestoreRequest {
        request_id: writer::random(),
        header: header.authenticated.clone(),
        wrapped_key: header.wrapped_key.clone(),
        device_id: device.id(),
        device_public_key: device.public,
        licenses: frame_key_ids(bytes).len() as u64,
        replaces: None,
    }
}

/// The key IDs of an archive's license records, from its frames.
fn frame_key_ids(bytes: &[u8]) -> Vec<KeyId> {
    let mut pos = u16::from_le_bytes([bytes[10], bytes[11]]) as usize;
    let mut ids = Vec::new();
    while pos < bytes.len() && bytes[pos] == 1 {
        ids.push(KeyId::from_slice(&bytes[pos + 1..pos + 17]).unwrap());
        pos += 21 + u32::from_le_bytes(bytes[pos + 17..pos + 21].try_into().unwrap()) as usize;
    }
    ids
}

fn stream(ids: &[KeyId]) -> impl Iterator<Item = Result<KeyId>> + '_ {
    ids.iter().copied().map(Ok)
}

fn code_of(e: ServiceError) -> ErrorCode {
    e.into_error().code()
}

/// A world with device A's genuine archive of `n` licenses.
fn backed_up(n: u32) -> (World, Arc<LicenseStore>) {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, n, 0);
    backup(&ra, false).0.unwrap();
    (w, a)
}

#[test]
fn a_key_id_stream_that_is_not_the_archives_is_refused_before_anything_is_recorded() {
    let (w, _a) = backed_up(12);
    let device = DeviceKey::generate();
    let (request, ids) = request_for(&archive_path(&w), &device);
    let before = w.service.audit().unwrap();
    let mut changed = ids.clone();
    changed[5] = KeyId::from_bytes([0xEE; 16]);
    let mut reordered = ids.clone();
    reordered.swap(2, 9);
    let mut longer = ids.clone();
    longer.push(KeyId::from_bytes([0xEF; 16]));
    let junk: Vec<KeyId> = (0..12).map(|_| KeyId::random()).collect();
    for (what, sent, licenses) in [
        ("changed", changed, 12),
        ("shorter", ids[..11].to_vec(), 12),
        ("shorter, count to match", ids[..11].to_vec(), 11),
        ("longer", longer.clone(), 12),
        ("longer, count to match", longer, 13),
        ("reordered", reordered, 12),
        ("every key ID replaced", junk, 12),
        ("empty", Vec::new(), 0),
    ] {
        let request = RestoreRequest { licenses, request_id: writer::random(), ..request.clone() };
        let err = w.service.authorize_restore(&request, &mut stream(&sent)).unwrap_err();
        assert_eq!(code_of(err), ErrorCode::ArchiveCorrupt, "{what}");
        let err = w.service.quota(&request, &mut stream(&sent)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ArchiveCorrupt, "{what} (quota)");
        assert_eq!(w.service.audit().unwrap(), before, "{what}: nothing recorded");
    }
    // The archive's own stream is granted, with exactly its licenses placed.
    w.service.authorize_restore(&request, &mut stream(&ids)).unwrap();
    let after = w.service.audit().unwrap();
    assert_eq!((after.pending, after.licenses, after.placements), (1, 12, 24));
}

#[test]
fn a_forged_archive_with_someone_elses_key_ids_touches_only_the_forgers_account() {
    let s = Accounts::new(ServicePolicy::default());
    // Alice backs up 8 licenses from her device.
    let (alice_a, alice_ra) = s.device("alice-a", "alice", "alice-stick");
    fill(&alice_a, 8, 0);
    backup(&alice_ra, false).0.unwrap();
    let alice_ids: Vec<KeyId> = alice_a.list_licenses().unwrap().iter().map(|l| l.key_id).collect();

    // Mallory's modified client makes a genuine archive on his own device whose records carry
    // Alice's key IDs (he has no content keys: junk), and restores it onto two fresh stores.
    let mallory = DeviceKey::generate();
    let records: Vec<Record> = alice_ids.iter().map(|k| Record::license(*k.as_bytes(), b"junk", None)).collect();
    let forged = writer::v2_archive(&s.authority.public_key(), &mallory, &records);
    s.folder("mallory-stick");
    std::fs::write(s.archive("mallory-stick"), &forged).unwrap();
    for name in ["m1", "m2", "m3"] {
        let (store, r) = s.device(name, "mallory", "mallory-stick");
        restore(&r, RestoreFlags::default()).0.unwrap();
        assert_eq!(store.license_count().unwrap(), 8);
    }
    let (_, m4) = s.device("m4", "mallory", "mallory-stick");
    assert_eq!(restore(&m4, RestoreFlags::default()).0.unwrap_err().code(), ErrorCode::RestoreLimitExceeded);

    // Alice's quota is untouched: her archive still has three restores left.
    let (alice_b, alice_rb) = s.device("alice-b", "alice", "alice-stick");
    let q = alice_rb.restore_quota().unwrap();
    assert_eq!((q.restores_remaining, q.allowed), (3, true));
    restore(&alice_rb, RestoreFlags::default()).0.unwrap();
    assert_eq!(alice_b.license_count().unwrap(), 8);
    let alice = s.authority.audit("alice").unwrap();
    assert_eq!((alice.confirmed, alice.placements, alice.devices), (1, 16, 1), "{alice:?}");

    // Mallory restoring Alice's genuine archive (a copy of her stick) is refused, and it
    // records nothing in either account.
    let before = (s.authority.audit("alice").unwrap(), s.authority.audit("mallory").unwrap());
    let (m5, rm5) = s.device("m5", "mallory", "alice-stick");
    assert_eq!(rm5.restore_quota().unwrap_err().code(), ErrorCode::ForeignDevice);
    let (res, rec) = restore(&rm5, RestoreFlags::default());
    assert_eq!(res.unwrap_err().code(), ErrorCode::ForeignDevice);
    assert_eq!(rec.kinds(), ["connecting", "disconnecting", "refused", "end"]);
    assert_eq!(m5.license_count().unwrap(), 0);
    assert_eq!((s.authority.audit("alice").unwrap(), s.authority.audit("mallory").unwrap()), before);
}

#[test]
fn records_beyond_the_librarys_limits_sealed_by_a_modified_client_restore_nothing() {
    // A modified client seals, on its own device, records that are well formed but that the
    // library refuses from an application (add_license, set_catalog_entry): a restore of them
    // is ARCHIVE_CORRUPT, the store stays empty and the reservation is released.
    let s = Accounts::new(ServicePolicy::default());
    let expiring_at = |at: i64| {
        let mut p = writer::license_plaintext([7; 16], b"k", None);
        // The expiry follows the encoding byte, key ID, key length, key, rights and its flag.
        p[1 + 16 + 2 + 1 + 1 + 1..][..8].copy_from_slice(&at.to_le_bytes());
        p
    };
    let long_title = "t".repeat(4097);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("a 2,000-byte content key", writer::license_plaintext([7; 16], &[1; 2000], None), "content_key"),
        ("an empty content key", writer::license_plaintext([7; 16], b"", None), "content_key"),
        ("a title with a NUL", writer::license_plaintext([7; 16], b"k", Some("a\0b")), "NUL"),
        ("a 4,097-byte title", writer::license_plaintext([7; 16], b"k", Some(&long_title)), "title"),
        ("an expiry past 2^53 seconds", expiring_at(1 << 60), "expires_at"),
    ];
    let mallory = DeviceKey::generate();
    for (i, (what, plaintext, named)) in cases.into_iter().enumerate() {
        let ok = Record::license([6; 16], b"a good key", Some("fine"));
        let bad = Record { kind: 1, key_id: [7; 16], plaintext };
        let forged = writer::v2_archive(&s.authority.public_key(), &mallory, &[ok, bad]);
        let folder = format!("stick-{i}");
        s.folder(&folder);
        std::fs::write(s.archive(&folder), &forged).unwrap();
        let (store, r) = s.device(&format!("d{i}"), "mallory", &folder);
        let (res, rec) = restore(&r, RestoreFlags::default());
        let err = res.expect_err(what);
        assert_eq!(err.code(), ErrorCode::ArchiveCorrupt, "{what}: {err}");
        assert!(err.message().contains(named), "{what}: the message names {named}: {err}");
        assert_eq!(rec.kinds().last(), Some(&"end"), "{what}");
        assert_eq!(store.license_count().unwrap(), 0, "{what}: nothing restored");
        store.verify().unwrap();
        println!("{what}: {err}");
    }
    let audit = s.authority.audit("mallory").unwrap();
    assert_eq!((audit.pending, audit.confirmed, audit.placements), (0, 0, 0), "no quota spent: {audit:?}");
}

#[test]
fn an_archive_naming_another_device_is_refused() {
    let s = Accounts::new(ServicePolicy::default());
    let (alice_a, alice_ra) = s.device("alice-a", "alice", "stick");
    fill(&alice_a, 4, 0);
    backup(&alice_ra, false).0.unwrap();
    let genuine = std::fs::read(s.archive("stick")).unwrap();
    let alice_header = archive::read_header(&mut genuine.as_slice()).unwrap();
    let alice_key = alice_header.origin_public_key.unwrap();
    let service = s.authority.public_key();
    let mallory = DeviceKey::generate();
    let records: Vec<Record> =
        frame_key_ids(&genuine).iter().map(|k| Record::license(*k.as_bytes(), b"junk", None)).collect();
    let (archive_id, data_key) = (writer::random(), writer::random());
    let body = writer::seal_all(&archive_id, &data_key, &records, true);
    let c = writer::commitment_of(&body);
    let device = DeviceKey::generate();
    let before = s.authority.audit("alice").unwrap();
    for (what, origin_key, origin_id) in [
        // Alice's key and ID on a header sealed with Mallory's key: only Alice's key opens it.
        ("Alice's key, sealed by Mallory", alice_key, alice_header.origin_device),
        // Mallory's key with Alice's device ID: the ID is not the key's fingerprint.
        ("Mallory's key, Alice's ID", mallory.public, alice_header.origin_device),
    ] {
        let header = writer::v2_header(&service, &mallory, &origin_key, &origin_id, &archive_id, &data_key, &c);
        let mut bytes = header.clone();
        bytes.extend_from_slice(&body);
        // The service refuses it whoever sends it ...
        let auth: Vec<u8> = header[..184].to_vec();
        let wrapped = WrappedKey { enc: header[184..216].to_vec(), ciphertext: header[216..264].to_vec() };
        let request = RestoreRequest {
            request_id: writer::random(),
            header: auth,
            wrapped_key: wrapped,
            device_id: device.id(),
            device_public_key: device.public,
            licenses: 4,
            replaces: None,
        };
        let ids = frame_key_ids(&bytes);
        for account in ["alice", "mallory"] {
            let err = s.authority.authorize_restore(account, &request, &mut stream(&ids)).unwrap_err();
            assert_eq!(code_of(err), ErrorCode::ArchiveCorrupt, "{what} ({account})");
        }
        // ... and a device refuses it before asking, when the ID is not the key's.
        std::fs::write(s.archive("stick"), &bytes).unwrap();
        let (_, r) = s.device("victim", "alice", "stick");
        let (res, rec) = restore(&r, RestoreFlags::default());
        assert_eq!(res.unwrap_err().code(), ErrorCode::ArchiveCorrupt, "{what}");
        if origin_key == mallory.public {
            assert_eq!(rec.kinds(), ["end"], "{what}: found by the device");
        }
    }
    assert_eq!(s.authority.audit("alice").unwrap(), before);
    assert_eq!(s.authority.audit("mallory").unwrap(), LedgerAudit::default());

    // Nor can Mallory register Alice's device with his account: the proof is not hers.
    let fp: [u8; 16] = writer::fingerprint(&service);
    let mut aad = fp.to_vec();
    aad.extend_from_slice(&alice_header.origin_device);
    aad.extend_from_slice(&alice_key);
    let proof = writer::hpke_seal(&service, Some(&mallory), b"license-backup/v2/register-device", &aad, &[]);
    let registration = DeviceRegistration {
        device_id: alice_header.origin_device,
        public_key: alice_key,
        proof: WrappedKey { enc: proof[..32].to_vec(), ciphertext: proof[32..].to_vec() },
    };
    assert_eq!(s.authority.register_device("mallory", &registration).unwrap_err().code(), ErrorCode::WrongKey);
    // A genuine registration of a device already in another account is refused too.
    let mut aad = fp.to_vec();
    aad.extend_from_slice(&mallory.id());
    aad.extend_from_slice(&mallory.public);
    let proof = writer::hpke_seal(&service, Some(&mallory), b"license-backup/v2/register-device", &aad, &[]);
    let registration = DeviceRegistration {
        device_id: mallory.id(),
        public_key: mallory.public,
        proof: WrappedKey { enc: proof[..32].to_vec(), ciphertext: proof[32..].to_vec() },
    };
    s.authority.register_device("mallory", &registration).unwrap();
    s.authority.register_device("mallory", &registration).unwrap();
    assert_eq!(s.authority.register_device("alice", &registration).unwrap_err().code(), ErrorCode::ForeignDevice);
}

/// A registration as a device makes it: `key` proves it holds its private key, to `service`,
/// for the ID and public key named.
fn registration(service: &[u8; 32], key: &DeviceKey, device_id: [u8; 16], public_key: [u8; 32]) -> DeviceRegistration {
    let mut aad = writer::fingerprint(service).to_vec();
    aad.extend_from_slice(&device_id);
    aad.extend_from_slice(&public_key);
    let proof = writer::hpke_seal(service, Some(key), b"license-backup/v2/register-device", &aad, &[]);
    DeviceRegistration {
        device_id,
        public_key,
        proof: WrappedKey { enc: proof[..32].to_vec(), ciphertext: proof[32..].to_vec() },
    }
}

/// Registrations a stranger could send: an ID that is not its key's fingerprint, a key of small
/// order, a genuine proof made for another service, a proof replayed for another key. Each is
/// refused and records no device; the genuine one registers.
#[test]
fn forged_and_replayed_registrations_are_refused_and_record_nothing() {
    let s = Accounts::new(ServicePolicy::default());
    let service = s.authority.public_key();
    let other = Accounts::new(ServicePolicy::default());
    let device = DeviceKey::generate();
    let stranger = DeviceKey::generate();
    let small_order = [0u8; 32];
    let for_other_service = registration(&other.authority.public_key(), &device, device.id(), device.public);
    let cases = [
        (
            "an ID not its key's",
            registration(&service, &device, writer::random(), device.public),
            ErrorCode::InvalidArgument,
        ),
        (
            "a small-order key",
            DeviceRegistration {
                device_id: writer::fingerprint(&small_order),
                public_key: small_order,
                proof: registration(&service, &device, device.id(), device.public).proof,
            },
            ErrorCode::InvalidArgument,
        ),
        ("a proof made for another service", for_other_service.clone(), ErrorCode::WrongKey),
        (
            "a genuine proof replayed for another key",
            DeviceRegistration {
                device_id: stranger.id(),
                public_key: stranger.public,
                proof: registration(&service, &device, device.id(), device.public).proof,
            },
            ErrorCode::WrongKey,
        ),
        (
            "a proof made by another key",
            registration(&service, &stranger, device.id(), device.public),
            ErrorCode::WrongKey,
        ),
    ];
    for (what, r, code) in &cases {
        assert_eq!(s.authority.register_device("alice", r).unwrap_err().code(), *code, "{what}");
        assert_eq!(s.authority.audit("alice").unwrap().devices, 0, "{what}: no device recorded");
    }
    // The proof made for the other service registers there, and the genuine one here.
    other.authority.register_device("alice", &for_other_service).unwrap();
    s.authority.register_device("alice", &registration(&service, &device, device.id(), device.public)).unwrap();
    assert_eq!(s.authority.audit("alice").unwrap().devices, 1);
}

#[test]
fn device_ids_that_do_not_match_their_keys_and_small_order_keys_are_refused() {
    let (w, _a) = backed_up(3);
    let device = DeviceKey::generate();
    let (good, ids) = request_for(&archive_path(&w), &device);
    let before = w.service.audit().unwrap();
    let mut small_order = [[0u8; 32], [0u8; 32], [0u8; 32]];
    small_order[1][0] = 1;
    // An order-8 point (RFC 7748 / cr.yp.to/ecdh.html), and the same with the ignored top bit.
    small_order[2] = [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09,
        0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
    ];
    let mut with_top_bit = small_order[2];
    with_top_bit[31] |= 0x80;
    let mut cases: Vec<(String, RestoreRequest)> = vec![(
        "restoring device ID not its key's".into(),
        RestoreRequest { device_id: writer::random(), ..good.clone() },
    )];
    for key in small_order.iter().chain([&with_top_bit]) {
        cases.push((
            format!("restoring device key {key:02x?}"),
            RestoreRequest { device_id: writer::fingerprint(key), device_public_key: *key, ..good.clone() },
        ));
        // The origin key in the header: the header no longer parses as an attributable one.
        let mut header = good.header.clone();
        header[80..112].copy_from_slice(key);
        header[40..56].copy_from_slice(&writer::fingerprint(key));
        cases.push((format!("origin key {key:02x?}"), RestoreRequest { header, ..good.clone() }));
        cases.push((
            format!("replaced identity {key:02x?}"),
            RestoreRequest {
                replaces: Some(IdentityProof {
                    device_id: writer::fingerprint(key),
                    public_key: *key,
                    proof: WrappedKey { enc: vec![0; 32], ciphertext: vec![0; 16] },
                }),
                ..good.clone()
            },
        ));
    }
    for (what, request) in &cases {
        let err = w.service.authorize_restore(request, &mut stream(&ids)).unwrap_err().into_error();
        assert!(matches!(err.code(), ErrorCode::InvalidArgument | ErrorCode::ArchiveCorrupt), "{what}: {err}");
        assert_eq!(w.service.quota(request, &mut stream(&ids)).unwrap_err().code(), err.code(), "{what} (quota)");
    }
    assert_eq!(w.service.audit().unwrap(), before, "nothing recorded");
}

#[test]
fn a_grant_is_bound_to_its_device_archive_and_request_and_requests_cannot_be_replayed_elsewhere() {
    let (w, a) = backed_up(5);
    let (b, rb) = w.device("b");
    let path = archive_path(&w);
    // B's real restore: its request ID is in its journal only while it runs; take the grant
    // the service gives B's request through a wrapping service.
    let seen: Arc<std::sync::Mutex<Option<(RestoreRequest, RestoreGrant)>>> = Arc::default();
    struct Spy(Arc<EmbeddedService>, Arc<std::sync::Mutex<Option<(RestoreRequest, RestoreGrant)>>>);
    impl LicenseService for Spy {
        fn public_key(&self) -> Result<[u8; 32]> {
            self.0.public_key()
        }
        fn register_device(&self, r: &DeviceRegistration) -> Result<()> {
            self.0.register_device(r)
        }
        fn authorize_restore(
            &self,
            request: &RestoreRequest,
            key_ids: &mut KeyIdStream<'_>,
        ) -> std::result::Result<RestoreGrant, ServiceError> {
            let grant = self.0.authorize_restore(request, key_ids)?;
            *self.1.lock().unwrap() = Some((request.clone(), grant.clone()));
            Ok(grant)
        }
        fn confirm_restore(&self, id: &RequestId) -> Result<Settlement> {
            self.0.confirm_restore(id)
        }
        fn release_restore(&self, id: &RequestId) -> Result<Settlement> {
            self.0.release_restore(id)
        }
        fn quota(&self, request: &RestoreRequest, key_ids: &mut KeyIdStream<'_>) -> Result<Quota> {
            self.0.quota(request, key_ids)
        }
    }
    let spied = create_backup_restorer(Arc::clone(&b), Arc::new(Spy(Arc::clone(&w.service), Arc::clone(&seen))));
    spied.set_property("RestorePath", PropertyValue::String(w.path("backup").display().to_string())).unwrap();
    restore(&spied, RestoreFlags::default()).0.unwrap();
    drop(rb);
    let (request, _grant) = seen.lock().unwrap().clone().unwrap();
    let ids = frame_key_ids(&std::fs::read(&path).unwrap());
    let confirmed = w.service.audit().unwrap();
    assert_eq!((confirmed.confirmed, confirmed.pending), (1, 0));

    // Replaying B's request ID for another device, or another archive, is refused.
    let c = DeviceKey::generate();
    let other_device = RestoreRequest { device_id: c.id(), device_public_key: c.public, ..request.clone() };
    let err = w.service.authorize_restore(&other_device, &mut stream(&ids)).unwrap_err();
    assert_eq!(code_of(err), ErrorCode::InvalidArgument);
    fill_more_licenses(&a, 100..=101);
    let (_, ra) = w.device("a");
    backup(&ra, true).0.unwrap();
    let (newer, newer_ids) = request_for(&path, &c);
    let other_archive = RestoreRequest { request_id: request.request_id, ..newer.clone() };
    let err = w.service.authorize_restore(&other_archive, &mut stream(&newer_ids)).unwrap_err();
    assert_eq!(code_of(err), ErrorCode::InvalidArgument);
    // The same request again (a retry after it was settled) is refused too.
    let err = w.service.authorize_restore(&request, &mut stream(&ids)).unwrap_err();
    assert_eq!(code_of(err), ErrorCode::InvalidArgument);
    assert_eq!(w.service.audit().unwrap(), confirmed, "replays recorded nothing");

    // A pending request retried gets the same reservation (nothing counted twice), and a
    // grant that only its device, for its archive and request, can open.
    let first = w.service.authorize_restore(&newer, &mut stream(&newer_ids)).unwrap();
    let pending = w.service.audit().unwrap();
    let again = w.service.authorize_restore(&newer, &mut stream(&newer_ids)).unwrap();
    assert_eq!(w.service.audit().unwrap(), pending);
    assert_eq!(pending.pending, 1);
    let header = archive::read_header_at(&path).unwrap();
    for grant in [&first, &again] {
        let open = |key: &DeviceKey, archive_id: &[u8; 16], device: &[u8; 16], request_id: &RequestId| {
            let mut aad = archive_id.to_vec();
            aad.extend_from_slice(device);
            aad.extend_from_slice(request_id);
            key_open(key, &grant.wrapped_key, &aad)
        };
        assert!(open(&c, &header.archive_id, &c.id(), &newer.request_id), "the device opens its grant");
        let stranger = DeviceKey::generate();
        assert!(!open(&stranger, &header.archive_id, &c.id(), &newer.request_id), "another device cannot");
        assert!(!open(&c, &writer::random(), &c.id(), &newer.request_id), "not for another archive");
        assert!(!open(&c, &header.archive_id, &c.id(), &writer::random()), "not for another request");
    }
    assert_eq!(w.service.release_restore(&newer.request_id).unwrap(), Settlement::Released);
}

/// Whether `key` opens a grant with this associated data.
fn key_open(key: &DeviceKey, grant: &WrappedKey, aad: &[u8]) -> bool {
    writer::hpke_open(key, &grant.enc, &grant.ciphertext, b"license-backup/v2/restore-grant", aad).is_some()
}

fn fill_more_licenses(store: &LicenseStore, range: std::ops::RangeInclusive<u32>) {
    for i in range {
        store
            .add_license(
                &NewLicense {
                    key_id: key_id(i),
                    content_key: content_key(i),
                    rights: Rights::default(),
                    issuer: "https://issuer.example".into(),
                    issued_at: 1,
                },
                ConflictPolicy::Keep,
            )
            .unwrap();
    }
}

#[test]
fn the_quota_query_through_the_wrong_service_is_wrong_key_and_records_nothing() {
    let (w, _a) = backed_up(3);
    let other = Arc::new(EmbeddedService::open(w.path("other.db")).unwrap());
    let b = Arc::new(LicenseStore::open(w.path("b.db")).unwrap());
    let rb = create_backup_restorer(Arc::clone(&b), other.clone());
    rb.set_property("RestorePath", PropertyValue::String(w.path("backup").display().to_string())).unwrap();
    assert_eq!(rb.restore_quota().unwrap_err().code(), ErrorCode::WrongKey);
    assert_eq!(
        rb.restore_quota_with(RestoreFlags { individualize: true, ..Default::default() }).unwrap_err().code(),
        ErrorCode::WrongKey
    );
    let (res, rec) = restore(&rb, RestoreFlags::default());
    assert_eq!(res.unwrap_err().code(), ErrorCode::WrongKey);
    assert_eq!(rec.kinds(), ["connecting", "disconnecting", "end"]);
    assert_eq!(other.audit().unwrap(), LedgerAudit::default());
    assert_eq!(w.service.audit().unwrap().confirmed + w.service.audit().unwrap().pending, 0);
}

#[test]
fn a_succession_proof_must_come_from_the_identity_it_replaces() {
    let (w, _a) = backed_up(3);
    let (b, rb) = w.device("b");
    restore(&rb, RestoreFlags::default()).0.unwrap();
    // B's public key, as anyone who saw one of B's archives knows it.
    rb.set_property("BackupPath", PropertyValue::String(w.folder("b-stick").display().to_string())).unwrap();
    backup(&rb, false).0.unwrap();
    let b_header = archive::read_header_at(&w.path("b-stick").join(archive::ARCHIVE_FILE_NAME)).unwrap();
    let b_id = hex16(&b.device_id().unwrap());
    assert_eq!(b_header.origin_device, b_id);
    // A newcomer claims to replace B (which holds every license, so the restore would be free)
    // with a proof made by someone else's key.
    let path = archive_path(&w);
    let newcomer = DeviceKey::generate();
    let (request, ids) = request_for(&path, &newcomer);
    let header = archive::read_header_at(&path).unwrap();
    let mut aad = request.request_id.to_vec();
    aad.extend_from_slice(&header.archive_id);
    aad.extend_from_slice(&newcomer.id());
    aad.extend_from_slice(&b_id);
    let service = w.service.public_key().unwrap();
    let proof = writer::hpke_seal(&service, Some(&newcomer), b"license-backup/v2/replace-identity", &aad, &[]);
    let forged = RestoreRequest {
        replaces: Some(IdentityProof {
            device_id: b_id,
            public_key: b_header.origin_public_key.unwrap(),
            proof: WrappedKey { enc: proof[..32].to_vec(), ciphertext: proof[32..].to_vec() },
        }),
        ..request
    };
    let before = w.service.audit().unwrap();
    let err = w.service.authorize_restore(&forged, &mut stream(&ids)).unwrap_err();
    assert_eq!(code_of(err), ErrorCode::WrongKey);
    assert_eq!(w.service.quota(&forged, &mut stream(&ids)).unwrap_err().code(), ErrorCode::WrongKey);
    assert_eq!(w.service.audit().unwrap(), before);
}

/// A service whose confirm and release fail while `down` is set (an outage after the grant).
struct Flaky {
    inner: Arc<EmbeddedService>,
    down: AtomicBool,
}

impl LicenseService for Flaky {
    fn public_key(&self) -> Result<[u8; 32]> {
        self.inner.public_key()
    }
    fn register_device(&self, r: &DeviceRegistration) -> Result<()> {
        self.inner.register_device(r)
    }
    fn authorize_restore(
        &self,
        request: &RestoreRequest,
        key_ids: &mut KeyIdStream<'_>,
    ) -> std::result::Result<RestoreGrant, ServiceError> {
        self.inner.authorize_restore(request, key_ids)
    }
    fn confirm_restore(&self, id: &RequestId) -> Result<Settlement> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorCode::ServiceUnavailable, "down"));
        }
        self.inner.confirm_restore(id)
    }
    fn release_restore(&self, id: &RequestId) -> Result<Settlement> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorCode::ServiceUnavailable, "down"));
        }
        self.inner.release_restore(id)
    }
    fn quota(&self, request: &RestoreRequest, key_ids: &mut KeyIdStream<'_>) -> Result<Quota> {
        self.inner.quota(request, key_ids)
    }
}

#[test]
fn reservations_left_by_an_outage_are_settled_at_the_next_open_or_restore() {
    let (w, _a) = backed_up(6);
    let flaky = Arc::new(Flaky { inner: Arc::clone(&w.service), down: AtomicBool::new(false) });
    let folder = PropertyValue::String(w.path("backup").display().to_string());
    let b = Arc::new(LicenseStore::open(w.path("b.db")).unwrap());
    let rb = create_backup_restorer(Arc::clone(&b), flaky.clone());
    rb.set_property("RestorePath", folder.clone()).unwrap();

    // The service goes down after granting: the restore lands, its confirm cannot be sent.
    flaky.down.store(true, Ordering::SeqCst);
    restore(&rb, RestoreFlags::default()).0.unwrap();
    assert_eq!(b.license_count().unwrap(), 6);
    assert_eq!(w.service.audit().unwrap().pending, 1, "still a reservation");
    assert_eq!(rb.settle_reservations().unwrap_err().code(), ErrorCode::ServiceUnavailable);
    flaky.down.store(false, Ordering::SeqCst);
    // A new restorer (the next open) confirms it.
    let rb = create_backup_restorer(Arc::clone(&b), flaky.clone());
    rb.set_property("RestorePath", folder.clone()).unwrap();
    let audit = w.service.audit().unwrap();
    assert_eq!((audit.pending, audit.confirmed), (0, 1), "{audit:?}");
    assert_eq!(rb.settle_reservations().unwrap(), 0);

    // A cancelled restore whose release cannot be sent: released before the next restore.
    let c = Arc::new(LicenseStore::open(w.path("c.db")).unwrap());
    let rc = Arc::new(create_backup_restorer(Arc::clone(&c), flaky.clone()));
    rc.set_property("RestorePath", folder).unwrap();
    flaky.down.store(true, Ordering::SeqCst);
    let weak = Arc::downgrade(&rc);
    let handle = rc
        .restore_licenses(
            RestoreFlags::default(),
            Arc::new(move |e: &StatusEvent| {
                if matches!(e, StatusEvent::Begin { .. }) {
                    weak.upgrade().unwrap().cancel_license_restore();
                }
                Ok(())
            }),
        )
        .unwrap();
    assert_eq!(handle.wait().unwrap_err().code(), ErrorCode::Cancelled);
    assert_eq!(c.license_count().unwrap(), 0);
    assert_eq!(w.service.audit().unwrap().pending, 1, "the release could not be sent");
    flaky.down.store(false, Ordering::SeqCst);
    // The next restore settles it first (released: nothing was applied), then restores.
    restore(&rc, RestoreFlags::default()).0.unwrap();
    let audit = w.service.audit().unwrap();
    assert_eq!((audit.pending, audit.confirmed, audit.released), (0, 2, 1), "{audit:?}");
}

#[test]
fn confirm_and_release_are_idempotent_and_final() {
    let (w, _a) = backed_up(2);
    let path = archive_path(&w);
    let grant = |device: &DeviceKey| {
        let (request, ids) = request_for(&path, device);
        w.service.authorize_restore(&request, &mut stream(&ids)).unwrap();
        request.request_id
    };
    let (d1, d2) = (DeviceKey::generate(), DeviceKey::generate());
    let (r1, r2) = (grant(&d1), grant(&d2));
    assert_eq!(w.service.audit().unwrap().pending, 2, "pending reservations count");
    assert_eq!(w.service.confirm_restore(&r1).unwrap(), Settlement::Confirmed);
    assert_eq!(w.service.confirm_restore(&r1).unwrap(), Settlement::Confirmed);
    assert_eq!(w.service.release_restore(&r1).unwrap(), Settlement::Confirmed, "a confirmed restore stays counted");
    assert_eq!(w.service.release_restore(&r2).unwrap(), Settlement::Released);
    assert_eq!(w.service.release_restore(&r2).unwrap(), Settlement::Released);
    assert_eq!(w.service.confirm_restore(&r2).unwrap(), Settlement::Released, "a released restore stays free");
    assert_eq!(w.service.confirm_restore(&writer::random()).unwrap(), Settlement::Unknown);
    assert_eq!(w.service.release_restore(&writer::random()).unwrap(), Settlement::Unknown);
    let audit = w.service.audit().unwrap();
    assert_eq!((audit.pending, audit.confirmed, audit.released, audit.placements), (0, 1, 1, 4), "{audit:?}");
    assert_eq!(w.service.devices_of(&key_id(1)).unwrap().len(), 2);
}

#[test]
fn pending_reservations_count_so_concurrent_restores_cannot_exceed_the_quota() {
    let w = World::new();
    let service = Arc::new(
        EmbeddedService::open_with_policy(
            w.path("tight.db"),
            ServicePolicy { max_devices: 3, ..ServicePolicy::default() },
        )
        .unwrap(),
    );
    let a = Arc::new(LicenseStore::open(w.path("a.db")).unwrap());
    fill(&a, 4, 0);
    let ra = create_backup_restorer(Arc::clone(&a), service.clone());
    ra.set_property("BackupPath", PropertyValue::String(w.folder("backup").display().to_string())).unwrap();
    backup(&ra, false).0.unwrap();
    let path = archive_path(&w);
    let devices: Vec<DeviceKey> = (0..3).map(|_| DeviceKey::generate()).collect();
    let (r0, ids) = request_for(&path, &devices[0]);
    service.authorize_restore(&r0, &mut stream(&ids)).unwrap();
    let (r1, _) = request_for(&path, &devices[1]);
    service.authorize_restore(&r1, &mut stream(&ids)).unwrap();
    // A, and two pending restores: the third new device is refused while they are pending.
    let (r2, _) = request_for(&path, &devices[2]);
    let q = service.quota(&r2, &mut stream(&ids)).unwrap();
    assert_eq!((q.allowed, q.restores_remaining), (false, 0));
    assert_eq!(
        code_of(service.authorize_restore(&r2, &mut stream(&ids)).unwrap_err()),
        ErrorCode::RestoreLimitExceeded
    );
    // Once one is released, its place is free again.
    service.release_restore(&r1.request_id).unwrap();
    assert!(service.quota(&r2, &mut stream(&ids)).unwrap().allowed);
    service.authorize_restore(&r2, &mut stream(&ids)).unwrap();
    service.confirm_restore(&r0.request_id).unwrap();
    service.confirm_restore(&r2.request_id).unwrap();
    for k in &ids {
        assert_eq!(service.devices_of(k).unwrap().len(), 3);
    }
}

#[test]
fn a_reservation_left_pending_past_the_limit_counts_for_good() {
    let w = World::new();
    let service = Arc::new(
        EmbeddedService::open_with_policy(
            w.path("ttl.db"),
            ServicePolicy { reservation_ttl_secs: 0, ..ServicePolicy::default() },
        )
        .unwrap(),
    );
    let a = Arc::new(LicenseStore::open(w.path("a.db")).unwrap());
    fill(&a, 2, 0);
    let ra = create_backup_restorer(Arc::clone(&a), service.clone());
    ra.set_property("BackupPath", PropertyValue::String(w.folder("backup").display().to_string())).unwrap();
    backup(&ra, false).0.unwrap();
    let d = DeviceKey::generate();
    let (r, ids) = request_for(&archive_path(&w), &d);
    service.authorize_restore(&r, &mut stream(&ids)).unwrap();
    assert_eq!(service.release_restore(&r.request_id).unwrap(), Settlement::Confirmed);
    let audit = service.audit().unwrap();
    assert_eq!((audit.pending, audit.expired, audit.released, audit.placements), (0, 1, 0, 4), "{audit:?}");
}

#[test]
fn a_restore_whose_reservation_another_process_released_applies_nothing() {
    let (w, _a) = backed_up(4);
    let (b, rb) = w.device("b");
    let store_path = b.path().to_path_buf();
    let rec = Recorder::default();
    let events = Arc::clone(&rec.0);
    // At BEGIN, another process settling this store claims the restore's journal entry.
    let handle = rb
        .restore_licenses(
            RestoreFlags::default(),
            Arc::new(move |e: &StatusEvent| {
                events.lock().unwrap().push(e.clone());
                if matches!(e, StatusEvent::Begin { .. }) {
                    let conn = rusqlite_open(&store_path);
                    conn.execute("UPDATE restore_journal SET state = 'releasing'", []).unwrap();
                }
                Ok(())
            }),
        )
        .unwrap();
    assert_eq!(handle.wait().unwrap_err().code(), ErrorCode::Busy);
    assert_eq!(b.license_count().unwrap(), 0);
    let audit = w.service.audit().unwrap();
    assert_eq!((audit.pending, audit.released, audit.placements), (0, 1, 0), "{audit:?}");
}

/// The store file through SQLite directly, as another process would use it.
fn rusqlite_open(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    conn
}

#[test]
fn a_quota_query_from_a_callback_does_not_settle_the_running_restore() {
    let (w, _a) = backed_up(4);
    let (b, rb) = w.device("b");
    let rb = Arc::new(rb);
    let weak = Arc::downgrade(&rb);
    let quotas: Arc<std::sync::Mutex<Vec<Quota>>> = Arc::default();
    let seen = Arc::clone(&quotas);
    let handle = rb
        .restore_licenses(
            RestoreFlags::default(),
            Arc::new(move |e: &StatusEvent| {
                if matches!(e, StatusEvent::Begin { .. }) {
                    seen.lock().unwrap().push(weak.upgrade().unwrap().restore_quota().unwrap());
                }
                Ok(())
            }),
        )
        .unwrap();
    handle.wait().unwrap();
    assert_eq!(b.license_count().unwrap(), 4);
    let q = quotas.lock().unwrap()[0].clone();
    assert!(q.device_already_counted, "the running restore's reservation counts this device: {q:?}");
    let audit = w.service.audit().unwrap();
    assert_eq!((audit.pending, audit.confirmed, audit.released), (0, 1, 0), "{audit:?}");
}

/// The service checks and places an archive's licenses a chunk of 1,024 at a time: licenses it
/// has not seen in one statement, licenses restored before (on other devices) read a chunk at a
/// time and rewritten. Restores of archives of several chunks, onto devices that have none, some
/// or all of their licenses, count every license once per device, and the quota reads the same.
#[test]
fn restores_of_archives_of_many_chunks_count_every_license_once_per_device() {
    let dir = tempfile::tempdir().unwrap();
    let policy = ServicePolicy::with_overrides(Some(4), None);
    let service = Arc::new(EmbeddedService::open_with_policy(dir.path().join("service.db"), policy).unwrap());
    let w = World { dir, service };
    let (a, ra) = w.device("a");
    fill(&a, 2500, 0);
    backup(&ra, true).0.unwrap();
    for name in ["b", "c"] {
        let (store, r) = w.device(name);
        assert_eq!(restore(&r, RestoreFlags::default()).0.unwrap().licenses, 2500, "{name}");
        assert_eq!(store.verify().unwrap(), 2500);
    }
    let audit = w.service.audit().unwrap();
    assert_eq!((audit.licenses, audit.placements, audit.confirmed), (2500, 7500, 2), "{audit:?}");

    // 1,500 more on A, spread among the others' key IDs: chunks of known and new licenses.
    a.add_licenses(&plain_licenses(2501..=4000), ConflictPolicy::Keep).unwrap();
    backup(&ra, true).0.unwrap();
    let (d, rd) = w.device("d");
    assert_eq!(restore(&rd, RestoreFlags::default()).0.unwrap().licenses, 4000);
    assert_eq!(d.verify().unwrap(), 4000);
    let audit = w.service.audit().unwrap();
    assert_eq!((audit.licenses, audit.placements), (4000, 2500 * 4 + 1500 * 2), "{audit:?}");

    // The first 2,500 live on the maximum of 4 devices: a fifth is refused, nothing recorded.
    let (e, re) = w.device("e");
    let quota = re.restore_quota().unwrap();
    assert_eq!((quota.licenses, quota.restores_remaining, quota.allowed), (4000, 0, false), "{quota:?}");
    let (res, _) = restore(&re, RestoreFlags::default());
    let err = res.unwrap_err();
    assert_eq!(err.code(), ErrorCode::RestoreLimitExceeded);
    assert!(err.message().starts_with("2500 of 4000 licenses"), "{}", err.message());
    assert_eq!(e.license_count().unwrap(), 0);
    assert_eq!(w.service.audit().unwrap().placements, 13_000);

    // B already counts for the first 2,500: it gets the other 1,500, placed once more each.
    let (b, rb) = w.device("b");
    let quota = rb.restore_quota().unwrap();
    assert!(quota.allowed && !quota.device_already_counted, "{quota:?}");
    let summary = restore(&rb, RestoreFlags::default()).0.unwrap();
    assert_eq!((summary.licenses, summary.skipped), (1500, 2500));
    assert_eq!(b.verify().unwrap(), 4000);
    let audit = w.service.audit().unwrap();
    assert_eq!((audit.licenses, audit.placements), (4000, 14_500), "{audit:?}");
    // Now B counts for all of them: restoring onto it again changes no placement.
    assert!(rb.restore_quota().unwrap().device_already_counted);
    restore(&rb, RestoreFlags::default()).0.unwrap();
    assert_eq!(w.service.audit().unwrap().placements, 14_500);
}
