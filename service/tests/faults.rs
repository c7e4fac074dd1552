//! Faults between a device and a real `license-backup-service`: the server killed during an
//! authorization, the connection dropped after the server committed, a server slower than the
//! timeout, and a server that answers with hostile bytes. Each leaves the device's store
//! unchanged and the ledger consistent.

#[path = "../../core/tests/common/server.rs"]
mod server;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use license_backup::*;
use server::{ServerOptions, TestServer};

/// What the proxy does to a connection.
#[derive(Clone, Copy)]
enum Twist {
    /// Forwards the client's bytes at most `bytes_per_ms` a millisecond.
    Slow { bytes_per_ms: usize },
    /// Lets the first `skip` answers `200` through, then drops the next `times` connections
    /// whose server starts answering `200` (plain HTTP): the server has read the request and
    /// committed, the client never reads the answer.
    DropAnswer { skip: usize, times: usize },
}

/// A TCP proxy on 127.0.0.1 in front of a server: a network that misbehaves.
struct Proxy {
    port: u16,
    /// Bytes the clients sent through it, in all.
    sent: Arc<AtomicU64>,
    /// Answers it judged (DropAnswer), and those it dropped.
    judged: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(target: &str, twist: Twist) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sent, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (judged, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let target = target.to_string();
        let (s, j, d, st) = (Arc::clone(&sent), Arc::clone(&judged), Arc::clone(&dropped), Arc::clone(&stop));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.load(Ordering::Acquire) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(&target) else { continue };
                let (s, j, d) = (Arc::clone(&s), Arc::clone(&j), Arc::clone(&d));
                std::thread::spawn(move || pipe(client, upstream, twist, s, j, d));
            }
        });
        Proxy { port, sent, judged, dropped, stop }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pipe(
    client: TcpStream,
    upstream: TcpStream,
    twist: Twist,
    sent: Arc<AtomicU64>,
    judged_count: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
) {
    let (mut c_read, mut u_write) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let up = std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Twist::Slow { bytes_per_ms } = twist {
                for piece in buf[..n].chunks(bytes_per_ms.max(1)) {
                    if u_write.write_all(piece).is_err() {
                        return;
                    }
                    sent.fetch_add(piece.len() as u64, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
            } else {
                if u_write.write_all(&buf[..n]).is_err() {
                    break;
                }
                sent.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        let _ = u_write.shutdown(Shutdown::Write);
    });
    let (mut u_read, mut c_write) = (upstream, client);
    let mut buf = [0u8; 16384];
    let mut judged = false;
    loop {
        let n = match u_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Twist::DropAnswer { skip, times } = twist {
            if !judged && buf[..n].starts_with(b"HTTP/1.1 200") {
                judged = true;
                if (skip..skip + times).contains(&judged_count.fetch_add(1, Ordering::AcqRel)) {
                    dropped.fetch_add(1, Ordering::AcqRel);
                    // The answer is lost: both sides see the connection end.
                    let _ = c_write.shutdown(Shutdown::Both);
                    let _ = u_read.shutdown(Shutdown::Both);
                    break;
                }
            }
        }
        if c_write.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = c_write.shutdown(Shutdown::Both);
    let _ = up.join();
}

fn device(dir: &std::path::Path, name: &str, service: Arc<dyn LicenseService>) -> (Arc<LicenseStore>, BackupRestorer) {
    let store = Arc::new(LicenseStore::open(dir.join(format!("{name}.db"))).unwrap());
    let restorer = create_backup_restorer(Arc::clone(&store), service);
    let folder = dir.join("backup");
    std::fs::create_dir_all(&folder).unwrap();
    for p in ["BackupPath", "RestorePath"] {
        restorer.set_property(p, PropertyValue::String(folder.display().to_string())).unwrap();
    }
    (store, restorer)
}

fn fill(store: &LicenseStore, n: u32) {
    let licenses: Vec<NewLicense> = (0..n)
        .map(|i| NewLicense {
            key_id: KeyId::from_bytes({
                let mut b = [0x5a; 16];
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

fn run(start: impl FnOnce(Arc<dyn StatusCallback>) -> Result<OperationHandle>) -> (Vec<String>, Result<Summary>) {
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let e = Arc::clone(&events);
    let cb: Arc<dyn StatusCallback> = Arc::new(move |ev: &StatusEvent| {
        e.lock().unwrap().push(ev.kind().name().to_string());
        Ok(())
    });
    let result = start(cb).unwrap().wait();
    let names = events.lock().unwrap().clone();
    (names, result)
}

fn backup(r: &BackupRestorer) {
    run(|cb| r.backup_licenses(BackupFlags { overwrite: true }, cb)).1.unwrap();
}

fn restore(r: &BackupRestorer) -> (Vec<String>, Result<Summary>) {
    run(|cb| r.restore_licenses(RestoreFlags::default(), cb))
}

/// Reservations the ledger holds for the default account, in any state (its audit).
fn authorizations(server: &TestServer) -> i64 {
    server.reservations() as i64
}

fn client(url: &str, server: &TestServer, timeout: Duration, retries: u32) -> Arc<dyn LicenseService> {
    let options = RemoteOptions { timeout: Some(timeout), retries: Some(retries), ..server.options() };
    Arc::new(RemoteService::new(url, options).unwrap())
}

#[test]
fn the_server_killed_during_an_authorization_changes_nothing() {
    let mut server = TestServer::start(&ServerOptions { max_devices: Some(2), ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    let (a, ra) = device(dir.path(), "a", Arc::new(server.client()));
    fill(&a, 20_000);
    backup(&ra);
    // The restore's request crawls through the proxy (320 KB of key IDs at 16 KB/s): the
    // server is receiving it (spooling its key IDs) when it dies.
    let proxy = Proxy::start(&server.listen, Twist::Slow { bytes_per_ms: 16 });
    let (b, rb) = device(dir.path(), "b", client(&proxy.url("https"), &server, Duration::from_secs(5), 1));
    let running = std::thread::spawn(move || restore(&rb));
    let started = Instant::now();
    while proxy.sent.load(Ordering::Relaxed) < 100_000 {
        assert!(started.elapsed() < Duration::from_secs(60), "the request never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill();
    let (events, result) = running.join().unwrap();
    assert_eq!(result.unwrap_err().code(), ErrorCode::ServiceUnavailable);
    assert_eq!(events, ["connecting", "disconnecting", "end"]);
    assert_eq!(b.license_count().unwrap(), 0, "nothing applied");
    // The ledger is whole and recorded nothing; a new restore counts once.
    server.restart();
    assert_eq!(authorizations(&server), 0);
    let (_, rb) = device(dir.path(), "b", Arc::new(server.client()));
    let q = rb.restore_quota().unwrap();
    assert_eq!((q.restores_remaining, q.device_already_counted), (1, false));
    assert_eq!(restore(&rb).1.unwrap().licenses, 20_000);
    assert_eq!(authorizations(&server), 1);
}

#[test]
fn a_dropped_answer_is_retried_and_never_counts_twice() {
    // Plain HTTP on loopback, so that the proxy sees where the answer begins.
    let server = TestServer::start(&ServerOptions { max_devices: Some(2), plain: true, ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    let (a, ra) = device(dir.path(), "a", Arc::new(server.client()));
    fill(&a, 1000);
    backup(&ra);
    // The first answer to the authorization is lost after the server committed it (the answer
    // before it is the service's keys).
    let proxy = Proxy::start(&server.listen, Twist::DropAnswer { skip: 1, times: 1 });
    let (b, rb) = device(dir.path(), "b", client(&proxy.url("http"), &server, Duration::from_secs(10), 2));
    let (events, result) = restore(&rb);
    assert_eq!(result.unwrap().licenses, 1000);
    assert_eq!(events[..3], ["connecting", "disconnecting", "begin"]);
    assert_eq!(proxy.dropped.load(Ordering::Relaxed), 1, "the first answer was lost");
    // The keys, the lost answer, the retry's answer, the confirmation.
    assert_eq!(proxy.judged.load(Ordering::Relaxed), 4, "then the retry's answer passed");
    assert_eq!(b.license_count().unwrap(), 1000);
    // Two requests with one request ID reached the server; the ledger authorized the first and
    // answered the retry from what it recorded.
    let log = server.log();
    assert_eq!(log.matches("reservation made").count(), 1, "{log}");
    assert_eq!(log.matches("answered a retried request from its reservation").count(), 1, "{log}");
    assert_eq!(authorizations(&server), 1);
    let audit = server.audit();
    assert_eq!((audit.confirmed, audit.pending, audit.placements), (1, 0, 2000), "confirmed once: a and b");
    // And the quota agrees: b counts once, a third device is refused.
    let (_, rc) = device(dir.path(), "c", Arc::new(server.client()));
    assert_eq!(rc.restore_quota().unwrap().restores_remaining, 0);
}

#[test]
fn a_server_slower_than_the_timeout_is_unavailable_and_changes_nothing() {
    let server = TestServer::start(&ServerOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let (a, ra) = device(dir.path(), "a", Arc::new(server.client()));
    fill(&a, 50);
    backup(&ra);
    let (b, rb) = device(dir.path(), "b", client(&server.url, &server, Duration::from_millis(500), 1));
    server.freeze(true);
    let started = Instant::now();
    let (events, result) = restore(&rb);
    let took = started.elapsed();
    assert_eq!(rb.restore_quota().unwrap_err().code(), ErrorCode::ServiceUnavailable);
    server.freeze(false);
    assert_eq!(result.unwrap_err().code(), ErrorCode::ServiceUnavailable);
    assert_eq!(events, ["connecting", "disconnecting", "end"]);
    // Two attempts of 0.5 s and a back-off of 0.2 s; nowhere near a hang.
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(b.license_count().unwrap(), 0);
    // Thawed, the same client restores.
    let (_, result) = restore(&rb);
    assert_eq!(result.unwrap().licenses, 50);
    assert_eq!(authorizations(&server), 1);
}

/// A listener on 127.0.0.1 that answers every connection with `answer` (after reading the
/// request head), and counts the connections: a hostile server.
fn hostile(answer: impl Fn(&mut TcpStream) + Send + Sync + 'static) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            c.fetch_add(1, Ordering::Relaxed);
            let answer = Arc::clone(&answer);
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
                let mut buf = [0u8; 65536];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                answer(&mut s);
                let _ = s.flush();
                // Read what else comes so that closing does not reset the answer away.
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    (url, count)
}

fn keys_of(url: &str) -> Result<[u8; 32]> {
    let options = RemoteOptions {
        token: Some("t".into()),
        timeout: Some(Duration::from_millis(700)),
        retries: Some(1),
        ..Default::default()
    };
    RemoteService::new(url, options).unwrap().public_key()
}

fn respond(bytes: Vec<u8>) -> impl Fn(&mut TcpStream) + Send + Sync + 'static {
    move |s| {
        let _ = s.write_all(&bytes);
    }
}

#[test]
fn hostile_answers_are_refused_at_the_limits() {
    let answer = |status: &str, body: &str| {
        format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            .into_bytes()
    };
    let json = |body: &str| answer("200 OK", body);
    let fp_of = |pk: &[u8; 32]| {
        use sha2::Digest;
        license_backup::protocol::hex(&sha2::Sha256::digest(pk)[..16])
    };
    let pk = [9u8; 32];
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        ("not JSON", json("{\"keys\": [}"), ErrorCode::ProtocolViolation),
        ("JSON of another shape", json("{\"hello\": 1}"), ErrorCode::ProtocolViolation),
        (
            "a key whose fingerprint is not its own",
            json(&format!(
                "{{\"keys\":[{{\"fingerprint\":\"{}\",\"public_key\":\"{}\",\"algorithm\":\"X25519\",\"current\":true}}]}}",
                "00".repeat(16),
                license_backup::protocol::hex(&pk)
            )),
            ErrorCode::ProtocolViolation,
        ),
        (
            "no current key",
            json(&format!(
                "{{\"keys\":[{{\"fingerprint\":\"{}\",\"public_key\":\"{}\",\"algorithm\":\"X25519\",\"current\":false}}]}}",
                fp_of(&pk),
                license_backup::protocol::hex(&pk)
            )),
            ErrorCode::ProtocolViolation,
        ),
        ("200 without JSON", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(), ErrorCode::ProtocolViolation),
        ("garbage", b"\x16\x03\x01 not http at all\r\n\r\n".to_vec(), ErrorCode::ProtocolViolation),
        (
            "a body announced at 1 GiB",
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{".to_vec(),
            ErrorCode::ProtocolViolation,
        ),
        ("a 418", b"HTTP/1.1 418 Teapot\r\nContent-Length: 0\r\n\r\n".to_vec(), ErrorCode::ProtocolViolation),
        (
            "a 401 claiming to be a refusal",
            answer(
                "401 No",
                r#"{"error":{"code":402,"name":"RESTORE_LIMIT_EXCEEDED","message":"x","url":"https://evil.example"}}"#,
            ),
            ErrorCode::AuthenticationFailed,
        ),
        (
            "cut inside the body",
            b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"keys\"".to_vec(),
            ErrorCode::ServiceUnavailable,
        ),
        ("nothing at all", Vec::new(), ErrorCode::ServiceUnavailable),
        (
            "a 503, every time",
            b"HTTP/1.1 503 Busy\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n".to_vec(),
            ErrorCode::ServiceUnavailable,
        ),
        (
            "a 429, every time",
            b"HTTP/1.1 429 Slow\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n".to_vec(),
            ErrorCode::RateLimited,
        ),
    ];
    for (what, bytes, want) in cases {
        let (url, connections) = hostile(respond(bytes));
        assert_eq!(keys_of(&url).unwrap_err().code(), want, "{what}");
        let tries = connections.load(Ordering::Relaxed);
        let transient = matches!(want, ErrorCode::ServiceUnavailable | ErrorCode::RateLimited);
        assert_eq!(tries, if transient { 2 } else { 1 }, "{what}: retried only what may pass next time");
    }
    // An endless body and an endless head: cut at the limits (64 KiB, 16 KiB), not read on.
    let (url, _) = hostile(|s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n");
        let chunk = vec![b' '; 65536];
        for _ in 0..1024 {
            if s.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    assert_eq!(keys_of(&url).unwrap_err().code(), ErrorCode::ProtocolViolation);
    let (url, _) = hostile(|s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        for _ in 0..100_000 {
            if s.write_all(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n").is_err() {
                return;
            }
        }
    });
    assert_eq!(keys_of(&url).unwrap_err().code(), ErrorCode::ProtocolViolation);
    // A server that dribbles its answer a byte at a time is cut off by the timeout.
    let (url, _) = hostile(|s| {
        for b in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{}        ".iter() {
            if s.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let started = Instant::now();
    assert_eq!(keys_of(&url).unwrap_err().code(), ErrorCode::ServiceUnavailable);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}
