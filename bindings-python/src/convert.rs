//! Conversions between the core's values and Python objects: the building blocks the generated
//! conversions of records and events (`generated.rs`) are made of. Records are built by calling
//! the facade's classes (`license_backup._types`) positionally; events, the hot path, field by
//! field without a call ([`build`]). Values from Python are checked against their type in the
//! interface definition, and a value that is not what the type wants raises
//! `InvalidArgumentError` naming the argument (`license.rights.plays_remaining must be ...`).

use std::ffi::OsString;
use std::path::PathBuf;

use license_backup::interface::{self, ArgPath, Type};
use license_backup::{ErrorCode, KeyId, OperationKind, Outcome, Property, PropertyValue};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use pyo3::{ffi, intern};

use crate::OrRaise;

const TYPES_MODULE: &str = "license_backup._types";

/// A value class of the facade, by name (the module looked up once).
pub(crate) fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    static TYPES: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module = TYPES.get_or_try_init(py, || py.import(TYPES_MODULE).map(Bound::unbind))?;
    module.bind(py).getattr(name)
}

/// The `InvalidArgumentError` for a value that is not what `ty` wants.
pub(crate) fn invalid(value: &Bound<'_, PyAny>, ty: &Type, path: &ArgPath<'_>) -> PyErr {
    crate::py_err(value.py(), &interface::invalid(path, ty, describe(value)))
}

/// A short description of a Python value for a message: its repr, cut to 40 characters, or
/// its type for long values.
fn describe(value: &Bound<'_, PyAny>) -> String {
    let repr = value.repr().map(|r| r.to_string()).unwrap_or_default();
    if repr.chars().count() <= 40 {
        repr
    } else {
        let type_name = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        format!("a {type_name} of {} characters", repr.chars().count())
    }
}

/// A Rust value read from a Python object and checked against its interface type.
pub(crate) trait FromPy: Sized {
    /// Reads `value` as `ty` (the field's type) at `path`.
    fn from_py(value: &Bound<'_, PyAny>, ty: &Type, path: &ArgPath<'_>) -> PyResult<Self>;
}

impl FromPy for bool {
    /// Only `True` and `False` (not `0`, `1` or a string).
    fn from_py(value: &Bound<'_, PyAny>, ty: &Type, path: &ArgPath<'_>) -> PyResult<Self> {
        match value.cast::<PyBool>() {
            Ok(b) => Ok(b.is_true()),
            Err(_) => Err(invalid(value, ty, path)),
        }
    }
}

/// An `int` (not a `bool`, a `float` or a string) within the type's range.
fn int_from_py(value: &Bound<'_, PyAny>, ty: &Type, path: &ArgPath<'_>) -> PyResult<i128> {
    if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
        return Err(invalid(value, ty, path));
    }
    // Every range of the interface fits an i64; a larger int is out of range.
    let n: i64 = value.extract().map_err(|_| invalid(value, ty, path))?;
    ty.check_int(path, i128::from(n)).or_raise(value.py())?;
    Ok(i128::from(n))
}

impl FromPy for u32 {
    fn from_py(value: &Bound<'_, PyAny>, ty: &Type, path: &ArgPath<'_>) -> PyResult<Self> {
        let n = int_from_py(value, ty, path)?;
        u32::try_from(n).map_err(|_| invalid(value, ty, path))
    }
}

impl FromPy for i64 {
    fn from_py(value: &Bound<'_, PyAny>, ty: &Type, path: &ArgPath<'_>) -> PyResult<Self> {
        let n = int_from_py(value, ty, path)?;
        i64::try_from(n).map_err(|_| invalid(value, ty, path))
    }
}

impl FromPy for String {
    /// A `str` within the type's limits (length in bytes of UTF-8, no NUL).
    fn from_py(value: &Bound<'_, PyAny>, ty: &Type, path: &ArgPath<'_>) -> PyResult<Self> {
        let text = value.cast::<PyString>().map_err(|_| invalid(value, ty, path))?.to_cow()?.into_owned();
        ty.check_text(path, &text).or_raise(value.py())?;
        Ok(text)
    }
}

impl FromPy for Vec<u8> {
    /// `bytes` within the type's limits.
    fn from_py(value: &Bound<'_, PyAny>, ty: &Type, path: &ArgPath<'_>) -> PyResult<Self> {
        let bytes = value.cast::<PyBytes>().map_err(|_| invalid(value, ty, path))?.as_bytes();
        ty.check_bytes(path, bytes.len()).or_raise(value.py())?;
        Ok(bytes.to_vec())
    }
}

impl FromPy for KeyId {
    /// A UUID string or a `uuid.UUID`.
    fn from_py(value: &Bound<'_, PyAny>, ty: &Type, path: &ArgPath<'_>) -> PyResult<Self> {
        key_id_at(value, ty, path)
    }
}

impl<T: FromPy> FromPy for Option<T> {
    /// `None`, or the type inside.
    fn from_py(value: &Bound<'_, PyAny>, ty: &Type, path: &ArgPath<'_>) -> PyResult<Self> {
        if value.is_none() { Ok(None) } else { T::from_py(value, ty.required(), path).map(Some) }
    }
}

