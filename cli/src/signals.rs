//! Ctrl-C (and SIGTERM, SIGHUP): the first cancels the running operation, which then ends
//! cleanly (the previous archive and the store as they were, no temporary file left) and the
//! tool exits 130; a second one, [`GRACE`] or more after the first, exits 130 at once, without
//! waiting for the operation to end.

use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use license_backup::{BackupRestorer, ErrorCode};

use crate::exit::{self, Failure};

/// When the signal first came.
static FIRST: OnceLock<Instant> = OnceLock::new();

/// Signals this soon after the first are the same request: `timeout(1)` signals the command
/// and then its whole process group, so the tool receives each signal twice at once, and a
/// quick double press is one press. `LICENSE_BACKUP_SIGNAL_GRACE_MS` changes it.
pub const GRACE: Duration = Duration::from_secs(1);

/// [`GRACE`], or the milliseconds in `LICENSE_BACKUP_SIGNAL_GRACE_MS`.
fn grace() -> Duration {
    std::env::var("LICENSE_BACKUP_SIGNAL_GRACE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(GRACE, Duration::from_millis)
}

/// The thread printing the cancel notice, joined by [`settle`] before the tool exits.
static NOTICE: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

/// Whether a cancel was requested (the signal came at least once).
pub fn pressed() -> bool {
    FIRST.get().is_some()
}

/// Installs the handler for the operations of `restorer`: the first signal cancels them and
/// shows `notice` (on a thread of its own, so the handler never waits for a terminal and a
/// second signal always gets through); a second one [`GRACE`] or more later exits at once. An
/// operation started after the first signal must be cancelled by the caller (see [`pressed`]).
pub fn install(restorer: Arc<BackupRestorer>, notice: impl Fn() + Send + Sync + 'static) -> Result<(), Failure> {
    let notice = Arc::new(notice);
    let grace = grace();
    ctrlc::set_handler(move || {
        // The handler runs on one thread, a signal at a time.
        let now = Instant::now();
        match FIRST.get() {
            None => {
                // Under the lock: once `settle` has the lock, a cancel it could report has its
                // notice thread recorded.
                let mut slot = NOTICE.lock().unwrap_or_else(|p| p.into_inner());
                let _ = FIRST.set(now);
                restorer.cancel_license_backup();
                restorer.cancel_license_restore();
                let notice = Arc::clone(&notice);
                *slot = Some(std::thread::spawn(move || notice()));
            }
            Some(first) if now.duration_since(*first) < grace => {}
            Some(_) => std::process::exit(i32::from(exit::CANCELLED)),
        }
    })
    .map_err(|e| Failure::new(ErrorCode::Internal, format!("cannot install the Ctrl-C handler: {e}")))
}

/// Waits until the cancel notice, if any, has been printed: it comes before the final lines.
pub fn settle() {
    let handle = NOTICE.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(handle) = handle {
        let _ = handle.join();
    }
}
