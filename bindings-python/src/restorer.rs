//! `BackupRestorer`: properties and the asynchronous operations.

use std::sync::Arc;

use license_backup::{Error, ErrorCode, LicenseService, OperationHandle, Property, StatusCallback};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use license_backup::interface::{self, ArgPath, Type};

use crate::convert::{self, ToPy};
use crate::operation::{Operation, PyCallback, Shared};
use crate::service::{EmbeddedService, RemoteService};
use crate::store::LicenseStore;
use crate::{Engine, OrRaise, generated};

/// Backs up and restores the licenses of one store (`WMCreateBackupRestorer`), with named
/// properties (`IWMBackupRestoreProps`) and asynchronous operations that report status events
/// to a callable on the operation's delivery thread.
#[pyclass(module = "license_backup._native", frozen, weakref)]
pub struct BackupRestorer {
    inner: license_backup::BackupRestorer,
    store: Py<LicenseStore>,
    service: Py<PyAny>,
}

impl BackupRestorer {
    /// Starts an operation on the folder in property `folder` with a callback bridge to
    /// `callback` (given lists of events when `batched`).
    fn start<F>(
        &self,
        py: Python<'_>,
        callback: Option<Py<PyAny>>,
        batched: bool,
        folder: Property,
        start: F,
    ) -> PyResult<Operation>
    where
        F: FnOnce(Arc<dyn StatusCallback>) -> license_backup::Result<OperationHandle>,
    {
        // A restore that individualizes wraps the new seed with the store's protector: its
        // exception becomes the cause of ProtectorFailedError. The folder is the `filename`
        // of an error about it.
        let folder = self.inner.path_property(folder.name()).or_raise(py)?;
        let shared = Arc::new(Shared::new(self.store.get().protector.host.clone(), folder));
        let handle = start(Arc::new(PyCallback::new(callback, batched, Arc::clone(&shared)))).or_raise(py)?;
        Ok(Operation::new(handle, shared))
    }

    /// The Python value of property `name` (a path as `os.fsdecode` makes it).
    fn value<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        if Property::from_name(name).is_some_and(Property::is_path) {
            let path = self.inner.path_property(name).or_raise(py)?;
            return path.map(|p| Ok(p.as_os_str().into_pyobject(py)?.into_any())).transpose();
        }
        let value = self.inner.get_property(name).or_raise(py)?;
        value.map(|v| convert::property_object(py, &v)).transpose()
    }
}

impl Engine for BackupRestorer {
    type Core = license_backup::BackupRestorer;

    fn call<T, F>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        T: Send,
        F: Send + FnOnce(&license_backup::BackupRestorer) -> license_backup::Result<T>,
    {
        py.detach(|| f(&self.inner)).or_raise(py)
    }
}

