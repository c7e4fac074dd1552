//! The shared bad-input table (`tests/bad-inputs/`: generated from the interface definition,
//! plus hand-picked rows) run through the core's Rust API: every row a Rust value can express
//! (`"typed": true`) is rejected by the core with the row's code and changes nothing, or is
//! accepted. The bindings run the same rows (and the ones only their languages can express).

#[path = "bad_inputs/decode.rs"]
mod decode;

use std::path::Path;
use std::sync::Arc;

use license_backup::*;
use serde_json::{Value, json};

/// Why a row's value cannot be used: no form in Rust, or the core's error while parsing it.
pub enum Reject {
    /// The value has no form in the field's Rust type.
    NoForm,
    /// The core rejected it while it was parsed (a key ID).
    Error(Error),
}

impl From<Error> for Reject {
    fn from(e: Error) -> Self {
        Reject::Error(e)
    }
}

/// A Rust value from the table's JSON.
pub trait FromJson: Sized {
    fn from_json(v: &Value) -> Result<Self, Reject>;
}

impl FromJson for bool {
    fn from_json(v: &Value) -> Result<Self, Reject> {
        v.as_bool().ok_or(Reject::NoForm)
    }
}

impl FromJson for u32 {
    fn from_json(v: &Value) -> Result<Self, Reject> {
        v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or(Reject::NoForm)
    }
}

impl FromJson for i64 {
    fn from_json(v: &Value) -> Result<Self, Reject> {
        if let Some(s) = v.get("$int").and_then(Value::as_str) {
            return s.parse().map_err(|_| Reject::NoForm);
        }
        v.as_i64().ok_or(Reject::NoForm)
    }
}

impl FromJson for String {
    fn from_json(v: &Value) -> Result<Self, Reject> {
        if let Some(n) = v.get("$text").and_then(Value::as_u64) {
            return Ok("a".repeat(n as usize));
        }
        v.as_str().map(str::to_owned).ok_or(Reject::NoForm)
    }
}

impl FromJson for Vec<u8> {
    fn from_json(v: &Value) -> Result<Self, Reject> {
        v.get("$bytes").and_then(Value::as_u64).map(|n| vec![7; n as usize]).ok_or(Reject::NoForm)
    }
}

impl FromJson for KeyId {
    fn from_json(v: &Value) -> Result<Self, Reject> {
        Ok(v.as_str().ok_or(Reject::NoForm)?.parse::<KeyId>()?)
    }
}

impl FromJson for Vec<String> {
    fn from_json(v: &Value) -> Result<Self, Reject> {
        v.as_array().ok_or(Reject::NoForm)?.iter().map(String::from_json).collect()
    }
}

impl<T: FromJson> FromJson for Option<T> {
    fn from_json(v: &Value) -> Result<Self, Reject> {
        if v.is_null() { Ok(None) } else { T::from_json(v).map(Some) }
    }
}

/// Field `name` of a JSON record; left out, `default` (no default: no form).
pub fn field<T: FromJson>(v: &Value, name: &str, default: Option<T>) -> Result<T, Reject> {
    match v.get(name) {
        Some(value) => T::from_json(value),
        None => default.ok_or(Reject::NoForm),
    }
}

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bad-inputs").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Puts the row's value at its target and path in the JSON arguments.
fn put(args: &mut Value, row: &Value) {
    let target = row["target"].as_str().unwrap();
    let path: Vec<&str> = row["path"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    let mut place = &mut args[target];
    for key in &path {
        if place.is_array() {
            place = &mut place[0];
        }
        place = &mut place[*key];
    }
    *place = row["value"].clone();
}

/// A path argument (`{"$path": "rel"}` is in `root`).
fn path_of(v: &Value, root: &Path) -> Result<String, Reject> {
    match v.get("$path").and_then(Value::as_str) {
        Some(rel) => Ok(root.join(rel).display().to_string()),
        None => String::from_json(v),
    }
}

struct World {
    root: tempfile::TempDir,
    store: Arc<LicenseStore>,
    service: Arc<EmbeddedService>,
    restorer: BackupRestorer,
}

impl World {
    fn new() -> World {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("backup")).unwrap();
        let store = Arc::new(LicenseStore::open(root.path().join("device.db")).unwrap());
        let service = Arc::new(EmbeddedService::open(root.path().join("service.db")).unwrap());
        let restorer = create_backup_restorer(store.clone(), service.clone() as Arc<dyn LicenseService>);
        let backup = PropertyValue::String(root.path().join("backup").display().to_string());
        restorer.set_property("BackupPath", backup.clone()).unwrap();
        restorer.set_property("RestorePath", backup).unwrap();
        World { root, store, service, restorer }
    }
}

