//! `license-backup` run as a user or a script runs it: a child process on real stores, folders
//! and service ledgers, its output read from pipes.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use license_backup::archive::ARCHIVE_FILE_NAME;
use license_backup::*;
use serde_json::{Value, json};

/// The engine's events for a backup of `store` through the library, normalized.
fn library_backup_events(w: &World, store: &std::path::Path, folder: &std::path::Path, interval: u32) -> Vec<Value> {
    let service: Arc<dyn LicenseService> = Arc::new(EmbeddedService::open(w.service()).unwrap());
    let restorer = create_backup_restorer(Arc::new(LicenseStore::open(store).unwrap()), service);
    restorer.set_property("BackupPath", PropertyValue::String(folder.display().to_string())).unwrap();
    restorer.set_property("ProgressInterval", PropertyValue::U32(interval)).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let callback = Arc::new(move |e: &StatusEvent| {
        sink.lock().unwrap().push(library_normalized(e));
        Ok(())
    });
    restorer.backup_licenses(BackupFlags::default(), callback).unwrap().wait().unwrap();
    events.lock().unwrap().clone()
}

#[test]
fn backup_json_reports_the_engine_events_exactly_and_a_summary() {
    let w = World::new();
    let a = w.store("a", 25, 6, true);
    let usb = w.folder("usb");
    let run = w.run(&["backup", "--store", "a.db", "--to", "usb", "--json", "--progress-interval", "10"]);
    run.expect(0);
    assert_eq!(run.stderr(), "", "nothing for people on stderr with --json and no terminal");
    let events = run.events();
    // The same events as the library delivers for the same store and settings.
    let expected = library_backup_events(&w, &a, &w.folder("library"), 10);
    assert_eq!(events.iter().map(normalized).collect::<Vec<_>>(), expected);
    assert_eq!(events[0], json!({"event": "begin", "operation": "backup", "emitted_ns": events[0]["emitted_ns"]}));
    let restricted: Vec<&Value> = events.iter().filter(|e| e["event"] == "restricted_license").collect();
    assert_eq!(restricted.len(), 4);
    assert_eq!(restricted[0]["key_id"], key_id(6).to_string());
    assert_eq!(restricted[0]["title"], "Track 6");
    let ns: Vec<u64> = events.iter().map(|e| e["emitted_ns"].as_u64().unwrap()).collect();
    assert!(ns.windows(2).all(|p| p[0] <= p[1]), "emission times are monotonic: {ns:?}");
    let end = events.last().unwrap();
    assert_eq!(
        (end["event"].as_str(), end["error"].is_null(), end["licenses"].as_u64()),
        (Some("end"), true, Some(21))
    );
    assert!(end["bytes"].as_u64().unwrap() > 0);
    let s = run.summary();
    assert_eq!(s["command"], "backup");
    assert_eq!((s["ok"].as_bool(), s["exit_code"].as_u64(), s["error"].is_null()), (Some(true), Some(0), true));
    assert_eq!((s["licenses"].as_u64(), s["restricted"].as_u64()), (Some(21), Some(4)));
    assert_eq!(s["bytes"], end["bytes"]);
    assert_eq!(s["archive"], format!("usb/{ARCHIVE_FILE_NAME}"));
    assert_eq!(std::fs::metadata(usb.join(ARCHIVE_FILE_NAME)).unwrap().len(), s["bytes"].as_u64().unwrap());
}

