//! Fuzz target `http_response`: see `harness::http_response` (shared with core/tests/fuzz_corpus.rs).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::http_response(data));
