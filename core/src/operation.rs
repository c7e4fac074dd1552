//! Running an operation: the handle the caller keeps, the worker thread that does the job, the
//! delivery thread that hands its events to the callback (in order, in batches), and the
//! guarantee of exactly one END, delivered last.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode, Result};
use crate::event::{Emitted, OperationKind, Outcome, StatusCallback, StatusEvent, Summary};
use crate::store::LicenseStore;

struct Shared {
    kind: OperationKind,
    cancel: AtomicBool,
    outcome: Mutex<Option<Outcome>>,
    done: Condvar,
    /// The END callback's own failure (it never changes the outcome); set before `outcome`.
    end_callback_error: Mutex<Option<Error>>,
    /// Set once the job has returned (its files closed, its temporary files removed), which
    /// may be before its END was delivered.
    stopped: Mutex<bool>,
    stopped_changed: Condvar,
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
                end_callback_error: Mutex::new(None),
                stopped: Mutex::new(false),
                stopped_changed: Condvar::new(),
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

    /// How the END callback failed (`CALLBACK_FAILED` with its message, or its panic's), once
    /// finished; `None` if it returned `Ok` or the operation has not finished. The END callback
    /// never changes the outcome: a completed operation stays completed (its archive written,
    /// its restore applied) and a failed one keeps its own error; this failure is only reported
    /// here and logged at WARN (target `license_backup::operation`).
    pub fn end_callback_error(&self) -> Option<Error> {
        if !self.is_finished() {
            return None;
        }
        self.shared.end_callback_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
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

    /// Waits up to `timeout` until the operation's work has stopped: its job returned, its files
    /// are closed and its temporary files removed, even if its events (END included) have not
    /// been delivered yet. Returns whether it has. For a host that is exiting (its event loop no
    /// longer runs, so events cannot be delivered): [`OperationHandle::cancel`], then this, so a
    /// cancelled backup leaves the previous archive and no temporary file behind.
    pub fn wait_stopped(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut stopped = self.shared.stopped.lock().unwrap_or_else(|p| p.into_inner());
        while !*stopped {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            stopped =
                self.shared.stopped_changed.wait_timeout(stopped, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }

    fn mark_stopped(&self) {
        *self.shared.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.stopped_changed.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Outcome>> {
        self.shared.outcome.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn finish(&self, outcome: Outcome, end_callback_error: Option<Error>) {
        *self.shared.end_callback_error.lock().unwrap_or_else(|p| p.into_inner()) = end_callback_error;
        *self.lock() = Some(outcome);
        self.shared.done.notify_all();
    }
}

/// How many events the engine may queue ahead of their delivery before it waits for the
/// callback: memory stays bounded however slow the callback is, and so does the latency of an
/// event behind a slow callback (a queue of 2048 measured 4x the median latency of 512 into
/// Python for ~5% more events a second). Counted in events, not chunks: chunks sent early (by
/// age) can be small and should not stall the engine sooner.
const MAX_QUEUED_EVENTS: u64 = 512;

/// The engine hands per-license events to the delivery thread in chunks of up to this many,
/// so a fast callback does not cost a thread wake-up per event...
const CHUNK: usize = 64;

/// ...and sends a chunk early once its oldest event has waited this long (nanoseconds).
const MAX_AGE_NS: u64 = 200_000;

/// How often a wait for the callback looks at whether the operation was cancelled.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// The most events handed to [`StatusCallback::on_status_batch`] in one call.
const MAX_BATCH: usize = 512;

/// The platform's monotonic clock, in nanoseconds: `CLOCK_MONOTONIC` on Linux and
/// `CLOCK_UPTIME_RAW` on Apple platforms, the clocks of Python's `time.monotonic_ns()`,
/// Node's `process.hrtime.bigint()` and Swift's `DispatchTime.now().uptimeNanoseconds`.
pub fn monotonic_ns() -> u64 {
    #[cfg(unix)]
    {
        #[cfg(any(target_os = "macos", target_os = "ios", target_os = "tvos", target_os = "watchos"))]
        const CLOCK: libc::clockid_t = libc::CLOCK_UPTIME_RAW;
        #[cfg(not(any(target_os = "macos", target_os = "ios", target_os = "tvos", target_os = "watchos")))]
        const CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC;
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec and CLOCK is a clock every supported
        // kernel has; clock_gettime writes only `ts`.
        let rc = unsafe { libc::clock_gettime(CLOCK, &mut ts) };
        if rc == 0 {
            return (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64);
        }
    }
    // Elsewhere: nanoseconds since the first call in this process (monotonic, another origin).
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// What the engine thread sends to the delivery thread.
enum Message {
    Events(Vec<Emitted>),
    End(Outcome),
}

/// Whether an event may be dropped, undelivered, once the operation is stopping (a cancel was
/// requested or a callback failed): the per-license events. The others (BEGIN, CONNECTING,
/// DISCONNECTING, REFUSED) are delivered synchronously and always, like END.
fn is_bulk(event: &StatusEvent) -> bool {
    matches!(event, StatusEvent::Progress { .. } | StatusEvent::RestrictedLicense { .. })
}

/// What the engine thread and the delivery thread share.
struct Pipe {
    handle: OperationHandle,
    /// Events the delivery thread is done with (delivered or dropped), for [`Emitter::flush`].
    settled: Mutex<u64>,
    settled_changed: Condvar,
    /// Set when a callback failed (returned an error or panicked); the error is in `failure`.
    failed: AtomicBool,
    failure: Mutex<Option<Error>>,
}

impl Pipe {
    /// Whether delivery of per-license events should stop: cancel requested or a callback failed.
    fn stopping(&self) -> bool {
        self.failed.load(Ordering::Acquire) || self.handle.is_cancel_requested()
    }

    fn fail(&self, error: Error) {
        let mut slot = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(error);
        }
        self.failed.store(true, Ordering::Release);
    }

    fn failure(&self) -> Option<Error> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits for the delivery thread to settle more events, or a while (a cancel does not
    /// notify, so waits look at it again this often).
    fn wait_settled<'a>(&self, settled: std::sync::MutexGuard<'a, u64>) -> std::sync::MutexGuard<'a, u64> {
        self.settled_changed.wait_timeout(settled, CANCEL_POLL).unwrap_or_else(|p| p.into_inner()).0
    }

    fn settle(&self, n: u64) {
        *self.settled.lock().unwrap_or_else(|p| p.into_inner()) += n;
        self.settled_changed.notify_all();
    }
}

/// Calls the callback with `batch`, turning an error or a panic into `CALLBACK_FAILED`.
fn call(callback: &dyn StatusCallback, batch: &[Emitted], stop: &dyn Fn() -> bool) -> Result<()> {
    match catch_unwind(AssertUnwindSafe(|| callback.on_status_batch(batch, stop))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::new(ErrorCode::CallbackFailed, e.message)),
        Err(payload) => Err(Error::new(
            ErrorCode::CallbackFailed,
            format!("the status callback panicked: {}", panic_message(payload.as_ref())),
        )),
    }
}

/// The delivery thread: hands queued events to the callback in order, in batches of what has
/// queued up meanwhile, then END; then finishes the handle.
struct Delivery {
    pipe: Arc<Pipe>,
    callback: Arc<dyn StatusCallback>,
    before_end: Box<dyn FnOnce() + Send>,
}

impl Delivery {
    fn run(self, queue: Receiver<Message>) {
        let mut batch: Vec<Emitted> = Vec::with_capacity(MAX_BATCH);
        let outcome = loop {
            let mut end = None;
            match queue.recv() {
                Ok(Message::Events(chunk)) => batch.extend(chunk),
                Ok(Message::End(outcome)) => end = Some(outcome),
                // The engine thread is gone without an END: it could not be started.
                Err(_) => return,
            }
            while end.is_none() && batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(Message::Events(chunk)) => batch.extend(chunk),
                    Ok(Message::End(outcome)) => end = Some(outcome),
                    Err(_) => break,
                }
            }
            self.deliver(&batch);
            let n = batch.len() as u64;
            batch.clear();
            self.pipe.settle(n);
            if let Some(outcome) = end {
                break outcome;
            }
        };
        self.end(outcome);
    }

    /// Delivers runs of per-license events as batches (dropped once the operation is
    /// stopping) and every other event on its own.
    fn deliver(&self, events: &[Emitted]) {
        let stop = || self.pipe.stopping();
        let mut rest = events;
        while !rest.is_empty() {
            // At most MAX_BATCH a call: the queue is drained a chunk at a time, so `events`
            // may hold up to CHUNK - 1 more.
            let run = rest.iter().take(MAX_BATCH).take_while(|e| is_bulk(&e.event)).count();
            let (chunk, tail) = if run == 0 { rest.split_at(1) } else { rest.split_at(run) };
            rest = tail;
            if run > 0 && self.pipe.stopping() {
                continue;
            }
            if let Err(e) = call(self.callback.as_ref(), chunk, &stop) {
                tracing::warn!(
                    operation = self.pipe.handle.kind().name(),
                    error = %e.message(),
                    "a status callback failed: the operation stops with CALLBACK_FAILED"
                );
                self.pipe.fail(e);
            }
        }
    }

    fn end(self, outcome: Outcome) {
        let Delivery { pipe, callback, before_end } = self;
        // A callback that failed on an event queued after the job's last synchronisation point
        // still fails the operation (no job emits such events; this keeps the rule absolute).
        let outcome = match (outcome, pipe.failure()) {
            (Outcome::Completed(_), Some(e)) => Outcome::Failed(e),
            (outcome, _) => outcome,
        };
        before_end();
        // Logged before END is delivered: a host that settles on END has the record already.
        log_end(pipe.handle.kind(), &outcome);
        let end = Emitted {
            event: StatusEvent::End { operation: pipe.handle.kind(), outcome: outcome.clone() },
            emitted_ns: monotonic_ns(),
        };
        // The END callback never changes the outcome: its failure is logged and kept apart.
        let end_callback_error = match call(callback.as_ref(), std::slice::from_ref(&end), &|| false) {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(
                    operation = pipe.handle.kind().name(),
                    outcome = outcome_code(&outcome),
                    error = %e.message(),
                    "the END callback failed; the outcome stands"
                );
                Some(Error::new(ErrorCode::CallbackFailed, format!("the END callback failed: {}", e.message())))
            }
        };
        pipe.handle.finish(outcome, end_callback_error);
    }
}

