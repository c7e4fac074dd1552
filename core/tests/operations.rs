//! Backup and restore through the public API: event order, flags, paths, cancellation,
//! concurrency and callbacks.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use license_backup::*;

fn names(events: &[StatusEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind().name()).collect()
}

#[test]
fn backup_events_come_in_order_with_restricted_titles() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 10, 4);
    ra.set_property("ProgressInterval", PropertyValue::U32(3)).unwrap();
    let (res, rec) = backup(&ra, false);
    let s = res.unwrap();
    assert_eq!((s.licenses, s.restricted, s.skipped), (8, 2, 0));
    assert!(s.bytes > 176);
    let ev = rec.events();
    assert_eq!(
        names(&ev),
        ["begin", "progress", "restricted_license", "progress", "restricted_license", "progress", "progress", "end"]
    );
    assert_eq!(ev[2], StatusEvent::RestrictedLicense { key_id: key_id(4), title: Some("Track 4".into()) });
    let dones: Vec<u64> = ev
        .iter()
        .filter_map(|e| match e {
            StatusEvent::Progress { done, total, .. } => {
                assert_eq!(*total, 10);
                Some(*done)
            }
            _ => None,
        })
        .collect();
    assert_eq!(dones, [3, 6, 9, 10]);
    match ev.last().unwrap() {
        StatusEvent::End { operation: OperationKind::Backup, outcome: Outcome::Completed(sum) } => {
            assert_eq!(sum, &s)
        }
        other => panic!("last event {other:?}"),
    }
}

#[test]
fn restricted_license_without_catalog_entry_has_no_title() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 2, 2);
    a.remove_catalog_entry(&key_id(2)).unwrap();
    let (_, rec) = backup(&ra, false);
    assert!(rec.events().contains(&StatusEvent::RestrictedLicense { key_id: key_id(2), title: None }));
}

#[test]
fn restore_events_come_in_order_and_licenses_arrive_intact() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 7, 0);
    backup(&ra, false).0.unwrap();
    let (b, rb) = w.device("b");
    rb.set_property("ProgressInterval", PropertyValue::U32(5)).unwrap();
    let (res, rec) = restore(&rb, RestoreFlags::default());
    assert_eq!(res.unwrap().licenses, 7);
    assert_eq!(names(&rec.events()), ["connecting", "disconnecting", "begin", "progress", "progress", "end"]);
    assert_eq!(snapshot(&a), snapshot(&b), "licenses, rights, play counts, titles and content keys survive");
    assert_eq!(b.get_license(&key_id(3)).unwrap().unwrap().rights.plays_remaining, Some(3));
    assert_eq!(b.verify().unwrap(), 7);
}

#[test]
fn empty_store_backs_up_and_restores_nothing() {
    let w = World::new();
    let (_a, ra) = w.device("a");
    let (res, rec) = backup(&ra, false);
    assert_eq!(res.unwrap().licenses, 0);
    assert_eq!(rec.events()[1], StatusEvent::Progress { operation: OperationKind::Backup, done: 0, total: 0 });
    let (b, rb) = w.device("b");
    assert_eq!(restore(&rb, RestoreFlags::default()).0.unwrap().licenses, 0);
    assert_eq!(b.license_count().unwrap(), 0);
}

#[test]
fn overwrite_off_keeps_the_existing_archive_byte_identical() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 5, 0);
    backup(&ra, false).0.unwrap();
    let before = read_all(&archive_path(&w));
    a.remove_license(&key_id(1)).unwrap();
    let (res, rec) = backup(&ra, false);
    assert_eq!(res.unwrap_err().code(), ErrorCode::BackupExists);
    assert_eq!(names(&rec.events()), ["begin", "end"]);
    assert_eq!(read_all(&archive_path(&w)), before);

    let (res, _) = backup(&ra, true);
    assert_eq!(res.unwrap().licenses, 4);
    assert_ne!(read_all(&archive_path(&w)), before);
    let leftovers: Vec<_> = std::fs::read_dir(w.path("backup")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, [std::ffi::OsString::from(archive::ARCHIVE_FILE_NAME)], "no temporary files left");
}

