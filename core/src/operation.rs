//! Running an operation on its own worker thread: the handle the caller keeps, the emitter the
//! job reports through, and the guarantee of exactly one END, delivered last.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode, Result};
use crate::event::{OperationKind, Outcome, StatusCallback, StatusEvent, Summary};
use crate::store::LicenseStore;

struct Shared {
    kind: OperationKind,
    cancel: AtomicBool,
    outcome: Mutex<Option<Outcome>>,
    done: Condvar,
}

/// A running (or finished) backup or restore. Cloning gives another handle to the same
/// operation.
#[derive(Clone)]
pub struct OperationHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for OperationHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationHandle")
            .field("kind", &self.shared.kind)
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl OperationHandle {
    pub(crate) fn new(kind: OperationKind) -> Self {
        OperationHandle {
            shared: Arc::new(Shared {
                kind,
                cancel: AtomicBool::new(false),
                outcome: Mutex::new(None),
                done: Condvar::new(),
            }),
        }
    }

    /// Which operation this is.
    pub fn kind(&self) -> OperationKind {
        self.shared.kind
    }

    /// Asks the operation to stop. It ends soon after with `CANCELLED` (unless it had already
    /// finished); a cancelled backup leaves any previous archive as it was and a cancelled
    /// restore leaves the store unchanged. Cancelling twice, or after the end, does nothing.
    pub fn cancel(&self) {
        self.shared.cancel.store(true, Ordering::Release);
    }

    /// Whether cancellation was requested.
    pub fn is_cancel_requested(&self) -> bool {
        self.shared.cancel.load(Ordering::Acquire)
    }

    /// Whether the operation has finished and its END event has been delivered.
    pub fn is_finished(&self) -> bool {
        self.lock().is_some()
    }

    /// The outcome, once finished.
    pub fn outcome(&self) -> Option<Outcome> {
        self.lock().clone()
    }

    /// Blocks until the operation has finished and every event has been delivered; returns its
    /// summary or its error.
    pub fn wait(&self) -> Result<Summary> {
        let mut guard = self.lock();
        while guard.is_none() {
            guard = self.shared.done.wait(guard).unwrap_or_else(|p| p.into_inner());
        }
        guard.clone().expect("checked above").into_result()
    }

    /// Like [`OperationHandle::wait`], but gives up after `timeout` and returns `None`.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<Summary>> {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lock();
        while guard.is_none() {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            guard = self.shared.done.wait_timeout(guard, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        guard.clone().map(Outcome::into_result)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Outcome>> {
        self.shared.outcome.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn finish(&self, outcome: Outcome) {
        *self.lock() = Some(outcome);
        self.shared.done.notify_all();
    }
}

/// What a job reports through: delivers events to the callback and watches for cancellation.
pub(crate) struct Emitter {
    callback: Arc<dyn StatusCallback>,
    handle: OperationHandle,
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

impl Emitter {
    /// An emitter delivering to `callback` for the operation behind `handle`.
    pub(crate) fn new(callback: Arc<dyn StatusCallback>, handle: OperationHandle) -> Self {
        Emitter { callback, handle }
    }

    /// The kind of operation.
    pub(crate) fn kind(&self) -> OperationKind {
        self.handle.kind()
    }

    /// Delivers one event. A callback error or panic becomes `CALLBACK_FAILED`; a cancel
    /// requested (from anywhere, the callback included) becomes `CANCELLED`, so "cancel after
    /// the n-th event" is deterministic.
    pub(crate) fn emit(&self, event: StatusEvent) -> Result<()> {
        self.deliver(&event)?;
        self.check_cancelled()
    }

    fn deliver(&self, event: &StatusEvent) -> Result<()> {
        match catch_unwind(AssertUnwindSafe(|| self.callback.on_status(event))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::new(ErrorCode::CallbackFailed, e.message)),
            Err(payload) => Err(Error::new(
                ErrorCode::CallbackFailed,
                format!("the status callback panicked: {}", panic_message(payload.as_ref())),
            )),
        }
    }

    /// `CANCELLED` if cancellation was requested.
    pub(crate) fn check_cancelled(&self) -> Result<()> {
        if self.handle.is_cancel_requested() { Err(Error::cancelled()) } else { Ok(()) }
    }
}

/// Emits PROGRESS every `interval` licenses and once at the end.
pub(crate) struct Progress {
    pub(crate) done: u64,
    total: u64,
    interval: u64,
}

impl Progress {
    pub(crate) fn new(total: u64, interval: u64) -> Self {
        Progress { done: 0, total, interval: interval.max(1) }
    }

    /// Counts one license, emitting PROGRESS on every `interval`-th.
    pub(crate) fn step(&mut self, emitter: &Emitter) -> Result<()> {
        self.done += 1;
        if self.done % self.interval == 0 {
            emitter.emit(StatusEvent::Progress { operation: emitter.kind(), done: self.done, total: self.total })?;
        }
        emitter.check_cancelled()
    }

    /// Emits the final PROGRESS unless the last step already did.
    pub(crate) fn finish(&self, emitter: &Emitter) -> Result<()> {
        if self.done == 0 || self.done % self.interval != 0 {
            emitter.emit(StatusEvent::Progress { operation: emitter.kind(), done: self.done, total: self.total })?;
        }
        Ok(())
    }
}

/// Starts `job` on a worker thread. The store is already marked busy by the caller; the worker
/// clears the mark before delivering END, so the END callback may start the next operation.
pub(crate) fn spawn<F>(
    handle: OperationHandle,
    store: Arc<LicenseStore>,
    callback: Arc<dyn StatusCallback>,
    job: F,
) -> Result<()>
where
    F: FnOnce(&Emitter) -> Result<Summary> + Send + 'static,
{
    let emitter = Emitter::new(callback, handle.clone());
    let name = format!("license-{}", handle.kind().name());
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| job(&emitter)));
        let outcome = match result {
            Ok(Ok(mut summary)) => {
                summary.duration_ms = started.elapsed().as_millis() as u64;
                Outcome::Completed(summary)
            }
            Ok(Err(e)) => Outcome::Failed(e),
            Err(payload) => {
                Outcome::Failed(Error::internal(format!("the engine panicked: {}", panic_message(payload.as_ref()))))
            }
        };
        store.clear_busy();
        let end = StatusEvent::End { operation: handle.kind(), outcome: outcome.clone() };
        let outcome = match emitter.deliver(&end) {
            Ok(()) => outcome,
            Err(e) => Outcome::Failed(Error::new(
                ErrorCode::CallbackFailed,
                format!("the END callback failed: {}", e.message()),
            )),
        };
        handle.finish(outcome);
    });
    if let Err(e) = spawned {
        return Err(Error::internal(format!("cannot start a worker thread: {e}")));
    }
    Ok(())
}
