//! The JSON objects of `--json`: status events in the normalized form the conformance
//! scenarios compare (`tests/scenarios/README.md`) plus what people and logs want besides
//! (emission time, messages, bytes, duration), and the records `list` prints.

use license_backup::{CatalogEntry, KeyId, License, Outcome, StatusEvent};
use serde_json::{Value, json};

/// An event as a JSON line: `{"event": <kind>, <the kind's fields>, "emitted_ns": ...}`; a
/// `refused` adds `message`, an `end` adds `message`, `bytes` and `duration_ms`.
pub fn event(event: &StatusEvent, emitted_ns: u64) -> Value {
    let mut value = match event {
        StatusEvent::Begin { operation } => json!({"event": "begin", "operation": operation.name()}),
        StatusEvent::Progress { operation, done, total } => {
            json!({"event": "progress", "operation": operation.name(), "done": done, "total": total})
        }
        StatusEvent::RestrictedLicense { key_id, title } => {
            json!({"event": "restricted_license", "key_id": key_id.to_string(), "title": title})
        }
        StatusEvent::Connecting => json!({"event": "connecting"}),
        StatusEvent::Disconnecting => json!({"event": "disconnecting"}),
        StatusEvent::Refused { code, message, url } => {
            json!({"event": "refused", "code": code.name(), "url": url, "message": message})
        }
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
    };
    value["emitted_ns"] = json!(emitted_ns);
    value
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
            let mut keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
            keys.retain(|k| !["event", "emitted_ns", "message", "bytes", "duration_ms"].contains(k));
            keys.sort_unstable();
            let mut described: Vec<&str> = kind.fields().iter().map(|(name, _)| *name).collect();
            described.sort_unstable();
            assert_eq!(keys, described, "{kind:?}");
            assert_eq!((value["event"].as_str(), value["emitted_ns"].as_u64()), (Some(kind.name()), Some(7)));
        }
    }
}
