//! The restore's last pass: the archive read once more (every record authenticated again), each
//! content key re-sealed to the device on one thread while another inserts the licenses, all in
//! one store transaction.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use super::scan::{KeyTally, ScannedArchive};
use crate::archive::RecordReader;
use crate::clock::now_secs;
use crate::crypto::{KeyPair, NoncePool};
use crate::device::{DeviceKeys, RowFields};
use crate::error::{Error, ErrorCode, Result};
use crate::file_kind::FileKind;
use crate::key_id::KeyId;
use crate::license::{ConflictPolicy, Rights};
use crate::secret::{self, Replacement};
use crate::sqlite::{
    LogWriteback, ROWS_PER_INSERT, RawInsert, insert_chunked, no_autocheckpoint, open_connection, values_placeholders,
};
use crate::store::{
    LICENSE_INSERT_COLUMNS, LICENSE_ROW_COLUMNS, LICENSE_UPSERT, ROW_COLUMNS, StoreKeys, StoredRow, TOMBSTONE_COLUMNS,
    UNLISTED_TAKE, bind_license_values, catalog_entry, read_row, stored_row, tombstone,
};

/// How many licenses the reading thread of a restore hands to the writing thread at a time: one
/// multi-row `INSERT`.
const APPLY_BATCH: usize = ROWS_PER_INSERT;
/// Every how many batches (~1.5 MB of log at 1M licenses) the writing thread asks the kernel to
/// start writing the store's log ([`LogWriteback`]; 4 and 64 measured no better).
const WRITEBACK_BATCHES: u32 = 16;
/// How many batches may wait for the writing thread (memory stays bounded).
const APPLY_QUEUE: usize = 4;
/// Licenses re-sealed per read when an individualizing restore re-binds the existing ones.
const RESEAL_CHUNK: usize = 1024;
/// SQLite's page cache for a restore's store connection, in KiB (96 pages of 16 KiB). With 64
/// pages or fewer, SQLite spills B-tree interior pages while leaves are still being added under
/// them, then writes them again over their first frame in the log, and the commit reads the
/// log back from the first such frame to the end to checksum every frame again: at 1M licenses
/// the whole 160 MB log, ~0.05 s of CPU on the committing thread (72 pages and more: no such
/// frame at 100k or 1M; see `docs/performance.md`, seventh round). Memory stays flat: a 10k
/// restore's store (~100 pages) fills most of it too.
const RESTORE_CACHE_KIB: i64 = 1536;

/// Where a restore goes: the store, the device the restored licenses are bound to, and the
/// single transaction that applies them. Nothing is written before [`RestoreTarget::apply`],
/// which reads the archive once more (every record authenticated again), re-seals each content
/// key to the device and inserts the licenses straight into the store, which is locked for that
/// one transaction only.
pub(crate) struct RestoreTarget {
    conn: Connection,
    /// The store's file.
    path: std::path::PathBuf,
    keys: Arc<StoreKeys>,
    device: Arc<DeviceKeys>,
    /// The device's identity when the restore started (replaced at commit when individualizing).
    current: Arc<DeviceKeys>,
    /// The new identity's secret, wrapped by the store's protector before the transaction
    /// (individualizing only).
    replacement: Option<Replacement>,
}

/// One license ready to insert; its strings and sealed key live in the batch's buffers.
struct ReadyRow {
    key_id: KeyId,
    sealed: std::ops::Range<usize>,
    rights: Rights,
    issuer: std::ops::Range<usize>,
    issued_at: i64,
    catalog: Option<[Option<std::ops::Range<usize>>; 3]>,
}

/// Licenses decrypted and re-sealed by the reading thread, for the writing thread.
#[derive(Default)]
struct ReadyBatch {
    text: String,
    sealed: Vec<u8>,
    rows: Vec<ReadyRow>,
}

impl ReadyBatch {
    /// The batch, leaving an empty one with as much room (so the next does not grow its
    /// buffers again from nothing).
    fn take_sized(&mut self) -> ReadyBatch {
        let next = ReadyBatch {
            text: String::with_capacity(self.text.capacity()),
            sealed: Vec::with_capacity(self.sealed.capacity()),
            rows: Vec::with_capacity(self.rows.capacity()),
        };
        std::mem::replace(self, next)
    }

