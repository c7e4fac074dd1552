//! The interface definition: plain tables that describe everything the bindings expose, from
//! which `make generate` writes the bindings' repeated parts and `core/interface.json`.
//!
//! * the types of fields, parameters and results ([`Type`]), with every integer's range and
//!   every string's and byte string's limits;
//! * the records ([`RECORDS`]): values the bindings carry in and out, and the option objects
//!   of the operations, each field with its type, default and documentation;
//! * the objects ([`OBJECTS`]) and their operations ([`OPERATIONS`]): parameters, options,
//!   result, and whether the call starts an asynchronous operation;
//! * what every delivered event carries ([`EVENT_METADATA`]).
//!
//! Error codes, event kinds (with their fields) and properties (with their value types) are
//! the macro-generated lists beside the types they describe: [`ErrorCode::ALL`](crate::ErrorCode),
//! [`EventKind::ALL`](crate::EventKind), [`Property::ALL`](crate::Property). Tests in the
//! devtools crate check the record tables against the types' fields.
//!
//! The `check_*` functions apply a type's limits to a value, with the message every binding
//! gives for the same bad input; the core calls them where it validates its own arguments.

use std::fmt;

use crate::error::{Error, Result};
use crate::license::{MAX_CONTENT_KEY_LEN, MAX_TEXT_LEN};

/// The interface's version: bumped on every incompatible change.
pub const INTERFACE_VERSION: u32 = 2;

/// The largest integer every binding represents exactly (2^53 - 1, JavaScript's
/// `Number.MAX_SAFE_INTEGER`): timestamps lie within plus or minus this.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The width of an integer as the bindings carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntKind {
    /// Unsigned 32-bit.
    U32,
    /// Signed 64-bit.
    I64,
    /// Unsigned 64-bit (counts and sizes the engine reports).
    U64,
}

impl IntKind {
    /// `"u32"`, `"i64"` or `"u64"`.
    pub const fn name(self) -> &'static str {
        match self {
            IntKind::U32 => "u32",
            IntKind::I64 => "i64",
            IntKind::U64 => "u64",
        }
    }
}

