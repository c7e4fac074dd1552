//! Helpers shared by the integration tests: devices, sample licenses, recorded events.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use license_backup::*;
use serde_json::{Value, json};

#[path = "../../../fuzz/writer.rs"]
pub mod writer;

/// A temporary world: a service ledger and as many device stores as a test needs.
pub struct World {
    pub dir: tempfile::TempDir,
    pub service: Arc<EmbeddedService>,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let service = Arc::new(EmbeddedService::open(dir.path().join("service.db")).unwrap());
        World { dir, service }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn folder(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    pub fn device(&self, name: &str) -> (Arc<LicenseStore>, BackupRestorer) {
        let store = Arc::new(LicenseStore::open(self.path(&format!("{name}.db"))).unwrap());
        let service: Arc<dyn LicenseService> = self.service.clone();
        let restorer = create_backup_restorer(Arc::clone(&store), service);
        restorer
            .set_property("BackupPath", PropertyValue::String(self.folder("backup").display().to_string()))
            .unwrap();
        restorer
            .set_property("RestorePath", PropertyValue::String(self.folder("backup").display().to_string()))
            .unwrap();
        (store, restorer)
    }
}

pub fn key_id(n: u32) -> KeyId {
    let mut b = [0u8; 16];
    b[12..].copy_from_slice(&n.to_be_bytes());
    b[0] = 0x5a;
    KeyId::from_bytes(b)
}

pub fn content_key(n: u32) -> Vec<u8> {
    let mut k = b"CK-SECRET-".to_vec();
    k.extend_from_slice(format!("{n:06}").as_bytes());
    k
}

/// Adds `n` licenses; every `restricted_every`-th (if non-zero) forbids backup. All have titles.
pub fn fill(store: &LicenseStore, n: u32, restricted_every: u32) {
    let licenses: Vec<NewLicense> = (1..=n)
        .map(|i| NewLicense {
            key_id: key_id(i),
            content_key: content_key(i),
            rights: Rights {
                backup_allowed: restricted_every == 0 || i % restricted_every != 0,
                plays_remaining: if i % 3 == 0 { Some(i) } else { None },
                ..Rights::default()
            },
            issuer: "https://issuer.example".into(),
            issued_at: 1_700_000_000 + i64::from(i),
        })
        .collect();
    store.add_licenses(&licenses, ConflictPolicy::Keep).unwrap();
    for i in 1..=n {
        store.set_catalog_entry(&key_id(i), &CatalogEntry::titled(format!("Track {i}"))).unwrap();
    }
}

/// Licenses numbered `range` with the default rights and no catalog entry: what a test adds in
/// bulk when only the count matters.
pub fn plain_licenses(range: std::ops::RangeInclusive<u32>) -> Vec<NewLicense> {
    range
        .map(|i| NewLicense {
            key_id: key_id(i),
            content_key: content_key(i),
            rights: Rights::default(),
            issuer: "https://issuer.example".into(),
            issued_at: 1_700_000_000 + i64::from(i),
        })
        .collect()
}

/// A callback that records every event.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<StatusEvent>>>);

impl Recorder {
    pub fn callback(&self) -> Arc<dyn StatusCallback> {
        let events = Arc::clone(&self.0);
        Arc::new(move |e: &StatusEvent| {
            events.lock().unwrap().push(e.clone());
            Ok(())
        })
    }

    pub fn events(&self) -> Vec<StatusEvent> {
        self.0.lock().unwrap().clone()
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        self.events().iter().map(|e| e.kind().name()).collect()
    }
}

pub fn backup(r: &BackupRestorer, overwrite: bool) -> (Result<Summary>, Recorder) {
    let rec = Recorder::default();
    let res = r.backup_licenses(BackupFlags { overwrite }, rec.callback()).unwrap().wait();
    (res, rec)
}

pub fn restore(r: &BackupRestorer, flags: RestoreFlags) -> (Result<Summary>, Recorder) {
    let rec = Recorder::default();
    let res = r.restore_licenses(flags, rec.callback()).unwrap().wait();
    (res, rec)
}

pub fn archive_path(world: &World) -> PathBuf {
    world.path("backup").join(archive::ARCHIVE_FILE_NAME)
}

/// Everything the store says about its licenses, content keys included, for before/after checks.
pub fn snapshot(store: &LicenseStore) -> Vec<(License, Vec<u8>)> {
    store
        .list_licenses()
        .unwrap()
        .into_iter()
        .map(|l| {
            let k = store.content_key(&l.key_id).unwrap().to_vec();
            (l, k)
        })
        .collect()
}

pub fn read_all(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// SplitMix64: a small seeded generator, good enough to pick actions and samples.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A device ID as `LicenseStore::device_id` shows it (32 hex digits), as bytes.
pub fn hex16(hex: &str) -> [u8; 16] {
    std::array::from_fn(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
}

/// The normalized JSON form of an event that the conformance scenarios compare
/// (`tests/scenarios/README.md`): no times, byte counts, messages or random IDs, so the same
/// scenario gives the same sequence in every language.
///
/// `{"event": <kind name>, <fields of EventKind::fields, in order>}`; an `end` has
/// `"error": null` or the symbolic code, and the summary's counts (zero when it failed).
pub fn normalized(event: &StatusEvent) -> Value {
    let kind = event.kind();
    let mut out = serde_json::Map::new();
    out.insert("event".into(), json!(kind.name()));
    if let StatusEvent::End { operation, outcome } = event {
        let (error, s) = match outcome {
            Outcome::Completed(s) => (Value::Null, s.clone()),
            Outcome::Failed(e) => (Value::from(e.code().name()), Summary::default()),
        };
        out.insert("operation".into(), json!(operation.name()));
        out.insert("error".into(), error);
        out.insert("licenses".into(), json!(s.licenses));
        out.insert("restricted".into(), json!(s.restricted));
        out.insert("skipped".into(), json!(s.skipped));
        return Value::Object(out);
    }
    // Every other event: each normalized field is the surface field of that name.
    let values = event.surface_values();
    for (name, _) in kind.fields() {
        let (_, value) = values.iter().find(|(n, _)| n == name).expect("a normalized field is a surface field");
        let value = match value {
            FieldValue::Operation(op) => json!(op.name()),
            FieldValue::Count(n) => json!(n),
            FieldValue::KeyId(k) => json!(k.to_string()),
            FieldValue::Text(t) => json!(t),
            FieldValue::OptionalText(t) => json!(t),
            FieldValue::Code(c) => json!(c.name()),
            other => panic!("no normalized form of {other:?}"),
        };
        out.insert((*name).into(), value);
    }
    Value::Object(out)
}
