//! Back up a device's licenses to a folder, "move" to a second device, and restore there
//! through the embedded License Management Service, printing every event: the library's own
//! demo (`make demo-library`).
//!
//! With `--prepare`, it only creates what `make demo` then drives with the `license-backup`
//! command-line tool: device A with its licenses and catalog, an empty device B, and the
//! service's ledger.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use license_backup::*;

const TITLES: &[(&str, &str)] = &[
    ("Blue in Green", "Miles Davis"),
    ("Clair de lune", "Claude Debussy"),
    ("Hallelujah", "Jeff Buckley"),
    ("Heroes", "David Bowie"),
    ("Hurt", "Johnny Cash"),
    ("Jolene", "Dolly Parton"),
    ("Karma Police", "Radiohead"),
    ("La Vie en rose", "Edith Piaf"),
    ("Like a Rolling Stone", "Bob Dylan"),
    ("Respect", "Aretha Franklin"),
    ("River", "Joni Mitchell"),
    ("So What", "Miles Davis"),
];

fn printer(device: &'static str) -> Arc<dyn StatusCallback> {
    Arc::new(move |event: &StatusEvent| {
        let line = match event {
            StatusEvent::Begin { operation } => format!("BEGIN {}", operation.name()),
            StatusEvent::Progress { done, total, .. } => format!("PROGRESS {done}/{total}"),
            StatusEvent::RestrictedLicense { key_id, title } => format!(
                "RESTRICTED_LICENSE {key_id} ({}) may not be backed up",
                title.as_deref().unwrap_or("unknown title")
            ),
            StatusEvent::Refused { code, message, url } => format!("REFUSED {code}: {message} (see {url})"),
            StatusEvent::End { operation, outcome: Outcome::Completed(s) } => format!(
                "END {}: {} licenses, {} restricted, {} skipped, {} bytes, {} ms",
                operation.name(),
                s.licenses,
                s.restricted,
                s.skipped,
                s.bytes,
                s.duration_ms
            ),
            StatusEvent::End { operation, outcome: Outcome::Failed(e) } => {
                format!("END {} failed: {e}", operation.name())
            }
            // Every other kind (CONNECTING, DISCONNECTING, ...): its name and its fields.
            other => {
                let fields: Vec<String> =
                    other.surface_values().iter().map(|(name, value)| format!(" {name}={value:?}")).collect();
                format!("{}{}", other.kind().name().to_uppercase(), fields.concat())
            }
        };
        println!("  [{device}] {line}");
        Ok(())
    })
}

/// A `license-backup-service` the demo runs: made with `init`, stopped with SIGTERM at the end.
struct Server {
    child: std::process::Child,
    url: String,
    token: String,
    ca: PathBuf,
}

