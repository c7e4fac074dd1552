//! Crash safety: backups and restores run in a child process (this test binary again, running
//! only `crash_child`) that is killed with SIGKILL at many points, and under a file-size limit
//! that makes the disk "full" midway. After every kill:
//!
//! * backup: `licenses.lbk` is the previous archive, byte for byte, or the new one, complete
//!   and valid (every record authenticates, the key IDs are those of the store); never anything
//!   else; the store opens and passes `verify()`;
//! * restore: the store opens, passes `verify()` and holds exactly the pre-restore or the
//!   post-restore licenses (content keys included); with `individualize`, the device identity
//!   changed if and only if the licenses were restored. Then a restorer is created for the
//!   store (which settles what the killed restore left in its journal) and the service's ledger
//!   is compared with a model: no reservation pending; a restore that landed is confirmed and
//!   places every license on the origin and the restoring device (an individualized device
//!   counts as the identity it replaced); one that did not is charged nothing.
//!
//! Kill points: the child prints a line per event (`ProgressInterval` = 1) and waits for the
//! parent's go-ahead, so "kill at the k-th event" is exact; timed kills, spread over the window
//! between the last PROGRESS and END (the end record, flush, fsync, rename or commit), catch it
//! between events. `LB_CRASH_POINTS` (default 100) sets how many points each sweep has at least.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use license_backup::archive::{ARCHIVE_FILE_NAME, RecordReader, read_header_at};
use license_backup::*;

const CHILD: &str = "LB_CRASH_CHILD";
const CHILD_DIR: &str = "LB_CRASH_DIR";
const LOCKSTEP: &str = "LB_CRASH_LOCKSTEP";
/// The ledger file the child uses, when not `service.db`.
const LEDGER: &str = "LB_CRASH_LEDGER";
/// The suffix of a child operation that, once the restore has ended, waits until the store's
/// write-ahead log has been copied back and truncated (the checkpoint that runs after END),
/// then prints `EV checkpointed`.
const AND_CHECKPOINT: &str = "+checkpoint";

fn open_service(dir: &Path) -> EmbeddedService {
    let name = std::env::var(LEDGER).unwrap_or_else(|_| "service.db".into());
    open_ledger(&dir.join(name))
}

fn open_ledger(path: &Path) -> EmbeddedService {
    let policy = ServicePolicy { max_devices: u32::MAX, ..ServicePolicy::default() };
    EmbeddedService::open_with_policy(path, policy).unwrap()
}

/// The child's side: runs one operation, printing `EV <kind> [<done> <total>]` per event, and in
/// lockstep mode waits for a line on stdin after each. Ends the process itself.
#[test]
fn crash_child() {
    let Ok(op) = std::env::var(CHILD) else { return };
    let (op, and_checkpoint) = match op.strip_suffix(AND_CHECKPOINT) {
        Some(op) => (op.to_string(), true),
        None => (op, false),
    };
    let dir = PathBuf::from(std::env::var(CHILD_DIR).unwrap());
    let lockstep = std::env::var_os(LOCKSTEP).is_some();
    let service: Arc<dyn LicenseService> = Arc::new(open_service(&dir));
    let store_name = if op == "backup" { "a.db" } else { "b.db" };
    let store = Arc::new(LicenseStore::open(dir.join(store_name)).unwrap());
    let restorer = create_backup_restorer(store, service);
    let folder = dir.join("backup").display().to_string();
    restorer.set_property("BackupPath", PropertyValue::String(folder.clone())).unwrap();
    restorer.set_property("RestorePath", PropertyValue::String(folder)).unwrap();
    restorer.set_property("ProgressInterval", PropertyValue::U32(1)).unwrap();
    let callback: Arc<dyn StatusCallback> = Arc::new(move |e: &StatusEvent| {
        let mut out = std::io::stdout().lock();
        match e {
            StatusEvent::Progress { done, total, .. } => writeln!(out, "EV progress {done} {total}"),
            other => writeln!(out, "EV {}", other.kind().name()),
        }
        .and_then(|_| out.flush())
        .unwrap();
        drop(out);
        if lockstep {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
        }
        Ok(())
    });
    let handle = match op.as_str() {
        "backup" => restorer.backup_licenses(BackupFlags { overwrite: true }, callback),
        "restore" => restorer.restore_licenses(RestoreFlags::default(), callback),
        _ => restorer.restore_licenses(RestoreFlags { individualize: true, replace_existing: false }, callback),
    }
    .unwrap();
    let line = match handle.wait() {
        Ok(s) => format!("RESULT ok {}", s.licenses),
        Err(e) => format!("RESULT err {} {}", e.code().name(), e.message()),
    };
    println!("{line}");
    if and_checkpoint {
        let wal = dir.join("b.db-wal");
        let until = Instant::now() + Duration::from_secs(60);
        while std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
            assert!(Instant::now() < until, "the log was not checkpointed within a minute");
            std::thread::sleep(Duration::from_micros(100));
        }
        println!("EV checkpointed");
    }
    std::process::exit(0);
}

struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Running {
    fn start(op: &str, dir: &Path, lockstep: bool, fsize_limit_kib: Option<u64>) -> Running {
        let exe = std::env::current_exe().unwrap();
        let args = ["crash_child", "--exact", "--nocapture", "--test-threads=1", "-q"];
        let mut cmd = match fsize_limit_kib {
            // bash: SIGXFSZ ignored (inherited across exec), RLIMIT_FSIZE in KiB.
            Some(kib) => {
                let mut c = Command::new("bash");
                c.arg("-c").arg(format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\"")).arg(&exe).args(args);
                c
            }
            None => {
                let mut c = Command::new(&exe);
                c.args(args);
                c
            }
        };
        cmd.env(CHILD, op).env(CHILD_DIR, dir).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        if op != "backup" && dir.join(SWEEP_LEDGER).exists() {
            cmd.env(LEDGER, SWEEP_LEDGER);
        }
        if lockstep {
            cmd.env(LOCKSTEP, "1");
        }
        let mut child = cmd.spawn().expect("spawn the child");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Running { child, stdin, lines }
    }

    /// The next event line (`EV ...`) or result line, skipping the test harness's own output.
    fn next(&mut self) -> Option<String> {
        for line in self.lines.by_ref() {
            let line = line.ok()?;
            if line.starts_with("EV ") || line.starts_with("RESULT ") {
                return Some(line);
            }
        }
        None
    }

    fn go(&mut self) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(b"go\n").and_then(|_| stdin.flush());
        }
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Lets the child run to its end; returns its RESULT line.
    fn finish(mut self) -> String {
        let mut result = String::new();
        while let Some(line) = self.next() {
            if line.starts_with("RESULT ") {
                result = line;
            } else {
                self.go();
            }
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child exited with {status}");
        result
    }
}

/// The archive's key IDs if it is complete and valid, else `None`.
fn valid_archive(service: &EmbeddedService, path: &Path) -> Option<Vec<KeyId>> {
    let header = read_header_at(path).ok()?;
    let key = service.unwrap_data_key(&header).ok()?;
    let (_, mut reader) = RecordReader::open(path, &key).ok()?;
    let mut ids = Vec::new();
    loop {
        match reader.next_license() {
            Ok(Some(l)) => ids.push(l.license.key_id),
            Ok(None) => return Some(ids),
            Err(_) => return None,
        }
    }
}

fn points() -> usize {
    std::env::var("LB_CRASH_POINTS").ok().and_then(|s| s.parse().ok()).unwrap_or(100)
}

/// Removes and counts the temporary files a killed backup leaves (`.licenses.lbk.*.tmp`).
fn sweep_temp_files(folder: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(folder).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name != ARCHIVE_FILE_NAME {
            assert!(name.starts_with(".licenses.lbk.") && name.ends_with(".tmp"), "stray file {name}");
            std::fs::remove_file(folder.join(&name)).unwrap();
            n += 1;
        }
    }
    n
}

