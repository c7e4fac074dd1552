//! `Protector`: who holds the secret seed of a store or a ledger. `Protector.unprotected()`,
//! `Protector.keyring(service)` (the platform keystore) or a host protector: any Python object
//! with `wrap(bytes) -> bytes` and `unwrap(bytes) -> bytes | None`.

use std::sync::{Arc, Mutex};

use license_backup::{Error, ErrorCode, KeyProtector, ProtectedFile};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use zeroize::Zeroizing;

/// A Python object as a key protector. `wrap` and `unwrap` are called with the thread attached
/// to the interpreter (from the calling thread when a store or a service is opened, from an
/// operation's worker thread when a restore individualizes). An exception is kept as the cause
/// of the `ProtectorFailedError` the call raises.
pub(crate) struct HostProtector {
    obj: Py<PyAny>,
    label: String,
    failure: Mutex<Option<PyErr>>,
}

impl HostProtector {
    /// The exception the protector last raised, taken (the cause of `ProtectorFailedError`).
    pub(crate) fn take_failure(&self) -> Option<PyErr> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn call(&self, method: &str, arg: &[u8]) -> license_backup::Result<Option<Zeroizing<Vec<u8>>>> {
        Python::attach(|py| {
            let failed = |e: PyErr| {
                let message = format!("the host protector's {method}() raised {e}");
                *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Error::new(ErrorCode::ProtectorFailed, message)
            };
            let result = self.obj.bind(py).call_method1(method, (PyBytes::new(py, arg),)).map_err(failed)?;
            if result.is_none() {
                return Ok(None);
            }
            let bytes = result.cast::<PyBytes>().map_err(|_| {
                Error::new(
                    ErrorCode::ProtectorFailed,
                    format!("the host protector's {method}() returned {}, not bytes", type_name(&result)),
                )
            })?;
            Ok(Some(Zeroizing::new(bytes.as_bytes().to_vec())))
        })
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "an object".into())
}

impl KeyProtector for HostProtector {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn wrap(&self, secret: &[u8], _file: &ProtectedFile) -> license_backup::Result<Vec<u8>> {
        match self.call("wrap", secret)? {
            Some(wrapped) => Ok(wrapped.to_vec()),
            None => Err(Error::new(ErrorCode::ProtectorFailed, "the host protector's wrap() returned None")),
        }
    }

    fn unwrap(&self, wrapped: &[u8], _file: &ProtectedFile) -> license_backup::Result<Zeroizing<Vec<u8>>> {
        self.call("unwrap", wrapped)?.ok_or_else(|| {
            Error::new(
                ErrorCode::ProtectorMismatch,
                format!("the {} protector cannot unwrap this file's secret", self.label),
            )
        })
    }
}

/// Who holds the secret seed of a store (the device identity, which seals every content key)
/// or of an embedded service's ledger (which unwraps every archive's data key).
///
/// * ``Protector.unprotected()``: the seed in clear in the file. Whoever can read the file has
///   every content key it seals.
/// * ``Protector.keyring(service=None)``: the platform keystore (Secret Service on Linux, the
///   Keychain on macOS, the Credential Manager on Windows) holds a wrapping key per file.
/// * ``Protector.host(obj)``: ``obj.wrap(seed: bytes) -> bytes`` and
///   ``obj.unwrap(wrapped: bytes) -> bytes | None`` (``None``: not wrapped by this protector, so
///   ``ProtectorMismatchError``). An exception becomes ``ProtectorFailedError`` with it as the
///   ``__cause__``. The seed passes through ``bytes`` objects the engine cannot wipe.
#[pyclass(module = "license_backup._native", frozen)]
#[derive(Clone)]
pub struct Protector {
    pub(crate) inner: license_backup::Protector,
    pub(crate) host: Option<Arc<HostProtector>>,
}

#[pymethods]
impl Protector {
    /// The seed in clear in the file.
    #[staticmethod]
    fn unprotected() -> Self {
        Protector { inner: license_backup::Protector::unprotected(), host: None }
    }

    /// The platform keystore, its entries filed under `service` (default ``"license-backup"``).
    #[staticmethod]
    #[pyo3(signature = (service = None))]
    fn keyring(service: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let service: Option<String> =
            crate::convert::option(service, "service", &license_backup::interface::OPT_TEXT, None)?;
        let service = service.unwrap_or_else(|| license_backup::KeyringProtector::DEFAULT_SERVICE.into());
        Ok(Protector {
            inner: license_backup::Protector::new(Arc::new(license_backup::KeyringProtector::new(service))),
            host: None,
        })
    }

    /// A protector made of a Python object with ``wrap`` and ``unwrap`` methods.
    #[staticmethod]
    fn host(obj: Bound<'_, PyAny>) -> PyResult<Self> {
        for method in ["wrap", "unwrap"] {
            if !obj.hasattr(method)? || !obj.getattr(method)?.is_callable() {
                return Err(crate::py_err(
                    obj.py(),
                    &license_backup::Error::new(
                        ErrorCode::InvalidArgument,
                        format!(
                            "protector must be a Protector or an object with callable wrap(bytes) and \
                             unwrap(bytes) methods; {} has no {method}",
                            type_name(&obj)
                        ),
                    ),
                ));
            }
        }
        let host = Arc::new(HostProtector {
            label: format!("host ({})", type_name(&obj)),
            obj: obj.unbind(),
            failure: Mutex::new(None),
        });
        Ok(Protector {
            inner: license_backup::Protector::new(Arc::clone(&host) as Arc<dyn KeyProtector>),
            host: Some(host),
        })
    }

    /// ``"unprotected"``, ``"keyring (<service>)"`` or ``"host (<type>)"``.
    #[getter]
    fn label(&self) -> String {
        self.inner.label()
    }

    fn __repr__(&self) -> String {
        format!("Protector({:?})", self.inner.label())
    }
}

/// The protector a `protector=` argument names: a `Protector`, an object with `wrap`/`unwrap`
/// (made a host protector), or `None` for `Protector.unprotected()`.
pub(crate) fn from_arg(arg: Option<&Bound<'_, PyAny>>) -> PyResult<Protector> {
    match arg {
        None => Ok(Protector::unprotected()),
        Some(a) if a.is_none() => Ok(Protector::unprotected()),
        Some(a) => match a.cast::<Protector>() {
            Ok(p) => Ok(p.get().clone()),
            Err(_) => Protector::host(a.clone()),
        },
    }
}

/// The Python exception for a core error opening the file at `path` (its `filename` when it is
/// an `OSError`), with the host protector's exception as its cause when the protector failed.
pub(crate) fn raise(
    py: Python<'_>,
    err: &license_backup::Error,
    protector: &Protector,
    path: &std::path::Path,
) -> PyErr {
    let raised = crate::py_err_at(py, err, Some(path));
    if err.code() == ErrorCode::ProtectorFailed {
        if let Some(host) = &protector.host {
            raised.set_cause(py, host.take_failure());
        }
    }
    raised
}
