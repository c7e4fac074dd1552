//! `EmbeddedService`: the in-process License Management Service.

use std::path::PathBuf;
use std::sync::Arc;

use license_backup::ServicePolicy;
use pyo3::prelude::*;

use crate::OrRaise;

/// The embedded License Management Service: authorizes restores and keeps the restore quota
/// in a SQLite ledger at `path`. Devices (stores) on one machine share it by opening the same
/// file. `max_devices` (default 4) is how many distinct devices a license may live on;
/// `refusal_url` is the page a refusal points to.
#[pyclass(module = "license_backup._native", frozen, weakref)]
pub struct EmbeddedService {
    pub(crate) inner: Arc<license_backup::EmbeddedService>,
}

#[pymethods]
impl EmbeddedService {
    /// Opens (or creates, with a fresh key pair) the service ledger at `path`.
    #[new]
    /// `protector` holds the service's seed, as for `LicenseStore` (default
    /// `Protector.unprotected()`).
    #[pyo3(signature = (path, max_devices = None, refusal_url = None, *, protector = None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        max_devices: Option<u32>,
        refusal_url: Option<String>,
        protector: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let protector = crate::protector::from_arg(protector)?;
        let policy = ServicePolicy::with_overrides(max_devices, refusal_url);
        let options = license_backup::ServiceOptions::protected(policy, protector.inner.clone());
        let service = py
            .detach(|| license_backup::EmbeddedService::open_with(&path, options))
            .map_err(|e| crate::protector::raise(py, &e, &protector))?;
        Ok(EmbeddedService { inner: Arc::new(service) })
    }

    /// Takes the service offline (or back online): while offline, restores and quota queries
    /// fail with `ServiceUnavailableError`.
    fn set_online(&self, online: bool) {
        self.inner.set_online(online);
    }

    /// What the ledger holds: reservations by state, licenses and devices counted
    /// (a `LedgerAudit`).
    fn audit<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = &self.inner;
        let audit = py.detach(|| inner.audit()).or_raise(py)?;
        crate::convert::ledger_audit(py, &audit)
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
        url: &str,
        token: Option<String>,
        ca_file: Option<PathBuf>,
        cert_pins: Option<Vec<String>>,
        service_keys: Option<Vec<String>>,
        timeout: Option<f64>,
        retries: Option<u32>,
    ) -> PyResult<Self> {
        let timeout = timeout
            .map(|t| {
                if t.is_finite() && t > 0.0 && t <= 3600.0 {
                    Ok(std::time::Duration::from_secs_f64(t))
                } else {
                    Err(license_backup::Error::new(
                        license_backup::ErrorCode::InvalidArgument,
                        "the timeout must be more than 0 and at most 3600 seconds",
                    ))
                }
            })
            .transpose()
            .or_raise(py)?;
        let options = license_backup::RemoteOptions {
            token,
            ca_file,
            cert_pins: cert_pins.unwrap_or_default(),
            service_keys: service_keys.unwrap_or_default(),
            timeout,
            retries,
        };
        let service = license_backup::RemoteService::new(url, options).or_raise(py)?;
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
