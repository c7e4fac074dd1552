//! Writes or verifies `tests/scenarios/expanded/*.json`, the conformance scenarios expanded into
//! explicit data (see `license_backup_devtools::scenarios`).
//!
//! `lb-scenarios --write` writes them (and removes expanded files whose scenario is gone);
//! `lb-scenarios --verify` exits with status 1 when one is stale, missing or left over.

use std::process::ExitCode;

use license_backup_devtools::scenarios::{expand_all, expanded_dir};

fn main() -> ExitCode {
    let expanded = match expand_all() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot expand the scenarios: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = expanded_dir();
    let present: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let leftover: Vec<&String> =
        present.iter().filter(|p| p.ends_with(".json") && !expanded.iter().any(|(n, _)| n == *p)).collect();
    match std::env::args().nth(1).as_deref() {
        Some("--write") => {
            if let Err(e) = std::fs::create_dir_all(&dir) {
                eprintln!("cannot create {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
            for name in leftover {
                let _ = std::fs::remove_file(dir.join(name));
            }
            for (name, text) in &expanded {
                if let Err(e) = std::fs::write(dir.join(name), text) {
                    eprintln!("cannot write {name}: {e}");
                    return ExitCode::FAILURE;
                }
            }
            println!("wrote {} expanded scenarios to {}", expanded.len(), dir.display());
            ExitCode::SUCCESS
        }
        Some("--verify") => {
            let stale: Vec<&String> = expanded
                .iter()
                .filter(|(n, text)| std::fs::read_to_string(dir.join(n)).ok().as_deref() != Some(text.as_str()))
                .map(|(n, _)| n)
                .collect();
            if stale.is_empty() && leftover.is_empty() {
                println!("{} is up to date", dir.display());
                ExitCode::SUCCESS
            } else {
                eprintln!("stale: {stale:?}, left over: {leftover:?}: run `make generate`");
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!("usage: lb-scenarios --write|--verify");
            ExitCode::from(2)
        }
    }
}
