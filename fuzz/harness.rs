//! The bodies of the fuzz targets, shared by the cargo-fuzz binaries (`fuzz/fuzz_targets/`,
//! nightly flags) and by `core/tests/fuzz_corpus.rs`, which feeds the committed seed corpus and
//! every regression input through the very same functions in an ordinary `cargo test`.
//!
//! Each function takes arbitrary bytes and must never panic, hang or report `INTERNAL` (which is
//! how the engine reports a panic it caught on a worker thread). The checks are assertions, so
//! a violated property is a crash libFuzzer records.
//!
//! Only the core's own dependencies are used here (chacha20poly1305, hpke, sha2, getrandom,
//! tempfile), so the file compiles in both crates without `arbitrary`: inputs are decoded by
//! hand from the bytes. Archives are made with the independent writer in `writer.rs`.
#![allow(dead_code)]

#[path = "writer.rs"]
mod writer;

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use license_backup::archive::{self, RecordReader};
use license_backup::*;

/// The data key the pure-reader target seals its records with.
const FIXED_KEY: [u8; 32] = [0x42; 32];
/// The archive ID the pure-reader target binds its records to.
const FIXED_ARCHIVE_ID: [u8; 16] = [0x17; 16];
/// Longest an operation may take before the harness calls it a hang.
const HANG: Duration = Duration::from_secs(60);

/// Reads bytes off the front of the input; runs dry gracefully.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Seals records the way a writer does (docs/archive-format.md, "Records"), so the fuzzer's
/// plaintexts reach the license decoder behind the AEAD. Input: a sequence of
/// `[type][len u16][plaintext]`; a type byte with bit 7 set uses the plaintext's bytes 1..17
/// (where a license record keeps its key ID) as the frame's key ID; `end` appends a correct end
/// record.
fn seal_records(input: &mut Bytes<'_>, archive_id: &[u8; 16], key: &[u8; 32], end: bool) -> Vec<u8> {
    let mut records = Vec::new();
    while !input.is_empty() && records.len() < 64 {
        let kind = input.u8();
        let len = usize::from(input.u16() % 2048);
        let plaintext = input.take(len).to_vec();
        let mut key_id = [0u8; 16];
        if kind & 0x80 != 0 && plaintext.len() >= 17 {
            key_id.copy_from_slice(&plaintext[1..17]);
        }
        records.push(writer::Record { kind: kind & 0x7f, key_id, plaintext });
    }
    writer::seal_all(archive_id, key, &records, end)
}

/// Drains a record reader; every failure must be a clean `ARCHIVE_CORRUPT` (or an I/O error,
/// impossible over a byte slice).
fn drain(mut reader: RecordReader<&[u8]>) -> usize {
    let mut n = 0;
    loop {
        match reader.next_license() {
            Ok(Some(_)) => {
                n += 1;
                assert!(n <= 1 << 16, "a record reader that never ends");
            }
            Ok(None) => {
                assert!(matches!(reader.next_license(), Ok(None)), "the end is sticky");
                return n;
            }
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::ArchiveCorrupt, "reader error {e}");
                return n;
            }
        }
    }
}

/// Fuzz target `archive_reader`: `archive::read_header` and `RecordReader::next_license` on
/// arbitrary bytes. The first byte picks a mode: even, the rest is a raw archive (header, then
/// records read with a fixed key); odd, the rest is record plaintexts the harness seals with
/// the fixed key, so the license decoder is reached.
pub fn archive_reader(data: &[u8]) {
    let mut input = Bytes(data);
    let mode = input.u8();
    if mode & 1 == 0 {
        let raw = input.0;
        let mut r = raw;
        match archive::read_header(&mut r) {
            Ok(h) => {
                assert_eq!(raw.len() - r.len(), h.len(), "a header is as long as its version says");
                let auth = archive::parse_authenticated_header(&h.authenticated).expect("re-parse");
                assert_eq!(auth.archive_id, h.archive_id);
                drain(RecordReader::new(r, h.archive_id, &FIXED_KEY));
            }
            Err(e) => assert!(
                matches!(e.code(), ErrorCode::ArchiveCorrupt | ErrorCode::UnsupportedVersion),
                "header error {e}"
            ),
        }
        // The same bytes as records straight after a header.
        drain(RecordReader::new(raw, FIXED_ARCHIVE_ID, &FIXED_KEY));
        let _ = archive::parse_authenticated_header(raw);
    } else {
        let records = seal_records(&mut input, &FIXED_ARCHIVE_ID, &FIXED_KEY, mode & 2 != 0);
        drain(RecordReader::new(&records, FIXED_ARCHIVE_ID, &FIXED_KEY));
    }
}

