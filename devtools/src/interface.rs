//! Generates `core/interface.json`, the machine-readable description of the interface, from
//! the core's definition: error codes, events and properties from the macro-generated lists
//! (`ErrorCode::ALL`, `EventKind::ALL`, `Property::ALL`), so nothing added to the core can be
//! left out; records, objects, operations and event metadata from `license_backup::interface`,
//! whose record tables a test here checks against the types' fields.

use license_backup::interface::{
    self, Default, EVENT_METADATA, Field, INTERFACE_VERSION, OBJECTS, OPERATIONS, RECORDS, Role, Type,
};
use license_backup::{ErrorCode, EventKind, Property, archive};
use serde_json::{Map, Value, json};

/// A type's limits as JSON keys (those of the type inside an `Optional`).
fn limits(ty: &Type, out: &mut Map<String, Value>) {
    match *ty.required() {
        Type::Int { min, max, .. } => {
            out.insert("min".into(), number(min));
            out.insert("max".into(), number(max));
        }
        Type::Text { min_bytes, max_bytes } => {
            out.insert("min_bytes".into(), json!(min_bytes));
            if let Some(max) = max_bytes {
                out.insert("max_bytes".into(), json!(max));
            }
        }
        Type::Bytes { min_len, max_len } => {
            out.insert("min_len".into(), json!(min_len));
            out.insert("max_len".into(), json!(max_len));
        }
        Type::Seconds { positive, max } => {
            out.insert("positive".into(), json!(positive));
            if let Some(max) = max {
                out.insert("max_seconds".into(), json!(max));
            }
        }
        _ => {}
    }
}

/// An integer limit as a JSON number (every limit fits an i64 or a u64).
fn number(n: i128) -> Value {
    match (i64::try_from(n), u64::try_from(n)) {
        (Ok(i), _) => json!(i),
        (_, Ok(u)) => json!(u),
        _ => unreachable!("integer limits fit 64 bits"),
    }
}

/// A field as JSON: name, type, limits, default, documentation.
pub fn field(f: &Field) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(f.name));
    out.insert("type".into(), json!(f.ty.name()));
    limits(&f.ty, &mut out);
    if let Some(default) = f.default {
        out.insert(
            "default".into(),
            match default {
                Default::Bool(b) => json!(b),
                Default::Int(n) => number(n),
                Default::Null => Value::Null,
            },
        );
    }
    if f.secret {
        out.insert("secret".into(), json!(true));
    }
    out.insert("doc".into(), json!(f.doc));
    Value::Object(out)
}

fn fields(list: &[Field]) -> Value {
    Value::Array(list.iter().map(field).collect())
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Value => "value",
        Role::Input => "input",
        Role::Output => "output",
        Role::Options => "options",
    }
}

/// The interface description as JSON.
pub fn description() -> Value {
    let errors: Vec<Value> = ErrorCode::ALL
        .iter()
        .map(|c| {
            json!({"number": c.number(), "name": c.name(), "variant": c.variant_name(), "message": c.description(),
                   "doc": c.doc()})
        })
        .collect();
    let events: Vec<Value> = EventKind::ALL
        .iter()
        .map(|k| {
            let normalized: Vec<Value> = k.fields().iter().map(|(n, t)| json!({"name": n, "type": t})).collect();
            json!({"name": k.name(), "description": k.description(), "fields": normalized, "surface": fields(k.surface())})
        })
        .collect();
    let properties: Vec<Value> = Property::ALL
        .iter()
        .map(|p| {
            let mut out = Map::new();
            out.insert("name".into(), json!(p.name()));
            out.insert("type".into(), json!(p.value_type().name()));
            limits(&p.spec(), &mut out);
            out.insert("description".into(), json!(p.description()));
            Value::Object(out)
        })
        .collect();
    let records: Map<String, Value> = RECORDS.iter().map(|r| (r.name.to_string(), fields(r.fields))).collect();
    let record_info: Map<String, Value> = RECORDS
        .iter()
        .map(|r| (r.name.to_string(), json!({"role": role(r.role), "core": r.core, "doc": r.doc})))
        .collect();
    let objects: Vec<Value> = OBJECTS.iter().map(|o| json!({"name": o.name, "doc": o.doc})).collect();
    let operations: Vec<Value> = OPERATIONS
        .iter()
        .map(|op| {
            json!({
                "object": op.object,
                "name": op.name,
                "call": match op.call {
                    interface::Call::Constructor => "constructor",
                    interface::Call::Factory => "factory",
                    interface::Call::Method => "method",
                    interface::Call::Getter => "getter",
                },
                "params": fields(op.params),
                "options": op.options,
                "result": op.result.name(),
                "starts": op.starts,
                "doc": op.doc,
            })
        })
        .collect();
    json!({
        "name": "license-backup",
        "interface_version": INTERFACE_VERSION,
        "key_id_format": "lowercase hyphenated UUID",
        "archive_file_name": archive::ARCHIVE_FILE_NAME,
        "archive_format_version": archive::FORMAT_VERSION,
        "operations_kinds": ["backup", "restore"],
        "errors": errors,
        "events": events,
        "event_metadata": fields(EVENT_METADATA),
        "properties": properties,
        "records": records,
        "record_info": record_info,
        "objects": objects,
        "operations": operations,
    })
}