fn opt<T: FromJson>(options: &Value, name: &str, default: T) -> Result<T, Reject> {
    match options.get(name) {
        Some(v) if !v.is_null() => T::from_json(v),
        _ => Ok(default),
    }
}

/// Starts an operation and waits for its end: only whether the call accepts its arguments
/// counts (its outcome, here ARCHIVE_MISSING or the like, does not).
fn started(result: Result<OperationHandle>) -> Result<(), Reject> {
    let _ = result?.wait();
    Ok(())
}

/// Adds a license with this key ID (if there is none), so a call about it can succeed.
fn own(w: &World, key_id: KeyId) {
    let license = NewLicense {
        key_id,
        content_key: vec![7; 16],
        rights: Rights::default(),
        issuer: "https://issuer.example".into(),
        issued_at: 1,
    };
    let _ = w.store.add_license(&license, ConflictPolicy::Keep);
}

/// The call of `name` with the JSON arguments, in Rust.
fn call(w: &World, name: &str, a: &Value, o: &Value) -> Result<(), Reject> {
    let root = w.root.path();
    let key_id = || KeyId::from_json(&a["key_id"]);
    let policy = |o: &Value| ConflictPolicy::from_replace(opt(o, "replace", false).unwrap_or(false));
    match name {
        "LicenseStore.open" => LicenseStore::open(path_of(&a["path"], root)?).map(drop)?,
        "LicenseStore.add_license" => {
            let replace = opt(o, "replace", false)?;
            w.store.add_license(&decode::new_license(&a["license"])?, ConflictPolicy::from_replace(replace))?
        }
        "LicenseStore.add_licenses" => {
            let list = a["licenses"].as_array().ok_or(Reject::NoForm)?;
            let licenses = list.iter().map(decode::new_license).collect::<Result<Vec<_>, _>>()?;
            w.store.add_licenses(&licenses, policy(o))?
        }
        "LicenseStore.get_license" => w.store.get_license(&key_id()?).map(drop)?,
        "LicenseStore.remove_license" => w.store.remove_license(&key_id()?).map(drop)?,
        "LicenseStore.content_key" => match w.store.content_key(&key_id()?) {
            // A well-formed key ID of no license: the argument was accepted.
            Err(e) if e.code() == ErrorCode::LicenseNotFound => {}
            other => other.map(drop)?,
        },
        "LicenseStore.update_rights" => w.store.update_rights(&key_id()?, &decode::rights(&a["rights"])?)?,
        "LicenseStore.use_play" => w.store.use_play(&key_id()?).map(drop)?,
        "LicenseStore.set_catalog_entry" => {
            w.store.set_catalog_entry(&key_id()?, &decode::catalog_entry(&a["entry"])?)?
        }
        "LicenseStore.catalog_entry" => w.store.catalog_entry(&key_id()?).map(drop)?,
        "LicenseStore.remove_catalog_entry" => w.store.remove_catalog_entry(&key_id()?).map(drop)?,
        "EmbeddedService.open" => {
            let policy = ServicePolicy::with_overrides(opt(o, "max_devices", None)?, opt(o, "refusal_url", None)?);
            EmbeddedService::open_with_policy(path_of(&a["path"], root)?, policy).map(drop)?
        }
        "RemoteService.open" => {
            let seconds: Option<u32> = opt(o, "timeout", None)?;
            let options = RemoteOptions {
                token: opt(o, "token", None)?,
                ca_file: opt::<Option<String>>(o, "ca_file", None)?.map(Into::into),
                cert_pins: opt(o, "cert_pins", Vec::new())?,
                service_keys: opt(o, "service_keys", Vec::new())?,
                timeout: seconds.map(|s| std::time::Duration::from_secs(s.into())),
                retries: opt(o, "retries", None)?,
            };
            RemoteService::new(&String::from_json(&a["url"])?, options).map(drop)?
        }
        "EmbeddedService.set_online" => w.service.set_online(bool::from_json(&a["online"])?),
        "BackupRestorer.set_property" => {
            let name = String::from_json(&a["name"])?;
            let value = match &a["value"] {
                Value::String(s) => PropertyValue::String(s.clone()),
                Value::Bool(b) => PropertyValue::Bool(*b),
                v @ Value::Number(_) => PropertyValue::U32(u32::from_json(v)?),
                v if v.get("$path").is_some() => PropertyValue::String(path_of(v, root)?),
                _ => return Err(Reject::NoForm),
            };
            w.restorer.set_property(&name, value)?
        }
        "BackupRestorer.get_property" => w.restorer.get_property(&String::from_json(&a["name"])?).map(drop)?,
        "BackupRestorer.remove_property" => w.restorer.remove_property(&String::from_json(&a["name"])?).map(drop)?,
        "BackupRestorer.property_by_index" => {
            w.restorer.property_by_index(u32::from_json(&a["index"])? as usize).map(drop)?
        }
        "BackupRestorer.backup_licenses" => {
            let flags = BackupFlags { overwrite: opt(o, "overwrite", false)? };
            started(w.restorer.backup_licenses(flags, Arc::new(|_: &StatusEvent| Ok(()))))?
        }
        "BackupRestorer.restore_licenses" => {
            let flags = RestoreFlags {
                individualize: opt(o, "individualize", false)?,
                replace_existing: opt(o, "replace_existing", false)?,
            };
            started(w.restorer.restore_licenses(flags, Arc::new(|_: &StatusEvent| Ok(()))))?
        }
        "BackupRestorer.restore_quota" => {
            let flags = RestoreFlags { individualize: opt(o, "individualize", false)?, replace_existing: false };
            match w.restorer.restore_quota_with(flags) {
                // The folder holds no archive: the arguments were accepted.
                Err(e) if e.code() == ErrorCode::ArchiveMissing => {}
                other => other.map(drop)?,
            }
        }
        "EmbeddedService.audit" => w.service.audit().map(drop)?,
        // Operation::wait takes a Duration: no bad value has a form.
        "Operation.wait" => return Err(Reject::NoForm),
        other => panic!("no Rust form of {other}: add one here"),
    }
    Ok(())
}

