//! The machine-readable description of the interface, generated from the definitions in this
//! crate and committed at `core/interface.json`. Every binding checks its surface against it.
//!
//! Error codes, events and properties come from the macro-generated lists (`ErrorCode::ALL`,
//! `EventKind::ALL`, `Property::ALL`), so nothing added to the core can be left out; record
//! types list their fields, and a test checks those lists against the types' serialized form.

use serde_json::{Value, json};

use crate::error::ErrorCode;
use crate::event::EventKind;
use crate::props::Property;

/// The interface's version: bumped on every incompatible change.
pub const INTERFACE_VERSION: u32 = 1;

/// Fields of the record types, with their types, in the order bindings present them.
pub const RECORDS: &[(&str, &[(&str, &str)])] = &[
    (
        "Rights",
        &[
            ("play", "bool"),
            ("burn", "bool"),
            ("transfer", "bool"),
            ("backup_allowed", "bool"),
            ("expires_at", "i64?"),
            ("plays_remaining", "u32?"),
        ],
    ),
    ("CatalogEntry", &[("title", "string?"), ("artist", "string?"), ("file_path", "string?")]),
    (
        "NewLicense",
        &[
            ("key_id", "key_id"),
            ("content_key", "bytes"),
            ("rights", "Rights"),
            ("issuer", "string"),
            ("issued_at", "i64"),
        ],
    ),
    (
        "License",
        &[
            ("key_id", "key_id"),
            ("rights", "Rights"),
            ("issuer", "string"),
            ("issued_at", "i64"),
            ("catalog", "CatalogEntry?"),
        ],
    ),
    (
        "Summary",
        &[("licenses", "u64"), ("restricted", "u64"), ("skipped", "u64"), ("bytes", "u64"), ("duration_ms", "u64")],
    ),
    (
        "Quota",
        &[
            ("licenses", "u64"),
            ("max_devices", "u32"),
            ("restores_remaining", "u32"),
            ("device_already_counted", "bool"),
            ("allowed", "bool"),
        ],
    ),
    (
        "LedgerAudit",
        &[
            ("pending", "u64"),
            ("confirmed", "u64"),
            ("released", "u64"),
            ("expired", "u64"),
            ("licenses", "u64"),
            ("placements", "u64"),
            ("devices", "u64"),
        ],
    ),
    ("BackupFlags", &[("overwrite", "bool")]),
    ("RestoreFlags", &[("individualize", "bool"), ("replace_existing", "bool")]),
];

/// What every delivered event carries besides its own fields ([`crate::Emitted`]): each
/// binding exposes it on its event objects, under its idiomatic name. Not part of the
/// normalized form the conformance scenarios compare.
pub const EVENT_METADATA: &[(&str, &str, &str)] = &[(
    "emitted_ns",
    "u64",
    "When the engine emitted the event: the platform's monotonic clock in nanoseconds \
     (Python time.monotonic_ns(), Node process.hrtime.bigint(), Swift DispatchTime.uptimeNanoseconds).",
)];

/// A list of named, typed fields or parameters.
pub type Fields = &'static [(&'static str, &'static str)];

