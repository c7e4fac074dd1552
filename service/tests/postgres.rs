//! The service on PostgreSQL: real `license-backup-service` processes on 127.0.0.1 over one
//! throw-away PostgreSQL cluster (support/pg.rs), reached by devices through `RemoteService`.
//! The quota stays exact when several instances serve one account at once, when operations
//! interleave at random (checked against a model), and under faults: the database restarted
//! during a load run, an instance killed mid-transaction, an exhausted pool, a lock held too
//! long, a database that is down when the service starts. Registrations racing across
//! accounts give each device to exactly one account.

#[path = "support/pg.rs"]
mod pg;
#[path = "../../core/tests/common/server.rs"]
mod server;
#[path = "../../fuzz/writer.rs"]
mod writer;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use license_backup::archive;
use license_backup::protocol;
use license_backup::*;
use pg::PgCluster;
use server::{ServerOptions, TestServer};

/// A cluster with a fresh database, and the environment that points a server at it.
fn database(cluster: &PgCluster, name: &str) -> (String, Vec<(String, String)>) {
    let url = cluster.create_database(name);
    (url.clone(), vec![("LB_SERVICE_LEDGER".to_string(), url)])
}

/// A server on the database (plain HTTP on loopback), with extra configuration.
fn pg_server(env: &[(String, String)], max_devices: u32, extra: &str) -> TestServer {
    TestServer::start(&ServerOptions {
        max_devices: Some(max_devices),
        plain: true,
        extra_config: extra.to_string(),
        env: env.to_vec(),
        ..Default::default()
    })
}

/// One SQL value from the ledger database.
fn sql(cluster: &PgCluster, db: &str, query: &str) -> String {
    cluster.psql(db, query)
}

fn client(server: &TestServer, retries: u32) -> RemoteService {
    RemoteService::new(&server.url, RemoteOptions { retries: Some(retries), ..server.options() }).unwrap()
}

fn device(dir: &Path, name: &str, service: Arc<dyn LicenseService>) -> (Arc<LicenseStore>, BackupRestorer) {
    let store = Arc::new(LicenseStore::open(dir.join(format!("{name}.db"))).unwrap());
    let restorer = create_backup_restorer(Arc::clone(&store), service);
    let folder = dir.join("backup");
    std::fs::create_dir_all(&folder).unwrap();
    for p in ["BackupPath", "RestorePath"] {
        restorer.set_property(p, PropertyValue::String(folder.display().to_string())).unwrap();
    }
    (store, restorer)
}

/// Adds `n` licenses numbered from `first` (key IDs tagged with `tag`).
fn fill(store: &LicenseStore, tag: u8, first: u32, n: u32) {
    let licenses: Vec<NewLicense> = (first..first + n)
        .map(|i| NewLicense {
            key_id: KeyId::from_bytes({
                let mut b = [tag; 16];
                b[12..].copy_from_slice(&i.to_be_bytes());
                b
            }),
            content_key: format!("ck-{i}").into_bytes(),
            rights: Rights::default(),
            issuer: "https://issuer.example".into(),
            issued_at: 1_700_000_000,
        })
        .collect();
    store.add_licenses(&licenses, ConflictPolicy::Keep).unwrap();
}

fn noop() -> Arc<dyn StatusCallback> {
    Arc::new(|_: &StatusEvent| Ok(()))
}

/// An archive made through `server` by a device of its default account, in `dir/backup`.
fn make_archive(server: &TestServer, dir: &Path, tag: u8, n: u32) -> Archive {
    let (store, r) = device(dir, &format!("origin-{tag}"), Arc::new(client(server, 2)));
    fill(&store, tag, 0, n);
    r.backup_licenses(BackupFlags { overwrite: true }, noop()).unwrap().wait().unwrap();
    let path = dir.join("backup").join(archive::ARCHIVE_FILE_NAME);
    let kept = dir.join(format!("archive-{tag}.lbk"));
    std::fs::rename(&path, &kept).unwrap();
    Archive::read(&kept)
}

/// What a device sends about an archive.
#[derive(Clone)]
struct Archive {
    header: archive::ArchiveHeader,
    key_ids: Arc<Vec<KeyId>>,
}

impl Archive {
    fn read(path: &Path) -> Archive {
        let header = archive::read_header_at(path).unwrap();
        let bytes = std::fs::read(path).unwrap();
        let mut pos = header.len();
        let mut key_ids = Vec::new();
        while pos + 21 <= bytes.len() && bytes[pos] == 1 {
            key_ids.push(KeyId::from_slice(&bytes[pos + 1..pos + 17]).unwrap());
            pos += 21 + u32::from_le_bytes(bytes[pos + 17..pos + 21].try_into().unwrap()) as usize;
        }
        Archive { header, key_ids: Arc::new(key_ids) }
    }

    /// A fresh request to restore it onto device number `device`.
    fn request(&self, device: u32) -> RestoreRequest {
        let public_key = device_key(device);
        RestoreRequest {
            request_id: *KeyId::random().as_bytes(),
            header: self.header.authenticated.clone(),
            wrapped_key: self.header.wrapped_key.clone(),
            device_id: protocol::device_id_of(&public_key),
            device_public_key: public_key,
            licenses: self.key_ids.len() as u64,
            replaces: None,
        }
    }

    fn authorize(&self, service: &RemoteService, request: &RestoreRequest) -> std::result::Result<(), ErrorCode> {
        let mut stream = self.key_ids.iter().copied().map(Ok);
        service.authorize_restore(request, &mut stream).map(drop).map_err(|e| e.into_error().code())
    }
}

