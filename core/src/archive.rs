//! The backup archive: one file, `licenses.lbk`, in the backup folder. The byte layout is
//! specified in `docs/archive-format.md`; this module is its reference implementation.
//!
//! A fresh 32-byte data key seals each archive's records with ChaCha20-Poly1305; the associated
//! data of every record binds the archive ID, the record's index, its type and its key ID, and a
//! final sealed record carries the record count, so reordering, splicing, truncation and
//! extension are all detected. The data key is wrapped with HPKE to the License Management
//! Service's public key. Reading streams one record at a time; writing, batches of records
//! (about 128 KiB each, sealed in place).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::{self, DATA_KEY_LEN, ENC_LEN, KeyPair, PUBLIC_KEY_LEN, SealingKey, TAG_LEN, WrappedKey};
use crate::error::{Error, ErrorCode, Result};
use crate::key_id::KeyId;
use crate::license::{CatalogEntry, License, LicenseFields, Rights, check_catalog_fields, check_license_fields};

mod inspect;
pub use inspect::{ArchiveInfo, FramingDamage, inspect};

/// The archive's file name inside the backup folder.
pub const ARCHIVE_FILE_NAME: &str = "licenses.lbk";
/// The magic bytes every archive starts with.
pub const MAGIC: &[u8; 8] = b"LICBAKUP";
/// The format version this library writes. It also reads version 1 (see [`V1_HEADER_LEN`]).
pub const FORMAT_VERSION: u16 = 2;
/// Length of a version-2 header.
pub const HEADER_LEN: usize = 280;
/// Length of a version-1 header.
pub const V1_HEADER_LEN: usize = 176;
/// Length of the version-2 header prefix that HPKE authenticates (everything before `enc`).
const AUTHENTICATED_LEN: usize = 184;
/// Length of the version-1 header prefix that HPKE authenticates.
const V1_AUTHENTICATED_LEN: usize = 80;
/// Longest record ciphertext a reader accepts.
pub const MAX_RECORD_LEN: u32 = 64 * 1024;
/// HPKE `info` for wrapping a version-2 archive's data key to the service (auth mode, as the
/// origin device).
pub(crate) const ARCHIVE_KEY_INFO: &[u8] = b"license-backup/v2/archive-key";
/// HPKE `info` for wrapping a version-1 archive's data key (base mode).
pub(crate) const V1_ARCHIVE_KEY_INFO: &[u8] = b"license-backup/v1/archive-key";
/// HPKE `info` for the service re-wrapping a data key to a restoring device.
pub(crate) const GRANT_INFO: &[u8] = b"license-backup/v2/restore-grant";
/// What the digest of an archive's key IDs starts with (then the 16-byte key IDs in order).
pub const KEY_IDS_DOMAIN: &[u8] = b"license-backup/v2/key-ids";
/// What the digest of an archive's records starts with (then every record byte as written).
pub const RECORDS_DOMAIN: &[u8] = b"license-backup/v2/records";

const SUITE: [u16; 4] = [0x0020, 0x0001, 0x0003, 0x0003];
const RECORD_LICENSE: u8 = 1;
pub(crate) const RECORD_END: u8 = 2;
const FRAME_LEN: usize = 1 + 16 + 4;

/// What a version-2 header commits to about the records that follow it: the service recomputes
/// the first two from the key IDs it receives, the device all three from the file before it
/// asks for the grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commitment {
    /// How many license records the archive holds.
    pub licenses: u64,
    /// SHA-256 of [`KEY_IDS_DOMAIN`] and the license records' key IDs, in order.
    pub key_ids: [u8; 32],
    /// SHA-256 of [`RECORDS_DOMAIN`] and every record byte (frames, ciphertexts, the end
    /// record), in file order.
    pub records: [u8; 32],
}

/// The parsed header of an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveHeader {
    /// The format version (1 or 2).
    pub version: u16,
    /// The archive's random ID.
    pub archive_id: [u8; 16],
    /// The ID of the device the backup was made on.
    pub origin_device: [u8; 16],
    /// When the backup was made, in seconds since the Unix epoch.
    pub created_at: i64,
    /// Fingerprint of the service public key the data key is wrapped to.
    pub service_key_fingerprint: [u8; 16],
    /// The origin device's X25519 public key, which sealed the data key (version 2; version 1
    /// archives do not say who made them).
    pub origin_public_key: Option<[u8; 32]>,
    /// What the header commits to about the records (version 2).
    pub commitment: Option<Commitment>,
    /// The data key, wrapped with HPKE to the service.
    pub wrapped_key: WrappedKey,
    /// The header bytes HPKE authenticates (offsets 0..184, or 0..80 in version 1); the service
    /// re-parses them.
    pub authenticated: Vec<u8>,
}

impl ArchiveHeader {
    /// The header's length in the file: where the records start.
    pub fn len(&self) -> usize {
        if self.version == 1 { V1_HEADER_LEN } else { HEADER_LEN }
    }

