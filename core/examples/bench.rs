//! `make bench`: end-to-end benchmarks of backup and restore, each figure beside a baseline
//! measured in the same run on the same data, printed as one table.
//!
//! ```text
//! cargo run --release -p license-backup --example bench -- [options]
//!   --sizes 10000,100000,1000000   backup/restore sizes (licenses)
//!   --mem-sizes 10000,1000000      sizes whose peak resident memory is reported (must be in --sizes)
//!   --e2e 100000                   licenses for the binding end-to-end and events figures
//!   --repeat 3                     runs per figure (the median is kept)
//!   --dir DIR                      fixtures and scratch (default target/bench)
//!   --root DIR                     repository root, to find bindings-*/bench scripts (default .)
//!   --python PY / --node NODE      interpreters for the binding scripts (skipped when absent)
//!   --smoke                        tiny sizes, one run: checks the harness, not the figures
//!   --service-bin PATH             license-backup-service, for the rows through a server
//!                                  (default $LICENSE_BACKUP_SERVICE; skipped when absent)
//!   --remote-sizes 10000,100000,1000000   restores through the server (the smallest and the
//!                                  largest give the memory rows)
//!   --auth-seconds 5               how long 8 clients authorize 1,000-license restores
//!   --service postgres             also the PostgreSQL ledger (a throw-away cluster started
//!                                  here, fsync on): authorizations/s and latency with 8 and 32
//!                                  clients over 2 instances, and single large authorizations,
//!                                  each against the SQLite ledger in the same run
//!   --pg-auth-sizes 100000,1000000 licenses of the single authorizations (--service postgres)
//!   --accounts 1,8,32              32 clients spread over each of these numbers of accounts,
//!                                  each ledger (--service postgres)
//!   --ledger-sizes 100000,1000000  placements the ledger is pre-filled to, one authorization
//!                                  latency figure each and the ratio of the largest to the
//!                                  smallest (--service postgres; the issue's figure is
//!                                  100000,10000000: about 3 GB of disk and 10 minutes more)
//! ```
//!
//! Through the server: a real `license-backup-service` on 127.0.0.1 with TLS (made with its
//! `init`), the device in a child process using `RemoteService`; the archive is made through
//! the server (so it is wrapped to the server's key), and the restore is compared with the
//! embedded restore of the same size measured above.
//!
//! Every measured operation runs in a child process (this binary, `child ...`), so its peak
//! resident memory (VmHWM) is its own. The baseline is what an administrator would do with
//! standard tools: `sqlite3 store.db ".backup copy.db"`, `openssl enc -aes-256-cbc -pbkdf2`,
//! `sync` (backup); `openssl enc -d`, `sqlite3 target.db ".restore copy.db"` (restore).
//!
//! Binding scripts (`bindings-python/bench/*.py`, `bindings-node/bench/*.js`) get
//! `--store --service --out --n` and print JSON lines `{"name", "value", "unit"}` (or
//! `{"skip": reason}`), merged into the table.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use license_backup::*;
use serde_json::{Value, json};

#[path = "../../service/tests/support/pg.rs"]
mod pg;

#[path = "bench-parts/ledger.rs"]
mod ledger_scale;

/// Bump when the fixture shape changes, so cached fixtures are rebuilt.
const FIXTURE_VERSION: u32 = 5;
const PASSWORD: &str = "pass:license-backup-bench";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("child") { child(&args[1..]) } else { parent(&args) };
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

type Res<T> = std::result::Result<T, String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

// ---------------------------------------------------------------- options

struct Opts {
    sizes: Vec<u64>,
    mem_sizes: Vec<u64>,
    e2e: u64,
    repeat: usize,
    dir: PathBuf,
    root: PathBuf,
    python: Option<String>,
    node: Option<String>,
    smoke: bool,
    service_bin: Option<PathBuf>,
    remote_sizes: Vec<u64>,
    auth_seconds: f64,
    postgres: bool,
    pg_auth_sizes: Vec<u64>,
    accounts: Vec<usize>,
    ledger_sizes: Vec<u64>,
}

fn list(s: &str) -> Res<Vec<u64>> {
    s.split(',').filter(|x| !x.is_empty()).map(|x| x.trim().parse::<u64>().map_err(err)).collect()
}

fn parse_opts(args: &[String]) -> Res<Opts> {
    let mut o = Opts {
        sizes: vec![10_000, 100_000, 1_000_000],
        mem_sizes: vec![10_000, 1_000_000],
        e2e: 100_000,
        repeat: 3,
        dir: PathBuf::from("target/bench"),
        root: PathBuf::from("."),
        python: None,
        node: None,
        smoke: false,
        service_bin: std::env::var_os("LICENSE_BACKUP_SERVICE").map(PathBuf::from),
        remote_sizes: vec![10_000, 100_000, 1_000_000],
        auth_seconds: 5.0,
        postgres: false,
        pg_auth_sizes: vec![100_000, 1_000_000],
        accounts: vec![1, 8, 32],
        ledger_sizes: vec![100_000, 1_000_000],
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--sizes" => o.sizes = list(&val()?)?,
            "--mem-sizes" => o.mem_sizes = list(&val()?)?,
            "--e2e" => o.e2e = val()?.parse().map_err(err)?,
            "--repeat" => o.repeat = val()?.parse().map_err(err)?,
            "--dir" => o.dir = PathBuf::from(val()?),
            "--root" => o.root = PathBuf::from(val()?),
            "--python" => o.python = Some(val()?).filter(|s| !s.is_empty()),
            "--node" => o.node = Some(val()?).filter(|s| !s.is_empty()),
            "--service-bin" => o.service_bin = Some(PathBuf::from(val()?)).filter(|p| !p.as_os_str().is_empty()),
            "--remote-sizes" => o.remote_sizes = list(&val()?)?,
            "--auth-seconds" => o.auth_seconds = val()?.parse().map_err(err)?,
            "--service" => match val()?.as_str() {
                "postgres" => o.postgres = true,
                "sqlite" => o.postgres = false,
                other => return Err(format!("--service {other}: sqlite or postgres")),
            },
            "--pg-auth-sizes" => o.pg_auth_sizes = list(&val()?)?,
            "--accounts" => o.accounts = list(&val()?)?.into_iter().map(|n| n.max(1) as usize).collect(),
            "--ledger-sizes" => o.ledger_sizes = list(&val()?)?,
            "--smoke" => {
                o.smoke = true;
                o.sizes = vec![200, 2_000];
                o.mem_sizes = vec![200, 2_000];
                o.e2e = 1_000;
                o.repeat = 1;
                o.remote_sizes = vec![200, 2_000];
                o.auth_seconds = 0.5;
                o.pg_auth_sizes = vec![2_000];
                o.accounts = vec![1, 2];
                o.ledger_sizes = vec![2_000, 20_000];
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

// ---------------------------------------------------------------- fixtures

/// SplitMix64: deterministic key IDs, spread over the key space like real random ones.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn key_id(i: u64) -> KeyId {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&mix(2 * i).to_le_bytes());
    b[8..].copy_from_slice(&mix(2 * i + 1).to_le_bytes());
    KeyId::from_bytes(b)
}

/// A store of `n` licenses, every tenth restricted (no backup right), every one with a catalog
/// entry (title, artist), some with expiry or play counts; and a fresh service ledger.
fn populate(dir: &Path, n: u64) -> Res<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(err)?;
    let store_path = dir.join("store.db");
    EmbeddedService::open(dir.join("service.db")).map_err(err)?;
    let store = LicenseStore::open(&store_path).map_err(err)?;
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        batch.push(NewLicense {
            key_id: key_id(i),
            content_key: mix(i ^ 0xC0FFEE).to_le_bytes().repeat(2),
            rights: Rights {
                backup_allowed: i % 10 != 0,
                expires_at: (i % 3 == 0).then_some(1_900_000_000 + i as i64),
                plays_remaining: (i % 5 == 0).then_some((i % 50) as u32),
                ..Rights::default()
            },
            issuer: "https://licenses.example.com/issue".into(),
            issued_at: 1_700_000_000 + i as i64,
        });
        if batch.len() == batch.capacity() || i + 1 == n {
            store.add_licenses(&batch, ConflictPolicy::Keep).map_err(err)?;
            batch.clear();
        }
    }
    drop(store);
    // The catalog in one transaction, straight into the license rows (set_catalog_entry
    // commits once per entry, which would dominate the fixture's build time).
    let mut conn = rusqlite::Connection::open(&store_path).map_err(err)?;
    let tx = conn.transaction().map_err(err)?;
    {
        let mut stmt =
            tx.prepare("UPDATE licenses SET title = ?2, artist = ?3, cataloged = 1 WHERE key_id = ?1").map_err(err)?;
        for i in 0..n {
            stmt.execute(rusqlite::params![
                key_id(i).as_bytes().as_slice(),
                format!("Track {i} of the collection"),
                format!("Artist {}", i % 1000)
            ])
            .map_err(err)?;
        }
    }
    tx.commit().map_err(err)?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").map_err(err)?;
    Ok(())
}

