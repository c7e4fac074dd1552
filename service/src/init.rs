//! `license-backup-service init DIR`: a ready-to-run self-hosted service in a new folder: the
//! ledger with a fresh service key sealed by a key-encryption key file, a token file, a CA and
//! a server certificate (unless `--plain`), and `service.toml`. What the README's quick start
//! and the tests use.

use std::path::{Path, PathBuf};

use license_backup::protocol::hex;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::auth::{Account, StaticTokens};

/// What `init` makes.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// The listening address written to the configuration.
    pub listen: String,
    /// Names and addresses the server certificate is for.
    pub hosts: Vec<String>,
    /// No TLS (loopback only).
    pub plain: bool,
    /// The token (a random one when absent).
    pub token: Option<String>,
    /// The token's account.
    pub account: String,
    /// `policy.max_devices`.
    pub max_devices: Option<u32>,
    /// `policy.refusal_url`.
    pub refusal_url: Option<String>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            listen: "127.0.0.1:8443".into(),
            hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            plain: false,
            token: None,
            account: "default".into(),
            max_devices: None,
            refusal_url: None,
        }
    }
}

/// What `init` made, printed as JSON.
#[derive(Clone, Debug, Serialize)]
pub struct InitSummary {
    /// The configuration file.
    pub config: PathBuf,
    /// The token to give applications.
    pub token: String,
    /// Its account.
    pub account: String,
    /// The CA certificate clients trust (`ca_file`), if TLS.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the server certificate (for `cert_pins`), if TLS.
    pub cert_sha256: Option<String>,
    /// The service key's fingerprint (for `service_keys`).
    pub key_fingerprint: String,
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    use std::io::Write;
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// Makes the service folder `dir` (which must not exist or be empty).
pub fn init(dir: &Path, options: &InitOptions) -> Result<InitSummary, String> {
    if dir.exists() && std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?.next().is_some() {
        return Err(format!("{} is not empty", dir.display()));
    }
    let account = Account::new(&options.account)?;
    std::fs::create_dir_all(dir.join("keys")).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    crate::protector::KekFile::create(&dir.join("keys/ledger.kek"))?;
    let token = match &options.token {
        Some(t) => t.clone(),
        None => hex(&{
            let mut b = [0u8; 32];
            getrandom::fill(&mut b).map_err(|e| format!("no random numbers: {e}"))?;
            b
        }),
    };
    write(
        &dir.join("tokens.txt"),
        &format!("# TOKEN-or-sha256:DIGEST ACCOUNT\n{} {}\n", StaticTokens::hashed(&token), account.as_str()),
        true,
    )?;
    let mut config = format!("listen = {}\n", toml_string(&options.listen));
    let (mut ca_file, mut cert_sha256) = (None, None);
    if !options.plain {
        std::fs::create_dir_all(dir.join("tls")).map_err(|e| format!("cannot create the tls folder: {e}"))?;
        let made = crate::tls::self_hosted(&options.hosts)?;
        write(&dir.join("tls/ca.pem"), &made.ca_pem, false)?;
        write(&dir.join("tls/server.pem"), &made.cert_pem, false)?;
        write(&dir.join("tls/server.key"), &made.key_pem, true)?;
        config.push_str("\n[tls]\ncertificate = \"tls/server.pem\"\nprivate_key = \"tls/server.key\"\n");
        ca_file = Some(dir.join("tls/ca.pem"));
        cert_sha256 = Some(hex(&Sha256::digest(&made.cert_der)));
    }
    config.push_str("\n[policy]\n");
    if let Some(n) = options.max_devices {
        config.push_str(&format!("max_devices = {n}\n"));
    }
    if let Some(u) = &options.refusal_url {
        config.push_str(&format!("refusal_url = {}\n", toml_string(u)));
    }
    config.push_str(
        "\n[ledger]\nkind = \"sqlite\"\npath = \"ledger.db\"\n\
         keys = { protector = \"kek-file\", kek_file = \"keys/ledger.kek\" }\n",
    );
    config.push_str("\n[auth]\nkind = \"static\"\ntokens_file = \"tokens.txt\"\n");
    write(&dir.join("service.toml"), &config, false)?;
    // The ledger and its first service key, made now: the fingerprint can be pinned at once.
    let loaded = crate::config::Config::load(&dir.join("service.toml"), &|_| None)?;
    let ledger = crate::server::open_ledger(&loaded)?;
    let key = crate::ledger::Ledger::keys(&ledger).remove(0);
    Ok(InitSummary {
        config: dir.join("service.toml"),
        token,
        account: account.as_str().to_string(),
        ca_file,
        cert_sha256,
        key_fingerprint: key.fingerprint,
    })
}
