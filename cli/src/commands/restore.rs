//! `restore --store STORE --from FOLDER [--individualize] [--replace-existing]`.

use std::sync::Arc;

use license_backup::archive::ARCHIVE_FILE_NAME;
use license_backup::{OperationKind, PropertyValue, RestoreFlags, Summary, create_backup_restorer};
use serde_json::json;

use super::{Fields, folder_value, operate, summary_fields};
use crate::args::RestoreArgs;
use crate::exit::Failure;
use crate::open;
use crate::reporter::grouped;
use crate::ui::{Paint, Ui};

pub fn run(args: &RestoreArgs, ui: &Ui, fields: &mut Fields) -> Result<(), Failure> {
    let archive = args.from.join(ARCHIVE_FILE_NAME);
    fields.insert("store".into(), json!(args.store.store.display().to_string()));
    fields.insert("archive".into(), json!(archive.display().to_string()));
    fields.insert("individualize".into(), json!(args.individualize));
    fields.insert("replace_existing".into(), json!(args.replace_existing));
    summary_fields(fields, &Summary::default());
    let service = open::service(&args.service, false)?;
    // Declared before the store: a store this run created is removed after its last use.
    let mut created = None;
    let store = if args.create_store {
        let (store, guard) = open::store_or_create(&args.store)?;
        created = Some(guard);
        store
    } else {
        open::store(&args.store)?
    };
    let device_before = store.device_id()?;
    fields.insert("device_id".into(), json!(device_before));
    let restorer = Arc::new(create_backup_restorer(Arc::clone(&store), service));
    restorer.set_property("RestorePath", folder_value("--from", &args.from)?)?;
    if let Some(n) = args.progress_interval {
        restorer.set_property("ProgressInterval", PropertyValue::U32(n))?;
    }
    let flags = RestoreFlags { individualize: args.individualize, replace_existing: args.replace_existing };
    let status = "connecting to the License Management Service";
    let cancelled = "the store stays as it was";
    let outcome = operate(ui, &restorer, OperationKind::Restore, status, cancelled, |callback| {
        restorer.restore_licenses(flags, callback)
    });
    // A store this run created goes again unless licenses landed in it (a restore that failed
    // only in reporting its end, for example).
    if let Some(created) = &mut created {
        if outcome.is_ok() || store.license_count().map_or(true, |n| n > 0) {
            created.keep();
        }
    }
    let summary = outcome?;
    summary_fields(fields, &summary);
    let device_after = store.device_id()?;
    fields.insert("device_id".into(), json!(device_after));
    fields.insert("previous_device_id".into(), json!(device_before));
    let skipped = match summary.skipped {
        0 => String::new(),
        n if args.replace_existing => format!("; {n} skipped"),
        n => format!("; {n} already on this device, kept"),
    };
    let line = format!(
        "restored {} licenses from {} ({:.2} s{skipped})",
        grouped(summary.licenses),
        archive.display(),
        summary.duration_ms as f64 / 1000.0
    );
    ui.line(&ui.out(&line, Paint::Good));
    if device_after != device_before {
        ui.line(&format!("this device has a new identity: {device_after} (was {device_before})"));
    }
    Ok(())
}