fn fixture(opts: &Opts, n: u64) -> Res<PathBuf> {
    let dir = opts.dir.join(format!("fixtures/n{n}-v{FIXTURE_VERSION}"));
    let done = dir.join("READY");
    if !done.exists() {
        eprintln!("bench: building a fixture of {n} licenses in {}", dir.display());
        run_child(&["populate", &dir.display().to_string(), &n.to_string()])?;
        std::fs::write(&done, b"").map_err(err)?;
    }
    Ok(dir)
}

// ---------------------------------------------------------------- child processes

/// Peak resident memory of this process, in KiB (VmHWM).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU time (user + system) from /proc/self/stat: this process's own when `children` is false,
/// else that of its waited-for children. Seconds, at the kernel's 100 Hz tick.
fn cpu_seconds(children: bool) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces), counted from field 3 (state).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    let (u, s) = if children { (13, 14) } else { (11, 12) };
    (f.get(u).copied().unwrap_or(0.0) + f.get(s).copied().unwrap_or(0.0)) / 100.0
}

fn restorer(store: &Path, service: &Path, prop: &str, folder: &Path, interval: u32) -> Res<BackupRestorer> {
    let service: Arc<dyn LicenseService> = Arc::new(EmbeddedService::open(service).map_err(err)?);
    restorer_with(store, service, prop, folder, interval)
}

fn restorer_with(
    store: &Path,
    service: Arc<dyn LicenseService>,
    prop: &str,
    folder: &Path,
    interval: u32,
) -> Res<BackupRestorer> {
    let store = Arc::new(LicenseStore::open(store).map_err(err)?);
    let r = create_backup_restorer(store, service);
    r.set_property(prop, PropertyValue::String(folder.display().to_string())).map_err(err)?;
    r.set_property("ProgressInterval", PropertyValue::U32(interval)).map_err(err)?;
    Ok(r)
}