/// The type of a field, parameter or result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// A boolean (never a number or a string).
    Bool,
    /// An integer within `min..=max` (never a fraction, a boolean or a string).
    Int {
        /// How bindings carry it.
        kind: IntKind,
        /// The smallest accepted value.
        min: i128,
        /// The largest accepted value.
        max: i128,
    },
    /// A UTF-8 string without NUL characters, of `min_bytes` to `max_bytes` bytes.
    Text {
        /// The fewest bytes accepted (1: not empty).
        min_bytes: usize,
        /// The most bytes accepted; `None`: no limit of its own.
        max_bytes: Option<usize>,
    },
    /// A byte string of `min_len` to `max_len` bytes.
    Bytes {
        /// The fewest bytes accepted.
        min_len: usize,
        /// The most bytes accepted.
        max_len: usize,
    },
    /// A key ID: a UUID string (lowercase hyphenated when the engine writes one).
    KeyId,
    /// An error code (the bindings' code enumeration).
    ErrorCode,
    /// `"backup"` or `"restore"`.
    OperationKind,
    /// A property value: a string, an unsigned 32-bit integer or a boolean.
    PropertyValue,
    /// A duration in seconds: finite and not negative; more than 0 when `positive`, and at most
    /// `max` seconds when there is a limit.
    Seconds {
        /// Zero is out of range.
        positive: bool,
        /// The largest number of seconds, if any.
        max: Option<u32>,
    },
    /// A record of [`RECORDS`], by name.
    Record(&'static str),
    /// The type, or nothing (`None`, `null`, `nil`).
    Optional(&'static Type),
    /// A list of the type.
    List(&'static Type),
    /// An object of [`OBJECTS`], by name.
    Object(&'static str),
    /// A status callback (each binding's event idiom).
    StatusCallback,
    /// How an operation ended: its [`Summary`](crate::Summary) or its error.
    Outcome,
    /// No value.
    Void,
}

/// `true` or `false`.
pub const BOOL: Type = Type::Bool;
/// Any unsigned 32-bit integer.
pub const U32: Type = Type::Int { kind: IntKind::U32, min: 0, max: u32::MAX as i128 };
/// An unsigned 32-bit integer of at least 1.
pub const U32_NONZERO: Type = Type::Int { kind: IntKind::U32, min: 1, max: u32::MAX as i128 };
/// A count or size the engine reports.
pub const COUNT: Type = Type::Int { kind: IntKind::U64, min: 0, max: u64::MAX as i128 };
/// A duration in seconds, finite and not negative.
pub const SECONDS: Type = Type::Seconds { positive: false, max: None };
/// A network timeout: more than 0 seconds, at most an hour.
pub const TIMEOUT: Type = Type::Seconds { positive: true, max: Some(3600) };
/// Seconds since the Unix epoch, within what every binding represents exactly.
pub const TIMESTAMP: Type =
    Type::Int { kind: IntKind::I64, min: -(MAX_SAFE_INTEGER as i128), max: MAX_SAFE_INTEGER as i128 };
/// A text field of a license or catalog entry: at most [`MAX_TEXT_LEN`] bytes.
pub const TEXT: Type = Type::Text { min_bytes: 0, max_bytes: Some(MAX_TEXT_LEN) };
/// A file system path: not empty.
pub const PATH: Type = Type::Text { min_bytes: 1, max_bytes: None };
/// A string the engine reports (no limits apply).
pub const STRING: Type = Type::Text { min_bytes: 0, max_bytes: None };
/// A content key: 1 to [`MAX_CONTENT_KEY_LEN`] bytes.
pub const CONTENT_KEY: Type = Type::Bytes { min_len: 1, max_len: MAX_CONTENT_KEY_LEN };
/// An optional [`TIMESTAMP`].
pub const OPT_TIMESTAMP: Type = Type::Optional(&TIMESTAMP);
/// An optional [`U32`].
pub const OPT_U32: Type = Type::Optional(&U32);
/// An optional [`TEXT`].
pub const OPT_TEXT: Type = Type::Optional(&TEXT);

impl Type {
    /// The type's name in `core/interface.json`: `"bool"`, `"u32"`, `"string?"`, `"License[]"`...
    pub fn name(&self) -> String {
        match self {
            Type::Bool => "bool".into(),
            Type::Int { kind, .. } => kind.name().into(),
            Type::Text { .. } => "string".into(),
            Type::Bytes { .. } => "bytes".into(),
            Type::KeyId => "key_id".into(),
            Type::ErrorCode => "error_code".into(),
            Type::OperationKind => "operation".into(),
            Type::PropertyValue => "property_value".into(),
            Type::Seconds { .. } => "seconds".into(),
            Type::Record(name) | Type::Object(name) => (*name).into(),
            Type::Optional(inner) => format!("{}?", inner.name()),
            Type::List(inner) => format!("{}[]", inner.name()),
            Type::StatusCallback => "status_callback".into(),
            Type::Outcome => "outcome".into(),
            Type::Void => "void".into(),
        }
    }

    /// What a value of this type must be, as the bindings' messages say it: `"an integer in
    /// 0..=4294967295"`, `"a string of at most 4096 bytes"`, `"a boolean"`...
    pub fn expectation(&self) -> String {
        match self {
            Type::Bool => "a boolean".into(),
            Type::Int { min, max, .. } => format!("an integer in {min}..={max}"),
            Type::Text { min_bytes: 0, max_bytes: None } => "a string".into(),
            Type::Text { min_bytes: 0, max_bytes: Some(max) } => format!("a string of at most {max} bytes"),
            Type::Text { max_bytes: None, .. } => "a non-empty string".into(),
            Type::Text { min_bytes, max_bytes: Some(max) } => {
                format!("a string of {min_bytes} to {max} bytes")
            }
            Type::Bytes { min_len, max_len } => format!("{min_len} to {max_len} bytes"),
            Type::KeyId => "a key ID (a UUID string)".into(),
            Type::ErrorCode => "an error code".into(),
            Type::OperationKind => "\"backup\" or \"restore\"".into(),
            Type::PropertyValue => "a string, an integer or a boolean".into(),
            Type::Seconds { positive: false, max: None } => "a finite, non-negative number of seconds".into(),
            Type::Seconds { positive, max } => format!(
                "a number of seconds {}{}",
                if *positive { "more than 0" } else { "at least 0" },
                max.map_or(String::new(), |m| format!(" and at most {m}"))
            ),
            Type::Record(name) => format!("a {name}"),
            Type::Optional(inner) => format!("{} or nothing", inner.expectation()),
            Type::List(inner) => format!("a list of {}", inner.name()),
            Type::Object(name) => format!("a {name}"),
            Type::StatusCallback => "a status callback".into(),
            Type::Outcome => "an outcome".into(),
            Type::Void => "nothing".into(),
        }
    }

    /// The type inside `Optional`, or the type itself.
    pub const fn required(&self) -> &Type {
        match self {
            Type::Optional(inner) => inner,
            other => other,
        }
    }

    /// Checks an integer against this integer type's range (of the type inside `Optional`).
    /// `path` names the argument, or the field within it, in the message.
    pub fn check_int(&self, path: impl fmt::Display, value: i128) -> Result<()> {
        match self.required() {
            Type::Int { min, max, .. } if (*min..=*max).contains(&value) => Ok(()),
            other => Err(invalid(path, other, value)),
        }
    }

    /// Checks a string against this text type's limits: its length in bytes of UTF-8, and no
    /// NUL character.
    pub fn check_text(&self, path: impl fmt::Display, text: &str) -> Result<()> {
        let Type::Text { min_bytes, max_bytes } = *self.required() else {
            return Err(invalid(path, self.required(), "a string"));
        };
        if text.len() < min_bytes || max_bytes.is_some_and(|max| text.len() > max) {
            return Err(invalid(path, self.required(), format_args!("{} bytes", text.len())));
        }
        if text.contains('\0') {
            return Err(Error::invalid(format!("{path} must not contain a NUL character")));
        }
        Ok(())
    }

    /// Checks a number of seconds against this seconds type's range (finite, not negative, and
    /// its own limits).
    pub fn check_seconds(&self, path: impl fmt::Display, seconds: f64) -> Result<()> {
        match *self.required() {
            Type::Seconds { positive, max }
                if seconds.is_finite()
                    && seconds >= 0.0
                    && !(positive && seconds == 0.0)
                    && max.is_none_or(|m| seconds <= f64::from(m)) =>
            {
                Ok(())
            }
            ref other => Err(invalid(path, other, seconds)),
        }
    }

    /// Checks the length of a byte string against this bytes type's limits.
    pub fn check_bytes(&self, path: impl fmt::Display, len: usize) -> Result<()> {
        match *self.required() {
            Type::Bytes { min_len, max_len } if (min_len..=max_len).contains(&len) => Ok(()),
            ref other => Err(invalid(path, other, format_args!("{len} bytes"))),
        }
    }
}

/// The `INVALID_ARGUMENT` error every binding gives for a value that is not what `ty` wants:
/// `"{path} must be {expectation}, not {got}"`.
pub fn invalid(path: impl fmt::Display, ty: &Type, got: impl fmt::Display) -> Error {
    Error::invalid(format!("{path} must be {}, not {got}", ty.expectation()))
}

/// Checks a file system path argument against [`PATH`]: not empty, and no NUL character.
pub fn check_path(name: &str, path: &std::path::Path) -> Result<()> {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.is_empty() {
        return Err(invalid(name, &PATH, "0 bytes"));
    }
    if bytes.contains(&0) {
        return Err(Error::invalid(format!("{name} must not contain a NUL character")));
    }
    Ok(())
}

/// Where a value sits in a call's arguments (`license.rights.plays_remaining`), formatted
/// only when a message needs it.
#[derive(Clone, Copy, Debug)]
pub struct ArgPath<'a> {
    parent: Option<&'a ArgPath<'a>>,
    name: &'a str,
}

impl<'a> ArgPath<'a> {
    /// An argument.
    pub const fn arg(name: &'a str) -> Self {
        ArgPath { parent: None, name }
    }

    /// A field of the value at this path.
    pub const fn field(&'a self, name: &'a str) -> ArgPath<'a> {
        ArgPath { parent: Some(self), name }
    }
}

impl fmt::Display for ArgPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            write!(f, "{parent}.")?;
        }
        f.write_str(self.name)
    }
}

