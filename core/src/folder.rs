//! Folder checks and file placement helpers shared by the backup and the restore.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorCode, Result};

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
pub(crate) struct TempFile {
    pub(crate) path: PathBuf,
    pub(crate) keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Flushes a folder's entries to disk (after a file was renamed or linked into it).
pub(crate) fn sync_folder(folder: &Path) {
    // Makes the rename durable; not every platform can open a folder, so this is best effort.
    if let Ok(dir) = File::open(folder) {
        let _ = dir.sync_all();
    }
}
