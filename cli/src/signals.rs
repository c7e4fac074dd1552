//! Ctrl-C (and SIGTERM, SIGHUP): the first cancels the running operation, which then ends
//! cleanly (the previous archive and the store as they were, no temporary file left) and the
//! tool exits 130; a second one exits 130 at once, without waiting for the operation to end.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use license_backup::{BackupRestorer, ErrorCode};

use crate::exit::{self, Failure};

/// How many times the signal came.
static PRESSED: AtomicU32 = AtomicU32::new(0);

/// The thread printing the cancel notice, joined by [`settle`] before the tool exits.
static NOTICE: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

/// Whether a cancel was requested (the signal came at least once).
pub fn pressed() -> bool {
    PRESSED.load(Ordering::SeqCst) > 0
}

/// Installs the handler for the operations of `restorer`: the first signal cancels them and
/// shows `notice` (on a thread of its own, so the handler never waits for a terminal and a
/// second signal always gets through); the second exits at once. An operation started after
/// the first signal must be cancelled by the caller (see [`pressed`]).
pub fn install(restorer: Arc<BackupRestorer>, notice: impl Fn() + Send + Sync + 'static) -> Result<(), Failure> {
    let notice = Arc::new(notice);
    ctrlc::set_handler(move || {
        if PRESSED.fetch_add(1, Ordering::SeqCst) == 0 {
            // Under the lock: once `settle` has the lock, a cancel it could report has its
            // notice thread recorded.
            let mut slot = NOTICE.lock().unwrap_or_else(|p| p.into_inner());
            restorer.cancel_license_backup();
            restorer.cancel_license_restore();
            let notice = Arc::clone(&notice);
            *slot = Some(std::thread::spawn(move || notice()));
        } else {
            std::process::exit(i32::from(exit::CANCELLED));
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
