//! The Node package's generated files.
//!
//! * `bindings-node/generated.js` (shipped): the error code table, the event names and the
//!   decoding of the native layer's events into listener payloads, the property accessors, and
//!   the specifications of every record and option object that `check.js` validates arguments
//!   against before they reach the native layer.
//! * `bindings-node/generated.d.ts` (shipped): their declarations, the event payload types,
//!   the record and option types, and the methods of each class (merged into the classes of
//!   `index.d.ts`).
//! * `bindings-node/src/generated.rs`: the addon's mirrors of the records and of the events.

use std::fmt::Write;

use license_backup::interface::{self, Call, Default, EVENT_METADATA, IntKind, OPERATIONS, RECORDS, Role, Type};
use license_backup::{ErrorCode, EventKind, Property, ValueType};

use super::{HEADER, Output, lower_camel, lower_first, upper_camel, wrap};

/// Every generated file of the Node package.
pub fn outputs() -> Vec<Output> {
    vec![
        Output { path: "bindings-node/generated.js".into(), text: js() },
        Output { path: "bindings-node/generated.d.ts".into(), text: dts() },
        Output { path: "bindings-node/src/generated.rs".into(), text: rust() },
        Output { path: "bindings-node/src/entries.rs".into(), text: entries_rust() },
    ]
}

// ---------------------------------------------------------------------------------------------
// Names and types
// ---------------------------------------------------------------------------------------------

/// TypeScript's type of a field; `input`: the form callers pass (bytes as any `Uint8Array`).
fn ts_type(ty: &Type, input: bool) -> String {
    match ty {
        Type::Bool => "boolean".into(),
        Type::Int { .. } | Type::Seconds { .. } => "number".into(),
        Type::Text { .. } | Type::KeyId => "string".into(),
        Type::Bytes { .. } => {
            if input {
                "Uint8Array".into()
            } else {
                "Buffer".into()
            }
        }
        Type::ErrorCode => "ErrorCodeName".into(),
        Type::OperationKind => "Operation".into(),
        Type::PropertyValue => "PropertyValue".into(),
        Type::Record(name) => ts_record_name(name),
        // Either service: a union in TypeScript.
        Type::Object("LicenseService") => "EmbeddedService | RemoteService".into(),
        Type::Object(name) => (*name).into(),
        Type::Optional(inner) => format!("{} | null", ts_type(inner, input)),
        Type::List(inner) => format!("{}[]", ts_type(inner, input)),
        Type::Outcome => "Summary | null".into(),
        Type::StatusCallback | Type::Void => "void".into(),
    }
}

/// The TypeScript name of a record: option records are `...Options` (`BackupFlags` →
/// `BackupOptions`).
pub fn ts_record_name(name: &str) -> String {
    match name.strip_suffix("Flags") {
        Some(stem) => format!("{stem}Options"),
        None => name.to_string(),
    }
}

/// The JavaScript event name: `restricted_license` → `restrictedLicense`.
pub fn event_name(kind: EventKind) -> String {
    lower_camel(kind.name())
}

/// An event's payload fields in JavaScript: (name, TypeScript type, doc, native field). The
/// outcome is `summary` and `error`; an error code is `code` (symbolic) and `errno` (numeric).
pub fn js_event_fields(kind: EventKind) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for f in kind.surface() {
        match f.ty {
            Type::Outcome => {
                out.push((
                    "summary".into(),
                    "Summary | null".into(),
                    "What it did, when it completed; null when it failed.".into(),
                ));
                out.push((
                    "error".into(),
                    "LicenseBackupError | null".into(),
                    "Why it failed (CANCELLED when it was cancelled); null when it completed.".into(),
                ));
            }
            Type::ErrorCode => {
                out.push((lower_camel(f.name), "ErrorCodeName".into(), f.doc.into()));
                out.push(("errno".into(), "number".into(), format!("The stable number of `{}`.", lower_camel(f.name))));
            }
            ty => out.push((lower_camel(f.name), ts_type(&ty, false), f.doc.into())),
        }
    }
    out
}

fn jsdoc(indent: &str, text: &str) -> String {
    let one = format!("{indent}/** {text} */");
    if one.len() <= 100 {
        return one;
    }
    format!("{indent}/**\n{}\n{indent} */", wrap(&format!("{indent} * "), text, 100))
}

