//! The server's configuration: a TOML file, with environment variables overriding some of its
//! values (`LB_SERVICE_*`). Relative paths in the file are relative to the file's folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where a value came from, for error messages.
fn bad(what: impl std::fmt::Display) -> String {
    format!("configuration: {what}")
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The address to listen on (`LB_SERVICE_LISTEN`), such as `0.0.0.0:8443`; port 0 picks a
    /// free port (the server prints the one it got).
    pub listen: SocketAddr,
    /// TLS; required unless `listen` is a loopback address.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The service's key files.
    pub keys: KeysConfig,
    /// The restore policy.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Where the ledger is.
    pub ledger: LedgerConfig,
    /// How callers authenticate.
    pub auth: AuthConfig,
    /// Request limits and timeouts.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Rate limits.
    #[serde(default)]
    pub rate: RateConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

/// The TLS certificate chain and private key, PEM files.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first (`LB_SERVICE_TLS_CERT`).
    pub certificate: PathBuf,
    /// The private key (`LB_SERVICE_TLS_KEY`).
    pub private_key: PathBuf,
}

/// The service's key files (each a 32-byte X25519 seed in hex): the current key, which
/// backups wrap to, and older ones whose archives stay restorable.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// The current key.
    pub current: PathBuf,
    /// Older keys, still accepted for restores.
    #[serde(default)]
    pub previous: Vec<PathBuf>,
}

/// The restore policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Distinct devices a license may live on.
    #[serde(default = "default_max_devices")]
    pub max_devices: u32,
    /// The page a refusal points to.
    #[serde(default = "default_refusal_url")]
    pub refusal_url: String,
}

fn default_max_devices() -> u32 {
    license_backup::service::DEFAULT_MAX_DEVICES
}

fn default_refusal_url() -> String {
    license_backup::service::DEFAULT_REFUSAL_URL.to_string()
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig { max_devices: default_max_devices(), refusal_url: default_refusal_url() }
    }
}

/// The ledger.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum LedgerConfig {
    /// SQLite files in a folder (`LB_SERVICE_LEDGER`), one per account.
    Sqlite {
        /// The folder.
        path: PathBuf,
    },
}

/// How callers authenticate.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum AuthConfig {
    /// A file of tokens (`LB_SERVICE_TOKENS`): one `TOKEN ACCOUNT` per line, where TOKEN is the
    /// token itself or `sha256:` and the hex SHA-256 of it; `#` starts a comment.
    Static {
        /// The file.
        tokens_file: PathBuf,
    },
}

/// Request limits and timeouts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Key IDs accepted in one request.
    pub max_licenses: u64,
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// Seconds to complete the TLS handshake and send the request head.
    pub header_timeout_secs: f64,
    /// Seconds a request body may stay silent.
    pub body_idle_timeout_secs: f64,
    /// Seconds a whole request may take.
    pub request_timeout_secs: f64,
    /// Seconds in-flight requests get to finish at shutdown.
    pub shutdown_grace_secs: f64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_licenses: 10_000_000,
            max_connections: 1024,
            header_timeout_secs: 10.0,
            body_idle_timeout_secs: 10.0,
            request_timeout_secs: 300.0,
            shutdown_grace_secs: 30.0,
        }
    }
}

impl LimitsConfig {
    /// The header timeout.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.header_timeout_secs)
    }
    /// The body idle timeout.
    pub fn body_idle_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.body_idle_timeout_secs)
    }
    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout_secs)
    }
    /// The shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs_f64(self.shutdown_grace_secs)
    }
}

/// One token bucket: a sustained rate and a burst.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once.
    pub burst: f64,
}

/// Rate limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    /// Every `/v1/` request, per account.
    pub per_account: Rate,
    /// Quota queries, authorizations and registrations, per device.
    pub per_device: Rate,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            per_account: Rate { per_second: 50.0, burst: 100.0 },
            per_device: Rate { per_second: 2.0, burst: 10.0 },
        }
    }
}

/// Logging.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `license_backup_service=debug` (`LB_SERVICE_LOG`).
    pub level: String,
    /// `text` or `json` (`LB_SERVICE_LOG_FORMAT`).
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), format: "text".into() }
    }
}

