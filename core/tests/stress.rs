//! Concurrency stress: operation threads back up, restore (sometimes individualizing) and
//! cancel at random while mutator threads add and remove licenses and catalog entries, all on
//! one store file: some threads share one `Arc<LicenseStore>`, others open their own
//! `LicenseStore` on the same path. Seeded (`LB_STRESS_SEED`), time-bounded (`LB_STRESS_SECS`,
//! default 6). Every wait has a timeout, so a deadlock fails the test instead of hanging CI.
//! Checked: no panic, every started operation delivers exactly one END, last; outcomes are only
//! success, `CANCELLED`, `BUSY` (at the call) or the expected path errors; the store passes
//! `verify()` at the end.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use license_backup::*;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// A hang of a single operation longer than this fails the test.
const OP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Tally {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn add(&self, what: impl Into<String>) {
        *self.counts.lock().unwrap().entry(what.into()).or_default() += 1;
    }
}

/// Checks the events of one operation: exactly one END, last, matching the outcome.
fn check_events(events: &[StatusEvent], result: &Result<Summary>) {
    let ends = events.iter().filter(|e| matches!(e, StatusEvent::End { .. })).count();
    assert_eq!(ends, 1, "exactly one END: {events:?}");
    match events.last() {
        Some(StatusEvent::End { outcome, .. }) => assert_eq!(&outcome.clone().into_result(), result),
        other => panic!("END is not last: {other:?}"),
    }
}

fn op_thread(
    id: usize,
    seed: u64,
    store: Arc<LicenseStore>,
    service: Arc<dyn LicenseService>,
    folders: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let mut rng = Rng(seed ^ (id as u64).wrapping_mul(0x1234_5678_9ABC_DEF1));
    let restorer = create_backup_restorer(store, service);
    while !stop.load(Ordering::Acquire) {
        let folder = folders[rng.below(folders.len() as u64) as usize].clone();
        restorer.set_property("BackupPath", PropertyValue::String(folder.clone())).unwrap();
        restorer.set_property("RestorePath", PropertyValue::String(folder)).unwrap();
        restorer.set_property("ProgressInterval", PropertyValue::U32(1 + rng.below(20) as u32)).unwrap();
        let rec = Recorder::default();
        let is_backup = rng.chance(55);
        let started = if is_backup {
            restorer.backup_licenses(BackupFlags { overwrite: rng.chance(80) }, rec.callback())
        } else {
            let flags = RestoreFlags { individualize: rng.chance(15), replace_existing: rng.chance(30) };
            restorer.restore_licenses(flags, rec.callback())
        };
        let kind = if is_backup { "backup" } else { "restore" };
        let handle = match started {
            Ok(h) => h,
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::Busy, "{kind} failed at the call: {e}");
                tally.add(format!("{kind}: BUSY at the call"));
                std::thread::sleep(Duration::from_micros(200 + rng.below(2000)));
                continue;
            }
        };
        match rng.below(4) {
            0 => handle.cancel(),
            1 => {
                std::thread::sleep(Duration::from_micros(rng.below(3000)));
                if is_backup { restorer.cancel_license_backup() } else { restorer.cancel_license_restore() }
            }
            _ => {}
        }
        let result = handle.wait_timeout(OP_TIMEOUT).unwrap_or_else(|| panic!("{kind} hung (deadlock?)"));
        check_events(&rec.events(), &result);
        let label = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => {
                let allowed: &[ErrorCode] = if is_backup {
                    &[ErrorCode::Cancelled, ErrorCode::BackupExists]
                } else {
                    &[ErrorCode::Cancelled, ErrorCode::ArchiveMissing, ErrorCode::Busy]
                };
                assert!(allowed.contains(&e.code()), "{kind} failed: {e}");
                e.code().name().to_string()
            }
        };
        tally.add(format!("{kind}: {label}"));
    }
}

