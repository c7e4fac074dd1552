//! Conversions between the core's records and events and the facade's value classes
//! (`license_backup._types`): records are built by calling their class positionally, in field
//! order; events, the hot path, field by field without a call (see [`event`]).

use license_backup::{
    CatalogEntry, KeyId, LedgerAudit, License, NewLicense, OperationKind, Outcome, PropertyValue, Quota, Rights,
    StatusEvent, Summary,
};
use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyInt, PyString, PyTuple, PyType};
use pyo3::{ffi, intern};

use crate::OrRaise;

const TYPES_MODULE: &str = "license_backup._types";

/// A value class of the facade, by name (looked up once, then cached by pyo3's interning).
fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    static TYPES: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module = TYPES.get_or_try_init(py, || py.import(TYPES_MODULE).map(Bound::unbind))?;
    module.bind(py).getattr(name)
}

/// Parses a key ID given as a UUID string or a `uuid.UUID`.
pub(crate) fn key_id(obj: &Bound<'_, PyAny>) -> PyResult<KeyId> {
    let py = obj.py();
    if let Ok(text) = obj.cast::<PyString>() {
        return text.to_cow()?.parse::<KeyId>().or_raise(py);
    }
    static UUID: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    if obj.is_instance(UUID.import(py, "uuid", "UUID")?)? {
        return obj.str()?.to_cow()?.parse::<KeyId>().or_raise(py);
    }
    Err(PyTypeError::new_err(format!("a key ID is a UUID string or a uuid.UUID, not {}", obj.get_type().name()?)))
}

fn opt_attr<'py, T: for<'a> FromPyObject<'a, 'py, Error = PyErr>>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<Option<T>> {
    let value = obj.getattr(name)?;
    if value.is_none() { Ok(None) } else { value.extract().map(Some) }
}

fn attr<'py, T: for<'a> FromPyObject<'a, 'py, Error = PyErr>>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<T> {
    obj.getattr(name)?.extract()
}

/// Reads a `Rights`-like object (any object with the fields of `Rights`).
pub(crate) fn rights_from(obj: &Bound<'_, PyAny>) -> PyResult<Rights> {
    Ok(Rights {
        play: attr(obj, "play")?,
        burn: attr(obj, "burn")?,
        transfer: attr(obj, "transfer")?,
        backup_allowed: attr(obj, "backup_allowed")?,
        expires_at: opt_attr(obj, "expires_at")?,
        plays_remaining: opt_attr(obj, "plays_remaining")?,
    })
}

/// Reads a `NewLicense`-like object.
pub(crate) fn new_license_from(obj: &Bound<'_, PyAny>) -> PyResult<NewLicense> {
    let content_key = obj.getattr("content_key")?;
    let content_key = content_key
        .cast::<PyBytes>()
        .map_err(|_| PyTypeError::new_err("NewLicense.content_key must be bytes"))?
        .as_bytes()
        .to_vec();
    Ok(NewLicense {
        key_id: key_id(&obj.getattr("key_id")?)?,
        content_key,
        rights: rights_from(&obj.getattr("rights")?)?,
        issuer: attr(obj, "issuer")?,
        issued_at: attr(obj, "issued_at")?,
    })
}

/// Reads a `CatalogEntry`-like object.
pub(crate) fn catalog_from(obj: &Bound<'_, PyAny>) -> PyResult<CatalogEntry> {
    Ok(CatalogEntry {
        title: opt_attr(obj, "title")?,
        artist: opt_attr(obj, "artist")?,
        file_path: opt_attr(obj, "file_path")?,
    })
}

pub(crate) fn rights<'py>(py: Python<'py>, r: &Rights) -> PyResult<Bound<'py, PyAny>> {
    class(py, "Rights")?.call1((r.play, r.burn, r.transfer, r.backup_allowed, r.expires_at, r.plays_remaining))
}

pub(crate) fn catalog<'py>(py: Python<'py>, c: &CatalogEntry) -> PyResult<Bound<'py, PyAny>> {
    class(py, "CatalogEntry")?.call1((c.title.as_deref(), c.artist.as_deref(), c.file_path.as_deref()))
}

pub(crate) fn license<'py>(py: Python<'py>, l: &License) -> PyResult<Bound<'py, PyAny>> {
    let catalog = l.catalog.as_ref().map(|c| catalog(py, c)).transpose()?;
    class(py, "License")?.call1((l.key_id.to_string(), rights(py, &l.rights)?, l.issuer.as_str(), l.issued_at, catalog))
}