    fn push_text(&mut self, s: &str) -> std::ops::Range<usize> {
        let start = self.text.len();
        self.text.push_str(s);
        start..self.text.len()
    }

    fn text(&self, r: &Option<std::ops::Range<usize>>) -> Option<&str> {
        r.as_ref().map(|r| &self.text[r.clone()])
    }
}

impl RestoreTarget {
    /// Opens the store at `path` for a restore. With `individualize`, a fresh device identity is
    /// made now (its seed wrapped by the store's protector now, so no protector is called while
    /// the store is locked) and applied at commit.
    pub(crate) fn new(path: &Path, keys: &Arc<StoreKeys>, individualize: bool) -> Result<Self> {
        crate::file_kind::check(path, FileKind::Store)?;
        let conn = open_connection(path)?;
        conn.pragma_update(None, "cache_size", -RESTORE_CACHE_KIB)?;
        // The commit leaves its pages in the log; the checkpoint runs after the restore.
        no_autocheckpoint(&conn)?;
        // Each multi-row INSERT keeps a statement journal (the pages it changed, to undo it
        // alone): in memory, a statement's few pages, instead of a temporary file written
        // and rewritten for every statement (~2 GB of writes at 1M licenses).
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let current = keys.load(&conn)?;
        let (device, replacement) = if individualize {
            let pair = KeyPair::generate();
            let file = secret::file(&conn, FileKind::Store)?
                .ok_or_else(|| Error::new(ErrorCode::Storage, "the store has no secret key"))?;
            let replacement = Replacement::new(&file, &pair, keys.protector())?;
            (Arc::new(DeviceKeys::new(pair)), Some(replacement))
        } else {
            (Arc::clone(&current), None)
        };
        Ok(RestoreTarget { conn, path: path.to_owned(), keys: Arc::clone(keys), device, current, replacement })
    }

    /// The identity an individualizing restore replaces (`None` for a plain restore).
    pub(crate) fn replaced(&self) -> Option<&DeviceKeys> {
        self.replacement.as_ref().map(|_| &*self.current)
    }

    /// The device the restored licenses are bound to.
    pub(crate) fn device(&self) -> &DeviceKeys {
        &self.device
    }

    /// Applies the licenses of `records` to the store in one transaction: re-binds existing
    /// licenses when individualizing, inserts the restored ones under `policy` (a thread reads
    /// and re-seals while this one writes), and adds catalog entries the device does not have
    /// (a license row keeps its entry; a key ID's entry without a license goes into its row).
    /// `expected` is what the earlier passes saw (count, key-ID digest): anything else rolls
    /// back with `ARCHIVE_CORRUPT`, as does any damaged record, and `stop()` (checked between
    /// batches) rolls back with its error. The same transaction marks the restore's journal
    /// entry `request` committed. Returns (restored, skipped).
    pub(crate) fn apply<R: std::io::Read + Send>(
        mut self,
        policy: ConflictPolicy,
        records: RecordReader<R>,
        expected: &ScannedArchive,
        request: &crate::service::RequestId,
        stop: &dyn Fn() -> Result<()>,
    ) -> Result<(u64, u64)> {
        let replacement = self.replacement.take();
        let device = Arc::clone(&self.device);
        let device = &*device;
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if self.keys.load(&tx)?.id() != self.current.id() {
            // An individualizing restore (through another store object on this file) replaced
            // the device key since this restore started: the archive was authorized for, and
            // would be sealed to (or would replace), the old identity. Nothing is applied.
            return Err(Error::new(
                ErrorCode::Busy,
                "another restore gave this device a new identity while this one ran; nothing was restored, \
                 try again",
            ));
        }
        crate::journal::mark_committed(&tx, request)?;
        if let Some(replacement) = &replacement {
            rebind_all(&tx, &*self.keys.load(&tx)?, device, replacement)?;
        }
        // What the store holds or held narrows what the archive brings back: the store's own
        // row (when replacing) or a removed license's tombstone.
        let tombstones: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM main.tombstones)", [], |r| r.get(0))?;
        let unlisted: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM main.catalog)", [], |r| r.get(0))?;
        let licensed: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM main.licenses)", [], |r| r.get(0))?;
        let narrow = Narrowing { device, replace: policy == ConflictPolicy::Replace, tombstones, unlisted, licensed };
        let (restored, seen) = std::thread::scope(|scope| -> Result<(u64, u64)> {
            let (ready, incoming) = std::sync::mpsc::sync_channel::<ReadyBatch>(APPLY_QUEUE);
            let reader = std::thread::Builder::new()
                .name("license-reseal".into())
                .spawn_scoped(scope, move || read_and_seal(records, device, ready))
                .map_err(|e| Error::internal(format!("cannot start a restore thread: {e}")))?;
            let writeback = LogWriteback::new(&self.path, WRITEBACK_BATCHES);
            let written = write_batches(&tx, policy, &narrow, incoming, writeback, stop);
            // The reader stops at its next send once `incoming` is dropped (on an error here).
            let read = reader.join().map_err(|_| Error::internal("the restore's reading thread panicked"))?;
            let restored = written?;
            let seen = read?;
            expected.check_same(&seen)?;
            let count = seen.licenses();
            Ok((restored, count))
        })?;
        tx.commit()?;
        if replacement.is_some() {
            self.keys.remember(Arc::clone(&self.device));
        }
        Ok((restored, seen - restored))
    }
}