/// A default value of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Default {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// Nothing (for an optional field).
    Null,
}

/// A named, typed field of a record, parameter of an operation, or field of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The name, in snake_case (each binding converts it to its idiom).
    pub name: &'static str,
    /// The type, with its limits.
    pub ty: Type,
    /// One or two sentences for the generated documentation.
    pub doc: &'static str,
    /// The value when the caller leaves it out; `None`: required.
    pub default: Option<Default>,
    /// A secret (a content key): never shown in a debug representation.
    pub secret: bool,
}

impl Field {
    /// A required field.
    pub const fn new(name: &'static str, ty: Type, doc: &'static str) -> Field {
        Field { name, ty, doc, default: None, secret: false }
    }

    /// The field with a default value.
    pub const fn default(self, value: Default) -> Field {
        Field { default: Some(value), ..self }
    }

    /// The field, marked secret.
    pub const fn secret(self) -> Field {
        Field { secret: true, ..self }
    }
}

/// What a record is for, which decides the forms bindings generate for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Passed in and returned (`Rights`, `CatalogEntry`).
    Value,
    /// Only passed in (`NewLicense`).
    Input,
    /// Only returned (`License`, `Summary`, `Quota`).
    Output,
    /// The options of an operation: keyword arguments, an options object or labelled
    /// arguments with defaults, by binding.
    Options,
}