/// Events of one operation, checked as they come: nothing after END.
#[derive(Default)]
struct Events {
    kinds: Mutex<Vec<EventKind>>,
}

impl Events {
    fn callback(self: &Arc<Self>) -> Arc<dyn StatusCallback> {
        let me = Arc::clone(self);
        Arc::new(move |e: &StatusEvent| {
            let mut k = me.kinds.lock().unwrap_or_else(|p| p.into_inner());
            assert!(!k.contains(&EventKind::End), "an event after END: {e:?}");
            k.push(e.kind());
            Ok(())
        })
    }

    /// Checks the operation ended with exactly one END, last, and no caught panic.
    fn check(&self, result: &Result<Summary>) {
        let k = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(k.iter().filter(|k| **k == EventKind::End).count(), 1, "exactly one END: {k:?}");
        assert_eq!(k.last(), Some(&EventKind::End));
        if let Err(e) = result {
            assert_ne!(e.code(), ErrorCode::Internal, "the engine panicked or broke an invariant: {e}");
        }
    }
}

/// Runs an operation to its end (a hang fails), checking its events.
fn run(start: impl FnOnce(Arc<dyn StatusCallback>) -> Result<OperationHandle>) -> Option<Result<Summary>> {
    let events = Arc::new(Events::default());
    let handle = match start(events.callback()) {
        Ok(h) => h,
        Err(e) => {
            assert_ne!(e.code(), ErrorCode::Internal, "{e}");
            return None;
        }
    };
    let result = handle.wait_timeout(HANG).expect("the operation hung");
    events.check(&result);
    Some(result)
}

/// A fixed world for the restore and path targets: a service, a device with a few licenses,
/// a real archive of them, and a second device to restore onto.
struct RestoreWorld {
    _dir: tempfile::TempDir,
    folder: PathBuf,
    sandbox: PathBuf,
    service: Arc<EmbeddedService>,
    service_key: [u8; 32],
    /// A device of the harness's own, which makes the archives of sealed-mode inputs.
    origin: writer::DeviceKey,
    /// The genuine archive made at start (the folder's copy is overwritten by restore inputs).
    archive: Vec<u8>,
    archive_id: [u8; 16],
    data_key: [u8; 32],
    target: Arc<LicenseStore>,
    restorer: BackupRestorer,
    source: BackupRestorer,
    lock: Mutex<()>,
}

fn world() -> &'static RestoreWorld {
    static WORLD: OnceLock<RestoreWorld> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = ServicePolicy { max_devices: u32::MAX, ..ServicePolicy::default() };
        let service = Arc::new(EmbeddedService::open_with_policy(dir.path().join("service.db"), policy).unwrap());
        let folder = dir.path().join("backup");
        let sandbox = dir.path().join("sandbox");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::create_dir_all(&sandbox).unwrap();
        let source_store = Arc::new(LicenseStore::open(dir.path().join("a.db")).unwrap());
        for i in 0..3u8 {
            source_store
                .add_license(
                    &NewLicense {
                        key_id: KeyId::from_bytes([i + 1; 16]),
                        content_key: vec![i; 16],
                        rights: Rights::default(),
                        issuer: "fuzz".into(),
                        issued_at: 1_700_000_000,
                    },
                    ConflictPolicy::Keep,
                )
                .unwrap();
        }
        let svc: Arc<dyn LicenseService> = service.clone();
        let service_key = service.public_key().unwrap();
        let source = create_backup_restorer(source_store, Arc::clone(&svc));
        source.set_property("BackupPath", PropertyValue::String(folder.display().to_string())).unwrap();
        run(|cb| source.backup_licenses(BackupFlags::default(), cb)).unwrap().unwrap();
        let path = folder.join(archive::ARCHIVE_FILE_NAME);
        let header = archive::read_header_at(&path).unwrap();
        let data_key = *service.unwrap_data_key(&header).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let target = Arc::new(LicenseStore::open(dir.path().join("b.db")).unwrap());
        let restorer = create_backup_restorer(Arc::clone(&target), svc);
        restorer.set_property("RestorePath", PropertyValue::String(folder.display().to_string())).unwrap();
        RestoreWorld {
            service: Arc::clone(&service),
            service_key,
            origin: writer::DeviceKey::generate(),
            archive: bytes,
            archive_id: header.archive_id,
            data_key,
            _dir: dir,
            folder,
            sandbox,
            target,
            restorer,
            source,
            lock: Mutex::new(()),
        }
    })
}

