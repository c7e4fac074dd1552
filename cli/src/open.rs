//! Opening what the command line names: the device's store and the License Management Service.
//!
//! Neither is created by accident: a store or an embedded service ledger that does not exist
//! is an error unless the command was asked to create it (`restore --create-store`,
//! `backup --create-service`), so a mistyped path never yields an empty device, or a backup
//! wrapped to a service key nobody else has.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use license_backup::{
    EmbeddedService, ErrorCode, LicenseService, LicenseStore, RemoteOptions, RemoteService, ServicePolicy,
};

use crate::args::{ServiceArgs, StoreArgs};
use crate::exit::Failure;

/// Opens the store named by `--store`, which must exist.
pub fn store(args: &StoreArgs) -> Result<Arc<LicenseStore>, Failure> {
    let path = &args.store;
    if !path.exists() {
        let hint = "check --store; `restore --create-store` creates the store of a new device";
        return Err(
            Failure::new(ErrorCode::PathNotFound, format!("no license store at {}", path.display())).with_hint(hint)
        );
    }
    Ok(Arc::new(LicenseStore::open(path)?))
}

/// A store this run created, removed again (with SQLite's side files) when dropped unless
/// [`CreatedStore::keep`] was called: a restore that fails onto a new device leaves nothing.
pub struct CreatedStore {
    path: Option<PathBuf>,
}

impl CreatedStore {
    /// Keeps the store.
    pub fn keep(&mut self) {
        self.path = None;
    }
}

impl Drop for CreatedStore {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut name = path.clone().into_os_string();
                name.push(suffix);
                let _ = std::fs::remove_file(name);
            }
        }
    }
}

/// Opens the store named by `--store`, creating it (a new device) if it does not exist; the
/// guard removes a created store unless it is kept.
pub fn store_or_create(args: &StoreArgs) -> Result<(Arc<LicenseStore>, CreatedStore), Failure> {
    let path = &args.store;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty() && !path.exists()) {
        if !parent.is_dir() {
            return Err(Failure::new(
                ErrorCode::PathNotFound,
                format!("the folder {} does not exist", parent.display()),
            )
            .with_hint("--create-store creates the store file, not its folder"));
        }
    }
    let created = CreatedStore { path: (!path.exists()).then(|| path.clone()) };
    Ok((Arc::new(LicenseStore::open(path)?), created))
}

/// Where `--service` points.
enum Location<'a> {
    /// An embedded service's ledger file.
    Embedded(&'a Path),
    /// A networked service.
    Url(&'a str),
}

fn location(service: &str) -> Location<'_> {
    if service.starts_with("https://") || service.starts_with("http://") {
        Location::Url(service)
    } else {
        Location::Embedded(Path::new(service))
    }
}

/// Opens the service named by `--service` with its options; creates an embedded ledger only
/// with `create`.
pub fn service(args: &ServiceArgs, create: bool) -> Result<Arc<dyn LicenseService>, Failure> {
    match location(&args.service) {
        Location::Url(url) => {
            if args.max_devices.is_some() || args.refusal_url.is_some() {
                return Err(Failure::new(
                    ErrorCode::InvalidArgument,
                    "--max-devices and --refusal-url set an embedded service's policy; a networked service has its own",
                ));
            }
            let token = match (&args.token_file, std::env::var("LICENSE_BACKUP_TOKEN")) {
                (Some(file), _) => Some(read_token(file)?),
                (None, Ok(token)) if !token.is_empty() => Some(token),
                _ => None,
            };
            let options = RemoteOptions {
                token,
                ca_file: args.ca_file.clone(),
                cert_pins: args.cert_pins.clone(),
                service_keys: args.service_keys.clone(),
                timeout: args.timeout.map(std::time::Duration::from_secs),
                retries: None,
            };
            Ok(Arc::new(RemoteService::new(url, options)?))
        }
        Location::Embedded(path) => {
            if args.token_file.is_some()
                || args.ca_file.is_some()
                || !args.cert_pins.is_empty()
                || !args.service_keys.is_empty()
                || args.timeout.is_some()
            {
                return Err(Failure::new(
                    ErrorCode::InvalidArgument,
                    format!(
                        "--token-file, --ca-file, --cert-pin, --service-key and --timeout are for a networked service; {} is a ledger file",
                        path.display()
                    ),
                )
                .with_hint("give the service's https:// URL"));
            }
            if path.as_os_str().is_empty() {
                return Err(Failure::new(ErrorCode::InvalidArgument, "--service is empty"));
            }
            if path.is_dir() {
                return Err(Failure::new(
                    ErrorCode::NotAFolder,
                    format!("--service {} is a folder, not a service ledger", path.display()),
                )
                .with_hint("give the path of the service's ledger file"));
            }
            if !create && !path.exists() {
                return Err(Failure::new(
                    ErrorCode::ServiceUnavailable,
                    format!("no License Management Service ledger at {}", path.display()),
                )
                .with_hint(
                    "point --service at the ledger the backup was made with; `backup --create-service` creates a new one",
                ));
            }
            let policy = ServicePolicy::with_overrides(args.max_devices, args.refusal_url.clone());
            let service = EmbeddedService::open_with_policy(path, policy).map_err(|e| {
                Failure::new(
                    ErrorCode::ServiceUnavailable,
                    format!("cannot open the service ledger {}: {}", path.display(), e.message()),
                )
            })?;
            Ok(Arc::new(service))
        }
    }
}

/// The token in `file`: its first line, trimmed.
fn read_token(file: &Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        Failure::new(ErrorCode::PathNotFound, format!("cannot read the token file {}: {e}", file.display()))
    })?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(Failure::new(ErrorCode::InvalidArgument, format!("the token file {} is empty", file.display())));
    }
    Ok(token)
}
