//! The Swift package's generated files.
//!
//! * `bindings-swift/src/generated.rs`: the uniffi crate's mirrors of the core's lists: the
//!   error codes (Swift's `ErrorCode`, whose raw value is the stable number), the records (with
//!   their defaults, conversions and the checks of their limits) and the status events.
//! * `bindings-swift/Sources/LicenseBackup/Generated.swift`: the overlay's repeated parts: the
//!   record type aliases, the delegate protocol with a method per event and its default
//!   implementations, the event value with its dispatch and its conversion from the generated
//!   layer, and the property accessors; the public classes' methods of the operations with
//!   generated entry points (extensions calling their `Raw*` entry points).
//! * `bindings-swift/src/entries.rs`: the `Raw*` objects' per-operation entry points.

use std::fmt::Write;

use license_backup::interface::{Default, EVENT_METADATA, Field, IntKind, RECORDS, Role, Type};
use license_backup::{ErrorCode, EventKind, Property, ValueType};

use super::{HEADER, Output, lower_camel, lower_first, rust_type_expr, upper_camel, wrap};

/// Every generated file of the Swift package.
pub fn outputs() -> Vec<Output> {
    vec![
        Output { path: "bindings-swift/src/generated.rs".into(), text: rust() },
        Output { path: "bindings-swift/src/entries.rs".into(), text: entries_rust() },
        Output { path: "bindings-swift/Sources/LicenseBackup/Generated.swift".into(), text: overlay() },
    ]
}

// ---------------------------------------------------------------------------------------------
// The uniffi crate (Rust)
// ---------------------------------------------------------------------------------------------

/// The uniffi crate's Rust type of a field.
fn rust_type(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::Int { kind, .. } => kind.name().into(),
        Type::Text { .. } | Type::KeyId => "String".into(),
        Type::Bytes { .. } => "Vec<u8>".into(),
        Type::ErrorCode => "ErrorCode".into(),
        Type::OperationKind => "OperationKind".into(),
        Type::Record(name) => (*name).into(),
        Type::Optional(inner) => format!("Option<{}>", rust_type(inner)),
        Type::List(inner) => format!("Vec<{}>", rust_type(inner)),
        other => unreachable!("no uniffi field of type {other:?}"),
    }
}

fn uniffi_default(d: Default) -> String {
    match d {
        Default::Bool(b) => b.to_string(),
        Default::Int(n) => n.to_string(),
        Default::Null => "None".into(),
    }
}

/// The expression converting field `f` of `self` (a uniffi record) to the core's type, checking
/// its limits (`?` applies; `path` is the record's place in the arguments).
fn to_core_expr(f: &Field) -> String {
    let at = format!("&path.field({:?})", lower_camel(f.name));
    let value = format!("self.{}", f.name);
    match f.ty {
        Type::Bool => value,
        Type::KeyId => format!("parse_key_id(&{value}, path.field({:?}))?", lower_camel(f.name)),
        Type::Record(_) => format!("{value}.to_core({at})?"),
        Type::Optional(Type::Record(_)) => format!("{value}.as_ref().map(|r| r.to_core({at})).transpose()?"),
        Type::Int { .. } | Type::Optional(Type::Int { .. }) => {
            format!("check(&{}, {at}, {value})?", rust_type_expr(&f.ty))
        }
        _ => format!("check(&{}, {at}, {value}.clone())?", rust_type_expr(&f.ty)),
    }
}