/// Fuzz target `restore`: a full restore, through the public `BackupRestorer`, of an archive
/// made from arbitrary bytes. First byte: bit 0 clear, the rest is the whole archive file;
/// set, records the harness seals from the fuzzer's plaintexts (bit 1: append a correct end
/// record) behind a valid header that commits to them, made by the harness's own device
/// (version 2, so the service grants the key), or naming a random origin (version 1, bit 4).
/// Bit 2 individualizes, bit 3 replaces existing licenses. A failed restore must leave the
/// store as it was and charge nothing: no reservation stays pending.
pub fn restore(data: &[u8]) {
    let w = world();
    let _guard = w.lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut input = Bytes(data);
    let mode = input.u8();
    let bytes = if mode & 1 == 0 {
        input.0.to_vec()
    } else {
        let records = seal_records(&mut input, &w.archive_id, &w.data_key, mode & 2 != 0);
        let mut bytes = if mode & 16 == 0 {
            let c = writer::commitment_of(&records);
            let o = &w.origin;
            writer::v2_header(&w.service_key, o, &o.public, &o.id(), &w.archive_id, &w.data_key, &c)
        } else {
            writer::v1_header(&w.service_key, &writer::random(), &w.archive_id, &w.data_key)
        };
        bytes.extend(records);
        bytes
    };
    std::fs::write(w.folder.join(archive::ARCHIVE_FILE_NAME), &bytes).unwrap();
    let before = w.target.list_licenses().unwrap();
    let flags = RestoreFlags { individualize: mode & 4 != 0, replace_existing: mode & 8 != 0 };
    let result = run(|cb| w.restorer.restore_licenses(flags, cb)).expect("a restore with its path set starts");
    match result {
        Ok(summary) => {
            let after = w.target.list_licenses().unwrap();
            assert!(after.len() >= before.len());
            assert!(summary.licenses <= after.len() as u64);
            if after.len() > 64 {
                for l in after {
                    w.target.remove_license(&l.key_id).unwrap();
                }
            }
        }
        Err(e) => {
            assert_eq!(w.target.list_licenses().unwrap(), before, "a failed restore ({e}) changed the store");
        }
    }
    w.target.verify().expect("the store stays consistent");
    assert_eq!(w.service.audit().unwrap().pending, 0, "every reservation is settled before END");
}

/// The fixed request of the `service_stream` target: a valid version-2 archive of
/// [`STREAM_LICENSES`] licenses made by the harness's device, and a request to restore it onto
/// a device of the harness.
struct StreamWorld {
    service: EmbeddedService,
    header: archive::ArchiveHeader,
    key_ids: Vec<KeyId>,
    device: writer::DeviceKey,
    _dir: tempfile::TempDir,
}

const STREAM_LICENSES: u8 = 8;

fn stream_world() -> &'static Mutex<StreamWorld> {
    static WORLD: OnceLock<Mutex<StreamWorld>> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = ServicePolicy { max_devices: 2, ..ServicePolicy::default() };
        let service = EmbeddedService::open_with_policy(dir.path().join("service.db"), policy).unwrap();
        let key_ids: Vec<KeyId> = (1..=STREAM_LICENSES).map(|i| KeyId::from_bytes([i; 16])).collect();
        let records: Vec<writer::Record> =
            key_ids.iter().map(|k| writer::Record::license(*k.as_bytes(), &[7; 16], None)).collect();
        let bytes = writer::v2_archive(&service.public_key().unwrap(), &writer::DeviceKey::generate(), &records);
        let header = archive::read_header(&mut bytes.as_slice()).unwrap();
        Mutex::new(StreamWorld { service, header, key_ids, device: writer::DeviceKey::generate(), _dir: dir })
    })
}

