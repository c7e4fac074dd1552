//! The JSON objects of `--json`: status events in the normalized form the conformance
//! scenarios compare (`tests/scenarios/README.md`) plus what people and logs want besides
//! (emission time, messages, bytes, duration), and the records `list` prints.

use license_backup::{CatalogEntry, FieldValue, KeyId, License, Outcome, StatusEvent};
use serde_json::{Value, json};

/// An event as a JSON line: `{"event": <kind>, <the kind's fields>, "emitted_ns": ...}`. Each
/// event carries its fields as the interface describes them (`EventKind::surface`: a `refused`
/// its `message` too); an `end` carries its outcome as the normalized form has it, plus
/// `message`, `bytes` and `duration_ms`.
pub fn event(event: &StatusEvent, emitted_ns: u64) -> Value {
    let mut value = match event {
        StatusEvent::End { operation, outcome } => {
            let mut value = json!({"event": "end", "operation": operation.name()});
            let fields = match outcome {
                Outcome::Completed(s) => json!({"error": null, "message": null, "licenses": s.licenses,
                    "restricted": s.restricted, "skipped": s.skipped, "bytes": s.bytes, "duration_ms": s.duration_ms}),
                // Counts are zero when it failed, as in the normalized form.
                Outcome::Failed(e) => json!({"error": e.code().name(), "message": e.message(), "licenses": 0,
                    "restricted": 0, "skipped": 0, "bytes": 0, "duration_ms": 0}),
            };
            for (k, v) in fields.as_object().expect("an object") {
                value[k] = v.clone();
            }
            value
        }
        other => {
            let mut value = json!({"event": other.kind().name()});
            for (name, field) in other.surface_values() {
                value[name] = field_value(&field);
            }
            value
        }
    };
    value["emitted_ns"] = json!(emitted_ns);
    value
}

/// A field of an event as JSON: operations and codes by name, key IDs as UUID strings.
pub fn field_value(field: &FieldValue<'_>) -> Value {
    match field {
        FieldValue::Operation(op) => json!(op.name()),
        FieldValue::Count(n) => json!(n),
        FieldValue::KeyId(k) => json!(k.to_string()),
        FieldValue::Text(t) => json!(t),
        FieldValue::OptionalText(t) => json!(t),
        FieldValue::Code(c) => json!(c.name()),
        // END is handled above; any other kind of field, by its debug form.
        other => json!(format!("{other:?}")),
    }
}

fn catalog(entry: &CatalogEntry) -> Value {
    json!({"title": entry.title, "artist": entry.artist, "file_path": entry.file_path})
}

/// A license for `list`: everything but its content key.
pub fn license(license: &License) -> Value {
    let r = &license.rights;
    json!({
        "event": "license",
        "key_id": license.key_id.to_string(),
        "rights": {"play": r.play, "burn": r.burn, "transfer": r.transfer, "backup_allowed": r.backup_allowed,
                   "expires_at": r.expires_at, "plays_remaining": r.plays_remaining},
        "issuer": license.issuer,
        "issued_at": license.issued_at,
        "catalog": license.catalog.as_ref().map(catalog),
    })
}

/// A catalog entry for `list`, and whether the store holds its license.
pub fn catalog_entry(key_id: &KeyId, entry: &CatalogEntry, licensed: bool) -> Value {
    let mut value = catalog(entry);
    value["event"] = json!("catalog_entry");
    value["key_id"] = json!(key_id.to_string());
    value["licensed"] = json!(licensed);
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use license_backup::EventKind;

    #[test]
    fn every_event_has_the_fields_the_interface_describes_and_the_extras() {
        for &kind in EventKind::ALL {
            let value = event(&StatusEvent::example(kind), 7);
            let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
            // Every field of the normalized form, and (but for END's outcome) every surface field.
            for (name, _) in kind.fields() {
                assert!(keys.contains(name), "{kind:?}: no {name}");
            }
            for field in kind.surface().iter().filter(|f| f.name != "outcome") {
                assert!(keys.contains(&field.name), "{kind:?}: no {}", field.name);
            }
            assert_eq!((value["event"].as_str(), value["emitted_ns"].as_u64()), (Some(kind.name()), Some(7)));
        }
    }
}
