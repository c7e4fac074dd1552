//! The committed interface description must match the one generated from the code.

#[test]
fn committed_interface_json_is_fresh() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/interface.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let fresh = license_backup_devtools::interface::description_json();
    assert!(
        committed == fresh,
        "core/interface.json is stale; refresh it with:\n    cargo run -p license-backup-devtools --bin lb-interface -- --write\n(or `make generate`)"
    );
}