/// Fuzz target `service_stream`: the service's checks of what a device sends with a restore
/// or a quota query, against an archive that commits to its key IDs. The input edits the
/// key-ID stream (change a byte, drop, insert, swap, truncate), the license count and the
/// authenticated header, and picks the call (byte 0, bit 0: quota query). Whatever the
/// service answers, it must record nothing unless the request is exactly the archive's, and a
/// grant (then released) must be for exactly that.
pub fn service_stream(data: &[u8]) {
    let w = stream_world().lock().unwrap_or_else(|p| p.into_inner());
    let mut input = Bytes(data);
    let mode = input.u8();
    let mut key_ids = w.key_ids.clone();
    let mut header = w.header.authenticated.clone();
    let mut licenses = u64::from(STREAM_LICENSES);
    while !input.is_empty() {
        let op = input.u8();
        let at = usize::from(input.u8());
        let arg = input.u8();
        match op % 7 {
            0 if !key_ids.is_empty() => {
                let i = at % key_ids.len();
                let mut b = *key_ids[i].as_bytes();
                b[usize::from(arg) % 16] ^= 1 | arg;
                key_ids[i] = KeyId::from_bytes(b);
            }
            1 if !key_ids.is_empty() => {
                key_ids.remove(at % key_ids.len());
            }
            2 => key_ids.insert(at % (key_ids.len() + 1), KeyId::from_bytes([arg; 16])),
            3 if !key_ids.is_empty() => {
                let (i, j) = (at % key_ids.len(), usize::from(arg) % key_ids.len());
                key_ids.swap(i, j);
            }
            4 => key_ids.truncate(at),
            5 => licenses = at as u64 | u64::from(arg) << 8,
            6 => {
                let i = at % header.len();
                header[i] ^= arg | 1;
            }
            _ => {}
        }
    }
    let exact = key_ids == w.key_ids && header == w.header.authenticated && licenses == u64::from(STREAM_LICENSES);
    let request = RestoreRequest {
        request_id: writer::random(),
        header,
        wrapped_key: w.header.wrapped_key.clone(),
        device_id: w.device.id(),
        device_public_key: w.device.public,
        licenses,
        replaces: None,
    };
    let before = w.service.audit().unwrap();
    let mut stream = key_ids.iter().copied().map(Ok);
    if mode & 1 == 1 {
        match w.service.quota(&request, &mut stream) {
            Ok(q) => {
                assert!(exact, "a quota for a stream that is not the archive's: {q:?}");
                assert!(q.allowed && q.licenses == u64::from(STREAM_LICENSES));
            }
            Err(e) => {
                assert!(!exact, "the archive's own request failed: {e}");
                assert_ne!(e.code(), ErrorCode::Internal, "{e}");
            }
        }
        assert_eq!(w.service.audit().unwrap(), before, "a quota query changed the ledger");
        return;
    }
    match w.service.authorize_restore(&request, &mut stream) {
        Ok(_) => {
            assert!(exact, "a grant for a stream that is not the archive's");
            let during = w.service.audit().unwrap();
            assert_eq!((during.pending, during.placements), (before.pending + 1, before.placements + 16));
            assert_eq!(w.service.release_restore(&request.request_id).unwrap(), Settlement::Released);
            assert_eq!(w.service.release_restore(&request.request_id).unwrap(), Settlement::Released);
        }
        Err(e) => {
            assert!(!exact, "the archive's own request was refused: {e:?}");
            let e = e.into_error();
            assert_ne!(e.code(), ErrorCode::Internal, "{e}");
            let after = w.service.audit().unwrap();
            assert_eq!(
                (after.pending, after.confirmed, after.placements),
                (0, 0, 0),
                "a refused request left {after:?}"
            );
        }
    }
}

