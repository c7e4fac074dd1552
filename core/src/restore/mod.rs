//! The restore job: scan the archive, get the service's authorization, read and authenticate
//! every license (reporting progress), then apply them to the store in one transaction.
//!
//! Memory stays flat however many licenses the archive holds: nothing is kept per license. The
//! archive file is read in passes, each checked against the first by the count and a digest of
//! the key IDs: the scan (framing only, [`scan`]), the key IDs streamed to the service, the
//! verifying pass that reports PROGRESS ([`verify`]), and the pass that writes the store
//! ([`apply`]).

mod apply;
pub(crate) mod scan;
mod verify;

use std::path::PathBuf;
use std::sync::Arc;

use apply::RestoreTarget;

use crate::archive::{ARCHIVE_FILE_NAME, GRANT_INFO};
use crate::error::{Error, ErrorCode, Result};
use crate::event::{StatusEvent, Summary};
use crate::folder::check_folder;
use crate::license::ConflictPolicy;
use crate::operation::{Emitter, Progress};
use crate::service::{LicenseService, RestoreRequest, ServiceError, grant_aad};

/// What a restore needs, captured when it is started.
pub(crate) struct RestoreJob {
    pub(crate) store_path: PathBuf,
    pub(crate) keys: Arc<crate::store::StoreKeys>,
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
        let scanned = scan::scan(&path)?;
        emitter.check_cancelled()?;
        let target = RestoreTarget::new(&self.store_path, &self.keys, self.individualize)?;

        emitter.emit(StatusEvent::Connecting)?;
        let request = RestoreRequest {
            header: scanned.header.authenticated.clone(),
            wrapped_key: scanned.header.wrapped_key.clone(),
            device_id: target.device().id(),
            device_public_key: target.device().pair.public_bytes(),
            licenses: scanned.tally.licenses(),
        };
        let mut key_ids = scanned.key_ids()?;
        let answer = self.service.authorize_restore(&request, &mut key_ids);
        emitter.emit(StatusEvent::Disconnecting)?;
        let grant = match answer {
            Ok(grant) => grant,
            Err(ServiceError::Refused(r)) => {
                emitter.emit(StatusEvent::Refused { code: r.code, message: r.message.clone(), url: r.url })?;
                return Err(Error::new(r.code, r.message));
            }
            Err(ServiceError::Failed(e)) => return Err(e),
        };
        // The service authorized exactly the licenses of the scan, all of them.
        let (finished, seen) = key_ids.summary();
        if !finished {
            return Err(Error::internal("the service answered before it read every key ID of the archive"));
        }
        scanned.check_same(seen)?;
        let aad = grant_aad(&scanned.header.archive_id, &target.device().id());
        let data_key = target.device().pair.unwrap(&grant.wrapped_key, GRANT_INFO, &aad)?;
        let data_key: [u8; 32] = data_key
            .as_slice()
            .try_into()
            .map_err(|_| Error::new(ErrorCode::WrongKey, "the service granted a key of the wrong length"))?;
        let data_key = zeroize::Zeroizing::new(data_key);

        emitter.emit(StatusEvent::Begin { operation: emitter.kind() })?;
        // Every record is authenticated and decoded before the store is touched, so a damaged
        // archive, a cancel or a failing callback leaves the store as it was.
        let mut progress = Progress::new(scanned.tally.licenses(), self.progress_interval);
        scanned.verify(&data_key, |licenses| (0..licenses).try_for_each(|_| progress.step(emitter)))?;
        progress.finish(emitter)?;
        emitter.check_cancelled()?;
        let (restored, skipped) =
            target.apply(self.policy, scanned.records(&data_key)?, &scanned, &|| emitter.check_cancelled())?;
        Ok(Summary { licenses: restored, restricted: 0, skipped, bytes: scanned.size, duration_ms: 0 })
    }
}
