//! The License Management Service over the network as an attacker tests it: a real
//! `license-backup-service` (TLS on 127.0.0.1) with two accounts, `default` (Alice) and
//! `mallory`, each reached through `RemoteService` with its own token. A modified client can
//! send any request; `RemoteService` sends exactly the request and key IDs it is given, so the
//! tests hand it forged archives, junk key IDs, replayed request IDs, another account's
//! devices and reservations. After each refusal the ledger is audited through the server's
//! admin command: nothing changed.
//!
//! The same rules hold for the embedded service (`core/tests/quota.rs`): the server runs the
//! library's own logic.

#[path = "../../core/tests/common/server.rs"]
mod server;
#[path = "../../fuzz/writer.rs"]
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use license_backup::archive::{self, ArchiveHeader};
use license_backup::*;
use server::{ServerOptions, TestServer};
use writer::{DeviceKey, Record};

const MALLORY_TOKEN: &str = "mallory-token-0123456789";

/// A server with Alice's account (`default`) and Mallory's, a folder for stores and sticks.
struct Net {
    server: TestServer,
    dir: tempfile::TempDir,
    alice: Arc<RemoteService>,
    mallory: Arc<RemoteService>,
}

fn net(options: ServerOptions) -> Net {
    let server =
        TestServer::start(&ServerOptions { extra_tokens: vec![(MALLORY_TOKEN.into(), "mallory".into())], ..options });
    let alice = Arc::new(server.client());
    let mallory = Arc::new(
        RemoteService::new(&server.url, RemoteOptions { token: Some(MALLORY_TOKEN.into()), ..server.options() })
            .unwrap(),
    );
    Net { server, dir: tempfile::tempdir().unwrap(), alice, mallory }
}