fn rust() -> String {
    let mut w = String::new();
    writeln!(w, "// {HEADER}").unwrap();
    w.push_str(
        "//! The uniffi crate's mirrors of the core's lists (error codes, records, status events), generated\n\
         //! from the interface definition.\n\n\
         // An event without fields is matched as `Kind {}`, whether the core declares it with braces or not.\n\
         #![allow(clippy::unneeded_struct_pattern)]\n\n\
         use license_backup as core_api;\n\
         use license_backup::interface::{ArgPath, IntKind, Type};\n\n\
         use crate::{FfiResult, OperationKind, Pack, check, parse_key_id};\n\n",
    );
    // Error codes.
    w.push_str(
        "/// A stable error code: the same numbers (the discriminants) and symbolic names as the core's\n\
         /// `ErrorCode`. Swift sees `enum ErrorCode: UInt32`, whose raw value is the number.\n\
         #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, uniffi::Enum)]\n\
         #[repr(u32)]\n\
         pub enum ErrorCode {\n",
    );
    for code in ErrorCode::ALL {
        writeln!(w, "{}\n    {} = {},", wrap("    /// ", code.doc(), 100), code.variant_name(), code.number()).unwrap();
    }
    w.push_str(
        "}\n\nimpl ErrorCode {\n    /// Every code, in numeric order.\n    pub const ALL: &'static [ErrorCode] = &[\n",
    );
    for code in ErrorCode::ALL {
        writeln!(w, "        ErrorCode::{},", code.variant_name()).unwrap();
    }
    w.push_str(
        "    ];\n\n    /// The core's code.\n    pub fn to_core(self) -> core_api::ErrorCode {\n        match self {\n",
    );
    for code in ErrorCode::ALL {
        writeln!(w, "            ErrorCode::{0} => core_api::ErrorCode::{0},", code.variant_name()).unwrap();
    }
    w.push_str("        }\n    }\n}\n\nimpl From<core_api::ErrorCode> for ErrorCode {\n");
    w.push_str("    fn from(code: core_api::ErrorCode) -> Self {\n        match code {\n");
    for code in ErrorCode::ALL {
        writeln!(w, "            core_api::ErrorCode::{0} => ErrorCode::{0},", code.variant_name()).unwrap();
    }
    w.push_str("            // The core's enum is non-exhaustive; every code it has is listed above.\n");
    w.push_str("            _ => ErrorCode::Internal,\n        }\n    }\n}\n");
    // Records.
    for record in RECORDS.iter().filter(|r| r.role != Role::Options && r.core) {
        let custom_debug = record.fields.iter().any(|f| f.secret);
        writeln!(w, "\n{}", wrap("/// ", record.doc, 100)).unwrap();
        let mut derives = vec!["Clone"];
        if !custom_debug {
            derives.push("Debug");
        }
        derives.extend(["PartialEq", "Eq", "uniffi::Record"]);
        writeln!(w, "#[derive({})]\npub struct {} {{", derives.join(", "), record.name).unwrap();
        for f in record.fields {
            writeln!(w, "{}", wrap("    /// ", f.doc, 100)).unwrap();
            if let Some(d) = f.default {
                writeln!(w, "    #[uniffi(default = {})]", uniffi_default(d)).unwrap();
            }
            writeln!(w, "    pub {}: {},", f.name, rust_type(&f.ty)).unwrap();
        }
        w.push_str("}\n");
        if custom_debug {
            writeln!(w, "\nimpl std::fmt::Debug for {} {{", record.name).unwrap();
            w.push_str("    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {\n");
            writeln!(w, "        f.debug_struct({:?})", record.name).unwrap();
            for f in record.fields {
                if f.secret {
                    writeln!(w, "            .field({:?}, &\"<secret>\")", f.name).unwrap();
                } else {
                    writeln!(w, "            .field({:?}, &self.{})", f.name, f.name).unwrap();
                }
            }
            w.push_str("            .finish()\n    }\n}\n");
        }
        if matches!(record.role, Role::Value | Role::Input) {
            writeln!(w, "\nimpl {} {{", record.name).unwrap();
            writeln!(
                w,
                "    /// The core's record, every field checked against its limits (`INVALID_ARGUMENT`); `path`\n    \
                 /// names it in messages.\n    \
                 pub fn to_core(&self, path: &ArgPath<'_>) -> FfiResult<core_api::{}> {{\n        Ok(core_api::{} {{",
                record.name, record.name
            )
            .unwrap();
            for f in record.fields {
                writeln!(w, "            {}: {},", f.name, to_core_expr(f)).unwrap();
            }
            w.push_str("        })\n    }\n}\n");
        }
        if matches!(record.role, Role::Value | Role::Output) {
            writeln!(
                w,
                "\nimpl From<core_api::{0}> for {0} {{\n    fn from(r: core_api::{0}) -> Self {{\n        {0} {{",
                record.name
            )
            .unwrap();
            for f in record.fields {
                let expr = match f.ty {
                    Type::KeyId => format!("r.{}.to_string()", f.name),
                    Type::Record(_) => format!("r.{}.into()", f.name),
                    Type::Optional(Type::Record(_)) => format!("r.{}.map(Into::into)", f.name),
                    _ => format!("r.{}", f.name),
                };
                writeln!(w, "            {}: {expr},", f.name).unwrap();
            }
            w.push_str("        }\n    }\n}\n");
        }
    }
    // Events.
    w.push_str("\n/// A status event (`IWMStatusCallback::OnStatus`), as the Swift side receives it.\n");
    w.push_str("#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]\npub enum StatusEvent {\n");
    for &kind in EventKind::ALL {
        writeln!(w, "{}", wrap("    /// ", kind.description(), 100)).unwrap();
        let fields = uniffi_event_fields(kind);
        if fields.is_empty() {
            writeln!(w, "    {},", upper_camel(kind.name())).unwrap();
        } else {
            writeln!(w, "    {} {{", upper_camel(kind.name())).unwrap();
            for (name, ty, doc) in fields {
                writeln!(w, "{}\n        {name}: {ty},", wrap("        /// ", doc, 100)).unwrap();
            }
            w.push_str("    },\n");
        }
    }
    w.push_str("}\n\nimpl From<&core_api::StatusEvent> for StatusEvent {\n");
    w.push_str("    fn from(event: &core_api::StatusEvent) -> Self {\n        match event {\n");
    for &kind in EventKind::ALL {
        let variant = upper_camel(kind.name());
        let names: Vec<&str> = kind.surface().iter().map(|f| f.name).collect();
        if names.is_empty() {
            writeln!(w, "            core_api::StatusEvent::{variant} {{}} => StatusEvent::{variant},").unwrap();
            continue;
        }
        writeln!(
            w,
            "            core_api::StatusEvent::{variant} {{ {} }} => StatusEvent::{variant} {{",
            names.join(", ")
        )
        .unwrap();
        for f in kind.surface() {
            match f.ty {
                Type::Outcome => w.push_str(
                    "                summary: match outcome { core_api::Outcome::Completed(s) => Some(s.clone().into()), _ => None },\n\
                     \x20               error_code: match outcome { core_api::Outcome::Failed(e) => Some(e.code().into()), _ => None },\n\
                     \x20               error_message: match outcome { core_api::Outcome::Failed(e) => Some(e.message().to_string()), _ => None },\n",
                ),
                Type::KeyId => writeln!(w, "                {0}: {0}.to_string(),", f.name).unwrap(),
                Type::ErrorCode | Type::OperationKind => writeln!(w, "                {0}: (*{0}).into(),", f.name).unwrap(),
                Type::Int { .. } | Type::Bool => writeln!(w, "                {0}: *{0},", f.name).unwrap(),
                _ => writeln!(w, "                {0}: {0}.clone(),", f.name).unwrap(),
            }
        }
        w.push_str("            },\n");
    }
    w.push_str("        }\n    }\n}\n");
    pack_rust(&mut w);
    w
}

