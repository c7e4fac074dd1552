//! Licenses at rest, tested as an attacker with a copy of the user's files would: edited rights,
//! swapped rows, a rolled-back archive, a store copied to another device, removed licenses
//! searched for in the file and its WAL, and a byte scan of every file the library writes for
//! content keys and seeds in clear. The host protector here is built on RustCrypto's
//! ChaCha20-Poly1305 (not the library's own sealing), as an application would bring its own.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use common::*;
use license_backup::*;
use rusqlite::Connection;
use zeroize::Zeroizing;

/// A host protector: wraps the seed with its own key (ChaCha20-Poly1305, random nonce, the
/// file's ID as associated data). It records every seed it is given, so the tests can look for
/// them in the files.
struct HostProtector {
    key: [u8; 32],
    seen: Mutex<Vec<Vec<u8>>>,
    fail: bool,
}

impl HostProtector {
    fn new(key_byte: u8) -> Arc<Self> {
        Arc::new(HostProtector { key: [key_byte; 32], seen: Mutex::new(Vec::new()), fail: false })
    }

    fn failing() -> Arc<Self> {
        Arc::new(HostProtector { key: [0; 32], seen: Mutex::new(Vec::new()), fail: true })
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        self.seen.lock().unwrap().clone()
    }
}

impl KeyProtector for HostProtector {
    fn label(&self) -> String {
        "test host".into()
    }

    fn wrap(&self, secret: &[u8], file: &ProtectedFile) -> Result<Vec<u8>> {
        if self.fail {
            return Err(Error::new(ErrorCode::ProtectorFailed, "the host's keystore is locked"));
        }
        self.seen.lock().unwrap().push(secret.to_vec());
        let nonce: [u8; 12] = rand_bytes();
        let cipher = ChaCha20Poly1305::new((&self.key).into());
        let mut out = nonce.to_vec();
        out.extend(cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: secret, aad: &file.file_id }).unwrap());
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8], file: &ProtectedFile) -> Result<Zeroizing<Vec<u8>>> {
        if self.fail {
            return Err(Error::new(ErrorCode::ProtectorFailed, "the host's keystore is locked"));
        }
        let cipher = ChaCha20Poly1305::new((&self.key).into());
        let (nonce, ct) = wrapped.split_at(12.min(wrapped.len()));
        let seed = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &file.file_id })
            .map_err(|_| Error::new(ErrorCode::ProtectorMismatch, "not wrapped with this host key"))?;
        self.seen.lock().unwrap().push(seed.clone());
        Ok(Zeroizing::new(seed))
    }
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).unwrap();
    b
}

fn protected(p: &Arc<HostProtector>) -> StoreOptions {
    StoreOptions::protected(Protector::new(Arc::clone(p) as Arc<dyn KeyProtector>))
}

