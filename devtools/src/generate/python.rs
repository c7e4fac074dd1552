//! The Python package's generated files.
//!
//! * `license_backup/_errors.py`: the `ErrorCode` IntEnum and one `LicenseBackupError` subclass
//!   per code, named from the Rust variant (`BackupExists` → `BackupExistsError`).
//! * `license_backup/_types.py`: the records and the status events as frozen dataclasses (with
//!   their documentation and defaults), and the property accessors `BackupRestorer` inherits.
//! * `bindings-python/src/generated.rs`: the native module's conversions of records and events
//!   to Python, and of records from Python, each field checked against its type and limits.

use std::fmt::Write;

use license_backup::interface::{self, Call, Default, OPERATIONS, RECORDS, Role, Type};
use license_backup::{ErrorCode, EventKind, Property, ValueType};

use super::{HEADER, Output, quoted, rust_type_expr, snake, upper_camel, wrap};

const PACKAGE: &str = "bindings-python/python/license_backup";

/// Python idiom: a code is also the built-in exception a Python programmer catches for it, and
/// a code about a file is an `OSError` with the `errno` Python gives that condition (`None`:
/// none fits), so `except FileNotFoundError` and `e.errno`/`e.filename` work.
const EXTRA_BASES: &[(ErrorCode, &str, Option<&str>)] = &[
    // A value of the wrong type (`add_license(42)`) is INVALID_ARGUMENT too: also a TypeError.
    (ErrorCode::InvalidArgument, "ValueError, TypeError", None),
    (ErrorCode::UnknownProperty, "KeyError", None),
    (ErrorCode::WrongPropertyType, "TypeError", None),
    (ErrorCode::PathNotFound, "FileNotFoundError", Some("ENOENT")),
    (ErrorCode::NotAFolder, "NotADirectoryError", Some("ENOTDIR")),
    (ErrorCode::NotWritable, "PermissionError", Some("EACCES")),
    (ErrorCode::BackupExists, "FileExistsError", Some("EEXIST")),
    (ErrorCode::ArchiveMissing, "FileNotFoundError", Some("ENOENT")),
    (ErrorCode::NoSpace, "OSError", Some("ENOSPC")),
    (ErrorCode::MediaFailure, "OSError", Some("EIO")),
    (ErrorCode::DeviceGone, "OSError", Some("ENODEV")),
    (ErrorCode::PathInvalid, "OSError", None),
    (ErrorCode::NotReadable, "PermissionError", Some("EACCES")),
    (ErrorCode::ServiceUnavailable, "ConnectionError", None),
    (ErrorCode::LicenseNotFound, "KeyError", None),
];

/// Python names that differ from the code's variant: `CancelledError` would shadow
/// `asyncio.CancelledError` (kept only as a deprecated alias, see `__init__.py`).
const RENAMED: &[(ErrorCode, &str)] = &[(ErrorCode::Cancelled, "OperationCancelledError")];

/// Every generated file of the Python package.
pub fn outputs() -> Vec<Output> {
    vec![
        Output { path: format!("{PACKAGE}/_errors.py"), text: errors() },
        Output { path: format!("{PACKAGE}/_types.py"), text: types() },
        Output { path: format!("{PACKAGE}/_native.pyi"), text: native_stub() },
        Output { path: "bindings-python/src/generated.rs".into(), text: rust() },
        Output { path: "bindings-python/src/entries.rs".into(), text: entries_rust() },
    ]
}

/// The exception class of a code: `BackupExists` → `BackupExistsError`.
pub fn class_name(code: ErrorCode) -> String {
    if let Some((_, name)) = RENAMED.iter().find(|(c, _)| *c == code) {
        return (*name).to_string();
    }
    let variant = code.variant_name();
    if variant.ends_with("Error") { variant.to_string() } else { format!("{variant}Error") }
}

