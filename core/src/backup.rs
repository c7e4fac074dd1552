//! The backup job: stream every license that may be backed up into a new archive, then put it
//! in place atomically.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::archive::{self, ARCHIVE_FILE_NAME, ArchiveWriter, BatchItem, RecordBatch, write_error};
use crate::device::RowFields;
use crate::error::{Error, ErrorCode, Result};
use crate::event::{StatusEvent, Summary};
use crate::folder::{self, Doing, TempArchive, check_folder, sync_folder};
use crate::operation::{Emitter, Progress};
use crate::registration;
use crate::service::LicenseService;
use crate::sqlite;
use crate::store;

/// What a backup needs, captured when it is started.
pub(crate) struct BackupJob {
    pub(crate) store_path: PathBuf,
    pub(crate) keys: Arc<store::StoreKeys>,
    pub(crate) service: Arc<dyn LicenseService>,
    pub(crate) folder: PathBuf,
    pub(crate) overwrite: bool,
    pub(crate) progress_interval: u64,
}

/// Checks what is at the archive's name before a backup starts: nothing, or an archive that may
/// be replaced. An empty file is a placeholder a backup left when it died: no archive.
fn check_target(target: &Path, overwrite: bool) -> Result<()> {
    let meta = match std::fs::symlink_metadata(target) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(folder::io_error(Doing::Write, &e)),
    };
    if meta.is_dir() {
        return Err(Error::new(ErrorCode::NotAFolder, format!("{} is a folder, not an archive", target.display())));
    }
    if folder::is_placeholder(&meta) {
        return Ok(());
    }
    if !overwrite {
        return Err(Error::new(
            ErrorCode::BackupExists,
            format!("{} already exists; pass the overwrite flag to replace it", target.display()),
        ));
    }
    // The overwrite flag replaces an archive, never a file of another kind under its name
    // (nor a link, a FIFO or a device, which are not opened here).
    if !meta.is_file() {
        return Err(Error::new(
            ErrorCode::WrongFileKind,
            format!("{} is not a regular file; it was left as it is", target.display()),
        ));
    }
    let mut magic = [0u8; 8];
    let read = File::open(target).and_then(|mut f| {
        use std::io::Read;
        let mut got = 0;
        while got < magic.len() {
            match f.read(&mut magic[got..])? {
                0 => break,
                n => got += n,
            }
        }
        Ok(got)
    });
    match read {
        Ok(got) if magic[..got] == archive::MAGIC[..got] => Ok(()),
        Ok(_) => Err(Error::new(
            ErrorCode::WrongFileKind,
            format!("{} is not a license backup archive; it was left as it is", target.display()),
        )),
        Err(e) => Err(folder::io_error(Doing::Read, &e)),
    }
}

impl BackupJob {
    pub(crate) fn run(self, emitter: &Emitter) -> Result<Summary> {
        emitter.emit(StatusEvent::Begin { operation: emitter.kind() })?;
        check_folder(&self.folder)?;
        // What backups that died left here goes first (never a live writer's file).
        folder::remove_dead_temporaries(&self.folder);
        let target = self.folder.join(ARCHIVE_FILE_NAME);
        check_target(&target, self.overwrite)?;
        // The temporary file comes first: a folder that cannot take it (a read-only stick, a
        // missing one) fails the backup before the store is read.
        let (temp, file) = TempArchive::create(&self.folder)?;
        let written = self.write(emitter, &target, temp, file);
        // Some drivers (fusefat) report a full medium as "not permitted"; the temporary file
        // still takes its space here, so the free space tells.
        written.map_err(|e| folder::full_or(e, &self.folder))
    }

