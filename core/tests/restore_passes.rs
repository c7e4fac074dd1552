//! A restore reads its archive in several passes (the scan, the key IDs streamed to the service,
//! the verifying pass, the pass that writes the store), all from the file it opened first, and
//! checks each against the scan: the service authorizes exactly what is restored, and a file
//! changed while the restore runs changes nothing in the store.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use license_backup::*;

/// What a wrapping service does inside `authorize_restore`, around the embedded service.
enum Twist {
    /// Hands the embedded service only the first `n` key IDs (which it refuses).
    ReadOnly(usize),
    /// Reads only the first `n` key IDs of the device's stream, and gets the grant with the
    /// archive's key IDs read from the file on its own: a service that answers early.
    AnswersEarly { n: usize, path: PathBuf },
    /// After the embedded service answered, flips a byte of the archive file at `offset`.
    Damage { path: PathBuf, offset: u64 },
    /// After the embedded service answered, replaces the archive's path with another file.
    Replace { path: PathBuf, with: Vec<u8> },
    /// Nothing: the embedded service as it is.
    None,
}

/// Flips a bit of the file at `path` in place: the same file (inode) a restore holds open.
fn flip_in_place(path: &std::path::Path, offset: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut byte = [0u8];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut byte).unwrap();
    byte[0] ^= 0x40;
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&byte).unwrap();
}

struct Wrapped {
    inner: Arc<EmbeddedService>,
    twist: Twist,
}

impl LicenseService for Wrapped {
    fn public_key(&self) -> Result<[u8; 32]> {
        self.inner.public_key()
    }

    fn authorize_restore(
        &self,
        request: &RestoreRequest,
        key_ids: &mut KeyIdStream<'_>,
    ) -> std::result::Result<RestoreGrant, ServiceError> {
        match &self.twist {
            Twist::ReadOnly(n) => self.inner.authorize_restore(request, &mut key_ids.take(*n)),
            Twist::AnswersEarly { n, path } => {
                key_ids.take(*n).for_each(drop);
                let all = frame_key_ids(&std::fs::read(path).unwrap());
                self.inner.authorize_restore(request, &mut all.into_iter().map(Ok))
            }
            Twist::Damage { path, offset } => {
                let grant = self.inner.authorize_restore(request, key_ids)?;
                flip_in_place(path, *offset);
                Ok(grant)
            }
            Twist::None => self.inner.authorize_restore(request, key_ids),
            Twist::Replace { path, with } => {
                let grant = self.inner.authorize_restore(request, key_ids)?;
                let tmp = path.with_extension("other");
                std::fs::write(&tmp, with).unwrap();
                std::fs::rename(&tmp, path).unwrap();
                Ok(grant)
            }
        }
    }

    fn register_device(&self, registration: &DeviceRegistration) -> Result<()> {
        self.inner.register_device(registration)
    }

    fn confirm_restore(&self, request_id: &RequestId) -> Result<Settlement> {
        self.inner.confirm_restore(request_id)
    }

    fn release_restore(&self, request_id: &RequestId) -> Result<Settlement> {
        self.inner.release_restore(request_id)
    }

    fn quota(&self, request: &RestoreRequest, key_ids: &mut KeyIdStream<'_>) -> Result<Quota> {
        self.inner.quota(request, key_ids)
    }
}

/// The key IDs of an archive's license records, read from its frames.
fn frame_key_ids(bytes: &[u8]) -> Vec<KeyId> {
    let mut pos = u16::from_le_bytes([bytes[10], bytes[11]]) as usize;
    let mut ids = Vec::new();
    while bytes[pos] == 1 {
        ids.push(KeyId::from_slice(&bytes[pos + 1..pos + 17]).unwrap());
        pos += 21 + u32::from_le_bytes(bytes[pos + 17..pos + 21].try_into().unwrap()) as usize;
    }
    ids
}

/// A world with 200 licenses backed up from device A, and device B restoring through `twist`.
fn setup(twist: impl FnOnce(&World) -> Twist) -> (World, Arc<LicenseStore>, BackupRestorer) {
    let w = World::new();
    let (a, ra) = w.device("a");
    fill(&a, 200, 0);
    backup(&ra, true).0.unwrap();
    let b = Arc::new(LicenseStore::open(w.path("b.db")).unwrap());
    let service: Arc<dyn LicenseService> = Arc::new(Wrapped { inner: Arc::clone(&w.service), twist: twist(&w) });
    let rb = create_backup_restorer(Arc::clone(&b), service);
    rb.set_property("RestorePath", PropertyValue::String(w.folder("backup").display().to_string())).unwrap();
    (w, b, rb)
}