    /// Always `false`: a header is never empty (here for `len`'s sake).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The fields a service reads from the authenticated header prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedHeader {
    /// The format version (1 or 2).
    pub version: u16,
    /// The archive's random ID.
    pub archive_id: [u8; 16],
    /// The ID of the device the backup was made on.
    pub origin_device: [u8; 16],
    /// When the backup was made.
    pub created_at: i64,
    /// Fingerprint of the service key.
    pub service_key_fingerprint: [u8; 16],
    /// The origin device's public key (version 2).
    pub origin_public_key: Option<[u8; 32]>,
    /// What the header commits to (version 2).
    pub commitment: Option<Commitment>,
}

/// Parses the authenticated prefix of a header (what a service receives with a restore):
/// `ARCHIVE_CORRUPT` when it is malformed, `UNSUPPORTED_VERSION` for a version other than 1
/// and 2. A version-2 origin key must be usable and its fingerprint must be the origin device
/// ID. (The prefix is authenticated by HPKE only once the service opens the wrapped key.)
pub fn parse_authenticated_header(bytes: &[u8]) -> Result<AuthenticatedHeader> {
    if bytes.len() < 24 || &bytes[..8] != MAGIC {
        return Err(Error::corrupt("malformed archive header"));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    let header_len = u16::from_le_bytes([bytes[10], bytes[11]]) as usize;
    let (auth_len, full_len) = match version {
        1 => (V1_AUTHENTICATED_LEN, V1_HEADER_LEN),
        2 => (AUTHENTICATED_LEN, HEADER_LEN),
        v => {
            return Err(Error::new(
                ErrorCode::UnsupportedVersion,
                format!("archive format version {v}; this library reads versions 1 and {FORMAT_VERSION}"),
            ));
        }
    };
    if bytes.len() != auth_len || header_len != full_len || bytes[12..16] != [0; 4] {
        return Err(Error::corrupt(format!("malformed version {version} archive header")));
    }
    let suite: Vec<u16> = bytes[16..24].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    if suite != SUITE {
        return Err(Error::corrupt("unknown cipher suite in archive header"));
    }
    let array = |at: usize| -> [u8; 16] { bytes[at..at + 16].try_into().expect("16 bytes") };
    let mut header = AuthenticatedHeader {
        version,
        archive_id: array(24),
        origin_device: array(40),
        created_at: i64::from_le_bytes(bytes[56..64].try_into().expect("8 bytes")),
        service_key_fingerprint: array(64),
        origin_public_key: None,
        commitment: None,
    };
    if version == 2 {
        let key: [u8; 32] = bytes[80..112].try_into().expect("32 bytes");
        if !crypto::is_usable_public_key(&key) {
            return Err(Error::corrupt("the archive's origin key is of small order"));
        }
        if crypto::fingerprint(&key) != header.origin_device {
            return Err(Error::corrupt("the archive's origin device ID is not the fingerprint of its key"));
        }
        header.origin_public_key = Some(key);
        header.commitment = Some(Commitment {
            licenses: u64::from_le_bytes(bytes[112..120].try_into().expect("8 bytes")),
            key_ids: bytes[120..152].try_into().expect("32 bytes"),
            records: bytes[152..184].try_into().expect("32 bytes"),
        });
    }
    Ok(header)
}

fn nonce(index: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&index.to_be_bytes());
    n
}

fn record_aad(archive_id: &[u8; 16], index: u64, kind: u8, key_id: &[u8; 16]) -> [u8; 41] {
    let mut aad = [0u8; 41];
    aad[..16].copy_from_slice(archive_id);
    aad[16..24].copy_from_slice(&index.to_be_bytes());
    aad[24] = kind;
    aad[25..].copy_from_slice(key_id);
    aad
}

/// An item of a [`RecordBatch`]: a license record...
const ITEM_LICENSE: u8 = 1;
/// ...or a license that may not be backed up, which is reported and never written.
const ITEM_RESTRICTED: u8 = 2;
/// What precedes the record of a license item: the nonce and the tag of its content key as
/// sealed at rest (its ciphertext is in the record, where it is opened), then the length (4
/// bytes) and the bytes of the associated data of its row, which the key opens with.
const KEY_SEAL_LEN: usize = 12 + TAG_LEN;
/// Where the content key starts in a license record's plaintext (after the encoding version,
/// the key ID and the key's length).
const CONTENT_KEY_AT: usize = 1 + 16 + 2;

/// What the sealing side of a backup meets, in store order, while it seals a batch.
pub(crate) enum BatchItem<'a> {
    /// A license, sealed into the archive.
    Written,
    /// A license that may not be backed up, with its catalog title.
    Restricted { key_id: KeyId, title: Option<&'a str> },
}

/// Licenses read from the store, in order, waiting to be sealed by
/// [`ArchiveWriter::write_batch`]: a backup fills batches on one thread and seals and writes
/// them on another. A license item is laid out for sealing in place: its content key's nonce
/// and tag, then the record as it is written (frame, plaintext, room for the tag), with the
/// content key still sealed at rest in its place in the plaintext. It is opened in place,
/// sealed into the record in place, and the record moved down over what is not written, so a
/// content key is never copied in clear. The batch is wiped when dropped.
#[derive(Default)]
pub(crate) struct RecordBatch {
    buf: Zeroizing<Vec<u8>>,
}

