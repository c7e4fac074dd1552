//! `backup --store STORE --to FOLDER [--overwrite]`.

use std::sync::Arc;

use license_backup::archive::ARCHIVE_FILE_NAME;
use license_backup::{BackupFlags, OperationKind, PropertyValue, Summary, create_backup_restorer};
use serde_json::json;

use super::{Fields, folder_value, operate, summary_fields};
use crate::args::BackupArgs;
use crate::exit::Failure;
use crate::open;
use crate::reporter::grouped;
use crate::ui::{Paint, Ui, bytes};

pub fn run(args: &BackupArgs, ui: &Ui, fields: &mut Fields) -> Result<(), Failure> {
    let archive = args.to.join(ARCHIVE_FILE_NAME);
    fields.insert("store".into(), json!(args.store.store.display().to_string()));
    fields.insert("archive".into(), json!(archive.display().to_string()));
    fields.insert("overwrite".into(), json!(args.overwrite));
    summary_fields(fields, &Summary::default());
    let store = open::store(&args.store)?;
    let service = open::service(&args.service, args.create_service)?;
    let restorer = Arc::new(create_backup_restorer(store, service));
    restorer.set_property("BackupPath", folder_value("--to", &args.to)?)?;
    if let Some(n) = args.progress_interval {
        restorer.set_property("ProgressInterval", PropertyValue::U32(n))?;
    }
    let flags = BackupFlags { overwrite: args.overwrite };
    let cancelled = "the previous backup, if any, stays as it was";
    let summary = operate(ui, &restorer, OperationKind::Backup, "backing up", cancelled, |callback| {
        restorer.backup_licenses(flags, callback)
    })?;
    summary_fields(fields, &summary);
    let restricted = match summary.restricted {
        0 => String::new(),
        n => format!("; {n} restricted, left on this device"),
    };
    let line = format!(
        "backed up {} licenses to {} ({}, {:.2} s{restricted})",
        grouped(summary.licenses),
        archive.display(),
        bytes(summary.bytes),
        summary.duration_ms as f64 / 1000.0
    );
    ui.line(&ui.out(&line, Paint::Good));
    Ok(())
}
