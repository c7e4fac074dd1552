//! The shared bad-input table, `tests/bad-inputs/generated.json`: for every argument of every
//! operation a caller passes a value to (records field by field, option objects, scalars,
//! property values), the values a binding must reject, each with the code every binding
//! rejects it with, and the boundary values it must accept. Every language runs every row
//! (statically typed bindings the rows their types can express: `"typed": true`); the
//! hand-picked rows of `tests/bad-inputs/hand-picked.json` use the same format
//! (`tests/bad-inputs/README.md`).

use std::fmt::Write;

use serde_json::{Map, Value, json};

use license_backup::interface::{self, Call, Default, IntKind, OPERATIONS, Operation, Role, Type};
use license_backup::{ErrorCode, Property, ValueType};

use super::{HEADER, Output};

/// The table's path in the repository.
pub const PATH: &str = "tests/bad-inputs/generated.json";

/// The generated table, and the Rust runner's record decoders.
pub fn outputs() -> Vec<Output> {
    let mut text = serde_json::to_string_pretty(&table()).expect("JSON values serialize");
    text.push('\n');
    vec![
        Output { path: PATH.into(), text },
        Output { path: "core/tests/bad_inputs/decode.rs".into(), text: rust_decoders() },
        Output { path: "bindings-swift/Tests/LicenseBackupTests/BadInputRecords.swift".into(), text: swift_decoders() },
    ]
}

const INVALID: &str = "INVALID_ARGUMENT";

/// A value the operation accepts, for the arguments a row leaves alone (`base`), in the
/// interface's snake_case; paths are relative to the runner's temporary folder.
fn valid(ty: &Type, name: &str) -> Value {
    match ty {
        Type::Bool => json!(false),
        Type::Int { min, max, .. } => json!(if (*min..=*max).contains(&1) { 1 } else { *min as i64 }),
        Type::Text { .. } if name == "path" => json!({"$path": "file.db"}),
        Type::Text { .. } if name == "url" => json!("https://licenses.example.com"),
        Type::Text { .. } => json!("text"),
        Type::Bytes { min_len, .. } => json!({"$bytes": (*min_len).max(16)}),
        Type::KeyId => json!("01234567-89ab-cdef-0123-456789abcdef"),
        Type::Record(record) => {
            let record = interface::record(record).expect("defined");
            let mut out = Map::new();
            for f in record.fields.iter().filter(|f| f.default.is_none()) {
                out.insert(f.name.into(), valid(&f.ty, f.name));
            }
            Value::Object(out)
        }
        Type::Optional(_) => Value::Null,
        Type::List(inner) => json!([valid(inner, name)]),
        Type::PropertyValue => json!("text"),
        Type::Seconds { .. } => json!(1),
        other => unreachable!("no value of {other:?} in a call"),
    }
}

/// One row.
struct Row {
    target: &'static str,
    path: Vec<&'static str>,
    value: Value,
    expect: Option<&'static str>,
    /// A statically typed binding (Rust, Swift) can express the value.
    typed: bool,
    note: &'static str,
}

/// Whether a typed binding can hold `value` in a field of `ty`.
fn typed_fits(ty: &Type, value: &Value) -> bool {
    match (ty, value) {
        (Type::Optional(_), Value::Null) => true,
        (Type::Optional(inner), v) => typed_fits(inner, v),
        (Type::Bool, Value::Bool(_)) => true,
        (Type::Int { kind, .. }, Value::Number(n)) => {
            let range = match kind {
                IntKind::U32 => (0i128, u32::MAX as i128),
                IntKind::I64 => (i64::MIN as i128, i64::MAX as i128),
                IntKind::U64 => (0, u64::MAX as i128),
            };
            n.as_i64().map(i128::from).or(n.as_u64().map(i128::from)).is_some_and(|v| (range.0..=range.1).contains(&v))
        }
        (Type::Int { kind: IntKind::I64, .. }, Value::Object(o)) => {
            o.get("$int").and_then(Value::as_str).is_some_and(|s| s.parse::<i64>().is_ok())
        }
        (Type::Text { .. } | Type::KeyId, Value::String(_)) => true,
        (Type::Text { .. }, Value::Object(o)) => o.contains_key("$text") || o.contains_key("$path"),
        (Type::Bytes { .. }, Value::Object(o)) => o.contains_key("$bytes"),
        _ => false,
    }
}