fn sql(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

/// Every file in `dir` (and below), the store's -wal and -shm and temporary files included.
fn every_file(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(every_file(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Files in `dir` holding `secret` in clear.
fn files_holding(dir: &Path, secret: &[u8]) -> Vec<PathBuf> {
    every_file(dir).into_iter().filter(|f| contains(&std::fs::read(f).unwrap(), secret)).collect()
}

fn store_with_licenses(w: &World, name: &str, options: StoreOptions) -> (Arc<LicenseStore>, BackupRestorer) {
    let store = Arc::new(LicenseStore::open_with(w.path(&format!("{name}.db")), options).unwrap());
    fill(&store, 36, 7);
    let service: Arc<dyn LicenseService> = w.service.clone();
    let r = create_backup_restorer(Arc::clone(&store), service);
    r.set_property("BackupPath", PropertyValue::String(w.folder("backup").display().to_string())).unwrap();
    r.set_property("RestorePath", PropertyValue::String(w.folder("backup").display().to_string())).unwrap();
    (store, r)
}

/// The first finding: setting `backup_allowed = 1` on the restricted licenses and
/// clearing a play limit and an expiry with SQL. Every read that hands out rights, `verify()`
/// and a backup fail with `LICENSE_TAMPERED` naming the key ID, and no archive is written.
#[test]
fn edited_rights_are_detected_by_every_read_and_never_reach_an_archive() {
    let w = World::new();
    let (store, r) = store_with_licenses(&w, "a", StoreOptions::unprotected());
    store
        .update_rights(
            &key_id(3),
            &Rights { expires_at: Some(4_000_000_000), plays_remaining: Some(3), ..Rights::default() },
        )
        .unwrap();
    assert_eq!(store.verify().unwrap(), 36);
    let restricted: Vec<KeyId> =
        store.list_licenses().unwrap().iter().filter(|l| !l.rights.backup_allowed).map(|l| l.key_id).collect();
    assert_eq!(restricted.len(), 5);
    let archive = archive_path(&w);

    for (what, edit, victim) in [
        (
            "backup_allowed on a restricted license",
            "UPDATE licenses SET backup_allowed = 1 WHERE key_id = ?1",
            restricted[0],
        ),
        ("play limit cleared", "UPDATE licenses SET plays_remaining = NULL WHERE key_id = ?1", key_id(3)),
        ("expiry cleared", "UPDATE licenses SET expires_at = NULL WHERE key_id = ?1", key_id(3)),
        ("more plays", "UPDATE licenses SET plays_remaining = 99 WHERE key_id = ?1", key_id(3)),
        ("issuer changed", "UPDATE licenses SET issuer = 'https://evil.example' WHERE key_id = ?1", key_id(5)),
        ("issue time changed", "UPDATE licenses SET issued_at = issued_at + 1 WHERE key_id = ?1", key_id(5)),
        ("backup forbidden (hiding a license)", "UPDATE licenses SET backup_allowed = 0 WHERE key_id = ?1", key_id(1)),
        ("burn granted", "UPDATE licenses SET burn = 1 - burn WHERE key_id = ?1", key_id(2)),
    ] {
        let db = sql(store.path());
        let saved: Vec<rusqlite::types::Value> = db
            .query_row("SELECT * FROM licenses WHERE key_id = ?1", [victim.as_bytes().as_slice()], |r| {
                (0..r.as_ref().column_count()).map(|i| r.get(i)).collect()
            })
            .unwrap();
        assert_eq!(db.execute(edit, [victim.as_bytes().as_slice()]).unwrap(), 1, "{what}");
        let named = |e: Error| {
            assert_eq!(e.code(), ErrorCode::LicenseTampered, "{what}: {e}");
            assert!(e.message().contains(&victim.to_string()), "{what}: {e}");
        };
        named(store.verify().unwrap_err());
        named(store.get_license(&victim).unwrap_err());
        named(store.list_licenses().unwrap_err());
        named(store.content_key(&victim).unwrap_err());
        named(store.use_play(&victim).unwrap_err());
        named(store.update_rights(&victim, &Rights::default()).unwrap_err());
        let _ = std::fs::remove_file(&archive);
        let (res, rec) = backup(&r, true);
        named(res.unwrap_err());
        assert!(!archive.exists(), "{what}: an archive was written");
        assert!(every_file(&w.path("backup")).is_empty(), "{what}: a temporary file was left");
        assert!(matches!(rec.events().last(), Some(StatusEvent::End { .. })));
        // Put back: everything reads again.
        db.execute("DELETE FROM licenses WHERE key_id = ?1", [victim.as_bytes().as_slice()]).unwrap();
        let values = (1..=saved.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
        db.execute(&format!("INSERT INTO licenses VALUES ({values})"), rusqlite::params_from_iter(&saved)).unwrap();
        assert_eq!(store.verify().unwrap(), 36, "{what}");
    }
    let (res, _) = backup(&r, true);
    assert_eq!(res.unwrap().licenses, 31);
}

/// Sealed keys moved between rows, or a row copied under another key ID, do not open.
#[test]
fn swapped_and_copied_rows_are_detected() {
    let w = World::new();
    let (store, _) = store_with_licenses(&w, "a", StoreOptions::unprotected());
    let db = sql(store.path());
    let sealed = |n: u32| -> Vec<u8> {
        db.query_row("SELECT sealed_key FROM licenses WHERE key_id = ?1", [key_id(n).as_bytes().as_slice()], |r| {
            r.get(0)
        })
        .unwrap()
    };
    // Two licenses with the same rights, issuer aside: swap their sealed keys.
    let (a, b) = (sealed(1), sealed(2));
    db.execute("UPDATE licenses SET sealed_key = ?1 WHERE key_id = ?2", (&b, key_id(1).as_bytes().as_slice())).unwrap();
    db.execute("UPDATE licenses SET sealed_key = ?1 WHERE key_id = ?2", (&a, key_id(2).as_bytes().as_slice())).unwrap();
    let e = store.content_key(&key_id(1)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::LicenseTampered);
    db.execute("UPDATE licenses SET sealed_key = ?1 WHERE key_id = ?2", (&a, key_id(1).as_bytes().as_slice())).unwrap();
    db.execute("UPDATE licenses SET sealed_key = ?1 WHERE key_id = ?2", (&b, key_id(2).as_bytes().as_slice())).unwrap();
    assert_eq!(store.verify().unwrap(), 36);
    // A whole row copied under a new key ID (a license the device never had).
    db.execute(
        "INSERT INTO licenses (key_id, sealed_key, play, burn, transfer, backup_allowed, expires_at, plays_remaining, \
         issuer, issued_at) SELECT ?1, sealed_key, play, burn, transfer, backup_allowed, expires_at, plays_remaining, \
         issuer, issued_at FROM licenses WHERE key_id = ?2",
        (key_id(900).as_bytes().as_slice(), key_id(1).as_bytes().as_slice()),
    )
    .unwrap();
    let e = store.verify().unwrap_err();
    assert_eq!(e.code(), ErrorCode::LicenseTampered);
    assert!(e.message().contains(&key_id(900).to_string()), "{e}");
}

/// The second finding: plays 5, used down to 0, then the earlier archive restored with
/// `replace_existing`: still 0. The same for an expiry brought forward, a right withdrawn, and
/// a license removed (its tombstone narrows the restored copy); a tampered tombstone fails the
/// restore.
#[test]
fn an_old_archive_never_rolls_rights_back() {
    let w = World::new();
    let (store, r) = store_with_licenses(&w, "a", StoreOptions::unprotected());
    let five = Rights { plays_remaining: Some(5), expires_at: Some(4_000_000_000), ..Rights::default() };
    for n in [1, 2, 4] {
        store.update_rights(&key_id(n), &five).unwrap();
    }
    backup(&r, true).0.unwrap();
    for _ in 0..5 {
        store.use_play(&key_id(1)).unwrap();
    }
    assert_eq!(store.use_play(&key_id(1)).unwrap_err().code(), ErrorCode::PlaysExhausted);
    store.update_rights(&key_id(2), &Rights { burn: false, expires_at: Some(3_000_000_000), ..five.clone() }).unwrap();
    store.use_play(&key_id(4)).unwrap();
    store.use_play(&key_id(4)).unwrap();
    assert!(store.remove_license(&key_id(4)).unwrap());
    let replace = RestoreFlags { individualize: false, replace_existing: true };
    let summary = restore(&r, replace).0.unwrap();
    assert_eq!(summary.licenses, 31);
    let rights = |n: u32| store.get_license(&key_id(n)).unwrap().unwrap().rights;
    assert_eq!(rights(1).plays_remaining, Some(0), "plays used are not given back");
    assert_eq!(store.use_play(&key_id(1)).unwrap_err().code(), ErrorCode::PlaysExhausted);
    assert_eq!(rights(2).expires_at, Some(3_000_000_000), "the earlier expiry stays");
    assert!(!rights(2).burn, "a withdrawn right stays withdrawn");
    assert_eq!(rights(4).plays_remaining, Some(3), "a removed license comes back with the plays it had left");
    assert_eq!(store.verify().unwrap(), 36);
    // Without replace_existing the device's copy is kept as it is.
    store.update_rights(&key_id(6), &Rights { play: false, ..Rights::default() }).unwrap();
    restore(&r, RestoreFlags::default()).0.unwrap();
    assert!(!rights(6).play);
    // Removed again; its tombstone is edited to allow more: the restore fails, naming it.
    assert!(store.remove_license(&key_id(4)).unwrap());
    let db = sql(store.path());
    db.execute("UPDATE tombstones SET plays_remaining = 50 WHERE key_id = ?1", [key_id(4).as_bytes().as_slice()])
        .unwrap();
    let before = snapshot(&store);
    let e = restore(&r, replace).0.unwrap_err();
    assert_eq!(e.code(), ErrorCode::LicenseTampered, "{e}");
    assert!(e.message().contains(&key_id(4).to_string()), "{e}");
    assert_eq!(snapshot(&store), before, "nothing was restored");
    assert_eq!(store.verify().unwrap_err().code(), ErrorCode::LicenseTampered);
    // A license the store holds, edited to allow more, cannot widen a replacing restore either.
    db.execute("UPDATE tombstones SET plays_remaining = 3 WHERE key_id = ?1", [key_id(4).as_bytes().as_slice()])
        .unwrap();
    assert_eq!(store.verify().unwrap(), 35);
    db.execute("UPDATE licenses SET plays_remaining = 5 WHERE key_id = ?1", [key_id(1).as_bytes().as_slice()]).unwrap();
    let e = restore(&r, replace).0.unwrap_err();
    assert_eq!(e.code(), ErrorCode::LicenseTampered, "{e}");
    assert!(e.message().contains(&key_id(1).to_string()), "{e}");
}

/// The play counter: refuses at zero, after expiry, without the play right; unlimited counts
/// stay unlimited; each play is sealed (a reopened store reads it).
#[test]
fn plays_are_counted_and_refused_with_clear_codes() {
    let w = World::new();
    let path = w.path("a.db");
    let store = LicenseStore::open(&path).unwrap();
    let add = |n: u32, rights: Rights| {
        store
            .add_license(
                &NewLicense {
                    key_id: key_id(n),
                    content_key: content_key(n),
                    rights,
                    issuer: "https://issuer.example".into(),
                    issued_at: 1_700_000_000,
                },
                ConflictPolicy::Keep,
            )
            .unwrap()
    };
    add(1, Rights { plays_remaining: Some(2), ..Rights::default() });
    add(2, Rights::default());
    add(3, Rights { expires_at: Some(1_000), ..Rights::default() });
    add(4, Rights { play: false, ..Rights::default() });
    assert_eq!(store.use_play(&key_id(1)).unwrap().plays_remaining, Some(1));
    assert_eq!(store.use_play(&key_id(1)).unwrap().plays_remaining, Some(0));
    assert_eq!(store.use_play(&key_id(1)).unwrap_err().code(), ErrorCode::PlaysExhausted);
    assert_eq!(store.use_play(&key_id(2)).unwrap().plays_remaining, None);
    assert_eq!(store.use_play(&key_id(3)).unwrap_err().code(), ErrorCode::LicenseExpired);
    assert_eq!(store.use_play(&key_id(4)).unwrap_err().code(), ErrorCode::PlayNotAllowed);
    assert_eq!(store.use_play(&key_id(9)).unwrap_err().code(), ErrorCode::LicenseNotFound);
    assert_eq!(store.update_rights(&key_id(9), &Rights::default()).unwrap_err().code(), ErrorCode::LicenseNotFound);
    drop(store);
    let store = LicenseStore::open(&path).unwrap();
    assert_eq!(store.get_license(&key_id(1)).unwrap().unwrap().rights.plays_remaining, Some(0));
    assert_eq!(store.content_key(&key_id(1)).unwrap(), content_key(1));
    assert_eq!(store.verify().unwrap(), 4);
}

/// The third finding, closed by a protector: a protected store copied to another device
/// (another protector) or opened without one does not open, and nothing in it changes; a
/// protector that fails is reported with its own code.
#[test]
fn a_copied_protected_store_does_not_open_elsewhere() {
    let w = World::new();
    let mine = HostProtector::new(1);
    let (store, _) = store_with_licenses(&w, "a", protected(&mine));
    let id = store.device_id().unwrap();
    drop(store);
    let copy = w.path("copied.db");
    std::fs::copy(w.path("a.db"), &copy).unwrap();
    let bytes = std::fs::read(&copy).unwrap();
    let theirs = HostProtector::new(2);
    let e = LicenseStore::open_with(&copy, protected(&theirs)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ProtectorMismatch, "{e}");
    let e = LicenseStore::open(&copy).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ProtectorRequired, "{e}");
    let e = LicenseStore::open_with(&copy, protected(&HostProtector::failing())).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ProtectorFailed, "{e}");
    assert!(e.message().contains("locked"), "{e}");
    assert_eq!(std::fs::read(&copy).unwrap(), bytes, "a refused open changes nothing");
    // A protector whose unwrap returns some other 32 bytes is caught by the key's fingerprint.
    struct Liar;
    impl KeyProtector for Liar {
        fn label(&self) -> String {
            "liar".into()
        }
        fn wrap(&self, s: &[u8], _: &ProtectedFile) -> Result<Vec<u8>> {
            Ok(s.to_vec())
        }
        fn unwrap(&self, _: &[u8], _: &ProtectedFile) -> Result<Zeroizing<Vec<u8>>> {
            Ok(Zeroizing::new(vec![7; 32]))
        }
    }
    let e = LicenseStore::open_with(&copy, StoreOptions::protected(Protector::new(Arc::new(Liar)))).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ProtectorMismatch, "{e}");
    assert_eq!(std::fs::read(&copy).unwrap(), bytes);
    // With its own protector it opens, the same identity.
    let store = LicenseStore::open_with(&copy, protected(&mine)).unwrap();
    assert_eq!(store.device_id().unwrap(), id);
    assert_eq!(store.verify().unwrap(), 36);
    assert_eq!(store.protector_label(), "test host");
}

/// An unprotected store (and ledger) is protected in place: same identity, same licenses, the
/// seed no longer in the file; a protector that fails during the upgrade leaves it as it was.
#[test]
fn an_unprotected_store_is_protected_in_place() {
    let w = World::new();
    let path = w.path("a.db");
    let (store, _) = store_with_licenses(&w, "a", StoreOptions::unprotected());
    let id = store.device_id().unwrap();
    let before = snapshot(&store);
    drop(store);
    let seed: Vec<u8> = sql(&path).query_row("SELECT seed FROM secret", [], |r| r.get(0)).unwrap();
    assert_eq!(seed.len(), 32);
    assert!(contains(&std::fs::read(&path).unwrap(), &seed), "unprotected: the seed is in the file");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        LicenseStore::open_with(&path, protected(&HostProtector::failing())).unwrap_err().code(),
        ErrorCode::ProtectorFailed
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "a failed upgrade changes nothing");
    let p = HostProtector::new(9);
    let store = LicenseStore::open_with(&path, protected(&p)).unwrap();
    assert_eq!(store.device_id().unwrap(), id);
    assert_eq!(snapshot(&store), before);
    drop(store);
    assert!(files_holding(w.dir.path(), &seed).is_empty(), "the seed is gone from every file");
    assert_eq!(LicenseStore::open(&path).unwrap_err().code(), ErrorCode::ProtectorRequired);
    assert_eq!(snapshot(&LicenseStore::open_with(&path, protected(&p)).unwrap()), before);

    // The same for a ledger.
    let ledger = w.path("ledger.db");
    let key = EmbeddedService::open(&ledger).unwrap().public_key().unwrap();
    let service_seed: Vec<u8> = sql(&ledger).query_row("SELECT seed FROM secret", [], |r| r.get(0)).unwrap();
    let service = EmbeddedService::open_with(
        &ledger,
        ServiceOptions::protected(ServicePolicy::default(), Protector::new(Arc::clone(&p) as Arc<dyn KeyProtector>)),
    )
    .unwrap();
    assert_eq!(service.public_key().unwrap(), key);
    drop(service);
    assert!(files_holding(w.dir.path(), &service_seed).is_empty());
    assert_eq!(EmbeddedService::open(&ledger).unwrap_err().code(), ErrorCode::ProtectorRequired);
}

/// The fourth finding: 20 removed licenses' sealed keys were still in the store file.
/// Now none is in the file or its WAL, while the store is open (after the removals) and after
/// it is closed.
#[test]
fn removed_licenses_leave_nothing_in_the_file_or_its_wal() {
    let w = World::new();
    let path = w.path("a.db");
    let store = LicenseStore::open(&path).unwrap();
    fill(&store, 200, 0);
    let db = sql(&path);
    let sealed: Vec<Vec<u8>> = (1..=20)
        .map(|n| {
            db.query_row(
                "SELECT sealed_key FROM licenses WHERE key_id = ?1",
                [key_id(n * 7).as_bytes().as_slice()],
                |r| r.get(0),
            )
            .unwrap()
        })
        .collect();
    drop(db);
    for n in 1..=20 {
        assert!(store.remove_license(&key_id(n * 7)).unwrap());
    }
    let wal = w.path("a.db-wal");
    let lingering = |when: &str| {
        for (i, s) in sealed.iter().enumerate() {
            for f in [&path, &wal] {
                if let Ok(bytes) = std::fs::read(f) {
                    assert!(
                        !contains(&bytes, s),
                        "{when}: the sealed key of license {} is in {}",
                        (i + 1) * 7,
                        f.display()
                    );
                }
            }
        }
    };
    lingering("open");
    assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0, "the WAL is truncated after removals");
    drop(store);
    lingering("closed");
    // Their tombstones remain (key ID and last rights, no key).
    let store = LicenseStore::open(&path).unwrap();
    assert_eq!(store.verify().unwrap(), 180);
    let tombstones: i64 = sql(&path).query_row("SELECT count(*) FROM tombstones", [], |r| r.get(0)).unwrap();
    assert_eq!(tombstones, 20);
}