impl FromPy for Vec<String> {
    /// A list or tuple of `str`, each within the item type's limits (a lone `str` is not a list
    /// of its characters).
    fn from_py(value: &Bound<'_, PyAny>, ty: &Type, path: &ArgPath<'_>) -> PyResult<Self> {
        let Type::List(item) = ty.required() else { return Err(invalid(value, ty, path)) };
        if !(value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>()) {
            return Err(invalid(value, ty, path));
        }
        let mut out = Vec::new();
        for (i, v) in value.try_iter()?.enumerate() {
            let at = format!("{path}[{i}]");
            out.push(String::from_py(&v?, item, &ArgPath::arg(&at))?);
        }
        Ok(out)
    }
}

/// Checks that `obj` can be read as the record `ty`: any object but `None` and the scalars
/// (`str`, `bytes`, numbers), which have no fields to read.
pub(crate) fn record(obj: &Bound<'_, PyAny>, ty: &Type, path: &ArgPath<'_>) -> PyResult<()> {
    let scalar = obj.is_none()
        || obj.is_instance_of::<PyString>()
        || obj.is_instance_of::<PyBytes>()
        || obj.is_instance_of::<PyInt>()
        || obj.is_instance_of::<PyFloat>();
    if scalar { Err(invalid(obj, ty, path)) } else { Ok(()) }
}

/// Field `name` of a record-like object, read as `ty`.
pub(crate) fn field<T: FromPy>(obj: &Bound<'_, PyAny>, path: &ArgPath<'_>, name: &str, ty: &Type) -> PyResult<T> {
    let at = path.field(name);
    match obj.getattr(name) {
        Ok(value) => T::from_py(&value, ty, &at),
        Err(_) => Err(crate::py_err(
            obj.py(),
            &license_backup::Error::new(
                ErrorCode::InvalidArgument,
                format!("{path} must have the fields of its record: {name} is missing (got {})", describe(obj)),
            ),
        )),
    }
}

/// Keyword argument `name` read as `ty`; left out or `None`, it is `default`.
pub(crate) fn option<T: FromPy>(value: Option<&Bound<'_, PyAny>>, name: &str, ty: &Type, default: T) -> PyResult<T> {
    match value {
        Some(v) if !v.is_none() => T::from_py(v, ty, &ArgPath::arg(name)),
        _ => Ok(default),
    }
}

impl FromPy for f64 {
    /// A number of seconds: an `int` or a `float` (not a `bool`), within the type's range.
    fn from_py(value: &Bound<'_, PyAny>, ty: &Type, path: &ArgPath<'_>) -> PyResult<Self> {
        if value.is_instance_of::<PyBool>() || !(value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>()) {
            return Err(invalid(value, ty, path));
        }
        let seconds = value.extract::<f64>().map_err(|_| invalid(value, ty, path))?;
        ty.check_seconds(path, seconds).map_err(|_| invalid(value, ty, path))?;
        Ok(seconds)
    }
}

/// A path argument: a `str`, `bytes` or an `os.PathLike` of either, read as `os.fsencode`
/// reads it: a `str` with surrogate escapes (how Python decodes a name that is not UTF-8) and a
/// `bytes` path name the same folder, whatever its encoding. Not empty, no NUL.
pub(crate) fn path(value: &Bound<'_, PyAny>, name: &str) -> PyResult<PathBuf> {
    path_at(value, &interface::PATH, &ArgPath::arg(name))
}

fn path_at(value: &Bound<'_, PyAny>, ty: &Type, at: &ArgPath<'_>) -> PyResult<PathBuf> {
    let py = value.py();
    static FSPATH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static FSDECODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let fspath = if value.is_instance_of::<PyString>() || value.is_instance_of::<PyBytes>() {
        value.clone()
    } else {
        FSPATH.import(py, "os", "fspath")?.call1((value,)).map_err(|_| invalid(value, ty, at))?
    };
    // bytes -> the str os.fsdecode makes of them, which pyo3 encodes back as os.fsencode does.
    let text = if fspath.is_instance_of::<PyBytes>() {
        FSDECODE.import(py, "os", "fsdecode")?.call1((fspath,))?
    } else {
        fspath
    };
    let os: OsString = text.extract().map_err(|_| invalid(value, ty, at))?;
    let path = PathBuf::from(os);
    interface::check_path(&at.to_string(), &path).or_raise(py)?;
    Ok(path)
}

impl FromPy for PathBuf {
    /// A path: see [`path`].
    fn from_py(value: &Bound<'_, PyAny>, ty: &Type, path: &ArgPath<'_>) -> PyResult<Self> {
        path_at(value, ty, path)
    }
}

/// Whether `value` is what a path argument takes: `str`, `bytes` or an `os.PathLike`.
pub(crate) fn is_path_like(value: &Bound<'_, PyAny>) -> bool {
    value.is_instance_of::<PyString>()
        || value.is_instance_of::<PyBytes>()
        || value.hasattr(intern!(value.py(), "__fspath__")).unwrap_or(false)
}

