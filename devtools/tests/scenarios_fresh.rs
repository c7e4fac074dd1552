//! The committed expanded scenarios must be what the expansion of the scenario files gives.

use license_backup_devtools::scenarios::{expand_all, expanded_dir};

#[test]
fn committed_expanded_scenarios_are_fresh() {
    let expanded = expand_all().unwrap();
    assert!(expanded.len() >= 20, "only {} scenarios", expanded.len());
    let dir = expanded_dir();
    let refresh = "refresh them with:\n    cargo run -p license-backup-devtools --bin lb-scenarios -- --write\n(or `make generate`)";
    for (name, text) in &expanded {
        let committed = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        assert!(committed == *text, "tests/scenarios/expanded/{name} is stale; {refresh}");
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".json") || expanded.iter().any(|(n, _)| *n == name),
            "tests/scenarios/expanded/{name} has no scenario; {refresh}"
        );
    }
}
