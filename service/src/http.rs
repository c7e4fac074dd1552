//! The HTTP API (`docs/service-protocol.md`): routes, authentication, rate limits, and the
//! streaming of a restore request's key IDs from the body into the ledger.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http_body_util::BodyExt;
use license_backup::protocol::{
    self, ErrorAnswer, GrantAnswer, KeysAnswer, ProofJson, RequestDecoder, RequestItem, StateAnswer, hex,
};
use license_backup::{Error, ErrorCode, Quota, RestoreRequest, ServiceError};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::auth::{Account, TokenVerifier};
use crate::config::LimitsConfig;
use crate::ledger::{Chunk, KeyIdSender, Ledger, key_id_channel};
use crate::ratelimit::RateLimiter;

/// Key-ID bytes handed to the ledger at a time.
const CHUNK_BYTES: usize = 64 * 1024;
/// After answering an error early, the rest of the body is read and dropped for at most this
/// long (and this many bytes), so the client sees the answer instead of a reset connection.
const DRAIN_TIME: Duration = Duration::from_secs(5);
const DRAIN_BYTES: u64 = 64 * 1024 * 1024;

/// Everything the handlers share.
pub struct App {
    /// The quota logic and its storage.
    pub ledger: Arc<dyn Ledger>,
    /// Maps tokens to accounts.
    pub verifier: Arc<dyn TokenVerifier>,
    /// Limits and timeouts.
    pub limits: LimitsConfig,
    /// Requests per account.
    pub per_account: RateLimiter<Account>,
    /// Quota queries, authorizations and registrations per device.
    pub per_device: RateLimiter<[u8; 16]>,
    /// Set when shutdown began: readiness answers 503.
    pub draining: AtomicBool,
}

/// An error answer: the status, the stable code and message, and what the client needs to
/// act on it.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    answer: ErrorAnswer,
    retry_after: Option<Duration>,
}

impl Failure {
    fn new(error: &Error) -> Self {
        let status =
            StatusCode::from_u16(protocol::status_for(error.code())).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Failure { status, answer: ErrorAnswer::from_error(error), retry_after: None }
    }

    fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    fn code(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure::new(&Error::new(code, message))
    }

    fn limited(wait: Duration, what: &str) -> Self {
        let mut f =
            Failure::code(ErrorCode::RateLimited, format!("too many requests for this {what}; try again later"));
        f.retry_after = Some(wait);
        f
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        // What the ledger's storage says stays in the log, not in the answer.
        if matches!(e.code(), ErrorCode::Storage | ErrorCode::Internal) {
            tracing::error!(error = %e, "ledger failure");
            return Failure::code(ErrorCode::ServiceUnavailable, "the ledger failed; try again later");
        }
        Failure::new(&e)
    }
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Failed(e) => e.into(),
            ServiceError::Refused(r) => Failure {
                status: StatusCode::from_u16(protocol::status_for(r.code)).unwrap_or(StatusCode::FORBIDDEN),
                answer: ErrorAnswer::from_refusal(&r),
                retry_after: None,
            },
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.answer)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

type Answer = Result<Response, Failure>;

/// The router, with its middleware.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(protocol::HEALTH_PATH, get(health))
        .route(protocol::READY_PATH, get(ready))
        .route(protocol::KEYS_PATH, get(keys))
        .route("/v1/devices/{device_id}", put(register_device))
        .route(protocol::QUOTA_PATH, post(quota))
        .route("/v1/restores/{request_id}", put(authorize))
        .route("/v1/restores/{request_id}/confirm", post(confirm))
        .route("/v1/restores/{request_id}/release", post(release))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&app), deadline))
        .layer(middleware::from_fn(log))
        .with_state(app)
}

async fn not_found() -> Failure {
    Failure::code(ErrorCode::ProtocolViolation, "no such endpoint").status(StatusCode::NOT_FOUND)
}

async fn method_not_allowed() -> Failure {
    Failure::code(ErrorCode::ProtocolViolation, "method not allowed on this endpoint")
        .status(StatusCode::METHOD_NOT_ALLOWED)
}

/// One log line per request: method, path, status, time. Never a header (the token).
async fn log(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = response.status().as_u16();
    if path != protocol::HEALTH_PATH && path != protocol::READY_PATH {
        tracing::info!(%method, path = %path.chars().take(200).collect::<String>(), status, ms, "request");
    }
    response
}

/// A whole request, body included, must finish within the request timeout.
async fn deadline(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(app.limits.request_timeout(), next.run(request)).await {
        Ok(response) => response,
        Err(_) => Failure::code(ErrorCode::ServiceUnavailable, "the request took longer than the service allows")
            .status(StatusCode::REQUEST_TIMEOUT)
            .into_response(),
    }
}