fn errors() -> String {
    let mut out = String::new();
    let w = &mut out;
    writeln!(w, "# {HEADER}").unwrap();
    w.push_str(
        r#""""Error codes and the exception raised for each of them."""

from __future__ import annotations

import enum
import errno
import os
from typing import ClassVar, Dict, Optional, Type, Union


class ErrorCode(enum.IntEnum):
    """A stable error code: ``int(code)`` is the number, ``code.name`` the symbolic name."""

"#,
    );
    for code in ErrorCode::ALL {
        writeln!(w, "    {} = {}", code.name(), code.number()).unwrap();
    }
    w.push_str(
        r#"
    @property
    def description(self) -> str:
        """A generic, user-presentable description of the code."""
        return _DESCRIPTIONS[self]

    @property
    def exception(self) -> Type[LicenseBackupError]:
        """The exception class raised for this code."""
        return _CLASSES[self]


_DESCRIPTIONS: Dict[ErrorCode, str] = {
"#,
    );
    for code in ErrorCode::ALL {
        writeln!(w, "    ErrorCode.{}: {},", code.name(), quoted(code.description())).unwrap();
    }
    w.push_str(
        r#"}


class LicenseBackupError(Exception):
    """Base class of every error the library raises for an engine error code.

    ``code`` is the :class:`ErrorCode` (an ``int``: the stable number), ``name`` its symbolic
    name (``"BACKUP_EXISTS"``) and ``message`` the engine's message. Each code has its own
    subclass (``BackupExistsError``, ...); catch this class to handle them all. The subclasses
    of codes about files are also ``OSError`` subclasses (``PathNotFoundError`` is a
    ``FileNotFoundError``) with ``errno`` and ``filename`` set.
    """

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL
    message: str
    _errno: ClassVar[Optional[int]] = None

    def __init__(
        self,
        message: str = "",
        code: Optional[Union[ErrorCode, int]] = None,
        filename: Optional[Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]] = None,
    ) -> None:
        if code is not None:
            # An instance of the base class itself may carry any code.
            self.code = ErrorCode(code)  # type: ignore[misc]
        self.message = message or self.code.description
        if isinstance(self, OSError):
            # OSError(errno, strerror, filename): sets .errno, .strerror and .filename.
            os_args: tuple[object, ...] = (self._errno, self.message)
            super().__init__(*(os_args if filename is None else (*os_args, os.fspath(filename))))
        else:
            super().__init__(message)

    @property
    def name(self) -> str:
        """The symbolic name of the code, such as ``"BACKUP_EXISTS"``."""
        return self.code.name

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (int(self.code), self.message, getattr(self, "filename", None)))
"#,
    );
    for &code in ErrorCode::ALL {
        let extra = EXTRA_BASES.iter().find(|(c, _, _)| *c == code);
        let bases = match extra {
            Some((_, base, _)) => format!("LicenseBackupError, {base}"),
            None => "LicenseBackupError".to_string(),
        };
        write!(
            w,
            "\n\nclass {}({bases}):\n    \"\"\"{} ({}): {}.\"\"\"\n\n    code: ClassVar[ErrorCode] = ErrorCode.{}\n",
            class_name(code),
            code.name(),
            code.number(),
            code.description(),
            code.name()
        )
        .unwrap();
        if let Some((_, _, Some(errno))) = extra {
            writeln!(w, "    _errno: ClassVar[Optional[int]] = errno.{errno}").unwrap();
        }
        if extra.is_some_and(|(_, base, _)| *base == "KeyError") {
            // KeyError's own __str__ shows the repr of its argument.
            w.push_str("\n    def __str__(self) -> str:\n        return LicenseBackupError.__str__(self)\n");
        }
    }
    w.push_str("\n\n_CLASSES: Dict[ErrorCode, Type[LicenseBackupError]] = {\n");
    for &code in ErrorCode::ALL {
        writeln!(w, "    ErrorCode.{}: {},", code.name(), class_name(code)).unwrap();
    }
    w.push_str(
        r#"}


def error_for(code: Union[ErrorCode, int], message: str, filename: Optional[str] = None) -> LicenseBackupError:
    """The exception (not raised) for a code and message: what the engine's errors become.
    ``filename`` is the path an ``OSError`` subclass is about (ignored by the others)."""
    try:
        cls = _CLASSES[ErrorCode(code)]
    except ValueError:
        return LicenseBackupError(message or f"unknown error code {code}", ErrorCode.INTERNAL)
    if filename is not None and issubclass(cls, OSError):
        return cls(message, filename=filename)
    return cls(message)


def _rebuild(code: int, message: str, filename: Optional[str] = None) -> LicenseBackupError:
    return error_for(code, message, filename)


__all__ = [
    "ErrorCode",
    "LicenseBackupError",
    "error_for",
"#,
    );
    for &code in ErrorCode::ALL {
        writeln!(w, "    \"{}\",", class_name(code)).unwrap();
    }
    w.push_str("]\n");
    out
}

/// Hand-written mixins that add idiom to generated classes (`License.title`, ...), from
/// `license_backup/_extras.py`.
const MIXINS: &[(&str, &str)] = &[("License", "LicenseExtras"), ("Quota", "QuotaExtras"), ("End", "EndExtras")];

/// Python's annotation of a type.
fn py_type(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::Int { .. } => "int".into(),
        Type::Text { .. } | Type::KeyId => "str".into(),
        Type::Bytes { .. } => "bytes".into(),
        Type::ErrorCode => "ErrorCode".into(),
        Type::OperationKind => "OperationKind".into(),
        Type::PropertyValue => "PropertyValue".into(),
        Type::Seconds { .. } => "float".into(),
        Type::Record("PropertyEntry") => "tuple[str, PropertyValue]".into(),
        // Either service: a union in Python.
        Type::Object("LicenseService") => "Union[EmbeddedService, RemoteService]".into(),
        Type::Record(name) | Type::Object(name) => (*name).into(),
        Type::Optional(inner) => format!("Optional[{}]", py_type(inner)),
        Type::List(inner) => format!("list[{}]", py_type(inner)),
        Type::StatusCallback => "Optional[Callable[[Any], object]]".into(),
        Type::Outcome => "Optional[Summary]".into(),
        Type::Void => "None".into(),
    }
}

fn py_default(d: Default) -> String {
    match d {
        Default::Bool(true) => "True".into(),
        Default::Bool(false) => "False".into(),
        Default::Int(n) => n.to_string(),
        Default::Null => "None".into(),
    }
}

