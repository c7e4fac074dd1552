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
    /// Seconds a reservation may stay pending (neither confirmed nor released) before it
    /// counts for good.
    #[serde(default = "default_reservation_ttl")]
    pub reservation_ttl_secs: u64,
    /// Whether version-1 archives (not attributable to a device, not committed to their
    /// licenses) are restored; see `docs/security.md`.
    #[serde(default = "default_accept_v1")]
    pub accept_v1_archives: bool,
}

fn default_reservation_ttl() -> u64 {
    license_backup::service::DEFAULT_RESERVATION_TTL_SECS
}

fn default_accept_v1() -> bool {
    true
}

impl PolicyConfig {
    /// The library's policy with these values.
    pub fn to_policy(&self) -> license_backup::ServicePolicy {
        license_backup::ServicePolicy {
            max_devices: self.max_devices,
            refusal_url: self.refusal_url.clone(),
            reservation_ttl_secs: self.reservation_ttl_secs,
            accept_v1_archives: self.accept_v1_archives,
        }
    }
}

fn default_max_devices() -> u32 {
    license_backup::service::DEFAULT_MAX_DEVICES
}

fn default_refusal_url() -> String {
    license_backup::service::DEFAULT_REFUSAL_URL.to_string()
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            max_devices: default_max_devices(),
            refusal_url: default_refusal_url(),
            reservation_ttl_secs: default_reservation_ttl(),
            accept_v1_archives: default_accept_v1(),
        }
    }
}

/// The ledger: where it is, and what protects the service keys it holds.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum LedgerConfig {
    /// One SQLite file for every account (`LB_SERVICE_LEDGER`), the library's ledger layout.
    Sqlite {
        /// The file (made on first start, with a fresh service key).
        path: PathBuf,
        /// What protects the service keys in it.
        keys: KeyProtection,
    },
    /// A PostgreSQL database shared by any number of instances (`LB_SERVICE_LEDGER` set to a
    /// `postgres://` URL chooses it); see `docs/deploy.md`.
    Postgres {
        /// `postgres://user:password@host:port/database` (prefer setting it through the
        /// environment: it may hold a password).
        url: String,
        /// What protects the service keys in it.
        keys: KeyProtection,
        /// The connection pool and the sessions' timeouts.
        #[serde(default)]
        pool: PgPoolConfig,
    },
}

/// The PostgreSQL connection pool of one instance, and its sessions' timeouts.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PgPoolConfig {
    /// Connections this instance keeps at most (instances x this must stay below the
    /// server's `max_connections`).
    pub max_connections: usize,
    /// How long a request waits for a free connection before `SERVICE_UNAVAILABLE`.
    pub acquire_timeout_ms: u64,
    /// How long a transaction waits for its account's lock.
    pub lock_timeout_ms: u64,
    /// The longest one statement may run.
    pub statement_timeout_ms: u64,
    /// How long a session may stay idle inside a transaction.
    pub idle_in_transaction_timeout_ms: u64,
    /// How long connecting may take.
    pub connect_timeout_ms: u64,
}

impl Default for PgPoolConfig {
    fn default() -> Self {
        let d = crate::pg_ledger::PgSettings::default();
        let ms = |d: Duration| d.as_millis() as u64;
        PgPoolConfig {
            max_connections: d.max_connections,
            acquire_timeout_ms: ms(d.acquire_timeout),
            lock_timeout_ms: ms(d.lock_timeout),
            statement_timeout_ms: ms(d.statement_timeout),
            idle_in_transaction_timeout_ms: ms(d.idle_in_transaction_timeout),
            connect_timeout_ms: ms(d.connect_timeout),
        }
    }
}

impl PgPoolConfig {
    /// As the ledger takes them.
    pub fn settings(&self) -> crate::pg_ledger::PgSettings {
        let ms = Duration::from_millis;
        crate::pg_ledger::PgSettings {
            max_connections: self.max_connections,
            acquire_timeout: ms(self.acquire_timeout_ms),
            lock_timeout: ms(self.lock_timeout_ms),
            statement_timeout: ms(self.statement_timeout_ms),
            idle_in_transaction_timeout: ms(self.idle_in_transaction_timeout_ms),
            connect_timeout: ms(self.connect_timeout_ms),
        }
    }
}

/// Whether a ledger setting is a PostgreSQL URL.
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// What protects the service keys (their seeds) in the ledger. There is no default: the
/// configuration names its choice.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, tag = "protector", rename_all = "kebab-case")]
pub enum KeyProtection {
    /// Sealed (AES-256-GCM) by a key-encryption key in a file of its own
    /// (`LB_SERVICE_KEK_FILE`): 64 hex digits, made by `init`.
    KekFile {
        /// The key file.
        kek_file: PathBuf,
    },
    /// In clear in the ledger: whoever reads the ledger file can unwrap every archive's data
    /// key. For tests.
    Unprotected,
}

impl LedgerConfig {
    /// The ledger file (`None` for PostgreSQL).
    pub fn path(&self) -> Option<&Path> {
        match self {
            LedgerConfig::Sqlite { path, .. } => Some(path),
            LedgerConfig::Postgres { .. } => None,
        }
    }

