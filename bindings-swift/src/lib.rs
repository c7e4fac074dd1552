//! # license-backup-swift
//!
//! The uniffi layer of the `LicenseBackup` Swift package: a thin adapter over the
//! `license-backup` core that adds no behaviour. It exposes the core through uniffi
//! proc-macros; the generated Swift (`Sources/LicenseBackupBindings`) is wrapped by a small
//! hand-written Swift overlay (`Sources/LicenseBackup`) that gives it Swift idiom: a delegate,
//! `async`/`await`, task cancellation and one `LicenseBackupError` type.
//!
//! Rules this crate keeps:
//! * The core does not depend on uniffi: every type the FFI carries is a mirror defined here,
//!   with conversions to and from the core's own types.
//! * Every exported function and method returns `Result<_, BindingError>` and runs inside
//!   [`guarded`], so neither a core error nor a panic can ever trap the Swift process.
//! * Callbacks go through the foreign trait [`RawEventSink`], whose method returns
//!   `Result<(), CallbackFailure>`; an error thrown in Swift becomes a `CallbackFailure`
//!   (through `From<uniffi::UnexpectedUniFFICallbackError>`), never a panic on the worker.
//!   Events cross in batches (one foreign call per batch the core hands over), each with its
//!   emission time; the Swift side asks a [`RawStopSignal`] between events whether to drop the
//!   rest, so a cancel from inside a delegate method stops delivery right there.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use license_backup as core_api;
use license_backup::interface::{ArgPath, Type};

uniffi::setup_scaffolding!();

mod entries;
mod generated;
mod logging;

pub use logging::{RawLogField, RawLogLevel, RawLogRecord, RawLogSink, set_raw_log_sink};

pub use generated::*;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[uniffi::export]
impl ErrorCode {
    /// The stable symbolic name, such as `"BACKUP_EXISTS"` (defined once, in the core).
    pub fn symbolic_name(&self) -> String {
        self.to_core().name().to_string()
    }

    /// A generic, user-presentable description of the code (from the core).
    pub fn summary(&self) -> String {
        self.to_core().description().to_string()
    }
}

/// The error every exported call returns: a stable code and the core's message. The Swift
/// overlay turns it into its `LicenseBackupError` struct.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum BindingError {
    /// A failure, with the core's code and message.
    #[error("{code:?}: {message}")]
    Failure {
        /// The stable code.
        code: ErrorCode,
        /// The message (never empty).
        message: String,
    },
}

impl BindingError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        BindingError::Failure { code, message: message.into() }
    }
}

impl From<core_api::Error> for BindingError {
    fn from(e: core_api::Error) -> Self {
        BindingError::new(e.code().into(), e.message())
    }
}

/// The result type of every exported call.
pub type FfiResult<T> = Result<T, BindingError>;

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs the body of an exported call; a panic becomes an `INTERNAL` error instead of crossing
/// the FFI boundary (where Swift would trap on it).
fn guarded<T>(body: impl FnOnce() -> FfiResult<T>) -> FfiResult<T> {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        Err(BindingError::new(
            ErrorCode::Internal,
            format!("the Swift binding panicked: {}", panic_message(payload.as_ref())),
        ))
    })
}

/// Parses a key ID given as argument (or field) `path` (the generated records call it too).
pub(crate) fn parse_key_id(text: &str, path: impl std::fmt::Display) -> FfiResult<core_api::KeyId> {
    Ok(core_api::KeyId::parse_arg(text, path)?)
}

