//! Running operations: the status callback bridge and the `Operation` handle.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use license_backup::interface::Type;
use license_backup::{CallbackError, Emitted, ErrorCode, OperationHandle, Outcome, StatusCallback, StatusEvent};
use pyo3::exceptions::{PyRuntimeError, PyTimeoutError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::convert::ToPy;
use crate::generated;

/// How long `wait()` stays detached before it checks for signals (Ctrl-C).
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Threads of ours that may attach to the interpreter (workers delivering events, done
/// helpers) pass through this gate. At interpreter exit the facade closes it (`_close_gate`,
/// from an `atexit` hook, while the interpreter is still whole) and waits until no thread is
/// attached any more: no thread of ours then touches Python while it finalizes, where a thread
/// that takes the GIL is killed (and a Rust thread with it, unwinding through pyo3's guards).
struct Gate {
    state: Mutex<GateState>,
    idle: Condvar,
}

#[derive(Default)]
struct GateState {
    closed: bool,
    inside: usize,
}

static GATE: Gate = Gate { state: Mutex::new(GateState { closed: false, inside: 0 }), idle: Condvar::new() };

/// `GateState::closed`, readable without the lock: a batch of events being delivered stops at
/// the next event once the gate is closed, instead of running to its end.
static GATE_CLOSED: AtomicBool = AtomicBool::new(false);

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A seat inside the gate: while one is held, `_close_gate` waits (up to its timeout).
struct Inside;

impl Inside {
    /// A seat, unless the gate is closed.
    fn enter() -> Option<Inside> {
        let mut state = GATE.lock();
        if state.closed {
            return None;
        }
        state.inside += 1;
        Some(Inside)
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        let mut state = GATE.lock();
        state.inside -= 1;
        // Only `_close_gate` waits, and only once it has closed the gate (under this lock):
        // no wake-up (a futex system call) for every event before that.
        if state.inside == 0 && state.closed {
            GATE.idle.notify_all();
        }
    }
}

/// Runs `f` attached to the interpreter, unless it is exiting (the gate is closed) or
/// finalizing; `None` then.
pub(crate) fn attach<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    let _inside = Inside::enter()?;
    Python::try_attach(f)
}

std::thread_local! {
    /// The pin this delivery thread holds on its Python thread state (see [`attach_worker`]).
    static PINNED: Cell<Option<ffi::PyGILState_STATE>> = const { Cell::new(None) };
}

/// [`attach`] for an operation's delivery thread, which attaches once per batch of events:
/// the thread keeps its Python thread state from its first batch to its last (`last`),
/// instead of creating and destroying one for every batch (`PyGILState_Ensure` on a thread
/// without one), which cost more than the callbacks themselves. It holds the GIL only during
/// `f`, as [`attach`].
///
/// The pin is one extra `PyGILState_Ensure`, taken and given back while attached through the
/// gate, so between batches the thread is detached like any thread blocked in C code, and the
/// release that brings the count to zero (pyo3's, after the last event) deletes the thread
/// state. If the gate is closed while the thread state is pinned (exit before the END event),
/// the pin is forgotten and the thread state never touched again: the interpreter frees it
/// when it finalizes, as it does a daemon thread's.
pub(crate) fn attach_worker<R>(last: bool, f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    let Some(_inside) = Inside::enter() else {
        PINNED.with(|p| p.set(None));
        return None;
    };
    Python::try_attach(|py| {
        let result = f(py);
        // SAFETY: the thread is attached (its thread state current, holding the GIL), which is
        // what both calls require; they only move the thread state's `gilstate_counter`, and
        // pyo3's release at the end of `try_attach` detaches (or, unpinned, deletes) it.
        PINNED.with(|pin| match (pin.get(), last) {
            (None, false) => pin.set(Some(unsafe { ffi::PyGILState_Ensure() })),
            (Some(state), true) => {
                pin.set(None);
                unsafe { ffi::PyGILState_Release(state) };
            }
            _ => {}
        });
        result
    })
}

/// How long the exit hook waits for callbacks still running to return.
pub(crate) const EXIT_GRACE_SECONDS: f64 = 10.0;

/// Closes the gate and waits (detached) up to `timeout` seconds until no thread of ours is
/// attached; returns whether none is. Registered with `atexit` when the module is imported
/// (and called earlier by the facade's own exit hook, after it cancelled what runs).
#[pyfunction]
#[pyo3(signature = (timeout = EXIT_GRACE_SECONDS))]
pub(crate) fn _close_gate(py: Python<'_>, timeout: f64) -> bool {
    let timeout = Duration::from_secs_f64(if timeout.is_finite() { timeout.max(0.0) } else { 0.0 });
    py.detach(|| {
        let mut state = GATE.lock();
        state.closed = true;
        GATE_CLOSED.store(true, Ordering::Relaxed);
        let (state, _) =
            GATE.idle.wait_timeout_while(state, timeout, |s| s.inside > 0).unwrap_or_else(|p| p.into_inner());
        state.inside == 0
    })
}

/// What the callback bridge and the `Operation` share.
#[derive(Default)]
pub(crate) struct Shared {
    /// The first exception a callback raised: the `__cause__` of `CallbackFailedError`.
    failure: Mutex<Option<PyErr>>,
    /// The thread that delivers the events (to refuse a `wait()` from a callback).
    worker: OnceLock<ThreadId>,
    /// The store's host protector, whose exception is the `__cause__` of `ProtectorFailedError`.
    protector: Option<Arc<crate::protector::HostProtector>>,
    /// The operation's folder (`BackupPath` or `RestorePath`): the `filename` of an `OSError`.
    folder: Option<PathBuf>,
}

impl Shared {
    pub(crate) fn new(protector: Option<Arc<crate::protector::HostProtector>>, folder: Option<PathBuf>) -> Self {
        Shared { protector, folder, ..Shared::default() }
    }

    fn remember(&self, err: PyErr) {
        let mut slot = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(err);
        }
    }

    fn failure(&self, py: Python<'_>) -> Option<PyErr> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|e| e.clone_ref(py))
    }
}

