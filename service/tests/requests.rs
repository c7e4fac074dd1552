//! Malformed and hostile requests to a real `license-backup-service` (plain HTTP on
//! 127.0.0.1, the same HTTP layer as with TLS): each gets a clear 4xx with its stable code,
//! the server's memory stays bounded, and the ledger does not change.

#[path = "../../core/tests/common/server.rs"]
mod server;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use license_backup::protocol::{self, Preamble, RESTORE_REQUEST_TYPE};
use license_backup::*;
use server::{ServerOptions, TestServer};
use sha2::{Digest, Sha256};

/// A plain server with a short idle timeout and a small key-ID limit, an archive made for it,
/// and a device's genuine restore request for that archive.
struct World {
    server: TestServer,
    _dir: tempfile::TempDir,
    preamble: Preamble,
    key_ids: Vec<[u8; 16]>,
}

fn world() -> World {
    let server = TestServer::start(&ServerOptions {
        plain: true,
        extra_config: "[limits]\nmax_licenses = 2000000\nbody_idle_timeout_secs = 1.0\nheader_timeout_secs = 2.0\n"
            .into(),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let service: Arc<dyn LicenseService> = Arc::new(server.client());
    let store = Arc::new(LicenseStore::open(dir.path().join("a.db")).unwrap());
    let licenses: Vec<NewLicense> = (0..100u32)
        .map(|i| NewLicense {
            key_id: KeyId::from_bytes([i as u8; 16]),
            content_key: vec![7; 16],
            rights: Rights::default(),
            issuer: "https://issuer.example".into(),
            issued_at: 0,
        })
        .collect();
    store.add_licenses(&licenses, ConflictPolicy::Keep).unwrap();
    let restorer = create_backup_restorer(Arc::clone(&store), service);
    restorer.set_property("BackupPath", PropertyValue::String(dir.path().display().to_string())).unwrap();
    restorer.backup_licenses(BackupFlags::default(), Arc::new(|_: &StatusEvent| Ok(()))).unwrap().wait().unwrap();
    let header = archive::read_header_at(&dir.path().join(archive::ARCHIVE_FILE_NAME)).unwrap();
    let device_key = [3u8; 32];
    let preamble = Preamble {
        header: protocol::hex(&header.authenticated),
        enc: protocol::hex(&header.wrapped_key.enc),
        wrapped_key: protocol::hex(&header.wrapped_key.ciphertext),
        device_id: protocol::hex(&protocol::device_id_of(&device_key)),
        device_public_key: protocol::hex(&device_key),
        licenses: 100,
        request_id: RID.into(),
        replaces: None,
    };
    World { server, _dir: dir, preamble, key_ids: (0..100u32).map(|i| [i as u8; 16]).collect() }
}

fn body(preamble: &Preamble, key_ids: &[[u8; 16]], trailer_of: &[[u8; 16]]) -> Vec<u8> {
    let json = serde_json::to_vec(preamble).unwrap();
    let mut b = Vec::new();
    b.extend_from_slice(protocol::REQUEST_MAGIC);
    b.extend_from_slice(&protocol::REQUEST_VERSION.to_le_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&(json.len() as u32).to_le_bytes());
    b.extend_from_slice(&json);
    for k in key_ids {
        b.extend_from_slice(k);
    }
    let mut d = Sha256::new();
    trailer_of.iter().for_each(|k| d.update(k));
    b.extend_from_slice(&d.finalize());
    b
}

/// Sends raw bytes, reads the whole answer: (status, the error's name or "").
fn send(w: &World, head: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(&w.server.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    read_answer(&mut s)
}

fn read_answer(s: &mut TcpStream) -> (u16, String) {
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text.get(9..12).and_then(|t| t.parse().ok()).unwrap_or(0);
    let name = text
        .find("\r\n\r\n")
        .and_then(|i| serde_json::from_str::<serde_json::Value>(&text[i + 4..]).ok())
        .and_then(|v| v["error"]["name"].as_str().map(String::from))
        .unwrap_or_default();
    (status, name)
}

fn head(w: &World, method: &str, path: &str, content_type: &str, length: Option<usize>) -> String {
    let mut h = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: {content_type}\r\n",
        w.server.made.token
    );
    match length {
        Some(n) => h.push_str(&format!("Content-Length: {n}\r\n")),
        None => h.push_str("Transfer-Encoding: chunked\r\n"),
    }
    h.push_str("\r\n");
    h
}

const RID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

/// Reservations the ledger holds for the default account, in any state (its audit).
fn restores(w: &World) -> i64 {
    w.server.reservations() as i64
}

/// The server's peak resident memory (kB), from /proc.
fn peak_rss_kb(server: &TestServer) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn malformed_requests_get_a_clear_4xx_and_change_nothing() {
    let w = world();
    let path = format!("/v1/restores/{RID}");
    let good = body(&w.preamble, &w.key_ids, &w.key_ids);
    let put = |ct: &str, b: &[u8]| send(&w, &head(&w, "PUT", &path, ct, Some(b.len())), b);
    /// What was sent, what came back (status, error name), what must.
    type Case<'a> = (&'a str, (u16, String), (u16, &'a str));
    let mut cases: Vec<Case> = vec![
        ("wrong content type", put("application/json", &good), (415, "PROTOCOL_VIOLATION")),
        ("no content type", put("", &good), (415, "PROTOCOL_VIOLATION")),
    ];
    // Fewer key IDs than announced (the trailer of those), more, and a wrong trailer.
    let fewer = body(&w.preamble, &w.key_ids[..99], &w.key_ids[..99]);
    cases.push(("one key ID fewer than announced", put(RESTORE_REQUEST_TYPE, &fewer), (400, "PROTOCOL_VIOLATION")));
    let mut more_ids = w.key_ids.clone();
    more_ids.push([200; 16]);
    let more = body(&w.preamble, &more_ids, &more_ids);
    cases.push(("one key ID more than announced", put(RESTORE_REQUEST_TYPE, &more), (400, "PROTOCOL_VIOLATION")));
    let mut reordered = w.key_ids.clone();
    reordered.swap(3, 4);
    let wrong_trailer = body(&w.preamble, &reordered, &w.key_ids);
    cases.push((
        "a trailer that does not match",
        put(RESTORE_REQUEST_TYPE, &wrong_trailer),
        (400, "PROTOCOL_VIOLATION"),
    ));
    // A body cut short while the length says more: the server waits, then the idle timeout.
    let cut = &good[..good.len() - 40];
    cases.push((
        "a body shorter than its Content-Length",
        send(&w, &head(&w, "PUT", &path, RESTORE_REQUEST_TYPE, Some(good.len())), cut),
        (408, "SERVICE_UNAVAILABLE"),
    ));
    // A Content-Length that disagrees with the preamble.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 16]);
    cases.push((
        "a Content-Length longer than announced",
        put(RESTORE_REQUEST_TYPE, &padded),
        (400, "PROTOCOL_VIOLATION"),
    ));
    cases.push((
        "a Content-Length over any request",
        send(&w, &head(&w, "PUT", &path, RESTORE_REQUEST_TYPE, Some(1 << 40)), &good[..100]),
        (413, "REQUEST_TOO_LARGE"),
    ));
    let mut many = w.preamble.clone();
    many.licenses = 2_000_001;
    let too_many = body(&many, &[], &[]);
    cases.push((
        "more key IDs than the service accepts",
        put(RESTORE_REQUEST_TYPE, &too_many),
        (413, "REQUEST_TOO_LARGE"),
    ));
    let mut junk = good.clone();
    junk[0] = b'X';
    cases.push(("not a restore request", put(RESTORE_REQUEST_TYPE, &junk), (400, "PROTOCOL_VIOLATION")));
    let mut bad_field = w.preamble.clone();
    bad_field.device_id = "zz".into();
    cases.push((
        "a malformed preamble field",
        put(RESTORE_REQUEST_TYPE, &body(&bad_field, &w.key_ids, &w.key_ids)),
        (400, "PROTOCOL_VIOLATION"),
    ));
    cases.push((
        "a request ID that is not a UUID",
        send(&w, &head(&w, "PUT", "/v1/restores/1%20OR%201", RESTORE_REQUEST_TYPE, Some(good.len())), &good),
        (400, "PROTOCOL_VIOLATION"),
    ));
    let no_token = head(&w, "PUT", &path, RESTORE_REQUEST_TYPE, Some(good.len())).replace("Bearer ", "Bearer x");
    cases.push(("a wrong token", send(&w, &no_token, &good), (401, "AUTHENTICATION_FAILED")));
    let mut elsewhere = w.preamble.clone();
    elsewhere.request_id = "0f8fad5b-d9cb-469f-a165-70867728950f".into();
    cases.push((
        "a preamble naming another request ID than the path",
        put(RESTORE_REQUEST_TYPE, &body(&elsewhere, &w.key_ids, &w.key_ids)),
        (400, "PROTOCOL_VIOLATION"),
    ));
    cases.push((
        "an empty body",
        send(&w, &head(&w, "PUT", &path, RESTORE_REQUEST_TYPE, Some(0)), b""),
        (400, "PROTOCOL_VIOLATION"),
    ));
    cases.push((
        "an unknown endpoint",
        send(&w, &head(&w, "GET", "/v1/secrets", "", Some(0)), b""),
        (404, "PROTOCOL_VIOLATION"),
    ));
    cases.push((
        "a wrong method",
        send(&w, &head(&w, "POST", &path, RESTORE_REQUEST_TYPE, Some(0)), b""),
        (405, "PROTOCOL_VIOLATION"),
    ));
    // A chunked body in odd pieces is fine; a chunked body with one key ID more is not.
    let chunked = |b: &[u8]| {
        let mut out = Vec::new();
        for piece in b.chunks(7) {
            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    };
    cases.push((
        "chunked, one key ID more",
        send(&w, &head(&w, "PUT", &path, RESTORE_REQUEST_TYPE, None), &chunked(&more)),
        (400, "PROTOCOL_VIOLATION"),
    ));
    for (what, got, (status, name)) in &cases {
        assert_eq!((got.0, got.1.as_str()), (*status, *name), "{what}");
    }
    assert_eq!(restores(&w), 0, "no request changed the ledger");
    // The same request, well formed and chunked, is served: the tests above were refused for
    // their faults, not for the request itself. (The device key is made up, so the grant is
    // for a device that cannot open it.)
    let (status, name) = send(&w, &head(&w, "PUT", &path, RESTORE_REQUEST_TYPE, None), &chunked(&good));
    assert_eq!((status, name.as_str()), (200, ""));
    assert_eq!(restores(&w), 1);
    // The same request ID for another request (another device): refused with the library's
    // code, as the embedded service refuses it; the ledger keeps its one reservation.
    let mut other = w.preamble.clone();
    other.device_public_key = protocol::hex(&[4u8; 32]);
    other.device_id = protocol::hex(&protocol::device_id_of(&[4u8; 32]));
    let (status, name) = put(RESTORE_REQUEST_TYPE, &body(&other, &w.key_ids, &w.key_ids));
    assert_eq!((status, name.as_str()), (400, "INVALID_ARGUMENT"));
    assert_eq!(restores(&w), 1);
    // The same request again: answered from its reservation, nothing new recorded.
    let (status, name) = put(RESTORE_REQUEST_TYPE, &good);
    assert_eq!((status, name.as_str()), (200, ""));
    assert_eq!(restores(&w), 1);
    assert_eq!(w.server.audit().pending, 1);
}

#[test]
fn a_slow_sender_is_cut_off_and_a_huge_stream_stays_in_bounded_memory() {
    let w = world();
    let path = format!("/v1/restores/{RID}");
    // A sender that stops in the middle of its body: 408 after the idle timeout (1 s).
    let good = body(&w.preamble, &w.key_ids, &w.key_ids);
    let mut s = TcpStream::connect(&w.server.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(head(&w, "PUT", &path, RESTORE_REQUEST_TYPE, Some(good.len())).as_bytes()).unwrap();
    s.write_all(&good[..good.len() / 2]).unwrap();
    let started = Instant::now();
    let (status, name) = read_answer(&mut s);
    assert_eq!((status, name.as_str()), (408, "SERVICE_UNAVAILABLE"));
    assert!(started.elapsed() < Duration::from_secs(10));
    // A sender that never finishes its head: the connection is closed after the header timeout.
    let mut s = TcpStream::connect(&w.server.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"PUT /v1/restores/x HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(10), "closed after the header timeout");
    // Endless headers: refused at the buffer limit.
    let mut s = TcpStream::connect(&w.server.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    for _ in 0..10_000 {
        if s.write_all(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n").is_err() {
            break;
        }
    }
    let (status, _) = read_answer(&mut s);
    assert!(status == 431 || status == 0 || status == 400, "endless headers: {status}");
    // A stream of 1,000,000 key IDs (16 MB) with a wrong trailer: refused, read in bounded
    // memory, nothing recorded.
    let mut big = w.preamble.clone();
    big.licenses = 1_000_000;
    let ids: Vec<[u8; 16]> = (0..1_000_000u32)
        .map(|i| {
            let mut k = [0u8; 16];
            k[..4].copy_from_slice(&i.to_le_bytes());
            k
        })
        .collect();
    let before = peak_rss_kb(&w.server);
    let huge = body(&big, &ids, &ids[1..]);
    let (status, name) = send(&w, &head(&w, "PUT", &path, RESTORE_REQUEST_TYPE, Some(huge.len())), &huge);
    assert_eq!((status, name.as_str()), (400, "PROTOCOL_VIOLATION"));
    let after = peak_rss_kb(&w.server);
    assert!(after < before + 8 * 1024, "the server's peak memory grew from {before} kB to {after} kB");
    assert_eq!(restores(&w), 0);
}
