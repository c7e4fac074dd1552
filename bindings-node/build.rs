//! Sets up linking for a Node addon.

fn main() {
    napi_build::setup();
    // On Apple platforms a dylib records its own install name (LC_ID_DYLIB); the linker's default
    // is the absolute path of the build, which differs from one checkout to the next. Node loads
    // the addon by path, so the name only identifies it: the shipped file's name under @rpath
    // (napi-rs's `license-backup.<platform>.node`; `make dist-check` compares the two).
    let vendor = std::env::var("CARGO_CFG_TARGET_VENDOR").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if vendor == "apple" && os == "macos" {
        let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default().as_str() {
            "aarch64" => "arm64",
            "x86_64" => "x64",
            _ => return,
        };
        println!("cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/license-backup.darwin-{arch}.node");
    }
}
