//! Generates `core/interface.json`, the machine-readable description of the interface, from
//! the core's tables: error codes, events and properties from the macro-generated lists
//! (`ErrorCode::ALL`, `EventKind::ALL`, `Property::ALL`), so nothing added to the core can be
//! left out; records, operations and event metadata from `license_backup::interface`, whose
//! record lists a test here checks against the types' fields.

use license_backup::interface::{EVENT_METADATA, INTERFACE_VERSION, OPERATIONS, RECORDS};
use license_backup::{ErrorCode, EventKind, Property, archive};
use serde_json::{Value, json};

fn fields(list: &[(&str, &str)]) -> Value {
    Value::Array(list.iter().map(|(n, t)| json!({"name": n, "type": t})).collect())
}

/// The interface description as JSON.
pub fn description() -> Value {
    let errors: Vec<Value> = ErrorCode::ALL
        .iter()
        .map(|c| json!({"number": c.number(), "name": c.name(), "variant": c.variant_name(), "message": c.description()}))
        .collect();
    let events: Vec<Value> = EventKind::ALL
        .iter()
        .map(|k| json!({"name": k.name(), "description": k.description(), "fields": fields(k.fields())}))
        .collect();
    let properties: Vec<Value> = Property::ALL
        .iter()
        .map(|p| json!({"name": p.name(), "type": p.value_type().name(), "description": p.description()}))
        .collect();
    let records: serde_json::Map<String, Value> =
        RECORDS.iter().map(|(name, f)| (name.to_string(), fields(f))).collect();
    let operations: Vec<Value> = OPERATIONS
        .iter()
        .map(|(obj, name, params, result)| json!({"object": obj, "name": name, "params": fields(params), "result": result}))
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
        "event_metadata": EVENT_METADATA
            .iter()
            .map(|(name, ty, desc)| json!({"name": name, "type": ty, "description": desc}))
            .collect::<Vec<_>>(),
        "properties": properties,
        "records": records,
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
        let (_, f) = RECORDS.iter().find(|(n, _)| *n == name).expect("described");
        let mut k: Vec<String> = f.iter().map(|(n, _)| n.to_string()).collect();
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
            fields_of!(Quota { licenses, max_devices, restores_remaining, device_already_counted }),
            described("Quota")
        );
        assert_eq!(fields_of!(BackupFlags { overwrite }), described("BackupFlags"));
        assert_eq!(fields_of!(RestoreFlags { individualize, replace_existing }), described("RestoreFlags"));
        let mut metadata: Vec<String> = EVENT_METADATA.iter().map(|(n, _, _)| n.to_string()).collect();
        metadata.push("event".into());
        metadata.sort();
        assert_eq!(fields_of!(Emitted { event, emitted_ns }), metadata);
        let records: Vec<&str> = RECORDS.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            records,
            ["Rights", "CatalogEntry", "NewLicense", "License", "Summary", "Quota", "BackupFlags", "RestoreFlags"]
        );
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
    }
}
