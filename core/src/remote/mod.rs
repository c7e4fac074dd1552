//! [`RemoteService`]: the License Management Service over HTTPS, as `docs/service-protocol.md`
//! specifies it.
//!
//! The engine runs each operation on a worker thread, so this client blocks: one connection per
//! call, the key IDs streamed from the archive as the request body, the answer read whole (at
//! most 64 KiB). Failed calls are retried a bounded number of times with the same request ID,
//! so the service answers a retried call from its ledger.

mod http;
mod tls;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::crypto::PUBLIC_KEY_LEN;
use crate::error::{Error, ErrorCode, Result};
use crate::protocol::{self, ServiceKeyInfo};
use crate::service::{
    DeviceRegistration, KeyIdStream, LicenseService, Quota, RequestId, RestoreGrant, RestoreRequest, ServiceError,
    Settlement,
};

use http::{Connection, Endpoint, Failure};
pub use http::{Response, parse_response_bytes};

/// The read, write and connect timeout when the application gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times a failed call is tried again when the application does not say.
pub const DEFAULT_RETRIES: u32 = 2;
/// The longest wait between two attempts, whatever the service asks for.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long the service's published keys are used before they are fetched again.
const KEYS_FRESH: Duration = Duration::from_secs(300);

/// How to reach and trust a License Management Service; every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteOptions {
    /// The bearer token the content provider gave the application.
    pub token: Option<String>,
    /// A PEM file of CA certificates trusted besides the system's roots (a self-hosted
    /// service's own CA).
    pub ca_file: Option<PathBuf>,
    /// SHA-256 fingerprints (hex; colons allowed) of the only server certificates accepted: with
    /// pins, neither the system roots nor the host name are checked, only the pin.
    pub cert_pins: Vec<String>,
    /// Fingerprints (hex, 32 digits) of the service keys a backup may wrap to: with pins, a
    /// backup refuses any other key (`SERVICE_KEY_NOT_PINNED`). Restores work for any key the
    /// service holds.
    pub service_keys: Vec<String>,
    /// The connect, read and write timeout (each, not in all). Default 30 s.
    pub timeout: Option<Duration>,
    /// How many times a call that failed in transit is tried again. Default 2.
    pub retries: Option<u32>,
}

/// A License Management Service reached over HTTPS (`docs/service-protocol.md`).
pub struct RemoteService {
    url: String,
    endpoint: Endpoint,
    token: Option<String>,
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    cert_pins: Vec<[u8; 32]>,
    service_keys: Vec<[u8; 16]>,
    timeout: Duration,
    retries: u32,
    tls: OnceLock<std::result::Result<Arc<rustls::ClientConfig>, Error>>,
    /// The keys last fetched, and when.
    keys: Mutex<Option<(Instant, Vec<ServiceKeyInfo>)>>,
}

impl std::fmt::Debug for RemoteService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("RemoteService").field("url", &self.url).field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

fn parse_hex_list<const N: usize>(items: &[String], what: &str) -> Result<Vec<[u8; N]>> {
    items
        .iter()
        .map(|s| {
            let clean: String = s.chars().filter(|c| *c != ':').collect();
            protocol::unhex(&clean, N, what)
                .map(|v| v.try_into().expect("N bytes"))
                .map_err(|_| Error::invalid(format!("{what} {s:?} is not {N} bytes of hex")))
        })
        .collect()
}