/// Every file the library writes (stores, their WAL and SHM, the ledger, the archive, the
/// backup folder) scanned for every content key and seed in clear: with protectors, none.
#[test]
fn no_file_the_library_writes_holds_a_content_key_or_a_seed() {
    let w = World::new();
    let p = HostProtector::new(3);
    let protector = Protector::new(Arc::clone(&p) as Arc<dyn KeyProtector>);
    let service = Arc::new(
        EmbeddedService::open_with(
            w.path("ledger.db"),
            ServiceOptions::protected(ServicePolicy::default(), protector.clone()),
        )
        .unwrap(),
    );
    let store = Arc::new(LicenseStore::open_with(w.path("a.db"), StoreOptions::protected(protector.clone())).unwrap());
    fill(&store, 300, 7);
    let r = create_backup_restorer(Arc::clone(&store), service.clone() as Arc<dyn LicenseService>);
    r.set_property("BackupPath", PropertyValue::String(w.folder("backup").display().to_string())).unwrap();
    backup(&r, false).0.unwrap();
    // A second device restores (individualizing), so its files and the grant are scanned too.
    let b = Arc::new(LicenseStore::open_with(w.path("b.db"), StoreOptions::protected(protector)).unwrap());
    let rb = create_backup_restorer(Arc::clone(&b), service.clone() as Arc<dyn LicenseService>);
    rb.set_property("RestorePath", PropertyValue::String(w.folder("backup").display().to_string())).unwrap();
    restore(&rb, RestoreFlags { individualize: true, replace_existing: false }).0.unwrap();
    for n in [1u32, 150, 300] {
        store.remove_license(&key_id(n)).unwrap();
    }
    let mut secrets: Vec<(String, Vec<u8>)> = (1..=300).map(|n| (format!("content key {n}"), content_key(n))).collect();
    // Every seed the protector wrapped or unwrapped: two devices (one individualized) and the service.
    let seeds = p.seeds();
    assert!(seeds.len() >= 3, "{} seeds", seeds.len());
    secrets.extend(seeds.into_iter().map(|s| ("seed".to_string(), s)));
    let check = |when: &str| {
        let files = every_file(w.dir.path());
        assert!(files.iter().any(|f| f.ends_with(archive::ARCHIVE_FILE_NAME)));
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            for (what, s) in &secrets {
                assert!(!contains(&bytes, s), "{when}: {what} in clear in {}", f.display());
            }
        }
    };
    check("open");
    drop((r, rb, store, b, service));
    check("closed");
}

