//! Every file knows its kind: the store and the ledger carry their own `PRAGMA application_id`,
//! the archive its magic, and every open checks the kind before it writes anything. A file of
//! another kind, or a non-empty file that is not ours, is `WRONG_FILE_KIND` and keeps every
//! byte (checked with SHA-256 of the file and of its `-wal`/`-shm` companions).
//!
//! Also here: the path errors every backup and restore maps from the OS (`/proc`, a name too
//! long, a path through a file), without FUSE.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use license_backup::*;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

/// The SHA-256 of a file and of the SQLite companions next to it (absent ones count too).
fn fingerprint(path: &Path) -> Vec<(PathBuf, Option<[u8; 32]>)> {
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            let digest = std::fs::read(&p).ok().map(|b| Sha256::digest(&b).into());
            (p, digest)
        })
        .collect()
}

fn header_application_id(path: &Path) -> i32 {
    let bytes = std::fs::read(path).unwrap();
    i32::from_be_bytes(bytes[68..72].try_into().unwrap())
}

fn refused(what: &str, path: &Path, open: impl FnOnce(&Path) -> Result<()>) {
    let before = fingerprint(path);
    let err = open(path).expect_err(what);
    assert_eq!(err.code(), ErrorCode::WrongFileKind, "{what}: {err}");
    assert!(err.message().contains(&path.display().to_string()), "{what}: the message names the file: {err}");
    assert_eq!(fingerprint(path), before, "{what}: the file changed");
}

fn open_store(p: &Path) -> Result<()> {
    LicenseStore::open(p).map(drop)
}

fn open_ledger(p: &Path) -> Result<()> {
    EmbeddedService::open(p).map(drop)
}

#[test]
fn store_and_ledger_carry_their_kind() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("device.db");
    let ledger = dir.path().join("ledger.db");
    drop(LicenseStore::open(&store).unwrap());
    drop(EmbeddedService::open(&ledger).unwrap());
    assert_eq!(header_application_id(&store), STORE_APPLICATION_ID);
    assert_eq!(header_application_id(&ledger), LEDGER_APPLICATION_ID);
    assert_ne!(STORE_APPLICATION_ID, LEDGER_APPLICATION_ID);
    // Each opens again as itself.
    LicenseStore::open(&store).unwrap().verify().unwrap();
    EmbeddedService::open(&ledger).unwrap();
}

#[test]
fn a_file_of_another_kind_is_refused_and_unchanged() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 5, 0);
    backup(&ra, false).0.unwrap();
    let store = w.path("a.db");
    let ledger = w.path("service.db");
    let archive = archive_path(&w);
    // Kept open, as an application would while another part of it makes the mistake.
    let _service_open = &w.service;
    refused("a ledger opened as a store", &ledger, open_store);
    refused("a store opened as a ledger", &store, open_ledger);
    refused("an archive opened as a store", &archive, open_store);
    refused("an archive opened as a ledger", &archive, open_ledger);
    for (name, bytes) in [
        ("one byte", b"x".to_vec()),
        ("text", b"my notes, not a database\n".repeat(200)),
        ("a SQLite header alone", b"SQLite format 3\0".to_vec()),
    ] {
        let p = w.path(&format!("{name}.db"));
        std::fs::write(&p, &bytes).unwrap();
        refused(name, &p, open_store);
        refused(name, &p, open_ledger);
        assert_eq!(std::fs::read(&p).unwrap(), bytes);
    }
    // A FIFO is refused without being opened (opening it would block).
    let fifo = w.path("fifo.db");
    let c = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_eq!(LicenseStore::open(&fifo).unwrap_err().code(), ErrorCode::WrongFileKind);
    assert_eq!(EmbeddedService::open(&fifo).unwrap_err().code(), ErrorCode::WrongFileKind);
    // Another application's SQLite database (its own application ID, or none and its tables).
    let other = w.path("other-app.db");
    {
        let c = Connection::open(&other).unwrap();
        c.execute_batch(
            "PRAGMA application_id = 1234; CREATE TABLE songs (title TEXT); INSERT INTO songs VALUES ('x');",
        )
        .unwrap();
    }
    refused("another application's database", &other, open_store);
    refused("another application's database", &other, open_ledger);
    let plain = w.path("plain.db");
    {
        let c = Connection::open(&plain).unwrap();
        c.execute_batch("CREATE TABLE songs (title TEXT); INSERT INTO songs VALUES ('x');").unwrap();
    }
    refused("a database without application ID", &plain, open_store);
    refused("a database without application ID", &plain, open_ledger);
    // A backup and a restore that find a store where the archive should be.
    std::fs::remove_file(&archive).unwrap();
    std::fs::copy(&store, &archive).unwrap();
    let before = fingerprint(&archive);
    let (b, rb) = w.device("b");
    let (res, _) = restore(&rb, RestoreFlags::default());
    assert_eq!(res.unwrap_err().code(), ErrorCode::WrongFileKind);
    assert_eq!(rb.restore_quota().unwrap_err().code(), ErrorCode::WrongFileKind);
    let (res, _) = backup(&ra, true);
    assert_eq!(res.unwrap_err().code(), ErrorCode::WrongFileKind, "overwrite replaces archives only");
    assert_eq!(fingerprint(&archive), before);
    assert_eq!(b.license_count().unwrap(), 0);
    // A FIFO under the archive's name: neither a restore nor an overwriting backup opens it.
    std::fs::remove_file(&archive).unwrap();
    let c = std::ffi::CString::new(archive.display().to_string()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_eq!(restore(&rb, RestoreFlags::default()).0.unwrap_err().code(), ErrorCode::WrongFileKind);
    assert_eq!(backup(&ra, true).0.unwrap_err().code(), ErrorCode::WrongFileKind);
    assert_eq!(backup(&ra, false).0.unwrap_err().code(), ErrorCode::BackupExists);
}

