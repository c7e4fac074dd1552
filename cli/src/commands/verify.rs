//! `verify --store STORE`: the store's integrity, and every content key opens.

use serde_json::json;

use super::Fields;
use crate::args::StoreArgs;
use crate::exit::Failure;
use crate::open;
use crate::ui::{Paint, Ui};

pub fn run(args: &StoreArgs, ui: &Ui, fields: &mut Fields) -> Result<(), Failure> {
    fields.insert("store".into(), json!(args.store.display().to_string()));
    let store = open::store(args)?;
    fields.insert("device_id".into(), json!(store.device_id()?));
    let checked = store.verify()?;
    fields.insert("licenses".into(), json!(checked));
    let line = format!(
        "{}: {checked} licenses checked: the database is intact and every content key opens with this device's key",
        args.store.display()
    );
    ui.line(&ui.out(&line, Paint::Good));
    Ok(())
}