#[test]
fn path_errors() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 1, 0);
    ra.remove_property("BackupPath").unwrap();
    let err = ra.backup_licenses(BackupFlags::default(), Recorder::default().callback()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::PathNotSet);
    ra.remove_property("RestorePath").unwrap();
    assert_eq!(
        ra.restore_licenses(RestoreFlags::default(), Recorder::default().callback()).unwrap_err().code(),
        ErrorCode::PathNotSet
    );
    assert_eq!(ra.restore_quota().unwrap_err().code(), ErrorCode::PathNotSet);

    let cases = [
        (w.path("missing").display().to_string(), ErrorCode::PathNotFound),
        (w.path("a.db").display().to_string(), ErrorCode::NotAFolder),
        ("/sys".to_string(), ErrorCode::NotWritable),
    ];
    for (path, code) in cases {
        ra.set_property("BackupPath", PropertyValue::String(path.clone())).unwrap();
        let (res, rec) = backup(&ra, false);
        assert_eq!(res.unwrap_err().code(), code, "{path}");
        assert_eq!(names(&rec.events()), ["begin", "end"]);
    }
    ra.set_property("RestorePath", PropertyValue::String(w.path("missing").display().to_string())).unwrap();
    let (res, rec) = restore(&ra, RestoreFlags::default());
    assert_eq!(res.unwrap_err().code(), ErrorCode::PathNotFound);
    assert_eq!(names(&rec.events()), ["end"]);
    ra.set_property("RestorePath", PropertyValue::String(w.folder("empty").display().to_string())).unwrap();
    assert_eq!(restore(&ra, RestoreFlags::default()).0.unwrap_err().code(), ErrorCode::ArchiveMissing);
}

#[test]
fn wrong_service_key_is_refused_and_store_untouched() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 3, 0);
    backup(&ra, false).0.unwrap();
    let other: Arc<dyn LicenseService> = Arc::new(EmbeddedService::open(w.path("other.db")).unwrap());
    let b = Arc::new(LicenseStore::open(w.path("b.db")).unwrap());
    fill(&b, 1, 0);
    let before = snapshot(&b);
    let rb = create_backup_restorer(Arc::clone(&b), other);
    rb.set_property("RestorePath", PropertyValue::String(w.path("backup").display().to_string())).unwrap();
    let (res, rec) = restore(&rb, RestoreFlags::default());
    assert_eq!(res.unwrap_err().code(), ErrorCode::WrongKey);
    assert_eq!(names(&rec.events()), ["connecting", "disconnecting", "end"]);
    assert_eq!(snapshot(&b), before);
}

#[test]
fn service_offline_is_service_unavailable() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 3, 0);
    backup(&ra, false).0.unwrap();
    let (b, rb) = w.device("b");
    w.service.set_online(false);
    assert_eq!(rb.restore_quota().unwrap_err().code(), ErrorCode::ServiceUnavailable);
    let (res, rec) = restore(&rb, RestoreFlags::default());
    assert_eq!(res.unwrap_err().code(), ErrorCode::ServiceUnavailable);
    assert_eq!(names(&rec.events()), ["connecting", "disconnecting", "end"]);
    assert_eq!(b.license_count().unwrap(), 0);
    w.service.set_online(true);
    assert_eq!(restore(&rb, RestoreFlags::default()).0.unwrap().licenses, 3);
}

fn cancel_on_progress(r: &BackupRestorer, nth: usize, kind: OperationKind) -> (Result<Summary>, Recorder) {
    let rec = Recorder::default();
    let inner = rec.callback();
    let seen = Arc::new(AtomicUsize::new(0));
    let handle_slot: Arc<std::sync::Mutex<Option<OperationHandle>>> = Arc::default();
    let slot = Arc::clone(&handle_slot);
    let cb: Arc<dyn StatusCallback> = Arc::new(move |e: &StatusEvent| {
        inner.on_status(e)?;
        if matches!(e, StatusEvent::Progress { .. }) && seen.fetch_add(1, Ordering::SeqCst) + 1 == nth {
            // Cancel through a handle, as a UI thread would.
            while slot.lock().unwrap().is_none() {
                std::thread::yield_now();
            }
            slot.lock().unwrap().as_ref().unwrap().cancel();
        }
        Ok(())
    });
    let handle = match kind {
        OperationKind::Backup => r.backup_licenses(BackupFlags { overwrite: true }, cb).unwrap(),
        OperationKind::Restore => r.restore_licenses(RestoreFlags::default(), cb).unwrap(),
    };
    *handle_slot.lock().unwrap() = Some(handle.clone());
    (handle.wait(), rec)
}

