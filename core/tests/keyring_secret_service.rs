//! The built-in keystore protector against a real Secret Service: GNOME Keyring's daemon on a
//! private D-Bus session bus, both started here (`scripts/keystore-tools.sh` installs them;
//! `make test` runs it first). The test re-executes itself inside `dbus-run-session` with a
//! throw-away home, unlocks a fresh login keyring, and fails loudly when that cannot be done:
//! it never skips.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::*;
use license_backup::*;

/// Set in the re-executed test process, inside the session.
const INSIDE: &str = "LICENSE_BACKUP_SECRET_SERVICE_SESSION";

/// Runs `test` inside a D-Bus session with an unlocked GNOME Keyring.
fn in_secret_service_session(name: &str, test: impl FnOnce()) {
    if std::env::var_os(INSIDE).is_some() {
        test();
        return;
    }
    for tool in ["dbus-run-session", "gnome-keyring-daemon", "secret-tool"] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap();
        assert!(found.status.success(), "{tool} is missing: run scripts/keystore-tools.sh (make test does)");
    }
    let home = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    // The daemon reads the new keyring's password on stdin and prints its environment.
    let script = "printf testpassword | gnome-keyring-daemon --unlock --components=secrets >/dev/null && exec \"$@\"";
    let out = Command::new("dbus-run-session")
        .args(["--", "sh", "-c", script, "sh"])
        .arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_RUNTIME_DIR", home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the test inside the Secret Service session failed:\n{text}");
    assert!(text.contains("1 passed"), "the test did not run inside the session:\n{text}");
}

fn keyring(service: &str) -> Protector {
    Protector::new(Arc::new(KeyringProtector::new(service)))
}

/// What the keystore holds for a file: the wrapping key, looked up with `secret-tool`.
fn lookup(service: &str, file: &ProtectedFile) -> Option<Vec<u8>> {
    let out =
        Command::new("secret-tool").args(["lookup", "service", service, "username", &file.name()]).output().unwrap();
    out.status.success().then_some(out.stdout)
}

fn file_of(path: &Path) -> ProtectedFile {
    let db = rusqlite::Connection::open(path).unwrap();
    let (id, label, seed): (Vec<u8>, Option<String>, Vec<u8>) = db
        .query_row("SELECT file_id, protector, seed FROM secret", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    assert!(label.unwrap().starts_with("keyring"));
    assert_ne!(seed.len(), 32, "the seed is stored wrapped");
    ProtectedFile { kind: FileKind::Store, file_id: id.try_into().unwrap() }
}

#[test]
fn secret_service_protects_stores_and_ledgers() {
    in_secret_service_session("secret_service_protects_stores_and_ledgers", || {
        let service_name = format!("license-backup-test-{}", std::process::id());
        let w = World::new();
        let path = w.path("device.db");
        // A new protected store: its wrapping key is in the keystore, under the file's name.
        let store = Arc::new(LicenseStore::open_with(&path, StoreOptions::protected(keyring(&service_name))).unwrap());
        fill(&store, 12, 5);
        let id = store.device_id().unwrap();
        let file = file_of(&path);
        let wrapping = lookup(&service_name, &file).expect("the keystore holds the file's wrapping key");
        assert_eq!(wrapping.len(), 32);
        assert!(!std::fs::read(&path).unwrap().windows(32).any(|w| w == wrapping.as_slice()));

        // Backup, individualizing restore: the new seed is wrapped with the same keystore key.
        let service: Arc<dyn LicenseService> = w.service.clone();
        let r = create_backup_restorer(Arc::clone(&store), service);
        r.set_property("BackupPath", PropertyValue::String(w.folder("backup").display().to_string())).unwrap();
        r.set_property("RestorePath", PropertyValue::String(w.folder("backup").display().to_string())).unwrap();
        backup(&r, false).0.unwrap();
        restore(&r, RestoreFlags { individualize: true, replace_existing: false }).0.unwrap();
        let new_id = store.device_id().unwrap();
        assert_ne!(new_id, id);
        drop((r, store));

        // Opened again through the keystore; without a protector, or through another keystore
        // entry (another device's keystore has no key for this file), it does not open.
        let store = LicenseStore::open_with(&path, StoreOptions::protected(keyring(&service_name))).unwrap();
        assert_eq!(store.device_id().unwrap(), new_id);
        assert_eq!(store.verify().unwrap(), 12);
        assert_eq!(store.content_key(&key_id(4)).unwrap(), content_key(4));
        drop(store);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(LicenseStore::open(&path).unwrap_err().code(), ErrorCode::ProtectorRequired);
        let e = LicenseStore::open_with(&path, StoreOptions::protected(keyring("another-device"))).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ProtectorMismatch, "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);

        // An unprotected store protected in place, and a ledger.
        let plain = w.path("plain.db");
        let s = LicenseStore::open(&plain).unwrap();
        fill(&s, 3, 0);
        let plain_id = s.device_id().unwrap();
        drop(s);
        let s = LicenseStore::open_with(&plain, StoreOptions::protected(keyring(&service_name))).unwrap();
        assert_eq!(s.device_id().unwrap(), plain_id);
        drop(s);
        file_of(&plain);
        let ledger = w.path("ledger.db");
        let options = ServiceOptions::protected(ServicePolicy::default(), keyring(&service_name));
        let key = EmbeddedService::open_with(&ledger, options.clone()).unwrap().public_key().unwrap();
        assert_eq!(EmbeddedService::open_with(&ledger, options).unwrap().public_key().unwrap(), key);
        assert_eq!(EmbeddedService::open(&ledger).unwrap_err().code(), ErrorCode::ProtectorRequired);

        // Forgetting the keystore key makes the store unopenable for good.
        assert!(KeyringProtector::new(&service_name).forget(&file).unwrap());
        assert!(lookup(&service_name, &file).is_none());
        let e = LicenseStore::open_with(&path, StoreOptions::protected(keyring(&service_name))).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ProtectorMismatch, "{e}");
    });
}
