//! Fuzz target `archive_reader`: see `harness::archive_reader` (shared with core/tests/fuzz_corpus.rs).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::archive_reader(data));