/// Fuzz target `properties`: arbitrary names and values through `Properties::set`, `get`,
/// `remove`, `get_by_index`, checked against a model of what a property set must hold.
pub fn properties(data: &[u8]) {
    let mut input = Bytes(data);
    let mut props = Properties::default();
    let mut model: Vec<(String, PropertyValue)> = Vec::new();
    while !input.is_empty() {
        let op = input.u8();
        let name = match op >> 4 {
            0 => "BackupPath".to_string(),
            1 => "RestorePath".to_string(),
            2 => "ProgressInterval".to_string(),
            _ => {
                let n = usize::from(input.u8());
                String::from_utf8_lossy(input.take(n)).into_owned()
            }
        };
        let value = match input.u8() % 3 {
            0 => {
                let n = usize::from(input.u8());
                PropertyValue::String(String::from_utf8_lossy(input.take(n)).into_owned())
            }
            1 => PropertyValue::U32(u32::from(input.u16()) * u32::from(input.u8())),
            _ => PropertyValue::Bool(input.u8() & 1 == 1),
        };
        let known = Property::from_name(&name);
        match op % 5 {
            0 | 1 => match props.set(&name, value.clone()) {
                Ok(()) => {
                    let p = known.expect("set accepted an unknown name");
                    assert_eq!(p.value_type(), value.value_type());
                    match model.iter_mut().find(|(n, _)| *n == name) {
                        Some(e) => e.1 = value.clone(),
                        None => model.push((name.clone(), value.clone())),
                    }
                    assert_eq!(props.get(&name).unwrap(), Some(value));
                }
                Err(e) => {
                    let expected = match known {
                        None => ErrorCode::UnknownProperty,
                        Some(p) if p.value_type() != value.value_type() => ErrorCode::WrongPropertyType,
                        Some(_) => ErrorCode::InvalidArgument,
                    };
                    assert_eq!(e.code(), expected, "{e}");
                    assert!(!e.message().is_empty());
                }
            },
            2 => match props.get(&name) {
                Ok(v) => assert_eq!(v, model.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())),
                Err(e) => {
                    assert!(known.is_none());
                    assert_eq!(e.code(), ErrorCode::UnknownProperty);
                }
            },
            3 => match props.remove(&name) {
                Ok(was) => {
                    let before = model.len();
                    model.retain(|(n, _)| *n != name);
                    assert_eq!(was, model.len() != before);
                }
                Err(e) => assert_eq!(e.code(), ErrorCode::UnknownProperty),
            },
            _ => {
                if op & 8 != 0 {
                    props.remove_all();
                    model.clear();
                }
            }
        }
        assert_eq!(props.count(), model.len());
        for (i, (n, v)) in model.iter().enumerate() {
            assert_eq!(props.get_by_index(i).unwrap(), (n.clone(), v.clone()));
        }
        assert_eq!(props.get_by_index(model.len()).unwrap_err().code(), ErrorCode::InvalidArgument);
    }
}

/// A fuzzer's path string made safe to back up to: relative, without `..`, inside the sandbox.
fn sandboxed(sandbox: &Path, s: &str) -> Option<PathBuf> {
    let rel = Path::new(s.trim_start_matches('/'));
    rel.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)).then(|| sandbox.join(rel))
}

/// Fuzz target `restorer_paths`: arbitrary strings as `BackupPath` / `RestorePath` of a real
/// `BackupRestorer`, then the quota query and a restore from that path as given (both only
/// read there), and a backup to the path confined to a sandbox folder (made when bit 0 of the
/// first byte is set). Nothing may panic; every started operation ends with one END.
pub fn restorer_paths(data: &[u8]) {
    let w = world();
    let _guard = w.lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut input = Bytes(data);
    let mode = input.u8();
    let split = usize::from(input.u8());
    let text = String::from_utf8_lossy(input.0).into_owned();
    let cut = (0..=split.min(text.len())).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    let (a, b) = text.split_at(cut);
    for (name, value) in [("BackupPath", a), ("RestorePath", b)] {
        for r in [&w.restorer, &w.source] {
            match r.set_property(name, PropertyValue::String(value.to_string())) {
                Ok(()) => assert_eq!(r.get_property(name).unwrap(), Some(PropertyValue::String(value.to_string()))),
                Err(e) => assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}"),
            }
        }
    }
    // Read-only uses of an arbitrary path (the restore changes only the fuzz store).
    if let Err(e) = w.restorer.restore_quota() {
        assert_ne!(e.code(), ErrorCode::Internal, "{e}");
    }
    if let Some(Err(e)) = run(|cb| w.restorer.restore_licenses(RestoreFlags::default(), cb)) {
        assert_ne!(e.code(), ErrorCode::Internal, "{e}");
    }
    // A backup writes: only inside the sandbox.
    if let Some(dest) = sandboxed(&w.sandbox, a) {
        if mode & 1 != 0 {
            let _ = std::fs::create_dir_all(&dest);
        }
        if w.source.set_property("BackupPath", PropertyValue::String(dest.display().to_string())).is_ok() {
            let overwrite = mode & 2 != 0;
            run(|cb| w.source.backup_licenses(BackupFlags { overwrite }, cb));
        }
        if mode & 4 != 0 {
            let _ = std::fs::remove_dir_all(&w.sandbox);
            let _ = std::fs::create_dir_all(&w.sandbox);
        }
    }
    // Put the world back for the restore target.
    w.restorer.set_property("RestorePath", PropertyValue::String(w.folder.display().to_string())).unwrap();
    w.source.set_property("BackupPath", PropertyValue::String(w.folder.display().to_string())).unwrap();
}

