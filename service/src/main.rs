//! `license-backup-service`: the License Management Service over HTTPS.
//!
//! ```text
//! license-backup-service serve [--config FILE] [--listen ADDR]
//! license-backup-service init DIR [--listen ADDR] [--host NAME]... [--plain] [--token T]
//!                                 [--account NAME] [--max-devices N] [--refusal-url URL]
//! license-backup-service serve --migrate-only [--config FILE]
//! license-backup-service rotate-key [--config FILE]
//! license-backup-service audit --account NAME [--config FILE]
//! ```
//!
//! `serve` prints one JSON line on standard output once it listens
//! (`{"listening":"https://127.0.0.1:8443","keys":["<fingerprint>",...]}`) and logs to standard
//! error. SIGTERM or Ctrl-C stops it gracefully. `rotate-key` makes a new current service key in
//! the ledger (the old one stays, for the archives made for it; a running server uses the new
//! key once restarted) and prints its fingerprint; `audit` prints what the ledger holds for an
//! account, as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use license_backup::protocol::hex;
use license_backup_service::config::Config;
use license_backup_service::init::{InitOptions, init};
use license_backup_service::server;

const USAGE: &str = "usage:
  license-backup-service serve [--config FILE] [--listen ADDR] [--migrate-only]
      FILE defaults to $LB_SERVICE_CONFIG, then ./service.toml; --migrate-only brings the
      ledger's schema up to date, opens its keys and exits
  license-backup-service init DIR [--listen ADDR] [--host NAME]... [--plain] [--token TOKEN]
      [--account NAME] [--max-devices N] [--refusal-url URL]
  license-backup-service rotate-key [--config FILE]
  license-backup-service audit --account NAME [--config FILE]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("init") => init_command(&args[1..]),
        Some("rotate-key") => rotate_key(&args[1..]),
        Some("audit") => audit(&args[1..]),
        Some("--version") => {
            println!("license-backup-service {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some("--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("license-backup-service: {e}");
            ExitCode::from(2)
        }
    }
}

/// The value after a flag.
fn value<'a>(args: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a String, String> {
    args.next().ok_or_else(|| format!("{flag} needs a value"))
}