/// The reading side of [`RestoreTarget::apply`]: decrypts each record, re-seals its content
/// key to `device` and hands the licenses over in batches. Returns the licenses it read.
fn read_and_seal<R: std::io::Read>(
    mut records: RecordReader<R>,
    device: &DeviceKeys,
    ready: std::sync::mpsc::SyncSender<ReadyBatch>,
) -> Result<KeyTally> {
    let mut tally = KeyTally::default();
    let mut nonces = NoncePool::new(usize::MAX);
    let mut aad = Vec::new();
    let mut batch = ReadyBatch::default();
    while let Some(view) = records.next_view()? {
        let f = &view.fields;
        tally.add(f.key_id.as_bytes());
        let start = batch.sealed.len();
        let row = RowFields { key_id: &f.key_id, rights: &f.rights, issuer: f.issuer, issued_at: f.issued_at };
        device.seal_row_into(&mut nonces, &row, view.content_key, &mut aad, &mut batch.sealed);
        let sealed = start..batch.sealed.len();
        let issuer = batch.push_text(f.issuer);
        let catalog = f.has_catalog().then(|| [f.title, f.artist, f.file_path].map(|t| t.map(|t| batch.push_text(t))));
        batch.rows.push(ReadyRow {
            key_id: f.key_id,
            sealed,
            rights: f.rights.clone(),
            issuer,
            issued_at: f.issued_at,
            catalog,
        });
        if batch.rows.len() == APPLY_BATCH && ready.send(batch.take_sized()).is_err() {
            // The writing side stopped (its error is the one reported).
            return Err(Error::cancelled());
        }
    }
    if !batch.rows.is_empty() && ready.send(batch).is_err() {
        return Err(Error::cancelled());
    }
    Ok(tally)
}

