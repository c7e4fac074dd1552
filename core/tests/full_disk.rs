//! The device's own disk full: a license store or a service ledger on a tmpfs mounted with a
//! size limit, so the kernel refuses writes with `ENOSPC` as a full disk does. Every write that
//! runs out of space is `NO_SPACE` and is rolled back: the store and the ledger stay as they
//! were and pass their checks, no quota is spent, and the same call succeeds once there is room.
//!
//! Mounting needs root. Without it these tests fail and say why; they are never skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::*;
use license_backup::*;

/// A tmpfs of a given size on a temporary folder; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(kib: u64) -> Tmpfs {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(root, "full-disk tests mount a tmpfs with a size limit: they need root");
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k,mode=0700"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount(8)");
        assert!(status.success(), "mount -t tmpfs failed at {}", dir.path().display());
        Tmpfs { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Makes room: the same file system, grown to `kib` KiB.
    fn grow(&self, kib: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(self.dir.path())
            .status()
            .expect("mount(8)");
        assert!(status.success(), "remount of {} failed", self.dir.path().display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// A restorer over `store` and `service`, backing up to and restoring from `folder`.
fn restorer(store: &Arc<LicenseStore>, service: &Arc<EmbeddedService>, folder: &Path) -> BackupRestorer {
    let r = create_backup_restorer(Arc::clone(store), service.clone());
    let folder = PropertyValue::String(folder.display().to_string());
    r.set_property("BackupPath", folder.clone()).unwrap();
    r.set_property("RestorePath", folder).unwrap();
    r
}

fn assert_no_space(res: Result<Summary>, rec: &Recorder, what: &str) {
    let err = res.expect_err(what);
    assert_eq!(err.code(), ErrorCode::NoSpace, "{what}: {err}");
    assert!(err.message().contains("full"), "{what}: the message says the disk is full: {err}");
    let kinds = rec.kinds();
    assert_eq!(kinds.iter().filter(|k| **k == "end").count(), 1, "{what}: one END: {kinds:?}");
    assert_eq!(kinds.last(), Some(&"end"), "{what}: END last: {kinds:?}");
    println!("{what}: {err}");
}

#[test]
fn adding_licenses_to_a_store_on_a_full_disk_is_no_space_and_changes_nothing() {
    let disk = Tmpfs::new(512);
    let store = LicenseStore::open(disk.path("device.db")).unwrap();
    fill(&store, 20, 0);
    let before = snapshot(&store);

    let err =
        store.add_licenses(&plain_licenses(1000..=9000), ConflictPolicy::Keep).expect_err("the disk is too small");
    assert_eq!(err.code(), ErrorCode::NoSpace, "{err}");
    assert_eq!(snapshot(&store), before, "the store is as it was");
    assert_eq!(store.verify().unwrap(), 20);
    drop(store);

    // Reopened: the same 20 licenses, and the same call succeeds once there is room.
    let store = LicenseStore::open(disk.path("device.db")).unwrap();
    assert_eq!(snapshot(&store), before, "the store is as it was after reopening");
    disk.grow(64 * 1024);
    store.add_licenses(&plain_licenses(1000..=9000), ConflictPolicy::Keep).unwrap();
    assert_eq!(store.verify().unwrap(), 20 + 8001);
}

#[test]
fn a_restore_onto_a_store_on_a_full_disk_is_no_space_and_spends_no_quota() {
    let w = World::new();
    let folder = w.folder("backup");
    let (a, ra) = w.device("a");
    fill(&a, 5000, 0);
    backup(&ra, false).0.unwrap();

    let disk = Tmpfs::new(512);
    let b = Arc::new(LicenseStore::open(disk.path("b.db")).unwrap());
    b.add_licenses(&plain_licenses(90_001..=90_002), ConflictPolicy::Keep).unwrap();
    let before = snapshot(&b);
    let rb = restorer(&b, &w.service, &folder);

    let (res, rec) = restore(&rb, RestoreFlags::default());
    assert_no_space(res, &rec, "restore onto a full disk");
    assert_eq!(snapshot(&b), before, "the store is as it was");
    assert_eq!(b.verify().unwrap(), 2);
    let audit = w.service.audit().unwrap();
    assert_eq!(
        (audit.pending, audit.confirmed, audit.released),
        (0, 0, 1),
        "the reservation is released, nothing confirmed: {audit:?}"
    );
    assert_eq!(audit.placements, 0, "no device slot is spent: {audit:?}");

    // Room made: the same restore succeeds, every license once.
    disk.grow(64 * 1024);
    let (res, _) = restore(&rb, RestoreFlags::default());
    assert_eq!(res.unwrap().licenses, 5000);
    assert_eq!(b.verify().unwrap(), 5002);
    let audit = w.service.audit().unwrap();
    assert_eq!(
        (audit.pending, audit.confirmed, audit.placements),
        (0, 1, 2 * 5000),
        "the archive's device and this one count for every license: {audit:?}"
    );
}

#[test]
fn a_ledger_on_a_full_disk_is_no_space_and_records_nothing() {
    let disk = Tmpfs::new(512);
    let service = Arc::new(EmbeddedService::open(disk.path("service.db")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("backup");
    std::fs::create_dir(&folder).unwrap();
    let a = Arc::new(LicenseStore::open(dir.path().join("a.db")).unwrap());
    a.add_licenses(&plain_licenses(1..=20_000), ConflictPolicy::Keep).unwrap();
    backup(&restorer(&a, &service, &folder), false).0.unwrap();

    let b = Arc::new(LicenseStore::open(dir.path().join("b.db")).unwrap());
    let rb = restorer(&b, &service, &folder);
    let before = service.audit().unwrap();
    let (res, rec) = restore(&rb, RestoreFlags::default());
    assert_no_space(res, &rec, "restore with the ledger's disk full");
    assert_eq!(b.license_count().unwrap(), 0, "the store is as it was");
    b.verify().unwrap();
    let audit = service.audit().unwrap();
    assert_eq!(audit, before, "the ledger recorded nothing");

    disk.grow(64 * 1024);
    let (res, _) = restore(&rb, RestoreFlags::default());
    assert_eq!(res.unwrap().licenses, 20_000);
    let audit = service.audit().unwrap();
    assert_eq!(audit.placements, 2 * 20_000, "the archive's device and this one count for every license: {audit:?}");
}
