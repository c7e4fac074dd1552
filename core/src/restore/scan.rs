//! The restore's first pass: open the archive and read all of it once, without decrypting
//! anything: check its header and framing, count its licenses and hash their key IDs, hash every
//! record byte, and compare with what a version-2 header commits to; and the tally every later
//! pass is checked against.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

pub(crate) use crate::archive::KeyTally;
use crate::archive::{
    self, ArchiveHeader, RECORD_END, RECORDS_DOMAIN, RecordReader, each_frame, read_frame, read_header,
};
use crate::error::{Error, Result};
use crate::key_id::KeyId;

/// An archive opened for a restore: its header, how many licenses it holds, the digest of their
/// key IDs, and the open file, which every later pass reads again (the same file, even if the
/// path is replaced meanwhile), each from a position of its own ([`At`]), so passes on several
/// threads may read it at once.
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
/// the header commits to (hashed on a thread of its own while this one parses the frames). A
/// damaged version-2 archive is therefore refused here, before the service is asked for
/// anything. Memory stays flat: nothing is kept per license.
pub(crate) fn scan(path: &Path) -> Result<ScannedArchive> {
    let file = archive::open_archive(path)?;
    let size = file.metadata().map_err(|e| archive::read_error(&e))?.len();
    // The header unbuffered, so that the hashed blocks start at the first record.
    let header = read_header(&mut &file)?;
    let (tally, records) = std::thread::scope(|scope| -> Result<_> {
        let mut r = HashedBlocks::start(At { file: &file, pos: header.len() as u64 }, scope)?;
        let mut tally = KeyTally::default();
        each_frame(&mut r, |key_id| {
            tally.add(key_id);
            Ok(())
        })?;
        Ok((tally, r.finish()?))
    })?;
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

/// Bytes per block of [`HashedBlocks`].
const HASHED_BLOCK: usize = 256 * 1024;
/// Blocks read and not yet hashed, at most (memory stays bounded).
const HASHED_DEPTH: usize = 2;

/// The scan's reader of the records: the file in blocks, each block handed, once read through,
/// to a thread that hashes the records (most of the scan's time) while this one parses the next.
struct HashedBlocks<'f, 'scope> {
    file: At<'f>,
    block: Vec<u8>,
    pos: usize,
    /// Blocks read through, in order, to the hashing thread.
    to_hash: std::sync::mpsc::SyncSender<Vec<u8>>,
    /// Blocks it hashed, to be read into again.
    hashed: std::sync::mpsc::Receiver<Vec<u8>>,
    hasher: std::thread::ScopedJoinHandle<'scope, [u8; 32]>,
}

impl<'f, 'scope> HashedBlocks<'f, 'scope> {
    /// Reads `file` from its position on, its blocks hashed on a thread of `scope`.
    fn start(file: At<'f>, scope: &'scope std::thread::Scope<'scope, '_>) -> Result<Self> {
        let (to_hash, blocks) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASHED_DEPTH);
        let (give_back, hashed) = std::sync::mpsc::sync_channel(HASHED_DEPTH + 2);
        let hasher = std::thread::Builder::new()
            .name("license-hash".into())
            .spawn_scoped(scope, move || {
                let mut digest = Sha256::new();
                digest.update(RECORDS_DOMAIN);
                for block in blocks {
                    digest.update(&block);
                    let _ = give_back.try_send(block);
                }
                digest.finalize().into()
            })
            .map_err(|e| Error::internal(format!("cannot start a restore thread: {e}")))?;
        Ok(HashedBlocks { file, block: Vec::new(), pos: 0, to_hash, hashed, hasher })
    }

    /// The digest of every byte read (the domain first), once the last block is hashed.
    fn finish(self) -> Result<[u8; 32]> {
        let HashedBlocks { block, to_hash, hasher, .. } = self;
        if !block.is_empty() {
            let _ = to_hash.send(block);
        }
        drop(to_hash);
        hasher.join().map_err(|_| Error::internal("the restore's hashing thread panicked"))
    }
}

impl Read for HashedBlocks<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.fill_buf()?.read(buf)?;
        self.consume(n);
        Ok(n)
    }
}

impl io::BufRead for HashedBlocks<'_, '_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.block.len() {
            let mut next = self.hashed.try_recv().unwrap_or_default();
            next.resize(HASHED_BLOCK, 0);
            let n = self.file.read(&mut next)?;
            next.truncate(n);
            let done = std::mem::replace(&mut self.block, next);
            self.pos = 0;
            if !done.is_empty() && self.to_hash.send(done).is_err() {
                return Err(io::Error::other("the restore's hashing thread stopped"));
            }
        }
        Ok(&self.block[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.block.len());
    }
}

