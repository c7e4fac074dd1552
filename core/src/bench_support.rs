//! Thin wrappers over crate-private hot paths, so that `core/benches` can measure them on their
//! own: sealing and opening content keys at rest, sealing archive records, and dispatching
//! status events. Not part of the API: built only with the `bench-internals` feature (which the
//! core's dev-dependency on itself turns on for its benches and tests), hidden from the
//! documentation, no stability promise.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::archive::ArchiveWriter;
use crate::crypto::KeyPair;
use crate::device::{DeviceKeys, RowFields};
use crate::error::Result;
use crate::event::{OperationKind, Outcome, StatusCallback, Summary};
use crate::key_id::KeyId;
use crate::license::{License, Rights};
use crate::operation::{Emitter, OperationHandle, Progress};

/// Seals and opens content keys with a fresh device key, as the store does.
pub struct ContentKeySealer(DeviceKeys);

impl Default for ContentKeySealer {
    fn default() -> Self {
        ContentKeySealer(DeviceKeys::new(KeyPair::generate()))
    }
}

impl ContentKeySealer {
    /// Seals a content key into a license row with default rights (what adding a license
    /// does).
    pub fn seal(&self, key_id: &KeyId, content_key: &[u8]) -> Vec<u8> {
        self.0.seal_content_key(&row(key_id, &Rights::default()), content_key)
    }

    /// Opens a content key [`ContentKeySealer::seal`] sealed (what reading a license's key
    /// does; a backup opens each in place).
    pub fn open(&self, key_id: &KeyId, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.0.open_row(&row(key_id, &Rights::default()), sealed)
    }
}

fn row<'a>(key_id: &'a KeyId, rights: &'a Rights) -> RowFields<'a> {
    RowFields { key_id, rights, issuer: "https://licenses.example.com", issued_at: 1_700_000_000 }
}

/// Seals archive records into `W`, as a backup does, as a fresh device (the data key is
/// wrapped to `service_public_key`).
pub struct RecordSealer<W: std::io::Write>(ArchiveWriter<W>);

impl<W: std::io::Write> RecordSealer<W> {
    /// Writes a placeholder archive header to `out`.
    pub fn new(out: W, service_public_key: &[u8; 32]) -> Result<Self> {
        Ok(RecordSealer(ArchiveWriter::new(out, service_public_key, &KeyPair::generate())?))
    }

    /// Seals and writes one license record.
    pub fn seal(&mut self, license: &License, content_key: &[u8]) -> Result<()> {
        self.0.write_license(license, content_key)
    }
}

impl<W: std::io::Write + std::io::Seek> RecordSealer<W> {
    /// Writes the end record and the header, and returns the output.
    pub fn finish(self) -> Result<W> {
        Ok(self.0.finish(0)?.0)
    }
}

/// Dispatches `n` PROGRESS events to `callback` through the engine's emitter, with the
/// cancellation checks a running backup makes.
pub fn dispatch_progress(callback: Arc<dyn StatusCallback>, n: u64) -> Result<()> {
    let handle = OperationHandle::new(OperationKind::Backup);
    let emitter = Emitter::start(callback, handle.clone(), Box::new(|| ()))?;
    let mut progress = Progress::new(n, 1);
    let result = (0..n).try_for_each(|_| progress.step(&emitter)).and_then(|()| progress.finish(&emitter));
    let outcome = match result {
        Ok(()) => Outcome::Completed(Summary::default()),
        Err(e) => Outcome::Failed(e),
    };
    emitter.end(outcome);
    handle.wait().map(|_| ())
}

/// This thread's CPU time, in seconds (what a single-threaded step costs, whatever else the
/// machine runs meanwhile).
fn thread_cpu_s() -> f64 {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec; the call writes only `ts`.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9;
        }
    }
    0.0
}

/// What reading an archive costs, in seconds of this thread's CPU time: the restore's scan
/// (every byte read once, framing checked, key IDs and every record byte hashed, compared with
/// the header), the framing-only pass that streams the key IDs to the service, and SHA-256 over
/// the file's bytes in memory (with the `sha2` crate the scan uses, and with `ring`'s). Returns
/// `(scan, key_id_pass, sha2_in_memory, ring_in_memory, bytes)`.
pub fn scan_costs(path: &std::path::Path) -> Result<(f64, f64, f64, f64, u64)> {
    use sha2::Digest;
    let t = thread_cpu_s();
    let scanned = crate::restore::scan::scan(path)?;
    let scan = thread_cpu_s() - t;
    let t = thread_cpu_s();
    let mut ids = scanned.key_ids();
    for id in &mut ids {
        std::hint::black_box(id?);
    }
    let key_id_pass = thread_cpu_s() - t;
    let bytes = std::fs::read(path).map_err(|e| crate::archive::read_error(&e))?;
    let t = thread_cpu_s();
    std::hint::black_box(sha2::Sha256::digest(&bytes));
    let sha2 = thread_cpu_s() - t;
    let t = thread_cpu_s();
    std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, &bytes));
    let ring = thread_cpu_s() - t;
    Ok((scan, key_id_pass, sha2, ring, bytes.len() as u64))
}
