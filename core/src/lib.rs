//! # license-backup
//!
//! Back up the DRM licenses stored on a device to a folder the user picks, and restore them
//! later on this device or another one: a re-creation, for today's platforms, of the license
//! backup and restore feature of the Windows Media Format SDK (`WMCreateBackupRestorer`,
//! `IWMBackupRestoreProps`, `IWMLicenseBackup`, `IWMLicenseRestore`, `IWMStatusCallback`).
//!
//! * [`LicenseStore`]: the device's licenses, in SQLite, content keys sealed to the device key
//!   and bound to their rows; the device's seed held by a [`Protector`] (the platform keystore,
//!   a host function) or, [`Protector::unprotected`], in clear in the file.
//! * [`BackupRestorer`]: properties (`BackupPath`, `RestorePath`, ...) and the asynchronous
//!   [`BackupRestorer::backup_licenses`] / [`BackupRestorer::restore_licenses`], which report
//!   [`StatusEvent`]s to a [`StatusCallback`] and end with exactly one END.
//! * [`LicenseService`]: registers devices, authorizes restores and enforces the restore quota
//!   (a grant is a reservation, confirmed once the restore landed); [`EmbeddedService`] runs
//!   in process with its ledger in a local SQLite file; [`Authority`] is the service's logic
//!   over any [`Ledger`], for a networked service to run per account.
//! * [`diagnostics`]: the core logs through `tracing` (nothing printed); [`diagnostics::install`]
//!   forwards the records to a host's logging.
//! * [`interface`]: the tables of the machine-readable description every binding is checked
//!   against (`core/interface.json`, written by the `license-backup-devtools` crate).
//!
//! ```
//! use std::sync::Arc;
//! use license_backup::*;
//!
//! # fn main() -> Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let service: Arc<dyn LicenseService> = Arc::new(EmbeddedService::open(dir.path().join("service.db"))?);
//! let store = Arc::new(LicenseStore::open(dir.path().join("device.db"))?);
//! store.add_license(&NewLicense {
//!     key_id: KeyId::random(),
//!     content_key: vec![7; 16],
//!     rights: Rights::default(),
//!     issuer: "https://licenses.example.com".into(),
//!     issued_at: 1_700_000_000,
//! }, ConflictPolicy::Keep)?;
//!
//! let restorer = create_backup_restorer(store, service);
//! restorer.set_property("BackupPath", PropertyValue::String(dir.path().display().to_string()))?;
//! let op = restorer.backup_licenses(BackupFlags::default(), Arc::new(|event: &StatusEvent| {
//!     println!("{event:?}");
//!     Ok(())
//! }))?;
//! let summary = op.wait()?;
//! assert_eq!(summary.licenses, 1);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod archive;
mod backup;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench_support;
mod clock;
mod crypto;
mod device;
pub mod diagnostics;
pub mod error;
pub mod event;
mod file_kind;
mod folder;
pub mod interface;
mod journal;
mod key_id;
pub mod license;
mod operation;
pub mod props;
pub mod protector;
#[cfg(feature = "protocol")]
pub mod protocol;
mod registration;
#[cfg(feature = "remote")]
pub mod remote;
mod restore;
mod restorer;
mod secret;
pub mod service;
mod sqlite;
mod store;

pub use crypto::WrappedKey;
pub use error::{Error, ErrorCode, Result};
pub use event::{
    CallbackError, Emitted, EventKind, FieldValue, OperationKind, Outcome, StatusCallback, StatusEvent, Summary,
};
pub use file_kind::{LEDGER_APPLICATION_ID, STORE_APPLICATION_ID};
pub use key_id::KeyId;
pub use license::{CatalogEntry, ConflictPolicy, ContentKey, License, NewLicense, Rights};
pub use operation::{OperationHandle, monotonic_ns};
pub use props::{Properties, Property, PropertyValue, ValueType, number_value};
#[cfg(feature = "keyring")]
pub use protector::KeyringProtector;
pub use protector::{FileKind, KeyProtector, ProtectedFile, Protector};
#[cfg(feature = "remote")]
pub use remote::{RemoteOptions, RemoteService};
pub use restorer::{BackupFlags, BackupRestorer, RestoreFlags, create_backup_restorer};
pub use service::{
    Authority, DeviceRegistration, EMBEDDED_ACCOUNT, EmbeddedService, IdentityProof, KeyIdStream, Ledger, LedgerAudit,
    LedgerTx, LicenseService, Quota, Refusal, RequestId, RestoreGrant, RestoreRequest, ServiceError, ServiceOptions,
    ServicePolicy, Settlement, SqliteLedger,
};
pub use store::{LicenseStore, SCHEMA_VERSION, StoreOptions};