/// Device number `n`'s public key (any 32 bytes are an X25519 public key).
fn device_key(n: u32) -> [u8; 32] {
    let mut k = [0x42; 32];
    k[..4].copy_from_slice(&n.to_be_bytes());
    k
}

/// A small deterministic generator (xorshift), seeded from `LB_TEST_SEED` or the clock; the
/// seed is printed so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("LB_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        eprintln!("randomized test: LB_TEST_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn fifty_devices_restoring_one_archive_through_two_instances_get_exactly_three_grants() {
    let cluster = PgCluster::start();
    let (_, env) = database(&cluster, "ledger");
    let a = pg_server(&env, 4, "");
    let b = a.another_instance();
    let dir = tempfile::tempdir().unwrap();
    let (origin, r) = device(dir.path(), "origin", Arc::new(client(&a, 2)));
    fill(&origin, 0x5a, 0, 150);
    r.backup_licenses(BackupFlags { overwrite: true }, noop()).unwrap().wait().unwrap();
    // Every device's store and restorer first, then all 50 restores at once.
    let devices: Vec<_> = (0..50)
        .map(|i| {
            let server = if i % 2 == 0 { &a } else { &b };
            device(dir.path(), &format!("d{i}"), Arc::new(client(server, 2)))
        })
        .collect();
    let start = Arc::new(std::sync::Barrier::new(devices.len()));
    let results: Vec<Result<Summary>> = std::thread::scope(|s| {
        let handles: Vec<_> = devices
            .iter()
            .map(|(_, r)| {
                let start = Arc::clone(&start);
                s.spawn(move || {
                    start.wait();
                    r.restore_licenses(RestoreFlags::default(), noop()).unwrap().wait()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let granted: Vec<usize> = (0..50).filter(|&i| results[i].is_ok()).collect();
    for r in &results {
        if let Err(e) = r {
            assert_eq!(e.code(), ErrorCode::RestoreLimitExceeded, "{e}");
        }
    }
    assert_eq!(granted.len(), 3, "the origin and three restores: {granted:?}");
    for (i, (store, _)) in devices.iter().enumerate() {
        let expected = if granted.contains(&i) { 150 } else { 0 };
        assert_eq!(store.list_licenses().unwrap().len(), expected, "device {i}");
    }
    let audit = a.audit();
    assert_eq!((audit.pending, audit.confirmed, audit.released), (0, 3, 0), "{audit:?}");
    assert_eq!((audit.licenses, audit.placements), (150, 150 * 4), "{audit:?}");
    assert_eq!(sql(&cluster, "ledger", "SELECT count(*) FROM reservations"), "3");
}

/// The quota as the devices see it: for each archive (licenses disjoint), its reservations by
/// request ID: the device and how it stands (`Unknown` for pending).
#[derive(Default)]
struct Model {
    max: usize,
    /// archive -> reservation request ID -> (device, state)
    reservations: HashMap<usize, HashMap<RequestId, (u32, Settlement)>>,
}

impl Model {
    fn live_devices(&self, archive: usize) -> BTreeSet<u32> {
        self.reservations
            .get(&archive)
            .map(|m| m.values().filter(|(_, s)| *s != Settlement::Released).map(|(d, _)| *d).collect())
            .unwrap_or_default()
    }

    /// Whether a restore of `archive` onto `device` is allowed: the device already counts, or
    /// the origin and the live devices leave room for one more.
    fn allows(&self, archive: usize, device: u32) -> bool {
        let live = self.live_devices(archive);
        live.contains(&device) || live.len() + 1 < self.max
    }
}

#[test]
fn randomized_authorize_confirm_release_retry_match_the_model_and_the_final_audit() {
    let cluster = PgCluster::start();
    let (_, env) = database(&cluster, "ledger");
    let max = 3usize;
    let a = pg_server(&env, max as u32, "");
    let b = a.another_instance();
    let dir = tempfile::tempdir().unwrap();
    let archives: Vec<Archive> =
        (0..3u8).map(|t| make_archive(&a, dir.path(), 0x10 + t, 70 + u32::from(t) * 30)).collect();
    let clients = [client(&a, 0), client(&b, 0)];
    let mut rng = Rng::new();
    let mut model = Model { max, ..Default::default() };
    // (archive, request) of every authorization tried, for retries.
    let mut tried: Vec<(usize, RestoreRequest)> = Vec::new();
    // Sequential steps, each checked against the model; the serving instance chosen at random.
    for step in 0..160 {
        let service = &clients[rng.below(2) as usize];
        match rng.below(12) {
            0..=3 => {
                let x = rng.below(archives.len() as u64) as usize;
                let d = rng.below(6) as u32;
                let request = archives[x].request(d);
                let expected = model.allows(x, d);
                let got = archives[x].authorize(service, &request);
                match got {
                    Ok(()) => {
                        assert!(expected, "step {step}: granted beyond the quota (archive {x}, device {d})");
                        model.reservations.entry(x).or_default().insert(request.request_id, (d, Settlement::Unknown));
                    }
                    Err(code) => {
                        assert!(
                            !expected,
                            "step {step}: refused ({code:?}) within the quota (archive {x}, device {d})"
                        );
                        assert_eq!(code, ErrorCode::RestoreLimitExceeded, "step {step}");
                    }
                }
                tried.push((x, request));
            }
            4 | 5 if !tried.is_empty() => {
                // A retry: the same request ID, the same request.
                let (x, request) = tried[rng.below(tried.len() as u64) as usize].clone();
                let known = model.reservations.get(&x).and_then(|m| m.get(&request.request_id)).copied();
                let got = archives[x].authorize(service, &request);
                match known {
                    Some((_, Settlement::Unknown)) => {
                        assert_eq!(got, Ok(()), "step {step}: a pending reservation's retry")
                    }
                    Some(_) => {
                        assert_eq!(got, Err(ErrorCode::InvalidArgument), "step {step}: a settled reservation's retry")
                    }
                    None => {
                        // Never recorded (refused): judged afresh.
                        let d = model_device(&request);
                        assert_eq!(got.is_ok(), model.allows(x, d), "step {step}: a refused request retried");
                        if got.is_ok() {
                            model
                                .reservations
                                .entry(x)
                                .or_default()
                                .insert(request.request_id, (d, Settlement::Unknown));
                        }
                    }
                }
            }
            6..=9 if !tried.is_empty() => {
                let (x, request) = tried[rng.below(tried.len() as u64) as usize].clone();
                let confirm = rng.below(2) == 0;
                let got = if confirm {
                    service.confirm_restore(&request.request_id).unwrap()
                } else {
                    service.release_restore(&request.request_id).unwrap()
                };
                let entry = model.reservations.get_mut(&x).and_then(|m| m.get_mut(&request.request_id));
                let expected = match entry {
                    None => Settlement::Unknown,
                    Some(e) => {
                        if e.1 == Settlement::Unknown {
                            e.1 = if confirm { Settlement::Confirmed } else { Settlement::Released };
                        }
                        e.1
                    }
                };
                assert_eq!(
                    got,
                    expected,
                    "step {step}: {} of {:?}",
                    if confirm { "confirm" } else { "release" },
                    request.request_id
                );
            }
            10 | 11 => {
                // The bound quota query: what the model says, nothing written.
                let x = rng.below(archives.len() as u64) as usize;
                let d = rng.below(6) as u32;
                let request = archives[x].request(d);
                let mut stream = archives[x].key_ids.iter().copied().map(Ok);
                let q = service.quota(&request, &mut stream).unwrap();
                let live = model.live_devices(x);
                assert_eq!(q.allowed, model.allows(x, d), "step {step}: quota of archive {x} onto {d}");
                assert_eq!(q.device_already_counted, live.contains(&d), "step {step}");
                assert_eq!(q.restores_remaining as usize, max.saturating_sub(live.len() + 1), "step {step}");
                assert_eq!(q.licenses, archives[x].key_ids.len() as u64);
            }
            _ => {}
        }
    }
    // Then concurrent rounds: four devices per archive racing through both instances. Each
    // reports what it was granted; the ledger must hold exactly that.
    let granted = Mutex::new(Vec::<(usize, RequestId, u32, bool)>::new());
    std::thread::scope(|s| {
        for t in 0..8u32 {
            let (archives, granted) = (&archives, &granted);
            let service = client(if t % 2 == 0 { &a } else { &b }, 0);
            s.spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(t + 1));
                for _ in 0..12 {
                    let x = rng.below(archives.len() as u64) as usize;
                    let d = 100 + t * 10 + rng.below(3) as u32;
                    let request = archives[x].request(d);
                    match archives[x].authorize(&service, &request) {
                        Ok(()) => {
                            let keep = rng.below(3) != 0;
                            let settled = if keep {
                                service.confirm_restore(&request.request_id).unwrap()
                            } else {
                                service.release_restore(&request.request_id).unwrap()
                            };
                            assert_eq!(settled, if keep { Settlement::Confirmed } else { Settlement::Released });
                            granted.lock().unwrap().push((x, request.request_id, d, keep));
                        }
                        Err(code) => assert_eq!(code, ErrorCode::RestoreLimitExceeded),
                    }
                }
            });
        }
    });
    for (x, id, d, keep) in granted.into_inner().unwrap() {
        let state = if keep { Settlement::Confirmed } else { Settlement::Released };
        model.reservations.entry(x).or_default().insert(id, (d, state));
    }
    // The final ledger, audited against the model.
    let count = |f: &dyn Fn(Settlement) -> bool| {
        model.reservations.values().flat_map(|m| m.values()).filter(|(_, s)| f(*s)).count() as u64
    };
    let mut licenses = 0u64;
    let mut placements = 0u64;
    for (x, arch) in archives.iter().enumerate() {
        let live = model.live_devices(x);
        assert!(live.len() < max, "archive {x}: {} devices besides the origin", live.len());
        if !live.is_empty() {
            let n = arch.key_ids.len() as u64;
            licenses += n;
            // The origin counts wherever a live reservation placed the archive's licenses.
            placements += n * (live.len() as u64 + 1);
        }
    }
    let audit = a.audit();
    assert_eq!(audit.pending, count(&|s| s == Settlement::Unknown), "{audit:?}");
    assert_eq!(audit.confirmed, count(&|s| s == Settlement::Confirmed), "{audit:?}");
    assert_eq!(audit.released, count(&|s| s == Settlement::Released), "{audit:?}");
    assert_eq!((audit.licenses, audit.placements), (licenses, placements), "{audit:?}");
    let rows: u64 = sql(&cluster, "ledger", "SELECT count(*) FROM reservations").parse().unwrap();
    assert_eq!(rows, count(&|_| true), "a reservation for every grant, none for a refusal");
}

fn model_device(request: &RestoreRequest) -> u32 {
    (0..200).find(|&d| protocol::device_id_of(&device_key(d)) == request.device_id).unwrap()
}

#[test]
fn a_restarted_database_fails_requests_cleanly_and_counts_nothing_twice() {
    let mut cluster = PgCluster::start();
    let (_, env) = database(&cluster, "ledger");
    let a = pg_server(&env, 1_000_000, "");
    let b = a.another_instance();
    let dir = tempfile::tempdir().unwrap();
    let arch = make_archive(&a, dir.path(), 0x21, 200);
    let stop = AtomicBool::new(false);
    let (granted, unavailable) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        for t in 0..6u32 {
            let (arch, stop, granted, unavailable) = (&arch, &stop, &granted, &unavailable);
            let service = client(if t % 2 == 0 { &a } else { &b }, 0);
            s.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    n += 1;
                    let request = arch.request(1000 + t * 1000 + n);
                    // Each request is retried (same ID) until it is answered: a grant whose
                    // answer was lost is answered from its reservation.
                    let deadline = Instant::now() + Duration::from_secs(60);
                    loop {
                        match arch.authorize(&service, &request) {
                            Ok(()) => break,
                            Err(ErrorCode::ServiceUnavailable) => {
                                unavailable.fetch_add(1, Ordering::Relaxed);
                                assert!(Instant::now() < deadline, "the service never came back");
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            Err(other) => panic!("a request failed with {other:?}, not SERVICE_UNAVAILABLE"),
                        }
                    }
                    loop {
                        match service.confirm_restore(&request.request_id) {
                            Ok(s) => {
                                assert_eq!(s, Settlement::Confirmed);
                                break;
                            }
                            Err(e) => {
                                assert_eq!(e.code(), ErrorCode::ServiceUnavailable, "{e}");
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                    granted.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Load, then the database stops as if it crashed, and again cleanly, each time
        // coming back on the same port.
        std::thread::sleep(Duration::from_millis(1500));
        for mode in ["immediate", "fast"] {
            cluster.stop(mode);
            std::thread::sleep(Duration::from_millis(700));
            cluster.start_again();
            std::thread::sleep(Duration::from_millis(1500));
        }
        stop.store(true, Ordering::Release);
    });
    let granted = granted.load(Ordering::Relaxed);
    assert!(unavailable.load(Ordering::Relaxed) > 0, "the restarts were noticed");
    assert!(granted > 10, "{granted} grants");
    let audit = a.audit();
    assert_eq!((audit.pending, audit.confirmed, audit.released), (0, granted, 0), "{audit:?}");
    assert_eq!(audit.placements, 200 * (granted + 1), "{audit:?}");
    assert_eq!(sql(&cluster, "ledger", "SELECT count(*) FROM reservations"), granted.to_string());
}

#[test]
fn an_instance_killed_mid_transaction_leaves_no_partial_placements() {
    let cluster = PgCluster::start();
    let (url, env) = database(&cluster, "ledger");
    let a = pg_server(&env, 4, "");
    let mut b = a.another_instance();
    let dir = tempfile::tempdir().unwrap();
    let arch = make_archive(&a, dir.path(), 0x31, 30_000);
    let request = arch.request(7);
    let watcher = {
        let url = url.clone();
        std::thread::spawn(move || {
            // The moment the authorization's transaction has written (it has a transaction ID).
            let deadline = Instant::now() + Duration::from_secs(60);
            let query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'license-backup-service' \
                         AND backend_xid IS NOT NULL";
            let cluster_port = url.rsplit(':').next().unwrap().split('/').next().unwrap().to_string();
            loop {
                let out = std::process::Command::new(pg::bin_dir().join("psql"))
                    .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-U", "postgres", "-p", &cluster_port, "-d", "ledger"])
                    .args(["-c", query])
                    .output()
                    .unwrap();
                if String::from_utf8_lossy(&out.stdout).trim() != "0" {
                    return true;
                }
                if Instant::now() > deadline {
                    return false;
                }
            }
        })
    };
    let service = client(&b, 0);
    let pid = b.pid();
    let sent = std::thread::spawn({
        let (arch, request) = (arch.clone(), request.clone());
        move || arch.authorize(&service, &request)
    });
    assert!(watcher.join().unwrap(), "the authorization never wrote");
    // SAFETY: kill(2) on the server process this test started.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    assert!(sent.join().unwrap().is_err(), "the killed instance answered");
    b.kill();
    // PostgreSQL rolls the transaction back when the connection drops.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sql(
        &cluster,
        "ledger",
        "SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()",
    ) != "0"
    {
        assert!(Instant::now() < deadline, "the killed instance's transaction lingers");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(sql(&cluster, "ledger", "SELECT count(*) FROM reservations"), "0");
    assert_eq!(sql(&cluster, "ledger", "SELECT count(*) FROM placements"), "0");
    // The device retries the same request through the other instance: one grant, once.
    assert_eq!(arch.authorize(&client(&a, 0), &request), Ok(()));
    assert_eq!(arch.authorize(&client(&a, 0), &request), Ok(()), "the retry is answered from the ledger");
    let audit = a.audit();
    assert_eq!((audit.pending, audit.licenses, audit.placements), (1, 30_000, 60_000), "{audit:?}");
}

/// Holds a row lock on the account in its own session until dropped: every authorization of
/// the account waits for it (as behind a long transaction of another instance).
struct AccountLock {
    child: std::process::Child,
}

impl AccountLock {
    fn take(cluster: &PgCluster, db: &str, account: &str) -> AccountLock {
        use std::io::Write;
        let mut child = std::process::Command::new(pg::bin_dir().join("psql"))
            .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-p", &cluster.port.to_string(), "-d", db])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.as_mut().unwrap();
        writeln!(stdin, "BEGIN; SELECT id FROM accounts WHERE name = '{account}' FOR UPDATE;").unwrap();
        stdin.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while sql(cluster, db, "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'") == "0" {
            assert!(Instant::now() < deadline, "the lock was not taken");
            std::thread::sleep(Duration::from_millis(20));
        }
        AccountLock { child }
    }
}

impl Drop for AccountLock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_exhausted_pool_queues_up_to_its_bound_then_fails_clearly_and_a_held_lock_times_out() {
    let cluster = PgCluster::start();
    let (url, _) = database(&cluster, "ledger");
    let a = TestServer::start(&ServerOptions {
        max_devices: Some(4),
        plain: true,
        ledger: Some(format!(
            "[ledger]\nkind = \"postgres\"\nurl = \"{url}\"\nkeys = {{ protector = \"kek-file\", kek_file = \"keys/ledger.kek\" }}\n\
             [ledger.pool]\nmax_connections = 1\nacquire_timeout_ms = 400\nlock_timeout_ms = 3000\n\n"
        )),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let arch = make_archive(&a, dir.path(), 0x41, 50);
    let lock = AccountLock::take(&cluster, "ledger", "default");
    // The first authorization takes the instance's only connection and waits for the lock;
    // the second waits for a connection, 400 ms, then fails clearly.
    let first = std::thread::spawn({
        let (arch, service) = (arch.clone(), client(&a, 0));
        move || {
            let request = arch.request(1);
            (arch.authorize(&service, &request), request)
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let second = arch.request(2);
    let err = {
        let mut stream = arch.key_ids.iter().copied().map(Ok);
        client(&a, 0).authorize_restore(&second, &mut stream).unwrap_err().into_error()
    };
    assert_eq!(err.code(), ErrorCode::ServiceUnavailable, "{err}");
    assert!(err.message().contains("busy"), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(350), "it queued first: {:?}", started.elapsed());
    // Held past the lock timeout, the first fails cleanly too.
    let (result, first_request) = first.join().unwrap();
    assert_eq!(result, Err(ErrorCode::ServiceUnavailable));
    drop(lock);
    // Nothing was recorded; both devices retry and get their grants.
    assert_eq!(sql(&cluster, "ledger", "SELECT count(*) FROM reservations"), "0");
    assert_eq!(arch.authorize(&client(&a, 0), &first_request), Ok(()));
    assert_eq!(arch.authorize(&client(&a, 0), &second), Ok(()));
    let audit = a.audit();
    assert_eq!((audit.pending, audit.placements), (2, 50 * 3), "{audit:?}");
}

#[test]
fn a_database_down_at_start_makes_the_service_wait_not_ready_then_serve() {
    let mut cluster = PgCluster::start();
    let (_, env) = database(&cluster, "ledger");
    cluster.stop("fast");
    let a = pg_server(&env, 4, "");
    let ready = |server: &TestServer| ready_status(&server.url);
    assert_eq!(ready(&a), "503", "not ready while the database is down");
    let err = client(&a, 0).public_key().unwrap_err();
    assert_eq!(err.code(), ErrorCode::ServiceUnavailable, "{err}");
    cluster.start_again();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ready(&a) != "200" {
        assert!(Instant::now() < deadline, "never ready: {}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Serving now: a backup and a restore go through, the schema was migrated in the meantime.
    let dir = tempfile::tempdir().unwrap();
    let arch = make_archive(&a, dir.path(), 0x51, 10);
    assert_eq!(arch.authorize(&client(&a, 0), &arch.request(3)), Ok(()));
    assert_eq!(sql(&cluster, "ledger", "SELECT max(version) FROM lb_schema_migrations"), "1");
}

/// The status of `GET /v1/ready` (plain HTTP).
fn ready_status(url: &str) -> String {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n", protocol::READY_PATH).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.split_whitespace().nth(1).unwrap_or_default().to_string()
}

#[test]
fn migrate_only_prepares_the_schema_and_keys_and_instances_share_them() {
    let cluster = PgCluster::start();
    let (_, env) = database(&cluster, "ledger");
    let a = pg_server(&env, 4, "");
    let v = a.admin(&["serve", "--migrate-only"]);
    assert_eq!(v["schema_version"], 1, "{v}");
    assert_eq!(v["migrated"].as_array().unwrap().len(), 0, "the first start migrated already: {v}");
    let b = a.another_instance();
    let (ka, kb) = (client(&a, 0).public_key().unwrap(), client(&b, 0).public_key().unwrap());
    assert_eq!(ka, kb, "every instance serves the ledger's key");
    // The key is kept wrapped by the configured protector (init's key-encryption key), never in
    // clear; its public half and fingerprint are recorded for operators.
    assert_eq!(sql(&cluster, "ledger", "SELECT protector <> 'unprotected' FROM service_keys"), "t");
    let fp = sql(&cluster, "ledger", "SELECT encode(fingerprint, 'hex') FROM service_keys WHERE state = 'current'");
    assert_eq!(fp, protocol::PublishedKey::new(&ka, true).fingerprint);
    // Rotation: a new current key; the old one stays for its archives.
    let rotated = a.admin(&["rotate-key"]);
    assert_eq!(rotated["keys"].as_array().unwrap().len(), 2, "{rotated}");
    assert_eq!(sql(&cluster, "ledger", "SELECT count(*) FROM service_keys WHERE state = 'retired'"), "1");
}

#[test]
fn large_authorizations_and_quota_queries_use_statements_per_chunk_not_per_license() {
    let cluster = PgCluster::start_with(&pg::PgOptions {
        settings: vec!["shared_preload_libraries=pg_stat_statements".into()],
        ..Default::default()
    });
    let (_, env) = database(&cluster, "ledger");
    sql(&cluster, "ledger", "CREATE EXTENSION pg_stat_statements");
    let a = pg_server(&env, 4, "");
    let dir = tempfile::tempdir().unwrap();
    let n = 6_000u64;
    let arch = make_archive(&a, dir.path(), 0x61, n as u32);
    let placement_calls = || -> u64 {
        sql(
            &cluster,
            "ledger",
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query ILIKE '%placements%' \
             AND query NOT ILIKE '%pg_stat_statements%'",
        )
        .parse()
        .unwrap()
    };
    let service = client(&a, 0);
    // Fresh licenses, then the same licenses onto a second device (every row known and
    // rewritten), then a quota query onto a third: each in bulk.
    for d in [1u32, 2] {
        let before = placement_calls();
        assert_eq!(arch.authorize(&service, &arch.request(d)), Ok(()));
        let used = placement_calls() - before;
        assert!(used <= n / 25, "device {d}: {used} placement statements for {n} licenses");
    }
    let before = placement_calls();
    let mut stream = arch.key_ids.iter().copied().map(Ok);
    let q = service.quota(&arch.request(3), &mut stream).unwrap();
    assert_eq!((q.allowed, q.restores_remaining), (true, 1));
    let used = placement_calls() - before;
    assert!(used <= n / 25, "quota: {used} placement statements for {n} licenses");
    let audit = a.audit();
    assert_eq!((audit.pending, audit.placements), (2, n * 3), "{audit:?}");
}

#[test]
fn serialization_failures_deadlocks_and_lost_connections_are_service_unavailable() {
    use license_backup_service::pg_ledger::db_error;
    let cluster = PgCluster::start();
    let (url, _) = database(&cluster, "ledger");
    sql(&cluster, "ledger", "CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0), (2, 0)");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let connect = || async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            client
        };
        let (a, b) = (connect().await, connect().await);
        // A serialization failure (40001): two serializable transactions writing what the other read.
        for c in [&a, &b] {
            c.batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT sum(v) FROM t").await.unwrap();
        }
        a.batch_execute("UPDATE t SET v = v + 1 WHERE k = 1").await.unwrap();
        b.batch_execute("UPDATE t SET v = v + 1 WHERE k = 2").await.unwrap();
        a.batch_execute("COMMIT").await.unwrap();
        let e = db_error(b.batch_execute("COMMIT").await.unwrap_err());
        assert_eq!(e.code(), ErrorCode::ServiceUnavailable, "{e}");
        assert!(e.message().contains("40001"), "{e}");
        // A deadlock (40P01): each holds a row the other wants.
        a.batch_execute("BEGIN; UPDATE t SET v = 0 WHERE k = 1").await.unwrap();
        b.batch_execute("BEGIN; UPDATE t SET v = 0 WHERE k = 2").await.unwrap();
        let (ra, rb) = tokio::join!(
            a.batch_execute("UPDATE t SET v = 1 WHERE k = 2"),
            b.batch_execute("UPDATE t SET v = 1 WHERE k = 1")
        );
        let failed = ra.err().or(rb.err()).expect("PostgreSQL breaks the deadlock");
        let e = db_error(failed);
        assert_eq!(e.code(), ErrorCode::ServiceUnavailable, "{e}");
        assert!(e.message().contains("40P01"), "{e}");
        let _ = a.batch_execute("ROLLBACK").await;
        let _ = b.batch_execute("ROLLBACK").await;
        // Another error is STORAGE, with its SQLSTATE.
        let e = db_error(a.batch_execute("SELECT * FROM no_such_table").await.unwrap_err());
        assert_eq!(e.code(), ErrorCode::Storage, "{e}");
        assert!(e.message().contains("42P01"), "{e}");
        // A lost connection: the session ended by the server.
        a.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())").await.ok();
        let e = db_error(a.batch_execute("SELECT 1").await.unwrap_err());
        assert_eq!(e.code(), ErrorCode::ServiceUnavailable, "{e}");
    });
}

/// A registration of `key` signed for the service key `service` (what a device sends).
fn registration(service: &[u8; 32], key: &writer::DeviceKey) -> DeviceRegistration {
    let aad = [writer::fingerprint(service).as_slice(), &key.id(), &key.public].concat();
    let proof = writer::hpke_seal(service, Some(key), b"license-backup/v2/register-device", &aad, &[]);
    DeviceRegistration {
        device_id: key.id(),
        public_key: key.public,
        proof: WrappedKey { enc: proof[..32].to_vec(), ciphertext: proof[32..].to_vec() },
    }
}

/// The account a device is recorded in ("" when none).
fn device_account(cluster: &PgCluster, id: &[u8; 16]) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    sql(
        cluster,
        "ledger",
        &format!("SELECT a.name FROM devices d JOIN accounts a ON a.id = d.account WHERE d.device_id = '\\x{hex}'"),
    )
}

#[test]
fn registrations_racing_across_accounts_give_each_device_to_exactly_one_account() {
    let cluster = PgCluster::start();
    let (url, env) = database(&cluster, "ledger");
    let a = TestServer::start(&ServerOptions {
        max_devices: Some(4),
        plain: true,
        env: env.clone(),
        extra_tokens: vec![("alpha-token".into(), "alpha".into()), ("beta-token".into(), "beta".into())],
        ..Default::default()
    });
    let b = a.another_instance();
    let as_account = |server: &TestServer, token: &str| {
        RemoteService::new(
            &server.url,
            RemoteOptions { token: Some(token.into()), retries: Some(0), ..server.options() },
        )
        .unwrap()
    };
    let service_key = as_account(&a, "alpha-token").public_key().unwrap();

    // The interleaving made exact: another transaction has inserted the device for alpha and not
    // committed when beta's registration reads (nothing) and inserts (waits on the device's key);
    // once alpha's commits, beta's finds the device taken: FOREIGN_DEVICE, not a silent success.
    let key = writer::DeviceKey::generate();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let holder = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
            .batch_execute("BEGIN; INSERT INTO accounts (name) VALUES ('alpha') ON CONFLICT DO NOTHING")
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO devices (device_id, account, counts_as, public_key, since) \
                 SELECT $1, id, $1, $2, 0 FROM accounts WHERE name = 'alpha'",
                &[&key.id().as_slice(), &key.public.as_slice()],
            )
            .await
            .unwrap();
        client
    });
    let beta = as_account(&b, "beta-token");
    let reg = registration(&service_key, &key);
    let racing = std::thread::spawn(move || beta.register_device(&reg).map_err(|e| e.code()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while sql(&cluster, "ledger", "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'") != "1" {
        assert!(Instant::now() < deadline, "beta's registration never waited on the device's key");
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.block_on(holder.batch_execute("COMMIT")).unwrap();
    assert_eq!(racing.join().unwrap(), Err(ErrorCode::ForeignDevice));
    assert_eq!(device_account(&cluster, &key.id()), "alpha");
    // alpha's own registration of it is idempotent.
    as_account(&a, "alpha-token").register_device(&registration(&service_key, &key)).unwrap();

    // Free-running: each device registered at once by alpha (instance a), beta (instance b) and
    // by a brand-new account twice (both instances); exactly one account gets each device, every
    // other account is told FOREIGN_DEVICE, a second registration into the winner's account
    // succeeds, and the database agrees.
    let keys: Vec<Arc<writer::DeviceKey>> = (0..12).map(|_| Arc::new(writer::DeviceKey::generate())).collect();
    let accounts = [("alpha", "alpha-token", &a), ("beta", "beta-token", &b)];
    for (round, key) in keys.iter().enumerate() {
        let barrier = Arc::new(std::sync::Barrier::new(3));
        let mut threads = Vec::new();
        for (name, token, server) in accounts {
            let (service, barrier) = (as_account(server, token), Arc::clone(&barrier));
            let reg = registration(&service_key, key);
            threads.push(std::thread::spawn(move || {
                barrier.wait();
                (name, service.register_device(&reg).map_err(|e| e.code()))
            }));
        }
        let (service, barrier) = (as_account(&a, "alpha-token"), Arc::clone(&barrier));
        let reg = registration(&service_key, key);
        threads.push(std::thread::spawn(move || {
            barrier.wait();
            ("alpha", service.register_device(&reg).map_err(|e| e.code()))
        }));
        let results: Vec<(&str, std::result::Result<(), ErrorCode>)> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        let owner = device_account(&cluster, &key.id());
        assert!(owner == "alpha" || owner == "beta", "round {round}: recorded in {owner:?}");
        for (name, result) in &results {
            let expected = if *name == owner { Ok(()) } else { Err(ErrorCode::ForeignDevice) };
            assert_eq!(*result, expected, "round {round}: {name} (the device went to {owner}): {results:?}");
        }
    }
    assert_eq!(sql(&cluster, "ledger", "SELECT count(*) FROM devices"), (keys.len() + 1).to_string());
    assert_eq!(sql(&cluster, "ledger", "SELECT count(*) FROM accounts WHERE name IN ('alpha', 'beta')"), "2");
    // Many first registrations of one brand-new account at once: one account row, every device in it.
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let server = if i % 2 == 0 { &a } else { &b };
            let (service, barrier) = (as_account(server, "beta-token"), Arc::clone(&barrier));
            let reg = registration(&service_key, &writer::DeviceKey::generate());
            std::thread::spawn(move || {
                barrier.wait();
                service.register_device(&reg).map_err(|e| e.code())
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), Ok(()));
    }
    assert_eq!(sql(&cluster, "ledger", "SELECT count(*) FROM accounts WHERE name = 'beta'"), "1");
}

/// Opens a ledger at `url` (migrates, opens its keys): what a starting instance does.
fn open_ledger(rt: &tokio::runtime::Runtime, url: &str) -> Result<license_backup_service::pg_ledger::PgLedger> {
    use license_backup_service::pg_ledger::{PgLedger, PgSettings};
    let ledger = PgLedger::new(url, PgSettings::default(), Protector::unprotected(), rt.handle().clone())?;
    ledger.prepare()?;
    Ok(ledger)
}

/// Sessions of the service in `database`, and how many of them are encrypted.
fn service_sessions(cluster: &PgCluster, database: &str) -> (u32, u32) {
    let out = sql(
        cluster,
        "postgres",
        &format!(
            "SELECT count(*) || ' ' || count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a JOIN pg_stat_ssl s \
             USING (pid) WHERE a.application_name = 'license-backup-service' AND a.datname = '{database}'"
        ),
    );
    let (all, tls) = out.split_once(' ').unwrap();
    (all.parse().unwrap(), tls.parse().unwrap())
}

#[test]
fn the_ledger_connection_follows_libpq_sslmode_and_refuses_an_untrusted_database() {
    use license_backup_service::tls::self_hosted;
    // A server certificate for 127.0.0.1 (not for "localhost"), signed by the test's own CA.
    let made = self_hosted(&["127.0.0.1".to_string()]).unwrap();
    let tls = PgCluster::start_with(&pg::PgOptions {
        tls: Some((made.cert_pem.clone(), made.key_pem.clone())),
        ..Default::default()
    });
    let plain = PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let pem = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let ca = pem("ca.pem", &made.ca_pem);
    let other_ca = pem("other-ca.pem", &self_hosted(&["127.0.0.1".to_string()]).unwrap().ca_pem);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = |cluster: &PgCluster, host: &str, db: &str, query: &str| {
        format!("postgres://postgres@{host}:{}/{db}?{query}", cluster.port)
    };

    // verify-full: the chain and the host name verify; the session is encrypted.
    tls.create_database("full");
    let full = open_ledger(&rt, &url(&tls, "127.0.0.1", "full", &format!("sslmode=verify-full&sslrootcert={ca}")))
        .expect("verify-full against the right CA and host");
    let (sessions, encrypted) = service_sessions(&tls, "full");
    assert!(sessions >= 1 && sessions == encrypted, "{sessions} sessions, {encrypted} encrypted");
    drop(full);

    // Refused, with STORAGE (waiting cures neither) and a message that says why; nothing is
    // created in the database.
    tls.create_database("refused");
    for (query, host, why) in [
        (format!("sslmode=verify-full&sslrootcert={other_ca}"), "127.0.0.1", "not signed by a CA"),
        (format!("sslmode=verify-ca&sslrootcert={other_ca}"), "127.0.0.1", "not signed by a CA"),
        // libpq: require with a root certificate verifies the chain.
        (format!("sslmode=require&sslrootcert={other_ca}"), "127.0.0.1", "not signed by a CA"),
        (format!("sslmode=verify-full&sslrootcert={ca}"), "localhost", "does not name the host"),
    ] {
        let e = open_ledger(&rt, &url(&tls, host, "refused", &query)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Storage, "{query} @ {host}: {e}");
        assert!(e.message().contains(why), "{query} @ {host}: {e}");
    }
    assert_eq!(sql(&tls, "refused", "SELECT to_regclass('lb_schema_migrations') IS NULL"), "t");

    // verify-ca does not check the name; require and prefer without a root certificate encrypt
    // without verifying (libpq's semantics); disable does not encrypt.
    for (db, query, host, encrypted) in [
        ("ca", format!("sslmode=verify-ca&sslrootcert={ca}"), "localhost", true),
        ("required", "sslmode=require".to_string(), "localhost", true),
        ("preferred", String::new(), "127.0.0.1", true),
        ("disabled", "sslmode=disable".to_string(), "127.0.0.1", false),
    ] {
        tls.create_database(db);
        let ledger = open_ledger(&rt, &url(&tls, host, db, &query)).unwrap_or_else(|e| panic!("{query}: {e}"));
        let (sessions, tls_sessions) = service_sessions(&tls, db);
        assert!(sessions >= 1, "{query}");
        assert_eq!(tls_sessions, if encrypted { sessions } else { 0 }, "{query}");
        drop(ledger);
    }

    // A server without TLS: require is refused, prefer goes on without.
    plain.create_database("plain");
    let e = open_ledger(&rt, &url(&plain, "127.0.0.1", "plain", "sslmode=require")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Storage, "{e}");
    assert!(e.message().contains("does not offer TLS"), "{e}");
    open_ledger(&rt, &url(&plain, "127.0.0.1", "plain", "sslmode=prefer")).expect("prefer without TLS");
    // A mode or parameter libpq has and this service does not is refused, not ignored.
    for query in ["sslmode=allow", "sslmode=verify-full", "sslmode=require&sslcert=c.pem"] {
        let e = open_ledger(&rt, &url(&plain, "127.0.0.1", "plain", query)).expect_err(query);
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{query}: {e}");
    }

    // The service itself over verify-full: a backup and a restore authorized through it.
    tls.create_database("served");
    let env = vec![(
        "LB_SERVICE_LEDGER".to_string(),
        url(&tls, "127.0.0.1", "served", &format!("sslmode=verify-full&sslrootcert={ca}")),
    )];
    let server = pg_server(&env, 4, "");
    let arch = make_archive(&server, dir.path(), 0x71, 100);
    assert_eq!(arch.authorize(&client(&server, 0), &arch.request(1)), Ok(()));
    let (sessions, encrypted) = service_sessions(&tls, "served");
    assert!(sessions >= 1 && sessions == encrypted, "{sessions} sessions, {encrypted} encrypted");
    // And one started against an untrusted database stops with the reason.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_license-backup-service"))
        .args(["serve", "--migrate-only", "--config"])
        .arg(&server.made.config)
        .env(
            "LB_SERVICE_LEDGER",
            url(&tls, "127.0.0.1", "served", &format!("sslmode=verify-full&sslrootcert={other_ca}")),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not trusted"), "{stderr}");
}