#[test]
fn backup_for_people_without_a_terminal_prints_restricted_titles_and_one_summary_line() {
    let w = World::new();
    w.store("a", 12, 5, true);
    w.folder("usb");
    let run = w.run(&["backup", "--store", "a.db", "--to", "usb"]);
    run.expect(0);
    let out = run.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(
        lines[0],
        format!("RESTRICTED_LICENSE {} \"Track 5\" may not be backed up: its owner does not allow it", key_id(5))
    );
    assert!(lines[1].contains("\"Track 10\""));
    assert!(lines[2].starts_with("backed up 10 licenses to usb/licenses.lbk ("), "{}", lines[2]);
    assert!(lines[2].ends_with("; 2 restricted, left on this device)"), "{}", lines[2]);
    assert_eq!(run.stderr(), "", "no progress bar, no notice when stderr is not a terminal");
    assert!(!out.contains('\x1b'), "no escape codes when output is not a terminal");

    // --verbose: every event, as a line.
    let run = w.run(&["backup", "--store", "a.db", "--to", "usb", "--overwrite", "-v", "--progress-interval", "5"]);
    run.expect(0);
    let out = run.stdout();
    let kinds: Vec<&str> = out.lines().map(|l| l.split(' ').next().unwrap()).collect();
    let expected =
        ["BEGIN", "RESTRICTED_LICENSE", "PROGRESS", "RESTRICTED_LICENSE", "PROGRESS", "PROGRESS", "END", "backed"];
    assert_eq!(kinds, expected, "{out}");
    assert!(out.contains("PROGRESS 12/12"));

    // Colours are forced with --color always, and never drawn with --color never.
    let run = w.run(&["backup", "--store", "a.db", "--to", "usb", "--overwrite", "--color", "always"]);
    assert!(run.stdout().contains("\x1b[33mRESTRICTED_LICENSE\x1b[0m"), "{}", run.stdout());
    let run = w.run(&["restore", "--store", "a.db", "--from", "missing", "--color", "always"]);
    assert!(run.stderr().starts_with("\x1b[1;31merror:\x1b[0m"), "{}", run.stderr());
}

#[test]
fn an_existing_backup_is_refused_without_overwrite_and_left_untouched() {
    let w = World::new();
    w.store("a", 5, 0, true);
    let usb = w.folder("usb");
    w.run(&["backup", "--store", "a.db", "--to", "usb"]).expect(0);
    let archive = std::fs::read(usb.join(ARCHIVE_FILE_NAME)).unwrap();
    let run = w.run(&["backup", "--store", "a.db", "--to", "usb"]);
    run.expect(4);
    let err = run.stderr();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: BACKUP_EXISTS: "), "{err}");
    assert!(err.trim_end().ends_with("(use --overwrite)"), "{err}");
    assert_eq!(std::fs::read(usb.join(ARCHIVE_FILE_NAME)).unwrap(), archive, "the old archive is untouched");
    assert_eq!(files_in(&usb), [ARCHIVE_FILE_NAME], "no temporary file left");
    let run = w.run(&["backup", "--store", "a.db", "--to", "usb", "--json"]);
    run.expect(4);
    let s = run.summary();
    assert_eq!(
        (s["error"].as_str(), s["error_number"].as_u64(), s["exit_code"].as_u64()),
        (Some("BACKUP_EXISTS"), Some(204), Some(4))
    );
    assert_eq!(s["hint"], "use --overwrite");
    assert_eq!(run.events().last().unwrap()["error"], "BACKUP_EXISTS");
    // --overwrite replaces it.
    w.run(&["backup", "--store", "a.db", "--to", "usb", "--overwrite"]).expect(0);
    assert_ne!(std::fs::read(usb.join(ARCHIVE_FILE_NAME)).unwrap(), archive);
}