impl RecordBatch {
    /// How many bytes of items make a full batch.
    pub(crate) const TARGET_LEN: usize = 128 * 1024;

    /// An empty batch with room for about [`RecordBatch::TARGET_LEN`] bytes.
    pub(crate) fn new() -> Self {
        RecordBatch { buf: Zeroizing::new(Vec::with_capacity(Self::TARGET_LEN + 1024)) }
    }

    /// Whether the batch has reached its target size.
    pub(crate) fn is_full(&self) -> bool {
        self.buf.len() >= Self::TARGET_LEN
    }

    /// Whether the batch holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends a license to back up, with its content key as sealed at rest (nonce,
    /// ciphertext, tag: [`SealingKey::seal_random_from`]'s layout).
    pub(crate) fn push_license(
        &mut self,
        license: &LicenseFields<'_>,
        sealed_key: &[u8],
        key_aad: &[u8],
    ) -> Result<()> {
        let (key_nonce, key_ct, key_tag) =
            SealingKey::split_random(sealed_key).ok_or_else(|| crate::device::tampered(&license.key_id))?;
        let buf: &mut Vec<u8> = &mut self.buf;
        buf.push(ITEM_LICENSE);
        buf.extend_from_slice(key_nonce);
        buf.extend_from_slice(key_tag);
        buf.extend_from_slice(&(key_aad.len() as u32).to_le_bytes());
        buf.extend_from_slice(key_aad);
        let start = buf.len();
        buf.push(RECORD_LICENSE);
        buf.extend_from_slice(license.key_id.as_bytes());
        buf.extend_from_slice(&[0; 4]);
        encode_license(buf, license, key_ct);
        buf.extend_from_slice(&[0; TAG_LEN]);
        let len = (buf.len() - start - FRAME_LEN) as u32;
        buf[start + 17..start + FRAME_LEN].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }

    /// Appends a license that may not be backed up (reported, never written).
    pub(crate) fn push_restricted(&mut self, key_id: &KeyId, title: Option<&str>) {
        let buf: &mut Vec<u8> = &mut self.buf;
        buf.push(ITEM_RESTRICTED);
        buf.extend_from_slice(key_id.as_bytes());
        match title {
            Some(title) => {
                buf.push(1);
                buf.extend_from_slice(&(title.len() as u32).to_le_bytes());
                buf.extend_from_slice(title.as_bytes());
            }
            None => buf.push(0),
        }
    }
}

/// Writes an archive: a placeholder header, license records (in batches), the end record, and
/// then the real header over the placeholder, once it can commit to the records (their count,
/// the digest of their key IDs, the digest of their bytes). The data key is wrapped last, with
/// the final header as associated data, as the origin device (HPKE auth mode).
pub(crate) struct ArchiveWriter<W: Write> {
    out: W,
    key: SealingKey,
    data_key: Zeroizing<[u8; DATA_KEY_LEN]>,
    archive_id: [u8; 16],
    origin: KeyPair,
    service_public_key: [u8; PUBLIC_KEY_LEN],
    created_at: i64,
    index: u64,
    bytes: u64,
    /// The license records written so far.
    keys: KeyTally,
    /// Every record byte written so far.
    records: Sha256,
    /// One record, for [`ArchiveWriter::write_license`].
    #[cfg(feature = "bench-internals")]
    scratch: Zeroizing<Vec<u8>>,
}

impl<W: Write> ArchiveWriter<W> {
    /// Writes a placeholder header (zeros) and prepares a fresh data key and archive ID; the
    /// archive is made by `origin` (this device) for the service whose key is
    /// `service_public_key`.
    pub(crate) fn new(mut out: W, service_public_key: &[u8; PUBLIC_KEY_LEN], origin: &KeyPair) -> Result<Self> {
        if !crypto::is_usable_public_key(service_public_key) {
            return Err(Error::new(ErrorCode::WrongKey, "the service's public key is of small order"));
        }
        out.write_all(&[0u8; HEADER_LEN]).map_err(|e| write_error(&e))?;
        let data_key = crypto::new_data_key();
        let mut records = Sha256::new();
        records.update(RECORDS_DOMAIN);
        Ok(ArchiveWriter {
            out,
            key: SealingKey::new(&data_key),
            data_key,
            archive_id: crypto::random_array(),
            origin: origin.clone(),
            service_public_key: *service_public_key,
            created_at: crate::clock::now_secs(),
            index: 0,
            bytes: HEADER_LEN as u64,
            keys: KeyTally::default(),
            records,
            #[cfg(feature = "bench-internals")]
            scratch: Zeroizing::new(Vec::with_capacity(512)),
        })
    }

