//! Event delivery: events reach the callback on one delivery thread, in order, in batches of
//! what queued up meanwhile, each with its emission time; a cancel or an error inside a batch
//! stops delivery there; nothing is committed before every event was delivered.

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use license_backup::*;

type OnEvent = Box<dyn Fn(&StatusEvent) -> std::result::Result<(), CallbackError> + Send + Sync>;

/// A batch callback recording every batch, its thread and the delivery time of each event.
#[derive(Default)]
struct BatchRecorder {
    batches: Mutex<Vec<Vec<(Emitted, u64)>>>,
    threads: Mutex<Vec<String>>,
    /// Sleeps this long on the first PROGRESS, so the engine queues events meanwhile.
    stall_ms: u64,
    /// Called after each event; returning Err stops the batch with that error.
    on_event: Option<OnEvent>,
}

impl StatusCallback for BatchRecorder {
    fn on_status(&self, _: &StatusEvent) -> std::result::Result<(), CallbackError> {
        unreachable!("the engine delivers through on_status_batch")
    }

    fn on_status_batch(&self, batch: &[Emitted], stop: &dyn Fn() -> bool) -> std::result::Result<(), CallbackError> {
        self.threads.lock().unwrap().push(std::thread::current().name().unwrap_or("?").to_string());
        let mut got = Vec::new();
        let mut result = Ok(());
        for e in batch {
            if self.stall_ms > 0 && matches!(e.event, StatusEvent::Progress { done: 1, .. }) {
                std::thread::sleep(Duration::from_millis(self.stall_ms));
            }
            got.push((e.clone(), monotonic_ns()));
            if let Some(f) = &self.on_event {
                if let Err(err) = f(&e.event) {
                    result = Err(err);
                    break;
                }
            }
            if stop() {
                break;
            }
        }
        self.batches.lock().unwrap().push(got);
        result
    }
}

impl BatchRecorder {
    fn events(&self) -> Vec<StatusEvent> {
        self.batches.lock().unwrap().iter().flatten().map(|(e, _)| e.event.clone()).collect()
    }
}

/// Adds one more license, so the next backup differs from the previous one.
fn add_one(store: &LicenseStore, n: u32) {
    let license = NewLicense {
        key_id: key_id(n),
        content_key: content_key(n),
        rights: Rights::default(),
        issuer: "https://licenses.example.com".into(),
        issued_at: 1,
    };
    store.add_license(&license, ConflictPolicy::Keep).unwrap();
}

fn normalized(events: &[StatusEvent]) -> Vec<serde_json::Value> {
    events.iter().map(common::normalized).collect()
}

#[test]
fn batches_keep_order_carry_emission_times_and_come_from_one_thread() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 1500, 7);
    ra.set_property("ProgressInterval", PropertyValue::U32(1)).unwrap();
    let (plain, rec) = backup(&ra, true);
    plain.unwrap();

    let cb = Arc::new(BatchRecorder { stall_ms: 200, ..Default::default() });
    let summary = ra.backup_licenses(BackupFlags { overwrite: true }, cb.clone()).unwrap().wait().unwrap();
    assert_eq!((summary.licenses, summary.restricted), (1500 - 1500 / 7, 1500 / 7));

    // The same sequence as one event per call.
    assert_eq!(normalized(&cb.events()), normalized(&rec.events()));
    let batches = cb.batches.lock().unwrap();
    assert!(batches.iter().any(|b| b.len() > 1), "events queued during the stall came in one batch");
    assert!(batches.iter().all(|b| b.len() <= 512));
    // END comes alone, last.
    assert_eq!(batches.last().unwrap().len(), 1);
    let all: Vec<&(Emitted, u64)> = batches.iter().flatten().collect();
    for pair in all.windows(2) {
        assert!(pair[0].0.emitted_ns <= pair[1].0.emitted_ns, "emission times are in order");
    }
    for (e, delivered) in &all {
        assert!(e.emitted_ns <= *delivered, "delivered after it was emitted");
    }
    let stalled = all.iter().map(|(e, d)| d - e.emitted_ns).max().unwrap();
    assert!(stalled >= 150_000_000, "an event queued during the stall waited for it ({stalled} ns)");
    let threads = cb.threads.lock().unwrap();
    assert!(threads.iter().all(|t| t == "license-backup-events"), "{threads:?}");
}