impl Config {
    /// Reads the file at `path`, applies the environment's overrides and checks the result.
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        let mut config: Config = toml::from_str(&text).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        config.apply_env(env)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve(base);
        config.check()?;
        Ok(config)
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
        if let Some(v) = env("LB_SERVICE_LISTEN") {
            self.listen = v.parse().map_err(|_| bad(format!("LB_SERVICE_LISTEN {v:?} is not an address:port")))?;
        }
        match (env("LB_SERVICE_TLS_CERT"), env("LB_SERVICE_TLS_KEY")) {
            (Some(certificate), Some(private_key)) => {
                self.tls = Some(TlsConfig { certificate: certificate.into(), private_key: private_key.into() })
            }
            (None, None) => {}
            _ => return Err(bad("set both LB_SERVICE_TLS_CERT and LB_SERVICE_TLS_KEY, or neither")),
        }
        if let Some(v) = env("LB_SERVICE_LEDGER") {
            self.ledger = LedgerConfig::Sqlite { path: v.into() };
        }
        if let Some(v) = env("LB_SERVICE_TOKENS") {
            self.auth = AuthConfig::Static { tokens_file: v.into() };
        }
        if let Some(v) = env("LB_SERVICE_LOG") {
            self.log.level = v;
        }
        if let Some(v) = env("LB_SERVICE_LOG_FORMAT") {
            self.log.format = v;
        }
        Ok(())
    }

    fn resolve(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(tls) = &mut self.tls {
            fix(&mut tls.certificate);
            fix(&mut tls.private_key);
        }
        fix(&mut self.keys.current);
        self.keys.previous.iter_mut().for_each(fix);
        let LedgerConfig::Sqlite { path } = &mut self.ledger;
        fix(path);
        let AuthConfig::Static { tokens_file } = &mut self.auth;
        fix(tokens_file);
    }

    fn check(&self) -> Result<(), String> {
        if self.tls.is_none() && !self.listen.ip().is_loopback() {
            return Err(bad(format!(
                "listening on {} without TLS: plain HTTP is only allowed on a loopback address",
                self.listen
            )));
        }
        if self.policy.max_devices == 0 {
            return Err(bad("policy.max_devices must be at least 1"));
        }
        let l = &self.limits;
        if l.max_licenses == 0 || l.max_connections == 0 {
            return Err(bad("limits.max_licenses and limits.max_connections must be at least 1"));
        }
        for (name, secs) in [
            ("header_timeout_secs", l.header_timeout_secs),
            ("body_idle_timeout_secs", l.body_idle_timeout_secs),
            ("request_timeout_secs", l.request_timeout_secs),
            ("shutdown_grace_secs", l.shutdown_grace_secs),
        ] {
            if !(secs > 0.0 && secs <= 86_400.0) {
                return Err(bad(format!("limits.{name} must be between 0 and 86400 seconds")));
            }
        }
        for (name, r) in [("per_account", self.rate.per_account), ("per_device", self.rate.per_device)] {
            if !(r.per_second > 0.0 && r.burst >= 1.0 && r.per_second.is_finite() && r.burst.is_finite()) {
                return Err(bad(format!("rate.{name} needs per_second > 0 and burst >= 1")));
            }
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(bad("log.format is text or json"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
listen = "127.0.0.1:0"
[keys]
current = "keys/current.key"
[ledger]
kind = "sqlite"
path = "ledger"
[auth]
kind = "static"
tokens_file = "tokens.txt"
"#;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("service.toml");
        std::fs::write(&path, text).unwrap();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::load(&path, &|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_paths_and_overrides() {
        let c = load(MINIMAL, &[]).unwrap();
        assert_eq!(c.policy.max_devices, 4);
        assert!(c.keys.current.is_absolute() && c.keys.current.ends_with("keys/current.key"));
        assert_eq!(c.limits.max_licenses, 10_000_000);
        let c = load(MINIMAL, &[("LB_SERVICE_LISTEN", "127.0.0.1:9000"), ("LB_SERVICE_LOG", "debug")]).unwrap();
        assert_eq!((c.listen.port(), c.log.level.as_str()), (9000, "debug"));
    }

    #[test]
    fn unsafe_or_wrong_configurations_are_refused() {
        let public = MINIMAL.replace("127.0.0.1:0", "0.0.0.0:8443");
        assert!(load(&public, &[]).unwrap_err().contains("plain HTTP"));
        assert!(load(MINIMAL, &[("LB_SERVICE_LISTEN", "0.0.0.0:1")]).is_err());
        assert!(load(MINIMAL, &[("LB_SERVICE_TLS_CERT", "x")]).is_err());
        assert!(load(&format!("{MINIMAL}\n[policy]\nmax_devices = 0\n"), &[]).is_err());
        assert!(load(&format!("{MINIMAL}\nunknown = 1\n"), &[]).unwrap_err().contains("unknown"));
        assert!(load(&format!("{MINIMAL}\n[limits]\nrequest_timeout_secs = -1\n"), &[]).is_err());
    }
}