impl RemoteService {
    /// A client of the service at `url` (`https://host[:port][/prefix]`; `http://` only for a
    /// loopback address). Nothing is sent until a call needs the service; the CA file is read
    /// here.
    pub fn new(url: &str, options: RemoteOptions) -> Result<Self> {
        let endpoint = Endpoint::parse(url)?;
        if let Some(t) = &options.token {
            // RFC 6750 b64token: what may follow "Bearer " without breaking the header.
            let ok = !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'='));
            if !ok || t.len() > 4096 {
                return Err(Error::invalid("the token must be 1 to 4096 characters of A-Z a-z 0-9 - . _ ~ + / ="));
            }
        }
        let extra_roots = match &options.ca_file {
            Some(path) => tls::read_certificates(path)?,
            None => Vec::new(),
        };
        let timeout = options.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() || timeout > Duration::from_secs(3600) {
            return Err(Error::invalid("the timeout must be more than 0 and at most an hour"));
        }
        let retries = options.retries.unwrap_or(DEFAULT_RETRIES);
        if retries > 10 {
            return Err(Error::invalid("at most 10 retries"));
        }
        Ok(RemoteService {
            url: url.to_string(),
            endpoint,
            token: options.token,
            extra_roots,
            cert_pins: parse_hex_list::<32>(&options.cert_pins, "certificate pin")?,
            service_keys: parse_hex_list::<16>(&options.service_keys, "service key fingerprint")?,
            timeout,
            retries,
            tls: OnceLock::new(),
            keys: Mutex::new(None),
        })
    }

    /// The URL this client was made with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The service's published keys, each checked against its fingerprint; exactly one is
    /// current. For an application that shows or pins them.
    pub fn keys(&self) -> Result<Vec<ServiceKeyInfo>> {
        let body = self.call("GET", protocol::KEYS_PATH, &mut Body::Empty).map_err(flatten)?;
        let keys = protocol::parse_keys(&body)?;
        *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), keys.clone()));
        Ok(keys)
    }

    /// The keys to back up with: fetched at most every five minutes; when the service cannot
    /// be reached, the ones fetched last (a backup then needs the service only to register a
    /// device, as with the embedded service; a key the service rotated away from still
    /// restores, see `docs/service-protocol.md`).
    fn current_keys(&self) -> Result<Vec<ServiceKeyInfo>> {
        let cached = self.keys.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((at, keys)) = &cached {
            if at.elapsed() < KEYS_FRESH {
                return Ok(keys.clone());
            }
        }
        match (self.keys(), cached) {
            (Err(e), Some((_, keys))) if e.code() == ErrorCode::ServiceUnavailable => Ok(keys),
            (answer, _) => answer,
        }
    }

    fn tls(&self) -> std::result::Result<Option<&Arc<rustls::ClientConfig>>, Failure> {
        if !self.endpoint.tls {
            return Ok(None);
        }
        match self.tls.get_or_init(|| tls::client_config(&self.extra_roots, &self.cert_pins)) {
            Ok(c) => Ok(Some(c)),
            Err(e) => Err(Failure::Final(e.clone().into())),
        }
    }

    /// One attempt: connect, send, read the answer, close.
    fn exchange(&self, method: &str, path: &str, body: &mut Body<'_, '_>) -> std::result::Result<Response, Failure> {
        let tls = self.tls()?;
        let mut conn = Connection::open(&self.endpoint, tls, self.timeout)?;
        let sent = body.send(&mut conn, |len, content_type| {
            http::request_head(&self.endpoint, method, path, self.token.as_deref(), content_type, len)
        });
        // Once the answer begins, all of it must arrive within the timeout: a service that
        // dribbles bytes cannot hold the call for longer.
        let mut reader = http::Deadline::new(&mut conn, self.timeout);
        let answer = match sent {
            Ok(()) => http::read_response(&mut reader),
            // The service may have answered (a refusal from the preamble) and closed early.
            Err(SendError::Io(e)) => {
                http::read_response(&mut reader).map_err(|_| http::io_failure("sending the request", &e))
            }
            Err(SendError::Final(e)) => Err(Failure::Final(e.into())),
            Err(SendError::NoReplay) => {
                Err(Failure::fatal(ErrorCode::ServiceUnavailable, "the request failed and cannot be sent again"))
            }
        };
        conn.close();
        let response = answer?;
        if matches!(response.status, 429 | 502 | 503 | 504) {
            let delay = response.retry_after.map(Duration::from_secs);
            return Err(Failure::Transient(flatten(protocol::parse_error(response.status, &response.body)), delay));
        }
        Ok(response)
    }

    /// A call with its retries; the body of a 200 answer, which must be JSON.
    fn call(&self, method: &str, path: &str, body: &mut Body<'_, '_>) -> std::result::Result<Vec<u8>, ServiceError> {
        let mut attempt = 0;
        loop {
            let answer = self.exchange(method, path, body);
            if let Ok(r) = &answer {
                tracing::debug!(method, path, status = r.status, "the service answered");
            }
            match answer {
                Ok(r) if r.status == 200 => {
                    if !r.content_type.as_deref().is_some_and(|t| t.starts_with(protocol::JSON_TYPE)) {
                        return Err(
                            Error::new(ErrorCode::ProtocolViolation, "the service answered 200 without JSON").into()
                        );
                    }
                    return Ok(r.body);
                }
                Ok(r) => return Err(protocol::parse_error(r.status, &r.body)),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Transient(e, delay)) => {
                    if attempt >= self.retries || !body.can_resend() {
                        return Err(e.into());
                    }
                    attempt += 1;
                    let backoff = Duration::from_millis(200) * 4u32.pow(attempt - 1);
                    let wait = delay.unwrap_or(backoff).min(MAX_BACKOFF);
                    tracing::warn!(
                        method,
                        path,
                        attempt,
                        of = self.retries,
                        wait_ms = wait.as_millis() as u64,
                        error = %e,
                        "the service call failed; retrying"
                    );
                    std::thread::sleep(wait);
                }
            }
        }
    }

    /// `POST /v1/restores/{id}/confirm` or `/release`: how the reservation stands afterwards.
    fn settle(&self, request_id: &RequestId, action: &str) -> Result<Settlement> {
        let path = format!("{}/{}/{action}", protocol::RESTORES_PATH, protocol::request_id_text(request_id));
        let body = self.call("POST", &path, &mut Body::Empty).map_err(flatten)?;
        protocol::parse_state(&body, request_id)
    }

    fn restore_body<'s, 'a>(request: &RestoreRequest, key_ids: &'s mut KeyIdStream<'a>) -> Body<'s, 'a> {
        Body::Restore { head: protocol::request_head(request), keys: Replay::new(key_ids, request.licenses) }
    }
}

