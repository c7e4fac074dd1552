//! The native half of the `license-backup` npm package: a thin N-API adapter over the Rust core
//! (crate `license-backup`), built with napi-rs.
//!
//! It adds no behaviour. It converts values (key IDs stay lowercase UUID strings, 64-bit counts
//! become JavaScript numbers, content keys are copied into Node-owned `Buffer`s, never handed out
//! as external buffers, so it runs inside Electron), throws core errors as instances of the
//! package's `LicenseBackupError` class (registered once at load, see `errors`), and delivers
//! status events to JavaScript through a thread-safe function. The idiomatic API (`EventEmitter`, Promises, `AbortSignal`,
//! `LicenseBackupError`) is the JavaScript wrapper in `index.js`.
//!
//! Event delivery: the core's delivery thread hands over the events that queued up meanwhile as
//! one batch; the addon posts the whole batch to the JavaScript main thread in one
//! thread-safe-function call (columnar: [`NativeBatch`]) and waits until the JavaScript callback
//! has returned, so events arrive in order, a listener's failure stops the operation
//! (`CALLBACK_FAILED`) before it commits anything, and the END event is the last call the
//! operation makes, which is where the wrapper settles its Promise. The thread-safe function
//! belongs to the operation's callback and is dropped when the worker finishes, so a finished
//! operation never keeps Node alive.

#![deny(missing_docs)]

mod entries;
mod errors;
mod generated;
pub mod logging;

pub use errors::{NativeError, register_error_class};
pub use generated::*;

use errors::{Result, invalid, js_error};

use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::Duration;

use license_backup as lb;
use napi::bindgen_prelude::{Either3, ToNapiValue, TypeName, ValueType};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Status, sys};
use napi_derive::napi;

fn closed(what: &str) -> napi::Error {
    invalid(format!("the {what} is closed"))
}

/// Parses a key ID given as argument (or field) `path` (the generated records call it too).
pub(crate) fn key_id(text: &str, path: impl std::fmt::Display) -> Result<lb::KeyId> {
    lb::KeyId::parse_arg(text, path).map_err(js_error)
}