/// The attributes of an event class: its surface fields, the outcome as `summary` and `error`.
pub fn event_attributes(kind: EventKind) -> Vec<(String, String, &'static str)> {
    let mut out = Vec::new();
    for f in kind.surface() {
        match f.ty {
            Type::Outcome => {
                out.push((
                    "summary".into(),
                    "Optional[Summary]".into(),
                    "What it did, when it completed; None when it failed.",
                ));
                out.push((
                    "error".into(),
                    "Optional[LicenseBackupError]".into(),
                    "Why it failed (the exception wait() and await raise; OperationCancelledError when it was cancelled); \
                     None when it completed.",
                ));
            }
            ty => out.push((f.name.into(), py_type(&ty), f.doc)),
        }
    }
    out
}

/// A docstring at `indent`: one line when it fits 100 columns, else wrapped.
fn docstring(indent: &str, text: &str) -> String {
    let one = format!("{indent}\"\"\"{text}\"\"\"");
    if one.len() <= 100 {
        return one;
    }
    let body = wrap(indent, text, 100);
    format!("{indent}\"\"\"{}\n{indent}\"\"\"", body.trim_start())
}

fn types() -> String {
    let mut w = String::new();
    writeln!(w, "# {HEADER}").unwrap();
    w.push_str(TYPES_PREAMBLE);
    for record in RECORDS.iter().filter(|r| !matches!(r.role, Role::Options) && r.name != "PropertyEntry") {
        let base = MIXINS.iter().find(|(r, _)| *r == record.name).map(|(_, m)| format!("({m})")).unwrap_or_default();
        writeln!(w, "\n\n@dataclass(frozen=True)\nclass {}{base}:\n{}\n", record.name, docstring("    ", record.doc))
            .unwrap();
        for f in record.fields {
            let default = match (f.default, f.secret) {
                (Some(d), false) => format!(" = {}", py_default(d)),
                (Some(d), true) => format!(" = field(default={}, repr=False)", py_default(d)),
                (None, true) => " = field(repr=False)".into(),
                (None, false) => String::new(),
            };
            writeln!(w, "    {}: {}{default}\n{}", f.name, py_type(&f.ty), docstring("    ", f.doc)).unwrap();
        }
    }
    w.push_str(EVENTS_PREAMBLE);
    for &kind in EventKind::ALL {
        let class = upper_camel(kind.name());
        let base = MIXINS.iter().find(|(r, _)| *r == class).map(|(_, m)| format!("{m}, ")).unwrap_or_default();
        writeln!(
            w,
            "\n\n@dataclass(frozen=True)\nclass {class}({base}_Event):\n{}",
            docstring("    ", kind.description())
        )
        .unwrap();
        let attrs = event_attributes(kind);
        if !attrs.is_empty() {
            w.push('\n');
        }
        for (name, ann, doc) in attrs {
            writeln!(w, "    {name}: {ann}\n{}", docstring("    ", doc)).unwrap();
        }
    }
    let names: Vec<String> = EventKind::ALL.iter().map(|k| upper_camel(k.name())).collect();
    writeln!(w, "\n\nStatusEvent = Union[\n    {},\n]\n\"\"\"Any status event.\"\"\"", names.join(",\n    ")).unwrap();
    // Property accessors.
    w.push_str(PROPERTIES_PREAMBLE);
    for &prop in Property::ALL {
        let attr = snake(prop.name());
        let (get_ann, set_ann, check) = match prop.value_type() {
            ValueType::String => ("str", "Optional[_PathArg]", "isinstance(value, str)"),
            ValueType::U32 => ("int", "Optional[int]", "isinstance(value, int) and not isinstance(value, bool)"),
            ValueType::Bool => ("bool", "Optional[bool]", "isinstance(value, bool)"),
        };
        writeln!(
            w,
            "\n    @property\n    def {attr}(self) -> Optional[{get_ann}]:\n{}\n        value = self.get_property({name:?})\n        \
             assert value is None or ({check})\n        return value\n\n    @{attr}.setter\n    \
             def {attr}(self, value: {set_ann}) -> None:\n        self._set_or_remove({name:?}, value)",
            docstring("        ", &format!("The ``{}`` property: {} ``None``: not set.", prop.name(), prop.description())),
            name = prop.name(),
        )
        .unwrap();
    }
    // The delegating methods of the classes that wrap a native one.
    for object in PY_WRAPPERS {
        let ops: Vec<_> = super::entries::of(object).collect();
        if ops.is_empty() {
            continue;
        }
        writeln!(
            w,
            "\n\nclass {object}Operations:\n    \"\"\"The methods of :class:`{object}` with generated entry points: each calls its native\n    \
             method.\"\"\"\n\n    __slots__ = ()\n    _native: _native.{object}"
        )
        .unwrap();
        for op in ops {
            let mut params = vec!["self".to_string()];
            let mut args = Vec::new();
            for p in op.params {
                params.push(format!("{}: {}", p.name, py_type(&p.ty)));
                args.push(p.name.to_string());
            }
            if let Some(options) = op.options {
                params.push("*".into());
                let record = RECORDS.iter().find(|r| r.name == options).expect("options record");
                for f in record.fields {
                    params.push(format!("{}: Optional[{}] = None", f.name, py_type(&f.ty)));
                    args.push(format!("{0}={0}", f.name));
                }
            }
            let ret = if op.result == Type::Void { "" } else { "return " };
            writeln!(
                w,
                "\n    def {}({}) -> {}:\n{}\n        {ret}self._native.{}({})",
                op.name,
                params.join(", "),
                py_type(&op.result),
                docstring("        ", op.doc),
                op.name,
                args.join(", ")
            )
            .unwrap();
        }
    }
    w.push_str("\n\n__all__ = [\n");
    let mut all: Vec<String> = vec!["OperationKind".into(), "PropertyValue".into(), "StatusEvent".into()];
    all.extend(
        RECORDS
            .iter()
            .filter(|r| !matches!(r.role, Role::Options) && r.name != "PropertyEntry")
            .map(|r| r.name.to_string()),
    );
    all.extend(EventKind::ALL.iter().map(|k| upper_camel(k.name())));
    for name in all {
        writeln!(w, "    {name:?},").unwrap();
    }
    w.push_str("]\n");
    w
}