fn flatten(e: ServiceError) -> Error {
    match e {
        ServiceError::Failed(e) => e,
        ServiceError::Refused(r) => Error::new(r.code, r.message),
    }
}

impl LicenseService for RemoteService {
    fn public_key(&self) -> Result<[u8; PUBLIC_KEY_LEN]> {
        let keys = self.current_keys()?;
        let current = keys.iter().find(|k| k.current).expect("parse_keys checks there is one");
        if !self.service_keys.is_empty() && !self.service_keys.contains(&current.fingerprint) {
            return Err(Error::new(
                ErrorCode::ServiceKeyNotPinned,
                format!(
                    "the service's current key {} is not one of the pinned keys: no backup is wrapped to it",
                    protocol::hex(&current.fingerprint)
                ),
            ));
        }
        Ok(current.public_key)
    }

    fn register_device(&self, registration: &DeviceRegistration) -> Result<()> {
        let path = format!("{}/{}", protocol::DEVICES_PATH, protocol::hex(&registration.device_id));
        let json = serde_json::to_vec(&protocol::ProofJson::from_registration(registration))
            .expect("a registration always serializes");
        let body = self.call("PUT", &path, &mut Body::Json(json)).map_err(flatten)?;
        protocol::parse_registered(&body, &registration.device_id)
    }

    fn authorize_restore(
        &self,
        request: &RestoreRequest,
        key_ids: &mut KeyIdStream<'_>,
    ) -> Result<RestoreGrant, ServiceError> {
        // The engine's request ID: every retry, and the confirm or release, name it.
        let path = format!("{}/{}", protocol::RESTORES_PATH, protocol::request_id_text(&request.request_id));
        let body = self.call("PUT", &path, &mut Self::restore_body(request, key_ids))?;
        let wrapped_key = protocol::parse_grant(&body, &request.request_id, request.licenses)?;
        Ok(RestoreGrant { wrapped_key })
    }

    fn confirm_restore(&self, request_id: &RequestId) -> Result<Settlement> {
        self.settle(request_id, "confirm")
    }

    fn release_restore(&self, request_id: &RequestId) -> Result<Settlement> {
        self.settle(request_id, "release")
    }

    fn quota(&self, request: &RestoreRequest, key_ids: &mut KeyIdStream<'_>) -> Result<Quota> {
        let body =
            self.call("POST", protocol::QUOTA_PATH, &mut Self::restore_body(request, key_ids)).map_err(flatten)?;
        protocol::parse_quota(&body, request.licenses)
    }
}

/// A request body.
enum Body<'s, 'a> {
    Empty,
    /// A JSON object.
    Json(Vec<u8>),
    /// A restore request: its head, then the key IDs (replayed on a retry), then the trailer.
    Restore {
        head: Vec<u8>,
        keys: Replay<'s, 'a>,
    },
}

enum SendError {
    /// Writing to the connection failed.
    Io(io::Error),
    /// The archive could not be read or does not hold what it announced.
    Final(Error),
    /// A retry would need key IDs that could not be kept.
    NoReplay,
}

impl Body<'_, '_> {
    fn can_resend(&self) -> bool {
        match self {
            Body::Empty | Body::Json(_) => true,
            Body::Restore { keys, .. } => keys.can_replay(),
        }
    }