/// What a job reports through. Events go to a queue that a delivery thread drains into the
/// callback, so the engine does not wait for the callback on every license: PROGRESS and
/// RESTRICTED_LICENSE are queued in chunks (and dropped undelivered once a cancel is requested
/// or a callback failed); every other event, and [`Emitter::flush`], waits until everything
/// queued has been delivered. The job must flush before any commit point, so a callback's
/// error or cancel always stops the operation before it changes anything.
pub(crate) struct Emitter {
    pipe: Arc<Pipe>,
    queue: Sender<Message>,
    /// Events emitted so far (compared with what the delivery thread has settled).
    sent: AtomicU64,
    /// Events handed to the delivery thread so far.
    handed: AtomicU64,
    /// Events not yet handed to the delivery thread.
    pending: Mutex<Vec<Emitted>>,
    /// Emission time of the oldest pending event; 0 when none is pending.
    oldest_ns: AtomicU64,
}

/// The outcome's code for the log: `OK`, or the error's symbolic name.
fn outcome_code(outcome: &Outcome) -> &'static str {
    outcome.error_code().map_or("OK", ErrorCode::name)
}

/// Logs an operation's end: INFO when it completed or was cancelled, WARN when it failed.
fn log_end(kind: OperationKind, outcome: &Outcome) {
    match outcome {
        Outcome::Completed(s) => tracing::info!(
            operation = kind.name(),
            outcome = "OK",
            licenses = s.licenses,
            restricted = s.restricted,
            skipped = s.skipped,
            bytes = s.bytes,
            duration_ms = s.duration_ms,
            "operation ended"
        ),
        Outcome::Failed(e) if e.code() == ErrorCode::Cancelled => {
            tracing::info!(operation = kind.name(), outcome = "CANCELLED", "operation ended")
        }
        Outcome::Failed(e) => tracing::warn!(
            operation = kind.name(),
            outcome = e.code().name(),
            code = e.code().number(),
            error = %e.message(),
            "operation ended"
        ),
    }
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
    /// Starts the delivery thread for the operation behind `handle`; `before_end` runs on it
    /// right before END is delivered.
    pub(crate) fn start(
        callback: Arc<dyn StatusCallback>,
        handle: OperationHandle,
        before_end: Box<dyn FnOnce() + Send>,
    ) -> Result<Self> {
        let pipe = Arc::new(Pipe {
            handle,
            settled: Mutex::new(0),
            settled_changed: Condvar::new(),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
        });
        let (queue, receiver) = channel();
        let delivery = Delivery { pipe: Arc::clone(&pipe), callback, before_end };
        std::thread::Builder::new()
            .name(format!("license-{}-events", pipe.handle.kind().name()))
            .spawn(move || delivery.run(receiver))
            .map_err(|e| Error::internal(format!("cannot start a delivery thread: {e}")))?;
        Ok(Emitter {
            pipe,
            queue,
            sent: AtomicU64::new(0),
            handed: AtomicU64::new(0),
            pending: Mutex::new(Vec::with_capacity(CHUNK)),
            oldest_ns: AtomicU64::new(0),
        })
    }

    /// The kind of operation.
    pub(crate) fn kind(&self) -> OperationKind {
        self.pipe.handle.kind()
    }

    fn send(&self, message: Message) -> Result<()> {
        self.queue.send(message).map_err(|_| Error::internal("the event delivery thread has stopped"))
    }

    /// Queues one event. PROGRESS and RESTRICTED_LICENSE return at once; any other event
    /// returns once it has been delivered. A callback error or panic (on this event or an
    /// earlier one) becomes `CALLBACK_FAILED`; a cancel requested (from anywhere, the callback
    /// included) becomes `CANCELLED`, so "cancel after the n-th event" is deterministic.
    pub(crate) fn emit(&self, event: StatusEvent) -> Result<()> {
        let bulk = is_bulk(&event);
        if !bulk {
            if let Some(e) = self.pipe.failure() {
                return Err(e);
            }
        }
        let now = monotonic_ns();
        let full = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending.is_empty() {
                self.oldest_ns.store(now.max(1), Ordering::Relaxed);
            }
            pending.push(Emitted { event, emitted_ns: now });
            pending.len() >= CHUNK
        };
        self.sent.fetch_add(1, Ordering::Relaxed);
        if !bulk {
            return self.flush();
        }
        if full || now.saturating_sub(self.oldest_ns.load(Ordering::Relaxed)) >= MAX_AGE_NS {
            self.send_pending()?;
        }
        self.check_cancelled()
    }

    /// Hands the pending events to the delivery thread.
    fn send_pending(&self) -> Result<()> {
        let chunk =
            std::mem::replace(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()), Vec::with_capacity(CHUNK));
        self.oldest_ns.store(0, Ordering::Relaxed);
        if chunk.is_empty() {
            return Ok(());
        }
        let handed = self.handed.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
        self.send(Message::Events(chunk))?;
        // Back-pressure: wait while too many events are queued ahead of the callback.
        let mut settled = self.pipe.settled.lock().unwrap_or_else(|p| p.into_inner());
        while handed.saturating_sub(*settled) > MAX_QUEUED_EVENTS && !self.pipe.handle.is_cancel_requested() {
            settled = self.pipe.wait_settled(settled);
        }
        Ok(())
    }

    /// Called as work goes on: hands pending events over once the oldest has waited long
    /// enough, then reports a callback's failure or a cancel.
    pub(crate) fn tick(&self) -> Result<()> {
        let oldest = self.oldest_ns.load(Ordering::Relaxed);
        if oldest != 0 && monotonic_ns().saturating_sub(oldest) >= MAX_AGE_NS {
            self.send_pending()?;
        }
        self.check_cancelled()
    }

    /// Waits until every queued event has been delivered (or dropped), then reports a
    /// callback's failure or a cancel.
    pub(crate) fn flush(&self) -> Result<()> {
        self.send_pending()?;
        let sent = self.sent.load(Ordering::Relaxed);
        let mut settled = self.pipe.settled.lock().unwrap_or_else(|p| p.into_inner());
        // A cancel stops the wait: the operation ends without waiting for a callback that may
        // never run again (a host whose event loop has stopped).
        while *settled < sent && !self.pipe.handle.is_cancel_requested() {
            settled = self.pipe.wait_settled(settled);
        }
        drop(settled);
        self.check_cancelled()
    }

    /// `CALLBACK_FAILED` if a callback failed, else `CANCELLED` if cancellation was requested.
    pub(crate) fn check_cancelled(&self) -> Result<()> {
        if let Some(e) = self.pipe.failure() {
            return Err(e);
        }
        if self.pipe.handle.is_cancel_requested() { Err(Error::cancelled()) } else { Ok(()) }
    }

    /// Queues END with `outcome`: the delivery thread delivers it after everything queued and
    /// then finishes the handle.
    pub(crate) fn end(self, outcome: Outcome) {
        // The delivery thread is alive until it has received END, so these cannot fail.
        let _ = self.send_pending();
        let _ = self.send(Message::End(outcome));
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
        self.advance(1, emitter)
    }

    /// Counts `n` licenses at once, emitting PROGRESS on every `interval`-th among them, with
    /// one look at the clock and the cancel flag instead of `n` (a restore reports its licenses
    /// a batch at a time).
    pub(crate) fn advance(&mut self, n: u64, emitter: &Emitter) -> Result<()> {
        let end = self.done + n;
        let mut next = (self.done / self.interval + 1) * self.interval;
        while next <= end {
            self.done = next;
            emitter.emit(StatusEvent::Progress { operation: emitter.kind(), done: next, total: self.total })?;
            next += self.interval;
        }
        self.done = end;
        emitter.tick()
    }

    /// Emits the final PROGRESS unless the last step already did, then waits until every
    /// event has been delivered ([`Emitter::flush`]): a synchronisation point, to be passed
    /// before the job commits anything.
    pub(crate) fn finish(&self, emitter: &Emitter) -> Result<()> {
        if self.done == 0 || self.done % self.interval != 0 {
            emitter.emit(StatusEvent::Progress { operation: emitter.kind(), done: self.done, total: self.total })?;
        }
        emitter.flush()
    }
}

