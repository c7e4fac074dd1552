//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Back up the DRM licenses of a device to a folder, restore them on this or another device,
/// and inspect backups.
#[derive(Debug, Parser)]
#[command(name = "license-backup", version, max_term_width = 100)]
pub struct Cli {
    /// How to report.
    #[command(flatten)]
    pub output: OutputArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command: how it reports.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print one JSON object a line: each status event, then a final summary (for scripts)
    #[arg(long, global = true, help_heading = "Output")]
    pub json: bool,
    /// Print every status event as a line (BEGIN, PROGRESS, CONNECTING, ...)
    #[arg(short, long, global = true, help_heading = "Output")]
    pub verbose: bool,
    /// Colours: auto (only on a terminal, and not when NO_COLOR is set), always, never
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN",
          hide_possible_values = true, help_heading = "Output")]
    pub color: ColorChoice,
    /// Never draw a progress bar (it is drawn only when standard error is a terminal)
    #[arg(long, global = true, help_heading = "Output")]
    pub no_progress: bool,
}

/// When to use colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up every license that may be backed up to FOLDER/licenses.lbk
    Backup(BackupArgs),
    /// Restore the licenses of a backup onto this device's store (asks the service first)
    Restore(RestoreArgs),
    /// Show what the restore quota allows for a backup onto this device (changes nothing);
    /// exits 0 when a restore would be allowed, 6 when it would be refused
    Quota(QuotaArgs),
    /// Show an archive's header and check its framing, without any key (changes nothing)
    Inspect(InspectArgs),
    /// List the licenses and the catalog of a store (never a content key)
    List(StoreArgs),
    /// Check a store: database integrity, and every content key opens with the device key
    Verify(StoreArgs),
}

/// The license store of the device.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The device's license store (a file; it must exist)
    #[arg(long, env = "LICENSE_BACKUP_STORE", value_name = "STORE")]
    pub store: PathBuf,
}

/// Which License Management Service to use, and its options.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The License Management Service: the path of an embedded service's ledger file (it must
    /// exist; backup --create-service creates one), or the https:// URL of a networked service
    #[arg(long, env = "LICENSE_BACKUP_SERVICE", value_name = "LEDGER|URL", help_heading = "Service")]
    pub service: String,
    /// Networked service: a file holding the bearer token the provider gave (or the
    /// LICENSE_BACKUP_TOKEN variable; never on the command line, where other users see it)
    #[arg(long, env = "LICENSE_BACKUP_TOKEN_FILE", value_name = "FILE", help_heading = "Service")]
    pub token_file: Option<PathBuf>,
    /// Networked service: a PEM file of CA certificates trusted besides the system's roots
    #[arg(long, value_name = "PEM", help_heading = "Service")]
    pub ca_file: Option<PathBuf>,
    /// Networked service: accept only the server certificate with this SHA-256 fingerprint
    /// (hex; repeat for several)
    #[arg(long = "cert-pin", value_name = "SHA256", help_heading = "Service")]
    pub cert_pins: Vec<String>,
    /// Networked service: back up only to the service key with this fingerprint (32 hex
    /// digits; repeat for several)
    #[arg(long = "service-key", value_name = "FINGERPRINT", help_heading = "Service")]
    pub service_keys: Vec<String>,
    /// Networked service: the connect, read and write timeout in seconds (default 30)
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600), help_heading = "Service")]
    pub timeout: Option<u64>,
    /// Embedded service: distinct devices a license may live on (default 4)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Service")]
    pub max_devices: Option<u32>,
    /// Embedded service: the page a refusal points to
    #[arg(long, value_name = "URL", help_heading = "Service")]
    pub refusal_url: Option<String>,
}

/// `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The folder to write licenses.lbk to (it must exist)
    #[arg(long, value_name = "FOLDER")]
    pub to: PathBuf,
    /// Replace a backup already in the folder (atomically: the old one stays until the new one
    /// is complete)
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Create the embedded service's ledger (with a new key) if --service names no file
    #[arg(long)]
    pub create_service: bool,
    /// Emit a PROGRESS event every N licenses (default 100)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub progress_interval: Option<u32>,
}

/// `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The folder that holds licenses.lbk
    #[arg(long, value_name = "FOLDER")]
    pub from: PathBuf,
    /// Give this device a new identity and re-bind every license to it (counts as a new device)
    #[arg(long)]
    pub individualize: bool,
    /// Replace licenses the device already has with the archived copies (default: keep them)
    #[arg(long)]
    pub replace_existing: bool,
    /// Create the store (a new device) if --store names no file
    #[arg(long)]
    pub create_store: bool,
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Emit a PROGRESS event every N licenses (default 100)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub progress_interval: Option<u32>,
}

/// `quota`.
#[derive(Debug, Args)]
pub struct QuotaArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The folder that holds licenses.lbk
    #[arg(long, value_name = "FOLDER")]
    pub from: PathBuf,
    /// Ask for a restore with --individualize (the device would count as a new one)
    #[arg(long)]
    pub individualize: bool,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The archive file, or the folder that holds licenses.lbk
    #[arg(value_name = "FOLDER|FILE")]
    pub path: PathBuf,
}