impl Net {
    fn stick(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn archive(&self, stick: &str) -> PathBuf {
        self.stick(stick).join(archive::ARCHIVE_FILE_NAME)
    }

    /// A device (a store) using `service`, backing up to and restoring from `stick`.
    fn device(&self, name: &str, service: &Arc<RemoteService>, stick: &str) -> (Arc<LicenseStore>, BackupRestorer) {
        let store = Arc::new(LicenseStore::open(self.dir.path().join(format!("{name}.db"))).unwrap());
        let service: Arc<dyn LicenseService> = service.clone();
        let restorer = create_backup_restorer(Arc::clone(&store), service);
        let folder = PropertyValue::String(self.stick(stick).display().to_string());
        restorer.set_property("BackupPath", folder.clone()).unwrap();
        restorer.set_property("RestorePath", folder).unwrap();
        (store, restorer)
    }

    fn audits(&self) -> (LedgerAudit, LedgerAudit) {
        (self.server.audit(), self.server.audit_account("mallory"))
    }
}

fn fill(store: &LicenseStore, n: u32) {
    fill_from(store, 0, n)
}

fn fill_from(store: &LicenseStore, first: u32, n: u32) {
    let licenses: Vec<NewLicense> = (first..first + n)
        .map(|i| NewLicense {
            key_id: KeyId::from_bytes({
                let mut b = [0x5a; 16];
                b[12..].copy_from_slice(&i.to_be_bytes());
                b
            }),
            content_key: format!("ck-{i}").into_bytes(),
            rights: Rights::default(),
            issuer: "https://issuer.example".into(),
            issued_at: 1_700_000_000,
        })
        .collect();
    store.add_licenses(&licenses, ConflictPolicy::Keep).unwrap();
}

fn run(start: impl FnOnce(Arc<dyn StatusCallback>) -> Result<OperationHandle>) -> (Vec<String>, Result<Summary>) {
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let e = Arc::clone(&events);
    let cb: Arc<dyn StatusCallback> = Arc::new(move |ev: &StatusEvent| {
        e.lock().unwrap().push(ev.kind().name().to_string());
        Ok(())
    });
    let result = start(cb).unwrap().wait();
    let names = events.lock().unwrap().clone();
    (names, result)
}

fn backup(r: &BackupRestorer) {
    run(|cb| r.backup_licenses(BackupFlags { overwrite: true }, cb)).1.unwrap();
}

fn restore(r: &BackupRestorer) -> (Vec<String>, Result<Summary>) {
    run(|cb| r.restore_licenses(RestoreFlags::default(), cb))
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

/// A restore request for the archive at `path` onto `device`, and the archive's key IDs.
fn request_for(path: &Path, device: &DeviceKey) -> (RestoreRequest, Vec<KeyId>) {
    let bytes = std::fs::read(path).unwrap();
    let header: ArchiveHeader = archive::read_header(&mut bytes.as_slice()).unwrap();
    let ids = frame_key_ids(&bytes);
    let request = RestoreRequest {
        request_id: writer::random(),
        header: header.authenticated.clone(),
        wrapped_key: header.wrapped_key.clone(),
        device_id: device.id(),
        device_public_key: device.public,
        licenses: ids.len() as u64,
        replaces: None,
    };
    (request, ids)
}

fn stream(ids: &[KeyId]) -> impl Iterator<Item = Result<KeyId>> + '_ {
    ids.iter().copied().map(Ok)
}

fn code_of(e: ServiceError) -> ErrorCode {
    e.into_error().code()
}

/// Whether `key` opens a grant for this archive, device and request.
fn opens(key: &DeviceKey, grant: &RestoreGrant, archive_id: &[u8; 16], device: &[u8; 16], request: &[u8; 16]) -> bool {
    let mut aad = archive_id.to_vec();
    aad.extend_from_slice(device);
    aad.extend_from_slice(request);
    writer::hpke_open(
        key,
        &grant.wrapped_key.enc,
        &grant.wrapped_key.ciphertext,
        b"license-backup/v2/restore-grant",
        &aad,
    )
    .is_some()
}

#[test]
fn key_ids_that_are_not_the_archives_are_refused_before_anything_is_recorded() {
    let n = net(ServerOptions::default());
    let (a, ra) = n.device("a", &n.alice, "stick");
    fill(&a, 12);
    backup(&ra);
    let device = DeviceKey::generate();
    let (request, ids) = request_for(&n.archive("stick"), &device);
    let before = n.audits();
    let mut changed = ids.clone();
    changed[5] = KeyId::from_bytes([0xEE; 16]);
    let mut reordered = ids.clone();
    reordered.swap(2, 9);
    let mut longer = ids.clone();
    longer.push(KeyId::from_bytes([0xEF; 16]));
    let junk: Vec<KeyId> = (0..12).map(|_| KeyId::random()).collect();
    for (what, sent, licenses) in [
        ("one changed", changed, 12),
        ("reordered", reordered, 12),
        ("every key ID replaced by junk", junk, 12),
        ("one fewer, the count to match", ids[..11].to_vec(), 11),
        ("one more, the count to match", longer, 13),
        ("none", Vec::new(), 0),
    ] {
        let request = RestoreRequest { licenses, request_id: writer::random(), ..request.clone() };
        let err = n.alice.authorize_restore(&request, &mut stream(&sent)).unwrap_err();
        assert_eq!(code_of(err), ErrorCode::ArchiveCorrupt, "{what}");
        let err = n.alice.quota(&request, &mut stream(&sent)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ArchiveCorrupt, "{what} (quota)");
        assert_eq!(n.audits(), before, "{what}: nothing recorded");
    }
    // The archive's own stream is granted, with exactly its licenses reserved; released, it
    // counts nothing.
    n.alice.authorize_restore(&request, &mut stream(&ids)).unwrap();
    let after = n.server.audit();
    assert_eq!((after.pending, after.licenses, after.placements), (1, 12, 24), "{after:?}");
    assert_eq!(n.alice.release_restore(&request.request_id).unwrap(), Settlement::Released);
    let released = n.server.audit();
    // Every placement was this reservation's (the origin's too, on licenses the ledger had not
    // seen): none counts now.
    assert_eq!((released.pending, released.released, released.placements), (0, 1, 0), "{released:?}");
}

#[test]
fn a_forged_archive_touches_only_the_forgers_account_and_another_accounts_devices_are_refused() {
    let n = net(ServerOptions::default());
    // Alice backs up 8 licenses from her device.
    let (alice_a, alice_ra) = n.device("alice-a", &n.alice, "alice-stick");
    fill(&alice_a, 8);
    backup(&alice_ra);
    let alice_ids: Vec<KeyId> = alice_a.list_licenses().unwrap().iter().map(|l| l.key_id).collect();
    let service = n.alice.public_key().unwrap();

    // Mallory's modified client makes an archive on a device of his own whose records carry
    // Alice's key IDs (he has no content keys: junk), and restores it onto fresh stores.
    let mallory = DeviceKey::generate();
    let records: Vec<Record> = alice_ids.iter().map(|k| Record::license(*k.as_bytes(), b"junk", None)).collect();
    std::fs::write(n.archive("mallory-stick"), writer::v2_archive(&service, &mallory, &records)).unwrap();
    for name in ["m1", "m2", "m3"] {
        let (store, r) = n.device(name, &n.mallory, "mallory-stick");
        restore(&r).1.unwrap();
        assert_eq!(store.license_count().unwrap(), 8);
    }
    let (_, m4) = n.device("m4", &n.mallory, "mallory-stick");
    assert_eq!(restore(&m4).1.unwrap_err().code(), ErrorCode::RestoreLimitExceeded);

    // Alice's quota is untouched: her archive still has three restores left.
    let (alice_b, alice_rb) = n.device("alice-b", &n.alice, "alice-stick");
    let q = alice_rb.restore_quota().unwrap();
    assert_eq!((q.restores_remaining, q.allowed), (3, true));
    restore(&alice_rb).1.unwrap();
    assert_eq!(alice_b.license_count().unwrap(), 8);
    let alice = n.server.audit();
    assert_eq!((alice.confirmed, alice.placements, alice.devices), (1, 16, 1), "{alice:?}");

    // Mallory restoring Alice's genuine archive (a copy of her stick) is refused as another
    // account's, with the refusal's events, and records nothing in either account.
    let before = n.audits();
    let (m5, rm5) = n.device("m5", &n.mallory, "alice-stick");
    assert_eq!(rm5.restore_quota().unwrap_err().code(), ErrorCode::ForeignDevice);
    let (events, result) = restore(&rm5);
    assert_eq!(result.unwrap_err().code(), ErrorCode::ForeignDevice);
    assert_eq!(events, ["connecting", "disconnecting", "refused", "end"]);
    assert_eq!(m5.license_count().unwrap(), 0);
    assert_eq!(n.audits(), before);

    // An archive that names Alice's device but was sealed by Mallory, or names Mallory's key
    // with Alice's device ID: refused for either account, nothing recorded.
    let genuine = std::fs::read(n.archive("alice-stick")).unwrap();
    let alice_header = archive::read_header(&mut genuine.as_slice()).unwrap();
    let alice_key = alice_header.origin_public_key.unwrap();
    let records: Vec<Record> =
        frame_key_ids(&genuine).iter().map(|k| Record::license(*k.as_bytes(), b"junk", None)).collect();
    let (archive_id, data_key) = (writer::random(), writer::random());
    let body = writer::seal_all(&archive_id, &data_key, &records, true);
    let c = writer::commitment_of(&body);
    let device = DeviceKey::generate();
    for (what, origin_key) in
        [("Alice's key, sealed by Mallory", alice_key), ("Mallory's key, Alice's ID", mallory.public)]
    {
        let header =
            writer::v2_header(&service, &mallory, &origin_key, &alice_header.origin_device, &archive_id, &data_key, &c);
        let request = RestoreRequest {
            request_id: writer::random(),
            header: header[..184].to_vec(),
            wrapped_key: WrappedKey { enc: header[184..216].to_vec(), ciphertext: header[216..264].to_vec() },
            device_id: device.id(),
            device_public_key: device.public,
            licenses: records.len() as u64,
            replaces: None,
        };
        let ids = frame_key_ids(&[header.as_slice(), &body].concat());
        for (who, client) in [("alice", &n.alice), ("mallory", &n.mallory)] {
            let err = client.authorize_restore(&request, &mut stream(&ids)).unwrap_err();
            assert_eq!(code_of(err), ErrorCode::ArchiveCorrupt, "{what} ({who})");
        }
    }
    assert_eq!(n.audits(), before, "forgeries recorded nothing");

    // Nor can Mallory register Alice's device with his account (the proof is not hers), and
    // Alice cannot take Mallory's registered device into hers.
    let fp = writer::fingerprint(&service);
    let registration = |key: &[u8; 32], id: &[u8; 16], prover: &DeviceKey| {
        let aad = [fp.as_slice(), id, key].concat();
        let proof = writer::hpke_seal(&service, Some(prover), b"license-backup/v2/register-device", &aad, &[]);
        DeviceRegistration {
            device_id: *id,
            public_key: *key,
            proof: WrappedKey { enc: proof[..32].to_vec(), ciphertext: proof[32..].to_vec() },
        }
    };
    let stolen = registration(&alice_key, &alice_header.origin_device, &mallory);
    assert_eq!(n.mallory.register_device(&stolen).unwrap_err().code(), ErrorCode::WrongKey);
    let own = registration(&mallory.public, &mallory.id(), &mallory);
    n.mallory.register_device(&own).unwrap();
    n.mallory.register_device(&own).unwrap();
    assert_eq!(n.alice.register_device(&own).unwrap_err().code(), ErrorCode::ForeignDevice);
    let genuine_alice = registration(&alice_key, &alice_header.origin_device, &mallory);
    assert_eq!(n.alice.register_device(&genuine_alice).unwrap_err().code(), ErrorCode::WrongKey);
    assert_eq!(n.server.audit().devices, 1, "Alice's account holds her one device");
}

#[test]
fn request_ids_cannot_be_replayed_and_another_accounts_reservation_cannot_be_settled() {
    let n = net(ServerOptions::default());
    let (a, ra) = n.device("a", &n.alice, "stick");
    fill(&a, 5);
    backup(&ra);
    let path = n.archive("stick");
    let c = DeviceKey::generate();
    let (request, ids) = request_for(&path, &c);
    let header = archive::read_header_at(&path).unwrap();
    let grant = n.alice.authorize_restore(&request, &mut stream(&ids)).unwrap();
    let pending = n.server.audit();
    assert_eq!((pending.pending, pending.placements), (1, 10));

    // Mallory, with Alice's request ID (it crosses the network): his confirm and release find
    // no reservation of his, and Alice's stays pending.
    assert_eq!(n.mallory.confirm_restore(&request.request_id).unwrap(), Settlement::Unknown);
    assert_eq!(n.mallory.release_restore(&request.request_id).unwrap(), Settlement::Unknown);
    assert_eq!(n.server.audit(), pending);
    // Nor can he take her request over: the archive is another account's.
    let err = n.mallory.authorize_restore(&request, &mut stream(&ids)).unwrap_err();
    assert_eq!(code_of(err), ErrorCode::ForeignDevice);
    assert_eq!(n.server.audit_account("mallory"), LedgerAudit::default());

    // Alice's own request ID replayed for another device or another archive: refused.
    let d = DeviceKey::generate();
    let other_device = RestoreRequest { device_id: d.id(), device_public_key: d.public, ..request.clone() };
    assert_eq!(
        code_of(n.alice.authorize_restore(&other_device, &mut stream(&ids)).unwrap_err()),
        ErrorCode::InvalidArgument
    );
    fill_from(&a, 100, 2);
    let (_, ra2) = n.device("a", &n.alice, "stick2");
    backup(&ra2);
    let (newer, newer_ids) = request_for(&n.archive("stick2"), &c);
    let other_archive = RestoreRequest { request_id: request.request_id, ..newer.clone() };
    let err = n.alice.authorize_restore(&other_archive, &mut stream(&newer_ids)).unwrap_err();
    assert_eq!(code_of(err), ErrorCode::InvalidArgument);
    assert_eq!(n.server.audit(), pending, "replays recorded nothing");

    // The same request retried: the same reservation, and a grant only its device can open,
    // for its archive and request.
    let again = n.alice.authorize_restore(&request, &mut stream(&ids)).unwrap();
    assert_eq!(n.server.audit(), pending);
    for g in [&grant, &again] {
        assert!(opens(&c, g, &header.archive_id, &c.id(), &request.request_id), "the device opens its grant");
        assert!(!opens(&d, g, &header.archive_id, &c.id(), &request.request_id), "another device cannot");
        assert!(!opens(&c, g, &writer::random(), &c.id(), &request.request_id), "not for another archive");
        assert!(!opens(&c, g, &header.archive_id, &c.id(), &writer::random()), "not for another request");
    }

    // Settled, it is final: confirm twice, a release after it, a retry after it.
    assert_eq!(n.alice.confirm_restore(&request.request_id).unwrap(), Settlement::Confirmed);
    assert_eq!(n.alice.confirm_restore(&request.request_id).unwrap(), Settlement::Confirmed);
    assert_eq!(n.alice.release_restore(&request.request_id).unwrap(), Settlement::Confirmed);
    assert_eq!(
        code_of(n.alice.authorize_restore(&request, &mut stream(&ids)).unwrap_err()),
        ErrorCode::InvalidArgument
    );
    let confirmed = n.server.audit();
    assert_eq!((confirmed.pending, confirmed.confirmed, confirmed.placements), (0, 1, 10));
    // A request ID the service never saw: nothing to settle.
    assert_eq!(n.alice.release_restore(&writer::random()).unwrap(), Settlement::Unknown);
    assert_eq!(n.server.audit(), confirmed);
}

#[test]
fn a_rotated_key_keeps_old_archives_restorable_and_the_keys_are_sealed_by_the_key_file() {
    let mut n = net(ServerOptions::default());
    let (a, ra) = n.device("a", &n.alice, "old");
    fill(&a, 6);
    backup(&ra);
    let old_key = n.alice.public_key().unwrap();
    // Rotate: the server's admin command, then a restart.
    n.server.stop();
    let rotated = n.server.admin(&["rotate-key"]);
    n.server.restart();
    let client = Arc::new(n.server.client());
    let keys = client.keys().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys[0].current && !keys[1].current);
    assert_eq!(keys[1].public_key, old_key);
    assert_eq!(rotated["current"].as_str().unwrap(), license_backup::protocol::hex(&keys[0].fingerprint));
    // The archive made for the old key still restores; new backups wrap to the new key.
    let (b, rb) = n.device("b", &client, "old");
    restore(&rb).1.unwrap();
    assert_eq!(b.license_count().unwrap(), 6);
    let (_, ra) = n.device("a", &client, "new");
    backup(&ra);
    let header = archive::read_header_at(&n.archive("new")).unwrap();
    assert_eq!(header.service_key_fingerprint, keys[0].fingerprint);
    let (c, rc) = n.device("c", &client, "new");
    restore(&rc).1.unwrap();
    assert_eq!(c.license_count().unwrap(), 6);
    let audit = n.server.audit();
    assert_eq!((audit.confirmed, audit.devices), (2, 1), "{audit:?}");

    // The ledger holds the keys only sealed: with another key file the server does not start,
    // and the ledger is left as it was.
    n.server.stop();
    let ledger = std::fs::read(n.server.ledger_path()).unwrap();
    let kek = n.server.made.config.parent().unwrap().join("keys/ledger.kek");
    let genuine_kek = std::fs::read(&kek).unwrap();
    std::fs::write(&kek, format!("{}\n", "ab".repeat(32))).unwrap();
    let out = std::process::Command::new(server::service_binary())
        .args(["serve", "--config"])
        .arg(&n.server.made.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PROTECTOR_MISMATCH"), "{stderr}");
    assert_eq!(std::fs::read(n.server.ledger_path()).unwrap(), ledger, "the ledger is unchanged");
    std::fs::write(&kek, genuine_kek).unwrap();
    n.server.restart();
    assert_eq!(n.server.client().keys().unwrap().len(), 2);
}