fn mutator_thread(id: usize, seed: u64, store: Arc<LicenseStore>, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut rng = Rng(seed ^ 0xDEAD_BEEF ^ id as u64);
    while !stop.load(Ordering::Acquire) {
        let n = 1 + rng.below(200) as u32;
        match rng.below(5) {
            0 | 1 => {
                let l = NewLicense {
                    key_id: key_id(n),
                    content_key: content_key(n),
                    rights: Rights { backup_allowed: n % 7 != 0, ..Rights::default() },
                    issuer: "https://issuer.example".into(),
                    issued_at: 1_700_000_000,
                };
                let policy = if rng.chance(50) { ConflictPolicy::Keep } else { ConflictPolicy::Replace };
                match store.add_license(&l, policy) {
                    Ok(()) => tally.add("add"),
                    Err(e) if e.code() == ErrorCode::LicenseExists => tally.add("add: LICENSE_EXISTS"),
                    Err(e) => panic!("add_license: {e}"),
                }
            }
            2 => {
                store.remove_license(&key_id(n)).unwrap();
                tally.add("remove");
            }
            3 => {
                store.set_catalog_entry(&key_id(n), &CatalogEntry::titled(format!("Track {n}"))).unwrap();
                tally.add("catalog");
            }
            _ => {
                // Reads: a content key must open whenever the license is there.
                match store.content_key(&key_id(n)) {
                    Ok(k) => assert_eq!(k, content_key(n)),
                    Err(e) if e.code() == ErrorCode::LicenseNotFound => {}
                    Err(e) => panic!("content_key: {e}"),
                }
                tally.add("read");
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(500)));
    }
}

#[test]
fn concurrent_backups_restores_cancels_and_edits_keep_the_store_consistent() {
    let secs = env_u64("LB_STRESS_SECS", 6);
    let seed = env_u64("LB_STRESS_SEED", 20_240_601);
    let w = World::new();
    let policy = ServicePolicy { max_devices: u32::MAX, ..ServicePolicy::default() };
    let service: Arc<dyn LicenseService> =
        Arc::new(EmbeddedService::open_with_policy(w.path("stress-service.db"), policy).unwrap());
    let path = w.path("device.db");
    let shared = Arc::new(LicenseStore::open(&path).unwrap());
    fill(&shared, 50, 7);
    let folders = Arc::new(vec![w.folder("f0").display().to_string(), w.folder("f1").display().to_string()]);
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let (done_tx, done_rx) = mpsc::channel::<usize>();
    let mut threads = Vec::new();
    let running = Arc::new(AtomicUsize::new(0));
    // 4 operation threads (2 on the shared Arc, 2 with their own store object) and 3 mutators
    // (1 shared, 2 own).
    for id in 0..7 {
        let store = if id % 2 == 0 { Arc::clone(&shared) } else { Arc::new(LicenseStore::open(&path).unwrap()) };
        let (stop, tally, done_tx, service, folders) =
            (stop.clone(), tally.clone(), done_tx.clone(), service.clone(), folders.clone());
        running.fetch_add(1, Ordering::AcqRel);
        threads.push(
            std::thread::Builder::new()
                .name(format!("stress-{id}"))
                .spawn(move || {
                    if id < 4 {
                        op_thread(id, seed, store, service, folders, stop, tally);
                    } else {
                        mutator_thread(id, seed, store, stop, tally);
                    }
                    let _ = done_tx.send(id);
                })
                .unwrap(),
        );
    }
    drop(done_tx);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Release);
    // Every thread must finish soon after the stop; a thread that panicked drops its sender
    // without sending, which shows up at join.
    let deadline = Instant::now() + OP_TIMEOUT + Duration::from_secs(30);
    let mut finished = 0;
    while finished < threads.len() {
        match done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(_) => finished += 1,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("stress threads did not finish: deadlock"),
        }
    }
    let elapsed = started.elapsed();
    for t in threads {
        if let Err(p) = t.join() {
            std::panic::resume_unwind(p);
        }
    }
    let store = LicenseStore::open(&path).unwrap();
    let licenses = store.verify().expect("the store is consistent after the stress run");
    for l in store.list_licenses().unwrap() {
        let n = u32::from_be_bytes(l.key_id.as_bytes()[12..].try_into().unwrap());
        assert_eq!(store.content_key(&l.key_id).unwrap(), content_key(n), "content key of {n}");
    }
    let counts = tally.counts.lock().unwrap().clone();
    let total: u64 = counts.values().sum();
    println!(
        "stress: 7 threads (4 operations, 3 mutators; 4 on a shared Arc, 3 own store objects), seed {seed}, \
         {elapsed:?}, {total} calls, {licenses} licenses at the end, verify() ok"
    );
    for (k, v) in &counts {
        println!("  {k}: {v}");
    }
    let ops: u64 =
        counts.iter().filter(|(k, _)| k.starts_with("backup") || k.starts_with("restore")).map(|(_, v)| v).sum();
    assert!(ops > 10, "the operation threads made progress ({ops})");
}