/// The writing side of [`RestoreTarget::apply`]: inserts every batch, telling `writeback` after
/// each; returns how many licenses were added.
fn write_batches(
    tx: &Connection,
    policy: ConflictPolicy,
    narrow: &Narrowing<'_>,
    incoming: std::sync::mpsc::Receiver<ReadyBatch>,
    mut writeback: LogWriteback,
    stop: &dyn Fn() -> Result<()>,
) -> Result<u64> {
    // Keep: a key ID the store has a license for is skipped (above). Replace: its row takes the
    // archive's license and keeps its own catalog entry, or takes the archive's if it has none.
    let (verb, upsert) = match policy {
        ConflictPolicy::Keep => ("INSERT OR IGNORE", String::new()),
        ConflictPolicy::Replace => (
            "INSERT",
            format!(
                " {LICENSE_UPSERT}, title = iif(cataloged, title, excluded.title), \
                 artist = iif(cataloged, artist, excluded.artist), \
                 file_path = iif(cataloged, file_path, excluded.file_path), \
                 cataloged = max(cataloged, excluded.cataloged)"
            ),
        ),
    };
    let licenses = |rows| {
        format!(
            "{verb} INTO main.licenses ({LICENSE_INSERT_COLUMNS}) VALUES {}{upsert}",
            values_placeholders(LICENSE_ROW_COLUMNS, rows)
        )
    };
    let (mut licenses_many, mut licenses_one) =
        (RawInsert::prepare(tx, &licenses(ROWS_PER_INSERT))?, RawInsert::prepare(tx, &licenses(1))?);
    let mut restored = 0u64;
    let mut forget = tx.prepare("DELETE FROM main.tombstones WHERE key_id = ?1")?;
    let mut unlisted = tx.prepare(UNLISTED_TAKE)?;
    let mut fill = tx.prepare(
        "UPDATE main.licenses SET title = ?2, artist = ?3, file_path = ?4, cataloged = 1 WHERE key_id = ?1 AND NOT cataloged",
    )?;
    let mut nonces = NoncePool::new(usize::MAX);
    for mut batch in incoming {
        stop()?;
        if narrow.replace || narrow.tombstones || narrow.licensed {
            let mut kept = Vec::new();
            for i in 0..batch.rows.len() {
                let key_id = batch.rows[i].key_id;
                let k = key_id.as_bytes().as_slice();
                match narrow.apply(tx, &mut batch, i, &mut nonces)? {
                    Held::Tombstone => {
                        forget.execute([k])?;
                    }
                    Held::Kept => {
                        kept.push(i);
                        // The license stays; the archive's catalog entry is added if its row
                        // has none.
                        if let Some([title, artist, file_path]) = &batch.rows[i].catalog {
                            fill.execute(params![k, batch.text(title), batch.text(artist), batch.text(file_path)])?;
                        }
                    }
                    Held::Nothing | Held::Replaced => {}
                }
            }
            if !kept.is_empty() {
                let mut i = 0;
                batch.rows.retain(|_| {
                    i += 1;
                    kept.binary_search(&(i - 1)).is_err()
                });
            }
        }
        if narrow.unlisted {
            // The device's own entry of a key ID with no license wins over the archive's, and
            // moves into the license's row (a key ID with a license has no such entry).
            for row in &mut batch.rows {
                let Some(entry) = unlisted.query_row([row.key_id.as_bytes().as_slice()], catalog_entry).optional()?
                else {
                    continue;
                };
                let mut push = |t: &Option<String>| {
                    t.as_deref().map(|t| {
                        let start = batch.text.len();
                        batch.text.push_str(t);
                        start..batch.text.len()
                    })
                };
                row.catalog = Some([push(&entry.title), push(&entry.artist), push(&entry.file_path)]);
            }
        }
        let batch = &batch;
        restored +=
            insert_chunked(&mut licenses_many, &mut licenses_one, LICENSE_ROW_COLUMNS, &batch.rows, |b, at, row| {
                let (sealed, issuer) = (&batch.sealed[row.sealed.clone()], &batch.text[row.issuer.clone()]);
                let entry = row.catalog.as_ref().map(|c| c.each_ref().map(|t| batch.text(t)));
                bind_license_values(b, at, &row.key_id, sealed, &row.rights, issuer, row.issued_at, entry);
            })? as u64;
        writeback.wrote();
    }
    Ok(restored)
}

/// What a restore's licenses are narrowed by: the row the store holds (when replacing) or the
/// tombstone of one it held. Both are checked against their seals first.
struct Narrowing<'a> {
    device: &'a DeviceKeys,
    replace: bool,
    tombstones: bool,
    /// The store has catalog entries of key IDs with no license.
    unlisted: bool,
    /// The store has licenses (under `Keep`, each restored key ID is looked up).
    licensed: bool,
}