/// The description as the committed file holds it: pretty-printed JSON and a final newline.
pub fn description_json() -> String {
    let mut text = serde_json::to_string_pretty(&description()).expect("JSON values always serialize");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use license_backup::*;

    fn described(name: &str) -> Vec<String> {
        let record = interface::record(name).expect("described");
        assert!(record.core, "{name} is described as a core type");
        let mut k: Vec<String> = record.fields.iter().map(|f| f.name.to_string()).collect();
        k.sort();
        k
    }

    /// The field names of a type, from an exhaustive pattern: adding, removing or renaming a
    /// field of the type fails to compile here, and the test compares the names with `RECORDS`.
    macro_rules! fields_of {
        ($ty:ident { $($field:ident),* $(,)? }) => {{
            #[allow(dead_code)]
            fn exhaustive(v: &$ty) {
                let $ty { $($field: _),* } = v;
            }
            let mut names = vec![$(stringify!($field).to_string()),*];
            names.sort();
            names
        }};
    }

    #[test]
    fn record_fields_match_the_types() {
        assert_eq!(
            fields_of!(Rights { play, burn, transfer, backup_allowed, expires_at, plays_remaining }),
            described("Rights")
        );
        assert_eq!(fields_of!(CatalogEntry { title, artist, file_path }), described("CatalogEntry"));
        assert_eq!(fields_of!(NewLicense { key_id, content_key, rights, issuer, issued_at }), described("NewLicense"));
        assert_eq!(fields_of!(License { key_id, rights, issuer, issued_at, catalog }), described("License"));
        assert_eq!(fields_of!(Summary { licenses, restricted, skipped, bytes, duration_ms }), described("Summary"));
        assert_eq!(
            fields_of!(Quota { licenses, max_devices, restores_remaining, device_already_counted, allowed }),
            described("Quota")
        );
        assert_eq!(
            fields_of!(LedgerAudit { pending, confirmed, released, expired, licenses, placements, devices }),
            described("LedgerAudit")
        );
        assert_eq!(fields_of!(BackupFlags { overwrite }), described("BackupFlags"));
        assert_eq!(fields_of!(RestoreFlags { individualize, replace_existing }), described("RestoreFlags"));
        // ServiceOptions are ServicePolicy's fields an application sets (the options default to
        // the core's policy) and the protector, which the core takes apart
        // (ServiceOptions::protected). The reservation lifetime and whether version-1 archives
        // are accepted are a service operator's settings (the Rust API's), not the bindings'.
        let mut service: Vec<String> = interface::record("ServiceOptions")
            .unwrap()
            .fields
            .iter()
            .filter(|f| f.name != "protector")
            .map(|f| f.name.to_string())
            .collect();
        service.sort();
        let mut policy =
            fields_of!(ServicePolicy { max_devices, refusal_url, reservation_ttl_secs, accept_v1_archives });
        policy.retain(|f| !["reservation_ttl_secs", "accept_v1_archives"].contains(&f.as_str()));
        assert_eq!(policy, service);
        let mut metadata: Vec<String> = EVENT_METADATA.iter().map(|f| f.name.to_string()).collect();
        metadata.push("event".into());
        metadata.sort();
        assert_eq!(fields_of!(Emitted { event, emitted_ns }), metadata);
        let core: Vec<&str> = RECORDS.iter().filter(|r| r.core).map(|r| r.name).collect();
        assert_eq!(
            core,
            [
                "Rights",
                "CatalogEntry",
                "NewLicense",
                "License",
                "Summary",
                "Quota",
                "LedgerAudit",
                "BackupFlags",
                "RestoreFlags"
            ]
        );
    }

    /// Every record and object a type names is defined; every operation belongs to an object;
    /// names are unique; defaults fit their field's type; option fields all have defaults.
    #[test]
    fn the_definition_is_consistent() {
        fn names(ty: &Type, out: &mut Vec<(bool, &'static str)>) {
            match ty {
                Type::Record(n) => out.push((true, n)),
                Type::Object(n) => out.push((false, n)),
                Type::Optional(inner) | Type::List(inner) => names(inner, out),
                _ => {}
            }
        }
        let mut named = Vec::new();
        for record in RECORDS {
            assert_eq!(RECORDS.iter().filter(|r| r.name == record.name).count(), 1, "{} twice", record.name);
            for f in record.fields {
                names(&f.ty, &mut named);
                if record.role == Role::Options {
                    assert!(f.default.is_some(), "option {}.{} has no default", record.name, f.name);
                }
                match (f.default, f.ty) {
                    (None, _) | (Some(Default::Null), Type::Optional(_)) | (Some(Default::Bool(_)), Type::Bool) => {}
                    (Some(Default::Int(n)), ty) => ty.check_int("default", n).unwrap(),
                    (Some(d), ty) => panic!("{}.{}: default {d:?} for a {}", record.name, f.name, ty.name()),
                }
            }
        }
        for op in OPERATIONS {
            assert!(OBJECTS.iter().any(|o| o.name == op.object), "{}.{}: no such object", op.object, op.name);
            op.params.iter().for_each(|f| names(&f.ty, &mut named));
            names(&op.result, &mut named);
            if let Some(options) = op.options {
                assert_eq!(
                    interface::record(options).map(|r| r.role),
                    Some(Role::Options),
                    "{}.{}",
                    op.object,
                    op.name
                );
            }
        }
        for &kind in EventKind::ALL {
            kind.surface().iter().for_each(|f| names(&f.ty, &mut named));
        }
        for (is_record, name) in named {
            if is_record {
                assert!(interface::record(name).is_some(), "no record {name}");
            } else {
                assert!(OBJECTS.iter().any(|o| o.name == name), "no object {name}");
            }
        }
    }

    /// Every error code, event kind and property of the core is in the description, in order.
    #[test]
    fn description_lists_every_code_event_and_property() {
        let d = description();
        let names = |key: &str| -> Vec<String> {
            d[key].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap().to_string()).collect()
        };
        assert_eq!(names("errors"), ErrorCode::ALL.iter().map(|c| c.name().to_string()).collect::<Vec<_>>());
        assert_eq!(names("events"), EventKind::ALL.iter().map(|k| k.name().to_string()).collect::<Vec<_>>());
        assert_eq!(names("properties"), Property::ALL.iter().map(|p| p.name().to_string()).collect::<Vec<_>>());
        assert_eq!(d["operations"].as_array().unwrap().len(), OPERATIONS.len());
        // Limits travel with the types: a timestamp is JavaScript-safe, a u32 is a u32.
        let rights = d["records"]["Rights"].as_array().unwrap();
        let expires = rights.iter().find(|f| f["name"] == "expires_at").unwrap();
        assert_eq!((expires["type"].as_str(), expires["max"].as_i64()), (Some("i64?"), Some((1 << 53) - 1)));
        let plays = rights.iter().find(|f| f["name"] == "plays_remaining").unwrap();
        assert_eq!((plays["min"].as_u64(), plays["max"].as_u64()), (Some(0), Some(u64::from(u32::MAX))));
    }
}