#[test]
fn cancelling_a_backup_midway_keeps_the_previous_archive() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 50, 0);
    backup(&ra, false).0.unwrap();
    let before = read_all(&archive_path(&w));
    a.remove_license(&key_id(1)).unwrap();
    ra.set_property("ProgressInterval", PropertyValue::U32(5)).unwrap();
    let (res, rec) = cancel_on_progress(&ra, 3, OperationKind::Backup);
    assert_eq!(res.unwrap_err().code(), ErrorCode::Cancelled);
    let ev = rec.events();
    assert_eq!(names(&ev), ["begin", "progress", "progress", "progress", "end"]);
    assert_eq!(normalized(ev.last().unwrap())["error"], "CANCELLED");
    assert_eq!(read_all(&archive_path(&w)), before);
    assert_eq!(std::fs::read_dir(w.path("backup")).unwrap().count(), 1, "no temporary file left");
}

#[test]
fn cancelling_a_restore_midway_leaves_the_store_unchanged() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 50, 0);
    backup(&ra, false).0.unwrap();
    let (b, rb) = w.device("b");
    b.add_license(
        &NewLicense {
            key_id: KeyId::from_bytes([9; 16]),
            content_key: vec![1, 2, 3],
            rights: Rights::default(),
            issuer: "x".into(),
            issued_at: 0,
        },
        ConflictPolicy::Keep,
    )
    .unwrap();
    let before = snapshot(&b);
    let id_before = b.device_id().unwrap();
    rb.set_property("ProgressInterval", PropertyValue::U32(10)).unwrap();
    let (res, rec) = cancel_on_progress(&rb, 2, OperationKind::Restore);
    assert_eq!(res.unwrap_err().code(), ErrorCode::Cancelled);
    assert_eq!(names(&rec.events()), ["connecting", "disconnecting", "begin", "progress", "progress", "end"]);
    assert_eq!(snapshot(&b), before);
    assert_eq!(b.device_id().unwrap(), id_before);
}

#[test]
fn cancel_methods_of_the_restorer_stop_the_running_operation() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 20, 0);
    ra.set_property("ProgressInterval", PropertyValue::U32(1)).unwrap();
    let ra = Arc::new(ra);
    let weak = Arc::downgrade(&ra);
    let rec = Recorder::default();
    let inner = rec.callback();
    let cb: Arc<dyn StatusCallback> = Arc::new(move |e: &StatusEvent| {
        inner.on_status(e)?;
        if let StatusEvent::Progress { done: 2, .. } = e {
            weak.upgrade().unwrap().cancel_license_backup();
        }
        Ok(())
    });
    let res = ra.backup_licenses(BackupFlags::default(), cb).unwrap().wait();
    assert_eq!(res.unwrap_err().code(), ErrorCode::Cancelled);
    assert_eq!(names(&rec.events()), ["begin", "progress", "progress", "end"]);
    assert!(!archive_path(&w).exists());
    ra.cancel_license_restore(); // nothing running: a no-op
}

#[test]
fn the_fifth_distinct_device_is_refused_but_repeats_are_free() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 4, 0);
    backup(&ra, false).0.unwrap();
    let devices: Vec<_> = ["b", "c", "d"].iter().map(|n| w.device(n)).collect();
    for (i, (_, r)) in devices.iter().enumerate() {
        let q = r.restore_quota().unwrap();
        assert_eq!(q.restores_remaining, 3 - i as u32);
        assert!(!q.device_already_counted);
        assert_eq!(restore(r, RestoreFlags::default()).0.unwrap().licenses, 4);
    }
    let (e, re) = w.device("e");
    let q = re.restore_quota().unwrap();
    assert_eq!((q.licenses, q.max_devices, q.restores_remaining, q.can_restore()), (4, 4, 0, false));
    let (res, rec) = restore(&re, RestoreFlags::default());
    assert_eq!(res.unwrap_err().code(), ErrorCode::RestoreLimitExceeded);
    let ev = rec.events();
    assert_eq!(names(&ev), ["connecting", "disconnecting", "refused", "end"]);
    match &ev[2] {
        StatusEvent::Refused { code, url, message } => {
            assert_eq!(*code, ErrorCode::RestoreLimitExceeded);
            assert_eq!(url, service::DEFAULT_REFUSAL_URL);
            assert!(message.contains("4 of 4"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.license_count().unwrap(), 0);
    // A device that already counts restores again for free; so does the original.
    let (b, rb) = &devices[0];
    b.remove_license(&key_id(1)).unwrap();
    assert!(rb.restore_quota().unwrap().device_already_counted);
    let s = restore(rb, RestoreFlags::default()).0.unwrap();
    assert_eq!((s.licenses, s.skipped), (1, 3));
    ra.set_property("RestorePath", PropertyValue::String(w.path("backup").display().to_string())).unwrap();
    assert_eq!(restore(&ra, RestoreFlags::default()).0.unwrap().skipped, 4);
}

#[test]
fn individualize_gives_a_fresh_identity_and_rebinds_every_license() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 5, 0);
    backup(&ra, false).0.unwrap();
    let (b, rb) = w.device("b");
    b.add_license(
        &NewLicense {
            key_id: KeyId::from_bytes([0xEE; 16]),
            content_key: b"own-key".to_vec(),
            rights: Rights::default(),
            issuer: "x".into(),
            issued_at: 0,
        },
        ConflictPolicy::Keep,
    )
    .unwrap();
    let old_id = b.device_id().unwrap();
    let s = restore(&rb, RestoreFlags { individualize: true, replace_existing: false }).0.unwrap();
    assert_eq!(s.licenses, 5);
    assert_ne!(b.device_id().unwrap(), old_id);
    assert_eq!(b.verify().unwrap(), 6, "every license opens with the new device key");
    assert_eq!(b.content_key(&KeyId::from_bytes([0xEE; 16])).unwrap(), b"own-key");
    assert_eq!(b.content_key(&key_id(2)).unwrap(), content_key(2));
    // The new identity was counted as a new device (A and B's new identity: two of four).
    let q = rb.restore_quota().unwrap();
    assert!(q.device_already_counted);
    assert_eq!(q.restores_remaining, 2);
}

