//! The tables the machine-readable description of the interface is generated from: record
//! types with their fields, operations, event metadata. Together with the macro-generated lists
//! (`ErrorCode::ALL`, `EventKind::ALL`, `Property::ALL`), so nothing added to the core can be
//! left out, they make `core/interface.json`, which the `lb-interface` tool of the
//! `license-backup-devtools` crate writes and every binding checks its surface against. A test
//! there checks the record lists against the types' fields.

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
    ("LicenseStore", "open", &[("path", "string"), ("protector", "protector")], "LicenseStore"),
    ("LicenseStore", "protector_label", &[], "string"),
    ("LicenseStore", "device_id", &[], "string"),
    ("LicenseStore", "add_license", &[("license", "NewLicense"), ("replace", "bool")], "void"),
    ("LicenseStore", "add_licenses", &[("licenses", "NewLicense[]"), ("replace", "bool")], "void"),
    ("LicenseStore", "get_license", &[("key_id", "key_id")], "License?"),
    ("LicenseStore", "list_licenses", &[], "License[]"),
    ("LicenseStore", "remove_license", &[("key_id", "key_id")], "bool"),
    ("LicenseStore", "license_count", &[], "u64"),
    ("LicenseStore", "content_key", &[("key_id", "key_id")], "bytes"),
    ("LicenseStore", "update_rights", &[("key_id", "key_id"), ("rights", "Rights")], "void"),
    ("LicenseStore", "use_play", &[("key_id", "key_id")], "Rights"),
    ("LicenseStore", "set_catalog_entry", &[("key_id", "key_id"), ("entry", "CatalogEntry")], "void"),
    ("LicenseStore", "catalog_entry", &[("key_id", "key_id")], "CatalogEntry?"),
    ("LicenseStore", "remove_catalog_entry", &[("key_id", "key_id")], "bool"),
    ("LicenseStore", "verify", &[], "u64"),
    (
        "EmbeddedService",
        "open",
        &[("path", "string"), ("max_devices", "u32?"), ("refusal_url", "string?"), ("protector", "protector")],
        "EmbeddedService",
    ),
    ("EmbeddedService", "set_online", &[("online", "bool")], "void"),
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
    ("BackupRestorer", "restore_quota", &[], "Quota"),
    ("Operation", "wait", &[("timeout", "duration?")], "Summary"),
    ("Protector", "unprotected", &[], "protector"),
    ("Protector", "keyring", &[("service", "string?")], "protector"),
    ("Protector", "host", &[("wrap", "bytes -> bytes"), ("unwrap", "bytes -> bytes?")], "protector"),
    ("Operation", "cancel", &[], "void"),
    ("Operation", "is_finished", &[], "bool"),
];
