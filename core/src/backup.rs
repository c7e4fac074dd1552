//! The backup job: stream every license that may be backed up into a new archive, then put it
//! in place atomically.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::archive::{ARCHIVE_FILE_NAME, ArchiveWriter, write_error};
use crate::crypto;
use crate::error::{Error, ErrorCode, Result};
use crate::event::{StatusEvent, Summary};
use crate::operation::{Emitter, Progress};
use crate::service::LicenseService;
use crate::store;

/// What a backup needs, captured when it is started.
pub(crate) struct BackupJob {
    pub(crate) store_path: PathBuf,
    pub(crate) service: Arc<dyn LicenseService>,
    pub(crate) folder: PathBuf,
    pub(crate) overwrite: bool,
    pub(crate) progress_interval: u64,
}

/// Checks that `folder` exists and is a folder.
pub(crate) fn check_folder(folder: &Path) -> Result<()> {
    match std::fs::metadata(folder) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::new(ErrorCode::NotAFolder, format!("{} is not a folder", folder.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::new(ErrorCode::PathNotFound, format!("the folder {} does not exist", folder.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Err(Error::new(ErrorCode::NotAFolder, format!("{} is not a folder", folder.display())))
        }
        Err(e) => Err(Error::io(&format!("cannot read {}", folder.display()), &e)),
    }
}

/// A temporary file that is removed unless it is put in place.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn sync_folder(folder: &Path) {
    // Makes the rename durable; not every platform can open a folder, so this is best effort.
    if let Ok(dir) = File::open(folder) {
        let _ = dir.sync_all();
    }
}

impl BackupJob {
    pub(crate) fn run(self, emitter: &Emitter) -> Result<Summary> {
        emitter.emit(StatusEvent::Begin { operation: emitter.kind() })?;
        check_folder(&self.folder)?;
        let target = self.folder.join(ARCHIVE_FILE_NAME);
        match std::fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => {
                return Err(Error::new(
                    ErrorCode::NotAFolder,
                    format!("{} is a folder, not an archive", target.display()),
                ));
            }
            Ok(_) if !self.overwrite => {
                return Err(Error::new(
                    ErrorCode::BackupExists,
                    format!("{} already exists; pass the overwrite flag to replace it", target.display()),
                ));
            }
            _ => {}
        }
        let service_key = self.service.public_key().map_err(|e| match e.code() {
            ErrorCode::Internal => Error::new(ErrorCode::ServiceUnavailable, e.message()),
            _ => e,
        })?;

        let conn = store::open_connection(&self.store_path)?;
        conn.execute_batch("BEGIN")?;
        let device = store::load_device(&conn)?;
        let total = store::count_licenses(&conn)?;

        let suffix: String = crypto::random_array::<8>().iter().map(|b| format!("{b:02x}")).collect();
        let temp = TempFile { path: self.folder.join(format!(".{ARCHIVE_FILE_NAME}.{suffix}.tmp")), keep: false };
        let file = OpenOptions::new().write(true).create_new(true).open(&temp.path).map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                Error::new(ErrorCode::NotWritable, format!("cannot write to the folder {}: {e}", self.folder.display()))
            }
            _ => write_error(&e),
        })?;
        let mut writer = ArchiveWriter::new(BufWriter::with_capacity(256 * 1024, file), &service_key, device.id())?;
        let mut progress = Progress::new(total, self.progress_interval);
        let (mut written, mut restricted) = (0u64, 0u64);
        store::scan_licenses(&conn, &device, |stored| {
            match &stored.content_key {
                Some(key) => {
                    writer.write_license(&stored.license, key)?;
                    written += 1;
                }
                None => {
                    restricted += 1;
                    let title = stored.license.catalog.and_then(|c| c.title);
                    emitter.emit(StatusEvent::RestrictedLicense { key_id: stored.license.key_id, title })?;
                }
            }
            progress.step(emitter)
        })?;
        conn.execute_batch("COMMIT")?;
        drop(conn);
        progress.finish(emitter)?;
        let (out, bytes) = writer.finish(restricted)?;
        let file = out.into_inner().map_err(|e| write_error(e.error()))?;
        file.sync_all().map_err(|e| write_error(&e))?;
        drop(file);
        emitter.check_cancelled()?;
        if self.overwrite {
            std::fs::rename(&temp.path, &target).map_err(|e| write_error(&e))?;
        } else {
            // A hard link never replaces an archive that appeared meanwhile.
            std::fs::hard_link(&temp.path, &target).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    Error::new(ErrorCode::BackupExists, format!("{} already exists", target.display()))
                }
                _ => write_error(&e),
            })?;
        }
        sync_folder(&self.folder);
        Ok(Summary { licenses: written, restricted, skipped: 0, bytes, duration_ms: 0 })
    }
}
