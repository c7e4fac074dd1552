//! `docs/reference.md`: the interface in every language side by side (error codes, status
//! events, properties, records and options with their limits), from the same definition and the
//! same naming rules the bindings' generated files use, so the tables cannot drift from them.

use std::fmt::Write;

use license_backup::interface::{Default, RECORDS, Role, Type};
use license_backup::{ErrorCode, EventKind, Property};

use super::{HEADER, Output, lower_camel, lower_first, node, python, snake, swift, upper_camel};

/// The generated reference page.
pub fn outputs() -> Vec<Output> {
    vec![Output { path: "docs/reference.md".into(), text: reference() }]
}

/// A table cell: `|` escaped, whitespace collapsed.
fn cell(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

fn code(text: &str) -> String {
    format!("`{}`", text.replace('|', "\\|"))
}

fn default_text(d: Option<Default>) -> String {
    match d {
        None => "required".into(),
        Some(Default::Bool(b)) => code(&b.to_string()),
        Some(Default::Int(n)) => code(&n.to_string()),
        Some(Default::Null) => "none".into(),
    }
}

/// A field's type and limits, as every binding checks them.
fn limits(ty: &Type) -> String {
    match ty {
        Type::Record(name) | Type::Object(name) => code(name),
        Type::List(inner) => format!("list of {}", limits(inner)),
        Type::Optional(inner) => format!("{}, optional", limits(inner)),
        other => cell(&other.expectation()),
    }
}

fn reference() -> String {
    let mut w = String::new();
    writeln!(w, "<!-- {HEADER} -->").unwrap();
    w.push_str(
        "# Interface reference\n\n\
         The interface of every binding, side by side, generated from the core's definition\n\
         ([interface.md](interface.md) says how). A value outside its limits gets `INVALID_ARGUMENT`\n\
         in every language, before it reaches the core.\n\n",
    );

    w.push_str(
        "## Error codes\n\n\
         Python raises the class (a `LicenseBackupError`), Node rejects or throws a\n\
         `LicenseBackupError` whose `code` is the name and `errno` the number, Swift throws a\n\
         `LicenseBackupError` whose `code` is the `ErrorCode` case.\n\n\
         | number | name | Python | Swift | meaning |\n|---|---|---|---|---|\n",
    );
    for &c in ErrorCode::ALL {
        writeln!(
            w,
            "| {} | {} | {} | {} | {} |",
            c.number(),
            code(c.name()),
            code(&python::class_name(c)),
            code(&format!(".{}", lower_first(c.variant_name()))),
            cell(c.description())
        )
        .unwrap();
    }

    w.push_str(
        "\n## Status events\n\n\
         Python delivers an event object to the callback (or `async for`), Node emits the event\n\
         with its payload (`restorer.on(name, payload => ...)`), Swift calls the delegate method.\n\
         Every delivered event also carries `emitted_ns` (`emittedNs` in Node and Swift).\n\n\
         | kind | Python | Node | Swift delegate | meaning |\n|---|---|---|---|---|\n",
    );
    for &kind in EventKind::ALL {
        let py_fields: Vec<String> = python::event_attributes(kind).into_iter().map(|(n, _, _)| n).collect();
        let js_fields: Vec<String> = node::js_event_fields(kind).into_iter().map(|(n, _, _)| n).collect();
        writeln!(
            w,
            "| {} | {} | {} | {} | {} |",
            code(kind.name()),
            code(&format!("{}({})", upper_camel(kind.name()), py_fields.join(", "))),
            code(&if js_fields.is_empty() {
                format!("'{}' {{}}", node::event_name(kind))
            } else {
                format!("'{}' {{ {} }}", node::event_name(kind), js_fields.join(", "))
            }),
            code(&swift::swift_method(kind)),
            cell(kind.description())
        )
        .unwrap();
    }

    w.push_str(
        "\n## Properties\n\n\
         Each is also read and set by name (`get_property` / `getProperty` / `property(_:)`);\n\
         setting nothing (`None`, `null`, `nil`) removes it.\n\n\
         | name | value | Python | Node | Swift | meaning |\n|---|---|---|---|---|---|\n",
    );
    for &prop in Property::ALL {
        writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} |",
            code(prop.name()),
            limits(&prop.spec()),
            code(&format!("restorer.{}", snake(prop.name()))),
            code(&format!("restorer.{}", lower_first(prop.name()))),
            code(&format!("restorer.{} / set{}(_:)", lower_first(prop.name()), prop.name())),
            cell(prop.description())
        )
        .unwrap();
    }

    w.push_str(
        "\n## Records and options\n\n\
         Python names a field as the first column does, Node and Swift as the second. Options are\n\
         keyword arguments in Python, an options object in Node (unknown keys rejected) and\n\
         labelled arguments in Swift.\n",
    );
    for record in RECORDS {
        let role = match record.role {
            Role::Value => "passed in and returned",
            Role::Input => "passed in",
            Role::Output => "returned",
            Role::Options => "options",
        };
        writeln!(w, "\n### {} ({role})\n\n{}\n", record.name, cell(record.doc)).unwrap();
        let output = record.role == Role::Output;
        w.push_str(if output {
            "| field | Node, Swift | type | meaning |\n|---|---|---|---|\n"
        } else {
            "| field | Node, Swift | type and limits | default | meaning |\n|---|---|---|---|---|\n"
        });
        for f in record.fields {
            if output {
                let ty = limits(&f.ty);
                writeln!(w, "| {} | {} | {ty} | {} |", code(f.name), code(&lower_camel(f.name)), cell(f.doc)).unwrap();
                continue;
            }
            writeln!(
                w,
                "| {} | {} | {} | {} | {} |",
                code(f.name),
                code(&lower_camel(f.name)),
                limits(&f.ty),
                default_text(f.default),
                cell(f.doc)
            )
            .unwrap();
        }
    }
    w
}
