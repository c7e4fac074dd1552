//! `LicenseStore`: the device's licenses and catalog.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use license_backup::interface::{ArgPath, Type};
use license_backup::{CatalogEntry, ConflictPolicy, NewLicense, Rights};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::convert::{self, ToPy};
use crate::protector::Protector;
use crate::{OrRaise, generated};

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

    /// Runs `f` on the store with the thread detached from the interpreter.
    fn with<T, F>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        T: Send,
        F: Send + FnOnce(&license_backup::LicenseStore) -> license_backup::Result<T>,
    {
        let store = self.get()?;
        py.detach(|| f(&store)).or_raise(py)
    }
}

#[pymethods]
impl LicenseStore {
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

    /// This device's identity: 32 hex digits. It changes when a restore individualizes.
    fn device_id(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |s| s.device_id())
    }

    /// Adds a license. With `replace=False` an existing key ID raises `LicenseExistsError`.
    #[pyo3(signature = (license, *, replace = None))]
    fn add_license(
        &self,
        py: Python<'_>,
        license: &Bound<'_, PyAny>,
        replace: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let license: NewLicense = convert::arg(license, "license", &Type::Record("NewLicense"))?;
        let replace = generated::add_options(replace)?.replace;
        self.with(py, move |s| s.add_license(&license, ConflictPolicy::from_replace(replace)))
    }

    /// Adds many licenses in one transaction: all of them, or none.
    #[pyo3(signature = (licenses, *, replace = None))]
    fn add_licenses(
        &self,
        py: Python<'_>,
        licenses: &Bound<'_, PyAny>,
        replace: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let replace = generated::add_options(replace)?.replace;
        let list = Type::List(&Type::Record("NewLicense"));
        // A str is iterable, but not a list of licenses.
        if licenses.is_instance_of::<pyo3::types::PyString>() || licenses.is_instance_of::<PyBytes>() {
            return Err(convert::invalid(licenses, &list, &ArgPath::arg("licenses")));
        }
        let licenses = licenses
            .try_iter()
            .map_err(|_| convert::invalid(licenses, &list, &ArgPath::arg("licenses")))?
            .map(|l| convert::arg::<NewLicense>(&l?, "licenses[]", &Type::Record("NewLicense")))
            .collect::<PyResult<Vec<_>>>()?;
        self.with(py, move |s| s.add_licenses(&licenses, ConflictPolicy::from_replace(replace)))
    }

    /// The license with this key ID (without its content key), or `None`.
    fn get_license<'py>(&self, py: Python<'py>, key_id: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let key_id = convert::key_id(key_id)?;
        let found = self.with(py, move |s| s.get_license(&key_id))?;
        found.map(|l| l.to_py(py)).transpose()
    }

    /// Every license, ordered by key ID.
    fn list_licenses<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let all = self.with(py, |s| s.list_licenses())?;
        PyList::new(py, all.iter().map(|l| l.to_py(py)).collect::<PyResult<Vec<_>>>()?)
    }

    /// Removes a license; returns whether there was one. Its catalog entry stays.
    fn remove_license(&self, py: Python<'_>, key_id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key_id = convert::key_id(key_id)?;
        self.with(py, move |s| s.remove_license(&key_id))
    }

    /// How many licenses the store holds.
    fn license_count(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |s| s.license_count())
    }

    /// The content key of a license, opened with the device key. Raises
    /// `LicenseNotFoundError` if there is no such license.
    fn content_key<'py>(&self, py: Python<'py>, key_id: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        let key_id = convert::key_id(key_id)?;
        let key = self.with(py, move |s| s.content_key(&key_id))?;
        // The engine's buffer is wiped when `key` drops; the bytes object is Python's.
        Ok(PyBytes::new(py, &key))
    }

    /// Replaces the rights of a license (renewed by the application's license server) and seals
    /// its row again.
    fn update_rights(&self, py: Python<'_>, key_id: &Bound<'_, PyAny>, rights: &Bound<'_, PyAny>) -> PyResult<()> {
        let key_id = convert::key_id(key_id)?;
        let rights: Rights = convert::arg(rights, "rights", &Type::Record("Rights"))?;
        self.with(py, move |s| s.update_rights(&key_id, &rights))
    }

    /// Records one play: raises `PlayNotAllowedError`, `LicenseExpiredError` or
    /// `PlaysExhaustedError` when it may not be played; returns the rights after the play.
    fn use_play<'py>(&self, py: Python<'py>, key_id: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let key_id = convert::key_id(key_id)?;
        let rights = self.with(py, move |s| s.use_play(&key_id))?;
        rights.to_py(py)
    }

    /// Sets (replaces) the catalog entry of a key ID.
    fn set_catalog_entry(&self, py: Python<'_>, key_id: &Bound<'_, PyAny>, entry: &Bound<'_, PyAny>) -> PyResult<()> {
        let key_id = convert::key_id(key_id)?;
        let entry: CatalogEntry = convert::arg(entry, "entry", &Type::Record("CatalogEntry"))?;
        self.with(py, move |s| s.set_catalog_entry(&key_id, &entry))
    }

    /// The catalog entry of a key ID, or `None`.
    fn catalog_entry<'py>(&self, py: Python<'py>, key_id: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let key_id = convert::key_id(key_id)?;
        let entry = self.with(py, move |s| s.catalog_entry(&key_id))?;
        entry.map(|e| e.to_py(py)).transpose()
    }

    /// Removes the catalog entry of a key ID; returns whether there was one.
    fn remove_catalog_entry(&self, py: Python<'_>, key_id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key_id = convert::key_id(key_id)?;
        self.with(py, move |s| s.remove_catalog_entry(&key_id))
    }

    /// Checks the database and that every content key opens; returns how many were checked.
    fn verify(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |s| s.verify())
    }
}
