//! Every generated file of the bindings must be what the interface definition generates now.

#[test]
fn committed_generated_files_are_fresh() {
    let stale = license_backup_devtools::generate::stale();
    assert!(
        stale.is_empty(),
        "stale generated files: {}\nrefresh them with `make generate` (or: cargo run -p license-backup-devtools --bin lb-generate -- --write)",
        stale.join(", ")
    );
}