/// A count as a JavaScript number (exact up to 2^53, far beyond any license count or size).
pub(crate) fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// A property and its value, as `propertyByIndex` returns it.
#[napi(object)]
pub struct PropertyEntry {
    /// The property's name (`BackupPath`, ...).
    pub name: String,
    /// Its value.
    pub value: Either3<String, u32, bool>,
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// Which operation an event belongs to.
#[napi(string_enum = "lowercase")]
#[derive(Debug)]
pub enum Operation {
    /// `backupLicenses`.
    Backup,
    /// `restoreLicenses`.
    Restore,
}

impl From<lb::OperationKind> for Operation {
    fn from(k: lb::OperationKind) -> Self {
        match k {
            lb::OperationKind::Backup => Operation::Backup,
            lb::OperationKind::Restore => Operation::Restore,
        }
    }
}

/// What each event of a `NativeBatch` is (its entry in the batch's `kinds` column).
#[napi]
#[derive(Debug, PartialEq, Eq)]
pub enum BatchKind {
    /// A `progress` event of a backup: its `done` and `total` are the next pair of the
    /// `progress` column.
    BackupProgress = 0,
    /// A `progress` event of a restore: its `done` and `total` are the next pair of the
    /// `progress` column.
    RestoreProgress = 1,
    /// A `restrictedLicense` event: its key ID and title are the next of
    /// `keyIds` and `titles`.
    RestrictedLicense = 2,
    /// Any other event: the next of `others`.
    Other = 3,
}

/// The numeric columns of a batch, copied into one new JavaScript `ArrayBuffer` (Node-owned
/// memory, never an external buffer, so it works inside Electron's memory cage), laid out for
/// typed-array views in the platform's byte order: `emittedNs` (`events` × u64), then
/// `progress` (`progress` × 2 × f64: `done, total`), then `kinds` (`events` × u8, a
/// `BatchKind` each).
pub struct Columns(Vec<u8>);

impl TypeName for Columns {
    fn type_name() -> &'static str {
        "ArrayBuffer"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for Columns {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let bytes = val.0;
        let mut data = std::ptr::null_mut();
        let mut buffer = std::ptr::null_mut();
        // SAFETY: `env` is the environment napi-rs calls us with, on its thread; the out
        // pointers are valid locals.
        let status = unsafe { sys::napi_create_arraybuffer(env, bytes.len(), &mut data, &mut buffer) };
        if status != sys::Status::napi_ok {
            return Err(napi::Error::new(Status::from(status), "cannot create the event batch's ArrayBuffer"));
        }
        if !bytes.is_empty() {
            // SAFETY: on success `data` points at `bytes.len()` writable bytes of the new buffer,
            // which cannot overlap our Vec.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), data.cast::<u8>(), bytes.len()) };
        }
        Ok(buffer)
    }
}

/// The events of one delivery, in columnar form: one thread-safe-function call carries all of
/// them, and the JavaScript wrapper turns them back into event objects, in order. Event `i` is
/// of kind `kinds[i]` and was emitted at `emittedNs[i]` (see `columns`); its payload is the
/// next unread entry of the column its kind names.
#[napi(object, object_from_js = false)]
pub struct NativeBatch {
    /// How many events the batch holds.
    pub events: u32,
    /// How many of them are `progress` events.
    pub progress: u32,
    /// The columns `emittedNs`, `progress` and `kinds` in one `ArrayBuffer`, in this order and
    /// the platform's byte order: `events` × u64, `progress` × 2 × f64 (`done, total`),
    /// `events` × u8. `emittedNs` is when the core emitted each event, in nanoseconds on the
    /// monotonic clock of `process.hrtime.bigint()`; `done` and `total` are exact as doubles
    /// (counts are far below 2^53).
    #[napi(ts_type = "ArrayBuffer")]
    pub columns: Columns,
    /// The key ID of each `restrictedLicense` event, in order.
    pub key_ids: Vec<String>,
    /// The catalog title (or `null`) of each `restrictedLicense` event, in order.
    pub titles: Vec<Option<String>>,
    /// Every other event (`begin`, `connecting`, `disconnecting`, `refused`, `end`), in order.
    pub others: Vec<NativeEvent>,
}

impl NativeBatch {
    fn new(batch: &[lb::Emitted]) -> Self {
        let mut kinds = Vec::with_capacity(batch.len());
        let mut emitted_ns = Vec::with_capacity(batch.len() * 8);
        let mut progress = Vec::new();
        let mut key_ids = Vec::new();
        let mut titles = Vec::new();
        let mut others = Vec::new();
        for emitted in batch {
            emitted_ns.extend_from_slice(&emitted.emitted_ns.to_ne_bytes());
            let kind = match &emitted.event {
                lb::StatusEvent::Progress { operation, done, total } => {
                    progress.extend_from_slice(&(count(*done) as f64).to_ne_bytes());
                    progress.extend_from_slice(&(count(*total) as f64).to_ne_bytes());
                    match operation {
                        lb::OperationKind::Backup => BatchKind::BackupProgress,
                        lb::OperationKind::Restore => BatchKind::RestoreProgress,
                    }
                }
                lb::StatusEvent::RestrictedLicense { key_id, title } => {
                    key_ids.push(key_id.to_string());
                    titles.push(title.clone());
                    BatchKind::RestrictedLicense
                }
                event => {
                    others.push(NativeEvent::from(event));
                    BatchKind::Other
                }
            };
            kinds.push(kind as u8);
        }
        let progress_events = (progress.len() / 16) as u32;
        let mut columns = emitted_ns;
        columns.extend_from_slice(&progress);
        columns.extend_from_slice(&kinds);
        NativeBatch {
            events: batch.len() as u32,
            progress: progress_events,
            columns: Columns(columns),
            key_ids,
            titles,
            others,
        }
    }
}

/// The JavaScript event sink of one operation: called on the main thread with each batch of
/// events; it returns nothing to go on, or a message to stop the operation (`CALLBACK_FAILED`).
type EventSink = ThreadsafeFunction<NativeBatch, Option<String>, NativeBatch, Status, false>;

/// Delivers an operation's events to JavaScript, one thread-safe-function call per batch, and
/// waits until JavaScript has handled the batch: the core's commit points wait for the
/// callback to return, so a listener's failure or cancel is known before anything is committed.
struct JsCallback {
    sink: EventSink,
}

impl JsCallback {
    fn deliver(&self, batch: &[lb::Emitted]) -> std::result::Result<(), lb::CallbackError> {
        let (tx, rx) = sync_channel::<std::result::Result<(), String>>(1);
        let status = self.sink.call_with_return_value(
            NativeBatch::new(batch),
            ThreadsafeFunctionCallMode::Blocking,
            move |returned: napi::Result<Option<String>>, _env| {
                let verdict = match returned {
                    Ok(None) => Ok(()),
                    Ok(Some(message)) => Err(message),
                    Err(e) => Err(format!("the event callback threw: {}", e.reason)),
                };
                // The worker may have given up waiting (the environment is shutting down).
                let _ = tx.send(verdict);
                Ok(())
            },
        );
        if status != Status::Ok {
            return Err(lb::CallbackError::new(format!("cannot deliver the event to JavaScript ({status})")));
        }
        loop {
            match rx.recv_timeout(Duration::from_millis(250)) {
                Ok(verdict) => return verdict.map_err(lb::CallbackError::new),
                // The JavaScript environment went away (a worker thread was terminated, the
                // process is exiting): the call will never run; stop instead of hanging.
                Err(RecvTimeoutError::Timeout) if self.sink.aborted() => {
                    return Err(lb::CallbackError::new("the JavaScript environment was torn down"));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(lb::CallbackError::new("the JavaScript environment dropped the event"));
                }
            }
        }
    }
}

impl lb::StatusCallback for JsCallback {
    fn on_status(&self, event: &lb::StatusEvent) -> std::result::Result<(), lb::CallbackError> {
        self.deliver(&[lb::Emitted { event: event.clone(), emitted_ns: lb::monotonic_ns() }])
    }