/// Unblocks the signals that stop the server: a parent may have started it with them blocked
/// (a blocked SIGTERM would stay pending for ever and the server would never stop).
fn unblock_stop_signals() {
    #[cfg(unix)]
    // SAFETY: plain libc calls on a local signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

fn serve(args: &[String]) -> Result<(), String> {
    unblock_stop_signals();
    let (mut config_path, mut listen, mut migrate_only) = (None, None, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => config_path = Some(PathBuf::from(value(&mut it, a)?)),
            "--listen" => listen = Some(value(&mut it, a)?.clone()),
            "--migrate-only" => migrate_only = true,
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let path = config_path
        .or_else(|| std::env::var_os("LB_SERVICE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("service.toml"));
    let env = |name: &str| {
        if name == "LB_SERVICE_LISTEN" && listen.is_some() {
            return listen.clone();
        }
        std::env::var(name).ok()
    };
    let config = Config::load(&path, &env)?;
    init_logging(&config);
    let runtime = runtime()?;
    if migrate_only {
        return migrate(&config, &runtime);
    }
    let loaded = server::load(&config, runtime.handle())?;
    let grace = config.limits.shutdown_grace();
    let result = runtime.block_on(async {
        let (listener, addr) = server::bind(&config).await?;
        let scheme = if loaded.tls.is_some() { "https" } else { "http" };
        let keys: Vec<String> = loaded.fingerprints.iter().map(|f| hex(f)).collect();
        let line = serde_json::json!({"listening": format!("{scheme}://{addr}"), "keys": keys});
        println!("{line}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        tracing::info!(%addr, scheme, "listening");
        server::serve(listener, loaded, server::stop_signal()).await;
        Ok::<(), String>(())
    });
    runtime.shutdown_timeout(grace);
    result
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("lb-service")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// `serve --migrate-only`: brings the ledger's schema up to date and opens its keys (making the
/// first one on a new ledger), prints `{"migrated":[versions],"schema_version":N,"keys":[...]}`
/// and exits; fails when the database cannot be reached.
fn migrate(config: &Config, runtime: &tokio::runtime::Runtime) -> Result<(), String> {
    use license_backup_service::ledger::Ledger;
    let (applied, version, keys) = match server::postgres_ledger(config, runtime.handle())? {
        Some(pg) => {
            let applied = pg.open_now().map_err(|e| format!("cannot migrate the ledger database: {e}"))?;
            let version = runtime.block_on(pg.storage().schema_version()).map_err(|e| e.to_string())?;
            (applied, version, pg.keys())
        }
        None => (Vec::new(), 0, server::open_ledger(config)?.keys()),
    };
    let keys: Vec<String> = keys.into_iter().map(|k| k.fingerprint).collect();
    println!("{}", serde_json::json!({"migrated": applied, "schema_version": version, "keys": keys}));
    Ok(())
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    if config.log.format == "json" {
        builder.json().init();
    } else {
        builder.with_ansi(false).init();
    }
}

fn init_command(args: &[String]) -> Result<(), String> {
    let mut options = InitOptions::default();
    let (mut dir, mut hosts) = (None, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--listen" => options.listen = value(&mut it, a)?.clone(),
            "--host" => hosts.push(value(&mut it, a)?.clone()),
            "--plain" => options.plain = true,
            "--token" => options.token = Some(value(&mut it, a)?.clone()),
            "--account" => options.account = value(&mut it, a)?.clone(),
            "--max-devices" => {
                options.max_devices = Some(value(&mut it, a)?.parse().map_err(|_| "--max-devices needs a number")?)
            }
            "--refusal-url" => options.refusal_url = Some(value(&mut it, a)?.clone()),
            other if !other.starts_with("--") && dir.is_none() => dir = Some(PathBuf::from(other)),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if !hosts.is_empty() {
        options.hosts = hosts;
    }
    let dir = dir.ok_or_else(|| format!("init needs a folder\n{USAGE}"))?;
    let summary = init(&dir, &options)?;
    println!("{}", serde_json::to_string(&summary).expect("the summary serializes"));
    Ok(())
}

/// The configuration a command names (`--config`, else `$LB_SERVICE_CONFIG`, else
/// `./service.toml`), with the environment's overrides, and the command's other flags.
fn command_config(args: &[String], flags: &[&str]) -> Result<(Config, Vec<(String, String)>), String> {
    let mut config_path = None;
    let mut other = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => config_path = Some(PathBuf::from(value(&mut it, a)?)),
            f if flags.contains(&f) => other.push((f.to_string(), value(&mut it, a)?.clone())),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let path = config_path
        .or_else(|| std::env::var_os("LB_SERVICE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("service.toml"));
    Ok((Config::load(&path, &|name| std::env::var(name).ok())?, other))
}

fn rotate_key(args: &[String]) -> Result<(), String> {
    let (config, _) = command_config(args, &[])?;
    let runtime = runtime()?;
    if let Some(pg) = server::postgres_ledger(&config, runtime.handle())? {
        use license_backup_service::ledger::Ledger;
        pg.storage().rotate_key().map_err(|e| format!("cannot rotate the key: {e}"))?;
        pg.open_now().map_err(|e| format!("cannot open the ledger database: {e}"))?;
        let keys = pg.keys();
        let line = serde_json::json!({
            "current": keys.first().map(|k| k.fingerprint.clone()),
            "keys": keys.iter().map(|k| k.fingerprint.clone()).collect::<Vec<_>>(),
        });
        println!("{line}");
        return Ok(());
    }
    let path = config.ledger.path().ok_or("no ledger file")?;
    let protector = config.ledger.protector()?;
    let ledger = license_backup::SqliteLedger::open_with(path, &protector)
        .map_err(|e| format!("cannot open the ledger {}: {e}", path.display()))?;
    let public_key = ledger.rotate_key(&protector).map_err(|e| format!("cannot rotate the key: {e}"))?;
    let keys = license_backup_service::ledger::Ledger::keys(&server::open_ledger(&config)?);
    let line = serde_json::json!({
        "current": license_backup::protocol::PublishedKey::new(&public_key, true).fingerprint,
        "keys": keys.iter().map(|k| k.fingerprint.clone()).collect::<Vec<_>>(),
    });
    println!("{line}");
    Ok(())
}

fn audit(args: &[String]) -> Result<(), String> {
    let (config, flags) = command_config(args, &["--account"])?;
    let account = flags.iter().find(|(f, _)| f == "--account").map(|(_, v)| v.clone());
    let account = account.ok_or_else(|| format!("audit needs --account\n{USAGE}"))?;
    let account = license_backup_service::auth::Account::new(&account)?;
    let runtime = runtime()?;
    let a = match server::postgres_ledger(&config, runtime.handle())? {
        Some(pg) => {
            pg.open_now().map_err(|e| format!("cannot open the ledger database: {e}"))?;
            pg.served().map_err(|e| e.to_string())?.authority().audit(account.as_str())
        }
        None => server::open_ledger(&config)?.authority().audit(account.as_str()),
    };
    let a = a.map_err(|e| format!("cannot audit: {e}"))?;
    let line = serde_json::json!({
        "account": account.as_str(),
        "pending": a.pending,
        "confirmed": a.confirmed,
        "released": a.released,
        "expired": a.expired,
        "licenses": a.licenses,
        "placements": a.placements,
        "devices": a.devices,
    });
    println!("{line}");
    Ok(())
}