    /// Writes sealed records and adds them to the record digest.
    fn write_sealed(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(|e| write_error(&e))?;
        self.records.update(bytes);
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Seals one record in place (`record` is its frame, its plaintext and room for the tag)
    /// with the next record index.
    fn seal_record(&mut self, record: &mut [u8]) {
        let (frame, body) = record.split_at_mut(FRAME_LEN);
        let key_id: &[u8; 16] = frame[1..17].try_into().expect("16 bytes");
        let split = body.len() - TAG_LEN;
        let (plain, tag) = body.split_at_mut(split);
        let aad = record_aad(&self.archive_id, self.index, frame[0], key_id);
        tag.copy_from_slice(&self.key.seal_detached(&nonce(self.index), plain, &aad));
        if frame[0] == RECORD_LICENSE {
            self.keys.add(key_id);
        }
        self.index += 1;
    }

    /// Goes through `batch` in order: opens each license's content key in place with
    /// `open_key` (key ID, nonce, the key, tag), seals its record, and passes every item to
    /// `on_item`; then writes the records with one write and empties the batch for reuse. The
    /// first error of either callback stops it, nothing of the batch written.
    pub(crate) fn write_batch(
        &mut self,
        batch: &mut RecordBatch,
        mut open_key: impl FnMut(&KeyId, &[u8], &[u8; 12], &mut [u8], &[u8; 16]) -> Result<()>,
        mut on_item: impl FnMut(BatchItem<'_>) -> Result<()>,
    ) -> Result<()> {
        let buf: &mut [u8] = &mut batch.buf;
        // Records are moved down to `end` as they are sealed: buf[..end] is what is written.
        let (mut pos, mut end) = (0, 0);
        while pos < buf.len() {
            match buf[pos] {
                ITEM_LICENSE => {
                    let key_nonce: [u8; 12] = buf[pos + 1..pos + 13].try_into().expect("12 bytes");
                    let key_tag: [u8; 16] = buf[pos + 13..pos + 1 + KEY_SEAL_LEN].try_into().expect("16 bytes");
                    let aad_at = pos + 1 + KEY_SEAL_LEN;
                    let aad_len = u32::from_le_bytes(buf[aad_at..aad_at + 4].try_into().expect("4 bytes")) as usize;
                    let start = aad_at + 4 + aad_len;
                    let len = u32::from_le_bytes(buf[start + 17..start + FRAME_LEN].try_into().expect("4 bytes"));
                    let (before, rest) = buf.split_at_mut(start);
                    let aad = &before[aad_at + 4..];
                    let record = &mut rest[..FRAME_LEN + len as usize];
                    let key_id = KeyId::from_bytes(record[1..17].try_into().expect("16 bytes"));
                    let plain = &mut record[FRAME_LEN..];
                    let key_len = u16::from_le_bytes([plain[CONTENT_KEY_AT - 2], plain[CONTENT_KEY_AT - 1]]) as usize;
                    open_key(&key_id, aad, &key_nonce, &mut plain[CONTENT_KEY_AT..CONTENT_KEY_AT + key_len], &key_tag)?;
                    self.seal_record(record);
                    let record_len = record.len();
                    buf.copy_within(start..start + record_len, end);
                    end += record_len;
                    pos = start + record_len;
                    on_item(BatchItem::Written)?;
                }
                kind => {
                    debug_assert_eq!(kind, ITEM_RESTRICTED);
                    let key_id = KeyId::from_bytes(buf[pos + 1..pos + 17].try_into().expect("16 bytes"));
                    pos += 17;
                    let title = if buf[pos] == 1 {
                        let n = u32::from_le_bytes(buf[pos + 1..pos + 5].try_into().expect("4 bytes")) as usize;
                        let text = &buf[pos + 5..pos + 5 + n];
                        pos += 5 + n;
                        Some(std::str::from_utf8(text).expect("a batch holds the title as it was given"))
                    } else {
                        pos += 1;
                        None
                    };
                    on_item(BatchItem::Restricted { key_id, title })?;
                }
            }
        }
        self.write_sealed(&buf[..end])?;
        batch.buf.clear();
        Ok(())
    }

    /// Seals and writes one license record, its content key given in clear (the benchmarks'
    /// record sealing; a backup seals batches with [`ArchiveWriter::write_batch`]).
    #[cfg(feature = "bench-internals")]
    pub(crate) fn write_license(&mut self, license: &License, content_key: &[u8]) -> Result<()> {
        let mut record = std::mem::take(&mut self.scratch);
        record.clear();
        record.push(RECORD_LICENSE);
        record.extend_from_slice(license.key_id.as_bytes());
        record.extend_from_slice(&[0; 4]);
        encode_license(&mut record, &license.into(), content_key);
        record.extend_from_slice(&[0; TAG_LEN]);
        let result = self.write_record(&mut record);
        self.scratch = record;
        result
    }

    /// Fills in the length of a record laid out in `record`, seals and writes it.
    fn write_record(&mut self, record: &mut [u8]) -> Result<()> {
        let len = (record.len() - FRAME_LEN) as u32;
        record[17..FRAME_LEN].copy_from_slice(&len.to_le_bytes());
        self.seal_record(record);
        self.write_sealed(record)
    }
}

impl<W: Write + Seek> ArchiveWriter<W> {
    /// Writes the end record, then the header over the placeholder (committing to the records
    /// and wrapping the data key to the service as the origin device), flushes, and returns the
    /// output and the bytes written.
    pub(crate) fn finish(mut self, restricted: u64) -> Result<(W, u64)> {
        let mut record = [0u8; FRAME_LEN + 16 + TAG_LEN];
        record[0] = RECORD_END;
        record[FRAME_LEN..FRAME_LEN + 8].copy_from_slice(&self.index.to_le_bytes());
        record[FRAME_LEN + 8..FRAME_LEN + 16].copy_from_slice(&restricted.to_le_bytes());
        self.write_record(&mut record)?;
        let commitment = Commitment {
            licenses: self.keys.licenses(),
            key_ids: self.keys.digest(),
            records: self.records.clone().finalize().into(),
        };
        let header = self.header(&commitment)?;
        self.out.seek(SeekFrom::Start(0)).map_err(|e| write_error(&e))?;
        self.out.write_all(&header).map_err(|e| write_error(&e))?;
        self.out.seek(SeekFrom::End(0)).map_err(|e| write_error(&e))?;
        self.out.flush().map_err(|e| write_error(&e))?;
        Ok((self.out, self.bytes))
    }
}

impl<W: Write> ArchiveWriter<W> {
    /// The version-2 header of this archive (docs/archive-format.md, "Header").
    fn header(&self, commitment: &Commitment) -> Result<[u8; HEADER_LEN]> {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        h[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        h[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        for (i, id) in SUITE.iter().enumerate() {
            h[16 + 2 * i..18 + 2 * i].copy_from_slice(&id.to_le_bytes());
        }
        h[24..40].copy_from_slice(&self.archive_id);
        h[40..56].copy_from_slice(&self.origin.id());
        h[56..64].copy_from_slice(&self.created_at.to_le_bytes());
        h[64..80].copy_from_slice(&crypto::fingerprint(&self.service_public_key));
        h[80..112].copy_from_slice(&self.origin.public_bytes());
        h[112..120].copy_from_slice(&commitment.licenses.to_le_bytes());
        h[120..152].copy_from_slice(&commitment.key_ids);
        h[152..184].copy_from_slice(&commitment.records);
        let wrapped = self.origin.wrap_as(
            &self.service_public_key,
            self.data_key.as_slice(),
            ARCHIVE_KEY_INFO,
            &h[..AUTHENTICATED_LEN],
        )?;
        h[184..184 + ENC_LEN].copy_from_slice(&wrapped.enc);
        h[216..216 + DATA_KEY_LEN + TAG_LEN].copy_from_slice(&wrapped.ciphertext);
        let digest = Sha256::digest(&h[..HEADER_LEN - 16]);
        h[HEADER_LEN - 16..].copy_from_slice(&digest[..16]);
        Ok(h)
    }
}

/// Maps a write failure to a clear error (a full disk is the common one).
pub(crate) fn write_error(e: &std::io::Error) -> Error {
    crate::folder::io_error(crate::folder::Doing::Write, e)
}

/// Maps a read failure to a clear error (a pulled stick, a failing medium).
pub(crate) fn read_error(e: &std::io::Error) -> Error {
    crate::folder::io_error(crate::folder::Doing::Read, e)
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u16).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn put_opt_str(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            buf.push(1);
            put_str(buf, s);
        }
        None => buf.push(0),
    }
}

fn encode_license(buf: &mut Vec<u8>, l: &LicenseFields<'_>, content_key: &[u8]) {
    buf.push(1);
    buf.extend_from_slice(l.key_id.as_bytes());
    buf.extend_from_slice(&(content_key.len() as u16).to_le_bytes());
    buf.extend_from_slice(content_key);
    let r = &l.rights;
    buf.push(u8::from(r.play) | u8::from(r.burn) << 1 | u8::from(r.transfer) << 2 | u8::from(r.backup_allowed) << 3);
    match r.expires_at {
        Some(t) => {
            buf.push(1);
            buf.extend_from_slice(&t.to_le_bytes());
        }
        None => buf.push(0),
    }
    match r.plays_remaining {
        Some(n) => {
            buf.push(1);
            buf.extend_from_slice(&n.to_le_bytes());
        }
        None => buf.push(0),
    }
    put_str(buf, l.issuer);
    buf.extend_from_slice(&l.issued_at.to_le_bytes());
    put_opt_str(buf, l.title);
    put_opt_str(buf, l.artist);
    put_opt_str(buf, l.file_path);
}

/// A cursor over a decrypted record; every read failure is a corrupt archive.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::corrupt("license record is too short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn flag(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::corrupt("bad presence flag in license record")),
        }
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn string(&mut self) -> Result<&'a str> {
        let n = self.u16()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| Error::corrupt("text in license record is not UTF-8"))
    }
    fn opt_string(&mut self) -> Result<Option<&'a str>> {
        if self.flag()? { Ok(Some(self.string()?)) } else { Ok(None) }
    }
}