    /// The whole batch in one call. The wrapper stops emitting the rest of it once the
    /// operation is stopping, which on this side can only be a cancel (checked through
    /// `NativeOperation::cancel_requested`) or the listener's own failure (returned here):
    /// the same events `stop()` would drop. The core drops whatever is queued after it.
    fn on_status_batch(
        &self,
        batch: &[lb::Emitted],
        _stop: &dyn Fn() -> bool,
    ) -> std::result::Result<(), lb::CallbackError> {
        self.deliver(batch)
    }
}

/// A running (or finished) operation, as the wrapper sees it while it emits a batch.
#[napi]
pub struct NativeOperation {
    handle: lb::OperationHandle,
}

#[napi]
impl NativeOperation {
    /// Whether cancellation of the operation was requested: the wrapper then drops the rest of
    /// the batch it is emitting (END still comes).
    #[napi(getter)]
    pub fn cancel_requested(&self) -> bool {
        self.handle.is_cancel_requested()
    }

    /// Cancels the operation and blocks up to `timeoutMs` until its work has stopped (files
    /// closed, temporary files removed), without waiting for its events: what the wrapper does
    /// when the process exits and the event loop will not run again. Returns whether it stopped.
    #[napi]
    pub fn cancel_and_wait(&self, timeout_ms: u32) -> bool {
        self.handle.cancel();
        self.handle.wait_stopped(std::time::Duration::from_millis(u64::from(timeout_ms)))
    }
}

// ---------------------------------------------------------------------------------------------
// Key protectors
// ---------------------------------------------------------------------------------------------

/// The JavaScript half of a host protector, made by the wrapper: `([method, hex]) => hex | null`,
/// where `method` is `"wrap"` or `"unwrap"` and the bytes cross as hex strings (no external
/// buffers). It throws what the application's protector threw.
type HostFunction<'scope> = napi::bindgen_prelude::Function<'scope, (String, String), Option<String>>;

/// The same function, callable from an operation's worker thread (an individualizing restore).
/// Weak: it never keeps Node alive.
type HostThreadsafe = ThreadsafeFunction<(String, String), Option<String>, (String, String), Status, false, true>;

/// A host protector: called directly on the main thread while a synchronous call that was given
/// the function runs (opening a store or a service), through the thread-safe function from any
/// other thread.
struct JsProtector {
    main: std::thread::ThreadId,
    /// The function's `napi_env` and `napi_value`, valid only while the open call that set
    /// them runs (on the main thread).
    scope: std::sync::Mutex<Option<(usize, usize)>>,
    threadsafe: HostThreadsafe,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

impl JsProtector {
    fn call(&self, method: &str, data: &[u8]) -> lb::Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        let failed = |reason: String| {
            lb::Error::new(lb::ErrorCode::ProtectorFailed, format!("the host protector's {method}() threw: {reason}"))
        };
        let arg = zeroize::Zeroizing::new(hex(data));
        let returned: Option<String> = if std::thread::current().id() == self.main {
            let scope = *self.scope.lock().unwrap_or_else(|p| p.into_inner());
            let Some((env, value)) = scope else {
                return Err(lb::Error::new(
                    lb::ErrorCode::ProtectorFailed,
                    "the host protector is called on the main thread only while the store or service is opened; \
                     reopen it",
                ));
            };
            // SAFETY: `env` and `value` are the environment and the function argument of the
            // native call that is running now on this (the main) thread: `scope` is set for the
            // duration of that call only.
            let f: HostFunction<'_> = unsafe {
                napi::bindgen_prelude::FromNapiValue::from_napi_value(env as sys::napi_env, value as sys::napi_value)
            }
            .map_err(|e| failed(e.reason.clone()))?;
            f.call((method.to_string(), arg.to_string())).map_err(|e| failed(e.reason.clone()))?
        } else {
            let (tx, rx) = sync_channel::<std::result::Result<Option<String>, String>>(1);
            let status = self.threadsafe.call_with_return_value(
                (method.to_string(), arg.to_string()),
                ThreadsafeFunctionCallMode::Blocking,
                move |returned: napi::Result<Option<String>>, _env| {
                    let _ = tx.send(returned.map_err(|e| e.reason.clone()));
                    Ok(())
                },
            );
            if status != Status::Ok {
                return Err(failed(format!("cannot reach JavaScript ({status})")));
            }
            loop {
                match rx.recv_timeout(Duration::from_millis(250)) {
                    Ok(r) => break r.map_err(failed)?,
                    Err(RecvTimeoutError::Timeout) if self.threadsafe.aborted() => {
                        return Err(failed("the JavaScript environment was torn down".into()));
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return Err(failed("the call was dropped".into())),
                }
            }
        };
        match returned {
            None => Ok(None),
            Some(text) => {
                let text = zeroize::Zeroizing::new(text);
                unhex(&text)
                    .map(|b| Some(zeroize::Zeroizing::new(b)))
                    .ok_or_else(|| failed("it returned no bytes".into()))
            }
        }
    }
}

impl lb::KeyProtector for JsProtector {
    fn label(&self) -> String {
        "host (JavaScript)".into()
    }