/// The rows for one value of type `ty` at `target`.`path`. Null is accepted for an optional
/// value, and for an option (`null_is_default`: null, `None`, `nil` mean "the default").
fn rows_for(ty: &Type, null_is_default: bool, target: &'static str, path: &[&'static str], out: &mut Vec<Row>) {
    let mut push = |value: Value, expect: Option<&'static str>, note: &'static str| {
        let typed = typed_fits(ty, &value);
        out.push(Row { target, path: path.to_vec(), value, expect, typed, note });
    };
    let optional = matches!(ty, Type::Optional(_));
    if optional || null_is_default {
        // null (or None, nil) is "none" for an optional field, and the default for an option.
        push(Value::Null, None, "null: none, or the default");
    } else {
        push(Value::Null, Some(INVALID), "null for a required value");
    }
    match *ty.required() {
        Type::Bool => {
            push(json!(1), Some(INVALID), "a number for a boolean");
            push(json!("no"), Some(INVALID), "a string for a boolean");
            push(json!(true), None, "true");
        }
        Type::Int { min, max, kind } => {
            push(json!(min as i64), None, "the smallest value");
            push(number(max), None, "the largest value");
            if min == 0 {
                push(json!(-1), Some(INVALID), "negative");
            } else {
                push(number(min - 1), Some(INVALID), "one below the range");
            }
            if kind != IntKind::U64 {
                push(number(max + 1), Some(INVALID), "one above the range");
            }
            push(json!(1.5), Some(INVALID), "a fraction");
            push(json!({"$float": "NaN"}), Some(INVALID), "NaN");
            push(json!({"$float": "Infinity"}), Some(INVALID), "infinity");
            push(json!({"$float": "-Infinity"}), Some(INVALID), "minus infinity");
            push(json!({"$int": "4294967296"}), (max < 1 << 32).then_some(INVALID), "2^32");
            push(json!({"$int": "9223372036854775808"}), Some(INVALID), "2^63");
            push(json!({"$bigint": "1"}), Some(INVALID), "a BigInt");
            push(json!(true), Some(INVALID), "a boolean for an integer");
            push(json!("5"), Some(INVALID), "a string for an integer");
        }
        Type::Text { min_bytes, max_bytes } => {
            push(json!(42), Some(INVALID), "a number for a string");
            push(json!(true), Some(INVALID), "a boolean for a string");
            push(json!("a\u{0}b"), Some(INVALID), "a NUL character");
            if min_bytes > 0 {
                push(json!(""), Some(INVALID), "empty");
            }
            if let Some(max) = max_bytes {
                push(json!({"$text": max}), None, "the longest value");
                push(json!({"$text": max + 1}), Some(INVALID), "one byte too long");
            }
        }
        Type::Bytes { min_len, max_len } => {
            push(json!("text"), Some(INVALID), "a string for bytes");
            push(json!(42), Some(INVALID), "a number for bytes");
            push(json!([1, 2, 3]), Some(INVALID), "a list of numbers for bytes");
            push(json!({"$bytes": min_len}), None, "the shortest value");
            push(json!({"$bytes": max_len}), None, "the longest value");
            if min_len > 0 {
                push(json!({"$bytes": min_len - 1}), Some(INVALID), "one byte too short");
            }
            push(json!({"$bytes": max_len + 1}), Some(INVALID), "one byte too long");
        }
        Type::List(_) => {
            push(json!("text"), Some(INVALID), "a string for a list");
            push(json!([42]), Some(INVALID), "a number in a list of records");
        }
        Type::Seconds { positive, max } => {
            push(json!(0), positive.then_some(INVALID), "no time at all");
            if let Some(max) = max {
                push(json!(max), None, "the largest value");
                push(json!(f64::from(max) + 0.5), Some(INVALID), "over the largest value");
            }
            push(json!(0.5), None, "a fraction of a second");
            push(json!(-1), Some(INVALID), "negative");
            push(json!({"$float": "NaN"}), Some(INVALID), "NaN");
            push(json!({"$float": "Infinity"}), Some(INVALID), "infinity");
            push(json!(true), Some(INVALID), "a boolean for seconds");
            push(json!("1"), Some(INVALID), "a string for seconds");
        }
        Type::KeyId => {
            push(json!("not-a-uuid"), Some(INVALID), "not a UUID");
            push(json!(""), Some(INVALID), "empty");
            push(json!(42), Some(INVALID), "a number for a key ID");
        }
        Type::Record(name) => {
            push(json!("text"), Some(INVALID), "a string for a record");
            push(json!(42), Some(INVALID), "a number for a record");
            let record = interface::record(name).expect("defined");
            for f in record.fields {
                let mut at = path.to_vec();
                at.push(f.name);
                rows_for(&f.ty, false, target, &at, out);
            }
            let mut at = path.to_vec();
            at.push("unknown_field");
            out.push(Row {
                target,
                path: at,
                value: json!(true),
                expect: Some(INVALID),
                typed: false,
                note: "an unknown field",
            });
            for f in record.fields.iter().filter(|f| f.default.is_none()) {
                let mut at = path.to_vec();
                at.push(f.name);
                out.push(Row {
                    target,
                    path: at,
                    value: json!({"$absent": true}),
                    expect: Some(INVALID),
                    typed: false,
                    note: "a required field left out",
                });
            }
        }
        _ => {}
    }
}

