//! `LicenseStore`: the device's licenses and catalog.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::convert;
use crate::protector::Protector;
use crate::{Engine, OrRaise};

/// The licenses stored on this device (a SQLite file), content keys sealed to the device key.
///
/// `LicenseStore(path)` opens the store at `path`, creating it with a fresh device identity if
/// it does not exist. Use it as a context manager, or call `close()`: afterwards every call
/// raises `ValueError`. Restorers made from the store keep the engine's store open until they
/// are dropped. Key IDs are UUID strings (or `uuid.UUID`).
#[pyclass(module = "license_backup._native", frozen, weakref)]
pub struct LicenseStore {
    inner: RwLock<Option<Arc<license_backup::LicenseStore>>>,
    path: PathBuf,
    pub(crate) protector: Protector,
}

impl LicenseStore {
    /// The engine's store, or `ValueError` once closed.
    pub(crate) fn get(&self) -> PyResult<Arc<license_backup::LicenseStore>> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| PyValueError::new_err(format!("the license store {} is closed", self.path.display())))
    }
}

impl Engine for LicenseStore {
    type Core = license_backup::LicenseStore;

    fn call<T, F>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        T: Send,
        F: Send + FnOnce(&license_backup::LicenseStore) -> license_backup::Result<T>,
    {
        let store = self.get()?;
        py.detach(|| f(&store)).or_raise(py)
    }
}

// The generated entry points (entries.rs) and these hand-written methods.
crate::entries::license_store_methods! {
    /// Opens (or creates) the store at `path` (`str`, `bytes` or `os.PathLike`, as `os.fsencode`
    /// reads it). `protector` holds the device's seed: `Protector.unprotected()` (the default:
    /// the seed in clear in the file), `Protector.keyring()`, or an object with `wrap`/`unwrap`;
    /// an unprotected store opened with a protector is protected in place.
    #[new]
    #[pyo3(signature = (path, *, protector = None))]
    fn new(py: Python<'_>, path: &Bound<'_, PyAny>, protector: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let path = convert::path(path, "path")?;
        let protector = crate::protector::from_arg(protector)?;
        let options = license_backup::StoreOptions::protected(protector.inner.clone());
        let opened = py
            .detach(|| license_backup::LicenseStore::open_with(&path, options))
            .map_err(|e| crate::protector::raise(py, &e, &protector, &path))?;
        Ok(LicenseStore { inner: RwLock::new(Some(Arc::new(opened))), path, protector })
    }

    /// The protector the store was opened with.
    #[getter]
    fn protector(&self) -> Protector {
        self.protector.clone()
    }

    /// The path of the store file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// Releases the store. Calling it again does nothing.
    fn close(&self) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().get()?;
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { " (closed)" } else { "" };
        format!("LicenseStore({:?}){state}", self.path.display().to_string())
    }
}
