//! `inspect FOLDER|FILE`: an archive's header and framing, read without any key.

use license_backup::archive;
use serde_json::json;

use super::Fields;
use crate::args::InspectArgs;
use crate::exit::Failure;
use crate::reporter::grouped;
use crate::ui::{Paint, Ui, bytes, hex, utc};

pub fn run(args: &InspectArgs, ui: &Ui, fields: &mut Fields) -> Result<(), Failure> {
    let info = archive::inspect(&args.path)?;
    let h = &info.header;
    fields.insert("archive".into(), json!(info.path.display().to_string()));
    fields.insert("size".into(), json!(info.size));
    fields.insert("format_version".into(), json!(info.format_version));
    fields.insert("archive_id".into(), json!(hex(&h.archive_id)));
    fields.insert("origin_device".into(), json!(hex(&h.origin_device)));
    fields.insert("created_at".into(), json!(h.created_at));
    fields.insert("service_key_fingerprint".into(), json!(hex(&h.service_key_fingerprint)));
    fields.insert("licenses".into(), json!(info.licenses));
    fields.insert("key_ids_sha256".into(), json!(hex(&info.key_ids_digest)));
    fields.insert("intact".into(), json!(info.is_intact()));
    fields.insert(
        "damage".into(),
        match &info.damage {
            None => json!(null),
            Some(d) => json!({"offset": d.offset, "record": d.record, "code": d.error.code().name(),
                              "message": d.error.message()}),
        },
    );

    let row = |label: &str, value: String| ui.line(&format!("{}{value}", ui.out(&format!("{label:<14}"), Paint::Bold)));
    row("archive", format!("{} ({})", info.path.display(), bytes(info.size)));
    row("format", format!("version {}", info.format_version));
    row("archive id", hex(&h.archive_id));
    row("made on", format!("device {}, {}", hex(&h.origin_device), utc(h.created_at)));
    row("for service", format!("key fingerprint {}", hex(&h.service_key_fingerprint)));
    let framing = match &info.damage {
        None => format!("{} license records, then the end record: intact", grouped(info.licenses)),
        Some(d) => ui.out(
            &format!("DAMAGED at byte {} (record {}), after {} license records", d.offset, d.record, info.licenses),
            Paint::Warn,
        ),
    };
    row("framing", framing);
    row("key IDs", format!("sha256 {}", hex(&info.key_ids_digest)));
    ui.line(&ui.out("(read without any key: the records' authenticity is checked only by a restore)", Paint::Dim));
    match info.damage {
        None => Ok(()),
        Some(d) => Err(Failure::new(
            d.error.code(),
            format!("{} (at byte {}, record {})", d.error.message(), d.offset, d.record),
        )),
    }
}