fn number(n: i128) -> Value {
    if n.unsigned_abs() <= (1u128 << 53) { json!(n as i64) } else { json!({"$int": n.to_string()}) }
}

fn call_name(op: &Operation) -> String {
    format!("{}.{}", op.object, op.name)
}

fn table() -> Value {
    let mut calls = Map::new();
    let mut rows = Vec::new();
    // Factories of the bindings' own objects (protectors) take host values: not in the table.
    for op in OPERATIONS.iter().filter(|op| !matches!(op.call, Call::Factory | Call::Getter)) {
        let params: Vec<_> = op
            .params
            .iter()
            .filter(|p| !matches!(p.ty, Type::Object(_) | Type::StatusCallback | Type::PropertyValue))
            .collect();
        if params.is_empty() && op.options.is_none() {
            continue;
        }
        let mut args = Map::new();
        for p in op.params.iter().filter(|p| !matches!(p.ty, Type::Object(_) | Type::StatusCallback)) {
            args.insert(p.name.into(), valid(&p.ty, p.name));
        }
        let call = call_name(op);
        calls.insert(call.clone(), json!({"args": args, "options": op.options}));
        let mut list = Vec::new();
        for p in &params {
            if op.call == Call::Method && op.name == "property_by_index" {
                // Any index is past the end of an empty property list: only bad values.
                let mut all = Vec::new();
                rows_for(&p.ty, false, p.name, &[], &mut all);
                list.extend(all.into_iter().filter(|r| r.expect.is_some()));
                continue;
            }
            rows_for(&p.ty, false, p.name, &[], &mut list);
        }
        if let Some(options) = op.options {
            let record = interface::record(options).expect("defined");
            for f in record.fields {
                rows_for(&f.ty, true, "options", &[f.name], &mut list);
            }
            list.push(Row {
                target: "options",
                path: vec!["unknown_option"],
                value: json!(true),
                expect: Some(INVALID),
                typed: false,
                note: "an unknown option (a typo)",
            });
        }
        for r in list {
            rows.push(row_json(&call, r));
        }
    }
    // Property values: the name decides the type, then the range.
    let set = "BackupRestorer.set_property";
    for &prop in Property::ALL {
        let mut list = Vec::new();
        let wrong = ErrorCode::WrongPropertyType.name();
        match prop.value_type() {
            ValueType::U32 => {
                let spec = prop.spec();
                rows_for(&spec, false, "value", &[], &mut list);
                for r in &mut list {
                    // null, booleans, strings and BigInts are values of another type.
                    let bigint = r.value.as_object().is_some_and(|o| o.contains_key("$bigint"));
                    if r.value.is_null() || r.value.is_boolean() || r.value.is_string() || bigint {
                        r.expect = Some(wrong);
                    }
                }
            }
            ValueType::String => {
                rows_for(&prop.spec(), false, "value", &[], &mut list);
                for r in &mut list {
                    if r.value.is_null() || r.value.is_boolean() || r.value.is_number() {
                        r.expect = Some(wrong);
                    }
                    // The property's value is typed in Swift and Rust: a number is `.u32`.
                    r.typed = r.typed || r.value.as_u64().is_some_and(|n| n <= u64::from(u32::MAX));
                }
            }
            ValueType::Bool => {}
        }
        for r in list {
            let mut row = row_json(set, r);
            row["args"] = json!({"name": prop.name()});
            row["id"] = json!(format!("{} (name {})", row["id"].as_str().unwrap_or_default(), prop.name()));
            rows.push(row);
        }
    }
    rows.push(json!({"id": "BackupRestorer.set_property value = 1.5 (name Nope)", "call": set, "target": "value", "path": [],
                     "value": 1.5, "args": {"name": "Nope"},
                     "expect": ErrorCode::UnknownProperty.name(), "typed": false, "note": "an unknown property, whatever the value"}));
    calls.insert(set.into(), json!({"args": {"name": "BackupPath", "value": {"$path": "backup"}}, "options": null}));
    json!({
        "generated": HEADER,
        "format": "tests/bad-inputs/README.md",
        "calls": calls,
        "rows": rows,
    })
}

