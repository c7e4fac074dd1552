//! The restore's first pass: open the archive and read all of it once, without decrypting
//! anything: check its header and framing, count its licenses and hash their key IDs, hash every
//! record byte, and compare with what a version-2 header commits to; and the tally every later
//! pass is checked against.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

pub(crate) use crate::archive::KeyTally;
use crate::archive::{
    self, ArchiveHeader, Digesting, RECORD_END, RECORDS_DOMAIN, RecordReader, expect_eof, read_frame, read_header, skip,
};
use crate::error::{Error, Result};
use crate::key_id::KeyId;

/// An archive opened for a restore: its header, how many licenses it holds, the digest of their
/// key IDs, and the open file, which every later pass reads again (the same file, even if the
/// path is replaced meanwhile).
pub(crate) struct ScannedArchive {
    pub(crate) header: ArchiveHeader,
    /// The licenses the scan saw.
    pub(crate) tally: KeyTally,
    pub(super) file: File,
    pub(crate) size: u64,
}

/// Opens `path` and reads all of it once, without decrypting anything: the header, the framing
/// up to a single end record followed by the end of the file, the licenses' key IDs (counted and
/// hashed) and, for a version-2 archive, the digest of every record byte, which must be what
/// the header commits to. A damaged version-2 archive is therefore refused here, before the
/// service is asked for anything. Memory stays flat: nothing is kept per license.
pub(crate) fn scan(path: &Path) -> Result<ScannedArchive> {
    let file = archive::open_archive(path)?;
    let size = file.metadata().map_err(|e| archive::read_error(&e))?.len();
    // The header unbuffered, so that the digesting reader starts at the first record.
    let header = read_header(&mut &file)?;
    let mut digest = Sha256::new();
    digest.update(RECORDS_DOMAIN);
    let mut r = BufReader::with_capacity(256 * 1024, Digesting { inner: &file, digest });
    let mut tally = KeyTally::default();
    loop {
        let frame = read_frame(&mut r)?;
        skip(&mut r, frame.len as usize)?;
        if frame.kind == RECORD_END {
            break;
        }
        tally.add(&frame.key_id);
    }
    expect_eof(&mut r)?;
    let records: [u8; 32] = r.into_inner().digest.finalize().into();
    if let Some(c) = &header.commitment {
        if c.records != records {
            return Err(Error::corrupt("the archive's records are not those its header commits to"));
        }
        if !tally.matches_commitment(c) {
            return Err(Error::corrupt("the archive's licenses are not those its header commits to"));
        }
    }
    Ok(ScannedArchive { header, tally, file, size })
}

impl ScannedArchive {
    /// A reader of the archive's records from the first one (for every pass after the scan).
    pub(super) fn rewind(&self) -> Result<BufReader<&File>> {
        let mut f = &self.file;
        f.seek(SeekFrom::Start(self.header.len() as u64)).map_err(|e| archive::read_error(&e))?;
        Ok(BufReader::with_capacity(256 * 1024, f))
    }

    /// The archive's key IDs, in order, read again from its frames (for the service).
    pub(crate) fn key_ids(&self) -> Result<KeyIds<&File>> {
        Ok(KeyIds { r: self.rewind()?, tally: KeyTally::default(), finished: false })
    }

    /// A reader of the archive's records from the first one, with its data key.
    pub(crate) fn records(&self, data_key: &[u8; 32]) -> Result<RecordReader<BufReader<&File>>> {
        Ok(RecordReader::new(self.rewind()?, self.header.archive_id, data_key))
    }

    /// `ARCHIVE_CORRUPT` unless a pass over the archive saw the licenses of the scan, in order:
    /// the file was not changed in place while the restore ran.
    pub(crate) fn check_same(&self, seen: &KeyTally) -> Result<()> {
        if seen.matches(&self.tally) {
            Ok(())
        } else {
            Err(Error::corrupt("the archive changed while it was being restored"))
        }
    }
}

/// The key IDs of an archive's license records, read from their frames (nothing is decrypted);
/// the iteration ends at the end record. Damage is `ARCHIVE_CORRUPT`.
pub(crate) struct KeyIds<R> {
    r: BufReader<R>,
    tally: KeyTally,
    finished: bool,
}

impl<R: Read + Seek> KeyIds<R> {
    /// Whether the end record was reached, and the key IDs that came before it.
    pub(crate) fn summary(&self) -> (bool, &KeyTally) {
        (self.finished, &self.tally)
    }
}

impl<R: Read + Seek> Iterator for KeyIds<R> {
    type Item = Result<KeyId>;

    fn next(&mut self) -> Option<Result<KeyId>> {
        if self.finished {
            return None;
        }
        let step = read_frame(&mut self.r).and_then(|frame| {
            self.r.seek_relative(i64::from(frame.len)).map_err(|e| archive::read_error(&e))?;
            Ok(frame)
        });
        match step {
            Ok(frame) if frame.kind == RECORD_END => {
                self.finished = true;
                None
            }
            Ok(frame) => {
                self.tally.add(&frame.key_id);
                Some(Ok(KeyId::from_bytes(frame.key_id)))
            }
            Err(e) => {
                self.finished = true;
                Some(Err(e))
            }
        }
    }
}
