//! The restore job: read the archive, get the service's authorization, decrypt and stage every
//! license, then apply them to the store in one transaction.

use std::io::{BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use crate::archive::{self, ARCHIVE_FILE_NAME, GRANT_INFO, HEADER_LEN, RecordReader};
use crate::backup::check_folder;
use crate::error::{Error, ErrorCode, Result};
use crate::event::{StatusEvent, Summary};
use crate::license::ConflictPolicy;
use crate::operation::{Emitter, Progress};
use crate::service::{LicenseService, RestoreRequest, ServiceError, grant_aad};
use crate::store::Staging;

/// What a restore needs, captured when it is started.
pub(crate) struct RestoreJob {
    pub(crate) store_path: PathBuf,
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
        let mut scanned = archive::scan(&path)?;
        emitter.check_cancelled()?;
        let staging = Staging::new(&self.store_path, self.individualize)?;

        emitter.emit(StatusEvent::Connecting)?;
        let request = RestoreRequest {
            header: scanned.header.authenticated.clone(),
            wrapped_key: scanned.header.wrapped_key.clone(),
            device_id: staging.device().id(),
            device_public_key: staging.device().pair.public_bytes(),
            // Moved, not copied: at a million licenses the list is 16 MB.
            key_ids: std::mem::take(&mut scanned.key_ids),
        };
        let answer = self.service.authorize_restore(&request);
        emitter.emit(StatusEvent::Disconnecting)?;
        let grant = match answer {
            Ok(grant) => grant,
            Err(ServiceError::Refused(r)) => {
                emitter.emit(StatusEvent::Refused { code: r.code, message: r.message.clone(), url: r.url })?;
                return Err(Error::new(r.code, r.message));
            }
            Err(ServiceError::Failed(e)) => return Err(e),
        };
        let aad = grant_aad(&scanned.header.archive_id, &staging.device().id());
        let data_key = staging.device().pair.unwrap(&grant.wrapped_key, GRANT_INFO, &aad)?;
        let data_key: [u8; 32] = data_key
            .as_slice()
            .try_into()
            .map_err(|_| Error::new(ErrorCode::WrongKey, "the service granted a key of the wrong length"))?;
        let data_key = zeroize::Zeroizing::new(data_key);

        emitter.emit(StatusEvent::Begin { operation: emitter.kind() })?;
        let mut file = scanned.file;
        file.seek(SeekFrom::Start(HEADER_LEN as u64)).map_err(|e| Error::io("cannot read the archive", &e))?;
        let mut reader =
            RecordReader::new(BufReader::with_capacity(256 * 1024, file), scanned.header.archive_id, &data_key);
        let mut staging = staging;
        let mut progress = Progress::new(request.key_ids.len() as u64, self.progress_interval);
        let mut expected = request.key_ids.iter();
        while let Some(archived) = reader.next_license()? {
            if expected.next() != Some(&archived.license.key_id) {
                return Err(Error::corrupt("the archive changed while it was being restored"));
            }
            staging.stage(&archived.license, &archived.content_key)?;
            progress.step(emitter)?;
        }
        if expected.next().is_some() {
            return Err(Error::corrupt("the archive changed while it was being restored"));
        }
        progress.finish(emitter)?;
        emitter.check_cancelled()?;
        let (restored, skipped) = staging.commit(self.policy)?;
        Ok(Summary { licenses: restored, restricted: 0, skipped, bytes: scanned.size, duration_ms: 0 })
    }
}
