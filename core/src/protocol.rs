//! The License Management Service protocol's encoding (`docs/service-protocol.md`), shared by
//! the client ([`crate::RemoteService`]) and the server (`license-backup-service`): paths, the
//! restore-request body and its incremental decoder, the JSON answers and their checks, and
//! the mapping between error codes and HTTP statuses.
//!
//! Nothing here does I/O: the decoder is fed bytes as they arrive, and every parser takes the
//! bytes of a whole answer, so both run under the fuzzer.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::crypto::{self, WrappedKey};
use crate::error::{Error, ErrorCode, Result};
use crate::key_id::KeyId;
use crate::service::{
    DeviceRegistration, IdentityProof, Quota, Refusal, RequestId, RestoreRequest, ServiceError, Settlement,
};

/// The path prefix of the protocol's version 1.
pub const API_PREFIX: &str = "/v1";
/// Path of the service's public keys.
pub const KEYS_PATH: &str = "/v1/keys";
/// Path of the quota query.
pub const QUOTA_PATH: &str = "/v1/quota";
/// Prefix of a restore's path: `/v1/restores/{request_id}`.
pub const RESTORES_PATH: &str = "/v1/restores";
/// Prefix of a device's path: `/v1/devices/{device_id}`.
pub const DEVICES_PATH: &str = "/v1/devices";
/// The liveness endpoint (no token).
pub const HEALTH_PATH: &str = "/healthz";
/// The readiness endpoint (no token).
pub const READY_PATH: &str = "/readyz";

/// Content type of a restore-request body.
pub const RESTORE_REQUEST_TYPE: &str = "application/vnd.license-backup.restore-request";
/// Content type of every JSON body.
pub const JSON_TYPE: &str = "application/json";

/// The first four bytes of a restore-request body.
pub const REQUEST_MAGIC: &[u8; 4] = b"LBRQ";
/// The restore-request body version this library writes and reads.
pub const REQUEST_VERSION: u16 = 1;
/// Length of the fixed part before the preamble: magic, version, reserved, preamble length.
pub const REQUEST_HEAD_LEN: usize = 12;
/// The largest preamble accepted.
pub const MAX_PREAMBLE_LEN: usize = 16 * 1024;
/// Length of the trailer: SHA-256 of the key-ID bytes.
pub const TRAILER_LEN: usize = 32;
/// The largest answer body a client accepts.
pub const MAX_RESPONSE_LEN: usize = 64 * 1024;
/// The largest JSON request body a server accepts.
pub const MAX_JSON_REQUEST_LEN: usize = 16 * 1024;

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Decodes hex (either case) into exactly `len` bytes; `what` names the field in the error.
pub fn unhex(text: &str, len: usize, what: &str) -> Result<Vec<u8>> {
    let bad = || Error::new(ErrorCode::ProtocolViolation, format!("{what} is not {len} bytes of hex"));
    if text.len() != len * 2 {
        return Err(bad());
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)
}

fn unhex_array<const N: usize>(text: &str, what: &str) -> Result<[u8; N]> {
    Ok(unhex(text, N, what)?.try_into().expect("unhex returns N bytes"))
}

/// A device's ID: the first 16 bytes of SHA-256 of its X25519 public key.
pub fn device_id_of(public_key: &[u8; 32]) -> [u8; 16] {
    crypto::fingerprint(public_key)
}

/// A request ID as the protocol writes it: its 16 bytes as a lowercase hyphenated UUID.
pub fn request_id_text(id: &RequestId) -> String {
    KeyId::from_bytes(*id).to_string()
}

/// The request ID a path or preamble names; `PROTOCOL_VIOLATION` unless it is in the form
/// [`is_request_id`] requires.
pub fn parse_request_id(text: &str) -> Result<RequestId> {
    if !is_request_id(text) {
        return Err(malformed("the request ID must be a lowercase hyphenated UUID"));
    }
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    unhex_array(&digits, "request ID")
}

/// Whether `text` is a request ID in the form the protocol requires (a lowercase hyphenated
/// UUID).
pub fn is_request_id(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

/// The JSON object at the start of a restore-request body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preamble {
    /// The archive header's authenticated bytes, hex.
    pub header: String,
    /// The HPKE encapsulated key of the archive's wrapped data key, hex.
    pub enc: String,
    /// The wrapped data key (ciphertext and tag), hex.
    pub wrapped_key: String,
    /// The restoring device's ID, hex.
    pub device_id: String,
    /// The restoring device's X25519 public key, hex.
    pub device_public_key: String,
    /// How many key IDs follow.
    pub licenses: u64,
    /// The request ID the device chose (the same in every retry, and in the path of an
    /// authorization).
    pub request_id: String,
    /// When individualizing: the identity the restore replaces, with its proof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<ProofJson>,
}

