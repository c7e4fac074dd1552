//! `cargo run -p uniffi-bindgen -- generate --library <cdylib> --language swift --out-dir <dir>`:
//! the uniffi code generator, built from the same uniffi version as the bindings crate. It is a
//! workspace member but not a default member, so its `cli` feature does not slow every build.

fn main() {
    uniffi::uniffi_bindgen_main()
}