#[test]
fn a_service_handed_part_of_the_stream_refuses_and_records_nothing() {
    let (w, b, rb) = setup(|_| Twist::ReadOnly(150));
    let before = w.service.audit().unwrap();
    let (res, rec) = restore(&rb, RestoreFlags::default());
    assert_eq!(res.unwrap_err().code(), ErrorCode::ArchiveCorrupt);
    assert_eq!(rec.kinds(), ["connecting", "disconnecting", "end"]);
    assert_eq!(b.license_count().unwrap(), 0);
    assert_eq!(w.service.audit().unwrap(), before, "the refused stream left no trace in the ledger");
}

#[test]
fn a_grant_given_before_the_stream_was_read_restores_nothing_and_is_released() {
    let (w, b, rb) = setup(|w| Twist::AnswersEarly { n: 150, path: archive_path(w) });
    let (res, rec) = restore(&rb, RestoreFlags::default());
    assert_eq!(res.unwrap_err().code(), ErrorCode::Internal);
    assert_eq!(rec.kinds(), ["connecting", "disconnecting", "end"]);
    assert_eq!(b.license_count().unwrap(), 0);
    let audit = w.service.audit().unwrap();
    assert_eq!((audit.pending, audit.confirmed, audit.released, audit.placements), (0, 0, 1, 0), "{audit:?}");
}

#[test]
fn an_archive_damaged_in_place_after_the_service_answered_restores_nothing() {
    // Offsets: the first frame's key ID, then inside records further on.
    for offset in [284u64, 5_000, 20_000] {
        let (w, b, rb) = setup(|w| Twist::Damage { path: archive_path(w), offset });
        let size = std::fs::metadata(archive_path(&w)).unwrap().len();
        assert!(offset < size);
        let (res, rec) = restore(&rb, RestoreFlags::default());
        assert_eq!(res.unwrap_err().code(), ErrorCode::ArchiveCorrupt, "offset {offset}");
        assert_eq!(rec.kinds().last(), Some(&"end"));
        assert_eq!(b.license_count().unwrap(), 0, "offset {offset}");
        assert_eq!(b.verify().unwrap(), 0);
    }
}

/// The verifying pass of a version-2 archive checks its records' bytes against the header's
/// commitment; the pass that writes the store opens every record again. A record changed in
/// place after the last PROGRESS (after the verifying pass, before the store's transaction)
/// rolls that transaction back: nothing restored, the reservation released.
#[test]
fn an_archive_damaged_in_place_after_the_verifying_pass_restores_nothing() {
    // Offsets: the first frame's key ID, then inside records further on.
    for offset in [284u64, 5_000, 20_000] {
        let (w, b, rb) = setup(|_| Twist::None);
        let path = archive_path(&w);
        assert!(offset < std::fs::metadata(&path).unwrap().len());
        let rec = Recorder::default();
        let events = Arc::clone(&rec.0);
        let cb: Arc<dyn StatusCallback> = Arc::new(move |e: &StatusEvent| {
            if let StatusEvent::Progress { done, total, .. } = e {
                if done == total {
                    flip_in_place(&path, offset);
                }
            }
            events.lock().unwrap().push(e.clone());
            Ok(())
        });
        let res = rb.restore_licenses(RestoreFlags::default(), cb).unwrap().wait();
        assert_eq!(res.unwrap_err().code(), ErrorCode::ArchiveCorrupt, "offset {offset}");
        let kinds = rec.kinds();
        assert!(kinds.contains(&"progress"), "{kinds:?}");
        assert_eq!(kinds.last(), Some(&"end"));
        assert_eq!(b.license_count().unwrap(), 0, "offset {offset}");
        assert_eq!(b.verify().unwrap(), 0);
        let audit = w.service.audit().unwrap();
        assert_eq!((audit.pending, audit.confirmed, audit.released, audit.placements), (0, 0, 1, 0), "{audit:?}");
    }
}

#[test]
fn an_archive_path_replaced_after_the_service_answered_changes_nothing() {
    // Another valid archive (another origin, other licenses) moved over the path: the restore
    // goes on with the file it opened, and restores exactly what the service authorized.
    let (_w, b, rb) = setup(|w| {
        let other = World::new();
        let (c, rc) = other.device("c");
        for n in 0..10 {
            c.add_license(
                &NewLicense {
                    key_id: key_id(10_000 + n),
                    content_key: content_key(n),
                    rights: Rights::default(),
                    issuer: "https://other.example".into(),
                    issued_at: 1,
                },
                ConflictPolicy::Keep,
            )
            .unwrap();
        }
        backup(&rc, true).0.unwrap();
        Twist::Replace { path: archive_path(w), with: read_all(&archive_path(&other)) }
    });
    let (res, _) = restore(&rb, RestoreFlags::default());
    assert_eq!(res.unwrap().licenses, 200);
    assert_eq!(b.license_count().unwrap(), 200);
    assert!(b.get_license(&key_id(10_000)).unwrap().is_none());
    assert_eq!(b.verify().unwrap(), 200);
}