async fn health() -> &'static str {
    "ok"
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    if app.draining.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response();
    }
    match app.ledger.ready().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
        }
    }
}

/// The caller's account, from its bearer token; rate-limited per account.
async fn caller(app: &App, headers: &HeaderMap) -> Result<Account, Failure> {
    let rejected = || Failure::code(ErrorCode::AuthenticationFailed, "a valid bearer token is required");
    let value = headers.get(header::AUTHORIZATION).ok_or_else(rejected)?.to_str().map_err(|_| rejected())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(rejected)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() || token.len() > 4096 {
        return Err(rejected());
    }
    let account = app.verifier.verify(token.trim()).await.ok_or_else(|| {
        tracing::info!("rejected a token");
        rejected()
    })?;
    app.per_account.check(&account).map_err(|wait| Failure::limited(wait, "account"))?;
    Ok(account)
}

fn json<T: serde::Serialize>(value: &T) -> Response {
    axum::Json(value).into_response()
}

async fn keys(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    caller(&app, &headers).await?;
    let keys = app.ledger.keys();
    if keys.is_empty() {
        // A ledger whose database has not been reached yet has no keys to publish.
        return Err(Error::new(ErrorCode::ServiceUnavailable, "the service's keys are not available yet").into());
    }
    Ok(json(&KeysAnswer { keys }))
}

fn content_type_is(headers: &HeaderMap, want: &str) -> Result<(), Failure> {
    let got = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let base = got.split(';').next().unwrap_or("").trim();
    if base.eq_ignore_ascii_case(want) {
        Ok(())
    } else {
        Err(Failure::code(ErrorCode::ProtocolViolation, format!("the body must be {want}, not {got:?}"))
            .status(StatusCode::UNSUPPORTED_MEDIA_TYPE))
    }
}

async fn register_device(
    State(app): State<Arc<App>>,
    Path(device_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let account =
        match caller(&app, &headers).await.and_then(|a| content_type_is(&headers, protocol::JSON_TYPE).map(|()| a)) {
            Ok(a) => a,
            Err(f) => {
                drain(body);
                return Err(f);
            }
        };
    let bytes = read_small(body, protocol::MAX_JSON_REQUEST_LEN, app.limits.body_idle_timeout()).await?;
    let device: [u8; 16] =
        protocol::unhex(&device_id, 16, "device ID").map_err(|e| Failure::new(&e))?.try_into().expect("16 bytes");
    app.per_device.check(&device).map_err(|wait| Failure::limited(wait, "device"))?;
    let body: ProofJson = serde_json::from_slice(&bytes)
        .map_err(|e| Failure::code(ErrorCode::ProtocolViolation, format!("malformed registration: {e}")))?;
    let registration = body.to_registration(&device).map_err(|e| Failure::new(&e))?;
    app.ledger.register_device(&account, registration).await?;
    tracing::info!(account = account.as_str(), device = %hex(&device), "device registered");
    Ok(json(&serde_json::json!({"device_id": hex(&device), "registered": true})))
}

/// Reads a small body whole (at most `max` bytes).
async fn read_small(body: Body, max: usize, idle: Duration) -> Result<Vec<u8>, Failure> {
    let mut body = body;
    let mut out = Vec::new();
    loop {
        match next_frame(&mut body, idle).await? {
            Some(data) => {
                if out.len() + data.len() > max {
                    return Err(Failure::code(ErrorCode::RequestTooLarge, format!("the body is over {max} bytes")));
                }
                out.extend_from_slice(&data);
            }
            None => return Ok(out),
        }
    }
}

/// The next data of a body, waiting at most `idle` for it; `None` at its end.
async fn next_frame(body: &mut Body, idle: Duration) -> Result<Option<Bytes>, Failure> {
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => {
                return Err(Failure::code(ErrorCode::ServiceUnavailable, "the request body stalled")
                    .status(StatusCode::REQUEST_TIMEOUT));
            }
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => {
                return Err(Failure::code(
                    ErrorCode::ProtocolViolation,
                    format!("the request body could not be read: {e}"),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            return Ok(Some(data));
        }
    }
}

/// Reads and drops what is left of a body, in the background, for a bounded time, so that an
/// early answer reaches the client.
fn drain(mut body: Body) {
    tokio::spawn(async move {
        let mut read = 0u64;
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            while let Some(Ok(frame)) = body.frame().await {
                read += frame.data_ref().map_or(0, |d| d.len() as u64);
                if read > DRAIN_BYTES {
                    break;
                }
            }
        })
        .await;
    });
}

