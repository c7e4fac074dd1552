//! The Swift package's generated files.
//!
//! * `bindings-swift/src/generated.rs`: the uniffi crate's mirror of the error codes (Swift's
//!   `ErrorCode`, whose raw value is the stable number).

use std::fmt::Write;

use license_backup::ErrorCode;

use super::{HEADER, Output, wrap};

/// Every generated file of the Swift package.
pub fn outputs() -> Vec<Output> {
    vec![Output { path: "bindings-swift/src/generated.rs".into(), text: rust() }]
}

fn rust() -> String {
    let mut w = String::new();
    writeln!(w, "// {HEADER}").unwrap();
    w.push_str(
        "//! The uniffi crate's mirrors of the core's lists, generated from the interface definition.\n\n\
         use license_backup as core_api;\n\n",
    );
    w.push_str(
        "/// A stable error code: the same numbers (the discriminants) and symbolic names as the core's\n\
         /// `ErrorCode`. Swift sees `enum ErrorCode: UInt32`, whose raw value is the number.\n\
         #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, uniffi::Enum)]\n\
         #[repr(u32)]\n\
         pub enum ErrorCode {\n",
    );
    for code in ErrorCode::ALL {
        writeln!(w, "{}\n    {} = {},", wrap("    /// ", code.doc(), 100), code.variant_name(), code.number()).unwrap();
    }
    w.push_str(
        "}\n\nimpl ErrorCode {\n    /// Every code, in numeric order.\n    pub const ALL: &'static [ErrorCode] = &[\n",
    );
    for code in ErrorCode::ALL {
        writeln!(w, "        ErrorCode::{},", code.variant_name()).unwrap();
    }
    w.push_str(
        "    ];\n\n    /// The core's code.\n    pub fn to_core(self) -> core_api::ErrorCode {\n        match self {\n",
    );
    for code in ErrorCode::ALL {
        writeln!(w, "            ErrorCode::{0} => core_api::ErrorCode::{0},", code.variant_name()).unwrap();
    }
    w.push_str("        }\n    }\n}\n\nimpl From<core_api::ErrorCode> for ErrorCode {\n");
    w.push_str("    fn from(code: core_api::ErrorCode) -> Self {\n        match code {\n");
    for code in ErrorCode::ALL {
        writeln!(w, "            core_api::ErrorCode::{0} => ErrorCode::{0},", code.variant_name()).unwrap();
    }
    w.push_str("            // The core's enum is non-exhaustive; every code it has is listed above.\n");
    w.push_str("            _ => ErrorCode::Internal,\n        }\n    }\n}\n");
    w
}
