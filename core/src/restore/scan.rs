//! The restore's first pass: open the archive, check its header and framing, count its
//! licenses and hash their key IDs, without decrypting anything; and the tally every later pass
//! is checked against.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::archive::{self, ArchiveHeader, HEADER_LEN, RECORD_END, RecordReader, expect_eof, read_frame, read_header};
use crate::error::{Error, Result};
use crate::key_id::KeyId;

/// The licenses a pass over an archive saw: how many, and a digest of their key IDs (SHA-256
/// over the 16-byte key IDs in order). What lets a restore check that the licenses it applies
/// are exactly those the service authorized, without keeping the list in memory.
#[derive(Clone, Default)]
pub(crate) struct KeyTally {
    licenses: u64,
    digest: Sha256,
}

impl KeyTally {
    /// Counts one more license.
    pub(crate) fn add(&mut self, key_id: &[u8; 16]) {
        self.licenses += 1;
        self.digest.update(key_id);
    }

    /// How many licenses were counted.
    pub(crate) fn licenses(&self) -> u64 {
        self.licenses
    }

    fn matches(&self, other: &KeyTally) -> bool {
        self.licenses == other.licenses && self.digest.clone().finalize() == other.digest.clone().finalize()
    }
}

/// An archive opened for a restore: its header, how many licenses it holds, the digest of their
/// key IDs, and the open file, which every later pass reads again (the same file, even if the
/// path is replaced meanwhile).
pub(crate) struct ScannedArchive {
    pub(crate) header: ArchiveHeader,
    /// The licenses the scan saw.
    pub(crate) tally: KeyTally,
    file: File,
    pub(crate) size: u64,
}

/// Opens `path`, checks its header and framing up to a single end record followed by the end of
/// the file, and counts its licenses, without decrypting anything. Memory stays flat: the key
/// IDs are hashed, not kept.
pub(crate) fn scan(path: &Path) -> Result<ScannedArchive> {
    let file = archive::open_archive(path)?;
    let size = file.metadata().map_err(|e| archive::read_error(&e))?.len();
    let mut r = BufReader::with_capacity(64 * 1024, &file);
    let header = read_header(&mut r)?;
    let mut walker = KeyIds { r, tally: KeyTally::default(), finished: false };
    for key_id in &mut walker {
        key_id?;
    }
    let KeyIds { mut r, tally, .. } = walker;
    let pos = r.stream_position().map_err(|e| archive::read_error(&e))?;
    if pos > size {
        return Err(Error::corrupt("archive truncated in the end record"));
    }
    expect_eof(&mut r)?;
    drop(r);
    Ok(ScannedArchive { header, tally, file, size })
}

impl ScannedArchive {
    /// A reader of the archive's records from the first one (for every pass after the scan).
    pub(super) fn rewind(&self) -> Result<BufReader<&File>> {
        let mut f = &self.file;
        f.seek(SeekFrom::Start(HEADER_LEN as u64)).map_err(|e| archive::read_error(&e))?;
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