/// A proof of possession of a device key, as JSON: the identity being replaced in a restore
/// request, or the body of a device registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofJson {
    /// The device ID, hex (a registration carries it in its path and may leave it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The device's X25519 public key, hex.
    pub public_key: String,
    /// The HPKE encapsulated key of the proof, hex.
    pub enc: String,
    /// The proof's ciphertext (an empty plaintext sealed with its tag), hex.
    pub proof: String,
}

impl ProofJson {
    fn from_parts(device_id: Option<&[u8; 16]>, public_key: &[u8; 32], proof: &WrappedKey) -> Self {
        ProofJson {
            device_id: device_id.map(|d| hex(d)),
            public_key: hex(public_key),
            enc: hex(&proof.enc),
            proof: hex(&proof.ciphertext),
        }
    }

    fn wrapped(&self) -> Result<WrappedKey> {
        Ok(WrappedKey {
            enc: unhex_var(&self.enc, MAX_WRAPPED_LEN, "enc")?,
            ciphertext: unhex_var(&self.proof, MAX_WRAPPED_LEN, "proof")?,
        })
    }

    /// The JSON of a registration (`PUT /v1/devices/{device_id}`).
    pub fn from_registration(registration: &DeviceRegistration) -> Self {
        Self::from_parts(Some(&registration.device_id), &registration.public_key, &registration.proof)
    }

    /// The registration this body describes for the device of the path; `PROTOCOL_VIOLATION`
    /// for a malformed field or a device ID other than the path's.
    pub fn to_registration(&self, device_id: &[u8; 16]) -> Result<DeviceRegistration> {
        if let Some(d) = &self.device_id {
            if unhex_array::<16>(d, "device_id")? != *device_id {
                return Err(malformed("the registration names another device than its path"));
            }
        }
        Ok(DeviceRegistration {
            device_id: *device_id,
            public_key: unhex_array(&self.public_key, "public_key")?,
            proof: self.wrapped()?,
        })
    }
}

/// The answer of a registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredAnswer {
    /// The device ID, hex.
    pub device_id: String,
    /// Always `true`.
    pub registered: bool,
}

/// Parses a registration answer and checks it is about `device_id`.
pub fn parse_registered(body: &[u8], device_id: &[u8; 16]) -> Result<()> {
    let answer: RegisteredAnswer = parse_json(body, "registration")?;
    if answer.device_id != hex(device_id) || !answer.registered {
        return Err(malformed("the registration answer is about another device"));
    }
    Ok(())
}

/// The largest archive header the preamble may carry (bytes).
const MAX_HEADER_LEN: usize = 4096;
/// The largest encapsulated key or wrapped key the preamble may carry (bytes).
const MAX_WRAPPED_LEN: usize = 1024;

fn unhex_var(text: &str, max: usize, what: &str) -> Result<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > max * 2 {
        return Err(Error::new(ErrorCode::ProtocolViolation, format!("{what} is not hex of at most {max} bytes")));
    }
    unhex(text, text.len() / 2, what)
}

impl Preamble {
    /// The preamble of `request`.
    pub fn from_request(request: &RestoreRequest) -> Self {
        Preamble {
            header: hex(&request.header),
            enc: hex(&request.wrapped_key.enc),
            wrapped_key: hex(&request.wrapped_key.ciphertext),
            device_id: hex(&request.device_id),
            device_public_key: hex(&request.device_public_key),
            licenses: request.licenses,
            request_id: request_id_text(&request.request_id),
            replaces: request
                .replaces
                .as_ref()
                .map(|r| ProofJson::from_parts(Some(&r.device_id), &r.public_key, &r.proof)),
        }
    }