/// An individualizing restore on a protected store: the new identity's seed is wrapped by the
/// store's protector, the old licenses and tombstones are sealed to it, and it opens again.
#[test]
fn individualizing_a_protected_store_keeps_it_protected() {
    let w = World::new();
    let p = HostProtector::new(4);
    let (store, r) = store_with_licenses(&w, "a", protected(&p));
    backup(&r, false).0.unwrap();
    store.remove_license(&key_id(2)).unwrap();
    let old = store.device_id().unwrap();
    restore(&r, RestoreFlags { individualize: true, replace_existing: false }).0.unwrap();
    let new = store.device_id().unwrap();
    assert_ne!(old, new);
    assert_eq!(store.verify().unwrap(), 36);
    drop((r, store));
    let store = LicenseStore::open_with(w.path("a.db"), protected(&p)).unwrap();
    assert_eq!(store.device_id().unwrap(), new);
    assert_eq!(store.verify().unwrap(), 36);
    assert_eq!(LicenseStore::open(w.path("a.db")).unwrap_err().code(), ErrorCode::ProtectorRequired);
}

/// A store written by the previous release (schema 1: the seed in the device table, content
/// keys bound to the device and key IDs only) is migrated in one transaction: same identity,
/// same licenses, every row sealed to its fields.
#[test]
fn a_schema_1_store_is_migrated() {
    use hkdf::Hkdf;
    use sha2::{Digest, Sha256};
    let w = World::new();
    let path = w.path("v1.db");
    let seed = [0x42u8; 32];
    // The device's identity as release 1 derived it (HPKE's DeriveKeyPair for X25519, then a
    // SHA-256 fingerprint of the public key), and its content-key sealing key.
    let device_id: [u8; 16] = Sha256::digest(hpke_public(&seed))[..16].try_into().unwrap();
    let hk = Hkdf::<Sha256>::new(Some(b"license-backup/v1"), &seed);
    let mut storage = [0u8; 32];
    hk.expand(b"store content keys", &mut storage).unwrap();
    let cipher = ChaCha20Poly1305::new((&storage).into());
    {
        let db = sql(&path);
        db.execute_batch(
            "CREATE TABLE device (singleton INTEGER PRIMARY KEY CHECK (singleton = 1), device_id BLOB NOT NULL CHECK \
             (length(device_id) = 16), seed BLOB NOT NULL CHECK (length(seed) = 32), created_at INTEGER NOT NULL);
             CREATE TABLE licenses (key_id BLOB PRIMARY KEY CHECK (length(key_id) = 16), sealed_key BLOB NOT NULL, \
             play INTEGER NOT NULL, burn INTEGER NOT NULL, transfer INTEGER NOT NULL, backup_allowed INTEGER NOT NULL, \
             expires_at INTEGER, plays_remaining INTEGER, issuer TEXT NOT NULL, issued_at INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE catalog (key_id BLOB PRIMARY KEY CHECK (length(key_id) = 16), title TEXT, artist TEXT, \
             file_path TEXT) WITHOUT ROWID;
             PRAGMA user_version = 1;",
        )
        .unwrap();
        db.execute("INSERT INTO device VALUES (1, ?1, ?2, 0)", (device_id.as_slice(), seed.as_slice())).unwrap();
        for n in 1..=50u32 {
            let mut aad = b"license-backup/v1/content-key".to_vec();
            aad.extend_from_slice(&device_id);
            aad.extend_from_slice(key_id(n).as_bytes());
            let nonce: [u8; 12] = rand_bytes();
            let mut sealed = nonce.to_vec();
            sealed.extend(
                cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: &content_key(n), aad: &aad }).unwrap(),
            );
            db.execute(
                "INSERT INTO licenses VALUES (?1, ?2, 1, 1, 1, ?3, NULL, ?4, 'https://issuer.example', 1700000000)",
                (key_id(n).as_bytes().as_slice(), sealed, n % 5 != 0, (n % 3 == 0).then_some(n)),
            )
            .unwrap();
        }
    }
    let store = LicenseStore::open(&path).unwrap();
    let hex: String = device_id.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(store.device_id().unwrap(), hex);
    assert_eq!(store.verify().unwrap(), 50);
    for n in 1..=50 {
        assert_eq!(store.content_key(&key_id(n)).unwrap(), content_key(n));
        let l = store.get_license(&key_id(n)).unwrap().unwrap();
        assert_eq!(l.rights.backup_allowed, n % 5 != 0);
        assert_eq!(l.rights.plays_remaining, (n % 3 == 0).then_some(n));
    }
    let db = sql(&path);
    let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let old_column: bool = db
        .query_row("SELECT EXISTS (SELECT 1 FROM pragma_table_info('device') WHERE name = 'seed')", [], |r| r.get(0))
        .unwrap();
    assert!(!old_column);
    // Row authentication holds for migrated rows.
    db.execute("UPDATE licenses SET backup_allowed = 1 WHERE key_id = ?1", [key_id(5).as_bytes().as_slice()]).unwrap();
    assert_eq!(store.verify().unwrap_err().code(), ErrorCode::LicenseTampered);
}