pub(crate) fn quota<'py>(py: Python<'py>, q: &Quota) -> PyResult<Bound<'py, PyAny>> {
    class(py, "Quota")?.call1((q.licenses, q.max_devices, q.restores_remaining, q.device_already_counted, q.allowed))
}

pub(crate) fn ledger_audit<'py>(py: Python<'py>, a: &LedgerAudit) -> PyResult<Bound<'py, PyAny>> {
    class(py, "LedgerAudit")?.call1((
        a.pending,
        a.confirmed,
        a.released,
        a.expired,
        a.licenses,
        a.placements,
        a.devices,
    ))
}

pub(crate) fn summary<'py>(py: Python<'py>, s: &Summary) -> PyResult<Bound<'py, PyAny>> {
    class(py, "Summary")?.call1((s.licenses, s.restricted, s.skipped, s.bytes, s.duration_ms))
}

fn error_code<'py>(py: Python<'py>, code: license_backup::ErrorCode) -> PyResult<Bound<'py, PyAny>> {
    static ERROR_CODE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    ERROR_CODE.import(py, crate::ERRORS_MODULE, "ErrorCode")?.call1((code.number(),))
}

/// An event class of the facade and its `tp_new` slot, looked up once.
struct EventClass {
    cls: Py<PyType>,
    new: Option<ffi::newfunc>,
}

fn event_class(py: Python<'_>, cell: &'static PyOnceLock<EventClass>, name: &str) -> PyResult<&'static EventClass> {
    cell.get_or_try_init(py, || {
        let cls = class(py, name)?.cast_into::<PyType>()?;
        // SAFETY: `cls` is a live type object; the facade's classes are heap types, for which
        // PyType_GetSlot works on every supported version (NULL otherwise: no fast path then).
        let slot = unsafe { ffi::PyType_GetSlot(cls.as_type_ptr(), ffi::Py_tp_new) };
        if slot.is_null() {
            let _ = PyErr::take(py); // a static type on 3.9 (SystemError): the slow path then
        }
        // SAFETY: the `Py_tp_new` slot, when set, is a `newfunc`.
        let new =
            (!slot.is_null()).then(|| unsafe { std::mem::transmute::<*mut std::ffi::c_void, ffi::newfunc>(slot) });
        Ok(EventClass { cls: cls.unbind(), new })
    })
}

/// Builds an instance of a facade event class as its generated `__init__` would, without
/// running it (a Python-level call per event would cost more than the rest of the delivery):
/// `object.__new__(cls)`, then `object.__setattr__` of each field in order, then `emitted_ns`.
/// The object is the one `cls(*values)` makes, plus `emitted_ns`.
fn build<'py>(
    py: Python<'py>,
    class: &EventClass,
    fields: &[(&Bound<'py, PyString>, Bound<'py, PyAny>)],
    emitted_ns: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let cls = class.cls.bind(py);
    let obj = match class.new {
        // SAFETY: `new` is the class's own tp_new, called with its type, an empty argument
        // tuple and no keywords, as `type.__call__` calls it; it returns a new reference or
        // NULL with an exception set.
        Some(new) => unsafe {
            Bound::from_owned_ptr_or_err(py, new(cls.as_type_ptr(), PyTuple::empty(py).as_ptr(), std::ptr::null_mut()))?
        },
        None => cls.call_method1(intern!(py, "__new__"), (cls,))?,
    };
    let set = |name: &Bound<'py, PyString>, value: &Bound<'py, PyAny>| -> PyResult<()> {
        // SAFETY: three live objects; PyObject_GenericSetAttr is `object.__setattr__` (what a
        // frozen dataclass's `__init__` calls) and returns -1 with an exception set on failure.
        if unsafe { ffi::PyObject_GenericSetAttr(obj.as_ptr(), name.as_ptr(), value.as_ptr()) } < 0 {
            Err(PyErr::fetch(py))
        } else {
            Ok(())
        }
    };
    for (name, value) in fields {
        set(name, value)?;
    }
    set(intern!(py, "emitted_ns"), emitted_ns.into_pyobject(py)?.as_any())?;
    Ok(obj)
}

fn operation_name(py: Python<'_>, kind: OperationKind) -> Bound<'_, PyAny> {
    match kind {
        OperationKind::Backup => intern!(py, "backup").clone().into_any(),
        OperationKind::Restore => intern!(py, "restore").clone().into_any(),
    }
}

fn int<'py>(py: Python<'py>, value: u64) -> PyResult<Bound<'py, PyAny>> {
    Ok(value.into_pyobject(py)?.into_any())
}