#[test]
fn every_typed_row_is_rejected_or_accepted_as_the_table_says() {
    let generated = load("generated.json");
    let hand = load("hand-picked.json");
    let mut calls = generated["calls"].as_object().unwrap().clone();
    calls.extend(hand["calls"].as_object().unwrap().clone());
    let rows: Vec<&Value> =
        generated["rows"].as_array().unwrap().iter().chain(hand["rows"].as_array().unwrap()).collect();
    let (mut ran, mut no_form) = (0, Vec::new());
    for row in rows.iter().filter(|r| r["typed"] == json!(true)) {
        let id = row["id"].as_str().unwrap();
        let name = row["call"].as_str().unwrap();
        let mut args = calls[name]["args"].clone();
        if let Some(extra) = row.get("args").and_then(Value::as_object) {
            for (k, v) in extra {
                args[k] = v.clone();
            }
        }
        let mut options = json!({});
        if row["target"] == "options" {
            options[row["path"][0].as_str().unwrap()] = row["value"].clone();
        } else {
            put(&mut args, row);
        }
        let w = World::new();
        if matches!(name, "LicenseStore.update_rights" | "LicenseStore.use_play") {
            // A call about a license: the license is there (when the key ID is well formed).
            if let Ok(id) = KeyId::from_json(&args["key_id"]) {
                own(&w, id);
            }
        }
        let before = w.store.license_count().unwrap();
        let got = call(&w, name, &args, &options);
        match (got, row["expect"].as_str()) {
            (Ok(()), None) => {}
            (Err(Reject::Error(e)), Some(code)) => {
                assert_eq!(e.code().name(), code, "{id}: {e}");
                assert_eq!(w.store.license_count().unwrap(), before, "{id}: nothing changes");
            }
            (Err(Reject::NoForm), _) if name == "Operation.wait" => {
                no_form.push(id);
                continue;
            }
            (Err(Reject::NoForm), _) => panic!("{id}: a typed row has no form in Rust"),
            (Ok(()), Some(code)) => panic!("{id}: accepted, expected {code}"),
            (Err(Reject::Error(e)), None) => panic!("{id}: rejected with {e}, expected to be accepted"),
        }
        ran += 1;
    }
    assert!(ran > 80, "only {ran} rows ran");
    println!("bad inputs: {ran} typed rows through the Rust API ({} with no Rust form)", no_form.len());
}
