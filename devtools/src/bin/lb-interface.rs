//! Writes or verifies `core/interface.json`, the interface description.
//!
//! `lb-interface --write [PATH]` writes it; `lb-interface --verify [PATH]` exits with status 1
//! when the file is stale. PATH defaults to `core/interface.json` in the workspace.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/interface.json");
    let path = args.get(1).map(PathBuf::from).unwrap_or(default);
    let fresh = license_backup_devtools::interface::description_json();
    match args.first().map(String::as_str) {
        Some("--write") => match std::fs::write(&path, fresh) {
            Ok(()) => {
                println!("wrote {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
        Some("--verify") => {
            if std::fs::read_to_string(&path).ok().as_deref() == Some(fresh.as_str()) {
                println!("{} is up to date", path.display());
                ExitCode::SUCCESS
            } else {
                eprintln!("{} is stale: run `make generate`", path.display());
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!("usage: lb-interface --write|--verify [PATH]");
            ExitCode::from(2)
        }
    }
}