/// Whether a field of this type has a packed form (`Pack` in the uniffi crate; END's outcome
/// does not: it crosses as a uniffi record).
fn packs(ty: &Type) -> bool {
    match ty {
        Type::Bool | Type::Int { .. } | Type::Text { .. } | Type::KeyId | Type::ErrorCode | Type::OperationKind => true,
        Type::Optional(inner) => packs(inner),
        _ => false,
    }
}

/// Whether an event kind has a packed form: every field of it packs.
fn event_packs(kind: EventKind) -> bool {
    kind.surface().iter().all(|f| packs(&f.ty)) && EVENT_METADATA.iter().all(|m| packs(&m.ty))
}

/// The Rust expression reading a packed field of type `ty` from `r` (the test decoder).
fn rust_unpack_expr(ty: &Type) -> String {
    match ty {
        Type::Bool => "r.u8()? != 0".into(),
        Type::Int { kind, .. } => format!("r.{}()?", kind.name()),
        Type::Text { .. } | Type::KeyId => "r.string()?".into(),
        Type::ErrorCode => "r.code()?".into(),
        Type::OperationKind => "r.operation()?".into(),
        Type::Optional(inner) => format!("if r.u8()? != 0 {{ Some({}) }} else {{ None }}", rust_unpack_expr(inner)),
        other => unreachable!("no packed form for {other:?}"),
    }
}

/// `pack_event` (the events' packed form) and its reader for the crate's tests.
fn pack_rust(w: &mut String) {
    w.push_str(
        "\n/// Appends `e` to `out` in its packed form (`RawEventSink::on_packed_events`): the kind's index in\n\
         /// the interface's event list, the metadata, the fields. Returns false for an event without a\n\
         /// packed form (END: its outcome crosses as a record); `out` is then not to be used.\n\
         pub(crate) fn pack_event(e: &core_api::Emitted, out: &mut Vec<u8>) -> bool {\n    match &e.event {\n",
    );
    for (index, &kind) in EventKind::ALL.iter().enumerate() {
        let variant = upper_camel(kind.name());
        if !event_packs(kind) {
            writeln!(w, "        core_api::StatusEvent::{variant} {{ .. }} => return false,").unwrap();
            continue;
        }
        let names: Vec<&str> = kind.surface().iter().map(|f| f.name).collect();
        writeln!(w, "        core_api::StatusEvent::{variant} {{ {} }} => {{", names.join(", ")).unwrap();
        writeln!(w, "            out.push({index});").unwrap();
        for meta in EVENT_METADATA {
            writeln!(w, "            e.{}.pack(out);", meta.name).unwrap();
        }
        for name in names {
            writeln!(w, "            {name}.pack(out);").unwrap();
        }
        w.push_str("        }\n");
    }
    w.push_str("    }\n    true\n}\n");
    w.push_str(
        "\n/// Reads one packed event back (the crate's tests check the packed form with it).\n\
         #[cfg(test)]\n\
         pub(crate) fn unpack_event(r: &mut crate::PackedReader<'_>) -> Option<crate::TimedEvent> {\n    \
         let tag = r.u8()?;\n",
    );
    for meta in EVENT_METADATA {
        writeln!(w, "    let {} = {};", meta.name, rust_unpack_expr(&meta.ty)).unwrap();
    }
    w.push_str("    let event = match tag {\n");
    for (index, &kind) in EventKind::ALL.iter().enumerate() {
        if !event_packs(kind) {
            continue;
        }
        let variant = upper_camel(kind.name());
        if kind.surface().is_empty() {
            writeln!(w, "        {index} => StatusEvent::{variant},").unwrap();
            continue;
        }
        writeln!(w, "        {index} => StatusEvent::{variant} {{").unwrap();
        for f in kind.surface() {
            writeln!(w, "            {}: {},", f.name, rust_unpack_expr(&f.ty)).unwrap();
        }
        w.push_str("        },\n");
    }
    w.push_str("        _ => return None,\n    };\n");
    let metas: Vec<&str> = EVENT_METADATA.iter().map(|m| m.name).collect();
    writeln!(w, "    Some(crate::TimedEvent {{ event, {} }})\n}}", metas.join(", ")).unwrap();
}