fn opt_str<'py>(py: Python<'py>, value: Option<&str>) -> Bound<'py, PyAny> {
    match value {
        Some(s) => PyString::new(py, s).into_any(),
        None => py.None().into_bound(py),
    }
}

/// The facade's event object for an event the engine emitted at `emitted_ns`.
pub(crate) fn event<'py>(py: Python<'py>, event: &StatusEvent, emitted_ns: u64) -> PyResult<Bound<'py, PyAny>> {
    static BEGIN: PyOnceLock<EventClass> = PyOnceLock::new();
    static PROGRESS: PyOnceLock<EventClass> = PyOnceLock::new();
    static RESTRICTED: PyOnceLock<EventClass> = PyOnceLock::new();
    static CONNECTING: PyOnceLock<EventClass> = PyOnceLock::new();
    static DISCONNECTING: PyOnceLock<EventClass> = PyOnceLock::new();
    static REFUSED: PyOnceLock<EventClass> = PyOnceLock::new();
    static END: PyOnceLock<EventClass> = PyOnceLock::new();
    let operation = intern!(py, "operation");
    match event {
        StatusEvent::Begin { operation: kind } => {
            build(py, event_class(py, &BEGIN, "Begin")?, &[(operation, operation_name(py, *kind))], emitted_ns)
        }
        StatusEvent::Progress { operation: kind, done, total } => build(
            py,
            event_class(py, &PROGRESS, "Progress")?,
            &[
                (operation, operation_name(py, *kind)),
                (intern!(py, "done"), int(py, *done)?),
                (intern!(py, "total"), int(py, *total)?),
            ],
            emitted_ns,
        ),
        StatusEvent::RestrictedLicense { key_id, title } => build(
            py,
            event_class(py, &RESTRICTED, "RestrictedLicense")?,
            &[
                (intern!(py, "key_id"), PyString::new(py, &key_id.to_string()).into_any()),
                (intern!(py, "title"), opt_str(py, title.as_deref())),
            ],
            emitted_ns,
        ),
        StatusEvent::Connecting => build(py, event_class(py, &CONNECTING, "Connecting")?, &[], emitted_ns),
        StatusEvent::Disconnecting => build(py, event_class(py, &DISCONNECTING, "Disconnecting")?, &[], emitted_ns),
        StatusEvent::Refused { code, message, url } => build(
            py,
            event_class(py, &REFUSED, "Refused")?,
            &[
                (intern!(py, "code"), error_code(py, *code)?),
                (intern!(py, "message"), PyString::new(py, message).into_any()),
                (intern!(py, "url"), PyString::new(py, url).into_any()),
            ],
            emitted_ns,
        ),
        StatusEvent::End { operation: kind, outcome } => {
            let (summary, error) = match outcome {
                Outcome::Completed(s) => (summary(py, s)?, py.None().into_bound(py)),
                Outcome::Failed(e) => (py.None().into_bound(py), crate::error_object(py, e)?),
            };
            build(
                py,
                event_class(py, &END, "End")?,
                &[
                    (operation, operation_name(py, *kind)),
                    (intern!(py, "summary"), summary),
                    (intern!(py, "error"), error),
                ],
                emitted_ns,
            )
        }
    }
}

/// A property value from Python: `str` (or `os.PathLike`), `bool`, or an `int` that fits a u32.
/// Anything else is the core's `WRONG_PROPERTY_TYPE` error, reported by the core itself.
pub(crate) fn property_value(obj: &Bound<'_, PyAny>) -> PyResult<Option<PropertyValue>> {
    // bool first: in Python a bool is also an int.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Some(PropertyValue::Bool(b.is_true())));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        return match i.extract::<u32>() {
            Ok(v) => Ok(Some(PropertyValue::U32(v))),
            Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => Err(crate::py_err(
                obj.py(),
                &license_backup::Error::new(
                    license_backup::ErrorCode::InvalidArgument,
                    format!("a property value must fit an unsigned 32-bit integer, not {i}"),
                ),
            )),
            Err(e) => Err(e),
        };
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Some(PropertyValue::String(s.to_cow()?.into_owned())));
    }
    Ok(None)
}

/// The Python value of a property.
pub(crate) fn property_object<'py>(py: Python<'py>, value: &PropertyValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        PropertyValue::String(s) => PyString::new(py, s).into_any(),
        PropertyValue::U32(v) => v.into_pyobject(py)?.into_any(),
        PropertyValue::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
    })
}