/// A decrypted license record, borrowed from the reader's buffer: what a restore binds straight
/// into SQL without copying each string.
pub(crate) struct LicenseView<'a> {
    /// Everything but the content key.
    pub(crate) fields: LicenseFields<'a>,
    /// The content key, in clear (in the reader's buffer, wiped before the next record).
    pub(crate) content_key: &'a [u8],
}

impl LicenseView<'_> {
    fn to_owned(&self) -> ArchivedLicense {
        let f = &self.fields;
        let own = |s: Option<&str>| s.map(str::to_string);
        let catalog = CatalogEntry { title: own(f.title), artist: own(f.artist), file_path: own(f.file_path) };
        ArchivedLicense {
            license: License {
                key_id: f.key_id,
                rights: f.rights.clone(),
                issuer: f.issuer.to_string(),
                issued_at: f.issued_at,
                catalog: (!catalog.is_empty()).then_some(catalog),
            },
            content_key: Zeroizing::new(self.content_key.to_vec()),
        }
    }
}

fn decode_license(bytes: &[u8]) -> Result<LicenseView<'_>> {
    let mut c = Cursor(bytes);
    if c.u8()? != 1 {
        return Err(Error::corrupt("unknown license record encoding"));
    }
    let key_id = KeyId::from_slice(c.take(16)?)?;
    let key_len = c.u16()? as usize;
    let content_key = c.take(key_len)?;
    let bits = c.u8()?;
    if bits & !0x0f != 0 {
        return Err(Error::corrupt("unknown rights bits in license record"));
    }
    let expires_at = if c.flag()? { Some(c.i64()?) } else { None };
    let plays_remaining = if c.flag()? { Some(c.u32()?) } else { None };
    let issuer = c.string()?;
    let issued_at = c.i64()?;
    let (title, artist, file_path) = (c.opt_string()?, c.opt_string()?, c.opt_string()?);
    if !c.0.is_empty() {
        return Err(Error::corrupt("trailing bytes in license record"));
    }
    let rights = Rights {
        play: bits & 1 != 0,
        burn: bits & 2 != 0,
        transfer: bits & 4 != 0,
        backup_allowed: bits & 8 != 0,
        expires_at,
        plays_remaining,
    };
    let view = LicenseView {
        fields: LicenseFields { key_id, rights, issuer, issued_at, title, artist, file_path },
        content_key,
    };
    check_limits(&view)?;
    Ok(view)
}

