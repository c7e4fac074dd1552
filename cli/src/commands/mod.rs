//! The commands, one module each, and what the two operations share.
//!
//! A command prints its results for people as it goes, puts the fields of its JSON summary in
//! `fields`, and returns how it ended; `main` prints the error line and the summary.

mod backup;
mod inspect;
mod list;
mod quota;
mod restore;
mod verify;

use std::path::Path;
use std::sync::Arc;

use license_backup::{
    BackupRestorer, ErrorCode, OperationHandle, OperationKind, PropertyValue, StatusCallback, Summary,
};
use serde_json::{Map, Value, json};

use crate::args::Command;
use crate::exit::Failure;
use crate::reporter::Reporter;
use crate::signals;
use crate::ui::Ui;

/// The fields of a command's JSON summary.
pub type Fields = Map<String, Value>;

/// Runs `command`; returns its name and how it ended.
pub fn run(command: &Command, ui: &Ui, fields: &mut Fields) -> (&'static str, Result<(), Failure>) {
    match command {
        Command::Backup(args) => ("backup", backup::run(args, ui, fields)),
        Command::Restore(args) => ("restore", restore::run(args, ui, fields)),
        Command::Quota(args) => ("quota", quota::run(args, ui, fields)),
        Command::Inspect(args) => ("inspect", inspect::run(args, ui, fields)),
        Command::List(args) => ("list", list::run(args, ui, fields)),
        Command::Verify(args) => ("verify", verify::run(args, ui, fields)),
    }
}

/// A folder given on the command line as the string value a path property takes.
fn folder_value(flag: &str, path: &Path) -> Result<PropertyValue, Failure> {
    match path.to_str() {
        Some(s) => Ok(PropertyValue::String(s.to_string())),
        None => Err(Failure::new(ErrorCode::InvalidArgument, format!("{flag} {} is not valid UTF-8", path.display()))),
    }
}

/// Runs one operation of `restorer` with a reporter, Ctrl-C cancelling it, and waits for its
/// end. `cancelled` is the notice shown when Ctrl-C comes; `status` what the spinner says
/// before the first PROGRESS.
fn operate(
    ui: &Ui,
    restorer: &Arc<BackupRestorer>,
    kind: OperationKind,
    status: &str,
    cancelled: &'static str,
    start: impl FnOnce(Arc<dyn StatusCallback>) -> license_backup::Result<OperationHandle>,
) -> Result<Summary, Failure> {
    let reporter = Arc::new(Reporter::new(ui, kind, status));
    let notice_to = Arc::clone(&reporter);
    let notice = format!("{}: cancelling; {cancelled} (Ctrl-C again quits at once)", kind.name());
    let notice = ui.err(&notice, crate::ui::Paint::Warn);
    signals::install(Arc::clone(restorer), move || notice_to.notice(&notice))?;
    let callback: Arc<dyn StatusCallback> = reporter.clone();
    let handle = start(callback)?;
    if signals::pressed() {
        handle.cancel();
    }
    let outcome = handle.wait();
    signals::settle();
    outcome.map_err(|e| {
        let mut failure = Failure::from(e);
        failure.refused = reporter.refused();
        failure
    })
}

/// The counts of a summary, for the JSON summary (zeros when the operation failed).
fn summary_fields(fields: &mut Fields, summary: &Summary) {
    fields.insert("licenses".into(), json!(summary.licenses));
    fields.insert("restricted".into(), json!(summary.restricted));
    fields.insert("skipped".into(), json!(summary.skipped));
    fields.insert("bytes".into(), json!(summary.bytes));
    fields.insert("duration_ms".into(), json!(summary.duration_ms));
}
