//! Helpers for running `license-backup` as a child process on real stores and folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use license_backup::*;
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_license-backup");

/// A temporary world: a service ledger, device stores and folders, made with the library.
pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    /// A world with an embedded service ledger at `service.db`.
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        EmbeddedService::open(dir.path().join("service.db")).unwrap();
        World { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The service ledger's path, as `--service` takes it.
    pub fn service(&self) -> String {
        self.path("service.db").display().to_string()
    }

    /// A folder (created).
    pub fn folder(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// A store `name.db` with `n` licenses; see [`fill`].
    pub fn store(&self, name: &str, n: u32, restricted_every: u32, titled: bool) -> PathBuf {
        let path = self.path(&format!("{name}.db"));
        let store = LicenseStore::open(&path).unwrap();
        fill(&store, n, restricted_every, titled);
        path
    }

    /// The `license-backup` command with this world's service in its environment, and
    /// nothing else from the caller's environment that changes its output.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("LICENSE_BACKUP_STORE")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("LICENSE_BACKUP_SIGNAL_GRACE_MS")
            .env("LICENSE_BACKUP_SERVICE", self.service())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the command to its end, output captured.
    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.cmd(args).output().unwrap())
    }
}

pub fn key_id(n: u32) -> KeyId {
    let mut b = [0u8; 16];
    b[12..].copy_from_slice(&n.to_be_bytes());
    b[0] = 0x5a;
    KeyId::from_bytes(b)
}

/// A content key that is easy to look for in any output.
pub fn content_key(n: u32) -> Vec<u8> {
    format!("CK-SECRET-{n:06}").into_bytes()
}

/// Adds licenses `1..=n`; every `restricted_every`-th (if non-zero) forbids backup; with
/// `titled`, each has the catalog title `Track i`.
pub fn fill(store: &LicenseStore, n: u32, restricted_every: u32, titled: bool) {
    let licenses: Vec<NewLicense> = (1..=n)
        .map(|i| NewLicense {
            key_id: key_id(i),
            content_key: content_key(i),
            rights: Rights {
                backup_allowed: restricted_every == 0 || i % restricted_every != 0,
                plays_remaining: (i % 3 == 0).then_some(i),
                ..Rights::default()
            },
            issuer: "https://issuer.example".into(),
            issued_at: 1_700_000_000 + i64::from(i),
        })
        .collect();
    for chunk in licenses.chunks(20_000) {
        store.add_licenses(chunk, ConflictPolicy::Keep).unwrap();
    }
    if titled {
        for i in 1..=n {
            store.set_catalog_entry(&key_id(i), &CatalogEntry::titled(format!("Track {i}"))).unwrap();
        }
    }
}

/// Every license of a store with its content key, for before/after comparisons.
pub fn snapshot(path: &Path) -> Vec<(License, Vec<u8>)> {
    let store = LicenseStore::open(path).unwrap();
    store
        .list_licenses()
        .unwrap()
        .into_iter()
        .map(|l| (l.clone(), store.content_key(&l.key_id).unwrap().to_vec()))
        .collect()
}

/// Files in a folder, sorted.
pub fn files_in(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(folder).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// A finished run.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().expect("exited, not killed")
    }

    pub fn stdout(&self) -> String {
        String::from_utf8(self.0.stdout.clone()).unwrap()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8(self.0.stderr.clone()).unwrap()
    }

    /// Standard output as JSON lines (every line must be one JSON object).
    pub fn json(&self) -> Vec<Value> {
        json_lines(&self.stdout())
    }

    /// The final summary object (the last JSON line).
    pub fn summary(&self) -> Value {
        let lines = self.json();
        let last = lines.last().unwrap_or_else(|| panic!("no JSON output; stderr: {}", self.stderr())).clone();
        assert_eq!(last["event"], "summary", "the last line is the summary");
        last
    }

    /// The engine's events (every JSON line but `summary`).
    pub fn events(&self) -> Vec<Value> {
        self.json().into_iter().filter(|v| v["event"] != "summary").collect()
    }

    /// Asserts the exit code, showing the output when it differs.
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(self.code(), code, "stdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr());
        self
    }
}

pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}"))).collect()
}

/// An event without what the normalized form leaves out (emission time, messages, bytes,
/// duration): what the conformance scenarios compare.
pub fn normalized(event: &Value) -> Value {
    let mut v = event.clone();
    let o = v.as_object_mut().unwrap();
    for key in ["emitted_ns", "message", "bytes", "duration_ms"] {
        o.remove(key);
    }
    v
}

/// The normalized form of an event delivered by the library, as `tests/scenarios/README.md`
/// specifies it (the same as `core/tests/common::normalized`): what the tool's JSON events are
/// compared with.
pub fn library_normalized(event: &StatusEvent) -> Value {
    use serde_json::json;
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
    // Every other event: each normalized field (EventKind::fields) is the surface field of that name.
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
