//! Runs every conformance scenario in `tests/scenarios/` against the engine (the format is in
//! `tests/scenarios/README.md`). The Python, Node and Swift suites run the same files.
//!
//! `SCENARIOS_BLESS=1 cargo test --test scenarios` rewrites each file's expectations from what
//! the engine does: for writing new scenarios, whose results must then be read and checked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use license_backup::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios")
}

struct Device {
    store: Arc<LicenseStore>,
    restorer: Arc<BackupRestorer>,
}

struct Runner {
    dir: tempfile::TempDir,
    service: Arc<EmbeddedService>,
    other: Option<Arc<EmbeddedService>>,
    devices: BTreeMap<String, Device>,
    remembered: HashMap<String, String>,
    bless: bool,
    events_seen: BTreeSet<String>,
    errors_seen: BTreeSet<String>,
}

fn generated_key_id(prefix: &str, i: u64) -> KeyId {
    format!("{prefix}000000-0000-0000-0000-{i:012x}").parse().unwrap()
}

fn generated_license(prefix: &str, i: u64, restricted: bool, counted: bool) -> NewLicense {
    NewLicense {
        key_id: generated_key_id(prefix, i),
        content_key: format!("content-key-{prefix}-{i}").into_bytes(),
        rights: Rights {
            backup_allowed: !restricted,
            plays_remaining: counted.then_some(i as u32),
            ..Rights::default()
        },
        issuer: "https://issuer.example".into(),
        issued_at: 1_700_000_000 + i as i64,
    }
}

fn list(v: &Value, key: &str) -> Vec<u64> {
    v.get(key).and_then(Value::as_array).map(|a| a.iter().map(|x| x.as_u64().unwrap()).collect()).unwrap_or_default()
}

fn code_of(e: &Error) -> Value {
    Value::from(e.code().name())
}

impl Runner {
    fn new(scenario: &Value, bless: bool) -> Runner {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("backup")).unwrap();
        let mut policy = ServicePolicy::default();
        if let Some(s) = scenario.get("service") {
            if let Some(n) = s.get("max_devices").and_then(Value::as_u64) {
                policy.max_devices = n as u32;
            }
            if let Some(u) = s.get("refusal_url").and_then(Value::as_str) {
                policy.refusal_url = u.to_string();
            }
        }
        let service = Arc::new(EmbeddedService::open_with_policy(dir.path().join("service.db"), policy).unwrap());
        let mut runner = Runner {
            dir,
            service,
            other: None,
            devices: BTreeMap::new(),
            remembered: HashMap::new(),
            bless,
            events_seen: BTreeSet::new(),
            errors_seen: BTreeSet::new(),
        };
        // serde_json keeps object keys sorted; devices are created in name order.
        for (name, spec) in scenario["devices"].as_object().unwrap() {
            runner.add_device(name, spec);
        }
        runner
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn add_device(&mut self, name: &str, spec: &Value) {
        let service: Arc<dyn LicenseService> = if spec.get("service").and_then(Value::as_str) == Some("other") {
            let other = self.other.get_or_insert_with(|| {
                Arc::new(EmbeddedService::open(self.dir.path().join("other-service.db")).unwrap())
            });
            other.clone()
        } else {
            self.service.clone()
        };
        let store = Arc::new(LicenseStore::open(self.path(&format!("{name}.db"))).unwrap());
        if let Some(g) = spec.get("generate") {
            let prefix = g.get("prefix").and_then(Value::as_str).unwrap_or("5a");
            let (restricted, counted, untitled) = (list(g, "restricted"), list(g, "counted"), list(g, "untitled"));
            let count = g["count"].as_u64().unwrap();
            let licenses: Vec<NewLicense> = (1..=count)
                .map(|i| generated_license(prefix, i, restricted.contains(&i), counted.contains(&i)))
                .collect();
            store.add_licenses(&licenses, ConflictPolicy::Keep).unwrap();
            for i in (1..=count).filter(|i| !untitled.contains(i)) {
                store
                    .set_catalog_entry(&generated_key_id(prefix, i), &CatalogEntry::titled(format!("Track {i}")))
                    .unwrap();
            }
        }
        let restorer = Arc::new(create_backup_restorer(Arc::clone(&store), service));
        let backup = PropertyValue::String(self.path("backup").display().to_string());
        restorer.set_property("BackupPath", backup.clone()).unwrap();
        restorer.set_property("RestorePath", backup).unwrap();
        self.devices.insert(name.to_string(), Device { store, restorer });
    }

    fn device(&self, step: &Value) -> &Device {
        let name = step["device"].as_str().expect("step names a device");
        self.devices.get(name).unwrap_or_else(|| panic!("no device {name}"))
    }

    fn note_error(&mut self, code: &Value) {
        if let Some(c) = code.as_str() {
            self.errors_seen.insert(c.to_string());
        }
    }

