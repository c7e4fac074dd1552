//! `quota --store STORE --from FOLDER [--individualize]`: what the restore quota allows,
//! asked of the service without changing anything.

use license_backup::archive::ARCHIVE_FILE_NAME;
use license_backup::{ErrorCode, RestoreFlags, create_backup_restorer};
use serde_json::json;

use super::{Fields, folder_value};
use crate::args::QuotaArgs;
use crate::exit::Failure;
use crate::open;
use crate::ui::{Paint, Ui};

pub fn run(args: &QuotaArgs, ui: &Ui, fields: &mut Fields) -> Result<(), Failure> {
    let archive = args.from.join(ARCHIVE_FILE_NAME);
    fields.insert("store".into(), json!(args.store.store.display().to_string()));
    fields.insert("archive".into(), json!(archive.display().to_string()));
    fields.insert("individualize".into(), json!(args.individualize));
    let store = open::store(&args.store)?;
    let service = open::service(&args.service, false)?;
    let device = store.device_id()?;
    fields.insert("device_id".into(), json!(device));
    let restorer = create_backup_restorer(store, service);
    restorer.set_property("RestorePath", folder_value("--from", &args.from)?)?;
    // The same request the restore would send: the service's answer, `allowed`, is its decision
    // (with --individualize, for a new identity that counts as this device).
    let flags = RestoreFlags { individualize: args.individualize, replace_existing: false };
    let quota = restorer.restore_quota_with(flags)?;
    let allowed = quota.allowed;
    fields.insert("licenses".into(), json!(quota.licenses));
    fields.insert("max_devices".into(), json!(quota.max_devices));
    fields.insert("restores_remaining".into(), json!(quota.restores_remaining));
    fields.insert("device_already_counted".into(), json!(quota.device_already_counted));
    fields.insert("allowed".into(), json!(allowed));

    let row = |label: &str, value: String| ui.line(&format!("{}{value}", ui.out(&format!("{label:<14}"), Paint::Bold)));
    row("archive", format!("{} ({} licenses)", archive.display(), quota.licenses));
    row("device", device);
    row("policy", format!("a license may live on at most {} devices", quota.max_devices));
    row(
        "this device",
        match (quota.device_already_counted, args.individualize) {
            (true, false) => "already counts for every license: restoring here again is free".to_string(),
            (true, true) => {
                "already counts for every license, and its new identity counts as it: restoring is free".to_string()
            }
            (false, _) => "new to some of these licenses: a restore here counts as one more device".to_string(),
        },
    );
    row("remaining", format!("{} more new devices may receive every license in it", quota.restores_remaining));
    row("restore", if allowed { ui.out("allowed", Paint::Good) } else { ui.out("would be refused", Paint::Warn) });
    if allowed {
        return Ok(());
    }
    let mut failure = Failure::new(
        ErrorCode::RestoreLimitExceeded,
        format!(
            "a restore onto this device would be refused: these licenses already live on {} devices",
            quota.max_devices
        ),
    )
    .with_hint("restoring onto a device that already counts is free");
    failure.refused = true;
    Err(failure)
}