#[test]
fn restore_onto_a_new_device_brings_the_licenses_and_their_keys() {
    let w = World::new();
    let a = w.store("a", 30, 7, true);
    w.folder("usb");
    w.run(&["backup", "--store", "a.db", "--to", "usb"]).expect(0);
    // A restore onto a store that does not exist needs --create-store, and creates nothing.
    let run = w.run(&["restore", "--store", "b.db", "--from", "usb"]);
    run.expect(3);
    assert!(run.stderr().contains("PATH_NOT_FOUND: no license store at b.db"), "{}", run.stderr());
    assert!(!w.path("b.db").exists());

    let run = w.run(&[
        "restore",
        "--store",
        "b.db",
        "--from",
        "usb",
        "--create-store",
        "--json",
        "--progress-interval",
        "10",
    ]);
    run.expect(0);
    let kinds: Vec<String> = run.events().iter().map(|e| e["event"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, ["connecting", "disconnecting", "begin", "progress", "progress", "progress", "end"]);
    let s = run.summary();
    assert_eq!((s["licenses"].as_u64(), s["skipped"].as_u64()), (Some(26), Some(0)));
    let b = snapshot(&w.path("b.db"));
    let backed_up: Vec<_> = snapshot(&a).into_iter().filter(|(l, _)| l.rights.backup_allowed).collect();
    assert_eq!(b, backed_up, "every license that may be backed up, with its content key and title");
    assert_eq!(s["device_id"], LicenseStore::open(w.path("b.db")).unwrap().device_id().unwrap());

    // Again: the licenses are already there, kept; then individualized: a new identity.
    let run = w.run(&["restore", "--store", "b.db", "--from", "usb"]);
    run.expect(0);
    assert!(run.stdout().contains("restored 0 licenses from usb/licenses.lbk ("), "{}", run.stdout());
    assert!(run.stdout().contains("; 26 already on this device, kept)"), "{}", run.stdout());
    let before = LicenseStore::open(w.path("b.db")).unwrap().device_id().unwrap();
    let run = w.run(&["restore", "--store", "b.db", "--from", "usb", "--individualize", "--json"]);
    run.expect(0);
    let s = run.summary();
    assert_eq!(s["previous_device_id"], before);
    assert_ne!(s["device_id"], before);
    assert_eq!(s["device_id"], LicenseStore::open(w.path("b.db")).unwrap().device_id().unwrap());
    assert_eq!(snapshot(&w.path("b.db")), backed_up, "same licenses and keys under the new identity");
}

#[test]
fn a_refused_restore_exits_6_with_the_reason_and_changes_nothing() {
    let w = World::new();
    w.store("a", 8, 0, true);
    w.folder("usb");
    w.run(&["backup", "--store", "a.db", "--to", "usb"]).expect(0);
    let url = "https://help.example/limit";
    let policy = ["--max-devices", "1", "--refusal-url", url];

    // For people: a REFUSED line with the URL, and the error line with a hint.
    let run = w.run(&[&["restore", "--store", "b.db", "--create-store", "--from", "usb"][..], &policy].concat());
    run.expect(6);
    let out = run.stdout();
    assert!(out.starts_with("REFUSED RESTORE_LIMIT_EXCEEDED: "), "{out}");
    assert!(out.trim_end().ends_with(&format!("(see {url})")), "{out}");
    let err = run.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: RESTORE_LIMIT_EXCEEDED: "), "{err}");
    assert!(!w.path("b.db").exists(), "the store this run created is gone again");
    assert!(!w.path("b.db-wal").exists() && !w.path("b.db-shm").exists());

    // For scripts: the refused event, then END, then the summary.
    let existing = w.store("c", 2, 0, false);
    let before = snapshot(&existing);
    let run = w.run(&[&["restore", "--store", "c.db", "--from", "usb", "--json"][..], &policy].concat());
    run.expect(6);
    let events = run.events();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["connecting", "disconnecting", "refused", "end"]);
    assert_eq!((events[2]["code"].as_str(), events[2]["url"].as_str()), (Some("RESTORE_LIMIT_EXCEEDED"), Some(url)));
    assert!(events[2]["message"].as_str().unwrap().contains("maximum of 1 devices"), "{}", events[2]);
    let s = run.summary();
    assert_eq!(
        (s["error"].as_str(), s["exit_code"].as_u64(), s["ok"].as_bool()),
        (Some("RESTORE_LIMIT_EXCEEDED"), Some(6), Some(false))
    );
    assert_eq!(snapshot(&existing), before, "the existing store is unchanged");
}

