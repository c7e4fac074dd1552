//! The Node package's generated files.
//!
//! * `bindings-node/generated.js` and its declarations `generated.d.ts`: the error code table.

use std::fmt::Write;

use license_backup::ErrorCode;

use super::{HEADER, Output};

/// Every generated file of the Node package.
pub fn outputs() -> Vec<Output> {
    vec![
        Output { path: "bindings-node/generated.js".into(), text: js() },
        Output { path: "bindings-node/generated.d.ts".into(), text: dts() },
    ]
}

fn js() -> String {
    let mut w = String::new();
    writeln!(w, "'use strict'\n// {HEADER}").unwrap();
    w.push_str("// The repeated parts of the package (index.js is the hand-written idiom around them).\n\n");
    w.push_str("/** Every error code: symbolic name → stable number (the core's ErrorCode). */\n");
    w.push_str("const ErrorCode = Object.freeze({\n");
    for code in ErrorCode::ALL {
        writeln!(w, "  {}: {},", code.name(), code.number()).unwrap();
    }
    w.push_str("})\n\nmodule.exports = { ErrorCode }\n");
    w
}

fn dts() -> String {
    let mut w = String::new();
    writeln!(w, "// {HEADER}").unwrap();
    w.push_str("// Declarations of generated.js (index.d.ts re-exports what the package exposes).\n\n");
    w.push_str("/** Every error code: symbolic name → stable number. */\n");
    w.push_str("export declare const ErrorCode: Readonly<{\n");
    for code in ErrorCode::ALL {
        writeln!(w, "  /** {} */\n  {}: {}", code.description(), code.name(), code.number()).unwrap();
    }
    w.push_str("}>\n\n/** A symbolic error code, such as `'BACKUP_EXISTS'`. */\n");
    w.push_str("export type ErrorCodeName = keyof typeof ErrorCode\n");
    w
}
