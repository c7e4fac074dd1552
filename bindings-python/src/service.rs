//! `EmbeddedService`: the in-process License Management Service.

use std::path::PathBuf;
use std::sync::Arc;

use license_backup::ServicePolicy;
use license_backup::interface;
use pyo3::prelude::*;

use crate::convert::{self, ToPy};
use crate::{OrRaise, generated};

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
            .map_err(|e| crate::protector::raise(py, &e, &protector))?;
        Ok(EmbeddedService { inner: Arc::new(service) })
    }

    /// Takes the service offline (or back online): while offline, restores and quota queries
    /// fail with `ServiceUnavailableError`.
    fn set_online(&self, online: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.set_online(convert::arg(online, "online", &interface::BOOL)?);
        Ok(())
    }

    /// What the ledger holds: reservations by state, licenses and devices counted
    /// (a `LedgerAudit`).
    fn audit<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = &self.inner;
        let audit = py.detach(|| inner.audit()).or_raise(py)?;
        audit.to_py(py)
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