#[test]
fn existing_licenses_are_kept_unless_replace_is_asked() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 3, 0);
    backup(&ra, false).0.unwrap();
    let (b, rb) = w.device("b");
    let mut mine = NewLicense {
        key_id: key_id(2),
        content_key: b"device-b-copy".to_vec(),
        rights: Rights { plays_remaining: Some(1), ..Rights::default() },
        issuer: "b".into(),
        issued_at: 5,
    };
    b.add_license(&mine, ConflictPolicy::Keep).unwrap();
    let s = restore(&rb, RestoreFlags::default()).0.unwrap();
    assert_eq!((s.licenses, s.skipped), (2, 1));
    assert_eq!(b.content_key(&key_id(2)).unwrap(), b"device-b-copy");
    let s = restore(&rb, RestoreFlags { individualize: false, replace_existing: true }).0.unwrap();
    assert_eq!((s.licenses, s.skipped), (3, 0));
    assert_eq!(b.content_key(&key_id(2)).unwrap(), content_key(2));
    mine.issuer = "again".into();
    assert_eq!(b.add_license(&mine, ConflictPolicy::Keep).unwrap_err().code(), ErrorCode::LicenseExists);
}

#[test]
fn a_second_concurrent_operation_is_busy() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 5, 0);
    ra.set_property("ProgressInterval", PropertyValue::U32(1)).unwrap();
    let ra = Arc::new(ra);
    let weak = Arc::downgrade(&ra);
    let codes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&codes);
    let cb: Arc<dyn StatusCallback> = Arc::new(move |e: &StatusEvent| {
        if let StatusEvent::Progress { done: 1, .. } = e {
            let r = weak.upgrade().unwrap();
            let second = r.restore_licenses(RestoreFlags::default(), Arc::new(|_: &StatusEvent| Ok(())));
            sink.lock().unwrap().push(second.unwrap_err().code());
            let third = r.backup_licenses(BackupFlags::default(), Arc::new(|_: &StatusEvent| Ok(())));
            sink.lock().unwrap().push(third.unwrap_err().code());
        }
        Ok(())
    });
    ra.backup_licenses(BackupFlags::default(), cb).unwrap().wait().unwrap();
    assert_eq!(*codes.lock().unwrap(), [ErrorCode::Busy, ErrorCode::Busy]);
    // Once finished, the next operation starts.
    assert!(backup(&ra, true).0.is_ok());
}

