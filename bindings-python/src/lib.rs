//! # license-backup-python
//!
//! The native module `license_backup._native` of the Python package `license-backup`: a thin
//! pyo3 adapter over the [`license_backup`] core that adds no behaviour. The Python facade
//! (`bindings-python/python/license_backup/`) adds the idiom: the property mapping, asyncio,
//! typed records and one exception class per error code.
//!
//! ## Threads
//! * Every call that touches the store or the service runs with the thread detached from the
//!   interpreter (`py.detach`), so other Python threads run meanwhile.
//! * Status callbacks run on the operation's delivery thread, which the core hands the events
//!   in batches (whatever queued up meanwhile); the thread attaches to the interpreter once per
//!   batch, only while it calls the callable for each event of it, with [`Python::try_attach`]
//!   behind a gate that the facade closes at exit: an operation still running then ends
//!   (`CALLBACK_FAILED`) and no thread of ours touches the interpreter while it finalizes. The
//!   thread keeps one Python thread state from its first batch to END (detached between
//!   batches) rather than making one per batch. Event objects carry `emitted_ns`, the core's
//!   emission time on the clock of `time.monotonic_ns()`.
//! * An exception raised by a callback before END stops the operation (the core ends it with
//!   `CALLBACK_FAILED`); `Operation.wait()` raises `CallbackFailedError` with the callback's
//!   exception as its `__cause__`. One raised at END goes to `sys.unraisablehook` and is not
//!   returned to the core: the END callback never changes the outcome.
//! * `Operation.wait()` waits detached, in slices, checking for signals between them so Ctrl-C
//!   interrupts it.
//!
//! No panic crosses into Python: pyo3 turns a panic in a method into a Python exception, and
//! the core catches panics in jobs and callbacks.

#![warn(missing_docs)]

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

mod convert;
mod entries;
mod generated;
mod logging;
mod operation;
mod protector;
mod restorer;
mod service;
mod store;

pub use operation::Operation;
pub use protector::Protector;
pub use restorer::BackupRestorer;
pub use service::{EmbeddedService, RemoteService};
pub use store::LicenseStore;

/// The facade module the native code builds its records, events and exceptions from.
const ERRORS_MODULE: &str = "license_backup._errors";

/// Converts a core error into the Python exception of its code (`BackupExistsError`, ...).
pub(crate) fn error_object<'py>(py: Python<'py>, err: &license_backup::Error) -> PyResult<Bound<'py, PyAny>> {
    static ERROR_FOR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let error_for = ERROR_FOR.import(py, ERRORS_MODULE, "error_for")?;
    error_for.call1((err.code().number(), err.message()))
}

/// Sets `filename` on the exception object of a path error (a 2xx code, an `OSError`): the
/// path the error is about, as `os.fsdecode` makes it. For `BACKUP_EXISTS` and
/// `ARCHIVE_MISSING` under a folder, that is the archive in it.
pub(crate) fn set_filename(
    obj: &Bound<'_, PyAny>,
    code: license_backup::ErrorCode,
    path: &std::path::Path,
) -> PyResult<()> {
    use license_backup::ErrorCode::{ArchiveMissing, BackupExists};
    if !(200..300).contains(&code.number()) || !obj.is_instance_of::<pyo3::exceptions::PyOSError>() {
        return Ok(());
    }
    let archive;
    let path = if matches!(code, BackupExists | ArchiveMissing) && path.is_dir() {
        archive = path.join(license_backup::archive::ARCHIVE_FILE_NAME);
        archive.as_path()
    } else {
        path
    };
    obj.setattr(pyo3::intern!(obj.py(), "filename"), path.as_os_str())
}

/// [`py_err`] with `filename` set from `path` (see [`set_filename`]).
pub(crate) fn py_err_at(py: Python<'_>, err: &license_backup::Error, path: Option<&std::path::Path>) -> PyErr {
    let raised = py_err(py, err);
    if let Some(path) = path {
        if let Err(e) = set_filename(raised.value(py), err.code(), path) {
            e.write_unraisable(py, None);
        }
    }
    raised
}

/// The Python exception for a core error, ready to raise.
pub(crate) fn py_err(py: Python<'_>, err: &license_backup::Error) -> PyErr {
    match error_object(py, err) {
        Ok(obj) => PyErr::from_value(obj),
        // Only when the facade cannot be imported (a broken installation).
        Err(import_error) => {
            let e = PyRuntimeError::new_err(format!("{}: {}", err.code().name(), err.message()));
            e.set_cause(py, Some(import_error));
            e
        }
    }
}

/// `?`-friendly conversion of core results into Python exceptions.
pub(crate) trait OrRaise<T> {
    /// The value, or the Python exception of the error's code.
    fn or_raise(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> OrRaise<T> for license_backup::Result<T> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| py_err(py, &e))
    }
}

/// A native class over an engine object: the convention the generated entry points
/// (`entries.rs`) call the core through.
pub(crate) trait Engine {
    /// The core's object.
    type Core: Sync;

    /// Runs `f` on the core's object with the thread detached from the interpreter; the core's
    /// error becomes the exception of its code (`ValueError` once the object is closed).
    fn call<T, F>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        T: Send,
        F: Send + FnOnce(&Self::Core) -> license_backup::Result<T>;
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ARCHIVE_FILE_NAME", license_backup::archive::ARCHIVE_FILE_NAME)?;
    m.add_class::<LicenseStore>()?;
    m.add_class::<EmbeddedService>()?;
    m.add_class::<RemoteService>()?;
    m.add_class::<BackupRestorer>()?;
    m.add_class::<Operation>()?;
    m.add_class::<Protector>()?;
    let close_gate = wrap_pyfunction!(operation::_close_gate, m)?;
    m.add_function(close_gate.clone())?;
    // Private to the facade (`_logging.py`): an attribute, not in `__all__` or the stub.
    m.setattr("_set_log_sink", wrap_pyfunction!(logging::_set_log_sink, m)?)?;
    // Even when the facade is bypassed, no thread of ours attaches once exit has begun.
    m.py().import("atexit")?.call_method1("register", (close_gate,))?;
    Ok(())
}