    /// What protects the service keys.
    pub fn keys(&self) -> &KeyProtection {
        match self {
            LedgerConfig::Sqlite { keys, .. } | LedgerConfig::Postgres { keys, .. } => keys,
        }
    }

    fn keys_mut(&mut self) -> &mut KeyProtection {
        match self {
            LedgerConfig::Sqlite { keys, .. } | LedgerConfig::Postgres { keys, .. } => keys,
        }
    }

    /// The protector of the service keys, loaded (the key file is read here).
    pub fn protector(&self) -> Result<license_backup::Protector, String> {
        Ok(match self.keys() {
            KeyProtection::KekFile { kek_file } => {
                license_backup::Protector::new(std::sync::Arc::new(crate::protector::KekFile::load(kek_file)?))
            }
            KeyProtection::Unprotected => license_backup::Protector::unprotected(),
        })
    }
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
            let keys = self.ledger.keys().clone();
            let pool = match &self.ledger {
                LedgerConfig::Postgres { pool, .. } => pool.clone(),
                LedgerConfig::Sqlite { .. } => PgPoolConfig::default(),
            };
            self.ledger = if is_postgres_url(&v) {
                LedgerConfig::Postgres { url: v, keys, pool }
            } else {
                LedgerConfig::Sqlite { path: v.into(), keys }
            };
        }
        if let Some(v) = env("LB_SERVICE_KEK_FILE") {
            *self.ledger.keys_mut() = KeyProtection::KekFile { kek_file: v.into() };
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
        if let LedgerConfig::Sqlite { path, .. } = &mut self.ledger {
            fix(path);
        }
        if let KeyProtection::KekFile { kek_file } = self.ledger.keys_mut() {
            fix(kek_file);
        }
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
        if let LedgerConfig::Postgres { pool, .. } = &self.ledger {
            if pool.max_connections == 0 || pool.acquire_timeout_ms == 0 {
                return Err(bad("ledger.pool.max_connections and ledger.pool.acquire_timeout_ms must be at least 1"));
            }
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
[ledger]
kind = "sqlite"
path = "ledger.db"
keys = { protector = "kek-file", kek_file = "ledger.kek" }
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
        let path = c.ledger.path().unwrap();
        assert!(path.is_absolute() && path.ends_with("ledger.db"));
        let LedgerConfig::Sqlite { keys: KeyProtection::KekFile { kek_file }, .. } = &c.ledger else { panic!() };
        assert!(kek_file.is_absolute() && kek_file.ends_with("ledger.kek"));
        assert_eq!(c.policy.to_policy().reservation_ttl_secs, 30 * 24 * 3600);
        let c =
            load(MINIMAL, &[("LB_SERVICE_LEDGER", "/srv/l.db"), ("LB_SERVICE_KEK_FILE", "/run/secrets/kek")]).unwrap();
        assert_eq!(c.ledger.path(), Some(Path::new("/srv/l.db")));
        assert!(c.ledger.protector().is_err(), "the key file is read when the protector is made");
        assert_eq!(c.limits.max_licenses, 10_000_000);
        let c = load(MINIMAL, &[("LB_SERVICE_LISTEN", "127.0.0.1:9000"), ("LB_SERVICE_LOG", "debug")]).unwrap();
        assert_eq!((c.listen.port(), c.log.level.as_str()), (9000, "debug"));
    }

    #[test]
    fn a_postgres_url_chooses_the_postgres_ledger() {
        let url = "postgres://lb:secret@db.internal:5432/ledger";
        let c = load(MINIMAL, &[("LB_SERVICE_LEDGER", url)]).unwrap();
        let LedgerConfig::Postgres { url: u, keys: KeyProtection::KekFile { kek_file }, pool } = &c.ledger else {
            panic!("{:?}", c.ledger)
        };
        assert_eq!(u, url);
        assert!(kek_file.is_absolute() && kek_file.ends_with("ledger.kek"), "the protector is kept");
        assert_eq!(pool, &PgPoolConfig::default());
        assert_eq!(c.ledger.path(), None);
        let text = MINIMAL
            .replace("kind = \"sqlite\"\npath = \"ledger.db\"", "kind = \"postgres\"\nurl = \"postgresql://h/db\"")
            + "\n[ledger.pool]\nmax_connections = 3\nacquire_timeout_ms = 250\n";
        let c = load(&text, &[]).unwrap();
        let LedgerConfig::Postgres { pool, .. } = &c.ledger else { panic!("{:?}", c.ledger) };
        assert_eq!((pool.max_connections, pool.settings().acquire_timeout), (3, Duration::from_millis(250)));
        assert_eq!(pool.lock_timeout_ms, PgPoolConfig::default().lock_timeout_ms);
        let zero = text.replace("max_connections = 3", "max_connections = 0");
        assert!(load(&zero, &[]).unwrap_err().contains("max_connections"));
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
        // The key protection is named, never defaulted.
        let unnamed = MINIMAL.replace("keys = { protector = \"kek-file\", kek_file = \"ledger.kek\" }\n", "");
        assert!(load(&unnamed, &[]).unwrap_err().contains("keys"));
        let clear =
            MINIMAL.replace("protector = \"kek-file\", kek_file = \"ledger.kek\"", "protector = \"unprotected\"");
        assert!(load(&clear, &[]).unwrap().ledger.protector().unwrap().is_unprotected());
    }
}