const TYPES_PREAMBLE: &str = r#""""Records, status events and the property accessors: small immutable value classes.

The native module builds these objects (positionally, in field order) from the engine's
records and events; their fields are the interface definition's (``core/interface.json``).
Events support structural pattern matching (Python 3.10+)::

    match event:
        case Progress(operation, done, total):
            print(f"{operation}: {done}/{total}")
        case RestrictedLicense(key_id, title):
            print(f"{title or key_id} may not be backed up")
        case End(operation, summary, None):
            print(f"{operation} done: {summary.licenses} licenses")
        case End(operation, _, error):
            print(f"{operation} failed: {error}")

Every event delivered by an operation also carries ``emitted_ns`` (``core/interface.json``
``event_metadata``): when the engine emitted it, on the clock of ``time.monotonic_ns()``, so
``time.monotonic_ns() - event.emitted_ns`` is how long it waited for delivery. It is not a
field: it takes no part in construction, equality, ``repr`` or pattern matching, and an event
made in Python has ``emitted_ns == 0``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Optional, Union

from ._extras import EndExtras, LicenseExtras, QuotaExtras

if TYPE_CHECKING:
    from . import _native
    from ._errors import ErrorCode, LicenseBackupError

OperationKind = Literal["backup", "restore"]
"""Which operation an event or an :class:`Operation` belongs to."""

PropertyValue = Union[str, int, bool]
"""A property value: ``str`` (paths), ``int`` (an unsigned 32-bit count) or ``bool``."""

_PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
"""What a path property or argument takes: ``os.fsencode`` reads it, so a folder whose name is not
UTF-8 can be given as ``bytes`` or as the ``str`` Python decodes it to (surrogate escapes)."""
"#;

const EVENTS_PREAMBLE: &str = r#"


# --- status events ---------------------------------------------------------------------------
#
# The native module builds the events itself, the way the generated ``__init__`` would:
# ``object.__new__(cls)``, then ``object.__setattr__`` of each field in order, then
# ``emitted_ns`` (no ``__init__`` or ``__post_init__`` runs; keep the event classes plain).


class _Event:
    """What every status event carries besides its fields."""

    __slots__ = ()

    emitted_ns: int = 0
    """When the engine emitted the event, in nanoseconds on the clock of
    ``time.monotonic_ns()`` (``CLOCK_MONOTONIC``); 0 for an event made in Python."""
"#;

/// The objects whose public Python class wraps the native one (the others are the native
/// classes themselves): their generated entry points get delegating methods in `_types.py`.
const PY_WRAPPERS: &[&str] = &["BackupRestorer"];

const PROPERTIES_PREAMBLE: &str = r#"


class PropertyAccessors:
    """The known properties as attributes (``restorer.backup_path``): views of the properties
    by name, on :class:`BackupRestorer`. Setting ``None`` removes the property."""

    __slots__ = ()

    def get_property(self, name: str) -> Optional[PropertyValue]:
        """A property's value; ``None`` if it is a known property that is not set."""
        raise NotImplementedError

    def _set_or_remove(self, name: str, value: Optional[Union[PropertyValue, _PathArg]]) -> None:
        raise NotImplementedError
"#;

// ---------------------------------------------------------------------------------------------
// The native module's conversions (Rust)
// ---------------------------------------------------------------------------------------------

/// The core's Rust type of a field (as the native module reads it).
fn core_rust_type(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::Int { kind, .. } => kind.name().into(),
        // A path (`interface::PATH`): str, bytes or os.PathLike, read as os.fsencode reads it.
        Type::Text { min_bytes: 1, max_bytes: None } => "std::path::PathBuf".into(),
        Type::Text { .. } => "String".into(),
        Type::Bytes { .. } => "Vec<u8>".into(),
        Type::Seconds { .. } => "f64".into(),
        Type::Record(name) => (*name).into(),
        Type::Optional(inner) => format!("Option<{}>", core_rust_type(inner)),
        Type::List(inner) => format!("Vec<{}>", core_rust_type(inner)),
        other => unreachable!("no option field of type {other:?}"),
    }
}