    /// Writes the archive into `temp` and puts it in place.
    fn write(&self, emitter: &Emitter, target: &Path, mut temp: TempArchive, file: File) -> Result<Summary> {
        let service_key = self.service.public_key().map_err(|e| match e.code() {
            ErrorCode::Internal => Error::new(ErrorCode::ServiceUnavailable, e.message()),
            _ => e,
        })?;

        let conn = sqlite::open_backup_connection(&self.store_path)?;
        conn.execute_batch("BEGIN")?;
        let device = self.keys.load(&conn)?;
        // Once per service: the device proves its key and joins the account, so the service
        // can tell who made the archive and refuse it to anyone else's account.
        registration::ensure_registered(&self.store_path, self.service.as_ref(), &service_key, &device)?;
        let total = store::count_licenses(&conn)?;

        // Records are written in batches of about 128 KiB, straight to the file.
        let writer = ArchiveWriter::new(file, &service_key, &device.pair)?;
        let progress = Progress::new(total, self.progress_interval);
        // This thread reads the store; the sealing thread opens each content key, seals the
        // records, writes them, and reports every license (RESTRICTED_LICENSE, PROGRESS) in
        // store order, so the events are the same as if one thread did it all.
        let (writer, (progress, restricted)) = pipeline(
            writer,
            (progress, 0u64),
            |batches| {
                let (mut aad, mut scratch) = (Vec::new(), Vec::new());
                store::scan_licenses(&conn, |license, sealed_key| {
                    let row = RowFields {
                        key_id: &license.key_id,
                        rights: &license.rights,
                        issuer: license.issuer,
                        issued_at: license.issued_at,
                    };
                    if license.rights.backup_allowed {
                        // The sealing thread opens the key with its row's associated data: a row
                        // edited outside the library fails there, before it is written.
                        device.license_aad_into(&row, &mut aad);
                        batches.current.push_license(license, sealed_key, &aad)?;
                    } else {
                        // Never opened for the archive, but checked all the same: a restricted
                        // row that was edited is reported, not silently left behind.
                        device.check_row(&row, sealed_key, &mut aad, &mut scratch)?;
                        batches.current.push_restricted(&license.key_id, license.title);
                    }
                    batches.send_if_full()
                })
            },
            |writer, (progress, restricted), batch| {
                let open_key = |key_id: &_, aad: &_, nonce: &_, key: &mut _, tag: &_| {
                    device.open_in_place(key_id, aad, nonce, key, tag)
                };
                writer.write_batch(batch, open_key, |item| {
                    if let BatchItem::Restricted { key_id, title } = item {
                        *restricted += 1;
                        emitter.emit(StatusEvent::RestrictedLicense { key_id, title: title.map(str::to_owned) })?;
                    }
                    progress.step(emitter)
                })
            },
        )?;
        let written = progress.done - restricted;
        conn.execute_batch("COMMIT")?;
        drop(conn);
        progress.finish(emitter)?;
        let (file, bytes) = writer.finish(restricted)?;
        file.sync_all().map_err(|e| write_error(&e))?;
        drop(file);
        emitter.check_cancelled()?;
        if self.overwrite {
            folder::place_replacing(&temp.path, target)?;
        } else {
            folder::place_new(&temp.path, target, &self.folder)?;
        }
        temp.keep();
        sync_folder(&self.folder);
        Ok(Summary { licenses: written, restricted, skipped: 0, bytes, duration_ms: 0 })
    }
}

/// How many filled batches may wait for the sealing thread: enough to ride out a stall of
/// either side, few enough that memory stays flat (each is about 128 KiB).
const QUEUED_BATCHES: usize = 2;

/// The reading side of the pipeline: fills batches and hands full ones, in order, to the
/// sealing thread; emptied batches come back to be filled again.
struct Batches {
    current: RecordBatch,
    full: SyncSender<RecordBatch>,
    spare: Receiver<RecordBatch>,
}

impl Batches {
    fn send_if_full(&mut self) -> Result<()> {
        if self.current.is_full() { self.send() } else { Ok(()) }
    }

    fn send(&mut self) -> Result<()> {
        let next = self.spare.try_recv().unwrap_or_else(|_| RecordBatch::new());
        let full = std::mem::replace(&mut self.current, next);
        // Fails only once the sealing thread has stopped; its error is the outcome.
        self.full.send(full).map_err(|_| Error::internal("the archive writer stopped"))
    }
}

/// Runs `read` (the store scan, filling batches) on this thread while another thread runs
/// `seal` on each batch, in order, with `state`: the two halves of a backup run on two cores.
///
/// When `read` fails, the sealing thread still goes through every batch filled before the
/// failure, so what it reports up to there does not depend on timing; when `seal` fails,
/// reading stops at the next hand-off. The sealing side's error comes first: it is about an
/// earlier license than any error of the reading side. A panic on the sealing thread is
/// resumed here.
fn pipeline<W, S>(
    mut writer: ArchiveWriter<W>,
    mut state: S,
    read: impl FnOnce(&mut Batches) -> Result<()>,
    mut seal: impl FnMut(&mut ArchiveWriter<W>, &mut S, &mut RecordBatch) -> Result<()> + Send,
) -> Result<(ArchiveWriter<W>, S)>
where
    W: std::io::Write + Send,
    S: Send,
{
    let (full, full_rx) = sync_channel::<RecordBatch>(QUEUED_BATCHES);
    // Room for every batch in circulation, so handing one back never blocks.
    let (spare_tx, spare) = sync_channel::<RecordBatch>(QUEUED_BATCHES + 2);
    std::thread::scope(|s| {
        let sealer = std::thread::Builder::new()
            .name("license-backup-sealer".into())
            .spawn_scoped(s, move || -> Result<(ArchiveWriter<W>, S)> {
                for mut batch in full_rx {
                    seal(&mut writer, &mut state, &mut batch)?;
                    let _ = spare_tx.try_send(batch);
                }
                Ok((writer, state))
            })
            .map_err(|e| Error::internal(format!("cannot start the archive writer thread: {e}")))?;
        let mut batches = Batches { current: RecordBatch::new(), full, spare };
        let read = read(&mut batches);
        // The last batch goes to the sealing thread even when reading failed: what was read
        // before the failure is reported (and sealed) whatever the batch boundaries.
        let read = match (read, batches.current.is_empty()) {
            (read, true) => read,
            (Ok(()), false) => batches.send(),
            (Err(e), false) => {
                let _ = batches.send();
                Err(e)
            }
        };
        // Closing the queue ends the sealing thread once it has sealed what is queued.
        drop(batches);
        let sealed = sealer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match (read, sealed) {
            (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
            (Ok(()), Ok(done)) => Ok(done),
        }
    })
}
