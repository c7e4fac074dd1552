//! Diagnostics: what the core logs through `diagnostics::install`, at which level, and that no
//! record ever carries key material. One test function: the sink is global to the process.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use license_backup::diagnostics::{self, LogLevel, LogRecord, LogSink};
use license_backup::*;

#[derive(Default)]
struct Capture(Mutex<Vec<LogRecord>>);

impl LogSink for Capture {
    fn log(&self, record: LogRecord) {
        self.0.lock().unwrap().push(record);
    }
}

impl Capture {
    fn take(&self) -> Vec<LogRecord> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn field<'a>(r: &'a LogRecord, name: &str) -> Option<&'a str> {
    r.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn ended<'a>(records: &'a [LogRecord], operation: &str) -> Vec<&'a LogRecord> {
    records.iter().filter(|r| r.message == "operation ended" && field(r, "operation") == Some(operation)).collect()
}

/// Every record's text: its message, its target and its fields, names and values.
fn text(records: &[LogRecord]) -> String {
    records
        .iter()
        .map(|r| {
            let fields: Vec<String> = r.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{} {} {} {}\n", r.level.name(), r.target, r.message, fields.join(" "))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `needle` (or its lower-case hex, or its bytes as Rust's `Debug` of a slice) is in
/// `haystack`.
fn leaks(haystack: &str, needle: &[u8]) -> bool {
    let debug = format!("{needle:?}");
    haystack.contains(&hex(needle))
        || haystack.contains(&debug[1..debug.len() - 1])
        || std::str::from_utf8(needle).is_ok_and(|s| haystack.contains(s))
}

#[test]
fn the_core_logs_operations_through_the_installed_sink_and_never_key_material() {
    let sink = Arc::new(Capture::default());
    diagnostics::install(Some(sink.clone()), LogLevel::Debug).unwrap();

    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 20, 5);
    let opened = sink.take();
    assert!(
        opened.iter().any(|r| r.level == LogLevel::Debug && r.message.starts_with("store opened")),
        "{}",
        text(&opened)
    );

    // A backup: started and ended at INFO, with its outcome code and counts.
    assert_eq!(backup(&ra, false).0.unwrap().licenses, 16);
    let records = sink.take();
    assert!(records.iter().any(|r| r.message == "operation started" && field(r, "operation") == Some("backup")));
    let end = ended(&records, "backup");
    assert_eq!(end.len(), 1, "{}", text(&records));
    assert_eq!((end[0].level, field(end[0], "outcome")), (LogLevel::Info, Some("OK")));
    assert_eq!((field(end[0], "licenses"), field(end[0], "restricted")), (Some("16"), Some("4")));
    assert!(end[0].target.starts_with("license_backup::"), "{}", end[0].target);

    // A restore: the service's connection at DEBUG, then the end.
    let (b, rb) = w.device("b");
    assert_eq!(restore(&rb, RestoreFlags::default()).0.unwrap().licenses, 16);
    let mut records = sink.take();
    assert!(records.iter().any(|r| r.message == "connecting to the service" && r.level == LogLevel::Debug));
    assert!(records.iter().any(|r| r.message == "disconnected from the service"));
    assert_eq!(field(ended(&records, "restore")[0], "outcome"), Some("OK"));

    // A failure ends at WARN with its code; the END callback's failure is a WARN of its own.
    let cb: Arc<dyn StatusCallback> =
        Arc::new(
            |e: &StatusEvent| {
                if matches!(e, StatusEvent::End { .. }) { Err(CallbackError::new("end hook broke")) } else { Ok(()) }
            },
        );
    assert_eq!(
        ra.backup_licenses(BackupFlags::default(), cb).unwrap().wait().unwrap_err().code(),
        ErrorCode::BackupExists
    );
    let more = sink.take();
    let end = ended(&more, "backup");
    assert_eq!((end[0].level, field(end[0], "outcome")), (LogLevel::Warn, Some("BACKUP_EXISTS")));
    let hook = more.iter().find(|r| r.message.starts_with("the END callback failed")).expect("logged");
    assert_eq!((hook.level, field(hook, "error")), (LogLevel::Warn, Some("end hook broke")));
    records.extend(more);

    // A third device is refused by the quota (the default allows two devices? count them all):
    // whatever the service answers, a refusal is logged at INFO with its code.
    let mut refused = None;
    for n in 0..8 {
        let (_, rn) = w.device(&format!("extra{n}"));
        if let Err(e) = restore(&rn, RestoreFlags::default()).0 {
            refused = Some(e.code());
            break;
        }
    }
    let more = sink.take();
    if let Some(code) = refused {
        let r = more
            .iter()
            .find(|r| r.message == "the service refused the restore")
            .unwrap_or_else(|| panic!("refusal {code:?} not logged:\n{}", text(&more)));
        assert_eq!((r.level, field(r, "code")), (LogLevel::Info, Some(code.name())));
        assert_eq!(field(r, "licenses"), Some("16"));
    }
    records.extend(more);

    // No record holds a content key, the archive's wrapped key or any device's key.
    let all = text(&records);
    for i in 1..=20 {
        assert!(!leaks(&all, &content_key(i)), "content key {i} in the log:\n{all}");
    }
    assert!(!all.contains("CK-SECRET"), "{all}");
    let header = archive::read_header_at(&archive_path(&w)).unwrap();
    assert!(!leaks(&all, &header.wrapped_key.enc), "{all}");
    assert!(!leaks(&all, &header.wrapped_key.ciphertext), "{all}");
    for (license, key) in snapshot(&b) {
        assert!(!leaks(&all, &key), "{:?}", license.key_id);
    }

    // Above the level, nothing reaches the sink; with no sink, nothing at all.
    diagnostics::install(Some(sink.clone()), LogLevel::Warn).unwrap();
    backup(&ra, true).0.unwrap();
    assert!(sink.take().is_empty(), "INFO records are filtered out at WARN");
    diagnostics::install(None, LogLevel::Trace).unwrap();
    backup(&ra, true).0.unwrap();
    assert!(sink.take().is_empty());
}
