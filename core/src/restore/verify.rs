//! The restore's verifying pass, before the store is touched, reporting PROGRESS as batches
//! check out: for a version-2 archive every record byte hashed again and compared with the
//! header's commitment (which the service authenticated when it opened the archive's key), on a
//! thread started before the service is asked ([`CommitmentCheck`]); for a version-1 archive,
//! which commits to nothing, every record authenticated and decoded on several threads once the
//! service granted the archive's key.

use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::scan::{KeyTally, ScannedArchive};
use crate::archive::{
    Commitment, Digesting, RECORD_END, RECORDS_DOMAIN, each_frame, expect_eof, open_record, read_exact_or_corrupt,
    read_frame,
};
use crate::crypto::SealingKey;
use crate::error::{Error, Result};

/// Threads that authenticate records in [`ScannedArchive::verify_sealed`], besides the reading
/// one.
const VERIFY_THREADS: usize = 2;
/// Records per batch handed to a verifying thread.
const VERIFY_BATCH: usize = 256;
/// Batches each verifying thread may hold (queued, in work or done and not yet collected).
const VERIFY_DEPTH: usize = 2;

/// Raw records (frames and sealed bodies) read for a verifying thread.
struct SealedBatch {
    first_index: u64,
    licenses: u64,
    bytes: Vec<u8>,
}

/// Reads up to [`VERIFY_BATCH`] records into `batch`, hashing their key IDs; sets `finished`
/// after the end record.
fn read_batch(r: &mut impl Read, batch: &mut SealedBatch, tally: &mut KeyTally, finished: &mut bool) -> Result<()> {
    batch.bytes.clear();
    batch.licenses = 0;
    let mut records = 0;
    while records < VERIFY_BATCH && !*finished {
        let frame = read_frame(r)?;
        batch.bytes.push(frame.kind);
        batch.bytes.extend_from_slice(&frame.key_id);
        batch.bytes.extend_from_slice(&frame.len.to_le_bytes());
        let start = batch.bytes.len();
        batch.bytes.resize(start + frame.len as usize, 0);
        read_exact_or_corrupt(r, &mut batch.bytes[start..], "a record")?;
        records += 1;
        if frame.kind == RECORD_END {
            *finished = true;
        } else {
            batch.licenses += 1;
            tally.add(&frame.key_id);
        }
    }
    Ok(())
}

/// Authenticates and decodes every record of a batch read by [`read_batch`].
fn verify_batch(key: &SealingKey, archive_id: &[u8; 16], batch: &SealedBatch) -> Result<()> {
    let mut plain = Zeroizing::new(Vec::with_capacity(1024));
    let mut rest = batch.bytes.as_slice();
    let mut index = batch.first_index;
    while !rest.is_empty() {
        let frame = read_frame(&mut rest)?;
        let (body, tail) = rest.split_at(frame.len as usize);
        rest = tail;
        plain.clear();
        plain.extend_from_slice(body);
        let checked = open_record(key, archive_id, index, &frame, &mut plain).map(|_| ());
        plain.as_mut_slice().zeroize();
        checked?;
        index += 1;
    }
    Ok(())
}

/// The verifying pass of a version-2 archive, running on a thread of its own: it needs no key,
/// so it starts before the service is asked and is mostly done when the service answers. The
/// restore reports its progress after BEGIN ([`CommitmentCheck::report`]). Dropping it stops the
/// thread at its next batch (the thread's scope then joins it).
pub(crate) struct CommitmentCheck {
    state: Arc<CheckState>,
}

#[derive(Default)]
struct CheckState {
    progress: Mutex<Checked>,
    changed: Condvar,
    stop: AtomicBool,
}

/// How far the checking thread got: licenses checked, and its outcome once it ended.
#[derive(Default)]
struct Checked {
    licenses: u64,
    outcome: Option<Result<()>>,
}

impl Drop for CommitmentCheck {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
    }
}

impl CommitmentCheck {
    /// Calls `done(n)`, in archive order, as the checking thread gets through `n` more licenses
    /// (the last ones once the whole archive checked out), until it ends; returns its outcome
    /// (an error from `done` stops the thread and is returned).
    pub(crate) fn report(&self, mut done: impl FnMut(u64) -> Result<()>) -> Result<()> {
        let mut reported = 0;
        loop {
            let (licenses, outcome) = {
                let mut p = self.state.progress.lock().unwrap_or_else(PoisonError::into_inner);
                while p.licenses == reported && p.outcome.is_none() {
                    p = self.state.changed.wait(p).unwrap_or_else(PoisonError::into_inner);
                }
                (p.licenses, p.outcome.take())
            };
            if licenses > reported {
                done(licenses - reported)?;
                reported = licenses;
            }
            if let Some(outcome) = outcome {
                return outcome;
            }
        }
    }
}