#[test]
fn quota_answers_before_a_restore_and_exits_6_when_it_would_be_refused() {
    let w = World::new();
    w.store("a", 10, 0, true);
    w.store("b", 0, 0, false);
    w.folder("usb");
    w.run(&["backup", "--store", "a.db", "--to", "usb"]).expect(0);

    let run = w.run(&["quota", "--store", "b.db", "--from", "usb", "--json"]);
    run.expect(0);
    let s = run.summary();
    assert_eq!(s["allowed"], true);
    assert_eq!(
        (s["licenses"].as_u64(), s["max_devices"].as_u64(), s["restores_remaining"].as_u64()),
        (Some(10), Some(4), Some(3))
    );
    assert_eq!(s["device_already_counted"], false);
    let run = w.run(&["quota", "--store", "b.db", "--from", "usb"]);
    run.expect(0);
    assert!(run.stdout().contains("restore       allowed"), "{}", run.stdout());
    assert!(run.stdout().contains("3 more new devices may receive every license in it"), "{}", run.stdout());

    // The origin device counts already: free again, also with a new identity (it counts as the
    // identity it replaces).
    let run = w.run(&["quota", "--store", "a.db", "--from", "usb", "--max-devices", "1", "--json"]);
    run.expect(0);
    assert_eq!(
        (run.summary()["device_already_counted"].as_bool(), run.summary()["allowed"].as_bool()),
        (Some(true), Some(true))
    );
    let run = w.run(&["quota", "--store", "a.db", "--from", "usb", "--max-devices", "1", "--individualize", "--json"]);
    run.expect(0);
    assert_eq!(
        (run.summary()["device_already_counted"].as_bool(), run.summary()["allowed"].as_bool()),
        (Some(true), Some(true))
    );
    let run = w.run(&["quota", "--store", "b.db", "--from", "usb", "--max-devices", "1"]);
    run.expect(6);
    assert!(run.stdout().contains("restore       would be refused"), "{}", run.stdout());
    assert!(run.stderr().starts_with("error: RESTORE_LIMIT_EXCEEDED: a restore onto this device would be refused"));

    // Asking changed nothing: the restore the quota allowed still goes through, and counts.
    w.run(&["restore", "--store", "b.db", "--from", "usb"]).expect(0);
    let run = w.run(&["quota", "--store", "b.db", "--from", "usb", "--json"]);
    assert_eq!(
        (run.summary()["restores_remaining"].as_u64(), run.summary()["device_already_counted"].as_bool()),
        (Some(2), Some(true))
    );
}