/// A callback that takes the monotonic time of every delivery (what the binding scripts do) and
/// counts the deliveries. It keeps only the count: a list of every time would grow with the
/// store (16 bytes an event, 1.7 MiB at 1M licenses) and be counted in the backup's peak memory.
fn recorder() -> (Arc<AtomicUsize>, Arc<dyn StatusCallback>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let t = Arc::clone(&seen);
    let cb = Arc::new(move |_: &StatusEvent| {
        std::hint::black_box(Instant::now());
        t.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    (seen, cb)
}

fn child(args: &[String]) -> Res<()> {
    let a = |i: usize| args.get(i).map(String::as_str).ok_or_else(|| "missing child argument".to_string());
    let out = match a(0)? {
        "populate" => {
            populate(Path::new(a(1)?), a(2)?.parse().map_err(err)?)?;
            json!({})
        }
        // backup STORE SERVICE OUT INTERVAL
        "backup" => {
            let interval: u32 = a(4)?.parse().map_err(err)?;
            let r = restorer(Path::new(a(1)?), Path::new(a(2)?), "BackupPath", Path::new(a(3)?), interval)?;
            let (seen, cb) = recorder();
            let start = Instant::now();
            let s = r.backup_licenses(BackupFlags { overwrite: true }, cb).map_err(err)?.wait().map_err(err)?;
            let wall = start.elapsed().as_secs_f64();
            let events = seen.load(Ordering::Relaxed);
            json!({"wall_s": wall, "licenses": s.licenses, "restricted": s.restricted, "bytes": s.bytes,
                   "events": events, "peak_rss_kib": peak_rss_kib(), "cpu_s": cpu_seconds(false)})
        }
        // e2e STORE SERVICE OUT REPEAT: what the binding scripts do, in one process: REPEAT
        // backups, each with a store and service opened afresh; the median wall time
        "e2e" => {
            let repeat: usize = a(4)?.parse().map_err(err)?;
            let mut walls = vec![];
            for _ in 0..repeat.max(1) {
                let r = restorer(Path::new(a(1)?), Path::new(a(2)?), "BackupPath", Path::new(a(3)?), 100)?;
                let (_seen, cb) = recorder();
                let start = Instant::now();
                r.backup_licenses(BackupFlags { overwrite: true }, cb).map_err(err)?.wait().map_err(err)?;
                walls.push(start.elapsed().as_secs_f64());
            }
            json!({"wall_s": median(walls)})
        }
        // restore TARGET SERVICE FROM: TARGET is made fresh (a new device) before the clock starts
        "restore" => {
            let r = restorer(Path::new(a(1)?), Path::new(a(2)?), "RestorePath", Path::new(a(3)?), 100)?;
            let (_seen, cb) = recorder();
            let start = Instant::now();
            let s = r.restore_licenses(RestoreFlags::default(), cb).map_err(err)?.wait().map_err(err)?;
            let wall = start.elapsed().as_secs_f64();
            let (rss, cpu) = (peak_rss_kib(), cpu_seconds(false));
            // The checkpoint that copies the store's log back runs after END: until the log is
            // truncated (what it does last).
            let log = PathBuf::from(format!("{}-wal", a(1)?));
            let end = Instant::now();
            while std::fs::metadata(&log).is_ok_and(|m| m.len() > 0) && end.elapsed().as_secs() < 120 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            json!({"wall_s": wall, "licenses": s.licenses, "peak_rss_kib": rss, "cpu_s": cpu,
                   "checkpoint_s": end.elapsed().as_secs_f64(), "checkpoint_cpu_s": cpu_seconds(false) - cpu})
        }
        // remote-backup STORE URL TOKEN CA OUT: a backup through a server
        "remote-backup" => {
            let service = remote_service(a(2)?, a(3)?, a(4)?)?;
            let r = restorer_with(Path::new(a(1)?), service, "BackupPath", Path::new(a(5)?), 100)?;
            let (_seen, cb) = recorder();
            let s = r.backup_licenses(BackupFlags { overwrite: true }, cb).map_err(err)?.wait().map_err(err)?;
            json!({"licenses": s.licenses})
        }
        // remote-restore TARGET URL TOKEN CA FROM: a restore through a server (TARGET fresh)
        "remote-restore" => {
            let service = remote_service(a(2)?, a(3)?, a(4)?)?;
            let r = restorer_with(Path::new(a(1)?), service, "RestorePath", Path::new(a(5)?), 100)?;
            let (_seen, cb) = recorder();
            let start = Instant::now();
            let s = r.restore_licenses(RestoreFlags::default(), cb).map_err(err)?.wait().map_err(err)?;
            let wall = start.elapsed().as_secs_f64();
            json!({"wall_s": wall, "licenses": s.licenses, "peak_rss_kib": peak_rss_kib(), "cpu_s": cpu_seconds(false)})
        }
        // authorize-load URLS TOKENS CA ARCHIVES SECONDS CLIENTS [confirm|release]: CLIENTS
        // threads, each its own client and device, authorizing an archive's restore over and
        // over (client i through URLS[i], as TOKENS[i] with ARCHIVES[i], cyclically)
        "authorize-load" => authorize_load(
            a(1)?,
            a(2)?,
            a(3)?,
            a(4)?,
            a(5)?.parse().map_err(err)?,
            a(6)?.parse().map_err(err)?,
            args.get(7).map(String::as_str) == Some("release"),
        )?,
        // authorize-once URL TOKEN CA ARCHIVE: one authorization, timed
        "authorize-once" => authorize_once(a(1)?, a(2)?, a(3)?, Path::new(a(4)?))?,
        // scan ARCHIVE: what reading the archive costs before the service is asked
        "scan" => {
            let (scan, key_ids, sha2, ring, bytes) =
                license_backup::bench_support::scan_costs(Path::new(a(1)?)).map_err(err)?;
            json!({"scan_s": scan, "key_id_pass_s": key_ids, "sha2_s": sha2, "ring_s": ring, "bytes": bytes})
        }
        // events STORE SERVICE OUT: a backup with ProgressInterval=1, every delivery timed
        "events" => {
            let r = restorer(Path::new(a(1)?), Path::new(a(2)?), "BackupPath", Path::new(a(3)?), 1)?;
            let cb = Arc::new(Deliveries(Mutex::new(Vec::with_capacity(2_000_000))));
            r.backup_licenses(BackupFlags { overwrite: true }, cb.clone()).map_err(err)?.wait().map_err(err)?;
            let times = cb.0.lock().expect("deliveries");
            event_stats(&times)
        }
        other => return Err(format!("unknown child command {other}")),
    };
    println!("{out}");
    Ok(())
}

fn remote_service(url: &str, token: &str, ca: &str) -> Res<Arc<dyn LicenseService>> {
    let options =
        RemoteOptions { token: Some(token.into()), ca_file: Some(ca.into()), retries: Some(0), ..Default::default() };
    Ok(Arc::new(RemoteService::new(url, options).map_err(err)?))
}

/// The key IDs of an archive, read from its frames (the bench knows the format: the header,
/// then frames of type, key ID, length and ciphertext).
fn archive_key_ids(path: &Path) -> Res<Vec<KeyId>> {
    let bytes = std::fs::read(path).map_err(err)?;
    let mut pos = archive::read_header_at(path).map_err(err)?.len();
    let mut out = vec![];
    while pos + 21 <= bytes.len() && bytes[pos] == 1 {
        out.push(KeyId::from_slice(&bytes[pos + 1..pos + 17]).map_err(err)?);
        pos += 21 + u32::from_le_bytes(bytes[pos + 17..pos + 21].try_into().map_err(err)?) as usize;
    }
    Ok(out)
}

/// `clients` threads authorizing the restore of an archive for `seconds`, each authorization
/// under a fresh request ID and confirmed (or, `release`, released) at once, client `i` through
/// `urls[i % urls.len()]`, as `tokens[i % tokens.len()]`, restoring `archives[i %
/// archives.len()]` (each comma-separated; token `j` is the account of archive `j`):
/// authorizations a second, and the authorizations' latency.
fn authorize_load(
    urls: &str,
    tokens: &str,
    ca: &str,
    archives: &str,
    seconds: f64,
    clients: usize,
    release: bool,
) -> Res<Value> {
    let mut read = Vec::new();
    for archive in archives.split(',') {
        let archive = Path::new(archive);
        read.push((archive::read_header_at(archive).map_err(err)?, Arc::new(archive_key_ids(archive)?)));
    }
    let urls: Vec<&str> = urls.split(',').collect();
    let tokens: Vec<&str> = tokens.split(',').collect();
    let deadline = Instant::now() + std::time::Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (header, kids) = &read[i % read.len()];
            let (kids, header) = (Arc::clone(kids), header.clone());
            let service = remote_service(urls[i % urls.len()], tokens[i % tokens.len()], ca);
            std::thread::spawn(move || -> Res<(u64, u64, Vec<f64>)> {
                let service = service?;
                // Any 32 bytes are an X25519 public key; the device ID is its fingerprint.
                let mut device_public_key = [0x42; 32];
                device_public_key[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
                let mut request = RestoreRequest {
                    request_id: [0; 16],
                    header: header.authenticated.clone(),
                    wrapped_key: header.wrapped_key.clone(),
                    device_id: protocol::device_id_of(&device_public_key),
                    device_public_key,
                    licenses: kids.len() as u64,
                    replaces: None,
                };
                let (mut ok, mut failed, mut latencies) = (0u64, 0u64, Vec::new());
                while Instant::now() < deadline {
                    request.request_id = *KeyId::random().as_bytes();
                    let mut stream = kids.iter().copied().map(Ok);
                    let started = Instant::now();
                    let granted = service.authorize_restore(&request, &mut stream);
                    latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                    let settled = |id: &RequestId| {
                        if release { service.release_restore(id).is_ok() } else { service.confirm_restore(id).is_ok() }
                    };
                    match granted {
                        Ok(_) if settled(&request.request_id) => ok += 1,
                        _ => failed += 1,
                    }
                }
                Ok((ok, failed, latencies))
            })
        })
        .collect();
    let started = Instant::now();
    let (mut ok, mut failed, mut lat) = (0, 0, Vec::new());
    for t in threads {
        let (o, f, l) = t.join().map_err(|_| "an authorizing thread panicked".to_string())??;
        ok += o;
        failed += f;
        lat.extend(l);
    }
    let wall = started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| if lat.is_empty() { f64::NAN } else { lat[((lat.len() - 1) as f64 * p).round() as usize] };
    Ok(json!({"authorized": ok, "failed": failed, "wall_s": wall, "rate": ok as f64 / wall,
              "latency_p50_ms": pct(0.5), "latency_p99_ms": pct(0.99)}))
}

/// One authorization of `archive` (and its confirmation), timed.
fn authorize_once(url: &str, token: &str, ca: &str, archive: &Path) -> Res<Value> {
    let header = archive::read_header_at(archive).map_err(err)?;
    let kids = archive_key_ids(archive)?;
    let service = remote_service(url, token, ca)?;
    let device_public_key = [0x99; 32];
    let request = RestoreRequest {
        request_id: *KeyId::random().as_bytes(),
        header: header.authenticated.clone(),
        wrapped_key: header.wrapped_key.clone(),
        device_id: protocol::device_id_of(&device_public_key),
        device_public_key,
        licenses: kids.len() as u64,
        replaces: None,
    };
    let started = Instant::now();
    let mut stream = kids.iter().copied().map(Ok);
    service.authorize_restore(&request, &mut stream).map_err(|e| e.into_error().to_string())?;
    let wall = started.elapsed().as_secs_f64();
    service.confirm_restore(&request.request_id).map_err(err)?;
    Ok(json!({"wall_s": wall, "licenses": kids.len()}))
}

/// A `license-backup-service` on 127.0.0.1 for the bench: TLS, made with `init`, generous
/// limits (one ledger takes every restore of the run).
struct BenchServer {
    child: std::process::Child,
    url: String,
    token: String,
    ca: String,
    bin: PathBuf,
    config: PathBuf,
    env: Vec<(String, String)>,
}

impl BenchServer {
    fn start(bin: &Path, dir: &Path) -> Res<BenchServer> {
        Self::start_with(bin, dir, &[])
    }

    /// A server whose ledger the environment may name (`LB_SERVICE_LEDGER=postgres://...`).
    fn start_with(bin: &Path, dir: &Path, env: &[(String, String)]) -> Res<BenchServer> {
        Self::start_accounts(bin, dir, env, &[])
    }

    /// A server with more (token, account) pairs in its token file.
    fn start_accounts(
        bin: &Path,
        dir: &Path,
        env: &[(String, String)],
        tokens: &[(String, String)],
    ) -> Res<BenchServer> {
        fresh_dir(dir)?;
        let folder = dir.join("service");
        let out = Command::new(bin)
            .arg("init")
            .arg(&folder)
            .args(["--listen", "127.0.0.1:0", "--max-devices", "1000000"])
            .output()
            .map_err(err)?;
        if !out.status.success() {
            return Err(format!("init failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let made: Value = serde_json::from_slice(&out.stdout).map_err(err)?;
        let config = PathBuf::from(made["config"].as_str().unwrap_or_default());
        let mut f = std::fs::OpenOptions::new().append(true).open(&config).map_err(err)?;
        writeln!(
            f,
            "\n[rate]\nper_account = {{ per_second = 1000000.0, burst = 1000000.0 }}\nper_device = {{ per_second = 1000000.0, burst = 1000000.0 }}\n[log]\nlevel = \"warn\""
        )
        .map_err(err)?;
        let token = made["token"].as_str().unwrap_or_default().to_string();
        let ca = made["ca_file"].as_str().unwrap_or_default().to_string();
        let mut t = std::fs::OpenOptions::new().append(true).open(folder.join("tokens.txt")).map_err(err)?;
        for (token, account) in tokens {
            writeln!(t, "{token} {account}").map_err(err)?;
        }
        Self::launch(bin, &config, env, token, ca)
    }

    fn launch(bin: &Path, config: &Path, env: &[(String, String)], token: String, ca: String) -> Res<BenchServer> {
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(err)?;
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().expect("piped")), &mut line)
            .map_err(err)?;
        let listening: Value = serde_json::from_str(&line).map_err(|e| format!("the server did not start: {e}"))?;
        Ok(BenchServer {
            child,
            url: listening["listening"].as_str().unwrap_or_default().to_string(),
            token,
            ca,
            bin: bin.to_path_buf(),
            config: config.to_path_buf(),
            env: env.to_vec(),
        })
    }

    /// A second instance on the same configuration and ledger.
    fn another(&self) -> Res<BenchServer> {
        Self::launch(&self.bin, &self.config, &self.env, self.token.clone(), self.ca.clone())
    }

    /// What the ledger holds for the token's account (`license-backup-service audit`).
    fn audit(&self) -> Res<Value> {
        self.audit_account("default")
    }

    /// What the ledger holds for `account`.
    fn audit_account(&self, account: &str) -> Res<Value> {
        let out = Command::new(&self.bin)
            .args(["audit", "--account", account, "--config"])
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .map_err(err)?;
        if !out.status.success() {
            return Err(format!("audit failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        serde_json::from_slice(&out.stdout).map_err(err)
    }

    /// The server process's peak resident memory (VmHWM), KiB.
    fn peak_rss_kib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            })
            .unwrap_or(f64::NAN)
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the child this bench started; a graceful stop, then reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// A callback that records, for every event, when the engine emitted it and when it was
/// delivered (both on the monotonic clock, in nanoseconds): what the binding scripts do.
struct Deliveries(Mutex<Vec<(u64, u64)>>);

impl StatusCallback for Deliveries {
    fn on_status(&self, _: &StatusEvent) -> std::result::Result<(), CallbackError> {
        Ok(())
    }

    fn on_status_batch(&self, batch: &[Emitted], stop: &dyn Fn() -> bool) -> std::result::Result<(), CallbackError> {
        let mut times = self.0.lock().expect("deliveries");
        for e in batch {
            times.push((e.emitted_ns, monotonic_ns()));
            if stop() {
                break;
            }
        }
        Ok(())
    }
}

/// Throughput (deliveries per second between the first and the last delivery) and latency
/// from emission to delivery (median, 99th percentile) of `(emitted_ns, delivered_ns)` pairs.
fn event_stats(times: &[(u64, u64)]) -> Value {
    if times.len() < 2 {
        return json!({"events": times.len(), "rate": 0.0, "latency_p50_us": 0.0, "latency_p99_us": 0.0});
    }
    let mut lat: Vec<f64> = times.iter().map(|(e, d)| d.saturating_sub(*e) as f64 / 1000.0).collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    let span = (times[times.len() - 1].1 - times[0].1) as f64 / 1e9;
    json!({"events": times.len(), "rate": (times.len() - 1) as f64 / span,
           "latency_p50_us": pct(0.5), "latency_p99_us": pct(0.99)})
}

/// Runs `bench child backup` of `store` into `out` (ProgressInterval 100).
fn backup_child(store: &Path, service: &Path, out: &Path) -> Res<Value> {
    run_child(&[
        "backup",
        &store.display().to_string(),
        &service.display().to_string(),
        &out.display().to_string(),
        "100",
    ])
}

/// Runs `bench child e2e`: the median wall time of `repeat` backups in one process.
fn e2e_child(store: &Path, service: &Path, out: &Path, repeat: usize) -> Res<f64> {
    let v = run_child(&[
        "e2e",
        &store.display().to_string(),
        &service.display().to_string(),
        &out.display().to_string(),
        &repeat.max(1).to_string(),
    ])?;
    Ok(v["wall_s"].as_f64().unwrap_or(f64::NAN))
}

fn run_child(args: &[&str]) -> Res<Value> {
    let exe = std::env::current_exe().map_err(err)?;
    let out = Command::new(exe).arg("child").args(args).stderr(Stdio::inherit()).output().map_err(err)?;
    if !out.status.success() {
        return Err(format!("child {args:?} failed ({})", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("{}")).map_err(err)
}

// ---------------------------------------------------------------- baseline (standard tools)

fn tool(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn sh(cmd: &mut Command) -> Res<()> {
    let st = cmd.stdout(Stdio::null()).status().map_err(err)?;
    if st.success() { Ok(()) } else { Err(format!("{cmd:?} failed ({st})")) }
}

/// `sqlite3 .backup` then `openssl enc -aes-256-cbc -pbkdf2` then `sync`: seconds.
fn baseline_backup(store: &Path, scratch: &Path) -> Res<f64> {
    let copy = scratch.join("copy.db");
    let enc = scratch.join("store.enc");
    let _ = std::fs::remove_file(&copy);
    let start = Instant::now();
    sh(Command::new("sqlite3").arg(store).arg(format!(".backup '{}'", copy.display())))?;
    sh(Command::new("openssl")
        .args(["enc", "-aes-256-cbc", "-pbkdf2", "-pass", PASSWORD, "-in"])
        .arg(&copy)
        .arg("-out")
        .arg(&enc))?;
    sh(Command::new("sync").arg(&enc))?;
    let t = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&copy);
    Ok(t)
}

/// `openssl enc -d` then `sqlite3 target.db ".restore"` (the baseline's backup must exist).
fn baseline_restore(scratch: &Path) -> Res<f64> {
    let enc = scratch.join("store.enc");
    let dec = scratch.join("dec.db");
    let target = scratch.join("restored.db");
    for p in [&dec, &target] {
        let _ = std::fs::remove_file(p);
    }
    let start = Instant::now();
    sh(Command::new("openssl")
        .args(["enc", "-d", "-aes-256-cbc", "-pbkdf2", "-pass", PASSWORD, "-in"])
        .arg(&enc)
        .arg("-out")
        .arg(&dec))?;
    sh(Command::new("sqlite3").arg(&target).arg(format!(".restore '{}'", dec.display())))?;
    let t = start.elapsed().as_secs_f64();
    for p in [&dec, &target] {
        let _ = std::fs::remove_file(p);
    }
    Ok(t)
}

// ---------------------------------------------------------------- the run

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

struct Row {
    figure: String,
    value: String,
    baseline: String,
    ratio: Option<f64>,
    target: String,
}

fn fmt_n(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

fn fresh_dir(p: &Path) -> Res<()> {
    let _ = std::fs::remove_dir_all(p);
    std::fs::create_dir_all(p).map_err(err)
}

fn parent(args: &[String]) -> Res<()> {
    let opts = parse_opts(args)?;
    let have_baseline = tool("sqlite3") && tool("openssl") && tool("sync");
    let mut rows: Vec<Row> = Vec::new();
    let mut figures: Vec<Value> = Vec::new();
    let mut record =
        |name: String, value: f64, unit: &str| figures.push(json!({"name": name, "value": value, "unit": unit}));
    let scratch = opts.dir.join("scratch");
    let largest_mem = opts.mem_sizes.iter().copied().max().unwrap_or(0);
    let smallest_mem = opts.mem_sizes.iter().copied().min().unwrap_or(0);
    let mut rss: BTreeMap<(&str, u64), f64> = BTreeMap::new();
    let mut embedded_restore: BTreeMap<u64, f64> = BTreeMap::new();
    let mut notes_early: Vec<String> = vec![];

    for &n in &opts.sizes {
        let fx = fixture(&opts, n)?;
        let (store, service) = (fx.join("store.db"), fx.join("service.db"));
        let runs = opts.repeat.max(1);
        let (mut ours_b, mut base_b, mut ours_r, mut base_r) = (vec![], vec![], vec![], vec![]);
        // CPU time (user + system) of the same runs: less sensitive to other load than wall.
        let (mut cpu_ob, mut cpu_bb, mut cpu_or, mut cpu_br) = (vec![], vec![], vec![], vec![]);
        // The checkpoint after the restore's END: wall and CPU time.
        let (mut ckpt, mut cpu_ckpt) = (vec![], vec![]);
        let (mut rss_b, mut rss_r, mut lic_b, mut lic_r) = (0f64, 0f64, 0u64, 0u64);
        // The same archive restored onto a second device, with the ledger the first left: the
        // service finds every license placed already (wall, CPU).
        let (mut second, mut cpu_second) = (vec![], vec![]);
        for _ in 0..runs {
            fresh_dir(&scratch)?;
            let out = scratch.join("usb");
            std::fs::create_dir_all(&out).map_err(err)?;
            if have_baseline {
                let cpu = cpu_seconds(true);
                base_b.push(baseline_backup(&store, &scratch)?);
                cpu_bb.push(cpu_seconds(true) - cpu);
            }
            let b = backup_child(&store, &service, &out)?;
            ours_b.push(b["wall_s"].as_f64().unwrap_or(f64::NAN));
            cpu_ob.push(b["cpu_s"].as_f64().unwrap_or(f64::NAN));
            rss_b = rss_b.max(b["peak_rss_kib"].as_f64().unwrap_or(0.0));
            lic_b = b["licenses"].as_u64().unwrap_or(0);
            if have_baseline {
                let cpu = cpu_seconds(true);
                base_r.push(baseline_restore(&scratch)?);
                cpu_br.push(cpu_seconds(true) - cpu);
            }
            // A fresh ledger each run: restores count against the quota.
            let svc = scratch.join("service.db");
            std::fs::copy(&service, &svc).map_err(err)?;
            // A restore of the archive onto the fresh store `name` with the ledger `svc`.
            let restore_onto = |name: &str| {
                let target = scratch.join(name).display().to_string();
                run_child(&["restore", &target, &svc.display().to_string(), &out.display().to_string()])
            };
            let r = restore_onto("device-b.db")?;
            ours_r.push(r["wall_s"].as_f64().unwrap_or(f64::NAN));
            cpu_or.push(r["cpu_s"].as_f64().unwrap_or(f64::NAN));
            ckpt.push(r["checkpoint_s"].as_f64().unwrap_or(f64::NAN));
            cpu_ckpt.push(r["checkpoint_cpu_s"].as_f64().unwrap_or(f64::NAN));
            rss_r = rss_r.max(r["peak_rss_kib"].as_f64().unwrap_or(0.0));
            lic_r = r["licenses"].as_u64().unwrap_or(0);
            let r = restore_onto("device-c.db")?;
            second.push(r["wall_s"].as_f64().unwrap_or(f64::NAN));
            cpu_second.push(r["cpu_s"].as_f64().unwrap_or(f64::NAN));
        }
        let (ob, bb, or, br) = (median(ours_b), median(base_b), median(ours_r), median(base_r));
        let (cob, cbb, cor, cbr) = (median(cpu_ob), median(cpu_bb), median(cpu_or), median(cpu_br));
        let (ck, cck) = (median(ckpt), median(cpu_ckpt));
        let nn = fmt_n(n);
        record(format!("rust.backup.{nn}.cpu"), cob, "s");
        record(format!("baseline.backup.{nn}.cpu"), cbb, "s");
        record(format!("rust.restore.{nn}.cpu"), cor, "s");
        record(format!("baseline.restore.{nn}.cpu"), cbr, "s");
        record(format!("rust.restore.{nn}.checkpoint_after_end"), ck, "s");
        record(format!("rust.restore.{nn}.checkpoint_after_end.cpu"), cck, "s");
        record(format!("rust.backup.{nn}.wall"), ob, "s");
        record(format!("rust.backup.{nn}.rate"), lic_b as f64 / ob, "licenses/s");
        record(format!("baseline.backup.{nn}.wall"), bb, "s");
        record(format!("rust.restore.{nn}.wall"), or, "s");
        record(format!("rust.restore.{nn}.rate"), lic_r as f64 / or, "licenses/s");
        record(format!("baseline.restore.{nn}.wall"), br, "s");
        record(format!("rust.backup.{nn}.peak_rss"), rss_b, "KiB");
        record(format!("rust.restore.{nn}.peak_rss"), rss_r, "KiB");
        let is_top = n == largest_mem && n >= 1_000_000;
        rows.push(Row {
            figure: format!("backup {nn} ({lic_b} archived, {} restricted)", n - lic_b),
            value: format!("{:.0} lic/s, {:.3} s (CPU {:.2} s)", n as f64 / ob, ob, cob),
            baseline: format!("{:.0} lic/s, {:.3} s (CPU {:.2} s)", n as f64 / bb, bb, cbb),
            ratio: Some(ob / bb),
            target: if is_top { "<= 1.5x".into() } else { String::new() },
        });
        rows.push(Row {
            figure: format!("restore {nn} ({lic_r} restored)"),
            value: format!(
                "{:.0} lic/s, {:.3} s (CPU {:.2} s); checkpoint after END {:.3} s (CPU {:.2} s)",
                n as f64 / or,
                or,
                cor,
                ck,
                cck
            ),
            baseline: format!("{:.0} lic/s, {:.3} s (CPU {:.2} s)", n as f64 / br, br, cbr),
            ratio: Some(or / br),
            target: if is_top { "<= 2.5x".into() } else { String::new() },
        });
        let (sw, scpu) = (median(second), median(cpu_second));
        record(format!("rust.restore_second_device.{nn}.wall"), sw, "s");
        record(format!("rust.restore_second_device.{nn}.cpu"), scpu, "s");
        rows.push(Row {
            figure: format!("restore {nn} onto a second device (the ledger places every license already)"),
            value: format!("{:.0} lic/s, {:.3} s (CPU {:.2} s)", n as f64 / sw, sw, scpu),
            baseline: format!("{or:.3} s onto the first device"),
            ratio: Some(sw / or),
            target: String::new(),
        });
        rss.insert(("backup", n), rss_b);
        rss.insert(("restore", n), rss_r);
        embedded_restore.insert(n, or);
    }

    for op in ["backup", "restore"] {
        for &n in &opts.mem_sizes {
            let Some(&v) = rss.get(&(op, n)) else { continue };
            let base = rss.get(&(op, smallest_mem)).copied().unwrap_or(f64::NAN);
            let top = n == largest_mem && n != smallest_mem;
            rows.push(Row {
                figure: format!("peak RSS {op} {}", fmt_n(n)),
                value: mib(v),
                baseline: if top { format!("{} at {}", mib(base), fmt_n(smallest_mem)) } else { String::new() },
                ratio: top.then_some(v / base),
                target: if top && n >= 1_000_000 { "< 64 MiB, <= 1.2x".into() } else { String::new() },
            });
        }
    }

    // Through a server on 127.0.0.1: restores against the embedded ones, memory, authorizations/s.
    match opts.service_bin.clone().filter(|b| b.exists()) {
        None => notes_early.push("server rows: skipped (no license-backup-service; --service-bin)".into()),
        Some(bin) => {
            let (mut client_rss, mut server_rss) = (BTreeMap::new(), BTreeMap::new());
            for &n in &opts.remote_sizes {
                let fx = fixture(&opts, n)?;
                let store = fx.join("store.db").display().to_string();
                let runs = if n >= 1_000_000 { 1 } else { opts.repeat.max(1) };
                let (mut walls, mut rss_c, mut rs) = (vec![], 0f64, 0f64);
                for i in 0..runs {
                    // A fresh server (its own ledger) each run, like the embedded restore's fresh
                    // ledger copy: the same work on both sides but the network. A new device
                    // each time (a fresh store).
                    let server = BenchServer::start(&bin, &opts.dir.join("server"))?;
                    let (url, token, ca) = (server.url.as_str(), server.token.as_str(), server.ca.as_str());
                    fresh_dir(&scratch)?;
                    let out = scratch.join("usb");
                    std::fs::create_dir_all(&out).map_err(err)?;
                    let outs = out.display().to_string();
                    run_child(&["remote-backup", &store, url, token, ca, &outs])?;
                    let target = scratch.join(format!("remote-device-{i}.db")).display().to_string();
                    let r = run_child(&["remote-restore", &target, url, token, ca, &outs])?;
                    walls.push(r["wall_s"].as_f64().unwrap_or(f64::NAN));
                    rss_c = rss_c.max(r["peak_rss_kib"].as_f64().unwrap_or(0.0));
                    rs = rs.max(server.peak_rss_kib());
                }
                let wall = median(walls);
                let nn = fmt_n(n);
                record(format!("rust.restore_remote.{nn}.wall"), wall, "s");
                record(format!("rust.restore_remote.{nn}.client_peak_rss"), rss_c, "KiB");
                record(format!("server.restore_remote.{nn}.peak_rss"), rs, "KiB");
                client_rss.insert(n, rss_c);
                server_rss.insert(n, rs);
                let base = embedded_restore.get(&n).copied();
                rows.push(Row {
                    figure: format!("restore {nn} through the server (TLS, loopback)"),
                    value: format!("{:.0} lic/s, {:.3} s", n as f64 / wall, wall),
                    baseline: base
                        .map(|b| format!("{b:.3} s embedded"))
                        .unwrap_or_else(|| "(size not in --sizes)".into()),
                    ratio: base.map(|b| wall / b),
                    target: if n >= 100_000 { "<= 1.3x".into() } else { String::new() },
                });
            }
            let (lo, hi) = (opts.remote_sizes.iter().min().copied(), opts.remote_sizes.iter().max().copied());
            if let (Some(lo), Some(hi)) = (lo, hi) {
                for (who, map) in [("client", &client_rss), ("server", &server_rss)] {
                    let (l, h) = (map.get(&lo).copied().unwrap_or(f64::NAN), map.get(&hi).copied().unwrap_or(f64::NAN));
                    rows.push(Row {
                        figure: format!("peak RSS {who}, restore {} through the server", fmt_n(hi)),
                        value: mib(h),
                        baseline: format!("{} at {}", mib(l), fmt_n(lo)),
                        ratio: Some(h / l),
                        target: if hi >= 1_000_000 { "<= 1.2x".into() } else { String::new() },
                    });
                }
            }
            // 8 clients authorizing restores of a 1,000-license archive.
            let fx = fixture(&opts, 1_000)?;
            let server = BenchServer::start(&bin, &opts.dir.join("server"))?;
            fresh_dir(&scratch)?;
            let out = scratch.join("usb");
            std::fs::create_dir_all(&out).map_err(err)?;
            let (url, token, ca) = (server.url.as_str(), server.token.as_str(), server.ca.as_str());
            let outs = out.display().to_string();
            run_child(&["remote-backup", &fx.join("store.db").display().to_string(), url, token, ca, &outs])?;
            let archive = out.join(archive::ARCHIVE_FILE_NAME).display().to_string();
            let load = run_child(&["authorize-load", url, token, ca, &archive, &opts.auth_seconds.to_string(), "8"])?;
            drop(server);
            let rate = load["rate"].as_f64().unwrap_or(f64::NAN);
            record("server.authorizations_1k.8_clients.rate".into(), rate, "authorizations/s");
            rows.push(Row {
                figure: "authorizations/s, 1,000-license archives, 8 clients".into(),
                value: format!(
                    "{rate:.0}/s ({} in {:.1} s, {} failed)",
                    load["authorized"].as_u64().unwrap_or(0),
                    load["wall_s"].as_f64().unwrap_or(f64::NAN),
                    load["failed"].as_u64().unwrap_or(0)
                ),
                baseline: String::new(),
                ratio: None,
                target: String::new(),
            });
            if opts.postgres {
                // The same loads against the PostgreSQL ledger (2 instances on one database) and
                // the SQLite ledger (1 instance: its file has one writer), in this run; every
                // load ends with an audit: the ledger's confirmed restores equal the grants.
                let cluster = pg::PgCluster::start_with(&pg::PgOptions { fsync: true, ..Default::default() });
                let fx = fixture(&opts, 1_000)?;
                let mut loads: BTreeMap<(&str, usize), Value> = BTreeMap::new();
                for ledger in ["sqlite", "postgres"] {
                    for clients in [8usize, 32] {
                        let env = if ledger == "postgres" {
                            let url = cluster.create_database(&format!("load{clients}"));
                            vec![("LB_SERVICE_LEDGER".to_string(), url)]
                        } else {
                            vec![]
                        };
                        let server = BenchServer::start_with(&bin, &opts.dir.join("server"), &env)?;
                        let second = if ledger == "postgres" { Some(server.another()?) } else { None };
                        fresh_dir(&scratch)?;
                        let out = scratch.join("usb");
                        std::fs::create_dir_all(&out).map_err(err)?;
                        let (token, ca) = (server.token.as_str(), server.ca.as_str());
                        let outs = out.display().to_string();
                        let store = fx.join("store.db").display().to_string();
                        run_child(&["remote-backup", &store, &server.url, token, ca, &outs])?;
                        let archive = out.join(archive::ARCHIVE_FILE_NAME).display().to_string();
                        let urls = match &second {
                            Some(b) => format!("{},{}", server.url, b.url),
                            None => server.url.clone(),
                        };
                        let secs = opts.auth_seconds.to_string();
                        let load =
                            run_child(&["authorize-load", &urls, token, ca, &archive, &secs, &clients.to_string()])?;
                        let audit = server.audit()?;
                        let granted = load["authorized"].as_u64().unwrap_or(0);
                        if audit["confirmed"].as_u64() != Some(granted) || audit["pending"].as_u64() != Some(0) {
                            return Err(format!("{ledger} audit after the load: {audit} for {granted} grants"));
                        }
                        loads.insert((ledger, clients), load);
                    }
                }
                for clients in [8usize, 32] {
                    let (sq, pg) = (&loads[&("sqlite", clients)], &loads[&("postgres", clients)]);
                    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
                    record(
                        format!("server.pg.authorizations_1k.{clients}_clients.rate"),
                        f(pg, "rate"),
                        "authorizations/s",
                    );
                    record(format!("server.pg.authorizations_1k.{clients}_clients.p50"), f(pg, "latency_p50_ms"), "ms");
                    record(format!("server.pg.authorizations_1k.{clients}_clients.p99"), f(pg, "latency_p99_ms"), "ms");
                    record(
                        format!("server.sqlite.authorizations_1k.{clients}_clients.rate"),
                        f(sq, "rate"),
                        "authorizations/s",
                    );
                    rows.push(ledger_scale::authorization_row(
                        format!(
                            "authorizations/s, 1,000-license archives, {clients} clients, PostgreSQL (2 instances)"
                        ),
                        pg,
                        sq,
                    ));
                }
                // One large authorization onto a fresh device, each ledger; the server's peak RSS.
                for &n in &opts.pg_auth_sizes {
                    let fx = fixture(&opts, n)?;
                    let mut walls: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
                    for ledger in ["sqlite", "postgres"] {
                        let env = if ledger == "postgres" {
                            vec![("LB_SERVICE_LEDGER".to_string(), cluster.create_database(&format!("single{n}")))]
                        } else {
                            vec![]
                        };
                        let server = BenchServer::start_with(&bin, &opts.dir.join("server"), &env)?;
                        fresh_dir(&scratch)?;
                        let out = scratch.join("usb");
                        std::fs::create_dir_all(&out).map_err(err)?;
                        let (token, ca) = (server.token.as_str(), server.ca.as_str());
                        let store = fx.join("store.db").display().to_string();
                        run_child(&["remote-backup", &store, &server.url, token, ca, &out.display().to_string()])?;
                        let archive = out.join(archive::ARCHIVE_FILE_NAME).display().to_string();
                        let one = run_child(&["authorize-once", &server.url, token, ca, &archive])?;
                        walls.insert(ledger, (one["wall_s"].as_f64().unwrap_or(f64::NAN), server.peak_rss_kib()));
                    }
                    let ((sq, _), (pgw, pg_rss)) = (walls["sqlite"], walls["postgres"]);
                    let nn = fmt_n(n);
                    record(format!("server.pg.authorize_once.{nn}.wall"), pgw, "s");
                    record(format!("server.pg.authorize_once.{nn}.peak_rss"), pg_rss, "KiB");
                    record(format!("server.sqlite.authorize_once.{nn}.wall"), sq, "s");
                    rows.push(Row {
                        figure: format!("one {nn}-license authorization, PostgreSQL"),
                        value: format!("{pgw:.3} s ({:.0} lic/s), server peak RSS {}", n as f64 / pgw, mib(pg_rss)),
                        baseline: format!("{sq:.3} s SQLite"),
                        ratio: Some(pgw / sq),
                        target: String::new(),
                    });
                }
                // Clients spread over accounts, and the ledger's size (bench-parts/ledger.rs).
                for part in [ledger_scale::accounts, ledger_scale::ledger_sizes] {
                    let m = part(&opts, &bin, &cluster, &scratch)?;
                    rows.extend(m.rows);
                    for (name, value, unit) in m.figures {
                        record(name, value, unit);
                    }
                }
            }
        }
    }

    // End-to-end backup and events: Rust in a child, then each binding script on the same data.
    let fx = fixture(&opts, opts.e2e)?;
    let (store, service) = (fx.join("store.db"), fx.join("service.db"));
    let e2e = fmt_n(opts.e2e);
    let out = scratch.join("e2e");
    fresh_dir(&out)?;
    let rust_e2e = e2e_child(&store, &service, &out, opts.repeat)?;
    record(format!("rust.backup_e2e.{e2e}.wall"), rust_e2e, "s");
    let ev = run_child(&[
        "events",
        &store.display().to_string(),
        &service.display().to_string(),
        &out.display().to_string(),
    ])?;
    let rust_rate = ev["rate"].as_f64().unwrap_or(f64::NAN);
    record("rust.events.rate".into(), rust_rate, "events/s");
    record("rust.events.latency_p50".into(), ev["latency_p50_us"].as_f64().unwrap_or(f64::NAN), "us");
    record("rust.events.latency_p99".into(), ev["latency_p99_us"].as_f64().unwrap_or(f64::NAN), "us");
    rows.push(Row {
        figure: format!("backup {e2e} end-to-end, Rust"),
        value: format!("{rust_e2e:.3} s"),
        baseline: "(baseline of the binding rows)".into(),
        ratio: None,
        target: String::new(),
    });
    rows.push(Row {
        figure: "events/s into a Rust callback".into(),
        value: format!(
            "{rust_rate:.0}/s, latency p50 {:.1} us p99 {:.1} us",
            ev["latency_p50_us"].as_f64().unwrap_or(f64::NAN),
            ev["latency_p99_us"].as_f64().unwrap_or(f64::NAN)
        ),
        baseline: "(baseline of the binding rows)".into(),
        ratio: None,
        target: ">= 250000/s".into(),
    });

    let mut notes = notes_early;
    for (lang, interp, folder, ext) in [
        ("python", opts.python.clone(), "bindings-python/bench", "py"),
        ("node", opts.node.clone(), "bindings-node/bench", "js"),
    ] {
        let scripts: Vec<PathBuf> = std::fs::read_dir(opts.root.join(folder))
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == ext)).collect()
            })
            .unwrap_or_default();
        let Some(interp) = interp.filter(|i| tool(i)) else {
            notes.push(format!("{lang}: skipped (no interpreter given or found)"));
            continue;
        };
        if scripts.is_empty() {
            notes.push(format!("{lang}: skipped (no {folder}/*.{ext})"));
            continue;
        }
        for script in scripts {
            let bout = scratch.join(format!("{lang}-out"));
            fresh_dir(&bout)?;
            // The Rust figure again, right before the script: the pair sees the same load.
            let rust_pair = e2e_child(&store, &service, &bout, opts.repeat)?;
            figures.push(
                json!({"name": format!("rust.backup_e2e.{e2e}.before_{lang}.wall"), "value": rust_pair, "unit": "s"}),
            );
            let output = Command::new(&interp)
                .arg(&script)
                .arg("--store")
                .arg(&store)
                .arg("--service")
                .arg(&service)
                .arg("--out")
                .arg(&bout)
                .arg("--n")
                .arg(opts.e2e.to_string())
                .arg("--repeat")
                .arg(opts.repeat.max(1).to_string())
                .stderr(Stdio::inherit())
                .output()
                .map_err(err)?;
            let mut got: BTreeMap<String, f64> = BTreeMap::new();
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
                if let Some(reason) = v.get("skip").and_then(Value::as_str) {
                    notes.push(format!("{lang} {}: skipped ({reason})", script.display()));
                } else if let (Some(name), Some(value)) = (v["name"].as_str(), v["value"].as_f64()) {
                    got.insert(name.to_string(), value);
                    figures.push(v.clone());
                }
            }
            if !output.status.success() {
                notes.push(format!("{lang} {}: failed ({})", script.display(), output.status));
            }
            if let Some(&w) = got.get(&format!("{lang}.backup_e2e.wall")) {
                rows.push(Row {
                    figure: format!("backup {e2e} end-to-end, {lang}"),
                    value: format!("{w:.3} s"),
                    baseline: format!("{rust_pair:.3} s (Rust, run just before)"),
                    ratio: Some(w / rust_pair),
                    target: "<= 1.1x".into(),
                });
            }
            if let Some(&r) = got.get(&format!("{lang}.events.rate")) {
                let g = |k: &str| got.get(&format!("{lang}.events.{k}")).copied().unwrap_or(f64::NAN);
                rows.push(Row {
                    figure: format!("events/s into a {lang} callback"),
                    value: format!("{r:.0}/s, latency p50 {:.1} us p99 {:.1} us", g("latency_p50"), g("latency_p99")),
                    baseline: format!("{rust_rate:.0}/s (Rust)"),
                    ratio: Some(rust_rate / r),
                    target: ">= 250000/s".into(),
                });
            }
        }
    }
    if !have_baseline {
        notes.push("baseline: sqlite3, openssl or sync missing; baseline figures are NaN".into());
    }

    // The table.
    let header = ["figure", "value", "baseline (same run)", "ratio", "target"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.figure.clone(),
                r.value.clone(),
                r.baseline.clone(),
                r.ratio.map(|x| format!("{x:.2}x")).unwrap_or_default(),
                r.target.clone(),
            ]
        })
        .collect();
    let mut table = String::new();
    table.push_str(&format!("| {} |\n", header.join(" | ")));
    table.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for c in &cells {
        table.push_str(&format!("| {} |\n", c.join(" | ")));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut text = String::new();
    text.push_str("license-backup benchmark (ratio = ours / baseline in time; memory: 1M figure / smallest figure)\n");
    text.push_str("baseline: sqlite3 .backup + openssl enc -aes-256-cbc -pbkdf2 + sync; restore: openssl enc -d + sqlite3 .restore\n");
    text.push_str("CPU: user + system seconds of the same runs (less sensitive than wall time to other load)\n");
    text.push_str(&format!("load average at the end: {}", load));
    text.push_str(&table);
    for n in &notes {
        text.push_str(&format!("note: {n}\n"));
    }
    print!("{text}");
    std::fs::create_dir_all(&opts.dir).map_err(err)?;
    std::fs::write(opts.dir.join("table.md"), &text).map_err(err)?;
    let mut f = std::fs::File::create(opts.dir.join("results.jsonl")).map_err(err)?;
    for v in &figures {
        writeln!(f, "{v}").map_err(err)?;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if opts.smoke {
        eprintln!("bench: smoke run done ({} rows)", rows.len());
    }
    Ok(())
}