/// A protected store of schema 2 (the layout before the restore journal and the service
/// registrations) opens only with its protector, as before, and migrating it waits for that
/// protector: without it `PROTECTOR_REQUIRED` and the file unchanged; with it schema 3, the
/// same identity and licenses, still protected.
#[test]
fn a_protected_schema_2_store_is_migrated_only_with_its_protector() {
    let w = World::new();
    let path = w.path("v2.db");
    let p = HostProtector::new(4);
    let (store, _) = store_with_licenses(&w, "v2", protected(&p));
    let id = store.device_id().unwrap();
    let before = snapshot(&store);
    drop(store);
    // Back to schema 2: the tables schema 3 adds are gone, the version says 2.
    sql(&path).execute_batch("DROP TABLE registrations; DROP TABLE restore_journal; PRAGMA user_version = 2;").unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(LicenseStore::open(&path).unwrap_err().code(), ErrorCode::ProtectorRequired);
    assert_eq!(
        LicenseStore::open_with(&path, protected(&HostProtector::new(5))).unwrap_err().code(),
        ErrorCode::ProtectorMismatch
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "a refused open migrates nothing");
    let store = LicenseStore::open_with(&path, protected(&p)).unwrap();
    assert_eq!(store.device_id().unwrap(), id);
    assert_eq!(snapshot(&store), before);
    assert_eq!(store.verify().unwrap(), 36);
    drop(store);
    let version: i64 = sql(&path).query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let tables: i64 = sql(&path)
        .query_row("SELECT count(*) FROM sqlite_master WHERE name IN ('registrations', 'restore_journal')", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(tables, 2);
    assert_eq!(LicenseStore::open(&path).unwrap_err().code(), ErrorCode::ProtectorRequired);
}

/// X25519 public key of HPKE's DeriveKeyPair(seed) for DHKEM(X25519, HKDF-SHA256) (RFC 9180,
/// 7.1.3), computed independently of the library.
fn hpke_public(ikm: &[u8]) -> [u8; 32] {
    use hkdf::Hkdf;
    use sha2::Sha256;
    let suite: &[u8] = b"KEM\x00\x20";
    let mut labeled_ikm = b"HPKE-v1".to_vec();
    labeled_ikm.extend_from_slice(suite);
    labeled_ikm.extend_from_slice(b"dkp_prk");
    labeled_ikm.extend_from_slice(ikm);
    let (prk, _) = Hkdf::<Sha256>::extract(Some(b""), &labeled_ikm);
    let hk = Hkdf::<Sha256>::from_prk(&prk).unwrap();
    let mut info = 32u16.to_be_bytes().to_vec();
    info.extend_from_slice(b"HPKE-v1");
    info.extend_from_slice(suite);
    info.extend_from_slice(b"sk");
    let mut sk = [0u8; 32];
    hk.expand(&info, &mut sk).unwrap();
    x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(sk)).to_bytes()
}

