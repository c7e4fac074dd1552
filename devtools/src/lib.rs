//! Development tools of license-backup, outside the shipped library: they read the core's
//! plain tables and write the files the bindings and their tests are generated and checked
//! from.
//!
//! * [`interface`]: `core/interface.json`, the machine-readable description of the interface
//!   (`lb-interface --write`, run by `make generate`).
//! * [`generate`]: the bindings' generated files (error tables, records, events, property
//!   accessors, validation tables, declarations), written by `lb-generate --write` (run by
//!   `make generate`) and checked fresh by a test.
//! * [`scenarios`]: `tests/scenarios/expanded/*.json`, the conformance scenarios with their
//!   licenses and archive damage spelled out for every runner (`lb-scenarios --write`, run by
//!   `make generate`).

#![warn(missing_docs)]

pub mod generate;
pub mod interface;
pub mod scenarios;