fn row_json(call: &str, r: Row) -> Value {
    let mut id = format!("{call} {}", r.target);
    for p in &r.path {
        id.push('.');
        id.push_str(p);
    }
    id.push_str(&format!(" = {}", r.value));
    json!({
        "id": id,
        "call": call,
        "target": r.target,
        "path": r.path,
        "value": r.value,
        "expect": r.expect,
        "typed": r.typed,
        "note": r.note,
    })
}

/// The core's records from the table's JSON, for the Rust runner (`core/tests/bad_inputs.rs`).
fn rust_decoders() -> String {
    let mut w = String::new();
    writeln!(w, "// {HEADER}").unwrap();
    w.push_str(
        "//! The core's records from the bad-input table's JSON (snake_case keys), generated from the\n\
         //! interface definition: a field is read with [`field`], which gives `Reject::NoForm` for a value\n\
         //! its Rust type cannot hold and the core's error for one it rejects while parsing (a key ID).\n\n\
         use license_backup::*;\nuse serde_json::Value;\n\nuse super::{Reject, field};\n",
    );
    for record in interface::RECORDS.iter().filter(|r| r.core && matches!(r.role, Role::Value | Role::Input)) {
        writeln!(
            w,
            "\n/// A `{0}` from JSON.\npub fn {1}(v: &Value) -> Result<{0}, Reject> {{\n    Ok({0} {{",
            record.name,
            super::snake(record.name)
        )
        .unwrap();
        for f in record.fields {
            let default = match f.default {
                None => "None".to_string(),
                Some(Default::Bool(b)) => format!("Some({b})"),
                Some(Default::Int(n)) => format!("Some({n})"),
                Some(Default::Null) => "Some(None)".to_string(),
            };
            let read = match f.ty {
                Type::Record(name) => format!("{}(v.get({:?}).ok_or(Reject::NoForm)?)?", super::snake(name), f.name),
                _ => format!("field(v, {:?}, {default})?", f.name),
            };
            writeln!(w, "        {}: {read},", f.name).unwrap();
        }
        w.push_str("    })\n}\n");
    }
    w
}

/// The Swift type of a record field, for the Swift runner's decoders.
fn swift_field_type(ty: &Type) -> String {
    match ty {
        Type::Bool => "Bool".into(),
        Type::Int { kind: IntKind::U32, .. } => "UInt32".into(),
        Type::Int { kind: IntKind::I64, .. } => "Int64".into(),
        Type::Int { kind: IntKind::U64, .. } => "UInt64".into(),
        Type::Text { .. } | Type::KeyId => "String".into(),
        Type::Bytes { .. } => "Data".into(),
        other => unreachable!("no Swift decoder of {other:?}"),
    }
}