/// A record: a named set of fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// The name (the core's type, when `core` is set).
    pub name: &'static str,
    /// What it is, for the generated documentation.
    pub doc: &'static str,
    /// What it is for.
    pub role: Role,
    /// Whether the core has a struct of this name with exactly these fields (checked by a test),
    /// which bindings convert to and from.
    pub core: bool,
    /// The fields, in the order bindings present them.
    pub fields: &'static [Field],
}

/// An object of the interface: a class in each binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Object {
    /// The name.
    pub name: &'static str,
    /// What it is, for the generated documentation.
    pub doc: &'static str,
}

/// How an operation is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// It makes its object (`LicenseStore.open`, `BackupRestorer.create`).
    Constructor,
    /// A static function of the object's class that returns one (`Protector.keyring`).
    Factory,
    /// A method of an object.
    Method,
    /// A read-only attribute of an object (`LicenseStore.protector_label`).
    Getter,
}

/// An operation of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The object it belongs to.
    pub object: &'static str,
    /// The name, in snake_case.
    pub name: &'static str,
    /// What it does, for the generated documentation.
    pub doc: &'static str,
    /// How it is called.
    pub call: Call,
    /// The positional parameters.
    pub params: &'static [Field],
    /// The record of its options, if it takes any.
    pub options: Option<&'static str>,
    /// What it returns.
    pub result: Type,
    /// It starts an asynchronous operation that reports status events and ends later (its
    /// result is the running operation); otherwise it returns when done.
    pub starts: bool,
}

impl Operation {
    /// A method with no parameters that returns nothing.
    pub const fn method(object: &'static str, name: &'static str, doc: &'static str) -> Operation {
        Operation {
            object,
            name,
            doc,
            call: Call::Method,
            params: &[],
            options: None,
            result: Type::Void,
            starts: false,
        }
    }

    /// The constructor of `object`.
    pub const fn constructor(object: &'static str, name: &'static str, doc: &'static str) -> Operation {
        Operation {
            object,
            name,
            doc,
            call: Call::Constructor,
            params: &[],
            options: None,
            result: Type::Object(object),
            starts: false,
        }
    }

    /// The operation with these parameters.
    pub const fn params(self, params: &'static [Field]) -> Operation {
        Operation { params, ..self }
    }

    /// The operation with the options of this record.
    pub const fn options(self, record: &'static str) -> Operation {
        Operation { options: Some(record), ..self }
    }

    /// The operation returning `result`.
    pub const fn returns(self, result: Type) -> Operation {
        Operation { result, ..self }
    }

    /// The operation as a factory of its object (a static function returning one).
    pub const fn factory(self) -> Operation {
        Operation { call: Call::Factory, result: Type::Object(self.object), ..self }
    }

    /// The operation as a read-only attribute.
    pub const fn getter(self) -> Operation {
        Operation { call: Call::Getter, ..self }
    }

    /// The operation, starting an asynchronous operation.
    pub const fn starts(self) -> Operation {
        Operation { starts: true, result: Type::Object("Operation"), ..self }
    }
}

const KEY_ID: Field = Field::new("key_id", Type::KeyId, "The license's key ID.");