#[test]
fn a_cancel_inside_a_batch_drops_the_rest_and_keeps_the_previous_archive() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 1200, 0);
    ra.set_property("ProgressInterval", PropertyValue::U32(1)).unwrap();
    backup(&ra, true).0.unwrap();
    let before = read_all(&archive_path(&w));
    add_one(&a, 9999);

    let handle: Arc<OnceLock<OperationHandle>> = Arc::new(OnceLock::new());
    let h = Arc::clone(&handle);
    let cb = Arc::new(BatchRecorder {
        stall_ms: 100,
        on_event: Some(Box::new(move |e| {
            if let StatusEvent::Progress { done: 900, .. } = e {
                while h.get().is_none() {
                    std::thread::yield_now();
                }
                h.get().unwrap().cancel();
            }
            Ok(())
        })),
        ..Default::default()
    });
    let op = ra.backup_licenses(BackupFlags { overwrite: true }, cb.clone()).unwrap();
    handle.set(op.clone()).unwrap();
    assert_eq!(op.wait().unwrap_err().code(), ErrorCode::Cancelled);

    let kinds: Vec<(&str, Option<u64>)> = cb
        .events()
        .iter()
        .rev()
        .take(2)
        .map(|e| match e {
            StatusEvent::Progress { done, .. } => ("progress", Some(*done)),
            other => (other.kind().name(), None),
        })
        .collect();
    assert_eq!(kinds, [("end", None), ("progress", Some(900))], "nothing after the cancelling event but END");
    assert_eq!(read_all(&archive_path(&w)), before, "the previous archive is untouched");
}

#[test]
fn an_error_on_the_last_progress_fails_the_backup_before_it_replaces_the_archive() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 500, 5);
    backup(&ra, true).0.unwrap();
    let before = read_all(&archive_path(&w));
    add_one(&a, 9999);
    let cb = Arc::new(BatchRecorder {
        on_event: Some(Box::new(|e| match e {
            StatusEvent::Progress { done, total, .. } if done == total => Err(CallbackError::new("disk quota")),
            _ => Ok(()),
        })),
        ..Default::default()
    });
    let err = ra.backup_licenses(BackupFlags { overwrite: true }, cb.clone()).unwrap().wait().unwrap_err();
    assert_eq!((err.code(), err.message()), (ErrorCode::CallbackFailed, "disk quota"));
    assert_eq!(read_all(&archive_path(&w)), before);
    assert_eq!(cb.events().last().unwrap().kind(), EventKind::End);
}

#[test]
fn a_restore_whose_callback_fails_on_the_last_progress_leaves_the_store_unchanged() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 300, 0);
    backup(&ra, true).0.unwrap();
    let (b, rb) = w.device("b");
    let cb = Arc::new(BatchRecorder {
        on_event: Some(Box::new(|e| match e {
            StatusEvent::Progress { done, total, .. } if done == total => Err(CallbackError::new("no")),
            _ => Ok(()),
        })),
        ..Default::default()
    });
    let err = rb.restore_licenses(RestoreFlags::default(), cb).unwrap().wait().unwrap_err();
    assert_eq!(err.code(), ErrorCode::CallbackFailed);
    assert_eq!(b.license_count().unwrap(), 0);
}

#[test]
fn begin_is_delivered_even_when_the_cancel_came_first() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 50, 0);
    let rec = Recorder::default();
    let op = ra.backup_licenses(BackupFlags::default(), rec.callback()).unwrap();
    op.cancel();
    let res = op.wait();
    // BEGIN is delivered synchronously, never dropped: it is first whether or not the cancel
    // was seen before it.
    let kinds = rec.kinds();
    assert_eq!(kinds.first(), Some(&"begin"));
    assert_eq!(kinds.last(), Some(&"end"));
    if let Err(e) = res {
        assert_eq!(e.code(), ErrorCode::Cancelled);
    }
}

#[test]
fn a_stalled_callback_holds_the_engine_back_at_a_bounded_queue() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 6000, 0);
    ra.set_property("ProgressInterval", PropertyValue::U32(1)).unwrap();
    // The callback sleeps 300 ms on the first PROGRESS: the engine queues meanwhile, then waits.
    let cb = Arc::new(BatchRecorder { stall_ms: 300, ..Default::default() });
    // (With the bound removed, all 6000 would be emitted during the stall.)
    ra.backup_licenses(BackupFlags { overwrite: true }, cb.clone()).unwrap().wait().unwrap();
    let batches = cb.batches.lock().unwrap();
    let all: Vec<&(Emitted, u64)> = batches.iter().flatten().collect();
    let first = all.iter().position(|(e, _)| matches!(e.event, StatusEvent::Progress { done: 1, .. })).unwrap();
    let resumed = all[first].1; // when the stalled delivery returned
    let ahead = all.iter().filter(|(e, _)| e.emitted_ns < resumed).count() - first - 1;
    // At most 512 queued plus one chunk being filled: the engine did not run away.
    assert!(ahead <= 512 + 64, "{ahead} events were emitted while the callback stalled");
    assert!(ahead >= 64, "the engine went on while the callback stalled ({ahead} events)");
    assert_eq!(all.len(), 1 + 6000 + 1, "BEGIN, 6000 PROGRESS (the last at 6000/6000), END");
}
