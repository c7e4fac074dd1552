//! Inspecting an archive without any key: what an operator, a support engineer or a tool can
//! learn from a backup without the License Management Service.
//!
//! [`inspect`] reads the header (its checksum, version and suite checked as a restore checks
//! them) and walks the record frames to the end of the file, counting the license records,
//! hashing their key IDs and every record byte, as a restore's first pass does; for a version-2
//! archive it compares them with what the header commits to, so any damaged byte is found
//! without a key. Nothing is decrypted: the header's commitments are authenticated, and the
//! records' contents checked, only with the data key (a restore). What `inspect` finds is
//! therefore a statement about the file, not a proof that the service would accept it.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{
    ARCHIVE_FILE_NAME, ArchiveHeader, Digesting, FRAME_LEN, KeyTally, RECORD_END, RECORDS_DOMAIN, open_archive,
    read_error, read_frame, read_header, skip,
};
use crate::error::{Error, ErrorCode, Result};

/// What [`inspect`] found in an archive, read without any key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveInfo {
    /// The archive file that was read.
    pub path: PathBuf,
    /// The file's size in bytes.
    pub size: u64,
    /// The header's format version.
    pub format_version: u16,
    /// The header (its checksum matched; its fields are not authenticated without the data key).
    pub header: ArchiveHeader,
    /// License records whose frames were read: every one when the framing is intact, those
    /// before the damage otherwise.
    pub licenses: u64,
    /// The digest of those license records' key IDs, in archive order (SHA-256 of
    /// [`super::KEY_IDS_DOMAIN`] and the 16-byte key IDs): what a version-2 header commits to,
    /// and what a restore compares between its passes.
    pub key_ids_digest: [u8; 32],
    /// Where the framing breaks, if it does; `None` when the frames run from the header to one
    /// end record that closes the file.
    pub damage: Option<FramingDamage>,
}

impl ArchiveInfo {
    /// Whether the framing is intact: license records, then one well-formed end record, then
    /// the end of the file.
    pub fn is_intact(&self) -> bool {
        self.damage.is_none()
    }
}

/// Where and how an archive's framing breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramingDamage {
    /// Byte offset in the file of the record (its frame) where the damage is found, or of the
    /// first byte after the end record when that is what is wrong.
    pub offset: u64,
    /// Index of that record, counting every record from 0 in file order (the index a restore
    /// reports).
    pub record: u64,
    /// What is wrong: an `ARCHIVE_CORRUPT` error, as a restore would report it.
    pub error: Error,
}

/// Inspects the archive at `path` (the archive file, or the folder that holds
/// `licenses.lbk`) without any key: checks its header and walks its frames to the end of the
/// file. Never writes anything.
///
/// Errors: `ARCHIVE_MISSING` when there is no archive, `ARCHIVE_CORRUPT` when the header cannot
/// be read (a truncated magic, a checksum mismatch, a malformed header),
/// `UNSUPPORTED_VERSION` for another format version, `WRONG_FILE_KIND` for a file that is not an
/// archive, and the path and media codes when the file cannot be read.
/// Damage after the header is not an error: it is reported in [`ArchiveInfo::damage`], with
/// the header's fields and what was read before it. In a version-2 archive whose framing is
/// intact, records that are not the bytes (or the licenses) the header commits to are damage
/// at the first record (the digests say that a byte changed, not which).
pub fn inspect(path: &Path) -> Result<ArchiveInfo> {
    let path = if path.is_dir() { path.join(ARCHIVE_FILE_NAME) } else { path.to_path_buf() };
    // The same checks as a restore's scan: a FIFO is not opened, an empty placeholder is no
    // archive, a folder or another kind of file is refused.
    let file = open_archive(&path)?;
    let meta = file.metadata().map_err(|e| read_error(&e))?;
    let size = meta.len();
    // The header unbuffered, so that the digesting reader starts at the first record.
    let header = read_header(&mut &file)?;
    let mut digest = Sha256::new();
    digest.update(RECORDS_DOMAIN);
    let mut r = BufReader::with_capacity(64 * 1024, Digesting { inner: &file, digest });
    let mut tally = KeyTally::default();
    let first = header.len() as u64;
    let (mut pos, mut record) = (first, 0u64);
    let damage = loop {
        let found = |offset: u64, record: u64, error: Error| Some(FramingDamage { offset, record, error });
        if pos >= size {
            let error = Error::corrupt(format!("the archive ends after {record} records, without an end record"));
            break found(pos, record, error);
        }
        let frame = match read_frame(&mut r) {
            Ok(frame) => frame,
            Err(e) if e.code() == ErrorCode::ArchiveCorrupt => break found(pos, record, e),
            Err(e) => return Err(e),
        };
        let end = pos + FRAME_LEN as u64 + u64::from(frame.len);
        if end > size {
            break found(pos, record, Error::corrupt(format!("the archive is truncated inside record {record}")));
        }
        skip(&mut r, frame.len as usize)?;
        if frame.kind == RECORD_END {
            // The end record's plaintext is two u64 counts: 16 bytes, then the tag.
            if frame.key_id != [0; 16] || frame.len != 32 {
                break found(pos, record, Error::corrupt("malformed end record"));
            }
            if end != size {
                let error = Error::corrupt(format!("{} unexpected bytes after the end record", size - end));
                break found(end, record + 1, error);
            }
            let records: [u8; 32] = r.into_inner().digest.finalize().into();
            break match &header.commitment {
                Some(c) if c.records != records => {
                    found(first, 0, Error::corrupt("the archive's records are not those its header commits to"))
                }
                Some(c) if !tally.matches_commitment(c) => {
                    found(first, 0, Error::corrupt("the archive's licenses are not those its header commits to"))
                }
                _ => None,
            };
        }
        tally.add(&frame.key_id);
        record += 1;
        pos = end;
    };
    Ok(ArchiveInfo {
        path,
        size,
        format_version: header.version,
        licenses: tally.licenses(),
        key_ids_digest: tally.digest(),
        header,
        damage,
    })
}
