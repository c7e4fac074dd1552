//! `license-backup` against a networked License Management Service: a real
//! `license-backup-service` on 127.0.0.1 with TLS, its own CA and token (`core/tests/common/server.rs`).
#![cfg(unix)]

mod common;
#[path = "../../core/tests/common/server.rs"]
mod server;

use common::*;
use license_backup::LicenseStore;
use server::{ServerOptions, TestServer};

/// The service flags for `server`, the token in the world's `token` file.
fn remote_args(w: &World, server: &TestServer) -> Vec<String> {
    std::fs::write(w.path("token"), format!("{}\n", server.made.token)).unwrap();
    let mut args = vec!["--service".to_string(), server.url.clone(), "--token-file".into(), "token".into()];
    if let Some(ca) = &server.made.ca_file {
        args.extend(["--ca-file".to_string(), ca.display().to_string()]);
    }
    args
}

fn with<'a>(base: &[&'a str], extra: &'a [String]) -> Vec<&'a str> {
    base.iter().copied().chain(extra.iter().map(String::as_str)).collect()
}

#[test]
fn backup_quota_and_restore_through_a_networked_service_are_counted_by_it() {
    let server = TestServer::start(&ServerOptions { max_devices: Some(2), ..Default::default() });
    let w = World::new();
    let a = w.store("a", 12, 5, true);
    w.folder("usb");
    let remote = remote_args(&w, &server);

    w.run(&with(&["backup", "--store", "a.db", "--to", "usb"], &remote)).expect(0);
    assert_eq!(server.audit().devices, 1, "the first backup registered the device with the server");

    let run = w.run(&with(&["restore", "--store", "b.db", "--from", "usb", "--create-store", "--json"], &remote));
    run.expect(0);
    let kinds: Vec<String> = run.events().iter().map(|e| e["event"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds.first().map(String::as_str), Some("connecting"), "{kinds:?}");
    let backed_up: Vec<_> = snapshot(&a).into_iter().filter(|(l, _)| l.rights.backup_allowed).collect();
    assert_eq!(snapshot(&w.path("b.db")), backed_up);
    let audit = server.audit();
    assert_eq!((audit.confirmed, audit.pending), (1, 0), "the server confirmed the one restore");

    // A third device is over max_devices = 2 (a and b hold the licenses): the server refuses, the CLI
    // says so before and at the restore, and nothing is applied.
    LicenseStore::open(w.path("c.db")).unwrap();
    let run = w.run(&with(&["quota", "--store", "c.db", "--from", "usb", "--json"], &remote));
    run.expect(6);
    assert_eq!(run.summary()["allowed"], false, "{}", run.stdout());
    let run = w.run(&with(&["restore", "--store", "c.db", "--from", "usb"], &remote));
    run.expect(6);
    assert!(run.stderr().contains("RESTORE_LIMIT_EXCEEDED"), "{}", run.stderr());
    assert!(snapshot(&w.path("c.db")).is_empty());
    assert_eq!(server.audit().confirmed, 1);
}

#[test]
fn credentials_and_trust_are_checked_and_explained() {
    let server = TestServer::start(&ServerOptions::default());
    let w = World::new();
    w.store("a", 3, 0, false);
    w.folder("usb");
    let remote = remote_args(&w, &server);
    let ca = server.made.ca_file.as_ref().expect("the test server has its own CA").display().to_string();

    std::fs::write(w.path("wrong-token"), "not-the-token\n").unwrap();
    let run = w.run(&[
        "backup",
        "--store",
        "a.db",
        "--to",
        "usb",
        "--service",
        &server.url,
        "--token-file",
        "wrong-token",
        "--ca-file",
        &ca,
    ]);
    run.expect(7);
    assert!(run.stderr().contains("AUTHENTICATION_FAILED"), "{}", run.stderr());
    assert!(run.stderr().contains("--token-file"), "the hint names the flag: {}", run.stderr());

    let run = w.run(&["backup", "--store", "a.db", "--to", "usb", "--service", &server.url, "--token-file", "token"]);
    run.expect(7);
    assert!(run.stderr().contains("SERVICE_NOT_TRUSTED"), "{}", run.stderr());
    assert!(files_in(&w.path("usb")).is_empty(), "nothing written: {:?}", files_in(&w.path("usb")));

    // The token from the environment, as a service manager would give it.
    let run = w
        .cmd(&["backup", "--store", "a.db", "--to", "usb", "--service", &server.url, "--ca-file", &ca])
        .env("LICENSE_BACKUP_TOKEN", &server.made.token)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));

    // Options of one kind of service given to the other are usage errors.
    let run = w.run(&with(&["backup", "--store", "a.db", "--to", "usb", "--overwrite", "--max-devices", "3"], &remote));
    run.expect(2);
    assert!(run.stderr().contains("INVALID_ARGUMENT"), "{}", run.stderr());
    let run = w.run(&["backup", "--store", "a.db", "--to", "usb", "--overwrite", "--token-file", "token"]);
    run.expect(2);
    assert!(run.stderr().contains("networked service"), "{}", run.stderr());
    std::fs::write(w.path("empty"), "").unwrap();
    let run = w.run(&[
        "backup",
        "--store",
        "a.db",
        "--to",
        "usb",
        "--overwrite",
        "--service",
        &server.url,
        "--token-file",
        "empty",
        "--ca-file",
        &ca,
    ]);
    run.expect(2);
    assert!(run.stderr().contains("is empty"), "{}", run.stderr());
}
