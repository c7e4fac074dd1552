//! The fuzz targets' seed corpora and every regression input, run as ordinary tests on the
//! stable toolchain: each file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`
//! goes through the same function the cargo-fuzz target calls (`fuzz/harness.rs`).

#[path = "../../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(fuzz.join(kind).join(target)) else { continue };
        files.extend(dir.map(|e| e.unwrap().path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
}

fn run_all(target: &str, f: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no corpus for {target}");
    for path in files {
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| f(&data));
        assert!(outcome.is_ok(), "{target}: input {} fails", path.display());
    }
}

#[test]
fn archive_reader_corpus() {
    run_all("archive_reader", harness::archive_reader);
}

#[test]
fn restore_corpus() {
    run_all("restore", harness::restore);
}

#[test]
fn service_stream_corpus() {
    run_all("service_stream", harness::service_stream);
}

#[test]
fn properties_corpus() {
    run_all("properties", harness::properties);
}

#[test]
fn restorer_paths_corpus() {
    run_all("restorer_paths", harness::restorer_paths);
}

/// Writes the seed corpus (run by hand: `LB_WRITE_SEEDS=1 cargo test -p license-backup --test
/// fuzz_corpus write_seeds`); without the variable it only checks the seeds run clean.
#[test]
fn write_seeds() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (target, name, bytes) in harness::seeds() {
        if std::env::var_os("LB_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(fuzz.join(target)).unwrap();
            std::fs::write(fuzz.join(target).join(format!("seed-{name}")), &bytes).unwrap();
        }
        let f: fn(&[u8]) = match target {
            "archive_reader" => harness::archive_reader,
            "restore" => harness::restore,
            "properties" => harness::properties,
            "service_stream" => harness::service_stream,
            _ => harness::restorer_paths,
        };
        f(&bytes);
    }
}