    /// The request this preamble describes; `PROTOCOL_VIOLATION` for a malformed field.
    pub fn to_request(&self) -> Result<RestoreRequest> {
        Ok(RestoreRequest {
            header: unhex_var(&self.header, MAX_HEADER_LEN, "header")?,
            wrapped_key: WrappedKey {
                enc: unhex_var(&self.enc, MAX_WRAPPED_LEN, "enc")?,
                ciphertext: unhex_var(&self.wrapped_key, MAX_WRAPPED_LEN, "wrapped_key")?,
            },
            device_id: unhex_array(&self.device_id, "device_id")?,
            device_public_key: unhex_array(&self.device_public_key, "device_public_key")?,
            licenses: self.licenses,
            request_id: parse_request_id(&self.request_id)?,
            replaces: match &self.replaces {
                None => None,
                Some(r) => Some(IdentityProof {
                    device_id: unhex_array(
                        r.device_id.as_deref().ok_or_else(|| malformed("replaces needs its device_id"))?,
                        "replaces.device_id",
                    )?,
                    public_key: unhex_array(&r.public_key, "replaces.public_key")?,
                    proof: r.wrapped()?,
                }),
            },
        })
    }
}

/// The bytes of a restore-request body before its key IDs: magic, version, reserved, preamble
/// length and preamble.
pub fn request_head(request: &RestoreRequest) -> Vec<u8> {
    let preamble = serde_json::to_vec(&Preamble::from_request(request)).expect("a preamble always serializes");
    let mut out = Vec::with_capacity(REQUEST_HEAD_LEN + preamble.len());
    out.extend_from_slice(REQUEST_MAGIC);
    out.extend_from_slice(&REQUEST_VERSION.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(preamble.len() as u32).to_le_bytes());
    out.extend_from_slice(&preamble);
    out
}

/// The length of a whole restore-request body whose head is `head_len` bytes.
pub fn request_body_len(head_len: usize, licenses: u64) -> u64 {
    head_len as u64 + 16 * licenses + TRAILER_LEN as u64
}

/// What [`RequestDecoder::feed`] hands on, in body order.
#[derive(Debug)]
pub enum RequestItem<'a> {
    /// The preamble, parsed (once, first).
    Preamble(Box<Preamble>),
    /// A run of key IDs (16 bytes each).
    KeyIds(&'a [u8]),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Head,
    Preamble(usize),
    KeyIds,
    Trailer,
    Done,
}

/// An incremental decoder of a restore-request body, fed the bytes as they arrive: the server
/// reads the body in whatever pieces the connection gives and never holds more than one
/// preamble and one partial key ID.
#[derive(Debug)]
pub struct RequestDecoder {
    stage: Stage,
    buf: Vec<u8>,
    max_licenses: u64,
    licenses: u64,
    seen: u64,
    digest: Sha256,
    received: u64,
    head_len: u64,
}

/// A malformed request.
fn malformed(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::ProtocolViolation, message)
}

impl RequestDecoder {
    /// A decoder that refuses more than `max_licenses` key IDs (`REQUEST_TOO_LARGE`).
    pub fn new(max_licenses: u64) -> Self {
        RequestDecoder {
            stage: Stage::Head,
            buf: Vec::new(),
            max_licenses,
            licenses: 0,
            seen: 0,
            digest: Sha256::new(),
            received: 0,
            head_len: 0,
        }
    }

    /// The bytes fed so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The number of key IDs the preamble announced (0 before it was read).
    pub fn licenses(&self) -> u64 {
        self.licenses
    }

    /// The body length the preamble implies, once it was read.
    pub fn expected_len(&self) -> Option<u64> {
        match self.stage {
            Stage::Head | Stage::Preamble(_) => None,
            _ => Some(self.head_len + 16 * self.licenses + TRAILER_LEN as u64),
        }
    }