#[test]
fn inspect_shows_the_header_and_locates_damage_without_any_key() {
    let w = World::new();
    w.store("a", 6, 3, true);
    let usb = w.folder("usb");
    w.run(&["backup", "--store", "a.db", "--to", "usb"]).expect(0);
    let archive = usb.join(ARCHIVE_FILE_NAME);
    let good = std::fs::read(&archive).unwrap();
    let header = archive::read_header_at(&archive).unwrap();
    let device = LicenseStore::open(w.path("a.db")).unwrap().device_id().unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();

    let run = w.run(&["inspect", "usb", "--json"]);
    run.expect(0);
    let s = run.summary();
    assert_eq!(s["command"], "inspect");
    assert_eq!(
        (s["licenses"].as_u64(), s["intact"].as_bool(), s["format_version"].as_u64()),
        (Some(4), Some(true), Some(2))
    );
    assert_eq!(s["origin_device"], device, "the device the backup was made on, as `list` shows it");
    assert_eq!(s["archive_id"], hex(&header.archive_id));
    assert_eq!(s["service_key_fingerprint"], hex(&header.service_key_fingerprint));
    assert_eq!(s["created_at"], header.created_at);
    assert_eq!(s["size"], good.len());
    assert_eq!(s["damage"], Value::Null);
    assert_eq!(run.events(), Vec::<Value>::new());
    let run = w.run(&["inspect", archive.to_str().unwrap()]);
    run.expect(0);
    assert!(run.stdout().contains(&format!("made on       device {device}, ")), "{}", run.stdout());
    assert!(run.stdout().contains("framing       4 license records, then the end record: intact"), "{}", run.stdout());

    // A record's frame damaged: located; a restore refuses it before the service is asked.
    let mut bad = good.clone();
    let second = archive::HEADER_LEN
        + 21
        + u32::from_le_bytes(good[archive::HEADER_LEN + 17..archive::HEADER_LEN + 21].try_into().unwrap()) as usize;
    bad[second] = 9;
    std::fs::write(&archive, &bad).unwrap();
    let run = w.run(&["inspect", "usb", "--json"]);
    run.expect(5);
    let s = run.summary();
    assert_eq!(
        (s["intact"].as_bool(), s["licenses"].as_u64(), s["error"].as_str()),
        (Some(false), Some(1), Some("ARCHIVE_CORRUPT"))
    );
    assert_eq!(s["damage"]["offset"], second);
    assert_eq!(s["damage"]["record"], 1);
    assert!(run.stderr().contains(&format!("unknown record type 9 (at byte {second}, record 1)")), "{}", run.stderr());
    let b = w.store("b", 1, 0, false);
    let before = snapshot(&b);
    let run = w.run(&["restore", "--store", "b.db", "--from", "usb", "--json"]);
    run.expect(5);
    assert_eq!(run.summary()["error"], "ARCHIVE_CORRUPT");
    assert!(!run.events().iter().any(|e| e["event"] == "connecting"), "refused before connecting");
    assert_eq!(snapshot(&b), before);

    // Damage inside a ciphertext keeps the framing, but not the record digest the header commits
    // to: inspect finds it without any key (not where), and the restore before connecting.
    let mut bad = good.clone();
    bad[second - 5] ^= 0x40;
    std::fs::write(&archive, &bad).unwrap();
    let run = w.run(&["inspect", "usb", "--json"]);
    run.expect(5);
    let s = run.summary();
    assert_eq!((s["intact"].as_bool(), s["licenses"].as_u64()), (Some(false), Some(4)));
    assert_eq!(s["damage"]["offset"], archive::HEADER_LEN);
    let run = w.run(&["restore", "--store", "b.db", "--from", "usb", "--json"]);
    run.expect(5);
    assert_eq!(run.summary()["error"], "ARCHIVE_CORRUPT");
    assert!(!run.events().iter().any(|e| e["event"] == "connecting"), "refused before connecting");
    assert_eq!(snapshot(&b), before);

    // Truncated, missing, not an archive.
    std::fs::write(&archive, &good[..good.len() - 10]).unwrap();
    w.run(&["inspect", "usb"]).expect(5);
    std::fs::write(&archive, b"not an archive at all").unwrap();
    let run = w.run(&["inspect", "usb"]);
    run.expect(3);
    assert!(run.stderr().contains("WRONG_FILE_KIND"), "{}", run.stderr());
    let run = w.run(&["inspect", "nowhere"]);
    run.expect(5);
    assert!(run.stderr().starts_with("error: ARCHIVE_MISSING: "), "{}", run.stderr());
}

#[test]
fn list_shows_licenses_and_catalog_but_never_a_content_key() {
    let w = World::new();
    let a = w.store("a", 5, 2, true);
    let store = LicenseStore::open(&a).unwrap();
    let orphan = KeyId::from_bytes([0xab; 16]);
    store
        .set_catalog_entry(
            &orphan,
            &CatalogEntry { title: Some("Evil \x1b[2J title".into()), artist: Some("Band".into()), file_path: None },
        )
        .unwrap();
    store
        .set_catalog_entry(
            &key_id(1),
            &CatalogEntry {
                title: Some("Track 1".into()),
                artist: Some("Artist".into()),
                file_path: Some("/m/1.wma".into()),
            },
        )
        .unwrap();
    drop(store);

    let run = w.run(&["list", "--store", "a.db", "--json"]);
    run.expect(0);
    let out = run.stdout();
    assert!(!out.contains("CK-SECRET"), "no content key in the output");
    let lines = run.json();
    let licenses: Vec<&Value> = lines.iter().filter(|v| v["event"] == "license").collect();
    assert_eq!(licenses.len(), 5);
    assert_eq!(licenses[0]["key_id"], key_id(1).to_string());
    assert_eq!(licenses[0]["rights"]["backup_allowed"], true);
    assert_eq!(licenses[1]["rights"]["backup_allowed"], false);
    assert_eq!(licenses[2]["rights"]["plays_remaining"], 3);
    assert_eq!(licenses[0]["catalog"], json!({"title": "Track 1", "artist": "Artist", "file_path": "/m/1.wma"}));
    let catalog: Vec<&Value> = lines.iter().filter(|v| v["event"] == "catalog_entry").collect();
    assert_eq!(catalog.len(), 6);
    let last = catalog.last().unwrap();
    assert_eq!((last["key_id"].as_str(), last["licensed"].as_bool()), (Some(orphan.to_string().as_str()), Some(false)));
    let s = run.summary();
    assert_eq!(
        (s["licenses"].as_u64(), s["restricted"].as_u64(), s["catalog_entries"].as_u64()),
        (Some(5), Some(2), Some(6))
    );

    let run = w.run(&["list", "--store", "a.db"]);
    run.expect(0);
    let out = run.stdout();
    assert!(out.contains(&format!("{}  \"Track 1\" by Artist  backup,play,burn,transfer", key_id(1))), "{out}");
    assert!(out.contains(&format!("{}  \"Track 2\"  NO-BACKUP,play,burn,transfer", key_id(2))), "{out}");
    assert!(out.contains("catalog entries without a license on this device:"), "{out}");
    assert!(out.contains("\"Evil \\u{1b}[2J title\" by Band"), "control characters are escaped: {out}");
    assert!(!out.contains('\x1b'));
    assert!(out.trim_end().ends_with("5 licenses (2 may not be backed up), 6 catalog entries"), "{out}");
}