    /// Compares (or, when blessing, records) one expectation.
    fn check(&mut self, step: &mut Value, key: &str, got: Value, at: &str) {
        if self.bless {
            step[key] = got;
        } else {
            assert_eq!(step.get(key).cloned().unwrap_or(Value::Null), got, "{at}: `{key}` differs");
        }
    }

    fn check_error(&mut self, step: &mut Value, got: Option<Value>, at: &str) {
        let got = got.unwrap_or(Value::Null);
        self.note_error(&got);
        if self.bless {
            if got.is_null() {
                step.as_object_mut().unwrap().remove("expect_error");
            } else {
                step["expect_error"] = got;
            }
        } else {
            assert_eq!(step.get("expect_error").cloned().unwrap_or(Value::Null), got, "{at}: error differs");
        }
    }

    fn run_operation(&mut self, step: &mut Value, at: &str) {
        let dev = self.device(step);
        let restorer = Arc::clone(&dev.restorer);
        let is_backup = step["op"] == "backup";
        let flag = |k: &str| step.get(k).and_then(Value::as_bool).unwrap_or(false);
        let opt = |k: &str| step.get(k).and_then(Value::as_u64).map(|n| n as usize);
        let (cancel_after, throw_on, reenter_on) =
            (opt("cancel_after_events"), opt("throw_on_event"), opt("reenter_on_event"));
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let reentered: Arc<Mutex<Option<Value>>> = Arc::default();
        let weak: Weak<BackupRestorer> = Arc::downgrade(&restorer);
        let (ev, re) = (Arc::clone(&events), Arc::clone(&reentered));
        let callback: Arc<dyn StatusCallback> = Arc::new(move |e: &StatusEvent| {
            let n = {
                let mut list = ev.lock().unwrap();
                list.push(e.normalized());
                list.len()
            };
            let r = weak.upgrade().expect("restorer alive");
            if cancel_after == Some(n) {
                if is_backup { r.cancel_license_backup() } else { r.cancel_license_restore() }
            }
            if reenter_on == Some(n) {
                let result = r.backup_licenses(BackupFlags::default(), Arc::new(|_: &StatusEvent| Ok(())));
                *re.lock().unwrap() = Some(match result {
                    Ok(h) => {
                        let _ = h.wait();
                        Value::Null
                    }
                    Err(e) => code_of(&e),
                });
            }
            if throw_on == Some(n) {
                return Err(CallbackError::new(format!("scenario callback throws on event {n}")));
            }
            Ok(())
        });
        let started = if is_backup {
            restorer.backup_licenses(BackupFlags { overwrite: flag("overwrite") }, callback)
        } else {
            restorer.restore_licenses(
                RestoreFlags { individualize: flag("individualize"), replace_existing: flag("replace_existing") },
                callback,
            )
        };
        let got = match started {
            Err(e) => json!({"call_error": e.code().name()}),
            Ok(handle) => {
                let error = handle.wait().err().map(|e| code_of(&e)).unwrap_or(Value::Null);
                let events = events.lock().unwrap().clone();
                let mut got = json!({"error": error, "events": events});
                if let Some(code) = reentered.lock().unwrap().clone() {
                    got["reentered_error"] = code;
                }
                got
            }
        };
        for e in got.get("events").and_then(Value::as_array).into_iter().flatten() {
            self.events_seen.insert(e["event"].as_str().unwrap().to_string());
        }
        for key in ["call_error", "error", "reentered_error"] {
            if let Some(c) = got.get(key).cloned() {
                self.note_error(&c);
            }
        }
        self.check(step, "expect", got, at);
    }