fn rust() -> String {
    let mut w = String::new();
    writeln!(w, "// {HEADER}").unwrap();
    w.push_str(
        "//! Conversions of the core's records and events to and from the facade's value classes\n\
         //! (`license_backup._types`), generated from the interface definition. Records are built by\n\
         //! calling their class positionally, in field order; events, the hot path, field by field\n\
         //! without a call ([`convert::build`]). Records from Python are read attribute by attribute,\n\
         //! each value checked against its type and limits ([`convert::FromPy`]).\n\n\
         // An event without fields is matched as `Kind {}`, whether the core declares it with braces or not.\n\
         #![allow(clippy::unneeded_struct_pattern)]\n\n\
         use license_backup::interface::{ArgPath, IntKind, Type};\n",
    );
    // The core's types of the records it has, and its events.
    let mut core_types: Vec<&str> = RECORDS.iter().filter(|r| r.core).map(|r| r.name).collect();
    core_types.push("StatusEvent");
    core_types.sort_unstable();
    writeln!(w, "use license_backup::{{{}}};", core_types.join(", ")).unwrap();
    w.push_str(
        "use pyo3::intern;\n\
         use pyo3::prelude::*;\n\
         use pyo3::sync::PyOnceLock;\n\n\
         use crate::convert::{self, EventClass, FromPy, ToPy};\n",
    );
    // Records from Python.
    for record in RECORDS.iter().filter(|r| matches!(r.role, Role::Value | Role::Input)) {
        writeln!(
            w,
            "\nimpl FromPy for {0} {{\n    /// Reads a `{0}`-like object: any object with the fields of `{0}`.\n    \
             fn from_py(obj: &Bound<'_, PyAny>, ty: &Type, path: &ArgPath<'_>) -> PyResult<Self> {{\n        \
             convert::record(obj, ty, path)?;\n        Ok({0} {{",
            record.name
        )
        .unwrap();
        for f in record.fields {
            writeln!(
                w,
                "            {}: convert::field(obj, path, {:?}, &{})?,",
                f.name,
                f.name,
                rust_type_expr(&f.ty)
            )
            .unwrap();
        }
        w.push_str("        })\n    }\n}\n");
    }
    // Option records from keyword arguments (an object, such as a protector, is the binding's
    // own to take: it is left out here).
    for record in RECORDS.iter().filter(|r| r.role == Role::Options) {
        let fields: Vec<_> = record.fields.iter().filter(|f| !matches!(f.ty.required(), Type::Object(_))).collect();
        if fields.is_empty() {
            continue;
        }
        let ty = if record.core { record.name.to_string() } else { format!("{}Args", record.name) };
        if !record.core {
            writeln!(w, "\n/// The options `{}` ({}).\npub(crate) struct {ty} {{", record.name, record.doc).unwrap();
            for f in &fields {
                writeln!(w, "{}\n    pub(crate) {}: {},", wrap("    /// ", f.doc, 100), f.name, core_rust_type(&f.ty))
                    .unwrap();
            }
            w.push_str("}\n");
        }
        let params: Vec<String> = fields.iter().map(|f| format!("{}: Option<&Bound<'_, PyAny>>", f.name)).collect();
        writeln!(
            w,
            "\n/// The options `{}` from keyword arguments, each checked against its type; an argument left out\n\
             /// or `None` takes its default.\npub(crate) fn {}({}) -> PyResult<{ty}> {{\n    Ok({ty} {{",
            record.name,
            snake(record.name),
            params.join(", ")
        )
        .unwrap();
        for f in &fields {
            let default = match f.default.expect("options have defaults") {
                Default::Bool(b) => b.to_string(),
                Default::Int(n) => n.to_string(),
                Default::Null => "None".into(),
            };
            writeln!(w, "        {0}: convert::option({0}, {0:?}, &{1}, {default})?,", f.name, rust_type_expr(&f.ty))
                .unwrap();
        }
        w.push_str("    })\n}\n");
    }
    // Records to Python.
    for record in RECORDS.iter().filter(|r| matches!(r.role, Role::Value | Role::Output) && r.core) {
        let values: Vec<String> = record.fields.iter().map(|f| format!("self.{}.to_py(py)?", f.name)).collect();
        let tuple = if values.len() == 1 { format!("({},)", values[0]) } else { format!("({})", values.join(", ")) };
        writeln!(
            w,
            "\nimpl ToPy for {0} {{\n    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {{\n        \
             convert::class(py, {0:?})?.call1({tuple})\n    }}\n}}",
            record.name
        )
        .unwrap();
    }
    // Events.
    w.push_str(
        "\n/// The facade's event object for an event the engine emitted at `emitted_ns`.\n\
         pub(crate) fn event<'py>(py: Python<'py>, event: &StatusEvent, emitted_ns: u64) -> PyResult<Bound<'py, PyAny>> {\n",
    );
    for &kind in EventKind::ALL {
        writeln!(w, "    static {}: PyOnceLock<EventClass> = PyOnceLock::new();", kind.name().to_uppercase()).unwrap();
    }
    w.push_str("    match event {\n");
    for &kind in EventKind::ALL {
        let variant = upper_camel(kind.name());
        let names: Vec<&str> = kind.surface().iter().map(|f| f.name).collect();
        let mut fields = Vec::new();
        for f in kind.surface() {
            if f.ty == Type::Outcome {
                w.push_str("");
                fields.push("(intern!(py, \"summary\"), summary)".to_string());
                fields.push("(intern!(py, \"error\"), error)".to_string());
            } else {
                fields.push(format!("(intern!(py, {:?}), {}.to_py(py)?)", f.name, f.name));
            }
        }
        writeln!(w, "        StatusEvent::{variant} {{ {} }} => {{", names.join(", ")).unwrap();
        if kind.surface().iter().any(|f| f.ty == Type::Outcome) {
            w.push_str("            let (summary, error) = convert::outcome(py, outcome)?;\n");
        }
        writeln!(
            w,
            "            let class = convert::event_class(py, &{}, {:?})?;\n            \
             convert::build(py, class, &[{}], emitted_ns)\n        }}",
            kind.name().to_uppercase(),
            upper_camel(kind.name()),
            fields.join(", ")
        )
        .unwrap();
    }
    w.push_str("    }\n}\n");
    w
}