/// Checks a decoded record against the limits an application's own `add_license` and
/// `set_catalog_entry` are held to: an archive sealed by a modified client cannot bring in a
/// license the library would refuse from its caller.
fn check_limits(view: &LicenseView<'_>) -> Result<()> {
    let f = &view.fields;
    check_license_fields(view.content_key.len(), f.issuer, f.issued_at, &f.rights)
        .and_then(|()| check_catalog_fields(f.title, f.artist, f.file_path))
        .map_err(|e| Error::corrupt(format!("license record {}: {}", f.key_id, e.message())))
}

/// A license read back from an archive, content key included.
pub struct ArchivedLicense {
    /// The license and its catalog metadata.
    pub license: License,
    /// The content key, in clear (wiped on drop).
    pub content_key: Zeroizing<Vec<u8>>,
}

/// Fills `buf`; running out of bytes is a truncated archive (`ARCHIVE_CORRUPT`).
pub(crate) fn read_exact_or_corrupt(r: &mut impl Read, buf: &mut [u8], what: &str) -> Result<()> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => Error::corrupt(format!("archive truncated in {what}")),
        _ => read_error(&e),
    })
}

/// Reads into `buf` until it is full or the input ends; returns how many bytes were read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(&e)),
        }
    }
    Ok(got)
}

/// Reads and checks an archive's header (version 1 or 2): the magic, the checksum (before the
/// version, so a damaged version field is reported as corruption), then the version's layout.
pub fn read_header(r: &mut impl Read) -> Result<ArchiveHeader> {
    let mut prefix = [0u8; 12];
    let got = read_up_to(r, &mut prefix)?;
    // A file that does not start like an archive is another kind of file, not a damaged one.
    let magic = got.min(MAGIC.len());
    if got == 0 {
        return Err(Error::corrupt("archive truncated in the header"));
    }
    if prefix[..magic] != MAGIC[..magic] {
        return Err(Error::new(ErrorCode::WrongFileKind, "not a license backup archive (no LICBAKUP magic)"));
    }
    if got < prefix.len() {
        return Err(Error::corrupt("archive truncated in the header"));
    }
    let version = u16::from_le_bytes([prefix[8], prefix[9]]);
    let header_len = u16::from_le_bytes([prefix[10], prefix[11]]) as usize;
    if header_len < V1_AUTHENTICATED_LEN + 16 {
        return Err(Error::corrupt("archive header length is too small"));
    }
    let mut header = prefix.to_vec();
    header.resize(header_len, 0);
    read_exact_or_corrupt(r, &mut header[12..], "the header")?;
    let (body, digest) = header.split_at(header_len - 16);
    if Sha256::digest(body)[..16] != *digest {
        return Err(Error::corrupt("archive header checksum mismatch"));
    }
    let auth_len = match version {
        1 => V1_AUTHENTICATED_LEN,
        2 => AUTHENTICATED_LEN,
        _ => {
            return Err(Error::new(
                ErrorCode::UnsupportedVersion,
                format!("archive format version {version}; this library reads versions 1 and {FORMAT_VERSION}"),
            ));
        }
    };
    if header.len() < auth_len {
        return Err(Error::corrupt(format!("malformed version {version} archive header")));
    }
    let auth = parse_authenticated_header(&header[..auth_len])?;
    Ok(ArchiveHeader {
        version,
        archive_id: auth.archive_id,
        origin_device: auth.origin_device,
        created_at: auth.created_at,
        service_key_fingerprint: auth.service_key_fingerprint,
        origin_public_key: auth.origin_public_key,
        commitment: auth.commitment,
        wrapped_key: WrappedKey {
            enc: header[auth_len..auth_len + ENC_LEN].to_vec(),
            ciphertext: header[auth_len + ENC_LEN..auth_len + ENC_LEN + DATA_KEY_LEN + TAG_LEN].to_vec(),
        },
        authenticated: header[..auth_len].to_vec(),
    })
}

pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) key_id: [u8; 16],
    pub(crate) len: u32,
}

/// Reads and checks a record's frame (type and length in range).
pub(crate) fn read_frame(r: &mut impl Read) -> Result<Frame> {
    let mut f = [0u8; FRAME_LEN];
    read_exact_or_corrupt(r, &mut f, "a record")?;
    let kind = f[0];
    if kind != RECORD_LICENSE && kind != RECORD_END {
        return Err(Error::corrupt(format!("unknown record type {kind}")));
    }
    let len = u32::from_le_bytes(f[17..21].try_into().expect("4 bytes"));
    if !(TAG_LEN as u32..=MAX_RECORD_LEN).contains(&len) {
        return Err(Error::corrupt(format!("record length {len} out of range")));
    }
    Ok(Frame { kind, key_id: f[1..17].try_into().expect("16 bytes"), len })
}

/// `ARCHIVE_CORRUPT` unless `r` is at its end (nothing may follow the end record).
pub(crate) fn expect_eof(r: &mut impl Read) -> Result<()> {
    let mut one = [0u8; 1];
    match r.read(&mut one) {
        Ok(0) => Ok(()),
        Ok(_) => Err(Error::corrupt("unexpected bytes after the end record")),
        Err(e) => Err(read_error(&e)),
    }
}

/// Opens the archive at `path` for reading. A missing file and an empty one (what a backup
/// that died while putting its archive in place can leave, see `crate::folder`) are
/// `ARCHIVE_MISSING`; a folder is `WRONG_FILE_KIND`.
pub(crate) fn open_archive(path: &Path) -> Result<File> {
    let missing =
        |why: &str| Error::new(ErrorCode::ArchiveMissing, format!("no backup archive at {}{why}", path.display()));
    // Only a regular file is opened: opening a FIFO would block.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return Err(Error::new(ErrorCode::WrongFileKind, format!("{} is not a regular file", path.display())));
    }
    let file = File::open(path).map_err(|e| match read_error(&e) {
        e if e.code() == ErrorCode::ArchiveMissing => missing(""),
        e => e,
    })?;
    let meta = file.metadata().map_err(|e| read_error(&e))?;
    if meta.is_dir() {
        return Err(Error::new(ErrorCode::WrongFileKind, format!("{} is a folder, not an archive", path.display())));
    }
    if crate::folder::is_placeholder(&meta) {
        return Err(missing(": the file is empty (a backup into this folder did not finish)"));
    }
    Ok(file)
}

/// The licenses a pass over an archive saw: how many, and a digest of their key IDs (SHA-256
/// over [`KEY_IDS_DOMAIN`] and the 16-byte key IDs in order: what a version-2 header commits
/// to). What lets a restore check that the licenses it applies are exactly those the service
/// authorized, and the service that the key IDs it receives are those of the archive, without
/// keeping the list in memory.
#[derive(Clone)]
pub struct KeyTally {
    licenses: u64,
    digest: Sha256,
}

impl Default for KeyTally {
    fn default() -> Self {
        let mut digest = Sha256::new();
        digest.update(KEY_IDS_DOMAIN);
        KeyTally { licenses: 0, digest }
    }
}

impl KeyTally {
    /// Counts one more license.
    pub fn add(&mut self, key_id: &[u8; 16]) {
        self.licenses += 1;
        self.digest.update(key_id);
    }

    /// How many licenses were counted.
    pub fn licenses(&self) -> u64 {
        self.licenses
    }

    /// The digest of the key IDs counted so far.
    pub fn digest(&self) -> [u8; 32] {
        self.digest.clone().finalize().into()
    }

    /// Whether this tally is what `commitment` says of the records.
    pub fn matches_commitment(&self, commitment: &Commitment) -> bool {
        self.licenses == commitment.licenses && self.digest() == commitment.key_ids
    }

    /// Whether two passes saw the same licenses, in the same order.
    pub(crate) fn matches(&self, other: &KeyTally) -> bool {
        self.licenses == other.licenses && self.digest() == other.digest()
    }
}

/// A reader that hashes every byte read through it (for the record digest).
pub(crate) struct Digesting<R> {
    pub(crate) inner: R,
    pub(crate) digest: Sha256,
}