impl Server {
    fn start(bin: &Path, root: &Path) -> Result<Server> {
        let fail = |e: String| Error::new(ErrorCode::ServiceUnavailable, e);
        let folder = root.join("service");
        let out = std::process::Command::new(bin)
            .arg("init")
            .arg(&folder)
            .args(["--listen", "127.0.0.1:0"])
            .output()
            .map_err(|e| fail(format!("cannot run {}: {e}", bin.display())))?;
        let made: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| fail(e.to_string()))?;
        let mut child = std::process::Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(made["config"].as_str().unwrap_or_default())
            .env("LB_SERVICE_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .map_err(|e| fail(e.to_string()))?;
        let listening: serde_json::Value = serde_json::from_str(&line).map_err(|e| fail(e.to_string()))?;
        Ok(Server {
            child,
            url: listening["listening"].as_str().unwrap_or_default().into(),
            token: made["token"].as_str().unwrap_or_default().into(),
            ca: made["ca_file"].as_str().unwrap_or_default().into(),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the server this demo started: a graceful stop, then reaped.
        #[cfg(unix)]
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        #[cfg(not(unix))]
        let _ = self.child.kill();
        let _ = self.child.wait();
        println!("== License Management Service stopped");
    }
}

/// Device A: a media player with licenses, a few of which may not be backed up, all titled.
fn fill_device_a(device_a: &LicenseStore) -> Result<()> {
    println!("== Device A: a media player with {} licenses", TITLES.len() * 3);
    let mut n = 0u8;
    for round in 0..3 {
        for (title, artist) in TITLES {
            n += 1;
            let key_id = KeyId::from_bytes([n; 16]);
            device_a.add_license(
                &NewLicense {
                    key_id,
                    content_key: (0..16).map(|i| n.wrapping_mul(31).wrapping_add(i)).collect(),
                    rights: Rights {
                        // Every seventh owner forbids backup; some licenses count plays.
                        backup_allowed: n % 7 != 0,
                        plays_remaining: (n % 5 == 0).then_some(u32::from(n)),
                        ..Rights::default()
                    },
                    issuer: "https://licenses.example.com".into(),
                    issued_at: 1_700_000_000 + i64::from(n),
                },
                ConflictPolicy::Keep,
            )?;
            let title = if round == 0 { title.to_string() } else { format!("{title} (take {})", round + 1) };
            device_a.set_catalog_entry(
                &key_id,
                &CatalogEntry { title: Some(title), artist: Some(artist.to_string()), file_path: None },
            )?;
        }
    }
    println!("   device id {}, {} licenses", device_a.device_id()?, device_a.license_count()?);
    Ok(())
}

fn main() -> Result<()> {
    let root = PathBuf::from(std::env::var("DEMO_DIR").unwrap_or_else(|_| "target/demo".into()));
    // Each run starts afresh, so running the demo twice works.
    let _ = std::fs::remove_dir_all(&root);
    let usb = root.join("usb-stick");
    std::fs::create_dir_all(&usb).map_err(|e| Error::new(ErrorCode::Storage, e.to_string()))?;
    // `--network BIN`: the same story through a license-backup-service it starts (and stops).
    let args: Vec<String> = std::env::args().collect();
    let server = match args.iter().position(|a| a == "--network") {
        Some(i) => Some(Server::start(Path::new(args.get(i + 1).expect("--network needs the server binary")), &root)?),
        None => None,
    };
    let service: Arc<dyn LicenseService> = match &server {
        Some(s) => {
            println!("== License Management Service: {} (a server process, TLS with its own CA)", s.url);
            let options =
                RemoteOptions { token: Some(s.token.clone()), ca_file: Some(s.ca.clone()), ..Default::default() };
            Arc::new(RemoteService::new(&s.url, options)?)
        }
        None => Arc::new(EmbeddedService::open(root.join("license-service.db"))?),
    };
    if args.iter().any(|a| a == "--prepare") {
        fill_device_a(&LicenseStore::open(root.join("device-a.db"))?)?;
        LicenseStore::open(root.join("device-b.db"))?;
        println!("== Device B: a new computer, no licenses yet");
        return Ok(());
    }

    let device_a = Arc::new(LicenseStore::open(root.join("device-a.db"))?);
    fill_device_a(&device_a)?;

    let restorer_a = create_backup_restorer(Arc::clone(&device_a), Arc::clone(&service));
    restorer_a.set_property("BackupPath", PropertyValue::String(usb.display().to_string()))?;
    restorer_a.set_property("ProgressInterval", PropertyValue::U32(10))?;
    println!("== Backing up to {}", usb.display());
    let summary = restorer_a.backup_licenses(BackupFlags { overwrite: true }, printer("A"))?.wait()?;

    println!("== Device B: a new computer");
    let device_b = Arc::new(LicenseStore::open(root.join("device-b.db"))?);
    println!("   device id {}, {} licenses", device_b.device_id()?, device_b.license_count()?);
    let restorer_b = create_backup_restorer(Arc::clone(&device_b), Arc::clone(&service));
    restorer_b.set_property("RestorePath", PropertyValue::String(usb.display().to_string()))?;
    restorer_b.set_property("ProgressInterval", PropertyValue::U32(10))?;
    let quota = restorer_b.restore_quota()?;
    println!(
        "   quota: {} licenses, {} more devices may receive them (max {}); restoring here is {}",
        quota.licenses,
        quota.restores_remaining,
        quota.max_devices,
        if quota.allowed { "allowed" } else { "refused" }
    );
    println!("== Restoring from {}", usb.display());
    let restored = restorer_b.restore_licenses(RestoreFlags::default(), printer("B"))?.wait()?;

    let sample = device_b.list_licenses()?.into_iter().next().expect("restored licenses");
    assert_eq!(device_b.content_key(&sample.key_id)?, device_a.content_key(&sample.key_id)?);
    println!("== Summary");
    println!("   backed up {} licenses ({} restricted, left on device A)", summary.licenses, summary.restricted);
    println!("   restored {} licenses on device B ({})", restored.licenses, device_b.device_id()?);
    println!(
        "   e.g. \"{}\" plays on device B with the same content key",
        sample.catalog.and_then(|c| c.title).unwrap_or_default()
    );
    Ok(())
}