/// Kill schedule shared by both sweeps: one lockstep kill at every event (the k-th line), then
/// timed kills spread over the final window (last PROGRESS to END) until `total` points.
enum Kill {
    AtEvent(usize),
    AfterLastProgress(Duration),
}

fn schedule(events: usize, window: Duration, total: usize) -> Vec<Kill> {
    let mut plan: Vec<Kill> = (1..=events).map(Kill::AtEvent).collect();
    let timed = total.saturating_sub(events).max(20);
    for i in 0..timed {
        plan.push(Kill::AfterLastProgress(window.mul_f64(2.5 * i as f64 / timed as f64)));
    }
    plan
}

/// Runs the child once under `kill`.
fn run_and_kill(op: &str, dir: &Path, kill: &Kill, licenses: usize) {
    match *kill {
        Kill::AtEvent(k) => {
            let mut run = Running::start(op, dir, true, None);
            let mut seen = 0;
            while let Some(line) = run.next() {
                if line.starts_with("RESULT ") {
                    break;
                }
                seen += 1;
                if seen == k {
                    return run.kill();
                }
                run.go();
            }
            panic!("{op}: the child ended before event {k}");
        }
        Kill::AfterLastProgress(delay) => {
            let mut run = Running::start(op, dir, false, None);
            let last = format!("EV progress {licenses} {licenses}");
            while let Some(line) = run.next() {
                if line == last {
                    spin(delay);
                    return run.kill();
                }
            }
            panic!("{op}: no final progress line");
        }
    }
}

/// Waits precisely (sleep is too coarse for sub-millisecond points).
fn spin(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Measures the final window: the median time from the last PROGRESS line to END.
fn final_window(op: &str, dir: &Path, licenses: usize, reset: &dyn Fn()) -> (Duration, usize) {
    let mut samples = Vec::new();
    let mut events = 0;
    for _ in 0..3 {
        reset();
        let mut run = Running::start(op, dir, false, None);
        let last = format!("EV progress {licenses} {licenses}");
        let mut t0 = None;
        events = 0;
        while let Some(line) = run.next() {
            events += usize::from(line.starts_with("EV "));
            if line == last {
                t0 = Some(Instant::now());
            } else if line == "EV end" {
                samples.push(t0.expect("progress before end").elapsed());
            }
        }
        run.child.wait().unwrap();
    }
    samples.sort();
    (samples[1], events)
}

fn setup(licenses: u32) -> (World, Vec<u8>, Vec<KeyId>) {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, licenses / 2, 0);
    backup(&ra, false).0.unwrap();
    let old = read_all(&archive_path(&w));
    fill_more(&a, licenses / 2 + 1..=licenses);
    let new_ids: Vec<KeyId> = a.list_licenses().unwrap().iter().map(|l| l.key_id).collect();
    (w, old, new_ids)
}

fn fill_more(store: &LicenseStore, range: std::ops::RangeInclusive<u32>) {
    let batch: Vec<NewLicense> = range
        .map(|i| NewLicense {
            key_id: key_id(i),
            content_key: content_key(i),
            rights: Rights::default(),
            issuer: "https://issuer.example".into(),
            issued_at: 1_700_000_000,
        })
        .collect();
    store.add_licenses(&batch, ConflictPolicy::Keep).unwrap();
}