/// Every operation of the interface: (object, name, parameters, result).
pub const OPERATIONS: &[(&str, &str, Fields, &str)] = &[
    ("LicenseStore", "open", &[("path", "string")], "LicenseStore"),
    ("LicenseStore", "device_id", &[], "string"),
    ("LicenseStore", "add_license", &[("license", "NewLicense"), ("replace", "bool")], "void"),
    ("LicenseStore", "add_licenses", &[("licenses", "NewLicense[]"), ("replace", "bool")], "void"),
    ("LicenseStore", "get_license", &[("key_id", "key_id")], "License?"),
    ("LicenseStore", "list_licenses", &[], "License[]"),
    ("LicenseStore", "remove_license", &[("key_id", "key_id")], "bool"),
    ("LicenseStore", "license_count", &[], "u64"),
    ("LicenseStore", "content_key", &[("key_id", "key_id")], "bytes"),
    ("LicenseStore", "set_catalog_entry", &[("key_id", "key_id"), ("entry", "CatalogEntry")], "void"),
    ("LicenseStore", "catalog_entry", &[("key_id", "key_id")], "CatalogEntry?"),
    ("LicenseStore", "remove_catalog_entry", &[("key_id", "key_id")], "bool"),
    ("LicenseStore", "verify", &[], "u64"),
    (
        "EmbeddedService",
        "open",
        &[("path", "string"), ("max_devices", "u32?"), ("refusal_url", "string?")],
        "EmbeddedService",
    ),
    ("EmbeddedService", "set_online", &[("online", "bool")], "void"),
    ("EmbeddedService", "audit", &[], "LedgerAudit"),
    ("BackupRestorer", "create", &[("store", "LicenseStore"), ("service", "EmbeddedService")], "BackupRestorer"),
    ("BackupRestorer", "set_property", &[("name", "string"), ("value", "property_value")], "void"),
    ("BackupRestorer", "get_property", &[("name", "string")], "property_value?"),
    ("BackupRestorer", "property_by_index", &[("index", "u32")], "(string, property_value)"),
    ("BackupRestorer", "property_count", &[], "u32"),
    ("BackupRestorer", "remove_property", &[("name", "string")], "bool"),
    ("BackupRestorer", "remove_all_properties", &[], "void"),
    ("BackupRestorer", "backup_licenses", &[("flags", "BackupFlags"), ("callback", "status_callback")], "Operation"),
    ("BackupRestorer", "restore_licenses", &[("flags", "RestoreFlags"), ("callback", "status_callback")], "Operation"),
    ("BackupRestorer", "cancel_license_backup", &[], "void"),
    ("BackupRestorer", "cancel_license_restore", &[], "void"),
    ("BackupRestorer", "restore_quota", &[("individualize", "bool?")], "Quota"),
    ("Operation", "wait", &[("timeout", "duration?")], "Summary"),
    ("Operation", "cancel", &[], "void"),
    ("Operation", "is_finished", &[], "bool"),
];

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
        .map(|p| json!({"name": p.name(), "type": p.value_type(), "description": p.description()}))
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
        "archive_file_name": crate::archive::ARCHIVE_FILE_NAME,
        "archive_format_version": crate::archive::FORMAT_VERSION,
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
    use crate::*;

    fn keys(v: Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
        k.sort();
        k
    }

    fn described(name: &str) -> Vec<String> {
        let (_, f) = RECORDS.iter().find(|(n, _)| *n == name).expect("described");
        let mut k: Vec<String> = f.iter().map(|(n, _)| n.to_string()).collect();
        k.sort();
        k
    }

    #[test]
    fn record_fields_match_the_types() {
        assert_eq!(keys(serde_json::to_value(Rights::default()).unwrap()), described("Rights"));
        assert_eq!(keys(serde_json::to_value(CatalogEntry::default()).unwrap()), described("CatalogEntry"));
        assert_eq!(keys(serde_json::to_value(Summary::default()).unwrap()), described("Summary"));
        let quota =
            Quota { licenses: 0, max_devices: 4, restores_remaining: 3, device_already_counted: false, allowed: true };
        assert_eq!(keys(serde_json::to_value(quota).unwrap()), described("Quota"));
        assert_eq!(keys(serde_json::to_value(LedgerAudit::default()).unwrap()), described("LedgerAudit"));
        let license = License {
            key_id: KeyId::from_bytes([0; 16]),
            rights: Rights::default(),
            issuer: String::new(),
            issued_at: 0,
            catalog: None,
        };
        assert_eq!(keys(serde_json::to_value(license).unwrap()), described("License"));
        // Exhaustive destructuring: a new field in these types fails to compile here.
        let BackupFlags { overwrite: _ } = BackupFlags::default();
        let RestoreFlags { individualize: _, replace_existing: _ } = RestoreFlags::default();
        let NewLicense { key_id: _, content_key: _, rights: _, issuer: _, issued_at: _ } = NewLicense {
            key_id: KeyId::from_bytes([0; 16]),
            content_key: vec![],
            rights: Rights::default(),
            issuer: String::new(),
            issued_at: 0,
        };
        let Emitted { event: _, emitted_ns: _ } = Emitted { event: StatusEvent::Connecting, emitted_ns: 0 };
        assert_eq!(EVENT_METADATA.len(), 1);
        assert_eq!(described("BackupFlags"), ["overwrite"]);
        assert_eq!(described("RestoreFlags"), ["individualize", "replace_existing"]);
        assert_eq!(described("NewLicense").len(), 5);
    }
}