// ---------------------------------------------------------------------------------------------
// The native module's type stub (`_native.pyi`)
// ---------------------------------------------------------------------------------------------

/// What the native module adds to the interface's operations, per class: Python idiom (context
/// managers, attributes, the asyncio and exit glue). Stub lines, indented for the class body.
const NATIVE_EXTRAS: &[(&str, &str)] = &[
    (
        "LicenseStore",
        "    @property
    def protector(self) -> Protector: ...
    @property
    def path(self) -> Path: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> LicenseStore: ...
    def __exit__(self, *_args: Union[type[BaseException], BaseException, TracebackType, None]) -> bool: ...
",
    ),
    (
        "EmbeddedService",
        "    @property
    def path(self) -> Path: ...
    @property
    def max_devices(self) -> int: ...
    @property
    def refusal_url(self) -> str: ...
",
    ),
    (
        "BackupRestorer",
        "    @property\n    def store(self) -> LicenseStore: ...\n    @property\n    def service(self) -> Union[EmbeddedService, RemoteService]: ...\n",
    ),
    (
        "Operation",
        "    @property
    def operation(self) -> OperationKind: ...
    @property
    def cancel_requested(self) -> bool: ...
    def add_done_callback(self, fn: Callable[[], object]) -> None: ...
",
    ),
    (
        "Protector",
        "    @staticmethod
    def unprotected() -> Protector: ...
    @staticmethod
    def keyring(service: Optional[str] = None) -> Protector: ...
    @staticmethod
    def host(obj: HostProtector) -> Protector: ...
    @property
    def label(self) -> str: ...
",
    ),
];

/// Getters the native module exposes under another name.
const NATIVE_ATTRIBUTES: &[((&str, &str), &str)] = &[(("Operation", "is_finished"), "done")];

/// Operations the native module has in another form: the protector's whole class (its
/// factories and label, in `NATIVE_EXTRAS`), and the store's protector label (Python exposes the
/// protector itself: `store.protector.label`).
const NATIVE_ELSEWHERE: &[(&str, &str)] = &[
    ("Protector", "unprotected"),
    ("Protector", "keyring"),
    ("Protector", "host"),
    ("Protector", "label"),
    ("LicenseStore", "protector_label"),
];

/// A parameter's annotation in the stub (what a caller may pass).
fn stub_param_type(ty: &Type) -> String {
    match ty {
        Type::KeyId => "_KeyId".into(),
        Type::Text { min_bytes: 1, max_bytes: None } => "_Path".into(),
        Type::PropertyValue => "Union[PropertyValue, _Path]".into(),
        Type::Object("Protector") => "Union[Protector, HostProtector]".into(),
        Type::List(inner) => format!("Iterable[{}]", stub_param_type(inner)),
        Type::Optional(inner) => format!("Optional[{}]", stub_param_type(inner)),
        other => py_type(other),
    }
}