#[test]
fn verify_checks_the_store_and_fails_on_a_damaged_one() {
    let w = World::new();
    let a = w.store("a", 300, 0, false);
    let run = w.run(&["verify", "--store", "a.db", "--json"]);
    run.expect(0);
    assert_eq!(run.summary()["licenses"], 300);
    // Overwrite the last page of the database file past its first 100 bytes (the store is
    // closed and checkpointed; the last page is a table's leaf, whose cells fill the end of the
    // page), whatever the file's page size: the integrity check fails.
    let mut bytes = std::fs::read(&a).unwrap();
    let page = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65536,
        n => usize::from(n),
    };
    assert!(bytes.len() >= 3 * page && bytes.len() % page == 0, "{} bytes, {page}-byte pages", bytes.len());
    let last = bytes.len() - page;
    bytes[last + 100..].fill(0x55);
    std::fs::write(&a, &bytes).unwrap();
    let run = w.run(&["verify", "--store", "a.db"]);
    run.expect(8);
    assert!(run.stderr().starts_with("error: STORAGE: "), "{}", run.stderr());
}

#[test]
fn missing_stores_and_services_are_errors_and_nothing_is_created_by_mistake() {
    let w = World::new();
    w.store("a", 3, 0, false);
    w.folder("usb");
    let run = w.run(&["backup", "--store", "typo.db", "--to", "usb"]);
    run.expect(3);
    assert!(!w.path("typo.db").exists(), "no empty store created");
    assert_eq!(files_in(&w.path("usb")), Vec::<String>::new());

    let run = w.run(&["backup", "--store", "a.db", "--to", "usb", "--service", "other.db"]);
    run.expect(7);
    assert!(run.stderr().starts_with("error: SERVICE_UNAVAILABLE: no License Management Service ledger at other.db ("));
    assert!(!w.path("other.db").exists(), "no service with a fresh key created");
    w.run(&["backup", "--store", "a.db", "--to", "usb", "--service", "other.db", "--create-service"]).expect(0);
    // That archive is for the other service: the main one cannot restore it.
    let run = w.run(&["restore", "--store", "a.db", "--from", "usb"]);
    run.expect(5);
    assert!(run.stderr().starts_with("error: WRONG_KEY: "), "{}", run.stderr());

    // The store given as the service, the service as the store: refused, neither changed.
    let before = snapshot(&w.path("a.db"));
    let run = w.run(&["backup", "--store", "a.db", "--to", "usb", "--overwrite", "--service", "a.db"]);
    run.expect(7);
    assert!(
        run.stderr().contains("is a license store, not a service ledger; it was left unchanged"),
        "{}",
        run.stderr()
    );
    let run = w.run(&["list", "--store", "service.db"]);
    run.expect(3);
    assert!(run.stderr().starts_with("error: WRONG_FILE_KIND: "), "{}", run.stderr());
    assert_eq!(snapshot(&w.path("a.db")), before);
    w.run(&["verify", "--store", "a.db"]).expect(0);

    let run = w.run(&["restore", "--store", "nowhere/b.db", "--create-store", "--from", "usb"]);
    run.expect(3);
    assert!(run.stderr().starts_with("error: PATH_NOT_FOUND: the folder nowhere does not exist"), "{}", run.stderr());

    let run = w.run(&["backup", "--store", "a.db", "--to", "missing", "--overwrite"]);
    run.expect(3);
    assert!(run.stderr().starts_with("error: PATH_NOT_FOUND: "), "{}", run.stderr());
    // A networked service that cannot be reached: the service's exit class, nothing written.
    let before = files_in(&w.path("usb"));
    let run = w.run(&["backup", "--store", "a.db", "--to", "usb", "--overwrite", "--service", "https://lms.invalid"]);
    run.expect(7);
    assert!(run.stderr().starts_with("error: SERVICE_UNAVAILABLE: "), "{}", run.stderr());
    assert_eq!(files_in(&w.path("usb")), before);

    // Usage errors: exit 2; with --json, a summary line too.
    let mut cmd = w.cmd(&["backup", "--store", "a.db", "--to", "usb"]);
    let run = Run(cmd.env_remove("LICENSE_BACKUP_SERVICE").output().unwrap());
    run.expect(2);
    assert!(run.stderr().contains("--service <LEDGER|URL>"), "{}", run.stderr());
    assert_eq!(run.stdout(), "");
    let run = w.run(&["backup", "--store", "a.db", "--json"]);
    run.expect(2);
    assert_eq!(
        (run.summary()["exit_code"].as_u64(), run.summary()["error"].as_str()),
        (Some(2), Some("INVALID_ARGUMENT"))
    );
    w.run(&["backup", "--store", "a.db", "--to", "usb", "--progress-interval", "0"]).expect(2);
    let run = w.run(&["--help"]);
    run.expect(0);
    assert!(run.stdout().contains("Exit codes:"));
    assert!(run.stdout().contains("  130  cancelled"));
}