/// A value the generated records check against its type's limits before it reaches the core.
pub(crate) trait Checked: Sized {
    /// The value, or `INVALID_ARGUMENT` naming `path` when it is out of `ty`'s limits.
    fn checked(self, ty: &Type, path: &ArgPath<'_>) -> FfiResult<Self>;
}

impl Checked for u32 {
    fn checked(self, ty: &Type, path: &ArgPath<'_>) -> FfiResult<Self> {
        Ok(ty.check_int(path, i128::from(self)).map(|()| self)?)
    }
}

impl Checked for i64 {
    fn checked(self, ty: &Type, path: &ArgPath<'_>) -> FfiResult<Self> {
        Ok(ty.check_int(path, i128::from(self)).map(|()| self)?)
    }
}

impl Checked for String {
    fn checked(self, ty: &Type, path: &ArgPath<'_>) -> FfiResult<Self> {
        ty.check_text(path, &self)?;
        Ok(self)
    }
}

impl Checked for Vec<u8> {
    fn checked(self, ty: &Type, path: &ArgPath<'_>) -> FfiResult<Self> {
        ty.check_bytes(path, self.len())?;
        Ok(self)
    }
}

impl<T: Checked> Checked for Option<T> {
    fn checked(self, ty: &Type, path: &ArgPath<'_>) -> FfiResult<Self> {
        self.map(|v| v.checked(ty.required(), path)).transpose()
    }
}

/// `value`, checked against `ty` (what the generated records call for each field).
pub(crate) fn check<T: Checked>(ty: &Type, path: &ArgPath<'_>, value: T) -> FfiResult<T> {
    value.checked(ty, path)
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// A property value (`IWMBackupRestoreProps`): a string (paths), a u32 (counts) or a bool.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum PropertyValue {
    /// A string value.
    String(String),
    /// An unsigned 32-bit value.
    U32(u32),
    /// A boolean value.
    Bool(bool),
}

impl From<PropertyValue> for core_api::PropertyValue {
    fn from(v: PropertyValue) -> Self {
        match v {
            PropertyValue::String(s) => core_api::PropertyValue::String(s),
            PropertyValue::U32(n) => core_api::PropertyValue::U32(n),
            PropertyValue::Bool(b) => core_api::PropertyValue::Bool(b),
        }
    }
}

impl From<core_api::PropertyValue> for PropertyValue {
    fn from(v: core_api::PropertyValue) -> Self {
        match v {
            core_api::PropertyValue::String(s) => PropertyValue::String(s),
            core_api::PropertyValue::U32(n) => PropertyValue::U32(n),
            core_api::PropertyValue::Bool(b) => PropertyValue::Bool(b),
        }
    }
}

/// A property that is set, with its name (`property_by_index`).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct NamedProperty {
    /// The property's name.
    pub name: String,
    /// Its value.
    pub value: PropertyValue,
}

/// Which operation an event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum OperationKind {
    /// A backup.
    Backup,
    /// A restore.
    Restore,
}