/// Delivers the engine's events to a Python callable on the operation's delivery thread,
/// attached to the interpreter once per batch of events (see [`attach_worker`]).
pub(crate) struct PyCallback {
    callback: Option<Py<PyAny>>,
    /// `callback` takes each batch as one list of events (the facade's asyncio dispatcher,
    /// which hands the whole batch to the event loop at once) instead of one event per call.
    batched: bool,
    shared: Arc<Shared>,
}

impl PyCallback {
    pub(crate) fn new(callback: Option<Py<PyAny>>, batched: bool, shared: Arc<Shared>) -> Self {
        PyCallback { callback, batched, shared }
    }

    /// The facade's event object for `emitted`; an END's error has its `filename` (the folder).
    fn event<'py>(&self, py: Python<'py>, emitted: &Emitted) -> PyResult<Bound<'py, PyAny>> {
        let event = generated::event(py, &emitted.event, emitted.emitted_ns)?;
        if let (StatusEvent::End { outcome: Outcome::Failed(err), .. }, Some(folder)) =
            (&emitted.event, &self.shared.folder)
        {
            crate::set_filename(&event.getattr(pyo3::intern!(py, "error"))?, err.code(), folder)?;
        }
        Ok(event)
    }

    /// Calls the callable for each event of `batch` in order (or once with all of them when
    /// batched), checking `stop()` after each event and stopping at the first exception, which
    /// is kept as the cause of `CallbackFailedError`; the message describes it. An exception
    /// at END (always alone in its batch) does not change the outcome: it goes to
    /// `sys.unraisablehook` (the facade's asyncio dispatcher hands it to the loop's exception
    /// handler itself).
    fn deliver(
        &self,
        py: Python<'_>,
        callback: &Bound<'_, PyAny>,
        batch: &[Emitted],
        stop: &dyn Fn() -> bool,
    ) -> Result<(), String> {
        let at_end = matches!(batch, [Emitted { event: StatusEvent::End { .. }, .. }]);
        let failed = |err: PyErr| {
            let message = describe(py, &err);
            self.shared.remember(err);
            message
        };
        let result = if self.batched {
            let events = batch.iter().map(|e| self.event(py, e)).collect::<PyResult<Vec<_>>>();
            let list = events.and_then(|events| PyList::new(py, events));
            list.and_then(|list| callback.call1((list,))).map(drop)
        } else {
            let mut result = Ok(());
            for emitted in batch {
                if GATE_CLOSED.load(Ordering::Relaxed) {
                    return Err(SHUTTING_DOWN.into());
                }
                result = self.event(py, emitted).and_then(|event| callback.call1((event,))).map(drop);
                if result.is_err() || stop() {
                    break;
                }
            }
            result
        };
        match result {
            Err(err) if at_end => {
                err.write_unraisable(py, Some(callback));
                Ok(())
            }
            other => other.map_err(failed),
        }
    }
}

const SHUTTING_DOWN: &str = "the Python interpreter is shutting down";

fn describe(py: Python<'_>, err: &PyErr) -> String {
    let name = err.get_type(py).qualname().map(|n| n.to_string()).unwrap_or_else(|_| "exception".into());
    let value = err.value(py).str().map(|s| s.to_string()).unwrap_or_default();
    if value.is_empty() {
        format!("the status callback raised {name}")
    } else {
        format!("the status callback raised {name}: {value}")
    }
}

impl StatusCallback for PyCallback {
    fn on_status(&self, event: &StatusEvent) -> Result<(), CallbackError> {
        let emitted = Emitted { event: event.clone(), emitted_ns: license_backup::monotonic_ns() };
        self.on_status_batch(std::slice::from_ref(&emitted), &|| false)
    }

