//! Inspecting an archive without any key: what an operator, a support engineer or a tool can
//! learn from a backup without the License Management Service.
//!
//! [`inspect`] reads the header (its checksum, version and suite checked as a restore checks
//! them) and walks the record frames to the end of the file, counting the license records and
//! hashing their key IDs, as a restore's first pass does. Nothing is decrypted: the records'
//! authenticity, and the header's, can only be checked with the data key (a restore). What
//! `inspect` finds is therefore a statement about the file's structure, not a proof that the
//! service would accept it.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{
    ARCHIVE_FILE_NAME, ArchiveHeader, FORMAT_VERSION, FRAME_LEN, HEADER_LEN, RECORD_END, open_archive, read_error,
    read_frame, read_header,
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
    /// SHA-256 over the 16-byte key IDs of those license records, in archive order: the digest a
    /// restore compares between its passes.
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
/// be read (no magic, a checksum mismatch, a malformed version-1 header),
/// `UNSUPPORTED_VERSION` for another format version, `WRONG_FILE_KIND` for a file that is not an
/// archive, and the path and media codes when the file cannot be read.
/// Damage after the header is not an error: it is reported in [`ArchiveInfo::damage`], with
/// the header's fields and what was read before it.
pub fn inspect(path: &Path) -> Result<ArchiveInfo> {
    let path = if path.is_dir() { path.join(ARCHIVE_FILE_NAME) } else { path.to_path_buf() };
    // The same checks as a restore's scan: a FIFO is not opened, an empty placeholder is no
    // archive, a folder or another kind of file is refused.
    let file = open_archive(&path)?;
    let meta = file.metadata().map_err(|e| read_error(&e))?;
    let size = meta.len();
    let mut r = BufReader::with_capacity(64 * 1024, file);
    let header = read_header(&mut r)?;
    let mut digest = Sha256::new();
    let (mut pos, mut record, mut licenses) = (HEADER_LEN as u64, 0u64, 0u64);
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
        if frame.kind == RECORD_END {
            // The end record's plaintext is two u64 counts: 16 bytes, then the tag.
            if frame.key_id != [0; 16] || frame.len != 32 {
                break found(pos, record, Error::corrupt("malformed end record"));
            }
            if end != size {
                let error = Error::corrupt(format!("{} unexpected bytes after the end record", size - end));
                break found(end, record + 1, error);
            }
            break None;
        }
        r.seek_relative(i64::from(frame.len)).map_err(|e| read_error(&e))?;
        digest.update(frame.key_id);
        licenses += 1;
        record += 1;
        pos = end;
    };
    Ok(ArchiveInfo {
        path,
        size,
        format_version: FORMAT_VERSION,
        header,
        licenses,
        key_ids_digest: digest.finalize().into(),
        damage,
    })
}
