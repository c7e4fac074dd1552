//! Writes or checks the bindings' generated files (see `license_backup_devtools::generate`).
//!
//! `lb-generate --write` writes every one of them (what `make generate` runs first);
//! `lb-generate --check` exits with status 1, naming them, when one is stale or missing.

use std::process::ExitCode;

use license_backup_devtools::generate::{outputs, repo_root, stale};

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("--write") => {
            let root = repo_root();
            let all = outputs();
            for output in &all {
                let path = root.join(&output.path);
                if std::fs::read_to_string(&path).ok().as_deref() == Some(output.text.as_str()) {
                    continue;
                }
                if let Some(dir) = path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                if let Err(e) = std::fs::write(&path, &output.text) {
                    eprintln!("cannot write {}: {e}", output.path);
                    return ExitCode::FAILURE;
                }
                println!("wrote {}", output.path);
            }
            println!("lb-generate: {} generated files are up to date", all.len());
            ExitCode::SUCCESS
        }
        Some("--check") => {
            let stale = stale();
            if stale.is_empty() {
                println!("lb-generate: every generated file is up to date");
                ExitCode::SUCCESS
            } else {
                eprintln!("stale generated files (run `make generate`): {}", stale.join(", "));
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!("usage: lb-generate --write|--check");
            ExitCode::from(2)
        }
    }
}
