//! `list --store STORE`: the licenses and the catalog; never a content key.

use std::collections::HashSet;

use license_backup::{CatalogEntry, License};
use serde_json::json;

use super::Fields;
use crate::args::StoreArgs;
use crate::exit::Failure;
use crate::open;
use crate::ui::{Paint, Ui, printable, utc};

/// Title and artist for a line: `"Blue in Green" by Miles Davis`.
fn describe(entry: Option<&CatalogEntry>) -> String {
    let Some(entry) = entry else { return "(no catalog entry)".to_string() };
    let mut text = entry.title.as_deref().map_or_else(|| "(untitled)".to_string(), crate::ui::quoted);
    if let Some(artist) = &entry.artist {
        text.push_str(&format!(" by {}", printable(artist)));
    }
    text
}

fn rights(license: &License) -> String {
    let r = &license.rights;
    let mut parts = vec![if r.backup_allowed { "backup" } else { "NO-BACKUP" }.to_string()];
    for (on, name) in [(r.play, "play"), (r.burn, "burn"), (r.transfer, "transfer")] {
        if on {
            parts.push(name.to_string());
        }
    }
    if let Some(n) = r.plays_remaining {
        parts.push(format!("{n} plays left"));
    }
    if let Some(t) = r.expires_at {
        parts.push(format!("expires {}", utc(t)));
    }
    parts.join(",")
}

pub fn run(args: &StoreArgs, ui: &Ui, fields: &mut Fields) -> Result<(), Failure> {
    fields.insert("store".into(), json!(args.store.display().to_string()));
    let store = open::store(args)?;
    let device = store.device_id()?;
    fields.insert("device_id".into(), json!(device));
    let licenses = store.list_licenses()?;
    let catalog = store.list_catalog()?;
    let licensed: HashSet<_> = licenses.iter().map(|l| l.key_id).collect();
    let restricted = licenses.iter().filter(|l| !l.rights.backup_allowed).count();

    ui.line(&format!("{} {device}", ui.out("device", Paint::Bold)));
    for license in &licenses {
        ui.json_line(&crate::json::license(license));
        ui.line(&format!(
            "{}  {}  {}",
            license.key_id,
            describe(license.catalog.as_ref()),
            ui.out(&rights(license), Paint::Dim)
        ));
    }
    let orphans: Vec<_> = catalog.iter().filter(|(k, _)| !licensed.contains(k)).collect();
    for (key_id, entry) in &catalog {
        ui.json_line(&crate::json::catalog_entry(key_id, entry, licensed.contains(key_id)));
    }
    if !orphans.is_empty() {
        ui.line(&ui.out("catalog entries without a license on this device:", Paint::Bold));
        for (key_id, entry) in orphans {
            ui.line(&format!("{key_id}  {}", describe(Some(entry))));
        }
    }
    fields.insert("licenses".into(), json!(licenses.len()));
    fields.insert("restricted".into(), json!(restricted));
    fields.insert("catalog_entries".into(), json!(catalog.len()));
    ui.line(&format!(
        "{} licenses ({restricted} may not be backed up), {} catalog entries",
        licenses.len(),
        catalog.len()
    ));
    Ok(())
}
