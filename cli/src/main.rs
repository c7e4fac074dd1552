//! `license-backup`: back up, restore, and inspect DRM license backups from the command line,
//! over the public API of the `license-backup` library. See `docs/cli.md`.

mod args;
mod commands;
mod exit;
mod json;
mod open;
mod reporter;
mod signals;
mod ui;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use license_backup::ErrorCode;
use serde_json::{Value, json};

use crate::args::Cli;
use crate::exit::Failure;
use crate::ui::Ui;

/// Whether `--json` is on the command line (before `--`), for reporting a usage error the
/// parser stopped at.
fn json_requested() -> bool {
    std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json")
}

/// The final summary line of `--json`.
fn summary(command: &str, fields: commands::Fields, result: &Result<(), Failure>, exit_code: u8) -> Value {
    let mut value = json!({
        "event": "summary",
        "command": command,
        "ok": result.is_ok(),
        "exit_code": exit_code,
        "error": null,
        "error_number": null,
        "message": null,
        "hint": null,
    });
    if let Err(f) = result {
        value["error"] = json!(f.code.name());
        value["error_number"] = json!(f.code.number());
        value["message"] = json!(f.message);
        value["hint"] = json!(f.hint);
    }
    let object = value.as_object_mut().expect("an object");
    for (key, field) in fields {
        object.entry(key).or_insert(field);
    }
    value
}

fn main() -> ExitCode {
    let table = exit::help_table();
    let command = Cli::command().after_help(&table).mut_subcommands(|sub| sub.after_help(&table));
    let cli = match command.try_get_matches().and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let code = u8::try_from(e.exit_code()).unwrap_or(exit::USAGE);
            if code != exit::OK && json_requested() {
                let failure = Failure::new(ErrorCode::InvalidArgument, e.kind().to_string())
                    .with_hint("see license-backup --help");
                let _ = writeln!(std::io::stdout(), "{}", summary("", commands::Fields::new(), &Err(failure), code));
            }
            return ExitCode::from(code);
        }
    };
    let ui = Ui::new(&cli.output);
    let mut fields = commands::Fields::new();
    let (name, result) = commands::run(&cli.command, &ui, &mut fields);
    let exit_code = match &result {
        Ok(()) => exit::OK,
        Err(f) => f.exit_code(),
    };
    if let Err(f) = &result {
        Ui::eprint(&ui.error_line(f));
    }
    ui.json_line(&summary(name, fields, &result, exit_code));
    ExitCode::from(exit_code)
}
