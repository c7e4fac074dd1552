//! The backup restorer: properties, and the operations that back up and restore licenses
//! (`WMCreateBackupRestorer`, `IWMLicenseBackup`, `IWMLicenseRestore`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::archive::ARCHIVE_FILE_NAME;
use crate::backup::BackupJob;
use crate::crypto;
use crate::error::{Error, ErrorCode, Result};
use crate::event::{OperationKind, StatusCallback};
use crate::folder::check_folder;
use crate::journal;
use crate::license::ConflictPolicy;
use crate::operation::{self, OperationHandle};
use crate::props::{Properties, Property, PropertyValue};
use crate::restore::{self, RestoreJob, RestoreTarget, restore_request};
use crate::service::{LicenseService, Quota};
use crate::store::LicenseStore;

/// Flags of a backup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackupFlags {
    /// Replace an archive already in the folder. Without it an existing archive is a
    /// `BACKUP_EXISTS` error and is left byte-for-byte as it was.
    pub overwrite: bool,
}

/// Flags of a restore.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreFlags {
    /// Give this device a fresh identity during the restore and re-bind every license on it
    /// (the old and the restored) to the new identity, atomically. The new identity counts as
    /// the one it replaces for the restore quota (the service records the succession when the
    /// restore is confirmed).
    pub individualize: bool,
    /// Replace licenses the device already has with their archived copies (by default the
    /// device's own copy is kept and the archived one counted as skipped).
    pub replace_existing: bool,
}

/// Creates a backup restorer for a store, with a License Management Service
/// (`WMCreateBackupRestorer`).
pub fn create_backup_restorer(store: Arc<LicenseStore>, service: Arc<dyn LicenseService>) -> BackupRestorer {
    BackupRestorer::new(store, service)
}

/// Backs up and restores the licenses of one store, asynchronously, reporting to a callback.
pub struct BackupRestorer {
    store: Arc<LicenseStore>,
    service: Arc<dyn LicenseService>,
    props: Mutex<Properties>,
    backup: Mutex<Option<OperationHandle>>,
    restore: Mutex<Option<OperationHandle>>,
}

impl std::fmt::Debug for BackupRestorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupRestorer").field("store", &self.store).finish_non_exhaustive()
    }
}

impl BackupRestorer {
    /// A restorer over `store`, authorizing restores with `service`. Restore reservations an
    /// earlier run left unsettled with this service (a crash, the service unreachable) are
    /// settled first, if the service can be reached ([`BackupRestorer::settle_reservations`]).
    pub fn new(store: Arc<LicenseStore>, service: Arc<dyn LicenseService>) -> Self {
        let _ = journal::settle(store.path(), service.as_ref());
        BackupRestorer {
            store,
            service,
            props: Mutex::new(Properties::default()),
            backup: Mutex::new(None),
            restore: Mutex::new(None),
        }
    }

    /// The store this restorer works on.
    pub fn store(&self) -> &Arc<LicenseStore> {
        &self.store
    }

    fn props(&self) -> std::sync::MutexGuard<'_, Properties> {
        self.props.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets a property (`IWMBackupRestoreProps::SetProp`).
    pub fn set_property(&self, name: &str, value: PropertyValue) -> Result<()> {
        self.props().set(name, value)
    }

    /// Sets a path property (`BackupPath`, `RestorePath`) to an operating-system path that need
    /// not be UTF-8 (see [`Properties::set_path`]).
    pub fn set_path_property(&self, name: &str, path: &std::path::Path) -> Result<()> {
        self.props().set_path(name, path)
    }

    /// The path a path property names; `None` if it is not set (see [`Properties::get_path`]).
    pub fn path_property(&self, name: &str) -> Result<Option<PathBuf>> {
        self.props().get_path(name)
    }

    /// A property's value by name; `None` if it is known but not set.
    pub fn get_property(&self, name: &str) -> Result<Option<PropertyValue>> {
        self.props().get(name)
    }

    /// The `index`-th property set, with its name.
    pub fn property_by_index(&self, index: usize) -> Result<(String, PropertyValue)> {
        self.props().get_by_index(index)
    }

    /// How many properties are set.
    pub fn property_count(&self) -> usize {
        self.props().count()
    }

    /// Removes a property; returns whether it was set.
    pub fn remove_property(&self, name: &str) -> Result<bool> {
        self.props().remove(name)
    }

    /// Removes every property.
    pub fn remove_all_properties(&self) {
        self.props().remove_all()
    }

    fn folder(&self, prop: Property) -> Result<(PathBuf, u64)> {
        let props = self.props();
        let folder = props.path(prop).ok_or_else(|| {
            Error::new(ErrorCode::PathNotSet, format!("set the {} property before starting", prop.name()))
        })?;
        Ok((folder, props.progress_interval()))
    }