/// A restore request being read: its preamble, the decoder, and the body's rest.
struct Incoming {
    request: RestoreRequest,
    decoder: RequestDecoder,
    body: Body,
    /// Key-ID bytes that arrived with the preamble.
    first: Vec<u8>,
}

/// Reads a restore request's body up to its preamble, checking the content type, the
/// announced length, the key-ID count limit, and the device's rate.
async fn open_request(app: &App, headers: &HeaderMap, mut body: Body) -> Result<Incoming, (Failure, Body)> {
    if let Err(f) = content_type_is(headers, protocol::RESTORE_REQUEST_TYPE) {
        return Err((f, body));
    }
    let declared: Option<u64> =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let max_len =
        protocol::request_body_len(protocol::REQUEST_HEAD_LEN + protocol::MAX_PREAMBLE_LEN, app.limits.max_licenses);
    if declared.is_some_and(|n| n > max_len) {
        let f = Failure::code(ErrorCode::RequestTooLarge, "the request body is larger than this service accepts");
        return Err((f, body));
    }
    let mut decoder = RequestDecoder::new(app.limits.max_licenses);
    let (mut preamble, mut first) = (None, Vec::new());
    while preamble.is_none() {
        let data = match next_frame(&mut body, app.limits.body_idle_timeout()).await {
            Ok(Some(d)) => d,
            Ok(None) => {
                let e = decoder.finish().expect_err("a body that ended before its preamble");
                return Err((Failure::new(&e), body));
            }
            Err(f) => return Err((f, body)),
        };
        let fed = decoder.feed(&data, &mut |item| {
            match item {
                RequestItem::Preamble(p) => preamble = Some(*p),
                RequestItem::KeyIds(k) => first.extend_from_slice(k),
            }
            Ok(())
        });
        if let Err(e) = fed {
            return Err((Failure::new(&e), body));
        }
    }
    let request = match preamble.expect("read above").to_request() {
        Ok(r) => r,
        Err(e) => return Err((Failure::new(&e), body)),
    };
    if declared.is_some_and(|n| Some(n) != decoder.expected_len()) {
        let f = Failure::code(ErrorCode::ProtocolViolation, "Content-Length does not match the announced key IDs");
        return Err((f, body));
    }
    if let Err(wait) = app.per_device.check(&request.device_id) {
        return Err((Failure::limited(wait, "device"), body));
    }
    Ok(Incoming { request, decoder, body, first })
}

/// The key IDs of a whole, well-formed request body, in an unnamed temporary file.
struct Spooled {
    file: tokio::fs::File,
    len: u64,
}

fn spool_failed(e: std::io::Error) -> Failure {
    tracing::error!(error = %e, "cannot spool a request's key IDs");
    Failure::code(ErrorCode::ServiceUnavailable, "the service cannot take the request now; try again later")
}

/// Reads the rest of the body into a temporary file (16 bytes a license, never in memory),
/// checking it to its trailer. The ledger is asked only once the request is complete and
/// well formed: a slow or broken sender never holds a ledger transaction open.
async fn spool(mut incoming: Incoming, idle: Duration) -> Result<Spooled, Failure> {
    let std_file = tempfile::tempfile().map_err(spool_failed)?;
    let mut file = tokio::fs::File::from_std(std_file);
    let mut pending = std::mem::take(&mut incoming.first);
    let mut len = 0u64;
    let outcome: Result<(), Failure> = async {
        loop {
            if pending.len() >= CHUNK_BYTES {
                file.write_all(&pending).await.map_err(spool_failed)?;
                len += pending.len() as u64;
                pending.clear();
            }
            match next_frame(&mut incoming.body, idle).await? {
                Some(data) => incoming
                    .decoder
                    .feed(&data, &mut |item| {
                        if let RequestItem::KeyIds(k) = item {
                            pending.extend_from_slice(k);
                        }
                        Ok(())
                    })
                    .map_err(|e| Failure::new(&e))?,
                None => {
                    incoming.decoder.finish().map_err(|e| Failure::new(&e))?;
                    file.write_all(&pending).await.map_err(spool_failed)?;
                    len += pending.len() as u64;
                    file.flush().await.map_err(spool_failed)?;
                    return Ok(());
                }
            }
        }
    }
    .await;
    drain(incoming.body);
    outcome.map(|()| Spooled { file, len })
}

