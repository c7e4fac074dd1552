//! Conversions between the core's records and events and the facade's value classes
//! (`license_backup._types`), which the native code builds positionally, in field order.

use license_backup::{
    CatalogEntry, KeyId, License, NewLicense, Outcome, PropertyValue, Quota, Rights, StatusEvent, Summary,
};
use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyInt, PyString, PyType};

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
    class(py, "Quota")?.call1((q.licenses, q.max_devices, q.restores_remaining, q.device_already_counted))
}

pub(crate) fn summary<'py>(py: Python<'py>, s: &Summary) -> PyResult<Bound<'py, PyAny>> {
    class(py, "Summary")?.call1((s.licenses, s.restricted, s.skipped, s.bytes, s.duration_ms))
}

fn error_code<'py>(py: Python<'py>, code: license_backup::ErrorCode) -> PyResult<Bound<'py, PyAny>> {
    static ERROR_CODE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    ERROR_CODE.import(py, crate::ERRORS_MODULE, "ErrorCode")?.call1((code.number(),))
}

/// The facade's event object for a core event.
pub(crate) fn event<'py>(py: Python<'py>, event: &StatusEvent) -> PyResult<Bound<'py, PyAny>> {
    match event {
        StatusEvent::Begin { operation } => class(py, "Begin")?.call1((operation.name(),)),
        StatusEvent::Progress { operation, done, total } => {
            class(py, "Progress")?.call1((operation.name(), done, total))
        }
        StatusEvent::RestrictedLicense { key_id, title } => {
            class(py, "RestrictedLicense")?.call1((key_id.to_string(), title.as_deref()))
        }
        StatusEvent::Connecting => class(py, "Connecting")?.call0(),
        StatusEvent::Disconnecting => class(py, "Disconnecting")?.call0(),
        StatusEvent::Refused { code, message, url } => {
            class(py, "Refused")?.call1((error_code(py, *code)?, message.as_str(), url.as_str()))
        }
        StatusEvent::End { operation, outcome } => {
            let (summary, error) = match outcome {
                Outcome::Completed(s) => (Some(summary(py, s)?), None),
                Outcome::Failed(e) => (None, Some(crate::error_object(py, e)?)),
            };
            class(py, "End")?.call1((operation.name(), summary, error))
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