    /// Starts backing up every license that may be backed up to the folder in `BackupPath`
    /// (`IWMLicenseBackup::BackupLicenses`). Fails at once with `PATH_NOT_SET` or `BUSY`;
    /// everything else is reported through events, ending with exactly one END.
    pub fn backup_licenses(&self, flags: BackupFlags, callback: Arc<dyn StatusCallback>) -> Result<OperationHandle> {
        let (folder, progress_interval) = self.folder(Property::BackupPath)?;
        let job = BackupJob {
            store_path: self.store.path().to_path_buf(),
            keys: self.store.keys(),
            service: Arc::clone(&self.service),
            folder,
            overwrite: flags.overwrite,
            progress_interval,
        };
        self.start(OperationKind::Backup, &self.backup, callback, move |e| job.run(e))
    }

    /// Starts restoring the licenses in the folder in `RestorePath` onto this device
    /// (`IWMLicenseRestore::RestoreLicenses`). Fails at once with `PATH_NOT_SET` or `BUSY`.
    pub fn restore_licenses(&self, flags: RestoreFlags, callback: Arc<dyn StatusCallback>) -> Result<OperationHandle> {
        let (folder, progress_interval) = self.folder(Property::RestorePath)?;
        let job = RestoreJob {
            store_path: self.store.path().to_path_buf(),
            keys: self.store.keys(),
            checkpointer: self.store.checkpointer(),
            service: Arc::clone(&self.service),
            folder,
            individualize: flags.individualize,
            policy: ConflictPolicy::from_replace(flags.replace_existing),
            progress_interval,
        };
        self.start(OperationKind::Restore, &self.restore, callback, move |e| job.run(e))
    }

    fn start<F>(
        &self,
        kind: OperationKind,
        slot: &Mutex<Option<OperationHandle>>,
        callback: Arc<dyn StatusCallback>,
        job: F,
    ) -> Result<OperationHandle>
    where
        F: FnOnce(&operation::Emitter) -> Result<crate::event::Summary> + Send + 'static,
    {
        self.store.mark_busy()?;
        let handle = OperationHandle::new(kind);
        // The handle is reachable for cancel_* before the first event can be delivered.
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle.clone());
        if let Err(e) = operation::spawn(handle.clone(), Arc::clone(&self.store), callback, job) {
            self.store.clear_busy();
            return Err(e);
        }
        Ok(handle)
    }

    /// Cancels the running backup, if any (`IWMLicenseBackup::CancelLicenseBackup`).
    pub fn cancel_license_backup(&self) {
        if let Some(h) = self.backup.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            h.cancel();
        }
    }

    /// Cancels the running restore, if any (`IWMLicenseRestore::CancelLicenseRestore`).
    pub fn cancel_license_restore(&self) {
        if let Some(h) = self.restore.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            h.cancel();
        }
    }

    /// What the restore quota allows for the archive in `RestorePath` onto this device, asked
    /// of the service without changing anything: what a user wants to see before restoring.
    pub fn restore_quota(&self) -> Result<Quota> {
        self.restore_quota_with(RestoreFlags::default())
    }

    /// [`BackupRestorer::restore_quota`] for a restore with `flags`: with `individualize`, the
    /// question is asked for a new identity that replaces this device's (it counts as this
    /// device). The request is the restore's own (header, wrapped key, device, proofs), so the
    /// answer ([`Quota::allowed`]) is what the service would decide now. A damaged archive is
    /// `ARCHIVE_CORRUPT` before the service is asked.
    pub fn restore_quota_with(&self, flags: RestoreFlags) -> Result<Quota> {
        let (folder, _) = self.folder(Property::RestorePath)?;
        check_folder(&folder)?;
        let scanned = restore::scan::scan(&folder.join(ARCHIVE_FILE_NAME))?;
        crate::file_kind::check(self.store.path(), crate::file_kind::FileKind::Store)?;
        let _ = journal::settle(self.store.path(), self.service.as_ref());
        let target = RestoreTarget::new(self.store.path(), &self.store.keys(), flags.individualize)?;
        let service_key = self.service.public_key()?;
        let request = restore_request(&scanned, &target, crypto::random_array(), &service_key)?;
        let mut key_ids = scanned.key_ids();
        let quota = self.service.quota(&request, &mut key_ids)?;
        scanned.check_same(key_ids.summary().1)?;
        Ok(quota)
    }

    /// Settles the restore reservations this store left unsettled with this restorer's service
    /// (restores that crashed, or whose service could not be reached when they ended):
    /// confirms those that landed, releases the others. Returns how many were settled. Done
    /// anyway when the restorer is created and before every restore and quota query.
    pub fn settle_reservations(&self) -> Result<usize> {
        journal::settle(self.store.path(), self.service.as_ref())
    }
}