    fn damage(&self, step: &Value) {
        let path = self.path("backup").join(archive::ARCHIVE_FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap_or_default();
        let mut frames = Vec::new();
        let mut pos = archive::HEADER_LEN;
        while pos + 21 <= bytes.len() {
            frames.push(pos);
            pos += 21 + u32::from_le_bytes(bytes[pos + 17..pos + 21].try_into().unwrap()) as usize;
        }
        let position = |at: &Value| -> usize {
            let offset = at["offset"].as_u64().unwrap_or(0) as usize;
            match at["region"].as_str().unwrap() {
                "header" => offset,
                "record" => frames[at["index"].as_u64().unwrap() as usize] + offset,
                "end" => frames[frames.len() - 1] + offset,
                other => panic!("unknown region {other}"),
            }
        };
        match step["action"].as_str().unwrap() {
            "flip_byte" => bytes[position(&step["at"])] ^= 0x01,
            "truncate" => bytes.truncate(position(&step["at"])),
            "swap_records" => {
                let (a, b) = (step["a"].as_u64().unwrap() as usize, step["b"].as_u64().unwrap() as usize);
                let (a, b) = (a.min(b), a.max(b));
                let ra = bytes[frames[a]..frames[a + 1]].to_vec();
                let rb = bytes[frames[b]..frames[b + 1]].to_vec();
                let mut out = bytes[..frames[a]].to_vec();
                out.extend_from_slice(&rb);
                out.extend_from_slice(&bytes[frames[a + 1]..frames[b]]);
                out.extend_from_slice(&ra);
                out.extend_from_slice(&bytes[frames[b + 1]..]);
                bytes = out;
            }
            "append" => {
                let hex = step["hex"].as_str().unwrap();
                bytes.extend((0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()));
            }
            "set_version" => {
                bytes[8..10].copy_from_slice(&(step["version"].as_u64().unwrap() as u16).to_le_bytes());
                let digest = Sha256::digest(&bytes[..160]);
                bytes[160..176].copy_from_slice(&digest[..16]);
            }
            "delete" => {
                std::fs::remove_file(&path).unwrap();
                return;
            }
            other => panic!("unknown damage {other}"),
        }
        std::fs::write(&path, bytes).unwrap();
    }

    fn expect_store(&self, step: &Value, at: &str) {
        let dev = self.device(step);
        let licenses = dev.store.list_licenses().unwrap();
        if let Some(count) = step.get("count").and_then(Value::as_u64) {
            assert_eq!(licenses.len() as u64, count, "{at}: license count");
        }
        for want in step.get("licenses").and_then(Value::as_array).into_iter().flatten() {
            let kid: KeyId = want["key_id"].as_str().unwrap().parse().unwrap();
            let l = licenses.iter().find(|l| l.key_id == kid).unwrap_or_else(|| panic!("{at}: {kid} missing"));
            if let Some(b) = want.get("backup_allowed") {
                assert_eq!(Value::from(l.rights.backup_allowed), *b, "{at}: {kid} backup_allowed");
            }
            if let Some(p) = want.get("plays_remaining") {
                assert_eq!(json!(l.rights.plays_remaining), *p, "{at}: {kid} plays_remaining");
            }
            if let Some(t) = want.get("title") {
                assert_eq!(json!(l.catalog.as_ref().and_then(|c| c.title.clone())), *t, "{at}: {kid} title");
            }
        }
        for absent in step.get("absent").and_then(Value::as_array).into_iter().flatten() {
            let kid: KeyId = absent.as_str().unwrap().parse().unwrap();
            assert!(licenses.iter().all(|l| l.key_id != kid), "{at}: {kid} should be absent");
        }
        if let Some(other) = step.get("content_keys_match").and_then(Value::as_str) {
            let other = &self.devices[other].store;
            let mut compared = 0;
            for l in &licenses {
                if let Ok(theirs) = other.content_key(&l.key_id) {
                    assert_eq!(dev.store.content_key(&l.key_id).unwrap(), theirs, "{at}: content key of {}", l.key_id);
                    compared += 1;
                }
            }
            assert!(compared > 0, "{at}: no license in common to compare");
        }
    }

    fn run_step(&mut self, step: &mut Value, at: &str) {
        match step["op"].as_str().unwrap() {
            "backup" | "restore" => self.run_operation(step, at),
            "quota" => {
                let got = match self.device(step).restorer.restore_quota() {
                    Ok(q) => serde_json::to_value(q).unwrap(),
                    Err(e) => json!({"error": e.code().name()}),
                };
                if let Some(c) = got.get("error").cloned() {
                    self.note_error(&c);
                }
                self.check(step, "expect", got, at);
            }
            "set_property" => {
                let value = match &step["value"] {
                    Value::String(s) => PropertyValue::String(s.clone()),
                    Value::Bool(b) => PropertyValue::Bool(*b),
                    Value::Number(n) => PropertyValue::U32(n.as_u64().unwrap() as u32),
                    Value::Object(o) if o.contains_key("path") => {
                        PropertyValue::String(self.path(o["path"].as_str().unwrap()).display().to_string())
                    }
                    Value::Object(o) => PropertyValue::String(o["abs_path"].as_str().unwrap().to_string()),
                    other => panic!("{at}: bad value {other}"),
                };
                let name = step["name"].as_str().unwrap().to_string();
                let got = self.device(step).restorer.set_property(&name, value).err().map(|e| code_of(&e));
                self.check_error(step, got, at);
            }
            "remove_property" => {
                let _ = self.device(step).restorer.remove_property(step["name"].as_str().unwrap());
            }
            "damage" => self.damage(step),
            "make_file" => {
                let text = step.get("text").and_then(Value::as_str).unwrap_or("not a folder");
                std::fs::write(self.path(step["path"].as_str().unwrap()), text).unwrap();
            }
            "service_online" => self.service.set_online(step["online"].as_bool().unwrap()),
            "add_license" => {
                let prefix = step.get("prefix").and_then(Value::as_str).unwrap_or("5a");
                let restricted = step.get("restricted").and_then(Value::as_bool).unwrap_or(false);
                let replace = step.get("replace").and_then(Value::as_bool).unwrap_or(false);
                let license = generated_license(prefix, step["index"].as_u64().unwrap(), restricted, false);
                let policy = ConflictPolicy::from_replace(replace);
                let got = self.device(step).store.add_license(&license, policy).err().map(|e| code_of(&e));
                self.check_error(step, got, at);
            }
            "content_key" => {
                let kid: KeyId = step["key_id"].as_str().unwrap().parse().unwrap();
                let got = self.device(step).store.content_key(&kid).err().map(|e| code_of(&e));
                self.check_error(step, got, at);
            }
            "open_store" => {
                let got = LicenseStore::open(self.path(step["path"].as_str().unwrap())).err().map(|e| code_of(&e));
                self.check_error(step, got, at);
            }
            "remember_device_id" => {
                let name = step["device"].as_str().unwrap().to_string();
                let id = self.device(step).store.device_id().unwrap();
                self.remembered.insert(name, id);
            }
            "expect_device_id" => {
                let name = step["device"].as_str().unwrap();
                let now = self.device(step).store.device_id().unwrap();
                let changed = self.remembered[name] != now;
                assert_eq!(Value::from(changed), step["changed"], "{at}: device ID change");
            }
            "expect_store" => self.expect_store(step, at),
            other => panic!("{at}: unknown op {other}"),
        }
    }
}

#[test]
fn every_scenario_behaves_as_written() {
    let bless = std::env::var_os("SCENARIOS_BLESS").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "expected at least 15 scenarios, found {}", files.len());
    let (mut events_seen, mut errors_seen) = (BTreeSet::new(), BTreeSet::new());
    let mut reached: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut scenario: Value = serde_json::from_str(&text).unwrap();
        let stem = file.file_stem().unwrap().to_str().unwrap();
        assert_eq!(scenario["name"], stem, "{}: name must equal the file name", file.display());
        let mut runner = Runner::new(&scenario, bless);
        let steps = scenario["steps"].as_array_mut().unwrap();
        for (i, step) in steps.iter_mut().enumerate() {
            runner.run_step(step, &format!("{stem} step {i} ({})", step["op"]));
        }
        for item in runner
            .events_seen
            .iter()
            .map(|e| format!("event `{e}`"))
            .chain(runner.errors_seen.iter().map(|c| format!("error `{c}`")))
        {
            reached.entry(item).or_default().insert(stem.to_string());
        }
        events_seen.extend(runner.events_seen);
        errors_seen.extend(runner.errors_seen);
        if bless {
            let mut out = serde_json::to_string_pretty(&scenario).unwrap();
            out.push('\n');
            std::fs::write(file, out).unwrap();
        }
    }
    let mut coverage = String::from(
        "# Scenario coverage\n\nGenerated by the Rust scenario runner (`core/tests/scenarios.rs`); refresh with\n\
         `SCENARIOS_BLESS=1 cargo test -p license-backup --test scenarios`. `INTERNAL` (a bug) is\n\
         the one code no scenario can reach besides the media codes (`NO_SPACE`, `MEDIA_FAILURE`,\n\
         `DEVICE_GONE`, `NOT_READABLE`), which need a real failing device: `core/tests/media.rs`.\n\n| event or error | scenarios |\n|---|---|\n",
    );
    for (item, scenarios) in &reached {
        coverage.push_str(&format!("| {item} | {} |\n", scenarios.iter().cloned().collect::<Vec<_>>().join(", ")));
    }
    let coverage_path = scenarios_dir().join("coverage.md");
    if bless {
        std::fs::write(&coverage_path, &coverage).unwrap();
    } else {
        assert_eq!(
            std::fs::read_to_string(&coverage_path).unwrap_or_default(),
            coverage,
            "tests/scenarios/coverage.md is stale: SCENARIOS_BLESS=1 cargo test -p license-backup --test scenarios"
        );
    }
    // Every event kind, and every error code the API can produce, is reached by some scenario.
    for kind in EventKind::ALL {
        assert!(events_seen.contains(kind.name()), "no scenario reaches the {} event", kind.name());
    }
    // The media codes need a failing or full device, or a user without permission (the
    // suites run as root): `core/tests/media.rs` reaches them on real mounted images.
    let media = [ErrorCode::NoSpace, ErrorCode::MediaFailure, ErrorCode::DeviceGone, ErrorCode::NotReadable];
    for code in ErrorCode::ALL.iter().filter(|c| **c != ErrorCode::Internal && !media.contains(c)) {
        assert!(errors_seen.contains(code.name()), "no scenario reaches {}", code.name());
    }
}