/// The uniffi event's fields: the surface, `outcome` as `summary`, `error_code`, `error_message`.
fn uniffi_event_fields(kind: EventKind) -> Vec<(String, String, &'static str)> {
    let mut out = Vec::new();
    for f in kind.surface() {
        match f.ty {
            Type::Outcome => {
                out.push(("summary".into(), "Option<Summary>".into(), "The summary, when the operation completed."));
                out.push(("error_code".into(), "Option<ErrorCode>".into(), "The error code, when it failed."));
                out.push(("error_message".into(), "Option<String>".into(), "The error message, when it failed."));
            }
            ty => out.push((f.name.to_string(), rust_type(&ty), f.doc)),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The Swift overlay
// ---------------------------------------------------------------------------------------------

/// Swift's type of a field.
fn swift_type(ty: &Type) -> String {
    match ty {
        Type::Bool => "Bool".into(),
        Type::Int { kind: IntKind::U32, .. } => "UInt32".into(),
        Type::Int { kind: IntKind::I64, .. } => "Int64".into(),
        Type::Int { kind: IntKind::U64, .. } => "UInt64".into(),
        Type::Text { .. } | Type::KeyId => "String".into(),
        Type::Bytes { .. } => "Data".into(),
        Type::ErrorCode => "ErrorCode".into(),
        Type::OperationKind => "OperationKind".into(),
        Type::PropertyValue => "PropertyValue".into(),
        Type::Seconds { .. } => "Double".into(),
        Type::Record(name) | Type::Object(name) => (*name).into(),
        Type::Optional(inner) => format!("{}?", swift_type(inner)),
        Type::List(inner) => format!("[{}]", swift_type(inner)),
        Type::Outcome => "Result<Summary, LicenseBackupError>".into(),
        Type::StatusCallback | Type::Void => unreachable!("not a field type"),
    }
}

/// An event's parameters in Swift: (label, name, type). A leading `operation` has no label
/// (`begin(_ operation:)`); the outcome is `result`.
fn swift_params(kind: EventKind) -> Vec<(String, String, String)> {
    kind.surface()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = if f.ty == Type::Outcome { "result".to_string() } else { lower_camel(f.name) };
            let label = if i == 0 && f.ty == Type::OperationKind { "_".to_string() } else { name.clone() };
            (label, name, swift_type(&f.ty))
        })
        .collect()
}

/// `progress(_:done:total:)`.
fn swift_selector(kind: EventKind) -> String {
    let labels: String = swift_params(kind).iter().map(|(l, _, _)| format!("{l}:")).collect();
    format!("{}({labels})", lower_camel(kind.name()))
}

/// `func progress(_ operation: OperationKind, done: UInt64, total: UInt64)`.
pub fn swift_method(kind: EventKind) -> String {
    let params: Vec<String> = swift_params(kind)
        .iter()
        .map(|(label, name, ty)| if label == name { format!("{name}: {ty}") } else { format!("{label} {name}: {ty}") })
        .collect();
    format!("func {}({})", lower_camel(kind.name()), params.join(", "))
}

/// `progress(OperationKind, done: UInt64, total: UInt64)`: a case of `BackupRestoreEvent.Kind`.
fn swift_case(kind: EventKind) -> String {
    let params = swift_params(kind);
    if params.is_empty() {
        return lower_camel(kind.name());
    }
    let items: Vec<String> =
        params.iter().map(|(label, _, ty)| if label == "_" { ty.clone() } else { format!("{label}: {ty}") }).collect();
    format!("{}({})", lower_camel(kind.name()), items.join(", "))
}

fn overlay() -> String {
    let mut w = String::new();
    writeln!(w, "// {HEADER}").unwrap();
    w.push_str("// The overlay's repeated parts; the hand-written files give them their idiom.\n\n");
    w.push_str("import Foundation\nimport LicenseBackupBindings\n\n// MARK: Records\n");
    for record in RECORDS.iter().filter(|r| r.role != Role::Options && r.core) {
        writeln!(
            w,
            "\n{}\npublic typealias {1} = LicenseBackupBindings.{1}",
            wrap("/// ", record.doc, 100),
            record.name
        )
        .unwrap();
    }
    w.push_str(DELEGATE_DOC);
    w.push_str("public protocol BackupRestoreDelegate: AnyObject, Sendable {\n");
    w.push_str(RECEIVE_DOC);
    w.push_str("    func receive(_ event: BackupRestoreEvent) throws\n");
    for &kind in EventKind::ALL {
        writeln!(w, "{}\n    {} throws", wrap("    /// ", kind.description(), 100), swift_method(kind)).unwrap();
    }
    w.push_str("}\n\nextension BackupRestoreDelegate {\n");
    w.push_str("    public func receive(_ event: BackupRestoreEvent) throws { try event.dispatch(to: self) }\n");
    for &kind in EventKind::ALL {
        writeln!(w, "    public {} throws {{}}", swift_method(kind)).unwrap();
    }
    w.push_str("}\n");
    w.push_str(EVENT_DOC);
    w.push_str("public struct BackupRestoreEvent: Sendable {\n");
    w.push_str("    /// Which event, with its fields (the arguments of the matching delegate method).\n");
    w.push_str("    public enum Kind: Sendable {\n");
    for &kind in EventKind::ALL {
        writeln!(
            w,
            "        /// ``BackupRestoreDelegate/{}``.\n        case {}",
            swift_selector(kind),
            swift_case(kind)
        )
        .unwrap();
    }
    w.push_str("    }\n\n    /// The event.\n    public let kind: Kind\n\n");
    for meta in EVENT_METADATA {
        writeln!(
            w,
            "{}\n    public let {}: {}\n",
            wrap("    /// ", meta.doc, 100),
            lower_camel(meta.name),
            swift_type(&meta.ty)
        )
        .unwrap();
    }
    let meta_params: Vec<String> =
        EVENT_METADATA.iter().map(|m| format!("{}: {}", lower_camel(m.name), swift_type(&m.ty))).collect();
    writeln!(
        w,
        "    /// An event with its metadata.\n    public init(_ kind: Kind, {}) {{\n        self.kind = kind",
        meta_params.join(", ")
    )
    .unwrap();
    for meta in EVENT_METADATA {
        writeln!(w, "        self.{0} = {0}", lower_camel(meta.name)).unwrap();
    }
    w.push_str("    }\n\n    /// The event's name in the interface (`\"restricted_license\"`).\n    public var name: String {\n        switch kind {\n");
    for &kind in EventKind::ALL {
        writeln!(w, "        case .{}: {:?}", lower_camel(kind.name()), kind.name()).unwrap();
    }
    w.push_str(
        "        }\n    }\n\n    /// Calls the delegate method of this event with its fields (what the default\n    \
         /// ``BackupRestoreDelegate/receive(_:)`` does); rethrows what it throws.\n    \
         public func dispatch(to delegate: any BackupRestoreDelegate) throws {\n        switch kind {\n",
    );
    for &kind in EventKind::ALL {
        let params = swift_params(kind);
        let method = lower_camel(kind.name());
        if params.is_empty() {
            writeln!(w, "        case .{method}:\n            try delegate.{method}()").unwrap();
            continue;
        }
        let binds: Vec<String> = params.iter().map(|(_, n, _)| format!("let {n}")).collect();
        let args: Vec<String> =
            params.iter().map(|(l, n, _)| if l == "_" { n.clone() } else { format!("{l}: {n}") }).collect();
        writeln!(
            w,
            "        case .{method}({}):\n            try delegate.{method}({})",
            binds.join(", "),
            args.join(", ")
        )
        .unwrap();
    }
    w.push_str("        }\n    }\n}\n\nextension BackupRestoreEvent {\n");
    w.push_str(
        "    /// The overlay's event for an event of the generated layer; an END that failed carries\n    \
         /// `thrown(code)` (what a delegate method or a host protector threw).\n    \
         init(_ timed: TimedEvent, thrown: (ErrorCode) -> (any Error)?) {\n        let kind: Kind\n        switch timed.event {\n",
    );
    for &kind in EventKind::ALL {
        let method = lower_camel(kind.name());
        let uniffi: Vec<String> = uniffi_event_fields(kind).iter().map(|(n, _, _)| lower_camel(n)).collect();
        if uniffi.is_empty() {
            writeln!(w, "        case .{method}:\n            kind = .{method}").unwrap();
            continue;
        }
        let binds: Vec<String> = uniffi.iter().map(|n| format!("let {n}")).collect();
        let args: Vec<String> = swift_params(kind)
            .iter()
            .map(|(l, n, _)| {
                let value = if n == "result" {
                    "outcomeResult(summary: summary, errorCode: errorCode, errorMessage: errorMessage, thrown: thrown)"
                        .to_string()
                } else {
                    n.clone()
                };
                if l == "_" { value } else { format!("{l}: {value}") }
            })
            .collect();
        writeln!(w, "        case .{method}({}):\n            kind = .{method}({})", binds.join(", "), args.join(", "))
            .unwrap();
    }
    let meta_args: Vec<String> =
        EVENT_METADATA.iter().map(|m| format!("{0}: timed.{0}", lower_camel(m.name))).collect();
    writeln!(w, "        }}\n        self.init(kind, {})\n    }}\n}}", meta_args.join(", ")).unwrap();
    unpack_swift(&mut w);
    // Properties.
    w.push_str("\n// MARK: Properties\n\nextension BackupRestorer {\n");
    for &prop in Property::ALL {
        let accessor = lower_first(prop.name());
        let (swift, case) = match prop.value_type() {
            ValueType::String => ("String", "string"),
            ValueType::U32 => ("UInt32", "u32"),
            ValueType::Bool => ("Bool", "bool"),
        };
        writeln!(
            w,
            "    /// {} (`{}`); `nil` when it is not set.\n    public var {accessor}: {swift}? {{\n        \
             if case .{case}(let value)? = try? property({:?}) {{ value }} else {{ nil }}\n    }}\n",
            prop.description().trim_end_matches('.'),
            prop.name(),
            prop.name()
        )
        .unwrap();
        writeln!(
            w,
            "    /// Sets `{}` (`nil` removes it).\n    public func set{}(_ value: {swift}?) throws(LicenseBackupError) {{\n        \
             try setOrRemove({:?}, value.map(PropertyValue.{case}))\n    }}\n",
            prop.name(),
            prop.name(),
            prop.name()
        )
        .unwrap();
    }
    w.push_str("}\n");
    overlay_operations(&mut w);
    w
}

/// The Swift expression reading a packed field of type `ty` from `reader` (a `PackedReader`).
fn swift_unpack_expr(ty: &Type) -> String {
    match ty {
        Type::Bool => "reader.bool()".into(),
        Type::Int { kind: IntKind::U32, .. } => "reader.u32()".into(),
        Type::Int { kind: IntKind::I64, .. } => "Int64(bitPattern: reader.u64())".into(),
        Type::Int { kind: IntKind::U64, .. } => "reader.u64()".into(),
        Type::Text { .. } | Type::KeyId => "reader.string()".into(),
        Type::ErrorCode => "reader.code()".into(),
        Type::OperationKind => "reader.operation()".into(),
        Type::Optional(inner) => format!("reader.bool() ? {} : nil", swift_unpack_expr(inner)),
        other => unreachable!("no packed form for {other:?}"),
    }
}

/// `BackupRestoreEvent.unpack(_:)`: the decoder of the packed form `pack_event` writes.
fn unpack_swift(w: &mut String) {
    w.push_str(
        "\nextension BackupRestoreEvent {\n    \
         /// Reads the next event of a packed batch (`RawEventSink.onPackedEvents`; the uniffi crate's\n    \
         /// generated `pack_event` writes it); `nil` when the bytes are not a packed event.\n    \
         static func unpack(_ reader: inout PackedReader) -> BackupRestoreEvent? {\n        \
         let tag = reader.u8()\n",
    );
    for meta in EVENT_METADATA {
        writeln!(
            w,
            "        let {}: {} = {}",
            lower_camel(meta.name),
            swift_type(&meta.ty),
            swift_unpack_expr(&meta.ty)
        )
        .unwrap();
    }
    w.push_str("        let kind: Kind\n        switch tag {\n");
    for (index, &kind) in EventKind::ALL.iter().enumerate() {
        if !event_packs(kind) {
            continue;
        }
        let method = lower_camel(kind.name());
        writeln!(w, "        case {index}:").unwrap();
        let params = swift_params(kind);
        if params.is_empty() {
            writeln!(w, "            kind = .{method}").unwrap();
            continue;
        }
        for (f, (_, name, ty)) in kind.surface().iter().zip(&params) {
            writeln!(w, "            let {name}: {ty} = {}", swift_unpack_expr(&f.ty)).unwrap();
        }
        let args: Vec<String> =
            params.iter().map(|(l, n, _)| if l == "_" { n.clone() } else { format!("{l}: {n}") }).collect();
        writeln!(w, "            kind = .{method}({})", args.join(", ")).unwrap();
    }
    w.push_str(
        "        default:\n            return nil\n        }\n        guard reader.isValid else { return nil }\n",
    );
    let meta_args: Vec<String> = EVENT_METADATA.iter().map(|m| format!("{0}: {0}", lower_camel(m.name))).collect();
    writeln!(w, "        return BackupRestoreEvent(kind, {})\n    }}\n}}", meta_args.join(", ")).unwrap();
}

const DELEGATE_DOC: &str = "
// MARK: Events

/// Receives the status events of the operations of a ``BackupRestorer``
/// (`IWMStatusCallback::OnStatus`).
///
/// Methods are called on the operation's delivery thread (not the main thread), one at a time and
/// in order; hop to the main actor for UI work. Every operation ends with exactly one
/// ``end(_:result:)``, last. Every method has an empty default implementation.
///
/// A method that throws stops the operation: it ends with ``ErrorCode/callbackFailed`` (``end``
/// is still delivered), and the awaiting caller gets a ``LicenseBackupError`` whose
/// ``LicenseBackupError/underlyingError`` is what the delegate threw. A throw from
/// ``end(_:result:)`` changes no outcome: the call returns what END reported.
///
/// The methods are synchronous and nonisolated, so a delegate is `Sendable`; to handle events on
/// the main actor or in an actor, iterate ``BackupRestorer/backupEvents(overwrite:)`` instead.
///
/// Every event first reaches ``receive(_:)``, whose default implementation calls the method of
/// that event below; implement ``receive(_:)`` to see each event as a value, with the time the
/// engine emitted it (``BackupRestoreEvent/emittedNs``).
";

const RECEIVE_DOC: &str =
    "    /// Receives every event of an operation, with its emission time. The default implementation
    /// calls ``BackupRestoreEvent/dispatch(to:)``, which calls the event's own method
    /// (``begin(_:)``, ``progress(_:done:total:)``, ...); an implementation that wants those
    /// too calls `try event.dispatch(to: self)`.
";

const EVENT_DOC: &str = "
/// One status event as a value, with when the engine emitted it: what
/// ``BackupRestoreDelegate/receive(_:)`` gets.
";

// ---------------------------------------------------------------------------------------------
// The per-operation entry points (bindings-swift/src/entries.rs and the overlay's extensions)
// ---------------------------------------------------------------------------------------------

/// Operations whose overlay method stays hand-written although its `Raw*` entry point is
/// generated, and why.
pub const OVERLAY_BY_HAND: &[(&str, &str, &str)] = &[
    (
        "LicenseStore",
        "set_catalog_entry",
        "Swift's signature puts the value first (`setCatalogEntry(_:keyId:)`, as `updateValue(_:forKey:)`)",
    ),
    ("EmbeddedService", "set_online", "the core's call cannot fail: non-throwing in Swift"),
    ("BackupRestorer", "cancel_license_backup", "the core's call cannot fail: non-throwing in Swift"),
    ("BackupRestorer", "cancel_license_restore", "the core's call cannot fail: non-throwing in Swift"),
];

/// Operations whose overlay method takes its first argument without a label.
pub const UNLABELED_FIRST: &[(&str, &str)] =
    &[("LicenseStore", "add_license"), ("LicenseStore", "add_licenses"), ("BackupRestorer", "remove_property")];

/// Operations whose overlay method's result may be ignored (`@discardableResult`): what they
/// return is a report on a change they make.
const DISCARDABLE: &[(&str, &str)] = &[
    ("LicenseStore", "use_play"),
    ("LicenseStore", "remove_license"),
    ("LicenseStore", "verify"),
    ("LicenseStore", "remove_catalog_entry"),
    ("BackupRestorer", "remove_property"),
];

/// The uniffi crate's type of a generated entry point's parameter.
fn uniffi_param_type(ty: &Type) -> String {
    rust_type(ty)
}

/// The uniffi crate's return type of a generated entry point, and the expression that makes it
/// from the core's value `r`.
fn uniffi_result(ty: &Type) -> (String, String) {
    match ty {
        Type::Void => ("()".into(), "r".into()),
        Type::Bool | Type::Int { .. } | Type::Text { .. } => (rust_type(ty), "r".into()),
        Type::Record(name) => ((*name).into(), "r.into()".into()),
        Type::Optional(Type::Record(name)) => (format!("Option<{name}>"), "r.map(Into::into)".into()),
        Type::List(Type::Record(name)) => (format!("Vec<{name}>"), "r.into_iter().map(Into::into).collect()".into()),
        // The core's buffer is wiped when `r` drops; the copy handed to Swift is the host's.
        Type::Bytes { .. } => ("Vec<u8>".into(), "r.to_vec()".into()),
        other => unreachable!("no generated entry point returns {other:?}"),
    }
}

fn entries_rust() -> String {
    let mut w = String::new();
    writeln!(w, "// {HEADER}").unwrap();
    w.push_str(
        "//! The `Raw*` objects' per-operation entry points, generated from the interface definition\n\
         //! (`devtools/src/generate/entries.rs` says which operations have them): one more\n\
         //! `#[uniffi::export]` block per object. Each runs inside `guarded` (no panic crosses the\n\
         //! FFI), checks and converts its arguments, calls the core and converts the result; the\n\
         //! core's error becomes `BindingError`.\n\n\
         use license_backup::interface::ArgPath;\n\n",
    );
    let mut uses: Vec<String> = super::entries::objects().iter().map(|o| format!("Raw{o}")).collect();
    for op in super::entries::generated() {
        let mut types: Vec<&Type> = op.params.iter().map(|p| &p.ty).collect();
        types.push(&op.result);
        for ty in types {
            if let Type::Record(n) | Type::Optional(Type::Record(n)) | Type::List(Type::Record(n)) = ty {
                if !uses.iter().any(|u| u == n) {
                    uses.push((*n).to_string());
                }
            }
        }
    }
    uses.extend(["FfiResult".to_string(), "guarded".to_string(), "parse_key_id".to_string()]);
    uses.sort_unstable();
    writeln!(w, "use crate::{{{}}};", uses.join(", ")).unwrap();
    for object in super::entries::objects() {
        writeln!(w, "\n#[uniffi::export]\nimpl Raw{object} {{").unwrap();
        for op in super::entries::of(object) {
            let (result, convert) = uniffi_result(&op.result);
            let mut args = vec!["&self".to_string()];
            for p in op.params {
                args.push(format!("{}: {}", p.name, uniffi_param_type(&p.ty)));
            }
            if let Some(options) = op.options {
                let record = RECORDS.iter().find(|r| r.name == options).expect("options record");
                for f in record.fields {
                    args.push(format!("{}: {}", f.name, uniffi_param_type(&f.ty)));
                }
            }
            writeln!(w, "{}", wrap("    /// ", op.doc, 100)).unwrap();
            writeln!(w, "    pub fn {}({}) -> FfiResult<{result}> {{\n        guarded(|| {{", op.name, args.join(", "))
                .unwrap();
            for p in op.params {
                let (name, js) = (p.name, lower_camel(p.name));
                match &p.ty {
                    Type::KeyId => writeln!(w, "            let {name} = parse_key_id(&{name}, {js:?})?;").unwrap(),
                    Type::Record(_) => {
                        writeln!(w, "            let {name} = {name}.to_core(&ArgPath::arg({name:?}))?;").unwrap()
                    }
                    Type::List(Type::Record(_)) => writeln!(
                        w,
                        "            let path = ArgPath::arg(\"{name}[]\");\n            \
                         let {name} = {name}.iter().map(|v| v.to_core(&path)).collect::<FfiResult<Vec<_>>>()?;"
                    )
                    .unwrap(),
                    _ => {}
                }
            }
            let call = format!("self.inner.{}({})", op.name, super::entries::core_args(op));
            if !super::entries::fallible(op) {
                assert_eq!(op.result, Type::Void, "an infallible core call returns nothing");
                writeln!(w, "            {call};\n            Ok(())").unwrap();
                w.push_str("        })\n    }\n\n");
                continue;
            }
            let call = format!("{call}?");
            if convert == "r" {
                writeln!(w, "            Ok({call})").unwrap();
            } else {
                writeln!(w, "            let r = {call};\n            Ok({convert})").unwrap();
            }
            w.push_str("        })\n    }\n\n");
        }
        w.push_str("}\n");
    }
    w
}

/// The overlay's methods of the generated entry points: extensions of the public classes.
fn overlay_operations(w: &mut String) {
    w.push_str("\n// MARK: Operations (each calls its generated `Raw*` entry point)\n");
    for object in super::entries::objects() {
        writeln!(w, "\nextension {object} {{").unwrap();
        let mut first = true;
        for op in super::entries::of(object) {
            if OVERLAY_BY_HAND.iter().any(|(o, n, _)| *o == object && *n == op.name) {
                continue;
            }
            if !first {
                w.push('\n');
            }
            first = false;
            let unlabeled = UNLABELED_FIRST.contains(&(object, op.name));
            let mut params = Vec::new();
            let mut args = Vec::new();
            for (i, p) in op.params.iter().enumerate() {
                let name = lower_camel(p.name);
                let label = if i == 0 && unlabeled { format!("_ {name}") } else { name.clone() };
                params.push(format!("{label}: {}", swift_type(&p.ty)));
                args.push(format!("{name}: {name}"));
            }
            if let Some(options) = op.options {
                let record = RECORDS.iter().find(|r| r.name == options).expect("options record");
                for f in record.fields {
                    let name = lower_camel(f.name);
                    let default = f.default.map(|d| format!(" = {}", swift_default(d))).unwrap_or_default();
                    params.push(format!("{name}: {}{default}", swift_type(&f.ty)));
                    args.push(format!("{name}: {name}"));
                }
            }
            let result = match op.result {
                Type::Void => String::new(),
                ref ty => format!(" -> {}", swift_type(ty)),
            };
            writeln!(w, "{}", wrap("    /// ", op.doc, 100)).unwrap();
            if DISCARDABLE.contains(&(object, op.name)) {
                w.push_str("    @discardableResult\n");
            }
            writeln!(
                w,
                "    public func {}({}) throws(LicenseBackupError){result} {{\n        try bridged {{ try raw.{}({}) }}\n    }}",
                lower_camel(op.name),
                params.join(", "),
                lower_camel(op.name),
                args.join(", ")
            )
            .unwrap();
        }
        w.push_str("}\n");
    }
}

/// A default value in Swift.
fn swift_default(d: Default) -> String {
    match d {
        Default::Bool(b) => b.to_string(),
        Default::Int(n) => n.to_string(),
        Default::Null => "nil".into(),
    }
}
