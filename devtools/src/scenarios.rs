//! Expands the conformance scenarios (`tests/scenarios/*.json`, format in
//! `tests/scenarios/README.md`) into explicit data, `tests/scenarios/expanded/*.json`, which
//! every runner (Rust, Python, Node, Swift) reads, so no runner computes a scenario's world or
//! its archive damage itself:
//!
//! * a device's `generate` spec becomes its `licenses` (every field, the content key in hex) and
//!   its `catalog` entries, in the order they are added;
//! * an `add_license` step gets the `license` it adds;
//! * a `damage` step gets byte offsets: `offset` (`flip_byte`), `length` (`truncate`: the bytes
//!   kept), `ranges` (`swap_records`: the two records' `[start, end)`), and `archive_len`, the
//!   length of the archive it expects to find. The offsets come from a backup of the licenses
//!   the backing-up device holds at that step, made here through the engine: record lengths do
//!   not depend on the random parts of an archive.
//!
//! Every other field is copied as it is. The Rust runner also resolves each damage position on
//! the archive it really has and checks it against the expanded offsets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use license_backup::archive::{ARCHIVE_FILE_NAME, HEADER_LEN};
use license_backup::*;
use serde_json::{Map, Value, json};

/// The folder of the scenario files.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios")
}

/// The folder of the expanded files.
pub fn expanded_dir() -> PathBuf {
    scenarios_dir().join("expanded")
}

/// A license as the expanded files give it.
#[derive(Clone)]
struct Generated {
    license: Value,
    backup_allowed: bool,
    title: Option<String>,
}

/// Generated license `i` (the table in `tests/scenarios/README.md`).
fn generated(prefix: &str, i: u64, restricted: bool, counted: bool) -> Value {
    let content_key: String = format!("content-key-{prefix}-{i}").bytes().map(|b| format!("{b:02x}")).collect();
    json!({
        "key_id": format!("{prefix}000000-0000-0000-0000-{i:012x}"),
        "content_key": content_key,
        "rights": {
            "play": true,
            "burn": true,
            "transfer": true,
            "backup_allowed": !restricted,
            "expires_at": null,
            "plays_remaining": if counted { json!(i) } else { Value::Null },
        },
        "issuer": "https://issuer.example",
        "issued_at": 1_700_000_000 + i,
    })
}