    fn wrap(&self, secret: &[u8], _file: &lb::ProtectedFile) -> lb::Result<Vec<u8>> {
        self.call("wrap", secret)?
            .map(|w| w.to_vec())
            .ok_or_else(|| lb::Error::new(lb::ErrorCode::ProtectorFailed, "the host protector's wrap() returned null"))
    }

    fn unwrap(&self, wrapped: &[u8], _file: &lb::ProtectedFile) -> lb::Result<zeroize::Zeroizing<Vec<u8>>> {
        self.call("unwrap", wrapped)?.ok_or_else(|| {
            lb::Error::new(lb::ErrorCode::ProtectorMismatch, "the host protector cannot unwrap this file's secret")
        })
    }
}

/// The protector an open names: `kind` is `"unprotected"`, `"keyring"` (with `service`) or
/// `"host"` (with the wrapper's `host` function). Runs `open` with it; a host protector is
/// reachable directly during `open`.
fn with_protector<T>(
    kind: &str,
    service: Option<String>,
    host: Option<HostFunction<'_>>,
    open: impl FnOnce(lb::Protector) -> lb::Result<T>,
) -> Result<T> {
    match (kind, host) {
        ("unprotected", None) => open(lb::Protector::unprotected()).map_err(js_error),
        ("keyring", None) => {
            let service = service.unwrap_or_else(|| lb::KeyringProtector::DEFAULT_SERVICE.into());
            open(lb::Protector::new(Arc::new(lb::KeyringProtector::new(service)))).map_err(js_error)
        }
        ("host", Some(f)) => {
            let threadsafe: HostThreadsafe = f
                .build_threadsafe_function::<(String, String)>()
                .weak::<true>()
                .build()
                .map_err(|e| invalid(e.reason.clone()))?;
            let raw = (napi::bindgen_prelude::JsValuesTuple::env(&f) as usize, napi::JsValue::raw(&f) as usize);
            let protector = Arc::new(JsProtector {
                main: std::thread::current().id(),
                scope: std::sync::Mutex::new(Some(raw)),
                threadsafe,
            });
            let result = open(lb::Protector::new(Arc::clone(&protector) as Arc<dyn lb::KeyProtector>));
            *protector.scope.lock().unwrap_or_else(|p| p.into_inner()) = None;
            result.map_err(js_error)
        }
        _ => Err(invalid(format!("unknown protector kind {kind}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Classes
// ---------------------------------------------------------------------------------------------

/// The licenses on this device (native half of `LicenseStore`).
#[napi]
pub struct LicenseStore {
    inner: Option<Arc<lb::LicenseStore>>,
}

impl LicenseStore {
    fn get(&self) -> Result<&Arc<lb::LicenseStore>> {
        self.inner.as_ref().ok_or_else(|| closed("license store"))
    }
}

#[napi]
impl LicenseStore {
    /// Opens the store at `path`, creating it with a fresh device identity if it does not
    /// exist, its seed held by the protector `kind` names (see `with_protector`).
    #[napi(
        factory,
        ts_args_type = "path: string, kind: 'unprotected' | 'keyring' | 'host', service?: string | undefined | null, host?: ((call: [method: string, hex: string]) => string | null) | undefined | null"
    )]
    pub fn open(path: String, kind: String, service: Option<String>, host: Option<HostFunction<'_>>) -> Result<Self> {
        let store = with_protector(&kind, service, host, |protector| {
            lb::LicenseStore::open_with(&path, lb::StoreOptions::protected(protector))
        })?;
        Ok(LicenseStore { inner: Some(Arc::new(store)) })
    }

    /// The label of the protector the store was opened with.
    #[napi]
    pub fn protector_label(&self) -> Result<String> {
        Ok(self.get()?.protector_label())
    }

    /// Whether `close` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.is_none()
    }

    /// Releases this handle on the store. A restorer created over it keeps its own reference
    /// until it is closed too. Closing twice does nothing.
    #[napi]
    pub fn close(&mut self) {
        self.inner = None;
    }
}

/// The in-process License Management Service (native half of `EmbeddedService`).
#[napi]
pub struct EmbeddedService {
    inner: Option<Arc<lb::EmbeddedService>>,
}

impl EmbeddedService {
    fn get(&self) -> Result<&Arc<lb::EmbeddedService>> {
        self.inner.as_ref().ok_or_else(|| closed("service"))
    }
}

#[napi]
impl EmbeddedService {
    /// Opens (or creates) the service ledger at `path`; absent policy values take the core's
    /// defaults (4 devices, the library's refusal URL).
    #[napi(
        factory,
        ts_args_type = "path: string, maxDevices: number | undefined | null, refusalUrl: string | undefined | null, kind: 'unprotected' | 'keyring' | 'host', service?: string | undefined | null, host?: ((call: [method: string, hex: string]) => string | null) | undefined | null"
    )]
    pub fn open(
        path: String,
        max_devices: Option<u32>,
        refusal_url: Option<String>,
        kind: String,
        service: Option<String>,
        host: Option<HostFunction<'_>>,
    ) -> Result<Self> {
        let policy = lb::ServicePolicy::with_overrides(max_devices, refusal_url);
        let service = with_protector(&kind, service, host, |protector| {
            lb::EmbeddedService::open_with(&path, lb::ServiceOptions::protected(policy, protector))
        })?;
        Ok(EmbeddedService { inner: Some(Arc::new(service)) })
    }

    /// Whether `close` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.is_none()
    }