fn native_stub() -> String {
    let mut w = String::new();
    writeln!(w, "# {HEADER}").unwrap();
    w.push_str(
        "# The type stub of the native module (bindings-python/src): the interface's operations, and what\n\
         # the module adds to them in Python idiom. The test suite checks it against the built module\n\
         # (`python -m mypy.stubtest license_backup._native`).\n\
         import os\nimport uuid\nfrom collections.abc import Callable, Iterable\nfrom pathlib import Path\n\
         from types import TracebackType\nfrom typing import Any, Optional, Union, final\n\n\
         from ._extras import HostProtector\n",
    );
    // The value classes the operations take and return, and the aliases.
    let mut types: Vec<&str> = RECORDS
        .iter()
        .filter(|r| r.role != Role::Options && r.name != "PropertyEntry")
        .map(|r| r.name)
        .chain(["OperationKind", "PropertyValue"])
        .collect();
    types.sort_unstable();
    writeln!(w, "from ._types import {}\n", types.join(", ")).unwrap();
    w.push_str(
        "__all__ = [\"__version__\", \"ARCHIVE_FILE_NAME\", \"LicenseStore\", \"EmbeddedService\", \"RemoteService\", \"BackupRestorer\", \"Operation\", \"Protector\", \"_close_gate\"]\n\n\
         __version__: str\nARCHIVE_FILE_NAME: str\n\n_KeyId = Union[str, uuid.UUID]\n_Path = Union[str, bytes, os.PathLike[str], os.PathLike[bytes]]\n\n\
         def _close_gate(timeout: float = ...) -> bool: ...\n",
    );
    for object in interface::OBJECTS {
        if !OPERATIONS.iter().any(|op| op.object == object.name) {
            continue; // a host object (HostProtector: a Protocol of _extras.py)
        }
        writeln!(w, "\n@final\nclass {}:", object.name).unwrap();
        for op in OPERATIONS.iter().filter(|op| op.object == object.name) {
            if NATIVE_ELSEWHERE.contains(&(op.object, op.name)) {
                continue;
            }
            let attr = NATIVE_ATTRIBUTES.iter().find(|((o, n), _)| *o == op.object && *n == op.name).map(|(_, a)| *a);
            if op.call == Call::Getter {
                writeln!(w, "    @property\n    def {}(self) -> {}: ...", attr.unwrap_or(op.name), py_type(&op.result))
                    .unwrap();
                continue;
            }
            let mut params: Vec<String> = Vec::new();
            for p in op.params.iter().filter(|p| p.ty != Type::StatusCallback) {
                let default = if p.default.is_some() { " = None" } else { "" };
                params.push(format!("{}: {}{default}", p.name, stub_param_type(&p.ty)));
            }
            let options = op.options.map(|name| interface::record(name).expect("defined").fields).unwrap_or(&[]);
            let option_params: Vec<String> = options
                .iter()
                .map(|f| {
                    let inner = stub_param_type(f.ty.required());
                    format!("{}: Optional[{inner}] = None", f.name)
                })
                .collect();
            if op.starts {
                // Options positional (the facade passes them so), then the callback, then the
                // keyword-only delivery mode.
                params.extend(option_params);
                params.push("callback: Optional[Callable[[Any], object]] = None".into());
                params.push("*".into());
                params.push("batched: bool = False".into());
            } else if op.call == Call::Constructor {
                // Objects (a protector) are keyword-only.
                let (objects, plain): (Vec<_>, Vec<_>) =
                    options.iter().zip(option_params).partition(|(f, _)| matches!(f.ty.required(), Type::Object(_)));
                params.extend(plain.into_iter().map(|(_, p)| p));
                if !objects.is_empty() {
                    params.push("*".into());
                    params.extend(objects.into_iter().map(|(_, p)| p));
                }
            } else if !option_params.is_empty() {
                params.push("*".into());
                params.extend(option_params);
            }
            let (name, first, result) = match op.call {
                Call::Constructor => ("__new__".to_string(), "cls", op.object.to_string()),
                _ => (op.name.to_string(), "self", py_type(&op.result)),
            };
            let all: Vec<String> = std::iter::once(first.to_string()).chain(params).collect();
            let line = format!("    def {name}({}) -> {result}: ...", all.join(", "));
            if line.len() <= 120 {
                writeln!(w, "{line}").unwrap();
            } else {
                let items: Vec<String> = all.iter().map(|p| format!("        {p},")).collect();
                writeln!(w, "    def {name}(\n{}\n    ) -> {result}: ...", items.join("\n")).unwrap();
            }
        }
        if let Some((_, extra)) = NATIVE_EXTRAS.iter().find(|(o, _)| *o == object.name) {
            w.push_str(extra);
        }
    }
    w
}

// ---------------------------------------------------------------------------------------------
// The per-operation entry points (bindings-python/src/entries.rs)
// ---------------------------------------------------------------------------------------------

/// The Rust type a generated entry point returns to Python, and the expression that makes it
/// from the core's value `r`.
fn py_result(ty: &Type) -> (String, String) {
    match ty {
        Type::Void => ("()".into(), "Ok(r)".into()),
        Type::Bool | Type::Int { .. } | Type::Text { .. } => (core_rust_type(ty), "Ok(r)".into()),
        Type::Record(_) => ("pyo3::Bound<'py, pyo3::PyAny>".into(), "crate::convert::ToPy::to_py(&r, py)".into()),
        Type::Optional(Type::Record(_)) => {
            ("Option<pyo3::Bound<'py, pyo3::PyAny>>".into(), "r.map(|v| crate::convert::ToPy::to_py(&v, py)).transpose()".into())
        }
        Type::List(Type::Record(_)) => (
            "pyo3::Bound<'py, pyo3::types::PyList>".into(),
            "pyo3::types::PyList::new(py, r.iter().map(|v| crate::convert::ToPy::to_py(v, py)).collect::<pyo3::PyResult<Vec<_>>>()?)".into(),
        ),
        // The core's buffer is wiped when `r` drops; the bytes object is Python's.
        Type::Bytes { .. } => ("pyo3::Bound<'py, pyo3::types::PyBytes>".into(), "Ok(pyo3::types::PyBytes::new(py, &r))".into()),
        other => unreachable!("no generated entry point returns {other:?}"),
    }
}