/// Starts `job` on a worker thread, with a delivery thread for its events. The store is already
/// marked busy by the caller; the mark is cleared right before END is delivered, so the END
/// callback may start the next operation.
pub(crate) fn spawn<F>(
    handle: OperationHandle,
    store: Arc<LicenseStore>,
    callback: Arc<dyn StatusCallback>,
    job: F,
) -> Result<()>
where
    F: FnOnce(&Emitter) -> Result<Summary> + Send + 'static,
{
    let emitter = Emitter::start(callback, handle.clone(), Box::new(move || store.clear_busy()))?;
    let name = format!("license-{}", handle.kind().name());
    tracing::info!(operation = handle.kind().name(), "operation started");
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| job(&emitter)));
        handle.mark_stopped();
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
        emitter.end(outcome);
    });
    if let Err(e) = spawned {
        return Err(Error::internal(format!("cannot start a worker thread: {e}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::{Emitter, OperationHandle, OperationKind, Progress};
    use crate::error::ErrorCode;
    use crate::event::{CallbackError, StatusCallback, StatusEvent};

    /// Records the `done` of every PROGRESS; fails on the one whose `done` is `fail_at`.
    struct Recorder {
        done: Mutex<Vec<u64>>,
        fail_at: Option<u64>,
    }

    impl StatusCallback for Recorder {
        fn on_status(&self, event: &StatusEvent) -> Result<(), CallbackError> {
            if let StatusEvent::Progress { done, total, .. } = event {
                assert_eq!(*total, 1000);
                self.done.lock().unwrap().push(*done);
                if self.fail_at == Some(*done) {
                    return Err(CallbackError::new("refused"));
                }
            }
            Ok(())
        }
    }

    /// The PROGRESS `done` values delivered when `count(progress, emitter)` counts the licenses,
    /// and what it and `finish` returned.
    fn delivered(
        interval: u64,
        fail_at: Option<u64>,
        count: impl FnOnce(&mut Progress, &Emitter) -> crate::error::Result<()>,
    ) -> (Vec<u64>, crate::error::Result<()>) {
        let recorder = Arc::new(Recorder { done: Mutex::new(Vec::new()), fail_at });
        let emitter =
            Emitter::start(recorder.clone(), OperationHandle::new(OperationKind::Restore), Box::new(|| ())).unwrap();
        let mut progress = Progress::new(1000, interval);
        let result = count(&mut progress, &emitter).and_then(|()| progress.finish(&emitter));
        let done = recorder.done.lock().unwrap().clone();
        (done, result)
    }

    #[test]
    fn advance_emits_what_as_many_steps_would() {
        // Batches that cross no multiple of the interval, several at once, and end on one.
        let batches = [3u64, 1, 0, 256, 7, 100, 33, 300, 300];
        assert_eq!(batches.iter().sum::<u64>(), 1000);
        for interval in [1, 7, 100, 256, 999, 1000, 5000] {
            let (stepped, r1) = delivered(interval, None, |p, e| {
                (0..1000).try_for_each(|_| p.step(e)).map(|()| assert_eq!(p.done, 1000))
            });
            let (advanced, r2) = delivered(interval, None, |p, e| {
                batches.iter().try_for_each(|&n| p.advance(n, e)).map(|()| assert_eq!(p.done, 1000))
            });
            assert!(r1.is_ok() && r2.is_ok());
            // Every interval-th license, and the total once at the end.
            let mut want: Vec<u64> = (1..=1000).filter(|d| d % interval == 0).collect();
            if want.last() != Some(&1000) {
                want.push(1000);
            }
            assert_eq!(stepped, want, "interval {interval}");
            assert_eq!(advanced, stepped, "interval {interval}");
            assert_eq!(stepped.last(), Some(&1000), "interval {interval}: the last PROGRESS is the total");
        }
    }

    #[test]
    fn advance_stops_at_a_failing_callback() {
        // The callback fails on done = 20 (interval 10): the count ends with CALLBACK_FAILED and
        // no PROGRESS is delivered after the failing one, as with single steps.
        let (done, result) =
            delivered(10, Some(20), |p, e| [256, 256, 256, 232].iter().try_for_each(|&n| p.advance(n, e)));
        assert_eq!(result.unwrap_err().code(), ErrorCode::CallbackFailed);
        assert_eq!(done, [10, 20]);
    }
}
