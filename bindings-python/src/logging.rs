//! The core's diagnostics into Python: each record is handed, on the thread that logged it, to
//! the facade's forwarding function (`license_backup._logging._forward`), which gives it to the
//! standard `logging` module. Threads of ours attach through the exit gate, so no record is
//! forwarded once the interpreter is exiting.

use std::sync::Arc;

use license_backup::diagnostics::{self, LogLevel, LogRecord, LogSink};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::OrRaise;
use crate::operation::attach;

/// Hands records to a Python callable `(level, target, message, fields)`.
struct PythonSink {
    forward: Py<PyAny>,
}

impl LogSink for PythonSink {
    fn log(&self, record: LogRecord) {
        attach(|py| {
            let LogRecord { level, target, message, fields } = record;
            if let Err(e) = self.forward.call1(py, (level.name(), target, message, fields)) {
                // A broken handler must not break the library: Python reports it as unraisable.
                e.write_unraisable(py, None);
            }
        });
    }
}

/// Sends the core's records at `level` (`"error"`, `"warn"`, `"info"`, `"debug"`, `"trace"`)
/// and above to `forward(level, target, message, fields)`; `None` stops forwarding.
#[pyfunction]
#[pyo3(signature = (forward, level = "debug"))]
pub(crate) fn _set_log_sink(py: Python<'_>, forward: Option<Py<PyAny>>, level: &str) -> PyResult<()> {
    let level =
        LogLevel::from_name(level).ok_or_else(|| PyValueError::new_err(format!("unknown log level {level:?}")))?;
    let sink = forward.map(|forward| Arc::new(PythonSink { forward }) as Arc<dyn LogSink>);
    diagnostics::install(sink, level).or_raise(py)
}
