//! Regression tests for races between an individualizing restore (which re-binds every content
//! key to a fresh device key) and calls that read the device key and then write or read a
//! sealed content key (found by the stress test, tests/stress.rs). `add_license` reads the
//! device key inside its write transaction, and a restore whose device key was replaced after
//! it started fails with `BUSY` at its commit, nothing applied: otherwise either could seal a
//! content key to a device key an individualizing restore had just replaced, leaving a license
//! whose key never opens again.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use license_backup::*;

fn service(w: &World) -> Arc<dyn LicenseService> {
    let policy = ServicePolicy { max_devices: u32::MAX, ..ServicePolicy::default() };
    Arc::new(EmbeddedService::open_with_policy(w.path("races-service.db"), policy).unwrap())
}

/// Runs individualizing restores on `store` in a loop until `stop`.
fn individualize_loop(
    store: Arc<LicenseStore>,
    service: Arc<dyn LicenseService>,
    folder: String,
    stop: Arc<AtomicBool>,
) {
    let r = create_backup_restorer(store, service);
    r.set_property("RestorePath", PropertyValue::String(folder)).unwrap();
    while !stop.load(Ordering::Acquire) {
        let flags = RestoreFlags { individualize: true, replace_existing: false };
        let res =
            r.restore_licenses(flags, Recorder::default().callback()).unwrap().wait_timeout(Duration::from_secs(60));
        res.expect("restore hung").expect("individualizing restore");
    }
}

fn world_with_archive(w: &World, service: &Arc<dyn LicenseService>) -> String {
    let a = Arc::new(LicenseStore::open(w.path("a.db")).unwrap());
    fill(&a, 20, 0);
    let folder = w.folder("backup").display().to_string();
    let ra = create_backup_restorer(a, Arc::clone(service));
    ra.set_property("BackupPath", PropertyValue::String(folder.clone())).unwrap();
    ra.backup_licenses(BackupFlags::default(), Recorder::default().callback()).unwrap().wait().unwrap();
    folder
}

#[test]
fn licenses_added_during_an_individualizing_restore_stay_readable() {
    let w = World::new();
    let service = service(&w);
    let folder = world_with_archive(&w, &service);
    let store = Arc::new(LicenseStore::open(w.path("b.db")).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let t = {
        let (store, service, stop) = (Arc::clone(&store), Arc::clone(&service), Arc::clone(&stop));
        std::thread::spawn(move || individualize_loop(store, service, folder, stop))
    };
    let until = Instant::now() + Duration::from_secs(2);
    let mut n = 100u32;
    while Instant::now() < until {
        n += 1;
        let l = NewLicense {
            key_id: key_id(n),
            content_key: content_key(n),
            rights: Rights::default(),
            issuer: "x".into(),
            issued_at: 0,
        };
        store.add_license(&l, ConflictPolicy::Keep).unwrap();
        match store.content_key(&key_id(n)) {
            Ok(k) => assert_eq!(k, content_key(n)),
            Err(e) => panic!("license {n} added during an individualizing restore: {e}"),
        }
    }
    stop.store(true, Ordering::Release);
    t.join().unwrap();
    store.verify().expect("every content key opens");
}

#[test]
fn a_restore_racing_an_individualizing_restore_never_seals_to_a_stale_key() {
    let w = World::new();
    let service = service(&w);
    let folder = world_with_archive(&w, &service);
    let path = w.path("b.db");
    // Two store objects on one file: each has its own busy flag, so both restores run.
    let one = Arc::new(LicenseStore::open(&path).unwrap());
    let two = Arc::new(LicenseStore::open(&path).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let t = {
        let (service, stop, folder) = (Arc::clone(&service), Arc::clone(&stop), folder.clone());
        std::thread::spawn(move || individualize_loop(one, service, folder, stop))
    };
    let r = create_backup_restorer(Arc::clone(&two), service);
    r.set_property("RestorePath", PropertyValue::String(folder)).unwrap();
    let until = Instant::now() + Duration::from_secs(2);
    let (mut ok, mut busy) = (0, 0);
    while Instant::now() < until {
        let flags = RestoreFlags { individualize: false, replace_existing: true };
        let res =
            r.restore_licenses(flags, Recorder::default().callback()).unwrap().wait_timeout(Duration::from_secs(60));
        match res.expect("restore hung") {
            Ok(_) => ok += 1,
            Err(e) if e.code() == ErrorCode::Busy => busy += 1,
            Err(e) => panic!("restore: {e}"),
        }
        two.verify().expect("every content key opens");
    }
    stop.store(true, Ordering::Release);
    t.join().unwrap();
    two.verify().expect("every content key opens");
    assert!(ok > 0, "some restores went through ({ok} ok, {busy} busy)");
}