#[test]
fn a_closed_output_stops_the_backup_before_it_replaces_anything() {
    let w = World::new();
    w.store("a", 3000, 0, false);
    let usb = w.folder("usb");
    w.run(&["backup", "--store", "a.db", "--to", "usb"]).expect(0);
    let archive = std::fs::read(usb.join(ARCHIVE_FILE_NAME)).unwrap();
    let mut child = w
        .cmd(&["backup", "--store", "a.db", "--to", "usb", "--overwrite", "--json", "--progress-interval", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads: the first write after this fails (EPIPE).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: CALLBACK_FAILED: "), "{err}");
    assert_eq!(std::fs::read(usb.join(ARCHIVE_FILE_NAME)).unwrap(), archive, "the old archive is untouched");
    assert_eq!(files_in(&usb), [ARCHIVE_FILE_NAME], "no temporary file left");
}

#[test]
fn the_exit_codes_in_docs_are_those_of_help() {
    let help = World::new().run(&["--help"]).stdout();
    let from_help: Vec<(String, String)> = help
        .split("Exit codes:\n")
        .nth(1)
        .expect("an exit-code table in --help")
        .lines()
        .map(|l| {
            let mut words = l.split_whitespace();
            (words.next().unwrap().to_string(), words.next().unwrap().to_string())
        })
        .collect();
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cli.md")).unwrap();
    let table = docs.split("## Exit codes").nth(1).unwrap().split("\n## ").next().unwrap();
    let from_docs: Vec<(String, String)> = table
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.len() > 3 && cells[1].parse::<u8>().is_ok()).then(|| (cells[1].to_string(), cells[2].to_string()))
        })
        .collect();
    assert_eq!(from_docs, from_help);
    assert_eq!(from_help.len(), 10);
}