    /// Releases this handle on the service ledger. Closing twice does nothing.
    #[napi]
    pub fn close(&mut self) {
        self.inner = None;
    }
}

/// A License Management Service over HTTPS (native half of `RemoteService`).
#[napi]
pub struct RemoteService {
    inner: Arc<lb::RemoteService>,
}

#[napi]
impl RemoteService {
    /// A client of the service at `url`; `timeout_ms` is the connect, read and write timeout
    /// in milliseconds. Nothing is sent until a call needs the service.
    #[napi(factory)]
    pub fn open(
        url: String,
        token: Option<String>,
        ca_file: Option<String>,
        cert_pins: Option<Vec<String>>,
        service_keys: Option<Vec<String>>,
        timeout_ms: Option<f64>,
        retries: Option<u32>,
    ) -> Result<Self> {
        let timeout = match timeout_ms {
            None => None,
            Some(ms) if ms.is_finite() && ms > 0.0 && ms <= 3_600_000.0 => {
                Some(std::time::Duration::from_secs_f64(ms / 1000.0))
            }
            Some(ms) => return Err(invalid(format!("timeout {ms} ms: more than 0 and at most an hour"))),
        };
        let options = lb::RemoteOptions {
            token,
            ca_file: ca_file.map(Into::into),
            cert_pins: cert_pins.unwrap_or_default(),
            service_keys: service_keys.unwrap_or_default(),
            timeout,
            retries,
        };
        let service = lb::RemoteService::new(&url, options).map_err(js_error)?;
        Ok(RemoteService { inner: Arc::new(service) })
    }