impl Narrowing<'_> {
    /// Narrows the rights of `batch.rows[i]` by what the store holds or held of its key ID,
    /// sealing its content key again when they change. Returns what the store has of it.
    fn apply(&self, tx: &Connection, batch: &mut ReadyBatch, i: usize, nonces: &mut NoncePool) -> Result<Held> {
        let key_id = batch.rows[i].key_id;
        let existing = match read_row(tx, &key_id)? {
            // Kept as it is: the archived copy is skipped.
            Some(_) if !self.replace => return Ok(Held::Kept),
            Some(row) => {
                // The rows were sealed again to `device` when individualizing.
                self.device.check_row(&row.fields(), &row.sealed, &mut Vec::new(), &mut Vec::new())?;
                Some((row, false))
            }
            None if self.tombstones => tombstone(tx, self.device, &key_id)?.map(|t| (t, true)),
            None => None,
        };
        let Some((held, is_tombstone)) = existing else { return Ok(Held::Nothing) };
        let row = &batch.rows[i];
        let narrowed = row.rights.narrower(&held.rights);
        if narrowed != row.rights {
            let issuer = batch.text[row.issuer.clone()].to_owned();
            let archived =
                RowFields { key_id: &key_id, rights: &row.rights, issuer: &issuer, issued_at: row.issued_at };
            let key = self.device.open_row(&archived, &batch.sealed[row.sealed.clone()])?;
            let fields = RowFields { rights: &narrowed, ..archived };
            let sealed = self.device.seal_row(nonces, &fields, &key);
            let start = batch.sealed.len();
            batch.sealed.extend_from_slice(&sealed);
            let row = &mut batch.rows[i];
            row.sealed = start..batch.sealed.len();
            row.rights = narrowed;
        }
        Ok(if is_tombstone { Held::Tombstone } else { Held::Replaced })
    }
}

/// What the store has of a restored license's key ID.
enum Held {
    /// Nothing: the license is added.
    Nothing,
    /// A license it keeps (the archived one is skipped).
    Kept,
    /// A license the archived one replaces.
    Replaced,
    /// The tombstone of a license it held (it goes: the license is back).
    Tombstone,
}

/// Re-seals every license and tombstone in the store from the device key `old` to `device` (an
/// individualizing restore), a chunk at a time so memory stays flat, and writes the new
/// identity. A row that does not match its seal fails the restore (`LICENSE_TAMPERED`).
fn rebind_all(tx: &Connection, old: &DeviceKeys, device: &DeviceKeys, replacement: &Replacement) -> Result<()> {
    let mut nonces = NoncePool::new(usize::MAX);
    {
        let mut read =
            tx.prepare(&format!("SELECT {ROW_COLUMNS} FROM main.licenses WHERE key_id > ?1 ORDER BY key_id LIMIT ?2"))?;
        let mut update = tx.prepare("UPDATE main.licenses SET sealed_key = ?2 WHERE key_id = ?1")?;
        let mut after: Vec<u8> = Vec::new();
        loop {
            let chunk: Vec<StoredRow> =
                read.query_map(params![after, RESEAL_CHUNK as i64], stored_row)?.collect::<rusqlite::Result<_>>()?;
            let Some(last) = chunk.last() else { break };
            after = last.key_id.as_bytes().to_vec();
            for row in &chunk {
                let key = old.open_row(&row.fields(), &row.sealed)?;
                update.execute(params![
                    row.key_id.as_bytes().as_slice(),
                    device.seal_row(&mut nonces, &row.fields(), &key)
                ])?;
            }
        }
    }
    let tombstones: Vec<StoredRow> = tx
        .prepare(&format!("SELECT {TOMBSTONE_COLUMNS} FROM main.tombstones"))?
        .query_map([], stored_row)?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = tx.prepare("UPDATE main.tombstones SET seal = ?2 WHERE key_id = ?1")?;
    for t in &tombstones {
        old.check_tombstone(&t.fields(), &t.sealed)?;
        update.execute(params![t.key_id.as_bytes().as_slice(), device.seal_tombstone(&mut nonces, &t.fields())])?;
    }
    replacement.write(tx)?;
    tx.execute(
        "UPDATE main.device SET device_id = ?1, created_at = ?2 WHERE singleton = 1",
        params![device.id().as_slice(), now_secs()],
    )?;
    Ok(())
}
