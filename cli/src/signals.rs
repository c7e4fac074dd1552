//! Ctrl-C (and SIGTERM, SIGHUP): the first cancels the running operation, which then ends
//! cleanly (the previous archive and the store as they were, no temporary file left) and the
//! tool exits 130; a second one exits 130 at once, without waiting for the operation to end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use license_backup::{BackupRestorer, ErrorCode};

use crate::exit::{self, Failure};

/// How many times the signal came.
static PRESSED: AtomicU32 = AtomicU32::new(0);

/// Whether a cancel was requested (the signal came at least once).
pub fn pressed() -> bool {
    PRESSED.load(Ordering::SeqCst) > 0
}

/// Installs the handler for the operations of `restorer`: the first signal cancels them and
/// shows `notice` (on a thread of its own, so the handler never waits for a terminal); the
/// second exits at once. An operation started after the first signal must be cancelled by the
/// caller (see [`pressed`]).
pub fn install(restorer: Arc<BackupRestorer>, notice: impl Fn() + Send + Sync + 'static) -> Result<(), Failure> {
    let notice = Arc::new(notice);
    ctrlc::set_handler(move || {
        if PRESSED.fetch_add(1, Ordering::SeqCst) == 0 {
            restorer.cancel_license_backup();
            restorer.cancel_license_restore();
            let notice = Arc::clone(&notice);
            std::thread::spawn(move || notice());
        } else {
            std::process::exit(i32::from(exit::CANCELLED));
        }
    })
    .map_err(|e| Failure::new(ErrorCode::Internal, format!("cannot install the Ctrl-C handler: {e}")))
}