#[test]
fn files_of_earlier_releases_are_recognised_by_their_tables() {
    let dir = tempfile::tempdir().unwrap();
    // A store and a ledger as earlier releases left them: application ID 0.
    let store = dir.path().join("old-store.db");
    let ledger = dir.path().join("old-ledger.db");
    {
        let s = LicenseStore::open(&store).unwrap();
        fill(&s, 3, 0);
    }
    drop(EmbeddedService::open(&ledger).unwrap());
    for p in [&store, &ledger] {
        let c = Connection::open(p).unwrap();
        c.execute_batch("PRAGMA application_id = 0;").unwrap();
    }
    assert_eq!(header_application_id(&store), 0);
    // The wrong kind is refused before anything is written (and migration never runs).
    refused("an old store opened as a ledger", &store, open_ledger);
    refused("an old ledger opened as a store", &ledger, open_store);
    // The right kind opens and is marked from then on.
    assert_eq!(LicenseStore::open(&store).unwrap().verify().unwrap(), 3);
    drop(EmbeddedService::open(&ledger).unwrap());
    assert_eq!(header_application_id(&store), STORE_APPLICATION_ID);
    assert_eq!(header_application_id(&ledger), LEDGER_APPLICATION_ID);
}

#[test]
fn new_and_empty_files_become_stores() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    LicenseStore::open(&empty).unwrap();
    assert_eq!(header_application_id(&empty), STORE_APPLICATION_ID);
    // A database SQLite created without tables (a crash right after the first open): adopted.
    let bare = dir.path().join("bare.db");
    Connection::open(&bare).unwrap().execute_batch("PRAGMA journal_mode = WAL; PRAGMA user_version = 0;").unwrap();
    EmbeddedService::open(&bare).unwrap();
    assert_eq!(EmbeddedService::open("").unwrap_err().code(), ErrorCode::InvalidArgument);
    assert_eq!(LicenseStore::open("").unwrap_err().code(), ErrorCode::InvalidArgument);
}

#[test]
fn a_store_replaced_by_another_kind_while_open_is_refused_by_operations() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 3, 0);
    let store_path = w.path("a.db");
    // Another program puts a ledger where the store was; the open store object still names it.
    std::fs::rename(&store_path, w.path("a-moved.db")).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", store_path.display()));
    }
    std::fs::copy(w.path("service.db"), &store_path).unwrap();
    let before = fingerprint(&store_path);
    let (res, _) = backup(&ra, true);
    assert_eq!(res.unwrap_err().code(), ErrorCode::WrongFileKind);
    assert_eq!(fingerprint(&store_path), before);
}

#[test]
fn path_errors_have_path_codes_never_storage() {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 3, 0);
    let set = |name: &str, value: String| ra.set_property(name, PropertyValue::String(value)).unwrap();
    let long = w.path(&"n".repeat(300)).display().to_string();
    let file = w.path("a-file");
    std::fs::write(&file, b"x").unwrap();
    let through_file = file.join("sub").display().to_string();
    for (folder, want) in [
        ("/proc".to_string(), ErrorCode::NotWritable),
        ("/proc/self".to_string(), ErrorCode::NotWritable),
        (long.clone(), ErrorCode::PathInvalid),
        (through_file.clone(), ErrorCode::NotAFolder),
        (w.path("missing").display().to_string(), ErrorCode::PathNotFound),
    ] {
        set("BackupPath", folder.clone());
        let (res, rec) = backup(&ra, false);
        let err = res.expect_err(&folder);
        assert_eq!(err.code(), want, "backup to {folder}: {err}");
        assert_eq!(rec.kinds(), ["begin", "end"], "{folder}: no work before the path error");
    }
    for (folder, want) in [
        (long, ErrorCode::PathInvalid),
        (through_file, ErrorCode::NotAFolder),
        ("/proc".to_string(), ErrorCode::ArchiveMissing),
    ] {
        set("RestorePath", folder.clone());
        let (res, _) = restore(&ra, RestoreFlags::default());
        assert_eq!(res.unwrap_err().code(), want, "restore from {folder}");
        assert_eq!(ra.restore_quota().unwrap_err().code(), want, "quota from {folder}");
    }
    let _ = Arc::clone(&a);
}