    /// The service's URL.
    #[napi(getter)]
    pub fn url(&self) -> String {
        self.inner.url().to_string()
    }
}

/// Backs up and restores the licenses of one store (native half of `BackupRestorer`).
#[napi]
pub struct BackupRestorer {
    inner: Option<Arc<lb::BackupRestorer>>,
}

impl BackupRestorer {
    fn get(&self) -> Result<&Arc<lb::BackupRestorer>> {
        self.inner.as_ref().ok_or_else(|| closed("backup restorer"))
    }
}

fn to_js_value(value: lb::PropertyValue) -> Either3<String, u32, bool> {
    match value {
        lb::PropertyValue::String(s) => Either3::A(s),
        lb::PropertyValue::U32(n) => Either3::B(n),
        lb::PropertyValue::Bool(b) => Either3::C(b),
    }
}

#[napi]
impl BackupRestorer {
    /// A restorer over `store`, authorizing restores with `service` (`WMCreateBackupRestorer`).
    #[napi(constructor)]
    pub fn new(store: &LicenseStore, service: &EmbeddedService) -> Result<Self> {
        let service: Arc<dyn lb::LicenseService> = Arc::clone(service.get()?) as Arc<dyn lb::LicenseService>;
        Ok(BackupRestorer { inner: Some(Arc::new(lb::create_backup_restorer(Arc::clone(store.get()?), service))) })
    }

    /// A restorer over `store`, authorizing restores with a remote `service`.
    #[napi(factory)]
    pub fn with_remote(store: &LicenseStore, service: &RemoteService) -> Result<Self> {
        let service: Arc<dyn lb::LicenseService> = Arc::clone(&service.inner) as Arc<dyn lb::LicenseService>;
        Ok(BackupRestorer { inner: Some(Arc::new(lb::create_backup_restorer(Arc::clone(store.get()?), service))) })
    }

