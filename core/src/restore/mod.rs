//! The restore job: scan the archive, get the service's authorization (a reservation, kept in
//! the store's journal), check every record (reporting progress), apply its licenses
//! to the store in one transaction, then confirm the reservation (or release it if anything
//! stopped the restore before its commit).
//!
//! Memory stays flat however many licenses the archive holds: nothing is kept per license. The
//! archive file is read in passes, each checked against the first by the count and a digest of
//! the key IDs: the scan (every byte, checked against the header's commitments, [`scan`]), the
//! key IDs streamed to the service, the
//! verifying pass that reports PROGRESS ([`verify`]: a version-2 archive's records hashed
//! against the header's commitment on a thread that starts before the service is asked, a
//! version-1 archive's opened once the service granted its key), and the pass that writes the
//! store, opening every record ([`apply`]).

mod apply;
pub(crate) mod scan;
mod verify;

use std::path::PathBuf;
use std::sync::Arc;

pub(crate) use apply::RestoreTarget;

use crate::archive::{ARCHIVE_FILE_NAME, GRANT_INFO};
use crate::error::{Error, ErrorCode, Result};
use crate::event::{StatusEvent, Summary};
use crate::folder::check_folder;
use crate::journal::{self, PendingRestore};
use crate::license::ConflictPolicy;
use crate::operation::{Emitter, Progress};
use crate::service::{
    IdentityProof, LicenseService, RequestId, RestoreRequest, SUCCESSION_INFO, ServiceError, grant_aad, succession_aad,
};

/// What a restore needs, captured when it is started.
pub(crate) struct RestoreJob {
    pub(crate) store_path: PathBuf,
    pub(crate) keys: Arc<crate::store::StoreKeys>,
    pub(crate) checkpointer: Arc<crate::sqlite::Checkpointer>,
    pub(crate) service: Arc<dyn LicenseService>,
    pub(crate) folder: PathBuf,
    pub(crate) individualize: bool,
    pub(crate) policy: ConflictPolicy,
    pub(crate) progress_interval: u64,
}

impl RestoreJob {
    pub(crate) fn run(self, emitter: &Emitter) -> Result<Summary> {
        check_folder(&self.folder)?;
        let path = self.folder.join(ARCHIVE_FILE_NAME);
        // Every byte is read and, for a version-2 archive, checked against the header's
        // commitments: a damaged archive ends here, before the service is asked anything.
        let scanned = scan::scan(&path)?;
        emitter.check_cancelled()?;
        // A version-2 archive's verifying pass needs no key: it runs while the service is asked.
        std::thread::scope(|scope| {
            let check = scanned.start_check(scope)?;
            self.authorize_and_apply(emitter, &scanned, check, scope)
        })
    }