impl From<core_api::OperationKind> for OperationKind {
    fn from(k: core_api::OperationKind) -> Self {
        match k {
            core_api::OperationKind::Backup => OperationKind::Backup,
            core_api::OperationKind::Restore => OperationKind::Restore,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Events and the foreign callback
// ---------------------------------------------------------------------------------------------

/// The error a Swift event sink reports: whatever it threw, described.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum CallbackFailure {
    /// The sink threw.
    #[error("{message}")]
    Thrown {
        /// The thrown error, described.
        message: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for CallbackFailure {
    /// Any Swift error that is not a `CallbackFailure` arrives here (instead of panicking).
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        CallbackFailure::Thrown { message: e.reason }
    }
}

/// A status event and when the engine emitted it (`event_metadata` in `core/interface.json`).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct TimedEvent {
    /// The event.
    pub event: StatusEvent,
    /// When the engine emitted it: the platform's monotonic clock in nanoseconds
    /// (`CLOCK_MONOTONIC` on Linux, `CLOCK_UPTIME_RAW` on Apple platforms), the clock of
    /// Swift's `DispatchTime.now().uptimeNanoseconds` on both.
    pub emitted_ns: u64,
}

impl From<&core_api::Emitted> for TimedEvent {
    fn from(e: &core_api::Emitted) -> Self {
        TimedEvent { event: (&e.event).into(), emitted_ns: e.emitted_ns }
    }
}

/// Tells the Swift sink, between the events of a batch, whether to drop the rest of it: true
/// once the operation's cancellation has been requested (from anywhere, a delegate method
/// included). A delegate method that throws stops the batch on the Swift side by itself.
#[derive(uniffi::Object)]
pub struct RawStopSignal {
    /// The operation, once `start_*` has returned it.
    handle: OnceLock<core_api::OperationHandle>,
}

impl RawStopSignal {
    fn unbound() -> Arc<Self> {
        Arc::new(RawStopSignal { handle: OnceLock::new() })
    }

    fn bind(&self, handle: &core_api::OperationHandle) {
        // Bound once, right after the start call that created the handle.
        let _ = self.handle.set(handle.clone());
    }

    fn is_bound(&self) -> bool {
        self.handle.get().is_some()
    }
}

#[uniffi::export]
impl RawStopSignal {
    /// Whether the rest of the batch being delivered must be dropped (cancellation requested).
    pub fn is_set(&self) -> FfiResult<bool> {
        guarded(|| Ok(self.handle.get().is_some_and(core_api::OperationHandle::is_cancel_requested)))
    }
}

/// Receives the events of one operation, on the operation's delivery thread, in order. The
/// Swift overlay implements it and forwards each event to the restorer's delegate. Throwing
/// stops the operation, which ends with `CALLBACK_FAILED` (the END event is still delivered).
#[uniffi::export(foreign)]
pub trait RawEventSink: Send + Sync {
    /// Called with one or more events, in order (many per call when they queued up meanwhile,
    /// so the FFI crossing is paid once per batch). The sink delivers them in order, calls
    /// `stop.is_set()` after each event but the last and drops the rest of the batch when it
    /// returns true, and stops at the first event its delegate throws on.
    fn on_events(&self, events: Vec<TimedEvent>, stop: Arc<RawStopSignal>) -> Result<(), CallbackFailure>;

    /// The same for a batch of events that all have a packed form (every event but END): one
    /// byte string holding them one after the other, each its kind's index in the interface's
    /// event list (a byte), its metadata and its fields (generated `pack_event`). Delivering it
    /// costs the Swift side a few loads per field instead of uniffi's generic reader.
    fn on_packed_events(&self, packed: Vec<u8>, stop: Arc<RawStopSignal>) -> Result<(), CallbackFailure>;
}

/// A value the packed event form carries (see [`RawEventSink::on_packed_events`]):
/// little-endian integers, a string as its u32 byte length and its UTF-8 bytes, an optional as
/// a presence byte and the value. The generated `pack_event` writes each event's fields with it;
/// the generated Swift `BackupRestoreEvent.unpack` reads them back.
pub(crate) trait Pack {
    /// Appends the value to `out`.
    fn pack(&self, out: &mut Vec<u8>);
}

impl Pack for u64 {
    fn pack(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl Pack for u32 {
    fn pack(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl Pack for i64 {
    fn pack(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl Pack for bool {
    fn pack(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl Pack for str {
    fn pack(&self, out: &mut Vec<u8>) {
        // Texts the core emits are far below 4 GiB (its limits are a few KiB).
        (self.len() as u32).pack(out);
        out.extend_from_slice(self.as_bytes());
    }
}

impl Pack for String {
    fn pack(&self, out: &mut Vec<u8>) {
        self.as_str().pack(out);
    }
}

impl Pack for core_api::KeyId {
    fn pack(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let at = out.len();
        0u32.pack(out);
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{self}");
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
}

impl Pack for core_api::OperationKind {
    fn pack(&self, out: &mut Vec<u8>) {
        out.push(match self {
            core_api::OperationKind::Backup => 0,
            core_api::OperationKind::Restore => 1,
        });
    }
}

impl Pack for core_api::ErrorCode {
    fn pack(&self, out: &mut Vec<u8>) {
        self.number().pack(out);
    }
}

impl<T: Pack> Pack for Option<T> {
    fn pack(&self, out: &mut Vec<u8>) {
        match self {
            Some(value) => {
                out.push(1);
                value.pack(out);
            }
            None => out.push(0),
        }
    }
}

/// Reads the packed form back (the tests' mirror of the Swift decoder); `None` past the end.
#[cfg(test)]
pub(crate) struct PackedReader<'a>(&'a [u8]);

#[cfg(test)]
impl PackedReader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    #[allow(dead_code)]
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_le_bytes)
    }
    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        let (text, rest) = (self.0.get(..len)?, &self.0[len..]);
        self.0 = rest;
        String::from_utf8(text.to_vec()).ok()
    }
    fn code(&mut self) -> Option<ErrorCode> {
        let n = self.u32()?;
        ErrorCode::ALL.iter().copied().find(|c| *c as u32 == n)
    }
    fn operation(&mut self) -> Option<OperationKind> {
        match self.u8()? {
            0 => Some(OperationKind::Backup),
            1 => Some(OperationKind::Restore),
            _ => None,
        }
    }
}

/// Adapts a foreign sink to the core's callback trait.
struct SinkCallback {
    sink: Arc<dyn RawEventSink>,
    stop: Arc<RawStopSignal>,
}

impl SinkCallback {
    fn new(sink: Arc<dyn RawEventSink>) -> Self {
        SinkCallback { sink, stop: RawStopSignal::unbound() }
    }

    /// One foreign call with `batch`: packed when every event of it packs.
    fn deliver(&self, batch: &[core_api::Emitted]) -> Result<(), core_api::CallbackError> {
        let mut packed = Vec::with_capacity(batch.len() * 48);
        let result = if batch.iter().all(|e| pack_event(e, &mut packed)) {
            self.sink.on_packed_events(packed, Arc::clone(&self.stop))
        } else {
            self.sink.on_events(batch.iter().map(TimedEvent::from).collect(), Arc::clone(&self.stop))
        };
        result.map_err(|CallbackFailure::Thrown { message }| core_api::CallbackError::new(message))
    }
}

impl core_api::StatusCallback for SinkCallback {
    fn on_status(&self, event: &core_api::StatusEvent) -> Result<(), core_api::CallbackError> {
        // The core delivers through `on_status_batch`; this is only its per-event form.
        self.deliver(&[core_api::Emitted { event: event.clone(), emitted_ns: core_api::monotonic_ns() }])
    }

    fn on_status_batch(
        &self,
        batch: &[core_api::Emitted],
        stop: &dyn Fn() -> bool,
    ) -> Result<(), core_api::CallbackError> {
        if batch.len() <= 1 || self.stop.is_bound() {
            return self.deliver(batch);
        }
        // Events delivered before `start_*` has bound the handle to the stop signal (a race at
        // the very start of an operation) go one per call, with `stop` checked here.
        for emitted in batch {
            self.deliver(std::slice::from_ref(emitted))?;
            if stop() {
                break;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Key protectors
// ---------------------------------------------------------------------------------------------

/// What a host protector's call threw (the Swift overlay keeps the error itself and attaches it
/// to the `PROTECTOR_FAILED` error).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ProtectorFailure {
    /// The protector threw.
    #[error("{message}")]
    Thrown {
        /// A description of what it threw.
        message: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for ProtectorFailure {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        ProtectorFailure::Thrown { message: e.reason }
    }
}

/// A host protector: the Swift overlay implements it over the application's `KeyProtector`
/// (for example one built on the Keychain). Called when a store or a service is opened (on the
/// calling thread) and when a restore individualizes (on the operation's thread).
#[uniffi::export(foreign)]
pub trait RawKeyProtector: Send + Sync {
    /// Wraps the 32-byte seed.
    fn wrap(&self, seed: Vec<u8>) -> Result<Vec<u8>, ProtectorFailure>;
    /// The seed, or `None` when `wrapped` was not wrapped by this protector.
    fn unwrap(&self, wrapped: Vec<u8>) -> Result<Option<Vec<u8>>, ProtectorFailure>;
}

/// Which protector holds a file's seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ProtectorKind {
    /// The seed in clear in the file.
    Unprotected,
    /// The platform keystore.
    Keyring,
    /// The application's `KeyProtector`.
    Host,
}

struct HostProtector(Arc<dyn RawKeyProtector>);

impl core_api::KeyProtector for HostProtector {
    fn label(&self) -> String {
        "host (Swift)".into()
    }

    fn wrap(&self, secret: &[u8], _file: &core_api::ProtectedFile) -> core_api::Result<Vec<u8>> {
        self.0.wrap(secret.to_vec()).map_err(|ProtectorFailure::Thrown { message }| {
            core_api::Error::new(
                core_api::ErrorCode::ProtectorFailed,
                format!("the host protector's wrap threw: {message}"),
            )
        })
    }

    fn unwrap(&self, wrapped: &[u8], _file: &core_api::ProtectedFile) -> core_api::Result<zeroize::Zeroizing<Vec<u8>>> {
        match self.0.unwrap(wrapped.to_vec()) {
            Ok(Some(seed)) => Ok(zeroize::Zeroizing::new(seed)),
            Ok(None) => Err(core_api::Error::new(
                core_api::ErrorCode::ProtectorMismatch,
                "the host protector cannot unwrap this file's secret",
            )),
            Err(ProtectorFailure::Thrown { message }) => Err(core_api::Error::new(
                core_api::ErrorCode::ProtectorFailed,
                format!("the host protector's unwrap threw: {message}"),
            )),
        }
    }
}

fn protector(
    kind: ProtectorKind,
    service: Option<String>,
    host: Option<Arc<dyn RawKeyProtector>>,
) -> FfiResult<core_api::Protector> {
    match (kind, host) {
        (ProtectorKind::Unprotected, None) => Ok(core_api::Protector::unprotected()),
        (ProtectorKind::Keyring, None) => Ok(core_api::Protector::new(Arc::new(core_api::KeyringProtector::new(
            service.unwrap_or_else(|| core_api::KeyringProtector::DEFAULT_SERVICE.into()),
        )))),
        (ProtectorKind::Host, Some(host)) => Ok(core_api::Protector::new(Arc::new(HostProtector(host)))),
        _ => {
            Err(core_api::Error::new(core_api::ErrorCode::InvalidArgument, "a host protector needs a KeyProtector")
                .into())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------------

/// The device's license store (`LicenseStore` in Swift wraps it).
#[derive(uniffi::Object)]
pub struct RawLicenseStore {
    inner: Arc<core_api::LicenseStore>,
}

#[uniffi::export]
impl RawLicenseStore {
    /// Opens (or creates) the store at `path`, its seed held by the protector `kind` names.
    #[uniffi::constructor]
    pub fn open(
        path: String,
        kind: ProtectorKind,
        service: Option<String>,
        host: Option<Arc<dyn RawKeyProtector>>,
    ) -> FfiResult<Arc<Self>> {
        guarded(|| {
            let options = core_api::StoreOptions::protected(protector(kind, service, host)?);
            Ok(Arc::new(RawLicenseStore { inner: Arc::new(core_api::LicenseStore::open_with(path, options)?) }))
        })
    }

    /// The label of the protector the store was opened with.
    pub fn protector_label(&self) -> String {
        self.inner.protector_label()
    }
}

/// The embedded License Management Service (`EmbeddedService` in Swift wraps it).
#[derive(uniffi::Object)]
pub struct RawEmbeddedService {
    inner: Arc<core_api::EmbeddedService>,
}

#[uniffi::export]
impl RawEmbeddedService {
    /// Opens (or creates) the ledger at `path`; `max_devices` and `refusal_url` default to the
    /// core's policy.
    #[uniffi::constructor(default(max_devices = None, refusal_url = None))]
    pub fn open(
        path: String,
        max_devices: Option<u32>,
        refusal_url: Option<String>,
        kind: ProtectorKind,
        service: Option<String>,
        host: Option<Arc<dyn RawKeyProtector>>,
    ) -> FfiResult<Arc<Self>> {
        guarded(|| {
            let policy = core_api::ServicePolicy::with_overrides(max_devices, refusal_url);
            let options = core_api::ServiceOptions::protected(policy, protector(kind, service, host)?);
            let inner = core_api::EmbeddedService::open_with(path, options)?;
            Ok(Arc::new(RawEmbeddedService { inner: Arc::new(inner) }))
        })
    }
}

/// A License Management Service over HTTPS (`RemoteService` in Swift wraps it).
#[derive(uniffi::Object)]
pub struct RawRemoteService {
    inner: Arc<core_api::RemoteService>,
}

#[uniffi::export]
impl RawRemoteService {
    /// A client of the service at `url`; `timeout` is the connect, read and write timeout in
    /// seconds. Nothing is sent until a call needs the service.
    #[uniffi::constructor]
    pub fn open(
        url: String,
        token: Option<String>,
        ca_file: Option<String>,
        cert_pins: Vec<String>,
        service_keys: Vec<String>,
        timeout: Option<f64>,
        retries: Option<u32>,
    ) -> FfiResult<Arc<Self>> {
        guarded(|| {
            let timeout = match timeout {
                None => None,
                Some(t) if t.is_finite() && t > 0.0 && t <= 3600.0 => Some(std::time::Duration::from_secs_f64(t)),
                Some(t) => {
                    return Err(BindingError::new(
                        ErrorCode::InvalidArgument,
                        format!("timeout {t} s: more than 0 and at most an hour"),
                    ));
                }
            };
            let options = core_api::RemoteOptions {
                token,
                ca_file: ca_file.map(Into::into),
                cert_pins,
                service_keys,
                timeout,
                retries,
            };
            Ok(Arc::new(RawRemoteService { inner: Arc::new(core_api::RemoteService::new(&url, options)?) }))
        })
    }

    /// The service's URL.
    pub fn url(&self) -> String {
        self.inner.url().to_string()
    }
}

/// A backup restorer over a store and a service (`BackupRestorer` in Swift wraps it).
#[derive(uniffi::Object)]
pub struct RawBackupRestorer {
    inner: core_api::BackupRestorer,
}

#[uniffi::export]
impl RawBackupRestorer {
    /// `WMCreateBackupRestorer`.
    #[uniffi::constructor]
    pub fn new(store: Arc<RawLicenseStore>, service: Arc<RawEmbeddedService>) -> FfiResult<Arc<Self>> {
        guarded(|| {
            let service: Arc<dyn core_api::LicenseService> = service.inner.clone();
            Ok(Arc::new(RawBackupRestorer {
                inner: core_api::create_backup_restorer(Arc::clone(&store.inner), service),
            }))
        })
    }

    /// A restorer authorizing restores with a remote service.
    #[uniffi::constructor]
    pub fn with_remote(store: Arc<RawLicenseStore>, service: Arc<RawRemoteService>) -> FfiResult<Arc<Self>> {
        guarded(|| {
            let service: Arc<dyn core_api::LicenseService> = service.inner.clone();
            Ok(Arc::new(RawBackupRestorer {
                inner: core_api::create_backup_restorer(Arc::clone(&store.inner), service),
            }))
        })
    }

    /// Sets a property by name.
    pub fn set_property(&self, name: String, value: PropertyValue) -> FfiResult<()> {
        guarded(|| Ok(self.inner.set_property(&name, value.into())?))
    }

    /// A property's value by name; `nil` if it is known but not set.
    pub fn get_property(&self, name: String) -> FfiResult<Option<PropertyValue>> {
        guarded(|| Ok(self.inner.get_property(&name)?.map(Into::into)))
    }

    /// The `index`-th property set, with its name.
    pub fn property_by_index(&self, index: u32) -> FfiResult<NamedProperty> {
        guarded(|| {
            let (name, value) = self.inner.property_by_index(index as usize)?;
            Ok(NamedProperty { name, value: value.into() })
        })
    }

    /// How many properties are set.
    pub fn property_count(&self) -> FfiResult<u32> {
        guarded(|| {
            u32::try_from(self.inner.property_count())
                .map_err(|_| BindingError::new(ErrorCode::Internal, "property count overflows u32"))
        })
    }

    /// Starts a backup; fails at once with `PATH_NOT_SET` or `BUSY`, reports everything else
    /// to `sink`, ending with exactly one END.
    pub fn start_backup(&self, overwrite: bool, sink: Arc<dyn RawEventSink>) -> FfiResult<Arc<RawOperation>> {
        guarded(|| {
            let callback = SinkCallback::new(sink);
            let stop = Arc::clone(&callback.stop);
            let handle = self.inner.backup_licenses(core_api::BackupFlags { overwrite }, Arc::new(callback))?;
            stop.bind(&handle);
            Ok(Arc::new(RawOperation { handle }))
        })
    }

    /// Starts a restore; fails at once with `PATH_NOT_SET` or `BUSY`.
    pub fn start_restore(
        &self,
        individualize: bool,
        replace_existing: bool,
        sink: Arc<dyn RawEventSink>,
    ) -> FfiResult<Arc<RawOperation>> {
        guarded(|| {
            let flags = core_api::RestoreFlags { individualize, replace_existing };
            let callback = SinkCallback::new(sink);
            let stop = Arc::clone(&callback.stop);
            let handle = self.inner.restore_licenses(flags, Arc::new(callback))?;
            stop.bind(&handle);
            Ok(Arc::new(RawOperation { handle }))
        })
    }

    /// What the restore quota allows for the archive in `RestorePath` onto this device (onto a
    /// new identity of it with `individualize`).
    #[uniffi::method(default(individualize = false))]
    pub fn restore_quota(&self, individualize: bool) -> FfiResult<Quota> {
        let flags = core_api::RestoreFlags { individualize, replace_existing: false };
        guarded(|| Ok(self.inner.restore_quota_with(flags)?.into()))
    }
}

/// A started backup or restore.
#[derive(uniffi::Object)]
pub struct RawOperation {
    handle: core_api::OperationHandle,
}

#[uniffi::export]
impl RawOperation {
    /// Waits, without blocking the caller's thread, until the operation has ended and its END
    /// event has been delivered; returns its summary or its error.
    pub async fn wait(&self) -> FfiResult<Summary> {
        let handle = self.handle.clone();
        let done = Completion::default();
        let signal = done.clone();
        // The core's wait blocks; a short-lived waiter thread turns it into a future so that no
        // Swift executor thread is ever blocked.
        let spawned = std::thread::Builder::new().name("license-wait".into()).spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(|| handle.wait()))
                .map_err(|p| BindingError::new(ErrorCode::Internal, panic_message(p.as_ref())))
                .and_then(|r| r.map(Summary::from).map_err(BindingError::from));
            signal.complete(result);
        });
        if let Err(e) = spawned {
            return Err(BindingError::new(ErrorCode::Internal, format!("cannot start a waiter thread: {e}")));
        }
        done.await
    }

    /// Asks the operation to stop; it ends soon after with `CANCELLED` (unless already over).
    pub fn cancel(&self) -> FfiResult<()> {
        guarded(|| {
            self.handle.cancel();
            Ok(())
        })
    }

    /// Whether the operation has ended and its END event has been delivered.
    pub fn is_finished(&self) -> FfiResult<bool> {
        guarded(|| Ok(self.handle.is_finished()))
    }

    /// Which operation this is.
    pub fn kind(&self) -> FfiResult<OperationKind> {
        guarded(|| Ok(self.handle.kind().into()))
    }
}

/// A one-shot completion: a future that resolves once [`Completion::complete`] is called.
#[derive(Clone, Default)]
struct Completion {
    state: Arc<Mutex<CompletionState>>,
}

/// The result, once there is one, and the waker of the task polling for it.
#[derive(Default)]
struct CompletionState {
    result: Option<FfiResult<Summary>>,
    waker: Option<Waker>,
}

impl Completion {
    fn complete(&self, result: FfiResult<Summary>) {
        let waker = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.result = Some(result);
            state.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Future for Completion {
    type Output = FfiResult<Summary>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.result.take() {
            Some(result) => Poll::Ready(result),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_code_is_mirrored() {
        assert_eq!(ErrorCode::ALL.len(), core_api::ErrorCode::ALL.len());
        for &code in core_api::ErrorCode::ALL {
            let mirrored = ErrorCode::from(code);
            assert_eq!(mirrored as u32, code.number(), "{code:?}");
            assert_eq!(mirrored.symbolic_name(), code.name());
            assert_eq!(mirrored.summary(), code.description());
            assert_eq!(format!("{mirrored:?}"), code.variant_name());
        }
    }

    #[test]
    fn errors_keep_code_and_message() {
        let e: BindingError = core_api::Error::new(core_api::ErrorCode::BackupExists, "there").into();
        assert_eq!(e, BindingError::new(ErrorCode::BackupExists, "there"));
        let bad = parse_key_id("nope", "keyId").unwrap_err();
        assert!(matches!(bad, BindingError::Failure { code: ErrorCode::InvalidArgument, .. }));
    }

    #[test]
    fn panics_become_internal_errors() {
        let r: FfiResult<()> = guarded(|| panic!("boom"));
        match r {
            Err(BindingError::Failure { code: ErrorCode::Internal, message }) => assert!(message.contains("boom")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn every_event_kind_converts() {
        for &kind in core_api::EventKind::ALL {
            let mirrored = StatusEvent::from(&core_api::StatusEvent::example(kind));
            // The variant is the event's name in UpperCamelCase (`restricted_license`: RestrictedLicense).
            let variant: String = kind.name().split('_').map(|w| w[..1].to_uppercase() + &w[1..]).collect();
            let debug = format!("{mirrored:?}");
            assert!(debug.starts_with(&variant), "{debug} is not a {variant}");
        }
    }

    /// A sink that keeps the core's batch contract, as the Swift overlay does: records each
    /// foreign call, and can cancel the operation at the n-th PROGRESS event.
    #[derive(Default)]
    struct RecordingSink {
        calls: Mutex<Vec<Vec<TimedEvent>>>,
        delivered: Mutex<Vec<TimedEvent>>,
        cancel_at_progress: Option<(u64, std::sync::Weak<RawBackupRestorer>)>,
    }

    impl RawEventSink for RecordingSink {
        fn on_packed_events(&self, packed: Vec<u8>, stop: Arc<RawStopSignal>) -> Result<(), CallbackFailure> {
            let mut reader = PackedReader(&packed);
            let mut events = Vec::new();
            while !reader.0.is_empty() {
                events.push(unpack_event(&mut reader).expect("a packed event"));
            }
            self.on_events(events, stop)
        }

        fn on_events(&self, events: Vec<TimedEvent>, stop: Arc<RawStopSignal>) -> Result<(), CallbackFailure> {
            self.calls.lock().unwrap().push(events.clone());
            let last = events.len() - 1;
            for (i, event) in events.into_iter().enumerate() {
                let progress_done = match event.event {
                    StatusEvent::Progress { done, .. } => Some(done),
                    _ => None,
                };
                self.delivered.lock().unwrap().push(event);
                if let (Some(done), Some((at, restorer))) = (progress_done, &self.cancel_at_progress) {
                    if done == *at {
                        restorer.upgrade().unwrap().cancel_license_backup().unwrap();
                    }
                }
                if i < last && stop.is_set().unwrap() {
                    break;
                }
            }
            Ok(())
        }
    }

    #[test]
    fn every_event_but_end_packs_and_reads_back() {
        let mut titled = core_api::StatusEvent::example(core_api::EventKind::RestrictedLicense);
        if let core_api::StatusEvent::RestrictedLicense { title, .. } = &mut titled {
            *title = Some("Caf\u{e9} \u{1F3B5}".into());
        }
        let mut events: Vec<core_api::StatusEvent> =
            core_api::EventKind::ALL.iter().map(|&k| core_api::StatusEvent::example(k)).collect();
        events.push(titled);
        let mut packed = Vec::new();
        let mut expected = Vec::new();
        for (i, event) in events.into_iter().enumerate() {
            let emitted = core_api::Emitted { event, emitted_ns: u64::MAX - i as u64 };
            let before = packed.len();
            if pack_event(&emitted, &mut packed) {
                expected.push(TimedEvent::from(&emitted));
            } else {
                assert!(matches!(emitted.event, core_api::StatusEvent::End { .. }), "only END has no packed form");
                packed.truncate(before);
            }
        }
        assert_eq!(expected.len(), core_api::EventKind::ALL.len(), "every kind but END, and a titled one");
        let mut reader = PackedReader(&packed);
        let mut got = Vec::new();
        while !reader.0.is_empty() {
            got.push(unpack_event(&mut reader).expect("reads back"));
        }
        assert_eq!(got, expected);
        // A truncated batch does not read as an event.
        let mut short = PackedReader(&packed[..packed.len() - 1]);
        let mut last = None;
        while !short.0.is_empty() {
            last = unpack_event(&mut short);
            if last.is_none() {
                break;
            }
        }
        assert!(last.is_none());
    }

    fn emitted(done: u64) -> core_api::Emitted {
        core_api::Emitted {
            event: core_api::StatusEvent::Progress { operation: core_api::OperationKind::Backup, done, total: 3 },
            emitted_ns: 1000 + done,
        }
    }

    #[test]
    fn unbound_batches_go_one_event_per_call_and_honour_stop() {
        let sink = Arc::new(RecordingSink::default());
        let callback = SinkCallback::new(sink.clone());
        let calls = std::cell::Cell::new(0);
        let stop = || {
            calls.set(calls.get() + 1);
            calls.get() == 2
        };
        core_api::StatusCallback::on_status_batch(&callback, &[emitted(1), emitted(2), emitted(3)], &stop).unwrap();
        let got = sink.calls.lock().unwrap().clone();
        assert_eq!(got.len(), 2, "stop() after the 2nd event drops the 3rd");
        assert!(got.iter().all(|c| c.len() == 1));
        assert_eq!(got[1][0].emitted_ns, 1002);
        assert!(!callback.stop.is_set().unwrap(), "unbound: no cancel to report");
    }

    /// A backup of `n` licenses with ProgressInterval 1 in a fresh folder; returns the sink.
    fn backup_with_sink(n: usize, cancel_at_progress: Option<u64>) -> (Arc<RecordingSink>, FfiResult<Summary>) {
        let dir = std::env::temp_dir().join(format!(
            "license-backup-swift-test-{}-{}",
            std::process::id(),
            core_api::monotonic_ns()
        ));
        std::fs::create_dir_all(dir.join("backup")).unwrap();
        let path = |p: &str| dir.join(p).to_string_lossy().into_owned();
        let store = RawLicenseStore::open(path("store.db"), ProtectorKind::Unprotected, None, None).unwrap();
        let licenses = (1..=n)
            .map(|i| NewLicense {
                key_id: format!("5a000000-0000-0000-0000-{i:012x}"),
                content_key: vec![7; 16],
                rights: Rights {
                    play: true,
                    burn: true,
                    transfer: true,
                    backup_allowed: true,
                    expires_at: None,
                    plays_remaining: None,
                },
                issuer: "https://issuer.example".into(),
                issued_at: 1_700_000_000,
            })
            .collect();
        store.add_licenses(licenses, false).unwrap();
        let service =
            RawEmbeddedService::open(path("service.db"), None, None, ProtectorKind::Unprotected, None, None).unwrap();
        let restorer = RawBackupRestorer::new(store, service).unwrap();
        restorer.set_property("BackupPath".into(), PropertyValue::String(path("backup"))).unwrap();
        restorer.set_property("ProgressInterval".into(), PropertyValue::U32(1)).unwrap();
        let sink = Arc::new(RecordingSink {
            cancel_at_progress: cancel_at_progress.map(|at| (at, Arc::downgrade(&restorer))),
            ..RecordingSink::default()
        });
        let op = restorer.start_backup(false, sink.clone()).unwrap();
        let result = block_on(op.wait());
        let _ = std::fs::remove_dir_all(&dir);
        (sink, result)
    }

    /// Polls a future to completion on this thread (the waiter thread wakes it).
    fn block_on<F: Future>(future: F) -> F::Output {
        struct ThreadWaker(std::thread::Thread);
        impl std::task::Wake for ThreadWaker {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::park();
        }
    }

    #[test]
    fn events_carry_emission_times_in_order() {
        let (sink, result) = backup_with_sink(300, None);
        assert_eq!(result.unwrap().licenses, 300);
        let delivered = sink.delivered.lock().unwrap().clone();
        // BEGIN, PROGRESS 1..=300, END.
        assert_eq!(delivered.len(), 302);
        assert!(matches!(delivered.first().unwrap().event, StatusEvent::Begin { .. }));
        assert!(matches!(delivered.last().unwrap().event, StatusEvent::End { error_code: None, .. }));
        assert!(delivered.windows(2).all(|w| w[0].emitted_ns <= w[1].emitted_ns), "non-decreasing");
        assert!(delivered.iter().all(|e| e.emitted_ns > 0 && e.emitted_ns <= core_api::monotonic_ns()));
        let calls = sink.calls.lock().unwrap();
        assert_eq!(calls.iter().map(Vec::len).sum::<usize>(), 302, "each event crosses exactly once");
    }

    #[test]
    fn a_cancel_inside_a_batch_drops_the_rest_of_it() {
        let (sink, result) = backup_with_sink(300, Some(10));
        assert!(matches!(result, Err(BindingError::Failure { code: ErrorCode::Cancelled, .. })), "{result:?}");
        let delivered = sink.delivered.lock().unwrap().clone();
        let progress: Vec<u64> = delivered
            .iter()
            .filter_map(|e| match e.event {
                StatusEvent::Progress { done, .. } => Some(done),
                _ => None,
            })
            .collect();
        assert_eq!(progress, (1..=10).collect::<Vec<_>>(), "nothing after the cancelling event");
        assert!(matches!(
            delivered.last().unwrap().event,
            StatusEvent::End { error_code: Some(ErrorCode::Cancelled), .. }
        ));
    }
}
