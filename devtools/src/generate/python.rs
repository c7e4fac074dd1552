//! The Python package's generated files.
//!
//! * `license_backup/_errors.py`: the `ErrorCode` IntEnum and one `LicenseBackupError` subclass
//!   per code, named from the Rust variant (`BackupExists` → `BackupExistsError`).

use std::fmt::Write;

use license_backup::ErrorCode;

use super::{HEADER, Output, quoted};

const PACKAGE: &str = "bindings-python/python/license_backup";

/// Python idiom: a few codes are also the built-in exception a Python programmer catches.
const EXTRA_BASES: &[(ErrorCode, &str)] = &[
    (ErrorCode::InvalidArgument, "ValueError"),
    (ErrorCode::UnknownProperty, "KeyError"),
    (ErrorCode::WrongPropertyType, "TypeError"),
];

/// Every generated file of the Python package.
pub fn outputs() -> Vec<Output> {
    vec![Output { path: format!("{PACKAGE}/_errors.py"), text: errors() }]
}

/// The exception class of a code: `BackupExists` → `BackupExistsError`.
pub fn class_name(code: ErrorCode) -> String {
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
    subclass (``BackupExistsError``, ...); catch this class to handle them all.
    """

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL
    message: str

    def __init__(self, message: str = "", code: Optional[Union[ErrorCode, int]] = None) -> None:
        super().__init__(message)
        self.message = message or (self.code.description if code is None else ErrorCode(code).description)
        if code is not None:
            # An instance of the base class itself may carry any code.
            self.code = ErrorCode(code)  # type: ignore[misc]

    @property
    def name(self) -> str:
        """The symbolic name of the code, such as ``"BACKUP_EXISTS"``."""
        return self.code.name

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (int(self.code), self.message))
"#,
    );
    for &code in ErrorCode::ALL {
        let extra = EXTRA_BASES.iter().find(|(c, _)| *c == code).map(|(_, base)| *base);
        let bases = match extra {
            Some(base) => format!("LicenseBackupError, {base}"),
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
        if extra == Some("KeyError") {
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


def error_for(code: Union[ErrorCode, int], message: str) -> LicenseBackupError:
    """The exception (not raised) for a code and message: what the engine's errors become."""
    try:
        cls = _CLASSES[ErrorCode(code)]
    except ValueError:
        return LicenseBackupError(message or f"unknown error code {code}", ErrorCode.INTERNAL)
    return cls(message)


def _rebuild(code: int, message: str) -> LicenseBackupError:
    return error_for(code, message)


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