impl ScannedArchive {
    /// Starts the verifying pass of a version-2 archive on a thread of `scope`
    /// ([`Self::verify_committed`]); `None` for a version-1 archive, whose records can only be
    /// checked with the key the service grants ([`Self::verify_sealed`]).
    pub(crate) fn start_check<'scope>(
        &'scope self,
        scope: &'scope std::thread::Scope<'scope, '_>,
    ) -> Result<Option<CommitmentCheck>> {
        let Some(commitment) = &self.header.commitment else { return Ok(None) };
        let state = Arc::new(CheckState::default());
        let shared = Arc::clone(&state);
        std::thread::Builder::new()
            .name("license-verify".into())
            .spawn_scoped(scope, move || {
                let outcome = self.verify_committed(commitment, |n| {
                    if shared.stop.load(Ordering::Relaxed) {
                        return Err(Error::cancelled());
                    }
                    shared.progress.lock().unwrap_or_else(PoisonError::into_inner).licenses += n;
                    shared.changed.notify_all();
                    Ok(())
                });
                shared.progress.lock().unwrap_or_else(PoisonError::into_inner).outcome = Some(outcome);
                shared.changed.notify_all();
            })
            .map_err(|e| Error::internal(format!("cannot start a restore thread: {e}")))?;
        Ok(Some(CommitmentCheck { state }))
    }

    /// Hashes every record byte of the file again, as the scan did, and checks the digest,
    /// the licenses' count and their key IDs against `commitment`: the header is authenticated
    /// (the service opened the archive's key with it as associated data, and the grant is bound
    /// to the archive), so the records are those the archive's maker sealed, byte for byte,
    /// unless SHA-256 is broken. This catches a file changed in place after the scan before
    /// anything is written, at a fraction of the cost of opening every record (which the writing
    /// pass does anyway). `done(n)` is called as each batch of `n` licenses is read; the last one
    /// after the digest matched.
    fn verify_committed(&self, commitment: &Commitment, mut done: impl FnMut(u64) -> Result<()>) -> Result<()> {
        let mut digest = Sha256::new();
        digest.update(RECORDS_DOMAIN);
        let mut r = BufReader::with_capacity(256 * 1024, Digesting { inner: self.at_records(), digest });
        let (mut tally, mut batch) = (KeyTally::default(), 0u64);
        each_frame(&mut r, |key_id| {
            tally.add(key_id);
            // A full batch is reported once another license follows: the last one always waits
            // for the digest.
            if batch == VERIFY_BATCH as u64 {
                done(std::mem::take(&mut batch))?;
            }
            batch += 1;
            Ok(())
        })?;
        let records: [u8; 32] = r.into_inner().digest.finalize().into();
        if records != commitment.records || !tally.matches_commitment(commitment) {
            return Err(Error::corrupt("the archive changed while it was being restored"));
        }
        self.check_same(&tally)?;
        if batch > 0 {
            done(batch)?;
        }
        Ok(())
    }

    /// Authenticates and decodes every record of the archive without keeping any: the reading
    /// thread (the caller's) hands batches to [`VERIFY_THREADS`] threads and calls `done(n)` in
    /// archive order as each batch of `n` licenses checks out (an error from `done` stops
    /// everything). Then checks that what it read is what the scan saw.
    pub(crate) fn verify_sealed(&self, data_key: &[u8; 32], mut done: impl FnMut(u64) -> Result<()>) -> Result<()> {
        let key = SealingKey::new(data_key);
        let archive_id = self.header.archive_id;
        let mut r = self.rewind();
        let seen = std::thread::scope(|scope| -> Result<KeyTally> {
            let mut lanes = Vec::with_capacity(VERIFY_THREADS);
            for n in 0..VERIFY_THREADS {
                let (to_lane, lane_in) = std::sync::mpsc::sync_channel::<SealedBatch>(VERIFY_DEPTH);
                let (lane_out, from_lane) = std::sync::mpsc::sync_channel::<(SealedBatch, Result<()>)>(VERIFY_DEPTH);
                let key = &key;
                std::thread::Builder::new()
                    .name(format!("license-verify{n}"))
                    .spawn_scoped(scope, move || {
                        for batch in lane_in {
                            let checked = verify_batch(key, &archive_id, &batch);
                            if lane_out.send((batch, checked)).is_err() {
                                break;
                            }
                        }
                    })
                    .map_err(|e| Error::internal(format!("cannot start a restore thread: {e}")))?;
                lanes.push((to_lane, from_lane));
            }
            let (mut tally, mut finished, mut index) = (KeyTally::default(), false, 0u64);
            let (mut sent, mut collected) = (0usize, 0usize);
            let mut spare: Vec<SealedBatch> = Vec::new();
            loop {
                while !finished && sent - collected < VERIFY_THREADS * VERIFY_DEPTH {
                    let mut batch =
                        spare.pop().unwrap_or(SealedBatch { first_index: 0, licenses: 0, bytes: Vec::new() });
                    batch.first_index = index;
                    read_batch(&mut r, &mut batch, &mut tally, &mut finished)?;
                    index += batch.licenses + u64::from(finished);
                    lanes[sent % VERIFY_THREADS]
                        .0
                        .send(batch)
                        .map_err(|_| Error::internal("a restore verifying thread stopped"))?;
                    sent += 1;
                }
                if collected == sent {
                    break;
                }
                let (batch, checked) = lanes[collected % VERIFY_THREADS]
                    .1
                    .recv()
                    .map_err(|_| Error::internal("a restore verifying thread stopped"))?;
                collected += 1;
                checked?;
                done(batch.licenses)?;
                spare.push(batch);
            }
            expect_eof(&mut r)?;
            Ok(tally)
        })?;
        self.check_same(&seen)
    }
}
