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

/// Seals archive records into `W`, as a backup does (the data key is wrapped to
/// `service_public_key`).
pub struct RecordSealer<W: std::io::Write>(ArchiveWriter<W>);

impl<W: std::io::Write> RecordSealer<W> {
    /// Writes an archive header to `out`.
    pub fn new(out: W, service_public_key: &[u8]) -> Result<Self> {
        Ok(RecordSealer(ArchiveWriter::new(out, service_public_key, [0; 16])?))
    }

    /// Seals and writes one license record.
    pub fn seal(&mut self, license: &License, content_key: &[u8]) -> Result<()> {
        self.0.write_license(license, content_key)
    }

    /// Writes the end record and returns the output.
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