    /// Writes the request head (from `head`, given the body's length and type) and the body.
    fn send(
        &mut self,
        conn: &mut Connection,
        head: impl FnOnce(u64, Option<&str>) -> Vec<u8>,
    ) -> std::result::Result<(), SendError> {
        match self {
            Body::Empty => conn.write_all(&head(0, None)).and_then(|()| conn.flush()).map_err(SendError::Io),
            Body::Json(json) => {
                let mut out = head(json.len() as u64, Some(protocol::JSON_TYPE));
                out.extend_from_slice(json);
                conn.write_all(&out).and_then(|()| conn.flush()).map_err(SendError::Io)
            }
            Body::Restore { head: body_head, keys } => {
                let len = protocol::request_body_len(body_head.len(), keys.limit);
                let mut out = head(len, Some(protocol::RESTORE_REQUEST_TYPE));
                out.extend_from_slice(body_head);
                conn.write_all(&out).map_err(SendError::Io)?;
                let mut digest = Sha256::new();
                keys.pass(&mut |kids: &[u8]| {
                    digest.update(kids);
                    conn.write_all(kids)
                })?;
                conn.write_all(&digest.finalize()).and_then(|()| conn.flush()).map_err(SendError::Io)
            }
        }
    }
}

/// Key IDs per write to the connection (64 KiB).
const KEY_IDS_PER_WRITE: usize = 4096;

/// The key-ID stream of a call, kept so that a retry can send it again: the first attempt
/// reads the engine's stream and copies each key ID to an unnamed temporary file (16 bytes a
/// license, on disk, not in memory); a retry reads the copy, then goes on with the stream
/// where the earlier attempt stopped.
struct Replay<'s, 'a> {
    source: &'s mut KeyIdStream<'a>,
    limit: u64,
    spool: Option<File>,
    spool_failed: bool,
    spooled: u64,
    pending: Vec<u8>,
}

impl<'s, 'a> Replay<'s, 'a> {
    fn new(source: &'s mut KeyIdStream<'a>, limit: u64) -> Self {
        Replay { source, limit, spool: None, spool_failed: false, spooled: 0, pending: Vec::new() }
    }

    fn can_replay(&self) -> bool {
        !self.spool_failed
    }

    fn flush_pending(&mut self) {
        if self.pending.is_empty() || self.spool_failed {
            self.pending.clear();
            return;
        }
        if self.spool.is_none() {
            match tempfile::tempfile() {
                Ok(f) => self.spool = Some(f),
                Err(_) => self.spool_failed = true,
            }
        }
        if let Some(f) = &mut self.spool {
            if f.seek(SeekFrom::End(0)).and_then(|_| f.write_all(&self.pending)).is_err() {
                self.spool_failed = true;
            }
        }
        self.pending.clear();
    }

    /// Hands every key ID to `write` in order, in runs of up to 4096: those earlier passes
    /// read, then the rest of the stream.
    fn pass(&mut self, write: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> std::result::Result<(), SendError> {
        self.flush_pending();
        if self.spool_failed {
            return Err(SendError::NoReplay);
        }
        let mut run = vec![0u8; KEY_IDS_PER_WRITE * 16];
        if let Some(f) = &mut self.spool {
            let mut left = self.spooled * 16;
            f.seek(SeekFrom::Start(0)).map_err(|_| SendError::NoReplay)?;
            while left > 0 {
                let n = left.min(run.len() as u64) as usize;
                f.read_exact(&mut run[..n]).map_err(|_| SendError::NoReplay)?;
                write(&run[..n]).map_err(SendError::Io)?;
                left -= n as u64;
            }
        }
        let mut filled = 0;
        loop {
            let next = self.source.next();
            let Some(kid) = next else { break };
            let kid = kid.map_err(SendError::Final)?;
            if self.spooled == self.limit {
                return Err(SendError::Final(Error::corrupt("the archive holds more licenses than its scan counted")));
            }
            self.spooled += 1;
            self.pending.extend_from_slice(kid.as_bytes());
            run[filled..filled + 16].copy_from_slice(kid.as_bytes());
            filled += 16;
            if filled == run.len() {
                self.flush_pending();
                write(&run).map_err(SendError::Io)?;
                filled = 0;
            }
        }
        self.flush_pending();
        if self.spooled != self.limit {
            return Err(SendError::Final(Error::corrupt("the archive holds fewer licenses than its scan counted")));
        }
        if filled > 0 {
            write(&run[..filled]).map_err(SendError::Io)?;
        }
        Ok(())
    }
}