    /// Feeds the next bytes of the body, handing the preamble and runs of key IDs to `out` in
    /// order. Fails with `PROTOCOL_VIOLATION` (or `REQUEST_TOO_LARGE`) at the first byte that
    /// breaks the format; the error of `out` is passed on.
    pub fn feed(&mut self, mut input: &[u8], out: &mut dyn FnMut(RequestItem<'_>) -> Result<()>) -> Result<()> {
        self.received += input.len() as u64;
        while !input.is_empty() {
            match self.stage {
                Stage::Head => {
                    let take = (REQUEST_HEAD_LEN - self.buf.len()).min(input.len());
                    self.buf.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.buf.len() == REQUEST_HEAD_LEN {
                        if &self.buf[..4] != REQUEST_MAGIC {
                            return Err(malformed("not a restore request (bad magic)"));
                        }
                        let version = u16::from_le_bytes([self.buf[4], self.buf[5]]);
                        if version != REQUEST_VERSION {
                            return Err(malformed(format!("restore request version {version} is not supported")));
                        }
                        if self.buf[6..8] != [0, 0] {
                            return Err(malformed("reserved bytes of the restore request are not zero"));
                        }
                        let len = u32::from_le_bytes(self.buf[8..12].try_into().expect("4 bytes")) as usize;
                        if len == 0 || len > MAX_PREAMBLE_LEN {
                            return Err(malformed(format!("preamble length {len} out of range")));
                        }
                        self.buf.clear();
                        self.stage = Stage::Preamble(len);
                    }
                }
                Stage::Preamble(len) => {
                    let take = (len - self.buf.len()).min(input.len());
                    self.buf.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.buf.len() == len {
                        let preamble: Preamble = serde_json::from_slice(&self.buf)
                            .map_err(|e| malformed(format!("malformed preamble: {e}")))?;
                        preamble.to_request()?;
                        if preamble.licenses > self.max_licenses {
                            return Err(Error::new(
                                ErrorCode::RequestTooLarge,
                                format!(
                                    "the archive holds {} licenses; this service accepts at most {} in one request",
                                    preamble.licenses, self.max_licenses
                                ),
                            ));
                        }
                        self.licenses = preamble.licenses;
                        self.head_len = (REQUEST_HEAD_LEN + len) as u64;
                        self.buf.clear();
                        self.stage = if self.licenses == 0 { Stage::Trailer } else { Stage::KeyIds };
                        out(RequestItem::Preamble(Box::new(preamble)))?;
                    }
                }
                Stage::KeyIds => {
                    // Complete a key ID split across pieces first.
                    if !self.buf.is_empty() {
                        let take = (16 - self.buf.len()).min(input.len());
                        self.buf.extend_from_slice(&input[..take]);
                        input = &input[take..];
                        if self.buf.len() == 16 {
                            let kid = std::mem::take(&mut self.buf);
                            self.accept(&kid, out)?;
                        }
                        continue;
                    }
                    let left = ((self.licenses - self.seen) * 16).min(input.len() as u64) as usize;
                    let whole = left - left % 16;
                    if whole > 0 {
                        self.accept(&input[..whole], out)?;
                        input = &input[whole..];
                    } else {
                        self.buf.extend_from_slice(&input[..left]);
                        input = &input[left..];
                    }
                }
                Stage::Trailer => {
                    let take = (TRAILER_LEN - self.buf.len()).min(input.len());
                    self.buf.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.buf.len() == TRAILER_LEN {
                        let digest = std::mem::take(&mut self.digest).finalize();
                        if digest.as_slice() != self.buf.as_slice() {
                            return Err(malformed("the key-ID digest in the trailer does not match the key IDs"));
                        }
                        self.stage = Stage::Done;
                    }
                }
                Stage::Done => return Err(malformed("bytes after the restore request's trailer")),
            }
        }
        Ok(())
    }

    fn accept(&mut self, kids: &[u8], out: &mut dyn FnMut(RequestItem<'_>) -> Result<()>) -> Result<()> {
        self.digest.update(kids);
        self.seen += (kids.len() / 16) as u64;
        if self.seen == self.licenses {
            self.stage = Stage::Trailer;
        }
        out(RequestItem::KeyIds(kids))
    }

    /// Checks that the body is complete: `PROTOCOL_VIOLATION` if it ended early.
    pub fn finish(&self) -> Result<()> {
        match self.stage {
            Stage::Done => Ok(()),
            Stage::KeyIds | Stage::Trailer => Err(malformed(format!(
                "the restore request ended after {} of {} key IDs and before its trailer",
                self.seen, self.licenses
            ))),
            _ => Err(malformed("the restore request ended inside its preamble")),
        }
    }
}

/// One published key of the service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedKey {
    /// First 16 bytes of SHA-256 of the public key, hex.
    pub fingerprint: String,
    /// The X25519 public key, hex.
    pub public_key: String,
    /// Always `"X25519"` in version 1.
    pub algorithm: String,
    /// Whether backups wrap to this key now.
    pub current: bool,
}

/// The answer of `GET /v1/keys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysAnswer {
    /// Every key the service holds, the current one among them.
    pub keys: Vec<PublishedKey>,
}

/// A service key, checked: its public key and fingerprint agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceKeyInfo {
    /// The X25519 public key.
    pub public_key: [u8; 32],
    /// Its fingerprint: the first 16 bytes of SHA-256 of the public key.
    pub fingerprint: [u8; 16],
    /// Whether backups wrap to it now.
    pub current: bool,
}

impl PublishedKey {
    /// The published form of a public key.
    pub fn new(public_key: &[u8; 32], current: bool) -> Self {
        PublishedKey {
            fingerprint: hex(&crypto::fingerprint(public_key)),
            public_key: hex(public_key),
            algorithm: "X25519".into(),
            current,
        }
    }
}