/// A reader of an open file that keeps its own position and reads with positioned reads
/// (`pread`; `seek_read` on Windows), so readers on several threads share the file but not an
/// offset.
pub(crate) struct At<'f> {
    file: &'f File,
    pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.pos)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for At<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let (base, offset) = match to {
            SeekFrom::Start(p) => (p, 0),
            SeekFrom::Current(d) => (self.pos, d),
            SeekFrom::End(d) => (self.file.metadata()?.len(), d),
        };
        self.pos = base
            .checked_add_signed(offset)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a seek before the start of the file"))?;
        Ok(self.pos)
    }
}

impl ScannedArchive {
    /// An unbuffered reader of the archive's records from the first one.
    pub(super) fn at_records(&self) -> At<'_> {
        At { file: &self.file, pos: self.header.len() as u64 }
    }

    /// A reader of the archive's records from the first one (for every pass after the scan).
    pub(super) fn rewind(&self) -> BufReader<At<'_>> {
        BufReader::with_capacity(256 * 1024, self.at_records())
    }

    /// The archive's key IDs, in order, read again from its frames (for the service).
    pub(crate) fn key_ids(&self) -> KeyIds<At<'_>> {
        KeyIds { r: self.rewind(), tally: KeyTally::default(), finished: false }
    }

    /// A reader of the archive's records from the first one, with its data key.
    pub(crate) fn records(&self, data_key: &[u8; 32]) -> RecordReader<BufReader<At<'_>>> {
        RecordReader::new(self.rewind(), self.header.archive_id, data_key)
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

/// Key IDs per chunk a [`ReadAhead`] thread hands over.
const READ_AHEAD_CHUNK: usize = 1024;
/// Chunks a [`ReadAhead`] thread may have read and not yet handed over (memory stays bounded).
const READ_AHEAD_DEPTH: usize = 4;

/// The archive's key IDs ([`ScannedArchive::key_ids`]) read on a thread of their own, a chunk
/// ahead of the service that consumes them: reading and parsing the frames is then off the
/// thread that writes the service's ledger. Dropping it stops the thread at its next chunk.
pub(crate) struct ReadAhead<'scope> {
    chunks: std::sync::mpsc::Receiver<Vec<Result<KeyId>>>,
    current: std::vec::IntoIter<Result<KeyId>>,
    /// Every chunk was handed over and the thread ended.
    exhausted: bool,
    reader: std::thread::ScopedJoinHandle<'scope, (bool, KeyTally)>,
}

impl<'scope> ReadAhead<'scope> {
    /// Starts reading the key IDs of `archive` on a thread of `scope`.
    pub(crate) fn start(
        archive: &'scope ScannedArchive,
        scope: &'scope std::thread::Scope<'scope, '_>,
    ) -> Result<Self> {
        let (send, chunks) = std::sync::mpsc::sync_channel(READ_AHEAD_DEPTH);
        let reader = std::thread::Builder::new()
            .name("license-key-ids".into())
            .spawn_scoped(scope, move || {
                let mut key_ids = archive.key_ids();
                loop {
                    let chunk: Vec<Result<KeyId>> = key_ids.by_ref().take(READ_AHEAD_CHUNK).collect();
                    if chunk.is_empty() || send.send(chunk).is_err() {
                        break;
                    }
                }
                let (finished, tally) = key_ids.summary();
                (finished, tally.clone())
            })
            .map_err(|e| Error::internal(format!("cannot start a restore thread: {e}")))?;
        Ok(ReadAhead { chunks, current: Vec::new().into_iter(), exhausted: false, reader })
    }

    /// What [`KeyIds::summary`] says, once every key ID was consumed: whether the end record
    /// was reached, and the key IDs before it. `(false, _)` when the consumer stopped early.
    pub(crate) fn finish(self) -> Result<(bool, KeyTally)> {
        if !self.exhausted {
            return Ok((false, KeyTally::default()));
        }
        self.reader.join().map_err(|_| Error::internal("the restore's key ID thread panicked"))
    }
}

impl Iterator for ReadAhead<'_> {
    type Item = Result<KeyId>;

    fn next(&mut self) -> Option<Result<KeyId>> {
        loop {
            if let Some(key_id) = self.current.next() {
                return Some(key_id);
            }
            if self.exhausted {
                return None;
            }
            match self.chunks.recv() {
                Ok(chunk) => self.current = chunk.into_iter(),
                Err(_) => self.exhausted = true,
            }
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