#[test]
fn a_panicking_callback_still_gets_end_and_the_caller_learns_of_it() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 5, 0);
    let ends = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&ends);
    let cb: Arc<dyn StatusCallback> = Arc::new(move |e: &StatusEvent| {
        if let StatusEvent::End { outcome, .. } = e {
            assert_eq!(outcome.error_code(), Some(ErrorCode::CallbackFailed));
            seen.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        if matches!(e, StatusEvent::Progress { .. }) {
            panic!("listener bug");
        }
        Ok(())
    });
    let err = ra.backup_licenses(BackupFlags::default(), cb).unwrap().wait().unwrap_err();
    assert_eq!(err.code(), ErrorCode::CallbackFailed);
    assert!(err.message().contains("listener bug"), "{}", err.message());
    assert_eq!(ends.load(Ordering::SeqCst), 1);
    assert!(!archive_path(&w).exists(), "a failed backup leaves nothing behind");
    // The process lives on and the store is usable.
    assert_eq!(backup(&ra, false).0.unwrap().licenses, 5);
}

#[test]
fn a_callback_error_stops_the_operation_with_its_message() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 5, 0);
    backup(&ra, false).0.unwrap();
    let (b, rb) = w.device("b");
    let rec = Recorder::default();
    let inner = rec.callback();
    let cb: Arc<dyn StatusCallback> = Arc::new(move |e: &StatusEvent| {
        inner.on_status(e)?;
        if matches!(e, StatusEvent::Begin { .. }) { Err(CallbackError::new("user said no")) } else { Ok(()) }
    });
    let err = rb.restore_licenses(RestoreFlags::default(), cb).unwrap().wait().unwrap_err();
    assert_eq!((err.code(), err.message()), (ErrorCode::CallbackFailed, "user said no"));
    assert_eq!(names(&rec.events()), ["connecting", "disconnecting", "begin", "end"]);
    assert_eq!(b.license_count().unwrap(), 0);
}

#[test]
fn an_end_callback_error_never_changes_the_outcome() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 3, 0);
    let cb: Arc<dyn StatusCallback> = Arc::new(|e: &StatusEvent| {
        if matches!(e, StatusEvent::End { .. }) { Err(CallbackError::new("end handler failed")) } else { Ok(()) }
    });
    let h = ra.backup_licenses(BackupFlags::default(), cb.clone()).unwrap();
    // The backup completed: the waiter gets its summary, the archive stands.
    assert_eq!(h.wait().unwrap().licenses, 3);
    assert!(h.is_finished());
    assert!(matches!(h.outcome(), Some(Outcome::Completed(_))));
    assert!(archive_path(&w).exists(), "the backup itself completed");
    let e = h.end_callback_error().expect("the END callback's failure is kept for the caller");
    assert_eq!(e.code(), ErrorCode::CallbackFailed);
    assert!(e.message().contains("end handler failed"), "{}", e.message());

    // A restore whose END callback fails is applied all the same.
    let (b, rb) = w.device("b");
    let h = rb.restore_licenses(RestoreFlags::default(), cb.clone()).unwrap();
    assert_eq!(h.wait().unwrap().licenses, 3);
    assert_eq!(snapshot(&a), snapshot(&b));
    assert!(h.end_callback_error().is_some());

    // A failed operation keeps its own error, not the END callback's.
    let h = ra.backup_licenses(BackupFlags::default(), cb).unwrap();
    assert_eq!(h.wait().unwrap_err().code(), ErrorCode::BackupExists);
    assert_eq!(h.end_callback_error().unwrap().code(), ErrorCode::CallbackFailed);

    // An END callback that succeeds leaves nothing there.
    let h = ra.backup_licenses(BackupFlags { overwrite: true }, Recorder::default().callback()).unwrap();
    h.wait().unwrap();
    assert_eq!(h.end_callback_error(), None);
}

#[test]
fn a_panicking_end_callback_leaves_the_outcome_and_the_process_alone() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 2, 0);
    let cb: Arc<dyn StatusCallback> = Arc::new(|e: &StatusEvent| {
        if matches!(e, StatusEvent::End { .. }) {
            panic!("end listener bug");
        }
        Ok(())
    });
    let h = ra.backup_licenses(BackupFlags::default(), cb).unwrap();
    assert_eq!(h.wait().unwrap().licenses, 2);
    let e = h.end_callback_error().unwrap();
    assert_eq!(e.code(), ErrorCode::CallbackFailed);
    assert!(e.message().contains("end listener bug"), "{}", e.message());
    // The store is free for the next operation.
    assert_eq!(backup(&ra, true).0.unwrap().licenses, 2);
}