/// At most this many keys in a keys answer.
const MAX_KEYS: usize = 256;

/// Parses and checks a keys answer: every fingerprint matches its key, exactly one is current.
pub fn parse_keys(body: &[u8]) -> Result<Vec<ServiceKeyInfo>> {
    let answer: KeysAnswer = parse_json(body, "keys")?;
    if answer.keys.is_empty() || answer.keys.len() > MAX_KEYS {
        return Err(malformed(format!("the service published {} keys", answer.keys.len())));
    }
    let mut keys = Vec::with_capacity(answer.keys.len());
    for k in &answer.keys {
        if k.algorithm != "X25519" {
            return Err(malformed(format!("unknown key algorithm {:?}", k.algorithm)));
        }
        let public_key: [u8; 32] = unhex_array(&k.public_key, "public_key")?;
        let fingerprint: [u8; 16] = unhex_array(&k.fingerprint, "fingerprint")?;
        if crypto::fingerprint(&public_key) != fingerprint {
            return Err(malformed("a published key's fingerprint does not match the key"));
        }
        keys.push(ServiceKeyInfo { public_key, fingerprint, current: k.current });
    }
    if keys.iter().filter(|k| k.current).count() != 1 {
        return Err(malformed("the service must publish exactly one current key"));
    }
    Ok(keys)
}

/// The answer of an authorization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantAnswer {
    /// The request ID the grant answers.
    pub request_id: String,
    /// `"reserved"` (or `"confirmed"` when answered again after a confirm).
    pub state: String,
    /// How many licenses the grant covers.
    pub licenses: u64,
    /// HPKE encapsulated key of the data key sealed to the device, hex.
    pub enc: String,
    /// The sealed data key, hex.
    pub wrapped_key: String,
}

/// Parses a grant and checks that it answers `request_id` for `licenses` licenses.
pub fn parse_grant(body: &[u8], request_id: &RequestId, licenses: u64) -> Result<WrappedKey> {
    let answer: GrantAnswer = parse_json(body, "grant")?;
    if answer.request_id != request_id_text(request_id) {
        return Err(malformed("the grant answers another request"));
    }
    if answer.licenses != licenses {
        return Err(malformed(format!("the grant covers {} licenses, not {licenses}", answer.licenses)));
    }
    if answer.state != "reserved" {
        return Err(malformed(format!("a grant in state {:?}", answer.state)));
    }
    Ok(WrappedKey {
        enc: unhex_var(&answer.enc, MAX_WRAPPED_LEN, "enc")?,
        ciphertext: unhex_var(&answer.wrapped_key, MAX_WRAPPED_LEN, "wrapped_key")?,
    })
}

/// The answer of a confirm or a release: how the reservation stands in the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateAnswer {
    /// The request ID.
    pub request_id: String,
    /// `"confirmed"`, `"released"` or `"unknown"` (see [`Settlement`]).
    pub state: String,
}

/// The protocol's name of a settlement.
pub fn settlement_name(s: Settlement) -> &'static str {
    match s {
        Settlement::Confirmed => "confirmed",
        Settlement::Released => "released",
        Settlement::Unknown => "unknown",
    }
}

impl StateAnswer {
    /// The answer for a settlement.
    pub fn new(request_id: &RequestId, s: Settlement) -> Self {
        StateAnswer { request_id: request_id_text(request_id), state: settlement_name(s).into() }
    }
}

/// Parses a confirm or release answer, checking the request ID.
pub fn parse_state(body: &[u8], request_id: &RequestId) -> Result<Settlement> {
    let answer: StateAnswer = parse_json(body, "state")?;
    if answer.request_id != request_id_text(request_id) {
        return Err(malformed(format!("the answer is about request {}", clip(&answer.request_id))));
    }
    Ok(match answer.state.as_str() {
        "confirmed" => Settlement::Confirmed,
        "released" => Settlement::Released,
        "unknown" => Settlement::Unknown,
        other => return Err(malformed(format!("unknown reservation state {:?}", clip(other)))),
    })
}

/// The answer of a quota query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaAnswer {
    /// Licenses in the archive.
    pub licenses: u64,
    /// Distinct devices a license may live on.
    pub max_devices: u32,
    /// How many more new devices could still receive every license.
    pub restores_remaining: u32,
    /// This device already counts for every license.
    pub device_already_counted: bool,
    /// Whether the service would authorize this restore now.
    pub allowed: bool,
}