// The generated entry points (entries.rs) and these hand-written methods.
crate::entries::backup_restorer_methods! {
    /// A restorer over `store`, authorizing restores with `service`.
    #[new]
    fn new(store: Bound<'_, PyAny>, service: Bound<'_, PyAny>) -> PyResult<Self> {
        let py = store.py();
        let store = store.cast_into::<LicenseStore>().map_err(|e| {
            let value = e.into_inner();
            convert::invalid(&value, &Type::Object("LicenseStore"), &ArgPath::arg("store"))
        })?;
        let engine_store = store.get().get()?;
        let engine_service: Arc<dyn LicenseService> = if let Ok(s) = service.cast::<EmbeddedService>() {
            s.get().inner.clone()
        } else if let Ok(s) = service.cast::<RemoteService>() {
            s.get().inner.clone()
        } else {
            return Err(crate::py_err(
                py,
                &Error::new(
                    ErrorCode::InvalidArgument,
                    format!("service must be an EmbeddedService or a RemoteService, not {}", service.repr()?),
                ),
            ));
        };
        Ok(BackupRestorer {
            inner: license_backup::create_backup_restorer(engine_store, engine_service),
            store: store.unbind(),
            service: service.unbind(),
        })
    }

    /// The store this restorer works on.
    #[getter]
    fn store(&self, py: Python<'_>) -> Py<LicenseStore> {
        self.store.clone_ref(py)
    }

    /// The License Management Service this restorer uses.
    #[getter]
    fn service(&self, py: Python<'_>) -> Py<PyAny> {
        self.service.clone_ref(py)
    }

    /// Sets a property: a path (`str`, `bytes` or `os.PathLike`, as `os.fsencode` reads it) for
    /// the folders, `int` (u32) for counts, `bool` for flags.
    fn set_property(&self, py: Python<'_>, name: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let name: String = convert::arg(name, "name", &interface::STRING)?;
        let name = name.as_str();
        if Property::from_name(name).is_some_and(Property::is_path) && convert::is_path_like(value) {
            let path = convert::path(value, name)?;
            return self.inner.set_path_property(name, &path).or_raise(py);
        }
        match convert::property_value(value, name)? {
            Some(v) => self.inner.set_property(name, v).or_raise(py),
            None => {
                // Not a value type the engine has: report it as the engine would.
                self.inner.get_property(name).or_raise(py)?;
                let expected = Property::from_name(name).map(|p| format!("{:?}", p.value_type())).unwrap_or_default();
                Err(crate::py_err(
                    py,
                    &Error::new(
                        ErrorCode::WrongPropertyType,
                        format!("property {name} takes a {expected} value, not {}", value.get_type().name()?),
                    ),
                ))
            }
        }
    }

    /// A property's value by name; `None` if it is a known property that is not set. A path
    /// is the `str` `os.fsdecode` makes of it (surrogate escapes for a name that is not UTF-8).
    fn get_property<'py>(&self, py: Python<'py>, name: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let name: String = convert::arg(name, "name", &interface::STRING)?;
        self.value(py, &name)
    }

    /// The `index`-th property set (in the order they were first set), as `(name, value)`.
    fn property_by_index<'py>(&self, py: Python<'py>, index: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
        let index: u32 = convert::arg(index, "index", &interface::U32)?;
        let (name, _) = self.inner.property_by_index(index as usize).or_raise(py)?;
        let value = self.value(py, &name)?.unwrap_or_else(|| py.None().into_bound(py));
        PyTuple::new(py, [name.into_pyobject(py)?.into_any(), value])
    }

    /// How many properties are set.
    fn property_count(&self) -> usize {
        self.inner.property_count()
    }

    /// Starts backing up to the folder in `BackupPath`; `callback(event)` receives every status
    /// event, in order, on the operation's delivery thread (with `batched`, `callback(events)`
    /// receives them as lists, one per batch). Raises at once for `PATH_NOT_SET` and `BUSY`.
    #[pyo3(signature = (overwrite = None, callback = None, *, batched = false))]
    fn backup_licenses(
        &self,
        py: Python<'_>,
        overwrite: Option<&Bound<'_, PyAny>>,
        callback: Option<Py<PyAny>>,
        batched: bool,
    ) -> PyResult<Operation> {
        let flags = generated::backup_flags(overwrite)?;
        self.start(py, callback, batched, Property::BackupPath, |cb| self.inner.backup_licenses(flags, cb))
    }

    /// Starts restoring from the folder in `RestorePath`; see `backup_licenses`.
    #[pyo3(signature = (individualize = None, replace_existing = None, callback = None, *, batched = false))]
    fn restore_licenses(
        &self,
        py: Python<'_>,
        individualize: Option<&Bound<'_, PyAny>>,
        replace_existing: Option<&Bound<'_, PyAny>>,
        callback: Option<Py<PyAny>>,
        batched: bool,
    ) -> PyResult<Operation> {
        let flags = generated::restore_flags(individualize, replace_existing)?;
        self.start(py, callback, batched, Property::RestorePath, |cb| self.inner.restore_licenses(flags, cb))
    }

    /// What the restore quota allows for the archive in `RestorePath` onto this device (onto a
    /// new identity of it with `individualize`).
    #[pyo3(signature = (*, individualize = None))]
    fn restore_quota<'py>(
        &self,
        py: Python<'py>,
        individualize: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let individualize = generated::quota_options(individualize)?.individualize;
        let flags = license_backup::RestoreFlags { individualize, replace_existing: false };
        let inner = &self.inner;
        let folder = inner.path_property(Property::RestorePath.name()).or_raise(py)?;
        let quota =
            py.detach(|| inner.restore_quota_with(flags)).map_err(|e| crate::py_err_at(py, &e, folder.as_deref()))?;
        quota.to_py(py)
    }
}
