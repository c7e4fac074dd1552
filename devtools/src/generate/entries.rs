//! The per-operation entry points every binding generates: which operations of
//! [`OPERATIONS`] they are, and how one calls the core (shared by `python.rs`, `node.rs` and
//! `swift.rs`, which each render them in their language).
//!
//! An operation gets generated entry points when it is a method ([`Call::Method`]) that does
//! not start an asynchronous operation, its parameters are plain values (key IDs, strings,
//! booleans, integers, records, lists of records), its options (if any) map onto the core's
//! arguments through [`OPTIONS_TO_CORE`], and it is not in [`HAND_WRITTEN`]. Its core call is
//! `<object>.<name>(<arguments in order>, <options>)` returning `license_backup::Result<_>`
//! (or its value, for the few in [`INFALLIBLE`]).
//! Everything else stays idiom glue written by hand, for the reasons [`HAND_WRITTEN`] gives.

use license_backup::interface::{Call, OPERATIONS, Operation, Type};

/// Operations that fit the generated form's shape but keep hand-written entry points:
/// (object, name, why).
pub const HAND_WRITTEN: &[(&str, &str, &str)] = &[
    (
        "BackupRestorer",
        "get_property",
        "property values are each language's own idiom (Python path-likes, JavaScript numbers)",
    ),
    (
        "BackupRestorer",
        "set_property",
        "property values are each language's own idiom (Python path-likes, JavaScript numbers)",
    ),
    (
        "BackupRestorer",
        "property_by_index",
        "property values are each language's own idiom (Python returns a (name, value) tuple)",
    ),
    (
        "BackupRestorer",
        "property_count",
        "the core counts in usize, the interface in u32: Python and Swift give a native integer",
    ),
    (
        "BackupRestorer",
        "restore_quota",
        "the core's call takes restore flags, and Python names RestorePath in the error",
    ),
    ("Operation", "cancel", "the operation handle's lifetime is each language's idiom"),
    ("Operation", "wait", "waiting is each language's idiom (GIL and asyncio, Promise, Swift async)"),
];

/// Operations whose core method returns its value rather than a `Result` (it cannot fail).
pub const INFALLIBLE: &[(&str, &str)] = &[
    ("EmbeddedService", "set_online"),
    ("BackupRestorer", "remove_all_properties"),
    ("BackupRestorer", "cancel_license_backup"),
    ("BackupRestorer", "cancel_license_restore"),
];

/// Whether the core's method of `op` returns a `Result`.
pub fn fallible(op: &Operation) -> bool {
    !INFALLIBLE.contains(&(op.object, op.name))
}

/// How an options record becomes the core's last argument: (record, Rust expression over the
/// record's fields, in scope as local variables of their snake_case names).
pub const OPTIONS_TO_CORE: &[(&str, &str)] = &[("AddOptions", "license_backup::ConflictPolicy::from_replace(replace)")];

/// Whether a parameter type is a plain value a generated entry point converts.
fn plain(ty: &Type) -> bool {
    match ty {
        Type::KeyId | Type::Bool | Type::Int { .. } | Type::Text { .. } | Type::Record(_) => true,
        Type::List(inner) => matches!(inner, Type::Record(_)),
        _ => false,
    }
}

/// Why an operation keeps a hand-written entry point, or `None` when it is generated.
pub fn hand_written(op: &Operation) -> Option<&'static str> {
    if let Some((_, _, why)) = HAND_WRITTEN.iter().find(|(o, n, _)| *o == op.object && *n == op.name) {
        return Some(why);
    }
    if op.call != Call::Method {
        return Some(
            "constructors, factories and getters take host objects or are attributes of each language's own form",
        );
    }
    if op.starts {
        return Some("it starts an operation: status events and completion are each language's idiom");
    }
    if !op.params.iter().all(|p| plain(&p.ty)) {
        return Some("it takes a host object");
    }
    if op.options.is_some_and(|o| options_to_core(o).is_none()) {
        return Some("its options do not map onto the core's arguments");
    }
    None
}

/// The operations whose entry points are generated, in definition order.
pub fn generated() -> impl Iterator<Item = &'static Operation> {
    OPERATIONS.iter().filter(|op| hand_written(op).is_none())
}

/// The objects with generated entry points, in definition order.
pub fn objects() -> Vec<&'static str> {
    let mut objects: Vec<&str> = Vec::new();
    for op in generated() {
        if !objects.contains(&op.object) {
            objects.push(op.object);
        }
    }
    objects
}

/// The generated operations of `object`.
pub fn of(object: &str) -> impl Iterator<Item = &'static Operation> + '_ {
    generated().filter(move |op| op.object == object)
}

/// The core expression an options record becomes.
pub fn options_to_core(record: &str) -> Option<&'static str> {
    OPTIONS_TO_CORE.iter().find(|(r, _)| *r == record).map(|(_, e)| *e)
}

/// The core call's arguments: each parameter (a local of its name holding the core's value),
/// by reference unless it is a boolean or an integer, then the options' expression.
pub fn core_args(op: &Operation) -> String {
    let mut args: Vec<String> = op
        .params
        .iter()
        .map(|p| match p.ty {
            Type::Bool | Type::Int { .. } => p.name.to_string(),
            _ => format!("&{}", p.name),
        })
        .collect();
    if let Some(record) = op.options {
        args.push(options_to_core(record).expect("generated operations' options map onto the core").to_string());
    }
    args.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hand_written_entry_names_an_operation() {
        for (object, name, _) in HAND_WRITTEN {
            assert!(OPERATIONS.iter().any(|op| op.object == *object && op.name == *name), "{object}.{name}");
        }
    }

    #[test]
    fn every_per_language_exception_names_a_generated_operation() {
        let generated = |object: &str, name: &str| of(object).any(|op| op.name == name);
        for (object, name) in INFALLIBLE.iter().chain(crate::generate::swift::UNLABELED_FIRST) {
            assert!(generated(object, name), "{object}.{name}");
        }
        for (object, name, _) in crate::generate::node::JS_BY_HAND.iter().chain(crate::generate::swift::OVERLAY_BY_HAND)
        {
            assert!(generated(object, name), "{object}.{name}");
        }
    }

    #[test]
    fn the_store_methods_are_generated() {
        let names: Vec<&str> = of("LicenseStore").map(|op| op.name).collect();
        assert!(names.contains(&"get_license") && names.contains(&"add_licenses"), "{names:?}");
        assert!(!names.contains(&"open"));
    }
}