impl From<&Quota> for QuotaAnswer {
    fn from(q: &Quota) -> Self {
        QuotaAnswer {
            licenses: q.licenses,
            max_devices: q.max_devices,
            restores_remaining: q.restores_remaining,
            device_already_counted: q.device_already_counted,
            allowed: q.allowed,
        }
    }
}

/// Parses a quota answer and checks it is about `licenses` licenses and consistent.
pub fn parse_quota(body: &[u8], licenses: u64) -> Result<Quota> {
    let q: QuotaAnswer = parse_json(body, "quota")?;
    if q.licenses != licenses {
        return Err(malformed(format!("the quota is about {} licenses, not {licenses}", q.licenses)));
    }
    if q.max_devices == 0 || q.restores_remaining > q.max_devices {
        return Err(malformed("an inconsistent quota answer"));
    }
    Ok(Quota {
        licenses: q.licenses,
        max_devices: q.max_devices,
        restores_remaining: q.restores_remaining,
        device_already_counted: q.device_already_counted,
        allowed: q.allowed,
    })
}

/// The error object of an error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The stable number.
    pub code: u32,
    /// The stable symbolic name.
    pub name: String,
    /// A human-readable message.
    pub message: String,
    /// The page a refusal points to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The body of every error answer: `{"error": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    /// What went wrong.
    pub error: ErrorDetail,
}

impl ErrorAnswer {
    /// The answer for an error.
    pub fn from_error(e: &Error) -> Self {
        ErrorAnswer {
            error: ErrorDetail {
                code: e.code().number(),
                name: e.code().name().into(),
                message: e.message().into(),
                url: None,
            },
        }
    }

    /// The answer for a refusal.
    pub fn from_refusal(r: &Refusal) -> Self {
        ErrorAnswer {
            error: ErrorDetail {
                code: r.code.number(),
                name: r.code.name().into(),
                message: r.message.clone(),
                url: Some(r.url.clone()),
            },
        }
    }
}

/// The HTTP status a server answers an error with.
pub fn status_for(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::InvalidArgument | ErrorCode::ProtocolViolation => 400,
        ErrorCode::AuthenticationFailed => 401,
        ErrorCode::RestoreLimitExceeded | ErrorCode::ForeignDevice => 403,
        ErrorCode::RequestTooLarge => 413,
        ErrorCode::WrongKey | ErrorCode::ArchiveCorrupt | ErrorCode::UnsupportedVersion => 422,
        ErrorCode::RateLimited => 429,
        ErrorCode::ServiceUnavailable => 503,
        _ => 500,
    }
}

/// The code a client reports for an error answer with no usable error object.
fn code_for_status(status: u16) -> ErrorCode {
    match status {
        401 | 403 => ErrorCode::AuthenticationFailed,
        408 | 500..=599 => ErrorCode::ServiceUnavailable,
        413 => ErrorCode::RequestTooLarge,
        429 => ErrorCode::RateLimited,
        _ => ErrorCode::ProtocolViolation,
    }
}

/// The codes a service may answer with; anything else from a server is reported by status.
fn answerable(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvalidArgument
            | ErrorCode::ProtocolViolation
            | ErrorCode::AuthenticationFailed
            | ErrorCode::RestoreLimitExceeded
            | ErrorCode::ForeignDevice
            | ErrorCode::RequestTooLarge
            | ErrorCode::WrongKey
            | ErrorCode::ArchiveCorrupt
            | ErrorCode::UnsupportedVersion
            | ErrorCode::RateLimited
            | ErrorCode::ServiceUnavailable
    )
}

/// What a client makes of an error answer (any status but 200): a refusal when the service
/// refused with a URL, otherwise an error whose code comes from the body when it is one a
/// service may answer with and agrees with the status, else from the status alone.
pub fn parse_error(status: u16, body: &[u8]) -> ServiceError {
    let detail = serde_json::from_slice::<ErrorAnswer>(body).ok().map(|a| a.error);
    let code = detail
        .as_ref()
        .and_then(|d| ErrorCode::from_name(&d.name).filter(|c| c.number() == d.code))
        .filter(|c| answerable(*c) && status_for(*c) == status)
        .unwrap_or_else(|| code_for_status(status));
    let message = match &detail {
        Some(d) => format!("the License Management Service answered {status}: {}", clip(&d.message)),
        None => format!("the License Management Service answered {status}"),
    };
    match detail.and_then(|d| d.url) {
        Some(url)
            if matches!(
                code,
                ErrorCode::RestoreLimitExceeded | ErrorCode::ForeignDevice | ErrorCode::UnsupportedVersion
            ) =>
        {
            ServiceError::Refused(Refusal { code, message: clip(&message), url: clip(&url) })
        }
        _ => ServiceError::Failed(Error::new(code, message)),
    }
}