/// A value read as `ty` from an argument named `name`.
pub(crate) fn arg<T: FromPy>(value: &Bound<'_, PyAny>, name: &str, ty: &Type) -> PyResult<T> {
    T::from_py(value, ty, &ArgPath::arg(name))
}

/// A list read as a list of `ty` from an argument named `name` (a `str` or `bytes` is iterable,
/// but not a list).
pub(crate) fn list_arg<T: FromPy>(value: &Bound<'_, PyAny>, name: &str, ty: &'static Type) -> PyResult<Vec<T>> {
    let item = match ty {
        Type::List(item) => *item,
        other => other,
    };
    let list = Type::List(item);
    if value.is_instance_of::<PyString>() || value.is_instance_of::<PyBytes>() {
        return Err(invalid(value, &list, &ArgPath::arg(name)));
    }
    let at = format!("{name}[]");
    value
        .try_iter()
        .map_err(|_| invalid(value, &list, &ArgPath::arg(name)))?
        .map(|v| arg::<T>(&v?, &at, item))
        .collect()
}

fn key_id_at(obj: &Bound<'_, PyAny>, ty: &Type, path: &ArgPath<'_>) -> PyResult<KeyId> {
    let py = obj.py();
    if let Ok(text) = obj.cast::<PyString>() {
        return KeyId::parse_arg(&text.to_cow()?, path).or_raise(py);
    }
    static UUID: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    if obj.is_instance(UUID.import(py, "uuid", "UUID")?)? {
        return KeyId::parse_arg(&obj.str()?.to_cow()?, path).or_raise(py);
    }
    Err(invalid(obj, ty, path))
}

/// Parses a key ID argument given as a UUID string or a `uuid.UUID`.
pub(crate) fn key_id(obj: &Bound<'_, PyAny>) -> PyResult<KeyId> {
    key_id_at(obj, &Type::KeyId, &ArgPath::arg("key_id"))
}

/// A Python object made from a core value.
pub(crate) trait ToPy {
    /// The Python object for this value.
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>>;
}

impl ToPy for bool {
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyBool::new(py, *self).to_owned().into_any())
    }
}

macro_rules! int_to_py {
    ($($t:ty),*) => {$(
        impl ToPy for $t {
            fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                Ok(self.into_pyobject(py)?.into_any())
            }
        }
    )*};
}
int_to_py!(u32, u64, i64);

impl ToPy for String {
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyString::new(py, self).into_any())
    }
}

impl ToPy for KeyId {
    /// The lowercase hyphenated UUID string.
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyString::new(py, &self.to_string()).into_any())
    }
}

impl ToPy for ErrorCode {
    /// The facade's `ErrorCode` member.
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        static ERROR_CODE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
        ERROR_CODE.import(py, crate::ERRORS_MODULE, "ErrorCode")?.call1((self.number(),))
    }
}

impl ToPy for OperationKind {
    /// `"backup"` or `"restore"` (interned).
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self {
            OperationKind::Backup => intern!(py, "backup").clone().into_any(),
            OperationKind::Restore => intern!(py, "restore").clone().into_any(),
        })
    }
}

impl<T: ToPy> ToPy for Option<T> {
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Some(v) => v.to_py(py),
            None => Ok(py.None().into_bound(py)),
        }
    }
}

/// An END event's `summary` and `error` (the exception of the code): one of them is `None`.
pub(crate) fn outcome<'py>(py: Python<'py>, outcome: &Outcome) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    Ok(match outcome {
        Outcome::Completed(s) => (s.to_py(py)?, py.None().into_bound(py)),
        Outcome::Failed(e) => (py.None().into_bound(py), crate::error_object(py, e)?),
    })
}

/// An event class of the facade and its `tp_new` slot, looked up once.
pub(crate) struct EventClass {
    cls: Py<PyType>,
    new: Option<ffi::newfunc>,
}

/// The event class `name`, cached in `cell`.
pub(crate) fn event_class(
    py: Python<'_>,
    cell: &'static PyOnceLock<EventClass>,
    name: &str,
) -> PyResult<&'static EventClass> {
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
pub(crate) fn build<'py>(
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

/// A property value from Python: `str`, `bool`, or a number (`int` or `float`) that is an
/// unsigned 32-bit integer (checked by the core's `number_value`: unknown name first, then the
/// property's type, then the range). Anything else is `None`: the caller reports the core's
/// `WRONG_PROPERTY_TYPE`.
pub(crate) fn property_value(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<PropertyValue>> {
    // bool first: in Python a bool is also an int.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Some(PropertyValue::Bool(b.is_true())));
    }
    if obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyFloat>() {
        // An int too large for a double is out of range all the same.
        let number = obj.extract::<f64>().unwrap_or(f64::INFINITY);
        let value = license_backup::number_value(name, number).or_raise(obj.py())?;
        if obj.is_instance_of::<PyFloat>() {
            // A float is not an integer, even 5.0 (a JavaScript number cannot tell them apart).
            return Err(invalid(
                obj,
                &Property::from_name(name).map_or(interface::U32, |p| p.spec()),
                &ArgPath::arg(name),
            ));
        }
        return Ok(Some(value));
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