/// [`rust_type_expr`] with the paths spelled out (for code expanded in another module).
pub fn qualified_type_expr(ty: &Type) -> String {
    rust_type_expr(ty)
        .replace("Type::", "license_backup::interface::Type::")
        .replace("IntKind::", "license_backup::interface::IntKind::")
}

/// The statement that converts parameter `f` (a `&Bound<PyAny>` of its name) to the core's value.
fn py_param(f: &interface::Field) -> String {
    let name = f.name;
    match &f.ty {
        Type::KeyId => format!("let {name} = crate::convert::key_id({name})?;"),
        Type::List(inner) => {
            let Type::Record(record) = inner else { unreachable!("lists of records only") };
            format!(
                "let {name}: Vec<license_backup::{record}> = crate::convert::list_arg({name}, {name:?}, &{})?;",
                qualified_type_expr(&f.ty)
            )
        }
        Type::Record(record) => {
            format!(
                "let {name}: license_backup::{record} = crate::convert::arg({name}, {name:?}, &{})?;",
                qualified_type_expr(&f.ty)
            )
        }
        ty => format!(
            "let {name}: {} = crate::convert::arg({name}, {name:?}, &{})?;",
            core_rust_type(ty),
            qualified_type_expr(ty)
        ),
    }
}

/// The name of the macro that writes an object's `#[pymethods]` block.
pub fn methods_macro(object: &str) -> String {
    format!("{}_methods", snake(object))
}

fn entries_rust() -> String {
    let mut w = String::new();
    writeln!(w, "// {HEADER}").unwrap();
    w.push_str(
        "//! The native classes' per-operation entry points, generated from the interface definition\n\
         //! (`devtools/src/generate/entries.rs` says which operations have them): each converts and\n\
         //! checks its arguments, calls the core through [`crate::Engine::call`] (detached from the\n\
         //! interpreter, the core's error raised as its exception class) and converts the result.\n\
         //!\n\
         //! pyo3 takes one `#[pymethods]` block per class, so each class's block is a macro here\n\
         //! (`license_store_methods!`, ...) that its module calls with its hand-written methods.\n",
    );
    for object in super::entries::objects() {
        let mac = methods_macro(object);
        writeln!(
            w,
            "\n/// The `#[pymethods]` block of `{object}`: its generated entry points and the hand-written\n\
             /// methods given to the macro.\n\
             macro_rules! {mac} {{\n    ($($hand:tt)*) => {{\n        #[pyo3::pymethods]\n        impl {object} {{\n            $($hand)*\n"
        )
        .unwrap();
        for op in super::entries::of(object) {
            let (result, convert_result) = py_result(&op.result);
            let lifetime = if result.contains("'py") { "<'py>" } else { "" };
            let py = if result.contains("'py") { "pyo3::Python<'py>" } else { "pyo3::Python<'_>" };
            let mut args = vec!["&self".to_string(), format!("py: {py}")];
            for p in op.params {
                args.push(format!("{}: &pyo3::Bound<'_, pyo3::PyAny>", p.name));
            }
            let mut fields = Vec::new();
            let mut signature = String::new();
            if let Some(options) = op.options {
                let record = interface::RECORDS.iter().find(|r| r.name == options).expect("options record");
                fields = record.fields.iter().map(|f| f.name).collect();
                let names: Vec<&str> = op.params.iter().map(|p| p.name).collect();
                let keywords: Vec<String> = fields.iter().map(|f| format!("{f} = None")).collect();
                signature =
                    format!("            #[pyo3(signature = ({}, *, {}))]\n", names.join(", "), keywords.join(", "));
                for f in &fields {
                    args.push(format!("{f}: Option<&pyo3::Bound<'_, pyo3::PyAny>>"));
                }
            }
            w.push_str(&wrap("            /// ", op.doc, 100));
            w.push('\n');
            w.push_str(&signature);
            writeln!(w, "            fn {}{lifetime}({}) -> pyo3::PyResult<{result}> {{", op.name, args.join(", "))
                .unwrap();
            for p in op.params {
                writeln!(w, "                {}", py_param(p)).unwrap();
            }
            if let Some(options) = op.options {
                writeln!(
                    w,
                    "                let crate::generated::{options}Args {{ {} }} = crate::generated::{}({})?;",
                    fields.join(", "),
                    snake(options),
                    fields.join(", ")
                )
                .unwrap();
            }
            let core = format!("engine.{}({})", op.name, super::entries::core_args(op));
            let core = if super::entries::fallible(op) { core } else { format!("Ok({core})") };
            let call = format!("crate::Engine::call(self, py, move |engine| {core})?");
            if convert_result == "Ok(r)" {
                writeln!(w, "                {}", call.trim_end_matches('?')).unwrap();
            } else {
                writeln!(w, "                let r = {call};\n                {convert_result}").unwrap();
            }
            w.push_str("            }\n\n");
        }
        writeln!(w, "        }}\n    }};\n}}\npub(crate) use {mac};").unwrap();
    }
    w
}