    /// The whole batch in one attachment to the interpreter: one GIL acquisition instead of
    /// one per event, then a cheaply built event object and a call per event.
    fn on_status_batch(&self, batch: &[Emitted], stop: &dyn Fn() -> bool) -> Result<(), CallbackError> {
        let Some(callback) = &self.callback else { return Ok(()) };
        let _ = self.shared.worker.set(std::thread::current().id());
        let last = batch.iter().any(|e| matches!(e.event, StatusEvent::End { .. }));
        match attach_worker(last, |py| self.deliver(py, callback.bind(py), batch, stop)) {
            Some(Ok(())) => Ok(()),
            Some(Err(message)) => Err(CallbackError::new(message)),
            None => Err(CallbackError::new(SHUTTING_DOWN)),
        }
    }
}

/// A running (or finished) backup or restore.
///
/// `wait(timeout=None)` blocks, with the GIL released, until the operation has ended and every
/// callback has run, then returns its `Summary` or raises its error. `cancel()` asks it to stop
/// (it then ends with `OperationCancelledError`). `add_done_callback(fn)` calls `fn()` once it has
/// ended, from a helper thread (at once, on the calling thread, if it already has).
#[pyclass(module = "license_backup._native", frozen, weakref)]
pub struct Operation {
    handle: OperationHandle,
    shared: Arc<Shared>,
}

impl Operation {
    pub(crate) fn new(handle: OperationHandle, shared: Arc<Shared>) -> Self {
        Operation { handle, shared }
    }

    fn result(&self, py: Python<'_>, outcome: Outcome) -> PyResult<Py<PyAny>> {
        match outcome {
            Outcome::Completed(summary) => Ok(summary.to_py(py)?.unbind()),
            Outcome::Failed(err) => {
                let raised = crate::py_err_at(py, &err, self.shared.folder.as_deref());
                if err.code() == ErrorCode::CallbackFailed {
                    // `raise CallbackFailedError(...) from <the callback's exception>`
                    raised.set_cause(py, self.shared.failure(py));
                }
                if err.code() == ErrorCode::ProtectorFailed {
                    if let Some(host) = &self.shared.protector {
                        raised.set_cause(py, host.take_failure());
                    }
                }
                Err(raised)
            }
        }
    }
}

#[pymethods]
impl Operation {
    /// `"backup"` or `"restore"`.
    #[getter]
    fn operation(&self) -> &'static str {
        self.handle.kind().name()
    }

    /// Whether the operation has ended and its END event has been delivered.
    #[getter]
    fn done(&self) -> bool {
        self.handle.is_finished()
    }

    /// Whether `cancel()` was called.
    #[getter]
    fn cancel_requested(&self) -> bool {
        self.handle.is_cancel_requested()
    }

    /// Asks the operation to stop; it ends with `OperationCancelledError` unless it had already ended.
    fn cancel(&self) {
        self.handle.cancel();
    }

    /// Waits (GIL released) for the end and returns the `Summary`, or raises the operation's
    /// error; `TimeoutError` if `timeout` seconds pass first. Ctrl-C interrupts the wait (the
    /// operation goes on; cancel it if that is what you want).
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let timeout: Option<f64> =
            crate::convert::option(timeout, "timeout", &Type::Optional(&license_backup::interface::SECONDS), None)?;
        let deadline = timeout.map(|t| Instant::now() + Duration::from_secs_f64(t));
        if !self.handle.is_finished() && self.shared.worker.get() == Some(&std::thread::current().id()) {
            return Err(PyRuntimeError::new_err(
                "wait() called from the operation's own status callback would never return",
            ));
        }
        loop {
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
                None => WAIT_SLICE,
            };
            let handle = &self.handle;
            if let Some(result) = py.detach(|| handle.wait_timeout(slice)) {
                let outcome = match result {
                    Ok(summary) => Outcome::Completed(summary),
                    Err(err) => Outcome::Failed(err),
                };
                return self.result(py, outcome);
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(PyTimeoutError::new_err(format!(
                    "the {} did not end within {} s",
                    self.handle.kind().name(),
                    timeout.unwrap_or_default()
                )));
            }
        }
    }

    /// Calls `fn()` once the operation has ended: at once on this thread if it already has,
    /// otherwise from a helper thread (attached to the interpreter only for the call). An
    /// exception `fn` raises is reported through `sys.unraisablehook`.
    fn add_done_callback(&self, py: Python<'_>, r#fn: Py<PyAny>) -> PyResult<()> {
        if self.handle.is_finished() {
            r#fn.call0(py)?;
            return Ok(());
        }
        let handle = self.handle.clone();
        std::thread::Builder::new()
            .name(format!("license-{}-done", handle.kind().name()))
            .spawn(move || {
                let _ = handle.wait();
                attach(|py| {
                    if let Err(err) = r#fn.call0(py) {
                        err.write_unraisable(py, None);
                    }
                });
            })
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread: {e}")))?;
        Ok(())
    }

    fn __repr__(&self) -> String {
        let state = if self.handle.is_finished() { "done" } else { "running" };
        format!("<Operation {} {state}>", self.handle.kind().name())
    }
}