/// Every record of the interface.
pub const RECORDS: &[Record] = &[
    Record {
        name: "Rights",
        doc: "What the content owner allows the holder of a license to do.",
        role: Role::Value,
        core: true,
        fields: &[
            Field::new("play", BOOL, "The content may be played.").default(Default::Bool(true)),
            Field::new("burn", BOOL, "The content may be burned to a CD.").default(Default::Bool(true)),
            Field::new("transfer", BOOL, "The content may be transferred to a portable device.")
                .default(Default::Bool(true)),
            Field::new(
                "backup_allowed",
                BOOL,
                "The license may be backed up and restored; a backup reports a license without this right \
                 with a RESTRICTED_LICENSE event and leaves it out.",
            )
            .default(Default::Bool(true)),
            Field::new("expires_at", OPT_TIMESTAMP, "When the license expires, in seconds since the Unix epoch; none: never.")
                .default(Default::Null),
            Field::new("plays_remaining", OPT_U32, "How many plays remain; none: unlimited.").default(Default::Null),
        ],
    },
    Record {
        name: "CatalogEntry",
        doc: "What the application knows about a protected file, by key ID.",
        role: Role::Value,
        core: true,
        fields: &[
            Field::new("title", OPT_TEXT, "The title of the song or film.").default(Default::Null),
            Field::new("artist", OPT_TEXT, "The artist.").default(Default::Null),
            Field::new("file_path", OPT_TEXT, "Where the protected file lives on this device.").default(Default::Null),
        ],
    },
    Record {
        name: "NewLicense",
        doc: "A license as the application adds it: the only record that carries the content key.",
        role: Role::Input,
        core: true,
        fields: &[
            Field::new("key_id", Type::KeyId, "The key ID: a UUID string."),
            Field::new("content_key", CONTENT_KEY, "The content key (secret): sealed to the device key before it is stored.")
                .secret(),
            Field::new("rights", Type::Record("Rights"), "The rights granted."),
            Field::new("issuer", TEXT, "Who issued the license (a license server URL or name)."),
            Field::new("issued_at", TIMESTAMP, "When it was issued, in seconds since the Unix epoch."),
        ],
    },
    Record {
        name: "License",
        doc: "A license as the store describes it: everything but the content key.",
        role: Role::Output,
        core: true,
        fields: &[
            Field::new("key_id", Type::KeyId, "The key ID: a lowercase hyphenated UUID."),
            Field::new("rights", Type::Record("Rights"), "The rights granted."),
            Field::new("issuer", STRING, "Who issued the license."),
            Field::new("issued_at", TIMESTAMP, "When it was issued, in seconds since the Unix epoch."),
            Field::new(
                "catalog",
                Type::Optional(&Type::Record("CatalogEntry")),
                "The catalog entry of this key ID, if the application keeps one.",
            ),
        ],
    },
    Record {
        name: "Summary",
        doc: "What a finished operation did.",
        role: Role::Output,
        core: true,
        fields: &[
            Field::new("licenses", COUNT, "Licenses written to the archive (backup) or added to the store (restore)."),
            Field::new("restricted", COUNT, "Licenses a backup left out because their owner forbids backup."),
            Field::new("skipped", COUNT, "Archived licenses a restore left alone because the device already had them."),
            Field::new("bytes", COUNT, "Archive bytes written (backup) or read (restore)."),
            Field::new("duration_ms", COUNT, "Wall time of the operation, in milliseconds."),
        ],
    },
    Record {
        name: "Quota",
        doc: "What the restore quota allows for the archive in RestorePath onto this device.",
        role: Role::Output,
        core: true,
        fields: &[
            Field::new("licenses", COUNT, "Licenses in the archive."),
            Field::new("max_devices", U32, "Distinct devices a license may live on."),
            Field::new("restores_remaining", U32, "How many more new devices could still receive every license of the archive."),
            Field::new("device_already_counted", BOOL, "This device already counts for every license: restoring onto it again is free."),
            Field::new("allowed", BOOL, "Whether the service would authorize this restore now."),
        ],
    },
    Record {
        name: "LedgerAudit",
        doc: "What an embedded service's ledger holds (EmbeddedService.audit()).",
        role: Role::Output,
        core: true,
        fields: &[
            Field::new("pending", COUNT, "Reservations granted and not yet confirmed or released (they count)."),
            Field::new("confirmed", COUNT, "Reservations confirmed by their device (they count)."),
            Field::new("released", COUNT, "Reservations released by their device (they do not count)."),
            Field::new("expired", COUNT, "Reservations left pending past the service's limit (they count, for good)."),
            Field::new("licenses", COUNT, "Licenses with at least one device counted."),
            Field::new("placements", COUNT, "(license, device) pairs that count."),
            Field::new("devices", COUNT, "Devices known to belong to the account."),
        ],
    },
    Record {
        name: "PropertyEntry",
        doc: "A property that is set, with its name.",
        role: Role::Output,
        core: false,
        fields: &[
            Field::new("name", STRING, "The property's name."),
            Field::new("value", Type::PropertyValue, "Its value."),
        ],
    },
    Record {
        name: "BackupFlags",
        doc: "Options of a backup.",
        role: Role::Options,
        core: true,
        fields: &[Field::new(
            "overwrite",
            BOOL,
            "Replace an archive already in the folder (otherwise that is BACKUP_EXISTS, and the archive is left as it was).",
        )
        .default(Default::Bool(false))],
    },
    Record {
        name: "RestoreFlags",
        doc: "Options of a restore.",
        role: Role::Options,
        core: true,
        fields: &[
            Field::new("individualize", BOOL, "Give this device a fresh identity and re-bind every license to it.")
                .default(Default::Bool(false)),
            Field::new(
                "replace_existing",
                BOOL,
                "Replace licenses the device already has with their archived copies (otherwise they are kept and counted as skipped).",
            )
            .default(Default::Bool(false)),
        ],
    },
    Record {
        name: "QuotaOptions",
        doc: "Options of a restore quota query.",
        role: Role::Options,
        core: false,
        fields: &[Field::new(
            "individualize",
            BOOL,
            "Ask for a restore onto a new identity of this device (which counts as this device), as \
             restore_licenses with individualize would make.",
        )
        .default(Default::Bool(false))],
    },
    Record {
        name: "AddOptions",
        doc: "Options of adding licenses.",
        role: Role::Options,
        core: false,
        fields: &[Field::new(
            "replace",
            BOOL,
            "Replace a license with the same key ID (otherwise that is LICENSE_EXISTS).",
        )
        .default(Default::Bool(false))],
    },
    Record {
        name: "ServiceOptions",
        doc: "The policy of an embedded License Management Service.",
        role: Role::Options,
        core: false,
        fields: &[
            Field::new("max_devices", Type::Optional(&U32_NONZERO), "Distinct devices a license may live on (default 4).")
                .default(Default::Null),
            Field::new("refusal_url", OPT_TEXT, "The page a refusal points to (default: the library's).")
                .default(Default::Null),
            Field::new(
                "protector",
                Type::Optional(&Type::Object("Protector")),
                "What holds the service's seed (default: unprotected, the seed in clear in the ledger).",
            )
            .default(Default::Null),
        ],
    },
    Record {
        name: "RemoteServiceOptions",
        doc: "How a client of a networked License Management Service reaches and trusts it.",
        role: Role::Options,
        core: false,
        fields: &[
            Field::new(
                "token",
                Type::Optional(&Type::Text { min_bytes: 1, max_bytes: Some(MAX_TEXT_LEN) }),
                "The bearer token the content provider gave the application (A-Z a-z 0-9 - . _ ~ + / =).",
            )
                .default(Default::Null)
                .secret(),
            Field::new(
                "ca_file",
                Type::Optional(&PATH),
                "A PEM file of CA certificates trusted besides the system's (a self-hosted service's own CA).",
            )
            .default(Default::Null),
            Field::new(
                "cert_pins",
                Type::Optional(&Type::List(&STRING)),
                "SHA-256 fingerprints (hex) of the only server certificates accepted (then neither the system's \
                 roots nor the host name are checked).",
            )
            .default(Default::Null),
            Field::new(
                "service_keys",
                Type::Optional(&Type::List(&STRING)),
                "Fingerprints (32 hex digits) of the service keys a backup may wrap to (SERVICE_KEY_NOT_PINNED for \
                 another).",
            )
            .default(Default::Null),
            Field::new(
                "timeout",
                Type::Optional(&TIMEOUT),
                "The connect, read and write timeout, each, in seconds: more than 0, at most 3600 (default 30).",
            )
            .default(Default::Null),
            Field::new(
                "retries",
                Type::Optional(&Type::Int { kind: IntKind::U32, min: 0, max: 10 }),
                "How many times a call that failed in transit is tried again (default 2).",
            )
                .default(Default::Null),
        ],
    },
    Record {
        name: "StoreOptions",
        doc: "How a license store is opened.",
        role: Role::Options,
        core: false,
        fields: &[Field::new(
            "protector",
            Type::Optional(&Type::Object("Protector")),
            "What holds the device's seed (default: unprotected, the seed in clear in the store); an \
             unprotected store opened with a protector is protected in place.",
        )
        .default(Default::Null)],
    },
];