fn put_archive(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("put");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn backup_killed_anywhere_leaves_the_old_or_the_new_archive() {
    let total = points();
    let licenses = (total * 3 / 4).max(10) as u32;
    let (w, old, new_ids) = setup(licenses);
    let dir = w.dir.path();
    let archive = archive_path(&w);
    let service = open_service(dir);
    let reset = || put_archive(&archive, &old);
    // BEGIN, a PROGRESS per license, END.
    let (window, events) = final_window("backup", dir, licenses as usize, &reset);
    assert_eq!(events, licenses as usize + 2);
    let plan = schedule(events, window, total);
    let started = Instant::now();
    let (mut kept_old, mut got_new, mut temps) = (0, 0, 0);
    for kill in &plan {
        reset();
        run_and_kill("backup", dir, kill, licenses as usize);
        let now = std::fs::read(&archive).expect("an archive is always in place");
        if now == old {
            kept_old += 1;
        } else {
            let ids = valid_archive(&service, &archive).expect("the archive in place is neither old nor valid");
            assert_eq!(ids, new_ids, "the new archive holds every license");
            got_new += 1;
        }
        temps += sweep_temp_files(&w.path("backup"));
    }
    assert_eq!(LicenseStore::open(w.path("a.db")).unwrap().verify().unwrap(), u64::from(licenses));
    assert!(kept_old > 0 && got_new > 0, "both outcomes are reached ({kept_old} old, {got_new} new)");
    println!(
        "crash sweep (backup, {licenses} licenses): {} kill points ({} at events, {} timed over a {window:?} \
         final window): {kept_old} kept the old archive, {got_new} had the new one, {temps} left a temporary \
         file; {:?}",
        plan.len(),
        licenses + 2,
        plan.len() - licenses as usize - 2,
        started.elapsed()
    );
}

/// Prepares the restore sweep: `b0.db`, a checkpointed pristine store with two licenses of its
/// own, and a complete archive of the device `a`. Returns (pre, post) license snapshots.
fn restore_setup(w: &World, licenses: u32) -> (Snapshot, Snapshot, String) {
    let (a, ra) = w.device("a");
    fill_more(&a, 1000..=999 + licenses);
    backup(&ra, false).0.unwrap();
    {
        let b0 = LicenseStore::open(w.path("b0.db")).unwrap();
        fill_more(&b0, 1..=2);
    }
    assert!(!w.path("b0.db-wal").exists(), "the pristine store is checkpointed");
    let pristine = LicenseStore::open(w.path("b0.db")).unwrap();
    let pre = snapshot(&pristine);
    let device = pristine.device_id().unwrap();
    drop(pristine);
    let mut post = pre.clone();
    post.extend(snapshot(&a));
    post.sort_by_key(|(l, _)| l.key_id);
    (pre, post, device)
}

type Snapshot = Vec<(License, Vec<u8>)>;

/// The ledger the restore sweep runs against: a copy of the pristine one for each kill point.
const SWEEP_LEDGER: &str = "sweep-ledger.db";

fn reset_store(w: &World) {
    for ext in ["db-wal", "db-shm"] {
        let _ = std::fs::remove_file(w.path("b.db").with_extension(ext));
        let _ = std::fs::remove_file(w.path(SWEEP_LEDGER).with_extension(ext));
    }
    std::fs::copy(w.path("b0.db"), w.path("b.db")).unwrap();
    std::fs::copy(w.path("ledger0.db"), w.path(SWEEP_LEDGER)).unwrap();
}

/// Reopens the store the child used, creates a restorer for it (which settles its journal),
/// and checks the ledger against the model: nothing pending; if `landed`, one confirmed
/// reservation placing every license on exactly `origin` and `device`, else nothing placed.
/// Returns the journal states found on reopening.
fn settle_and_check_ledger(w: &World, landed: bool, origin: [u8; 16], device: [u8; 16], ids: &[KeyId]) -> Vec<String> {
    let journal: Vec<String> = {
        let conn = rusqlite::Connection::open(w.path("b.db")).unwrap();
        let mut stmt = conn.prepare("SELECT state FROM restore_journal").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    };
    let service = Arc::new(open_ledger(&w.path(SWEEP_LEDGER)));
    let store = Arc::new(LicenseStore::open(w.path("b.db")).unwrap());
    let restorer = create_backup_restorer(Arc::clone(&store), service.clone());
    assert_eq!(restorer.settle_reservations().unwrap(), 0, "settled when the restorer was created");
    let left: i64 = rusqlite::Connection::open(w.path("b.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM restore_journal", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "the journal is empty once settled");
    let audit = service.audit().unwrap();
    assert_eq!(audit.pending, 0, "no reservation left pending: {audit:?} (journal was {journal:?})");
    let mut model = vec![origin, device];
    model.sort();
    for id in ids {
        let devices = service.devices_of(id).unwrap();
        if landed {
            assert_eq!(devices, model, "{id}: the origin and the restoring device");
        } else {
            assert!(devices.is_empty(), "{id}: a restore that did not land placed {devices:02x?}");
        }
    }
    let n = ids.len() as u64;
    let expected = if landed { (1, n, 2 * n) } else { (0, 0, 0) };
    assert_eq!((audit.confirmed, audit.licenses, audit.placements), expected, "{audit:?} (journal was {journal:?})");
    journal
}

#[test]
fn restore_killed_anywhere_leaves_the_store_before_or_after() {
    let total = points();
    let licenses = (total * 3 / 8).max(10) as u32;
    let w = World::new();
    let (pre, post, device) = restore_setup(&w, licenses);
    // The pristine ledger (A registered by its backup, nothing restored yet), copied whole.
    rusqlite::Connection::open(w.path("service.db"))
        .unwrap()
        .execute("VACUUM INTO ?1", [w.path("ledger0.db").display().to_string()])
        .unwrap();
    let origin = hex16(&LicenseStore::open(w.path("a.db")).unwrap().device_id().unwrap());
    let ids: Vec<KeyId> =
        post.iter().map(|(l, _)| l.key_id).filter(|k| pre.iter().all(|(p, _)| p.key_id != *k)).collect();
    let dir = w.dir.path();
    let reset = || reset_store(&w);
    let started = Instant::now();
    let (mut before, mut after, mut n) = (0, 0, 0);
    let mut journal_states: std::collections::BTreeMap<String, usize> = Default::default();
    for op in ["restore", "restore-individualize"] {
        // A lockstep kill at every event of a full run, then timed kills after the last PROGRESS.
        let (window, events) = final_window(op, dir, licenses as usize, &reset);
        assert!(events >= licenses as usize + 4, "{op}: {events} events");
        let plan = schedule(events, window, total / 2);
        for kill in &plan {
            reset();
            run_and_kill(op, dir, kill, licenses as usize);
            let store = LicenseStore::open(w.path("b.db")).expect("the store opens after a crash");
            store.verify().expect("the store passes verify() after a crash");
            let now = snapshot(&store);
            let rebound = store.device_id().unwrap() != device;
            drop(store);
            let landed = if now == pre {
                assert!(!rebound, "{op}: the device changed but no license was restored");
                before += 1;
                false
            } else {
                assert_eq!(now, post, "{op}: neither the pre- nor the post-restore license set");
                assert_eq!(rebound, op == "restore-individualize", "{op}: device identity after the restore");
                after += 1;
                true
            };
            // An individualized device counts as the identity it replaced.
            for state in settle_and_check_ledger(&w, landed, origin, hex16(&device), &ids) {
                *journal_states.entry(state).or_default() += 1;
            }
            n += 1;
        }
    }
    assert!(before > 0 && after > 0, "both outcomes are reached ({before} before, {after} after)");
    println!(
        "crash sweep (restore, {licenses} licenses, plain and individualize): {n} kill points: {before} left the \
         store as it was, {after} fully restored; the ledger matched the model after each; journal entries \
         settled on reopening, by state: {journal_states:?}; {:?}",
        started.elapsed()
    );
}

/// Measures, over three runs of `op` (a `+checkpoint` child), the median times from the last
/// PROGRESS line to END and to `EV checkpointed`.
fn commit_and_checkpoint_windows(op: &str, dir: &Path, licenses: usize, reset: &dyn Fn()) -> (Duration, Duration) {
    let (mut to_end, mut to_checkpoint) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        reset();
        let mut run = Running::start(op, dir, false, None);
        let last = format!("EV progress {licenses} {licenses}");
        let mut t0 = None;
        while let Some(line) = run.next() {
            if line == last {
                t0 = Some(Instant::now());
            } else if line == "EV end" {
                to_end.push(t0.expect("progress before end").elapsed());
            } else if line == "EV checkpointed" {
                to_checkpoint.push(t0.expect("progress before the checkpoint").elapsed());
            }
        }
        assert!(run.child.wait().unwrap().success());
    }
    to_end.sort();
    to_checkpoint.sort();
    assert_eq!(to_checkpoint.len(), 3, "every run reports its checkpoint");
    (to_end[1], to_checkpoint[1])
}

/// The restore's commit leaves its pages in the store's write-ahead log, and a thread copies
/// them back into the file after END. Killed anywhere from inside the apply pass, through the
/// commit and the END, to the end of that checkpoint: the store opens, passes `verify()`, holds
/// the pre- or the post-restore licenses, and the ledger matches (the restore is charged if
/// and only if it landed). Each kill is classified by what it left: the store as it was, the
/// restore committed with its pages still in the log (killed before the checkpoint finished),
/// or the restore checkpointed into the file.
#[test]
fn restore_killed_during_commit_or_checkpoint_leaves_the_store_before_or_after() {
    let total = points();
    // Enough licenses that the log holds many pages (the store's pages are 16 KiB).
    let licenses = 400u32;
    let w = World::new();
    let (pre, post, device) = restore_setup(&w, licenses);
    rusqlite::Connection::open(w.path("service.db"))
        .unwrap()
        .execute("VACUUM INTO ?1", [w.path("ledger0.db").display().to_string()])
        .unwrap();
    let origin = hex16(&LicenseStore::open(w.path("a.db")).unwrap().device_id().unwrap());
    let ids: Vec<KeyId> =
        post.iter().map(|(l, _)| l.key_id).filter(|k| pre.iter().all(|(p, _)| p.key_id != *k)).collect();
    let dir = w.dir.path();
    let reset = || reset_store(&w);
    let started = Instant::now();
    let (mut before, mut in_log, mut checkpointed) = (0, 0, 0);
    let mut windows = Vec::new();
    for (op, points) in [("restore+checkpoint", total), ("restore-individualize+checkpoint", total / 4)] {
        let (to_end, to_checkpoint) = commit_and_checkpoint_windows(op, dir, licenses as usize, &reset);
        windows.push((op, to_end, to_checkpoint));
        // From halfway through the last stretch of the apply pass to past the checkpoint's end.
        let (from, to) = (to_end.mul_f64(0.5), to_checkpoint.mul_f64(1.2));
        for i in 0..points {
            reset();
            let delay = from + (to - from).mul_f64(i as f64 / points as f64);
            run_and_kill(op, dir, &Kill::AfterLastProgress(delay), licenses as usize);
            // What the kill left in the log, before anything opens the store again.
            let log_left = std::fs::metadata(w.path("b.db-wal")).map(|m| m.len()).unwrap_or(0);
            let store = LicenseStore::open(w.path("b.db")).expect("the store opens after a crash");
            store.verify().expect("the store passes verify() after a crash");
            let now = snapshot(&store);
            let rebound = store.device_id().unwrap() != device;
            drop(store);
            let landed = if now == pre {
                assert!(!rebound, "{op}: the device changed but no license was restored");
                before += 1;
                false
            } else {
                assert_eq!(now, post, "{op}: neither the pre- nor the post-restore license set");
                assert_eq!(rebound, op.starts_with("restore-individualize"), "{op}: device identity");
                if log_left > 0 {
                    in_log += 1;
                } else {
                    checkpointed += 1;
                }
                true
            };
            settle_and_check_ledger(&w, landed, origin, hex16(&device), &ids);
        }
    }
    let n = before + in_log + checkpointed;
    assert!(n >= total, "{n} kill points");
    assert!(before > 0, "some kills land before the commit");
    assert!(in_log > 0, "some kills land after the commit, before the checkpoint finished");
    assert!(checkpointed > 0, "some kills land after the checkpoint");
    println!(
        "crash sweep (restore, commit and checkpoint, {licenses} licenses, plain and individualize): {n} kill \
         points over the windows {windows:?} (last PROGRESS to END, to checkpointed): {before} left the store as \
         it was, {in_log} had committed with the pages still in the log, {checkpointed} after the checkpoint; \
         every store passed verify() and held the pre- or post-restore licenses, the ledger matched; {:?}",
        started.elapsed()
    );
}

#[test]
fn a_full_disk_midway_is_a_clear_error_and_loses_nothing() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 10, 0);
    backup(&ra, false).0.unwrap();
    let old = read_all(&archive_path(&w));
    // Enough licenses that the archive (about 100 bytes a license) outgrows the 64 KiB limit.
    fill_more(&a, 11..=1500);
    drop((a, ra));
    let dir = w.dir.path();
    let result = Running::start("backup", dir, false, Some(64)).finish();
    assert!(result.starts_with("RESULT err NO_SPACE cannot write the archive"), "backup on a full disk: {result}");
    assert_eq!(read_all(&archive_path(&w)), old, "the previous archive is intact");
    assert_eq!(sweep_temp_files(&w.path("backup")), 0, "the temporary file is removed");
    println!("full disk, backup: {result}");

    // Restore the big archive (made without a limit) onto a small store under the limit.
    let (_, ra) = w.device("a");
    backup(&ra, true).0.unwrap();
    drop(ra);
    {
        let b = LicenseStore::open(w.path("b.db")).unwrap();
        fill_more(&b, 1..=2);
    }
    let pre = snapshot(&LicenseStore::open(w.path("b.db")).unwrap());
    std::fs::copy(w.path("b.db"), w.path("b-pre.db")).unwrap();
    let audit_of = |w: &World, b: LicenseStore| {
        // A restorer created for the store settles what its restore left in the journal.
        let service = Arc::new(open_service(w.dir.path()));
        let restorer = create_backup_restorer(Arc::new(b), service.clone());
        assert_eq!(restorer.settle_reservations().unwrap(), 0, "nothing left to settle");
        service.audit().unwrap()
    };
    // The ledger's write (a reservation of 1500 new placements) is what outgrows the limit:
    // the service records nothing. A file-size limit makes SQLite's write fail with EFBIG,
    // which it reports as an I/O error (STORAGE); a disk that is really full is NO_SPACE
    // (tests/full_disk.rs).
    let result = Running::start("restore", dir, false, Some(64)).finish();
    assert!(result.starts_with("RESULT err STORAGE"), "restore on a full disk: {result}");
    let b = LicenseStore::open(w.path("b.db")).unwrap();
    b.verify().unwrap();
    assert_eq!(snapshot(&b), pre, "a restore that hit a full disk changed nothing");
    println!("full disk (the ledger's write), restore: {result}");
    let audit = audit_of(&w, b);
    assert_eq!((audit.pending, audit.confirmed, audit.released, audit.placements), (0, 0, 0, 0), "{audit:?}");

    // The store's write outgrows it, after the grant: the device already counts for every
    // license (restored once, then the store put back as it was), so the ledger writes only
    // a reservation row, and the store's transaction is what fails. The grant is released: the
    // full disk costs no quota.
    let result = Running::start("restore", dir, false, None).finish();
    assert_eq!(result, "RESULT ok 1498", "the restore without a limit (two of the licenses were there)");
    for ext in ["db-wal", "db-shm"] {
        let _ = std::fs::remove_file(w.path("b.db").with_extension(ext));
    }
    std::fs::copy(w.path("b-pre.db"), w.path("b.db")).unwrap();
    let counted = audit_of(&w, LicenseStore::open(w.path("b.db")).unwrap());
    assert_eq!((counted.confirmed, counted.released, counted.placements), (1, 0, 3000), "{counted:?}");
    let result = Running::start("restore", dir, false, Some(64)).finish();
    assert!(result.starts_with("RESULT err STORAGE"), "restore on a full disk: {result}");
    let b = LicenseStore::open(w.path("b.db")).unwrap();
    b.verify().unwrap();
    assert_eq!(snapshot(&b), pre, "a restore that hit a full disk changed nothing");
    println!("full disk (the store's write), restore: {result}");
    let audit = audit_of(&w, b);
    assert_eq!(
        (audit.pending, audit.confirmed, audit.released, audit.placements),
        (0, 1, 1, 3000),
        "the failed restore's reservation is released: {audit:?}"
    );
}