#[test]
fn wait_timeout_and_handles() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 3, 0);
    let gate = Arc::new(std::sync::Barrier::new(2));
    let g = Arc::clone(&gate);
    let cb: Arc<dyn StatusCallback> = Arc::new(move |e: &StatusEvent| {
        if matches!(e, StatusEvent::Begin { .. }) {
            g.wait();
        }
        Ok(())
    });
    let h = ra.backup_licenses(BackupFlags::default(), cb).unwrap();
    assert_eq!(h.kind(), OperationKind::Backup);
    assert!(h.wait_timeout(std::time::Duration::from_millis(20)).is_none());
    assert!(!h.is_finished());
    gate.wait();
    assert_eq!(h.wait_timeout(std::time::Duration::from_secs(30)).unwrap().unwrap().licenses, 3);
    assert!(matches!(h.outcome(), Some(Outcome::Completed(_))));
}

#[test]
fn properties_mirror_the_sdk() {
    let w = World::new();
    let (_a, ra) = w.device("a");
    assert_eq!(ra.property_count(), 2);
    assert_eq!(ra.property_by_index(0).unwrap().0, "BackupPath");
    assert_eq!(ra.set_property("Bogus", PropertyValue::Bool(true)).unwrap_err().code(), ErrorCode::UnknownProperty);
    assert_eq!(ra.set_property("RestorePath", PropertyValue::U32(3)).unwrap_err().code(), ErrorCode::WrongPropertyType);
    ra.remove_all_properties();
    assert_eq!(ra.property_count(), 0);
    assert_eq!(ra.get_property("BackupPath").unwrap(), None);
}

/// A backup spanning several batches (the store is read on one thread, sealed and reported on
/// another) that meets a damaged content key stops at that license with `LICENSE_TAMPERED`, having
/// reported exactly the licenses before it, whichever thread met the damage: a key whose
/// ciphertext was altered fails to open on the sealing thread, one too short to be sealed is
/// refused by the reading thread. The previous archive is kept, no temporary file is left.
#[test]
fn a_damaged_content_key_midway_stops_the_backup_at_that_license() {
    let w = World::new();
    let (a, ra) = w.device("a");
    // ~100 bytes a record: about 1,000 licenses a 128 KiB batch, so the damage is batches in.
    a.add_licenses(&plain_licenses(1..=4000), ConflictPolicy::Keep).unwrap();
    backup(&ra, false).0.unwrap();
    let before = read_all(&archive_path(&w));
    ra.set_property("ProgressInterval", PropertyValue::U32(1)).unwrap();
    let db = rusqlite::Connection::open(w.path("a.db")).unwrap();
    let sealed = |n: u32| -> Vec<u8> {
        db.query_row("SELECT sealed_key FROM licenses WHERE key_id = ?1", [key_id(n).as_bytes().as_slice()], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let set_sealed = |n: u32, value: &[u8]| {
        db.execute("UPDATE licenses SET sealed_key = ?1 WHERE key_id = ?2", (value, key_id(n).as_bytes().as_slice()))
            .unwrap();
    };
    for (at, damage, message) in [
        (2500u32, "flip", "do not match its seal"),
        (3100, "truncate", "do not match its seal"),
        (1, "flip", "do not match its seal"),
    ] {
        let original = sealed(at);
        let mut damaged = original.clone();
        match damage {
            "flip" => damaged[14] ^= 1,
            _ => damaged.truncate(10),
        }
        set_sealed(at, &damaged);
        for _ in 0..3 {
            let (res, rec) = backup(&ra, true);
            let err = res.unwrap_err();
            assert_eq!(err.code(), ErrorCode::LicenseTampered, "{damage} at {at}: {err}");
            assert!(err.message().contains(message) && err.message().contains(&key_id(at).to_string()), "{err}");
            let ev = rec.events();
            let done: Vec<u64> = ev
                .iter()
                .filter_map(|e| match e {
                    StatusEvent::Progress { done, .. } => Some(*done),
                    _ => None,
                })
                .collect();
            let expected: Vec<u64> = (1..u64::from(at)).collect();
            assert!(
                done == expected,
                "{damage} at {at}: PROGRESS for every license before it, got {} ending at {:?}",
                done.len(),
                done.last()
            );
            assert_eq!(names(&ev).first(), Some(&"begin"));
            assert_eq!(names(&ev).last(), Some(&"end"));
            assert_eq!(ev.len(), at as usize + 1);
            assert_eq!(read_all(&archive_path(&w)), before, "the previous archive is kept");
            assert_eq!(std::fs::read_dir(w.path("backup")).unwrap().count(), 1, "no temporary file left");
        }
        set_sealed(at, &original);
    }
    let (res, _) = backup(&ra, true);
    assert_eq!(res.unwrap().licenses, 4000);
}