/// Every object of the interface.
pub const OBJECTS: &[Object] = &[
    Object {
        name: "LicenseStore",
        doc: "The licenses on this device, in a SQLite file; content keys are sealed to the device key.",
    },
    Object {
        name: "EmbeddedService",
        doc: "The in-process License Management Service, its key pair and quota ledger in a local file.",
    },
    Object {
        name: "RemoteService",
        doc: "A License Management Service reached over HTTPS (docs/service-protocol.md): a content provider's server.",
    },
    Object {
        name: "LicenseService",
        doc: "A License Management Service: an EmbeddedService or a RemoteService (each binding's own form: a \
              union, a protocol).",
    },
    Object {
        name: "BackupRestorer",
        doc: "Backs up and restores the licenses of one store (WMCreateBackupRestorer), reporting status events.",
    },
    Object { name: "Operation", doc: "A running (or finished) backup or restore." },
    Object {
        name: "HostProtector",
        doc: "An object of the host's with wrap(seed) returning bytes and unwrap(wrapped) returning the seed or \
              nothing (each binding's own form: a protocol, an interface).",
    },
    Object {
        name: "Protector",
        doc: "What holds the secret seed of a store or a ledger: unprotected, the platform keyring, or a \
              host object with wrap and unwrap.",
    },
];

