//! `EmbeddedService`: the in-process License Management Service.

use std::path::PathBuf;
use std::sync::Arc;

use license_backup::ServicePolicy;
use license_backup::interface;
use pyo3::prelude::*;

use crate::convert;
use crate::{Engine, OrRaise, generated};

/// The embedded License Management Service: authorizes restores and keeps the restore quota
/// in a SQLite ledger at `path`. Devices (stores) on one machine share it by opening the same
/// file. `max_devices` (default 4) is how many distinct devices a license may live on;
/// `refusal_url` is the page a refusal points to.
#[pyclass(module = "license_backup._native", frozen, weakref)]
pub struct EmbeddedService {
    pub(crate) inner: Arc<license_backup::EmbeddedService>,
}

impl Engine for EmbeddedService {
    type Core = license_backup::EmbeddedService;

    fn call<T, F>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        T: Send,
        F: Send + FnOnce(&license_backup::EmbeddedService) -> license_backup::Result<T>,
    {
        py.detach(|| f(&self.inner)).or_raise(py)
    }
}

// The generated entry points (entries.rs) and these hand-written methods.
crate::entries::embedded_service_methods! {
    /// Opens (or creates, with a fresh key pair) the service ledger at `path` (`str`, `bytes` or
    /// `os.PathLike`, as `os.fsencode` reads it).
    #[new]
    /// `protector` holds the service's seed, as for `LicenseStore` (default
    /// `Protector.unprotected()`).
    #[pyo3(signature = (path, max_devices = None, refusal_url = None, *, protector = None))]
    fn new(
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        max_devices: Option<&Bound<'_, PyAny>>,
        refusal_url: Option<&Bound<'_, PyAny>>,
        protector: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let path = convert::path(path, "path")?;
        let options = generated::service_options(max_devices, refusal_url)?;
        let protector = crate::protector::from_arg(protector)?;
        let policy = ServicePolicy::with_overrides(options.max_devices, options.refusal_url);
        let options = license_backup::ServiceOptions::protected(policy, protector.inner.clone());
        let service = py
            .detach(|| license_backup::EmbeddedService::open_with(&path, options))
            .map_err(|e| crate::protector::raise(py, &e, &protector, &path))?;
        Ok(EmbeddedService { inner: Arc::new(service) })
    }

    /// The path of the ledger file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.path().to_path_buf()
    }

    /// How many distinct devices a license may live on.
    #[getter]
    fn max_devices(&self) -> u32 {
        self.inner.policy().max_devices
    }

    /// The page a refusal points to.
    #[getter]
    fn refusal_url(&self) -> String {
        self.inner.policy().refusal_url.clone()
    }

    fn __repr__(&self) -> String {
        format!("EmbeddedService({:?}, max_devices={})", self.inner.path().display().to_string(), self.max_devices())
    }
}

/// A License Management Service reached over HTTPS (`docs/service-protocol.md`): `url` is
/// `https://host[:port][/prefix]` (`http://` only for a loopback address). `token` is the
/// bearer token the content provider gave the application; `ca_file` a PEM file of CA
/// certificates trusted besides the system's; `cert_pins` SHA-256 fingerprints (hex) of the
/// only server certificates accepted; `service_keys` fingerprints of the service keys a backup
/// may wrap to; `timeout` the connect/read/write timeout in seconds (default 30); `retries`
/// how many times a call that failed in transit is tried again (default 2).
#[pyclass(module = "license_backup._native", frozen, weakref)]
pub struct RemoteService {
    pub(crate) inner: Arc<license_backup::RemoteService>,
}

#[pymethods]
impl RemoteService {
    /// A client of the service at `url`; nothing is sent until a call needs the service.
    #[new]
    #[pyo3(signature = (url, token = None, ca_file = None, cert_pins = None, service_keys = None, timeout = None, retries = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        url: &Bound<'_, PyAny>,
        token: Option<&Bound<'_, PyAny>>,
        ca_file: Option<&Bound<'_, PyAny>>,
        cert_pins: Option<&Bound<'_, PyAny>>,
        service_keys: Option<&Bound<'_, PyAny>>,
        timeout: Option<&Bound<'_, PyAny>>,
        retries: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let url: String = convert::arg(url, "url", &interface::STRING)?;
        let o = generated::remote_service_options(token, ca_file, cert_pins, service_keys, timeout, retries)?;
        // The core checks the timeout's range; a number too large for a Duration is out of it.
        let timeout = o
            .timeout
            .map(|t| {
                std::time::Duration::try_from_secs_f64(t).map_err(|_| {
                    license_backup::Error::new(
                        license_backup::ErrorCode::InvalidArgument,
                        "the timeout must be more than 0 and at most an hour",
                    )
                })
            })
            .transpose()
            .or_raise(py)?;
        let options = license_backup::RemoteOptions {
            token: o.token,
            ca_file: o.ca_file,
            cert_pins: o.cert_pins.unwrap_or_default(),
            service_keys: o.service_keys.unwrap_or_default(),
            timeout,
            retries: o.retries,
        };
        let service = license_backup::RemoteService::new(&url, options).or_raise(py)?;
        Ok(RemoteService { inner: Arc::new(service) })
    }

    /// The service's URL.
    #[getter]
    fn url(&self) -> String {
        self.inner.url().to_string()
    }

    fn __repr__(&self) -> String {
        format!("RemoteService({:?})", self.inner.url())
    }
}