fn list(v: &Value, key: &str) -> Vec<u64> {
    v.get(key).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default()
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

fn new_license(v: &Value) -> NewLicense {
    let r = &v["rights"];
    NewLicense {
        key_id: v["key_id"].as_str().expect("key_id").parse().expect("a key ID"),
        content_key: hex_decode(v["content_key"].as_str().expect("content_key")),
        rights: Rights {
            play: r["play"].as_bool().expect("play"),
            burn: r["burn"].as_bool().expect("burn"),
            transfer: r["transfer"].as_bool().expect("transfer"),
            backup_allowed: r["backup_allowed"].as_bool().expect("backup_allowed"),
            expires_at: r["expires_at"].as_i64(),
            plays_remaining: r["plays_remaining"].as_u64().map(|n| n as u32),
        },
        issuer: v["issuer"].as_str().expect("issuer").to_string(),
        issued_at: v["issued_at"].as_i64().expect("issued_at"),
    }
}

/// The frames of the archive a backup of `licenses` writes: where each record starts (the end
/// record last), and the archive's length.
fn archive_layout(licenses: &BTreeMap<String, Generated>) -> Result<(Vec<usize>, usize), String> {
    let err = |e: Error| format!("cannot back up the expected licenses: {e}");
    let dir = std::env::temp_dir().join(format!("lb-scenarios-{}-{}", std::process::id(), monotonic_ns()));
    std::fs::create_dir_all(dir.join("backup")).map_err(|e| e.to_string())?;
    let result = (|| {
        let service: Arc<dyn LicenseService> = Arc::new(EmbeddedService::open(dir.join("service.db")).map_err(err)?);
        let store = Arc::new(LicenseStore::open(dir.join("device.db")).map_err(err)?);
        for g in licenses.values() {
            let license = new_license(&g.license);
            store.add_license(&license, ConflictPolicy::Keep).map_err(err)?;
            if let Some(title) = &g.title {
                store.set_catalog_entry(&license.key_id, &CatalogEntry::titled(title.clone())).map_err(err)?;
            }
        }
        let restorer = create_backup_restorer(store, service);
        restorer
            .set_property("BackupPath", PropertyValue::String(dir.join("backup").display().to_string()))
            .map_err(err)?;
        restorer
            .backup_licenses(BackupFlags::default(), Arc::new(|_: &StatusEvent| Ok(())))
            .map_err(err)?
            .wait()
            .map_err(err)?;
        let data = std::fs::read(dir.join("backup").join(ARCHIVE_FILE_NAME)).map_err(|e| e.to_string())?;
        Ok((frames(&data), data.len()))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Where each record of an archive starts, from its frames (`docs/archive-format.md`).
pub fn frames(data: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut pos = HEADER_LEN;
    while pos + 21 <= data.len() {
        starts.push(pos);
        pos += 21 + u32::from_le_bytes(data[pos + 17..pos + 21].try_into().expect("4 bytes")) as usize;
    }
    starts
}

/// The byte offset of a damage position (`{"region": ..., "index": ..., "offset": ...}`) in an
/// archive whose records start at `frames`.
pub fn position(at: &Value, frames: &[usize]) -> Result<usize, String> {
    let offset = at.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
    match at["region"].as_str() {
        Some("header") => Ok(offset),
        Some("record") => {
            let i = at["index"].as_u64().ok_or("a record position needs an index")? as usize;
            frames.get(i).map(|s| s + offset).ok_or_else(|| format!("no record {i}"))
        }
        Some("end") => frames.last().map(|s| s + offset).ok_or_else(|| "no end record".into()),
        other => Err(format!("unknown region {other:?}")),
    }
}

/// The explicit fields of a damage step, for an archive whose records start at `frames`.
pub fn resolve_damage(step: &Value, frames: &[usize]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    match step["action"].as_str() {
        Some("flip_byte") => {
            out.insert("offset".into(), json!(position(&step["at"], frames)?));
        }
        Some("truncate") => {
            out.insert("length".into(), json!(position(&step["at"], frames)?));
        }
        Some("swap_records") => {
            let (a, b) = (step["a"].as_u64().ok_or("a")? as usize, step["b"].as_u64().ok_or("b")? as usize);
            let (a, b) = (a.min(b), a.max(b));
            if b + 1 >= frames.len() || a == b {
                return Err(format!("cannot swap records {a} and {b}"));
            }
            out.insert("ranges".into(), json!([[frames[a], frames[a + 1]], [frames[b], frames[b + 1]]]));
        }
        Some("append" | "set_version" | "delete") => {}
        other => return Err(format!("unknown damage action {other:?}")),
    }
    Ok(out)
}

/// Expands one scenario.
pub fn expand(scenario: &Value) -> Result<Value, String> {
    let mut out = scenario.clone();
    // Each device's licenses as they are added (by key ID), while the expansion can follow them.
    let mut held: BTreeMap<String, Option<BTreeMap<String, Generated>>> = BTreeMap::new();
    let devices = out["devices"].as_object_mut().ok_or("no devices")?;
    for (name, spec) in devices.iter_mut() {
        let spec = spec.as_object_mut().ok_or("a device is an object")?;
        let mut licenses = Vec::new();
        let mut catalog = Vec::new();
        let mut mine = BTreeMap::new();
        if let Some(g) = spec.remove("generate") {
            let prefix = g.get("prefix").and_then(Value::as_str).unwrap_or("5a").to_string();
            let (restricted, counted, untitled) = (list(&g, "restricted"), list(&g, "counted"), list(&g, "untitled"));
            let count = g["count"].as_u64().ok_or("generate needs a count")?;
            for i in 1..=count {
                let license = generated(&prefix, i, restricted.contains(&i), counted.contains(&i));
                let title = (!untitled.contains(&i)).then(|| format!("Track {i}"));
                if let Some(t) = &title {
                    catalog.push(json!({"key_id": license["key_id"], "title": t, "artist": null, "file_path": null}));
                }
                let key = license["key_id"].as_str().expect("key ID").to_string();
                mine.insert(
                    key,
                    Generated { license: license.clone(), backup_allowed: !restricted.contains(&i), title },
                );
                licenses.push(license);
            }
        }
        spec.insert("licenses".into(), Value::Array(licenses));
        spec.insert("catalog".into(), Value::Array(catalog));
        held.insert(name.clone(), Some(mine));
    }
    // The licenses in the archive at each step: `None` when the expansion cannot know them.
    let mut archive: Option<Option<BTreeMap<String, Generated>>> = None;
    let mut damaged = false;
    let name = scenario["name"].as_str().unwrap_or("?").to_string();
    for (n, step) in out["steps"].as_array_mut().ok_or("no steps")?.iter_mut().enumerate() {
        let at = format!("{name} step {n}");
        let device = step.get("device").and_then(Value::as_str).map(str::to_string);
        match step["op"].as_str() {
            Some("add_license") => {
                let prefix = step.get("prefix").and_then(Value::as_str).unwrap_or("5a").to_string();
                let i = step["index"].as_u64().ok_or_else(|| format!("{at}: add_license needs an index"))?;
                let restricted = step.get("restricted").and_then(Value::as_bool).unwrap_or(false);
                let license = generated(&prefix, i, restricted, false);
                let added = step.get("expect_error").is_none_or(Value::is_null);
                let replace = step.get("replace").and_then(Value::as_bool).unwrap_or(false);
                if let Some(Some(mine)) = device.as_ref().and_then(|d| held.get_mut(d)) {
                    let key = license["key_id"].as_str().expect("key ID").to_string();
                    if added {
                        let title = mine.get(&key).and_then(|g| g.title.clone());
                        if replace || !mine.contains_key(&key) {
                            mine.insert(
                                key,
                                Generated { license: license.clone(), backup_allowed: !restricted, title },
                            );
                        }
                    }
                }
                let obj = step.as_object_mut().expect("a step is an object");
                for k in ["index", "prefix", "restricted"] {
                    obj.remove(k);
                }
                obj.insert("license".into(), license);
            }
            Some("restore") => {
                // What a restore adds depends on the service: the expansion stops following it.
                if let Some(d) = &device {
                    held.insert(d.clone(), None);
                }
            }
            Some("backup") => {
                let expect = &step["expect"];
                let succeeded = expect.get("call_error").is_none() && expect.get("error").is_some_and(Value::is_null);
                if succeeded {
                    let d = device.ok_or_else(|| format!("{at}: backup without a device"))?;
                    archive = Some(held.get(&d).cloned().flatten());
                    damaged = false;
                }
            }
            Some("damage") => {
                let action = step["action"].as_str().unwrap_or_default().to_string();
                if action != "append" && action != "delete" {
                    if damaged {
                        return Err(format!("{at}: a second damage needs a backup in between"));
                    }
                    let licenses = match &archive {
                        Some(Some(l)) => l,
                        _ => return Err(format!("{at}: cannot tell which licenses the archive holds")),
                    };
                    let kept: BTreeMap<String, Generated> = licenses
                        .iter()
                        .filter(|(_, g)| g.backup_allowed)
                        .map(|(k, g)| (k.clone(), g.clone()))
                        .collect();
                    let (frames, len) = archive_layout(&kept).map_err(|e| format!("{at}: {e}"))?;
                    let explicit = resolve_damage(step, &frames).map_err(|e| format!("{at}: {e}"))?;
                    let obj = step.as_object_mut().expect("a step is an object");
                    obj.extend(explicit);
                    obj.insert("archive_len".into(), json!(len));
                }
                damaged = action != "delete";
                if action == "delete" {
                    archive = None;
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Every scenario file's expansion: (file name, contents as written).
pub fn expand_all() -> Result<Vec<(String, String)>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .map_err(|e| e.to_string())?
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let scenario: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let expanded = expand(&scenario)?;
        let mut text = serde_json::to_string_pretty(&expanded).expect("JSON values always serialize");
        text.push('\n');
        out.push((path.file_name().expect("a file name").to_string_lossy().into_owned(), text));
    }
    Ok(out)
}
