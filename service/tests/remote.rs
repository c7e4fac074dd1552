//! The client (`RemoteService`) against a real `license-backup-service` process on 127.0.0.1:
//! backups and restores through it, trust (CA, pins, a certificate for another name), tokens,
//! service-key pinning and rotation.

#[path = "../../core/tests/common/server.rs"]
mod server;

use std::sync::{Arc, Mutex};

use license_backup::*;
use server::{ServerOptions, TestServer};

/// A device: its store and a restorer through `service`, backing up to and restoring from
/// `folder`.
fn device(dir: &std::path::Path, name: &str, service: Arc<dyn LicenseService>) -> (Arc<LicenseStore>, BackupRestorer) {
    let store = Arc::new(LicenseStore::open(dir.join(format!("{name}.db"))).unwrap());
    let restorer = create_backup_restorer(Arc::clone(&store), service);
    let folder = dir.join("backup");
    std::fs::create_dir_all(&folder).unwrap();
    for p in ["BackupPath", "RestorePath"] {
        restorer.set_property(p, PropertyValue::String(folder.display().to_string())).unwrap();
    }
    (store, restorer)
}

fn fill(store: &LicenseStore, n: u32) {
    let licenses: Vec<NewLicense> = (0..n)
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

/// Runs an operation to its end; the events' names and the outcome.
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

fn backup(r: &BackupRestorer) -> Result<Summary> {
    run(|cb| r.backup_licenses(BackupFlags { overwrite: true }, cb)).1
}

fn restore(r: &BackupRestorer) -> (Vec<String>, Result<Summary>) {
    run(|cb| r.restore_licenses(RestoreFlags::default(), cb))
}

fn code<T: std::fmt::Debug>(r: Result<T>) -> ErrorCode {
    r.unwrap_err().code()
}

#[test]
fn backup_quota_and_restore_through_the_server() {
    let server = TestServer::start(&ServerOptions { max_devices: Some(2), ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    let service: Arc<dyn LicenseService> = Arc::new(server.client());
    let (a, ra) = device(dir.path(), "a", Arc::clone(&service));
    fill(&a, 300);
    assert_eq!(backup(&ra).unwrap().licenses, 300);
    let (b, rb) = device(dir.path(), "b", Arc::clone(&service));
    let q = rb.restore_quota().unwrap();
    assert_eq!((q.licenses, q.max_devices, q.restores_remaining, q.device_already_counted), (300, 2, 1, false));
    let (events, result) = restore(&rb);
    assert_eq!(result.unwrap().licenses, 300);
    assert_eq!(events[..2], ["connecting", "disconnecting"]);
    assert_eq!(b.license_count().unwrap(), 300);
    assert_eq!(b.content_key(&a.list_licenses().unwrap()[7].key_id).unwrap(), b"ck-7");
    // A third device is over the quota of two: refused with the policy's URL, nothing applied.
    let (c, rc) = device(dir.path(), "c", Arc::clone(&service));
    let (events, result) = restore(&rc);
    assert_eq!(code(result), ErrorCode::RestoreLimitExceeded);
    assert_eq!(events, ["connecting", "disconnecting", "refused", "end"]);
    assert_eq!(c.license_count().unwrap(), 0);
    // Restoring again onto b is free.
    assert!(restore(&rb).1.is_ok());
}

#[test]
fn credentials_and_trust() {
    let server = TestServer::start(&ServerOptions::default());
    let dir = tempfile::tempdir().unwrap();
    // A wrong token: AUTHENTICATION_FAILED, for the key query and for a restore.
    let wrong =
        RemoteService::new(&server.url, RemoteOptions { token: Some("nope".into()), ..server.options() }).unwrap();
    assert_eq!(code(wrong.public_key()), ErrorCode::AuthenticationFailed);
    let none = RemoteService::new(&server.url, RemoteOptions { token: None, ..server.options() }).unwrap();
    assert_eq!(code(none.public_key()), ErrorCode::AuthenticationFailed);
    // No extra CA: the system roots do not know the service's own CA.
    let untrusting = RemoteService::new(&server.url, RemoteOptions { ca_file: None, ..server.options() }).unwrap();
    assert_eq!(code(untrusting.public_key()), ErrorCode::ServiceNotTrusted);
    // A pin of the server's certificate replaces the CA check; another pin fails.
    let pin = server.made.cert_sha256.clone().unwrap();
    let pinned = RemoteService::new(
        &server.url,
        RemoteOptions { ca_file: None, cert_pins: vec![pin.clone()], ..server.options() },
    )
    .unwrap();
    assert!(pinned.public_key().is_ok());
    let mut other = pin.into_bytes();
    other[0] = if other[0] == b'0' { b'1' } else { b'0' };
    let mispinned = RemoteService::new(
        &server.url,
        RemoteOptions { ca_file: None, cert_pins: vec![String::from_utf8(other).unwrap()], ..server.options() },
    )
    .unwrap();
    assert_eq!(code(mispinned.public_key()), ErrorCode::ServiceNotTrusted);
    // The service key pinned: a backup wraps to it; pinned to another, a backup refuses and
    // leaves no archive.
    let good = RemoteOptions { service_keys: vec![server.made.key_fingerprint.clone()], ..server.options() };
    let (a, ra) = device(dir.path(), "a", Arc::new(RemoteService::new(&server.url, good).unwrap()));
    fill(&a, 5);
    assert!(backup(&ra).is_ok());
    let bad = RemoteOptions { service_keys: vec!["00".repeat(16)], ..server.options() };
    let (_, rb) = device(dir.path(), "b", Arc::new(RemoteService::new(&server.url, bad).unwrap()));
    std::fs::remove_file(dir.path().join("backup/licenses.lbk")).unwrap();
    assert_eq!(code(backup(&rb)), ErrorCode::ServiceKeyNotPinned);
    assert!(!dir.path().join("backup/licenses.lbk").exists());
}

#[test]
fn a_certificate_for_another_name_is_not_trusted() {
    let server = TestServer::start(&ServerOptions { hosts: vec!["licenses.example.com".into()], ..Default::default() });
    assert_eq!(code(server.client().public_key()), ErrorCode::ServiceNotTrusted);
}

#[test]
fn unusable_options_are_refused_at_once() {
    let bad = |url: &str, o: RemoteOptions| RemoteService::new(url, o).unwrap_err().code();
    assert_eq!(bad("http://licenses.example.com", RemoteOptions::default()), ErrorCode::InvalidArgument);
    let token = |t: &str| RemoteOptions { token: Some(t.into()), ..Default::default() };
    assert_eq!(bad("https://x.example", token("a b")), ErrorCode::InvalidArgument);
    assert_eq!(bad("https://x.example", token("a\r\nX-Injected: 1")), ErrorCode::InvalidArgument);
    let ca = RemoteOptions { ca_file: Some("/nonexistent.pem".into()), ..Default::default() };
    assert_eq!(bad("https://x.example", ca), ErrorCode::InvalidArgument);
    let pins = RemoteOptions { cert_pins: vec!["abcd".into()], ..Default::default() };
    assert_eq!(bad("https://x.example", pins), ErrorCode::InvalidArgument);
}