/// A string from the network, cut to a length fit for a message.
fn clip(s: &str) -> String {
    const MAX: usize = 512;
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T> {
    if body.len() > MAX_RESPONSE_LEN {
        return Err(malformed(format!("the {what} answer is larger than {MAX_RESPONSE_LEN} bytes")));
    }
    serde_json::from_slice(body).map_err(|e| malformed(format!("malformed {what} answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(licenses: u64) -> RestoreRequest {
        RestoreRequest {
            header: vec![7; 80],
            wrapped_key: WrappedKey { enc: vec![1; 32], ciphertext: vec![2; 48] },
            device_id: [3; 16],
            device_public_key: [4; 32],
            licenses,
            request_id: [8; 16],
            replaces: Some(IdentityProof {
                device_id: [5; 16],
                public_key: [6; 32],
                proof: WrappedKey { enc: vec![9; 32], ciphertext: vec![10; 16] },
            }),
        }
    }

    fn body(req: &RestoreRequest, kids: &[[u8; 16]]) -> Vec<u8> {
        let mut b = request_head(req);
        let mut d = Sha256::new();
        for k in kids {
            b.extend_from_slice(k);
            d.update(k);
        }
        b.extend_from_slice(&d.finalize());
        b
    }

    fn decode(bytes: &[u8], piece: usize, max: u64) -> Result<(Option<Preamble>, Vec<[u8; 16]>)> {
        let mut dec = RequestDecoder::new(max);
        let (mut pre, mut kids) = (None, Vec::new());
        for chunk in bytes.chunks(piece.max(1)) {
            dec.feed(chunk, &mut |item| {
                match item {
                    RequestItem::Preamble(p) => pre = Some(*p),
                    RequestItem::KeyIds(k) => kids.extend(k.chunks_exact(16).map(|c| <[u8; 16]>::try_from(c).unwrap())),
                }
                Ok(())
            })?;
        }
        dec.finish()?;
        assert_eq!(dec.expected_len(), Some(bytes.len() as u64));
        Ok((pre, kids))
    }

    #[test]
    fn a_body_decodes_in_any_pieces() {
        let kids: Vec<[u8; 16]> = (0..37u8).map(|i| [i; 16]).collect();
        let req = request(kids.len() as u64);
        let b = body(&req, &kids);
        assert_eq!(b.len() as u64, request_body_len(request_head(&req).len(), 37));
        for piece in [1, 3, 7, 16, 17, 100, 4096] {
            let (pre, got) = decode(&b, piece, 100).unwrap();
            assert_eq!(pre.unwrap().to_request().unwrap(), req, "every field round-trips");
            assert_eq!(got, kids, "piece {piece}");
        }
        let empty = body(&request(0), &[]);
        assert_eq!(decode(&empty, 5, 0).unwrap().1.len(), 0);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let kids: Vec<[u8; 16]> = (0..4u8).map(|i| [i; 16]).collect();
        let req = request(4);
        let good = body(&req, &kids);
        let code = |b: &[u8], max: u64| decode(b, 5, max).unwrap_err().code();
        // Fewer key IDs than announced, then the trailer: the trailer is read as key IDs.
        assert_eq!(code(&body(&req, &kids[..3]), 10), ErrorCode::ProtocolViolation);
        // More key IDs than announced.
        let mut more = kids.clone();
        more.push([9; 16]);
        assert_eq!(code(&body(&req, &more), 10), ErrorCode::ProtocolViolation);
        // Truncated anywhere.
        for cut in [0, 5, 12, 40, good.len() - 33, good.len() - 1] {
            assert_eq!(code(&good[..cut], 10), ErrorCode::ProtocolViolation, "cut at {cut}");
        }
        // A flipped key ID fails the trailer; so do the magic and the version.
        for at in [0, 4, 6, good.len() - 40, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            assert_eq!(code(&bad, 10), ErrorCode::ProtocolViolation, "flip at {at}");
        }
        assert_eq!(code(&good, 3), ErrorCode::RequestTooLarge);
        let mut long = good.clone();
        long[8..12].copy_from_slice(&(MAX_PREAMBLE_LEN as u32 + 1).to_le_bytes());
        assert_eq!(code(&long, 10), ErrorCode::ProtocolViolation);
    }

    #[test]
    fn answers_are_checked() {
        let pk = [5u8; 32];
        let keys = KeysAnswer { keys: vec![PublishedKey::new(&pk, true), PublishedKey::new(&[6; 32], false)] };
        let parsed = parse_keys(&serde_json::to_vec(&keys).unwrap()).unwrap();
        assert_eq!(parsed[0].public_key, pk);
        let mut wrong = keys.clone();
        wrong.keys[1].fingerprint = wrong.keys[0].fingerprint.clone();
        assert_eq!(parse_keys(&serde_json::to_vec(&wrong).unwrap()).unwrap_err().code(), ErrorCode::ProtocolViolation);
        let mut two = keys.clone();
        two.keys[1].current = true;
        assert!(parse_keys(&serde_json::to_vec(&two).unwrap()).is_err());

        let rid: RequestId = [0xab; 16];
        let id = request_id_text(&rid);
        assert!(is_request_id(&id), "{id}");
        assert_eq!(parse_request_id(&id).unwrap(), rid);
        assert!(!is_request_id(&id.to_uppercase()));
        assert_eq!(parse_request_id(&id.to_uppercase()).unwrap_err().code(), ErrorCode::ProtocolViolation);
        let grant = GrantAnswer {
            request_id: id.clone(),
            state: "reserved".into(),
            licenses: 3,
            enc: hex(&[1; 32]),
            wrapped_key: hex(&[2; 48]),
        };
        let bytes = serde_json::to_vec(&grant).unwrap();
        assert_eq!(parse_grant(&bytes, &rid, 3).unwrap().ciphertext, vec![2; 48]);
        assert!(parse_grant(&bytes, &[0xac; 16], 3).is_err());
        assert!(parse_grant(&bytes, &rid, 4).is_err());
        // Settlements, for this request only.
        for s in [Settlement::Confirmed, Settlement::Released, Settlement::Unknown] {
            let bytes = serde_json::to_vec(&StateAnswer::new(&rid, s)).unwrap();
            assert_eq!(parse_state(&bytes, &rid).unwrap(), s);
            assert!(parse_state(&bytes, &[1; 16]).is_err());
        }
        assert!(parse_state(br#"{"request_id":"x","state":"pending"}"#, &rid).is_err());
        // A registration round-trips and must name its path's device.
        let reg = DeviceRegistration {
            device_id: [1; 16],
            public_key: [2; 32],
            proof: WrappedKey { enc: vec![3; 32], ciphertext: vec![4; 16] },
        };
        let json = ProofJson::from_registration(&reg);
        assert_eq!(json.to_registration(&[1; 16]).unwrap(), reg);
        assert_eq!(json.to_registration(&[9; 16]).unwrap_err().code(), ErrorCode::ProtocolViolation);
    }

    #[test]
    fn error_answers_map_to_codes() {
        let refusal =
            Refusal { code: ErrorCode::RestoreLimitExceeded, message: "no".into(), url: "https://x.example".into() };
        let body = serde_json::to_vec(&ErrorAnswer::from_refusal(&refusal)).unwrap();
        match parse_error(403, &body) {
            ServiceError::Refused(r) => assert_eq!((r.code, r.url.as_str()), (refusal.code, "https://x.example")),
            other => panic!("{other:?}"),
        }
        let code = |status, body: &[u8]| match parse_error(status, body) {
            ServiceError::Failed(e) => e.code(),
            ServiceError::Refused(r) => r.code,
        };
        assert_eq!(code(401, b""), ErrorCode::AuthenticationFailed);
        assert_eq!(code(503, b"<html>"), ErrorCode::ServiceUnavailable);
        assert_eq!(code(429, b"{}"), ErrorCode::RateLimited);
        assert_eq!(code(418, b"{}"), ErrorCode::ProtocolViolation);
        // A body whose code disagrees with the status, or that names a code no service sends,
        // is reported by the status.
        let wrong = ErrorAnswer::from_error(&Error::new(ErrorCode::WrongKey, "x"));
        assert_eq!(code(503, &serde_json::to_vec(&wrong).unwrap()), ErrorCode::ServiceUnavailable);
        let internal = ErrorAnswer::from_error(&Error::new(ErrorCode::Storage, "x"));
        assert_eq!(code(500, &serde_json::to_vec(&internal).unwrap()), ErrorCode::ServiceUnavailable);
        assert_eq!(code(422, &serde_json::to_vec(&wrong).unwrap()), ErrorCode::WrongKey);
    }
}