/// Service key rotation (what `license-backup-service rotate-key` runs): the new key is current,
/// the old one is kept among the retired keys, wrapped by the same protector (also when the
/// ledger is protected after the rotation), and the archives made for it still restore. A
/// protector that cannot open the ledger's key rotates nothing.
#[test]
fn a_rotated_service_key_is_kept_sealed_and_still_restores_its_archives() {
    let w = World::new();
    let ledger = w.path("rotating.db");
    let policy = ServicePolicy::default;
    // Unprotected first: rotate, then protect in place; both seeds leave the file.
    let old_key = EmbeddedService::open(&ledger).unwrap().public_key().unwrap();
    let old_seed: Vec<u8> = sql(&ledger).query_row("SELECT seed FROM secret", [], |r| r.get(0)).unwrap();
    let new_key = SqliteLedger::open(&ledger).unwrap().rotate_key(&Protector::unprotected()).unwrap();
    assert_ne!(new_key, old_key);
    let new_seed: Vec<u8> = sql(&ledger).query_row("SELECT seed FROM secret", [], |r| r.get(0)).unwrap();
    let retired: Vec<u8> = sql(&ledger).query_row("SELECT seed FROM retired_secrets", [], |r| r.get(0)).unwrap();
    assert_eq!(retired, old_seed, "the old key is kept as it was stored");
    let p = HostProtector::new(4);
    let protector = Protector::new(Arc::clone(&p) as Arc<dyn KeyProtector>);
    let service = EmbeddedService::open_with(&ledger, ServiceOptions::protected(policy(), protector.clone())).unwrap();
    assert_eq!(service.public_key().unwrap(), new_key);
    assert_eq!(service.authority().public_keys(), [new_key, old_key]);
    drop(service);
    for seed in [&old_seed, &new_seed] {
        assert!(files_holding(w.dir.path(), seed).is_empty(), "no seed in clear in any file");
    }

    // An archive made for the current key, then a rotation under the protector: it restores.
    let service =
        Arc::new(EmbeddedService::open_with(&ledger, ServiceOptions::protected(policy(), protector.clone())).unwrap());
    let (a, ra) = device_with(&w, "a", Arc::clone(&service) as Arc<dyn LicenseService>);
    fill(&a, 5, 0);
    backup(&ra, false).0.unwrap();
    drop((ra, service));
    let other = Protector::new(HostProtector::new(5) as Arc<dyn KeyProtector>);
    let storage = SqliteLedger::open_with(&ledger, &protector).unwrap();
    assert_eq!(storage.rotate_key(&other).unwrap_err().code(), ErrorCode::ProtectorMismatch);
    assert_eq!(storage.service_seeds().unwrap().len(), 2, "a refused rotation changes nothing");
    let newest = storage.rotate_key(&protector).unwrap();
    drop(storage);
    let service =
        Arc::new(EmbeddedService::open_with(&ledger, ServiceOptions::protected(policy(), protector)).unwrap());
    assert_eq!(service.authority().public_keys(), [newest, new_key, old_key]);
    let (b, rb) = device_with(&w, "b", Arc::clone(&service) as Arc<dyn LicenseService>);
    restore(&rb, RestoreFlags::default()).0.unwrap();
    assert_eq!(b.license_count().unwrap(), 5);
    drop((rb, service));
    assert_eq!(EmbeddedService::open(&ledger).unwrap_err().code(), ErrorCode::ProtectorRequired);
}

/// A device of `w` using `service`, backing up to and restoring from `w`'s backup folder.
fn device_with(w: &World, name: &str, service: Arc<dyn LicenseService>) -> (Arc<LicenseStore>, BackupRestorer) {
    let store = Arc::new(LicenseStore::open(w.path(&format!("{name}.db"))).unwrap());
    let restorer = create_backup_restorer(Arc::clone(&store), service);
    let folder = PropertyValue::String(w.folder("backup").display().to_string());
    restorer.set_property("BackupPath", folder.clone()).unwrap();
    restorer.set_property("RestorePath", folder).unwrap();
    (store, restorer)
}