/// A field's validation spec as a JavaScript object literal (what `check.js` interprets).
fn js_spec(ty: &Type) -> String {
    let expect = super::quoted(&ty.expectation());
    match ty {
        Type::Bool => format!("{{ kind: 'bool', expect: {expect} }}"),
        Type::Int { min, max, .. } => format!("{{ kind: 'int', min: {min}, max: {max}, expect: {expect} }}"),
        Type::Text { min_bytes, max_bytes } => format!(
            "{{ kind: 'text', min: {min_bytes}, max: {}, expect: {expect} }}",
            max_bytes.map_or("Infinity".to_string(), |m| m.to_string())
        ),
        Type::Bytes { min_len, max_len } => {
            format!("{{ kind: 'bytes', min: {min_len}, max: {max_len}, expect: {expect} }}")
        }
        Type::KeyId => format!("{{ kind: 'keyId', expect: {expect} }}"),
        Type::Record(name) => format!("{{ kind: 'record', record: {name:?}, expect: {expect} }}"),
        Type::Optional(inner) => format!("{{ kind: 'optional', of: {}, expect: {expect} }}", js_spec(inner)),
        Type::List(inner) => format!("{{ kind: 'list', of: {}, expect: {expect} }}", js_spec(inner)),
        Type::PropertyValue => format!("{{ kind: 'property', expect: {expect} }}"),
        Type::Object(name) => format!("{{ kind: 'object', name: {name:?}, expect: {expect} }}"),
        Type::Seconds { positive, max } => format!(
            "{{ kind: 'seconds', positive: {positive}, max: {}, expect: {expect} }}",
            max.map_or("Infinity".to_string(), |m| m.to_string())
        ),
        other => format!("{{ kind: {:?}, expect: {expect} }}", other.name()),
    }
}

