//! Fuzz target `service_stream`: see `harness::service_stream` (shared with core/tests/fuzz_corpus.rs).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::service_stream(data));