/// The records from the table's JSON, for the Swift runner (`BadInputTests.swift`).
fn swift_decoders() -> String {
    let mut w = String::new();
    writeln!(w, "// {HEADER}").unwrap();
    w.push_str(
        "// The records from the bad-input table's JSON (snake_case keys), for BadInputTests.swift: a\n\
         // field is read with `field` / `optionalField`, which throw `NoSwiftForm` for a value its Swift\n\
         // type cannot hold.\n\nimport Foundation\n@testable import LicenseBackup\n",
    );
    for record in interface::RECORDS.iter().filter(|r| r.core && matches!(r.role, Role::Value | Role::Input)) {
        writeln!(
            w,
            "\n/// A `{0}` from the table's JSON.\nfunc decode{0}(_ value: Any?) throws -> {0} {{\n    let o = try jsonObject(value)\n    return {0}(",
            record.name
        )
        .unwrap();
        let args: Vec<String> = record
            .fields
            .iter()
            .map(|f| {
                let label = super::lower_camel(f.name);
                let read = match f.ty {
                    Type::Record(name) => format!("try decode{name}(o[{:?}])", f.name),
                    Type::Optional(inner) => {
                        format!("try optionalField(o, {:?}, {}.self)", f.name, swift_field_type(inner))
                    }
                    ty => {
                        let default = match f.default {
                            Some(Default::Bool(b)) => b.to_string(),
                            Some(Default::Int(n)) => n.to_string(),
                            _ => "nil".into(),
                        };
                        format!("try field(o, {:?}, {}.self, default: {default})", f.name, swift_field_type(&ty))
                    }
                };
                format!("        {label}: {read}")
            })
            .collect();
        writeln!(w, "{}\n    )\n}}", args.join(",\n")).unwrap();
    }
    swift_generated_forms(&mut w);
    w
}

/// The Swift form of each call to an operation with a generated overlay method, which
/// `BadInputTests.call` falls back to for a call it has no form of its own for.
fn swift_generated_forms(w: &mut String) {
    use super::swift::{OVERLAY_BY_HAND, UNLABELED_FIRST};
    w.push_str(
        "\n/// The Swift form of a call to an operation with a generated overlay method (the runner's\n\
         /// fallback); `false` for another call.\n\
         func generatedForm(\n    _ name: String, _ a: [String: Any], _ o: [String: Any],\n    \
         store: LicenseStore, service: EmbeddedService, restorer: BackupRestorer\n) throws -> Bool {\n    \
         func option<T: TableValue>(_ key: String, _ defaultValue: T) throws -> T {\n        \
         guard let v = o[key], !(v is NSNull) else { return defaultValue }\n        return try T.from(v)\n    }\n    \
         func list(_ value: Any?) throws -> [Any] {\n        \
         guard let l = value as? [Any] else { throw NoSwiftForm() }\n        return l\n    }\n    \
         switch name {\n",
    );
    for op in super::entries::generated() {
        if OVERLAY_BY_HAND.iter().any(|(o, n, _)| *o == op.object && *n == op.name) {
            continue;
        }
        let instance = match op.object {
            "LicenseStore" => "store",
            "EmbeddedService" => "service",
            "BackupRestorer" => "restorer",
            _ => continue,
        };
        let unlabeled = UNLABELED_FIRST.contains(&(op.object, op.name));
        let mut args = Vec::new();
        for (i, p) in op.params.iter().enumerate() {
            let value = match p.ty {
                Type::Record(name) => format!("try decode{name}(a[{:?}])", p.name),
                Type::List(Type::Record(name)) => format!("try list(a[{:?}]).map(decode{name})", p.name),
                ty => format!("try {}.from(a[{:?}] as Any)", swift_field_type(&ty), p.name),
            };
            if i == 0 && unlabeled {
                args.push(value);
            } else {
                args.push(format!("{}: {value}", super::lower_camel(p.name)));
            }
        }
        if let Some(options) = op.options {
            let record = interface::RECORDS.iter().find(|r| r.name == options).expect("options record");
            for f in record.fields {
                let default = match f.default {
                    Some(Default::Bool(b)) => b.to_string(),
                    Some(Default::Int(n)) => n.to_string(),
                    _ => continue,
                };
                args.push(format!("{}: try option({:?}, {default})", super::lower_camel(f.name), f.name));
            }
        }
        writeln!(
            w,
            "    case \"{}\": _ = try {instance}.{}({})",
            call_name(op),
            super::lower_camel(op.name),
            args.join(", ")
        )
        .unwrap();
    }
    w.push_str("    default: return false\n    }\n    return true\n}\n");
}