fn js_default(d: Default) -> String {
    match d {
        Default::Bool(b) => b.to_string(),
        Default::Int(n) => n.to_string(),
        Default::Null => "null".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// generated.js
// ---------------------------------------------------------------------------------------------

fn js() -> String {
    let mut w = String::new();
    writeln!(w, "'use strict'\n// {HEADER}").unwrap();
    w.push_str("// The package's repeated parts; index.js and check.js are the hand-written idiom around them.\n\n");
    w.push_str("/** Every error code: symbolic name → stable number (the core's ErrorCode). */\n");
    w.push_str("const ErrorCode = Object.freeze({\n");
    for code in ErrorCode::ALL {
        writeln!(w, "  {}: {},", code.name(), code.number()).unwrap();
    }
    w.push_str("})\n\n/** The events a BackupRestorer emits, in the form `restorer.on(name, ...)` takes. */\n");
    w.push_str("const EVENTS = Object.freeze([\n");
    for &kind in EventKind::ALL {
        writeln!(w, "  '{}',", event_name(kind)).unwrap();
    }
    w.push_str("])\n\n");
    w.push_str(
        "/**\n * The listener payload of an event the native layer delivered as an object (every kind\n \
         * but `end`, which index.js settles its Promise with), with its emission time.\n */\n\
         function decodeEvent(ev, emittedNs) {\n  switch (ev.kind) {\n",
    );
    for &kind in EventKind::ALL {
        if kind == EventKind::End {
            continue;
        }
        let mut fields: Vec<String> = Vec::new();
        for (name, ty, _) in js_event_fields(kind) {
            if ty.ends_with("| null") {
                fields.push(format!("{name}: ev.{name} ?? null"));
            } else {
                fields.push(format!("{name}: ev.{name}"));
            }
        }
        fields.extend(EVENT_METADATA.iter().map(|m| lower_camel(m.name)));
        writeln!(w, "    case '{}':\n      return {{ {} }}", event_name(kind), fields.join(", ")).unwrap();
    }
    w.push_str("    default:\n      throw new Error(`unknown native event ${ev.kind}`)\n  }\n}\n\n");
    // Property accessors.
    w.push_str("/** The known properties: name, accessor and value type. */\nconst PROPERTIES = Object.freeze([\n");
    for &prop in Property::ALL {
        let ty = match prop.value_type() {
            ValueType::String => "string",
            ValueType::U32 => "u32",
            ValueType::Bool => "bool",
        };
        writeln!(
            w,
            "  Object.freeze({{ name: '{}', accessor: '{}', type: '{ty}' }}),",
            prop.name(),
            lower_first(prop.name())
        )
        .unwrap();
    }
    w.push_str(
        "])\n\n/**\n * Defines an accessor per known property on `proto` (BackupRestorer.prototype): reading it\n \
         * is `getProperty(name)`, setting it `setProperty(name, value)`, and null or undefined removes it.\n */\n\
         function defineProperties(proto) {\n  for (const { name, accessor } of PROPERTIES) {\n    \
         Object.defineProperty(proto, accessor, {\n      configurable: true,\n      \
         get() {\n        return proto.getProperty.call(this, name)\n      },\n      \
         set(value) {\n        if (value === null || value === undefined) proto.removeProperty.call(this, name)\n        \
         else proto.setProperty.call(this, name, value)\n      },\n    })\n  }\n}\n\n",
    );
    // Validation specs.
    w.push_str(
        "/**\n * Every record and option object: its fields in order, as [name in JavaScript, spec,\n \
         * default]; a field without a default is required. check.js validates arguments against them.\n */\n\
         const RECORDS = Object.freeze({\n",
    );
    for record in RECORDS.iter().filter(|r| r.role != Role::Output) {
        writeln!(w, "  {}: Object.freeze([", record.name).unwrap();
        for f in record.fields {
            let default = f.default.map_or("undefined".to_string(), js_default);
            writeln!(w, "    ['{}', {}, {default}],", lower_camel(f.name), js_spec(&f.ty)).unwrap();
        }
        w.push_str("  ]),\n");
    }
    w.push_str("})\n\n/** The spec of each operation's positional parameters, by `Object.method`. */\nconst PARAMS = Object.freeze({\n");
    for op in OPERATIONS {
        let params: Vec<String> = op
            .params
            .iter()
            .filter(|p| !matches!(p.ty, Type::StatusCallback | Type::Object(_) | Type::PropertyValue))
            .map(|p| format!("['{}', {}]", lower_camel(p.name), js_spec(&p.ty)))
            .collect();
        let method = if op.call == Call::Constructor { op.name.to_string() } else { lower_camel(op.name) };
        writeln!(w, "  '{}.{method}': [{}],", op.object, params.join(", ")).unwrap();
    }
    w.push_str("})\n");
    js_operations(&mut w);
    w.push_str(
        "\nmodule.exports = { ErrorCode, EVENTS, PROPERTIES, RECORDS, PARAMS, decodeEvent, defineProperties, defineOperations }\n",
    );
    w
}

// ---------------------------------------------------------------------------------------------
// generated.d.ts
// ---------------------------------------------------------------------------------------------

fn dts() -> String {
    let mut w = String::new();
    writeln!(w, "// {HEADER}").unwrap();
    w.push_str(
        "// Declarations of generated.js and the package's generated types; index.d.ts re-exports them\n\
         // and merges the method interfaces below into its classes. Buffer and AbortSignal: @types/node.\n\
         /// <reference types=\"node\" />\n\n\
         import type { LicenseBackupError, Protector } from './index'\n\n",
    );
    w.push_str("/** Every error code: symbolic name → stable number. */\nexport declare const ErrorCode: Readonly<{\n");
    for code in ErrorCode::ALL {
        writeln!(w, "{}\n  {}: {}", jsdoc("  ", code.doc().trim()), code.name(), code.number()).unwrap();
    }
    w.push_str("}>\n\n/** A symbolic error code, such as `'BACKUP_EXISTS'`. */\nexport type ErrorCodeName = keyof typeof ErrorCode\n\n");
    w.push_str("/** Which operation an event belongs to. */\nexport type Operation = 'backup' | 'restore'\n\n");
    w.push_str("/** A property value: string (paths), number (an unsigned 32-bit integer) or boolean. */\n");
    w.push_str("export type PropertyValue = string | number | boolean\n\n");
    // Records.
    for record in RECORDS.iter().filter(|r| r.role != Role::Options) {
        writeln!(w, "{}\nexport interface {} {{", jsdoc("", record.doc), ts_record_name(record.name)).unwrap();
        for f in record.fields {
            let input = record.role != Role::Output;
            let optional = input && f.default.is_some();
            let ty = ts_type(&f.ty, input);
            writeln!(w, "{}\n  {}{}: {ty}", jsdoc("  ", f.doc), lower_camel(f.name), if optional { "?" } else { "" })
                .unwrap();
        }
        w.push_str("}\n\n");
    }
    // Options.
    for record in RECORDS.iter().filter(|r| r.role == Role::Options) {
        writeln!(w, "{}\nexport interface {} {{", jsdoc("", record.doc), ts_record_name(record.name)).unwrap();
        for f in record.fields {
            writeln!(w, "{}\n  {}?: {} | null", jsdoc("  ", f.doc), lower_camel(f.name), ts_type(&f.ty, true)).unwrap();
        }
        if OPERATIONS.iter().any(|op| op.starts && op.options == Some(record.name)) {
            w.push_str("  /** Aborting cancels the operation: its Promise rejects with CANCELLED after `end`. */\n");
            w.push_str("  signal?: AbortSignal\n");
        }
        w.push_str("}\n\n");
    }
    // Events.
    w.push_str("/** What every event carries besides its own fields (`event_metadata` in core/interface.json). */\n");
    w.push_str("export interface EventMetadata {\n");
    for meta in EVENT_METADATA {
        writeln!(
            w,
            "{}\n  {}: bigint",
            jsdoc("  ", &format!("{} A bigint, so it stays exact.", meta.doc)),
            lower_camel(meta.name)
        )
        .unwrap();
    }
    w.push_str("}\n\n");
    for &kind in EventKind::ALL {
        let name = event_name(kind);
        let fields = js_event_fields(kind);
        let doc = format!("`{name}`: {}", kind.description());
        if fields.is_empty() {
            writeln!(
                w,
                "{}\nexport interface {}Event extends EventMetadata {{}}\n",
                jsdoc("", &doc),
                upper_camel(kind.name())
            )
            .unwrap();
            continue;
        }
        writeln!(w, "{}\nexport interface {}Event extends EventMetadata {{", jsdoc("", &doc), upper_camel(kind.name()))
            .unwrap();
        for (field, ty, fdoc) in fields {
            writeln!(w, "{}\n  {field}: {ty}", jsdoc("  ", &fdoc)).unwrap();
        }
        w.push_str("}\n\n");
    }
    w.push_str("/** The events of a BackupRestorer and their payloads. */\nexport interface BackupRestorerEvents {\n");
    for &kind in EventKind::ALL {
        writeln!(w, "  {}: [event: {}Event]", event_name(kind), upper_camel(kind.name())).unwrap();
    }
    w.push_str("}\n\n/** The names of the events a BackupRestorer emits. */\n");
    w.push_str("export declare const EVENTS: ReadonlyArray<keyof BackupRestorerEvents>\n\n");
    // Properties.
    w.push_str("/** The known properties as accessors of BackupRestorer; null removes the property. */\n");
    w.push_str("export interface BackupRestorerProperties {\n");
    for &prop in Property::ALL {
        let ty = match prop.value_type() {
            ValueType::String => "string",
            ValueType::U32 => "number",
            ValueType::Bool => "boolean",
        };
        writeln!(
            w,
            "{}\n  {}: {ty} | null",
            jsdoc("  ", &format!("The {} property: {}", prop.name(), prop.description())),
            lower_first(prop.name())
        )
        .unwrap();
    }
    w.push_str("}\n");
    // Methods, merged into the classes of index.d.ts.
    // Operation is the Promise in JavaScript; Protector and HostProtector are index.d.ts's own.
    for object in interface::OBJECTS.iter().filter(|o| !["Operation", "Protector", "HostProtector"].contains(&o.name)) {
        writeln!(w, "\n/** The methods of {} (index.d.ts merges them into the class). */", object.name).unwrap();
        writeln!(w, "export interface {}Methods {{", object.name).unwrap();
        for op in OPERATIONS.iter().filter(|op| op.object == object.name) {
            if op.call == Call::Getter {
                writeln!(
                    w,
                    "{}\n  readonly {}: {}",
                    jsdoc("  ", op.doc),
                    lower_camel(op.name),
                    ts_type(&op.result, false)
                )
                .unwrap();
                continue;
            }
            if op.call != Call::Method {
                continue;
            }
            let mut params: Vec<String> = op
                .params
                .iter()
                .filter(|p| p.ty != Type::StatusCallback)
                .map(|p| format!("{}: {}", lower_camel(p.name), ts_type(&p.ty, true)))
                .collect();
            if let Some(options) = op.options {
                params.push(format!("options?: {}", ts_record_name(options)));
            }
            let result = if op.starts { "Promise<Summary>".to_string() } else { ts_type(&op.result, false) };
            writeln!(w, "{}\n  {}({}): {result}", jsdoc("  ", op.doc), lower_camel(op.name), params.join(", "))
                .unwrap();
        }
        w.push_str("}\n");
    }
    w
}

// ---------------------------------------------------------------------------------------------
// src/generated.rs (the addon)
// ---------------------------------------------------------------------------------------------

/// The addon's Rust type of a record field: counts are JavaScript numbers (`i64`), bytes a
/// `Uint8Array` going in.
fn napi_type(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::Int { kind: IntKind::U32, .. } => "u32".into(),
        Type::Int { .. } => "i64".into(),
        Type::Text { .. } | Type::KeyId => "String".into(),
        Type::Bytes { .. } => "Uint8Array".into(),
        Type::ErrorCode => "String".into(),
        Type::OperationKind => "Operation".into(),
        Type::Record(name) => (*name).into(),
        Type::Optional(inner) => format!("Option<{}>", napi_type(inner)),
        Type::List(inner) => format!("Vec<{}>", napi_type(inner)),
        other => unreachable!("no addon field of type {other:?}"),
    }
}

/// The expression converting core value `v` (a place of type `ty`) to the addon's type.
fn from_core_expr(ty: &Type, v: &str) -> String {
    match ty {
        Type::Int { kind: IntKind::U64, .. } => format!("crate::count({v})"),
        Type::KeyId => format!("{v}.to_string()"),
        Type::Record(_) | Type::OperationKind => format!("{v}.into()"),
        Type::Optional(inner) if matches!(**inner, Type::Record(_)) => format!("{v}.map(Into::into)"),
        _ => v.to_string(),
    }
}

/// The JavaScript name of the field `self.<name>`.
fn field_js(v: &str) -> String {
    lower_camel(v.trim_start_matches("self."))
}

/// The expression converting addon value `v` to the core's type (`?` applies; `path` names the
/// record in messages).
fn to_core_expr(ty: &Type, v: &str) -> String {
    match ty {
        Type::KeyId => format!("crate::key_id(&{v}, format_args!(\"{{path}}.{}\"))?", field_js(v)),
        Type::Bytes { .. } => format!("{v}.to_vec()"),
        Type::Record(_) => format!("{v}.to_core(&format_args!(\"{{path}}.{}\"))?", field_js(v)),
        Type::Optional(inner) if matches!(**inner, Type::Record(_)) => {
            format!("{v}.as_ref().map(|r| r.to_core(&format_args!(\"{{path}}.{}\"))).transpose()?", field_js(v))
        }
        Type::Text { .. } | Type::Optional(Type::Text { .. }) => format!("{v}.clone()"),
        _ => v.to_string(),
    }
}

fn rust() -> String {
    let mut w = String::new();
    writeln!(w, "// {HEADER}").unwrap();
    w.push_str(
        "//! The addon's mirrors of the core's records and events, generated from the interface\n\
         //! definition. index.js validates every argument against generated.js before it gets here.\n\n\
         // An event without fields is matched as `Kind {}`, whether the core declares it with braces or not.\n\
         #![allow(clippy::unneeded_struct_pattern)]\n\n\
         use license_backup as lb;\n\
         use napi::bindgen_prelude::Uint8Array;\n\
         use napi_derive::napi;\n\n\
         use crate::{NativeError, Operation, Result};\n",
    );
    for record in RECORDS.iter().filter(|r| r.role != Role::Options && r.core) {
        let plain = record.fields.iter().all(|f| !matches!(f.ty, Type::Bytes { .. }));
        writeln!(w, "\n{}\n#[napi(object)]", wrap("/// ", record.doc, 100)).unwrap();
        if plain {
            w.push_str("#[derive(Clone, Debug)]\n");
        }
        writeln!(w, "pub struct {} {{", record.name).unwrap();
        for f in record.fields {
            writeln!(w, "{}\n    pub {}: {},", wrap("    /// ", f.doc, 100), f.name, napi_type(&f.ty)).unwrap();
        }
        w.push_str("}\n");
        if matches!(record.role, Role::Value | Role::Output) {
            writeln!(
                w,
                "\nimpl From<lb::{0}> for {0} {{\n    fn from(r: lb::{0}) -> Self {{\n        {0} {{",
                record.name
            )
            .unwrap();
            for f in record.fields {
                writeln!(w, "            {}: {},", f.name, from_core_expr(&f.ty, &format!("r.{}", f.name))).unwrap();
            }
            w.push_str("        }\n    }\n}\n");
        }
        if matches!(record.role, Role::Value | Role::Input) {
            writeln!(
                w,
                "\nimpl {0} {{\n    /// The core's record (the key ID parsed); `path` names it in messages.\n    \
                 pub fn to_core(&self, {1}: &dyn std::fmt::Display) -> Result<lb::{0}> {{\n        Ok(lb::{0} {{",
                record.name,
                if record.fields.iter().any(|f| matches!(f.ty.required(), Type::KeyId | Type::Record(_))) {
                    "path"
                } else {
                    "_path"
                }
            )
            .unwrap();
            for f in record.fields {
                writeln!(w, "            {}: {},", f.name, to_core_expr(&f.ty, &format!("self.{}", f.name))).unwrap();
            }
            w.push_str("        })\n    }\n}\n");
        }
    }
    // Events.
    w.push_str(
        "\n/// A status event, as the native layer hands it to the JavaScript wrapper. `kind` is the name\n\
         /// of the `EventEmitter` event the wrapper emits.\n\
         #[napi(discriminant = \"kind\", discriminant_case = \"camelCase\")]\n#[derive(Debug)]\npub enum NativeEvent {\n",
    );
    for &kind in EventKind::ALL {
        writeln!(w, "{}\n    {} {{", wrap("    /// ", kind.description(), 100), upper_camel(kind.name())).unwrap();
        for f in kind.surface() {
            match f.ty {
                Type::Outcome => w.push_str(
                    "        /// The summary, when it completed.\n        summary: Option<Summary>,\n        \
                     /// The failure, when it failed or was cancelled: a `LicenseBackupError`.\n        \
                     #[napi(ts_type = \"Error\")]\n        error: Option<NativeError>,\n",
                ),
                Type::ErrorCode => writeln!(
                    w,
                    "{}\n        {}: String,\n        /// The stable number of the code.\n        errno: u32,",
                    wrap("        /// ", f.doc, 100),
                    f.name
                )
                .unwrap(),
                ty => writeln!(w, "{}\n        {}: {},", wrap("        /// ", f.doc, 100), f.name, napi_type(&ty))
                    .unwrap(),
            }
        }
        w.push_str("    },\n");
    }
    w.push_str("}\n\nimpl From<&lb::StatusEvent> for NativeEvent {\n    fn from(event: &lb::StatusEvent) -> Self {\n        match event {\n");
    for &kind in EventKind::ALL {
        let variant = upper_camel(kind.name());
        let names: Vec<&str> = kind.surface().iter().map(|f| f.name).collect();
        writeln!(w, "            lb::StatusEvent::{variant} {{ {} }} => NativeEvent::{variant} {{", names.join(", "))
            .unwrap();
        for f in kind.surface() {
            match f.ty {
                Type::Outcome => w.push_str(
                    "                summary: match outcome { lb::Outcome::Completed(s) => Some(s.clone().into()), _ => None },\n                \
                     error: match outcome { lb::Outcome::Failed(e) => Some(e.into()), _ => None },\n",
                ),
                Type::ErrorCode => writeln!(w, "                {0}: {0}.name().to_string(),\n                errno: {0}.number(),", f.name).unwrap(),
                Type::Int { kind: IntKind::U64, .. } => writeln!(w, "                {0}: crate::count(*{0}),", f.name).unwrap(),
                Type::Int { .. } | Type::Bool => writeln!(w, "                {0}: *{0},", f.name).unwrap(),
                Type::OperationKind => writeln!(w, "                {0}: (*{0}).into(),", f.name).unwrap(),
                Type::KeyId => writeln!(w, "                {0}: {0}.to_string(),", f.name).unwrap(),
                _ => writeln!(w, "                {0}: {0}.clone(),", f.name).unwrap(),
            }
        }
        w.push_str("            },\n");
    }
    w.push_str("        }\n    }\n}\n");
    w
}

// ---------------------------------------------------------------------------------------------
// The per-operation entry points (bindings-node/src/entries.rs and generated.js's
// defineOperations)
// ---------------------------------------------------------------------------------------------

/// The addon's Rust type of a generated entry point's parameter.
fn napi_param_type(ty: &Type) -> String {
    match ty {
        Type::Int { kind: IntKind::U32, .. } => "u32".into(),
        other => napi_type(other),
    }
}

/// The statement converting parameter `f` (of [`napi_param_type`]) to the core's value.
fn napi_param(f: &interface::Field) -> Option<String> {
    let (name, js) = (f.name, lower_camel(f.name));
    match &f.ty {
        Type::KeyId => Some(format!("let {name} = crate::key_id(&{name}, {js:?})?;")),
        Type::Record(_) => Some(format!("let {name} = {name}.to_core(&{js:?})?;")),
        Type::List(Type::Record(_)) => Some(format!(
            "let {name} = {name}.iter().enumerate().map(|(i, v)| v.to_core(&format_args!(\"{js}[{{i}}]\"))).collect::<Result<Vec<_>>>()?;"
        )),
        _ => None,
    }
}

/// The addon's return type of a generated entry point, and the expression that makes it from
/// the core's value `r` (a `Result` for bytes, whose copy can fail).
fn napi_result(ty: &Type) -> (String, String) {
    match ty {
        Type::Void => ("()".into(), "r".into()),
        Type::Bool => ("bool".into(), "r".into()),
        Type::Int { kind: IntKind::U32, .. } => ("u32".into(), "r".into()),
        Type::Int { kind: IntKind::U64, .. } => ("i64".into(), "crate::count(r)".into()),
        Type::Text { .. } => ("String".into(), "r".into()),
        Type::KeyId => ("String".into(), "r.to_string()".into()),
        Type::Record(name) => ((*name).into(), "r.into()".into()),
        Type::Optional(Type::Record(name)) => (format!("Option<{name}>"), "r.map(Into::into)".into()),
        Type::List(Type::Record(name)) => (format!("Vec<{name}>"), "r.into_iter().map(Into::into).collect()".into()),
        // Copied into a Node-owned Buffer (never an external buffer: Electron refuses those); the
        // core's buffer is wiped when `r` drops.
        Type::Bytes { .. } => ("BufferSlice<'env>".into(), "BufferSlice::copy_from(env, &r).map_err(|e| js_error(lb::Error::new(lb::ErrorCode::Internal, e.reason.clone())))".into()),
        other => unreachable!("no generated entry point returns {other:?}"),
    }
}

fn entries_rust() -> String {
    let mut w = String::new();
    writeln!(w, "// {HEADER}").unwrap();
    w.push_str(
        "//! The addon's per-operation entry points, generated from the interface definition\n\
         //! (`devtools/src/generate/entries.rs` says which operations have them): one more `#[napi]`\n\
         //! block per class (napi-rs merges them). Each converts its arguments (index.js checked them\n\
         //! against generated.js already; key IDs and records are checked again here), calls the core\n\
         //! on the class's object (`get()`: `INVALID_ARGUMENT` once closed) and throws the core's\n\
         //! error as `LicenseBackupError` (`js_error`).\n\n\
         use license_backup as lb;\n\
         use napi::Env;\n\
         use napi::bindgen_prelude::BufferSlice;\n\
         use napi_derive::napi;\n\n\
         use crate::errors::{Result, js_error};\n",
    );
    let records: Vec<&str> = RECORDS.iter().filter(|r| r.core && r.role != Role::Options).map(|r| r.name).collect();
    let mut uses: Vec<&str> = super::entries::objects();
    let mut used_records = Vec::new();
    for op in super::entries::generated() {
        let mut types: Vec<&Type> = op.params.iter().map(|p| &p.ty).collect();
        types.push(&op.result);
        for ty in types {
            let name = match ty {
                Type::Record(n) | Type::Optional(Type::Record(n)) | Type::List(Type::Record(n)) => *n,
                _ => continue,
            };
            if records.contains(&name) && !used_records.contains(&name) {
                used_records.push(name);
            }
        }
    }
    uses.extend(used_records);
    uses.sort_unstable();
    writeln!(w, "use crate::{{{}}};", uses.join(", ")).unwrap();
    for object in super::entries::objects() {
        writeln!(w, "\n#[napi]\nimpl {object} {{").unwrap();
        for op in super::entries::of(object) {
            let (result, convert) = napi_result(&op.result);
            let bytes = matches!(op.result, Type::Bytes { .. });
            let mut args = vec!["&self".to_string()];
            if bytes {
                args.push("env: &'env Env".into());
            }
            for p in op.params {
                args.push(format!("{}: {}", p.name, napi_param_type(&p.ty)));
            }
            if let Some(options) = op.options {
                let record = RECORDS.iter().find(|r| r.name == options).expect("options record");
                for f in record.fields {
                    args.push(format!("{}: {}", f.name, napi_param_type(&f.ty)));
                }
            }
            writeln!(w, "{}", wrap("    /// ", op.doc, 100)).unwrap();
            let generics = if bytes { "<'env>" } else { "" };
            writeln!(w, "    #[napi]\n    pub fn {}{generics}({}) -> Result<{result}> {{", op.name, args.join(", "))
                .unwrap();
            for p in op.params {
                if let Some(stmt) = napi_param(p) {
                    writeln!(w, "        {stmt}").unwrap();
                }
            }
            let call = format!("self.get()?.{}({})", op.name, super::entries::core_args(op));
            if !super::entries::fallible(op) {
                assert_eq!(op.result, Type::Void, "an infallible core call returns nothing");
                writeln!(w, "        {call};\n        Ok(())").unwrap();
                w.push_str("    }\n\n");
                continue;
            }
            let call = format!("{call}.map_err(js_error)?");
            if convert == "r" {
                writeln!(w, "        {}", call.trim_end_matches('?')).unwrap();
            } else {
                // A conversion that can fail is a `Result` already.
                let ok = if convert.starts_with("BufferSlice") { convert } else { format!("Ok({convert})") };
                writeln!(w, "        let r = {call};\n        {ok}").unwrap();
            }
            w.push_str("    }\n\n");
        }
        w.push_str("}\n");
    }
    w
}

/// Operations whose `index.js` wrapper method stays hand-written although their native entry
/// point is generated, and why.
pub const JS_BY_HAND: &[(&str, &str, &str)] = &[
    ("BackupRestorer", "cancel_license_backup", "it counts cancels, for the running operation's Promise"),
    ("BackupRestorer", "cancel_license_restore", "it counts cancels, for the running operation's Promise"),
];

/// generated.js's `defineOperations`: the JavaScript wrapper methods of the generated entry
/// points (receiver checked by `own`, arguments by `checkParams`, options by `checkOptions`).
fn js_operations(w: &mut String) {
    w.push_str(
        "\n/**\n * Defines the wrapper methods of the operations with generated entry points on the public\n \
         * classes (index.js passes them and its helpers): each checks its receiver (`own`), its\n \
         * arguments (`checkParams`) and options (`checkOptions`), then calls the native method.\n */\n\
         function defineOperations(classes, { own, checkParams, checkOptions }) {\n",
    );
    for object in super::entries::objects() {
        writeln!(w, "  const {object} = classes.{object}\n  define({object}, {{").unwrap();
        for op in super::entries::of(object) {
            if JS_BY_HAND.iter().any(|(o, n, _)| *o == object && *n == op.name) {
                continue;
            }
            let method = lower_camel(op.name);
            let mut params: Vec<String> = op.params.iter().map(|p| lower_camel(p.name)).collect();
            let mut args = Vec::new();
            if !params.is_empty() {
                args.push(format!("...checkParams('{object}.{method}', [{}])", params.join(", ")));
            }
            if let Some(options) = op.options {
                params.push("options".into());
                args.push(format!("...checkOptions(options, '{options}')"));
            }
            writeln!(w, "{}", jsdoc("    ", op.doc)).unwrap();
            writeln!(w, "    {method}({}) {{", params.join(", ")).unwrap();
            if args.is_empty() {
                writeln!(w, "      return own(this, {object}, '{method}').{method}()").unwrap();
            } else {
                writeln!(w, "      const inner = own(this, {object}, '{method}')").unwrap();
                writeln!(w, "      return inner.{method}({})", args.join(", ")).unwrap();
            }
            w.push_str("    },\n");
        }
        w.push_str("  })\n");
    }
    w.push_str(
        "}\n\n/** Defines `methods` on `cls.prototype` as a class body would: not enumerable. */\n\
         function define(cls, methods) {\n  \
         for (const name of Object.getOwnPropertyNames(methods)) {\n    \
         Object.defineProperty(cls.prototype, name, { value: methods[name], writable: true, configurable: true, enumerable: false })\n  \
         }\n}\n",
    );
}