    /// Sets a property. A string is a string value, a number a u32 (the core's `number_value`:
    /// an integer within the property's limits, else `INVALID_ARGUMENT`), a boolean a bool.
    #[napi]
    pub fn set_property(&self, name: String, value: Either3<String, f64, bool>) -> Result<()> {
        let value = match value {
            Either3::A(s) => lb::PropertyValue::String(s),
            Either3::B(n) => lb::number_value(&name, n).map_err(js_error)?,
            Either3::C(b) => lb::PropertyValue::Bool(b),
        };
        self.get()?.set_property(&name, value).map_err(js_error)
    }

    /// A property's value, or `null` when it is a known property that is not set.
    #[napi]
    pub fn get_property(&self, name: String) -> Result<Option<Either3<String, u32, bool>>> {
        Ok(self.get()?.get_property(&name).map_err(js_error)?.map(to_js_value))
    }

    /// The `index`-th property set (in the order they were first set), with its name.
    #[napi]
    pub fn property_by_index(&self, index: u32) -> Result<PropertyEntry> {
        let (name, value) = self.get()?.property_by_index(index as usize).map_err(js_error)?;
        Ok(PropertyEntry { name, value: to_js_value(value) })
    }

    /// How many properties are set.
    #[napi]
    pub fn property_count(&self) -> Result<u32> {
        Ok(u32::try_from(self.get()?.property_count()).unwrap_or(u32::MAX))
    }

    /// Starts a backup. `onEvents` is called on the main thread with every batch of events
    /// (`NativeBatch`), END last and alone; returning a string stops the operation with that
    /// message (`CALLBACK_FAILED`). Returns the running operation, whose `cancelRequested` the
    /// wrapper checks between the events of a batch. Fails at once with `PATH_NOT_SET` or
    /// `BUSY` (no event is then sent).
    #[napi(ts_args_type = "overwrite: boolean, onEvents: (batch: NativeBatch) => string | null | undefined")]
    pub fn backup_licenses(&self, overwrite: bool, on_events: EventSink) -> Result<NativeOperation> {
        let restorer = self.get()?;
        let callback = Arc::new(JsCallback { sink: on_events });
        let handle = restorer.backup_licenses(lb::BackupFlags { overwrite }, callback).map_err(js_error)?;
        Ok(NativeOperation { handle })
    }

    /// Starts a restore; events and errors as for `backupLicenses`.
    #[napi(
        ts_args_type = "individualize: boolean, replaceExisting: boolean, onEvents: (batch: NativeBatch) => string | null | undefined"
    )]
    pub fn restore_licenses(
        &self,
        individualize: bool,
        replace_existing: bool,
        on_events: EventSink,
    ) -> Result<NativeOperation> {
        let restorer = self.get()?;
        let callback = Arc::new(JsCallback { sink: on_events });
        let flags = lb::RestoreFlags { individualize, replace_existing };
        let handle = restorer.restore_licenses(flags, callback).map_err(js_error)?;
        Ok(NativeOperation { handle })
    }

    /// What the restore quota allows for the archive in `RestorePath` onto this device (onto a
    /// new identity of it with `individualize`).
    #[napi]
    pub fn restore_quota(&self, individualize: bool) -> Result<Quota> {
        let flags = lb::RestoreFlags { individualize, replace_existing: false };
        Ok(self.get()?.restore_quota_with(flags).map_err(js_error)?.into())
    }

    /// Whether `close` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.is_none()
    }

    /// Cancels any running operation (it still delivers its END) and releases this restorer's
    /// references to the store and the service. Closing twice does nothing.
    #[napi]
    pub fn close(&mut self) {
        if let Some(restorer) = self.inner.take() {
            restorer.cancel_license_backup();
            restorer.cancel_license_restore();
        }
    }
}