const PATH_PARAM: Field = Field::new("path", PATH, "The file.");

/// Every operation of the interface, by object.
pub const OPERATIONS: &[Operation] = &[
    Operation::constructor(
        "LicenseStore",
        "open",
        "Opens the store at path, creating it with a fresh device identity if needed.",
    )
    .params(&[PATH_PARAM])
    .options("StoreOptions"),
    Operation::method("LicenseStore", "protector_label", "The label of the protector the store was opened with.")
        .returns(STRING)
        .getter(),
    Operation::method(
        "LicenseStore",
        "device_id",
        "This device's identity: 32 hex digits (a restore that individualizes changes it).",
    )
    .returns(STRING),
    Operation::method(
        "LicenseStore",
        "add_license",
        "Adds a license (LICENSE_EXISTS for a key ID already there, unless replace).",
    )
    .params(&[Field::new("license", Type::Record("NewLicense"), "The license.")])
    .options("AddOptions"),
    Operation::method("LicenseStore", "add_licenses", "Adds many licenses in one transaction: all of them, or none.")
        .params(&[Field::new("licenses", Type::List(&Type::Record("NewLicense")), "The licenses.")])
        .options("AddOptions"),
    Operation::method(
        "LicenseStore",
        "get_license",
        "The license with this key ID (without its content key), or none.",
    )
    .params(&[KEY_ID])
    .returns(Type::Optional(&Type::Record("License"))),
    Operation::method("LicenseStore", "list_licenses", "Every license, ordered by key ID.")
        .returns(Type::List(&Type::Record("License"))),
    Operation::method("LicenseStore", "remove_license", "Removes a license; returns whether there was one.")
        .params(&[KEY_ID])
        .returns(BOOL),
    Operation::method("LicenseStore", "license_count", "How many licenses the store holds.").returns(COUNT),
    Operation::method(
        "LicenseStore",
        "content_key",
        "The content key of a license (LICENSE_NOT_FOUND if there is none).",
    )
    .params(&[KEY_ID])
    .returns(Type::Bytes { min_len: 1, max_len: MAX_CONTENT_KEY_LEN }),
    Operation::method(
        "LicenseStore",
        "update_rights",
        "Replaces the rights of a license (renewed by the license server) and seals its row again.",
    )
    .params(&[KEY_ID, Field::new("rights", Type::Record("Rights"), "The new rights.")]),
    Operation::method(
        "LicenseStore",
        "use_play",
        "Records one play (PLAY_NOT_ALLOWED, LICENSE_EXPIRED, PLAYS_EXHAUSTED); returns the rights after it.",
    )
    .params(&[KEY_ID])
    .returns(Type::Record("Rights")),
    Operation::method("LicenseStore", "set_catalog_entry", "Sets (replaces) the catalog entry of a key ID.")
        .params(&[KEY_ID, Field::new("entry", Type::Record("CatalogEntry"), "The entry.")]),
    Operation::method("LicenseStore", "catalog_entry", "The catalog entry of a key ID, or none.")
        .params(&[KEY_ID])
        .returns(Type::Optional(&Type::Record("CatalogEntry"))),
    Operation::method(
        "LicenseStore",
        "remove_catalog_entry",
        "Removes the catalog entry of a key ID; returns whether there was one.",
    )
    .params(&[KEY_ID])
    .returns(BOOL),
    Operation::method(
        "LicenseStore",
        "verify",
        "Checks the database and every content key; returns how many licenses were checked.",
    )
    .returns(COUNT),
    Operation::constructor("EmbeddedService", "open", "Opens (or creates) the service's ledger at path.")
        .params(&[PATH_PARAM])
        .options("ServiceOptions"),
    Operation::method(
        "EmbeddedService",
        "set_online",
        "Takes the service offline (SERVICE_UNAVAILABLE) or back online.",
    )
    .params(&[Field::new("online", BOOL, "Whether the service answers.")]),
    Operation::method(
        "EmbeddedService",
        "audit",
        "What the ledger holds: reservations by state, licenses and devices counted.",
    )
    .returns(Type::Record("LedgerAudit")),
    Operation::constructor(
        "RemoteService",
        "open",
        "A client of the service at url (https://host[:port][/prefix]; http:// only for a loopback address); nothing \
         is sent until a call needs the service.",
    )
    .params(&[Field::new("url", STRING, "The service's URL.")])
    .options("RemoteServiceOptions"),
    Operation::method("RemoteService", "url", "The service's URL.").returns(STRING).getter(),
    Operation::constructor("BackupRestorer", "create", "A restorer over a store, authorizing restores with a service.")
        .params(&[
            Field::new("store", Type::Object("LicenseStore"), "The store."),
            Field::new("service", Type::Object("LicenseService"), "The License Management Service."),
        ]),
    Operation::method(
        "BackupRestorer",
        "set_property",
        "Sets a property (UNKNOWN_PROPERTY, WRONG_PROPERTY_TYPE, INVALID_ARGUMENT).",
    )
    .params(&[
        Field::new("name", STRING, "The property's name."),
        Field::new("value", Type::PropertyValue, "Its value, of the property's type."),
    ]),
    Operation::method("BackupRestorer", "get_property", "A property's value; none when it is not set.")
        .params(&[Field::new("name", STRING, "The property's name.")])
        .returns(Type::Optional(&Type::PropertyValue)),
    Operation::method(
        "BackupRestorer",
        "property_by_index",
        "The index-th property set, with its name (INVALID_ARGUMENT past the end).",
    )
    .params(&[Field::new("index", U32, "The position, in the order the properties were first set.")])
    .returns(Type::Record("PropertyEntry")),
    Operation::method("BackupRestorer", "property_count", "How many properties are set.").returns(U32),
    Operation::method("BackupRestorer", "remove_property", "Removes a property; returns whether it was set.")
        .params(&[Field::new("name", STRING, "The property's name.")])
        .returns(BOOL),
    Operation::method("BackupRestorer", "remove_all_properties", "Removes every property."),
    Operation::method(
        "BackupRestorer",
        "backup_licenses",
        "Backs up every license that may be backed up to BackupPath.",
    )
    .options("BackupFlags")
    .params(&[Field::new("callback", Type::StatusCallback, "Receives the status events.")])
    .starts(),
    Operation::method("BackupRestorer", "restore_licenses", "Restores the archive in RestorePath onto this device.")
        .options("RestoreFlags")
        .params(&[Field::new("callback", Type::StatusCallback, "Receives the status events.")])
        .starts(),
    Operation::method("BackupRestorer", "cancel_license_backup", "Cancels the running backup, if any."),
    Operation::method("BackupRestorer", "cancel_license_restore", "Cancels the running restore, if any."),
    Operation::method(
        "BackupRestorer",
        "restore_quota",
        "What the restore quota allows for the archive in RestorePath onto this device, asked of the service \
         without changing anything.",
    )
    .options("QuotaOptions")
    .returns(Type::Record("Quota")),
    Operation::method("Operation", "wait", "Waits for the end; returns the summary or raises the operation's error.")
        .params(&[Field::new("timeout", Type::Optional(&SECONDS), "How long to wait at most; none: no limit.")
            .default(Default::Null)])
        .returns(Type::Record("Summary")),
    Operation::method("Operation", "cancel", "Asks the operation to stop; it then ends with CANCELLED."),
    Operation::method("Operation", "is_finished", "Whether the operation has ended and delivered its END event.")
        .returns(BOOL)
        .getter(),
    Operation::method("Protector", "unprotected", "The seed in clear in the file (the default).").factory(),
    Operation::method("Protector", "keyring", "A wrapping key in the platform keystore.")
        .params(&[Field::new(
            "service",
            Type::Optional(&STRING),
            "The keystore service name (default: the library's).",
        )
        .default(Default::Null)])
        .factory(),
    Operation::method("Protector", "host", "The host's own protector: an object with wrap(seed) and unwrap(wrapped).")
        .params(&[Field::new("protector", Type::Object("HostProtector"), "The host object.")])
        .factory(),
    Operation::method("Protector", "label", "A name for the protector, for logs.").returns(STRING).getter(),
];

/// What every delivered event carries besides its own fields ([`crate::Emitted`]): each
/// binding exposes it on its event objects, under its idiomatic name. Not part of the
/// normalized form the conformance scenarios compare.
pub const EVENT_METADATA: &[Field] = &[Field::new(
    "emitted_ns",
    COUNT,
    "When the engine emitted the event: the platform's monotonic clock in nanoseconds \
     (Python time.monotonic_ns(), Node process.hrtime.bigint(), Swift DispatchTime.uptimeNanoseconds).",
)];

/// The record of this name.
pub fn record(name: &str) -> Option<&'static Record> {
    RECORDS.iter().find(|r| r.name == name)
}