/// A license record plaintext (docs/archive-format.md, "License record plaintext").
fn license_plaintext(key_id: [u8; 16], title: Option<&str>) -> Vec<u8> {
    writer::license_plaintext(key_id, &[0xC5; 16], title)
}

/// Sealed-mode input for `seal_records`: one `[type|0x80][len][plaintext]` per plaintext.
fn sealed_input(mode: u8, plaintexts: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![mode];
    for p in plaintexts {
        v.push(0x81);
        v.extend_from_slice(&(p.len() as u16).to_le_bytes());
        v.extend_from_slice(p);
    }
    v
}

/// The seed inputs of every target, as (target, file name, bytes); written to
/// `fuzz/corpus/<target>/` by `LB_WRITE_SEEDS=1 cargo test --test fuzz_corpus write_seeds`.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let w = world();
    // Not re-read from the folder: restore inputs running in parallel overwrite that copy.
    let real = w.archive.clone();
    let lic = |n: u8, t: Option<&str>| license_plaintext([n; 16], t);
    let two = vec![lic(1, Some("Title")), lic(2, None)];
    let mut out = Vec::new();
    let mut raw = vec![0u8];
    raw.extend_from_slice(&real);
    out.push(("archive_reader", "raw-archive".into(), raw.clone()));
    out.push(("archive_reader", "raw-header".into(), raw[..=archive::HEADER_LEN].to_vec()));
    let v1 = writer::v1_archive(&w.service_key, &[9; 16], &[writer::Record::license([1; 16], &[2; 16], None)]);
    out.push(("archive_reader", "raw-v1-archive".into(), [&[0u8][..], &v1].concat()));
    out.push(("archive_reader", "raw-empty".into(), vec![0]));
    out.push(("archive_reader", "sealed-two-end".into(), sealed_input(3, &two)));
    out.push(("archive_reader", "sealed-two-noend".into(), sealed_input(1, &two)));
    out.push(("archive_reader", "sealed-empty-end".into(), vec![3]));
    out.push(("restore", "raw-archive".into(), raw));
    out.push(("restore", "sealed-two-end".into(), sealed_input(3, &two)));
    out.push(("restore", "sealed-two-end-individualize".into(), sealed_input(7, &two)));
    out.push(("restore", "sealed-two-end-replace".into(), sealed_input(11, &two)));
    out.push(("restore", "sealed-one-noend".into(), sealed_input(1, &two[..1])));
    out.push(("restore", "sealed-two-end-v1".into(), sealed_input(19, &two)));
    out.push(("restore", "raw-v1-archive".into(), [&[0u8][..], &v1].concat()));
    // service_stream: the exact request (quota, restore), then each kind of edit.
    for (name, bytes) in [
        ("exact-quota", vec![1u8]),
        ("exact-restore", vec![0]),
        ("changed", vec![0, 0, 3, 5]),
        ("shorter", vec![0, 1, 7, 0]),
        ("longer", vec![0, 2, 8, 9]),
        ("reordered", vec![0, 3, 1, 2]),
        ("truncated", vec![1, 4, 4, 0]),
        ("count", vec![0, 5, 9, 0]),
        ("header", vec![0, 6, 120, 1]),
    ] {
        out.push(("service_stream", name.into(), bytes));
    }
    out.push(("properties", "set-paths".into(), b"\x00\x00\x02/b\x10\x00\x02/r\x21\x01\x05\x00\x01".to_vec()));
    out.push((
        "properties",
        "unknown-and-remove".into(),
        b"\x30\x04Nope\x02\x01\x03\x00\x00\x01x\x04\x00\x00\x0c".to_vec(),
    ));
    out.push(("properties", "nul-and-empty".into(), b"\x00\x00\x02a\x00\x00\x00\x00\x11\x00\x00".to_vec()));
    for (name, bytes) in [
        ("plain", b"\x01\x01ab".to_vec()),
        ("nested-overwrite", b"\x03\x03x/yx/y".to_vec()),
        ("absolute-root", b"\x00\x01//".to_vec()),
        ("dotdot", b"\x01\x02....".to_vec()),
        ("nul", b"\x01\x02a\x00b\x00".to_vec()),
        ("empty", b"\x00\x00".to_vec()),
        ("not-utf8", b"\x01\x02\xff\xfe\xc3\x28".to_vec()),
    ] {
        out.push(("restorer_paths", name.into(), bytes));
    }
    out
}