impl<R: Read> Read for Digesting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads the records' frames from `r` up to the end record, which must be followed by the end
/// of the file, skipping their bodies; `license` gets each license's key ID, in order.
pub(crate) fn each_frame(r: &mut impl BufRead, mut license: impl FnMut(&[u8; 16]) -> Result<()>) -> Result<()> {
    loop {
        let frame = read_frame(r)?;
        skip(r, frame.len as usize)?;
        if frame.kind == RECORD_END {
            return expect_eof(r);
        }
        license(&frame.key_id)?;
    }
}

/// Skips `n` bytes of `r` (reading them: a digesting reader sees them).
pub(crate) fn skip(r: &mut impl BufRead, mut n: usize) -> Result<()> {
    while n > 0 {
        let buf = r.fill_buf().map_err(|e| read_error(&e))?;
        if buf.is_empty() {
            return Err(Error::corrupt("archive truncated in a record"));
        }
        let k = n.min(buf.len());
        r.consume(k);
        n -= k;
    }
    Ok(())
}

/// A record opened and checked by [`open_record`].
pub(crate) enum Opened<'a> {
    License(LicenseView<'a>),
    End,
}

/// Authenticates the record at `index` (its sealed body in `buf`, opened in place) and decodes
/// it: a license, or the end record with the right count.
pub(crate) fn open_record<'b>(
    key: &SealingKey,
    archive_id: &[u8; 16],
    index: u64,
    frame: &Frame,
    buf: &'b mut Vec<u8>,
) -> Result<Opened<'b>> {
    let aad = record_aad(archive_id, index, frame.kind, &frame.key_id);
    if !key.open_in_place(&nonce(index), buf, &aad) {
        return Err(Error::corrupt(format!("record {index} failed authentication")));
    }
    if frame.kind == RECORD_END {
        if buf.len() != 16 || frame.key_id != [0; 16] {
            return Err(Error::corrupt("malformed end record"));
        }
        let count = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
        if count != index {
            return Err(Error::corrupt("record count mismatch in end record"));
        }
        return Ok(Opened::End);
    }
    let view = decode_license(buf)?;
    if view.fields.key_id.as_bytes() != &frame.key_id {
        return Err(Error::corrupt("record key ID does not match its frame"));
    }
    Ok(Opened::License(view))
}

/// Reads and authenticates the license records of an archive, in order.
pub struct RecordReader<R: Read> {
    r: R,
    key: SealingKey,
    archive_id: [u8; 16],
    index: u64,
    finished: bool,
    /// The current record: ciphertext, then plaintext (wiped before the next one is read, and
    /// on drop).
    buf: Zeroizing<Vec<u8>>,
}

impl RecordReader<BufReader<File>> {
    /// Opens the archive at `path` with its data key (which only the service, or a device it
    /// granted the key to, can recover). The header is read and checked again.
    pub fn open(path: &Path, data_key: &[u8; 32]) -> Result<(ArchiveHeader, Self)> {
        let file = open_archive(path)?;
        let mut r = BufReader::with_capacity(64 * 1024, file);
        let header = read_header(&mut r)?;
        let reader = RecordReader::new(r, header.archive_id, data_key);
        Ok((header, reader))
    }
}

impl<R: Read> RecordReader<R> {
    /// A reader positioned just after the header of the archive `archive_id`.
    pub fn new(r: R, archive_id: [u8; 16], data_key: &[u8; 32]) -> Self {
        RecordReader {
            r,
            key: SealingKey::new(data_key),
            archive_id,
            index: 0,
            finished: false,
            buf: Zeroizing::new(Vec::with_capacity(1024)),
        }
    }

    /// The next license, or `None` after the end record (which must close the file). Any
    /// damage is `ARCHIVE_CORRUPT`.
    pub fn next_license(&mut self) -> Result<Option<ArchivedLicense>> {
        Ok(self.next_view()?.map(|view| view.to_owned()))
    }

    /// [`RecordReader::next_license`] without copying: the license borrows the reader's
    /// buffer, which is wiped before the next record is read.
    pub(crate) fn next_view(&mut self) -> Result<Option<LicenseView<'_>>> {
        // The previous record's plaintext (content key included) is wiped first.
        self.buf.as_mut_slice().zeroize();
        if self.finished {
            return Ok(None);
        }
        let frame = read_frame(&mut self.r)?;
        let buf = &mut self.buf;
        buf.clear();
        buf.resize(frame.len as usize, 0);
        read_exact_or_corrupt(&mut self.r, buf, "a record")?;
        let index = self.index;
        self.index += 1;
        match open_record(&self.key, &self.archive_id, index, &frame, &mut self.buf)? {
            Opened::End => {
                expect_eof(&mut self.r)?;
                self.finished = true;
                Ok(None)
            }
            Opened::License(view) => Ok(Some(view)),
        }
    }
}

/// Reads the header of the archive at `path` (for tools and services).
pub fn read_header_at(path: &Path) -> Result<ArchiveHeader> {
    let mut f = open_archive(path)?;
    f.seek(SeekFrom::Start(0)).map_err(|e| read_error(&e))?;
    read_header(&mut BufReader::new(f))
}