/// Hands the spooled key IDs to the ledger in chunks, then the end mark.
async fn feed(mut spooled: Spooled, tx: KeyIdSender) {
    let failed = |e: std::io::Error| Chunk::Fail(Error::new(ErrorCode::Storage, format!("the spooled key IDs: {e}")));
    if let Err(e) = spooled.file.seek(std::io::SeekFrom::Start(0)).await {
        let _ = tx.send(failed(e)).await;
        return;
    }
    let mut left = spooled.len;
    while left > 0 {
        let mut chunk = vec![0u8; left.min(CHUNK_BYTES as u64) as usize];
        if let Err(e) = spooled.file.read_exact(&mut chunk).await {
            let _ = tx.send(failed(e)).await;
            return;
        }
        left -= chunk.len() as u64;
        if tx.send(Chunk::KeyIds(chunk)).await.is_err() {
            return; // The ledger stopped reading: it answers.
        }
    }
    let _ = tx.send(Chunk::End).await;
}

/// Authenticates the caller and reads a restore request up to its preamble; on failure the
/// rest of the body is drained so the client reads the answer.
async fn start(
    app: &App,
    headers: &HeaderMap,
    body: Body,
    request_id: Option<&str>,
) -> Result<(Account, Incoming), Failure> {
    let account = match caller(app, headers).await {
        Ok(a) => a,
        Err(f) => {
            drain(body);
            return Err(f);
        }
    };
    if request_id.is_some_and(|id| !protocol::is_request_id(id)) {
        drain(body);
        return Err(Failure::code(ErrorCode::ProtocolViolation, "the request ID must be a lowercase hyphenated UUID"));
    }
    let incoming = match open_request(app, headers, body).await {
        Ok(incoming) => incoming,
        Err((f, body)) => {
            drain(body);
            return Err(f);
        }
    };
    if request_id.is_some_and(|id| protocol::request_id_text(&incoming.request.request_id) != id) {
        drain(incoming.body);
        return Err(Failure::code(
            ErrorCode::ProtocolViolation,
            "the path and the preamble name different request IDs",
        ));
    }
    Ok((account, incoming))
}

async fn quota(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Answer {
    let (account, incoming) = start(&app, &headers, body, None).await?;
    let request = incoming.request.clone();
    let spooled = spool(incoming, app.limits.body_idle_timeout()).await?;
    let (tx, rx) = key_id_channel();
    let ((), answer) = tokio::join!(feed(spooled, tx), app.ledger.quota(&account, request, rx));
    let q: Quota = answer?;
    Ok(json(&protocol::QuotaAnswer::from(&q)))
}

async fn authorize(
    State(app): State<Arc<App>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let (account, incoming) = start(&app, &headers, body, Some(&request_id)).await?;
    let request = incoming.request.clone();
    let licenses = request.licenses;
    let device = hex(&request.device_id);
    let spooled = spool(incoming, app.limits.body_idle_timeout()).await?;
    let (tx, rx) = key_id_channel();
    let ((), answer) = tokio::join!(feed(spooled, tx), app.ledger.authorize(&account, request, rx));
    let grant = match answer {
        Ok(g) => g,
        Err(e) => {
            let code = match &e {
                ServiceError::Refused(r) => r.code,
                ServiceError::Failed(e) => e.code(),
            };
            tracing::info!(account = account.as_str(), request_id, device, licenses, code = code.name(), "not granted");
            return Err(e.into());
        }
    };
    tracing::info!(account = account.as_str(), request_id, device, licenses, "reserved");
    Ok(json(&GrantAnswer {
        request_id,
        state: "reserved".into(),
        licenses,
        enc: hex(&grant.wrapped_key.enc),
        wrapped_key: hex(&grant.wrapped_key.ciphertext),
    }))
}

/// `confirm` or `release` of the caller's reservation `request_id`.
async fn settle(app: &App, headers: HeaderMap, body: Body, request_id: &str, confirm: bool) -> Answer {
    let account = match caller(app, &headers).await {
        Ok(a) => a,
        Err(f) => {
            drain(body);
            return Err(f);
        }
    };
    let bytes = read_small(body, protocol::MAX_JSON_REQUEST_LEN, app.limits.body_idle_timeout()).await?;
    if !bytes.is_empty() {
        return Err(Failure::code(ErrorCode::ProtocolViolation, "a confirm or release has no body"));
    }
    let id = protocol::parse_request_id(request_id).map_err(|e| Failure::new(&e))?;
    let settled =
        if confirm { app.ledger.confirm(&account, id).await? } else { app.ledger.release(&account, id).await? };
    let answer = StateAnswer::new(&id, settled);
    let action = if confirm { "confirm" } else { "release" };
    tracing::info!(account = account.as_str(), request_id, action, state = answer.state.as_str(), "settled");
    Ok(json(&answer))
}

async fn confirm(
    State(app): State<Arc<App>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    settle(&app, headers, body, &request_id, true).await
}

async fn release(
    State(app): State<Arc<App>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    settle(&app, headers, body, &request_id, false).await
}