    /// The restore once its archive is scanned: the service's authorization, the verifying pass
    /// (`check` when it already runs), the store's transaction and the reservation's settlement.
    fn authorize_and_apply<'scope>(
        &self,
        emitter: &Emitter,
        scanned: &'scope scan::ScannedArchive,
        check: Option<verify::CommitmentCheck>,
        scope: &'scope std::thread::Scope<'scope, '_>,
    ) -> Result<Summary> {
        let target = RestoreTarget::new(&self.store_path, &self.keys, self.individualize)?;

        // CONNECTING before the first call that may reach the service (a networked service's
        // keys, the journal's settlements), DISCONNECTING once it answered or failed.
        emitter.emit(StatusEvent::Connecting)?;
        tracing::debug!(
            licenses = scanned.tally.licenses(),
            individualize = self.individualize,
            "connecting to the service"
        );
        let prepared = (|| {
            // Reservations an earlier restore left unsettled (a crash, the service unreachable).
            let _ = journal::settle(&self.store_path, self.service.as_ref());
            let service_key = self.service.public_key()?;
            let pending = PendingRestore::begin(
                &self.store_path,
                Arc::clone(&self.service),
                &service_key,
                &scanned.header.archive_id,
            )?;
            let request = restore_request(scanned, &target, *pending.request_id(), &service_key)?;
            Ok::<_, Error>((pending, request))
        })();
        let (mut pending, request) = match prepared {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(code = e.code().name(), "disconnected from the service: it could not be asked");
                emitter.emit(StatusEvent::Disconnecting)?;
                return Err(e);
            }
        };
        let mut key_ids = scan::ReadAhead::start(scanned, scope)?;
        pending.asking();
        let answer = self.service.authorize_restore(&request, &mut key_ids);
        tracing::debug!(granted = answer.is_ok(), "disconnected from the service");
        emitter.emit(StatusEvent::Disconnecting)?;
        let grant = match answer {
            Ok(grant) => grant,
            Err(ServiceError::Refused(r)) => {
                tracing::info!(
                    code = r.code.name(),
                    licenses = scanned.tally.licenses(),
                    reason = %r.message,
                    "the service refused the restore"
                );
                emitter.emit(StatusEvent::Refused { code: r.code, message: r.message.clone(), url: r.url })?;
                return Err(Error::new(r.code, r.message));
            }
            Err(ServiceError::Failed(e)) => return Err(e),
        };
        // The service authorized exactly the licenses of the scan, all of them.
        let (finished, seen) = key_ids.finish()?;
        if !finished {
            return Err(Error::internal("the service answered before it read every key ID of the archive"));
        }
        scanned.check_same(&seen)?;
        let aad = grant_aad(&scanned.header.archive_id, &target.device().id(), pending.request_id());
        let data_key = target.device().pair.unwrap(&grant.wrapped_key, GRANT_INFO, &aad)?;
        let data_key: [u8; 32] = data_key
            .as_slice()
            .try_into()
            .map_err(|_| Error::new(ErrorCode::WrongKey, "the service granted a key of the wrong length"))?;
        let data_key = zeroize::Zeroizing::new(data_key);

        emitter.emit(StatusEvent::Begin { operation: emitter.kind() })?;
        // Every record is checked before the store is touched (a version-2 archive's bytes
        // against its authenticated commitment, a version-1 archive's records opened), so a
        // damaged archive, a cancel or a failing callback leaves the store as it was (and the
        // reservation is released when `pending` is dropped). The writing pass opens every
        // record again and rolls back on any failure.
        let mut progress = Progress::new(scanned.tally.licenses(), self.progress_interval);
        let step = |licenses| progress.advance(licenses, emitter);
        match &check {
            Some(check) => check.report(step)?,
            None => scanned.verify_sealed(&data_key, step)?,
        }
        progress.finish(emitter)?;
        emitter.check_cancelled()?;
        let (restored, skipped) =
            target.apply(self.policy, scanned.records(&data_key), scanned, pending.request_id(), &|| {
                emitter.check_cancelled()
            })?;
        // The store committed: confirm now (if the service cannot be reached, the journal
        // keeps the entry and a later settle confirms it).
        if let Err(e) = pending.settle() {
            tracing::warn!(
                code = e.code().name(),
                error = %e.message(),
                "the restore landed but its reservation could not be confirmed; the journal keeps it for later"
            );
        }
        tracing::debug!(restored, skipped, "restore applied to the store");
        // The commit is durable in the store's write-ahead log; copying the log back into the
        // file happens after the restore, on a thread of its own.
        self.checkpointer.start(&self.store_path);
        Ok(Summary { licenses: restored, restricted: 0, skipped, bytes: scanned.size, duration_ms: 0 })
    }
}

/// The request a restore (and the quota query for it) sends: the archive's authenticated
/// header and wrapped key, the device the licenses will be bound to and, when it is a new
/// identity, the proof that the device holds the identity it replaces.
pub(crate) fn restore_request(
    scanned: &scan::ScannedArchive,
    target: &RestoreTarget,
    request_id: RequestId,
    service_key: &[u8; 32],
) -> Result<RestoreRequest> {
    let device = target.device();
    let replaces = match target.replaced() {
        None => None,
        Some(old) => {
            let aad = succession_aad(&request_id, &scanned.header.archive_id, &device.id(), &old.id());
            Some(IdentityProof {
                device_id: old.id(),
                public_key: old.pair.public_bytes(),
                proof: old.pair.prove(service_key, SUCCESSION_INFO, &aad)?,
            })
        }
    };
    Ok(RestoreRequest {
        request_id,
        header: scanned.header.authenticated.clone(),
        wrapped_key: scanned.header.wrapped_key.clone(),
        device_id: device.id(),
        device_public_key: device.pair.public_bytes(),
        licenses: scanned.tally.licenses(),
        replaces,
    })
}
