//! A real `license-backup-service` process on 127.0.0.1 for the tests: made with
//! `license-backup-service init` in a temporary folder (its own key, token, CA and server
//! certificate), started with `serve`, ready once it printed its listening line. Also used by
//! the service crate's tests (`#[path]`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use license_backup::{LedgerAudit, RemoteOptions, RemoteService};

/// The server binary: `$LICENSE_BACKUP_SERVICE`, else the workspace's debug build, which
/// `cargo test --workspace` (and so `make test`) builds before it runs any test. When it is
/// missing (`cargo test -p license-backup` on a fresh tree) it is built here; after changing
/// the server, build it (`cargo build -p license-backup-service`) or run the workspace's tests.
pub fn service_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("LICENSE_BACKUP_SERVICE") {
            return PathBuf::from(p);
        }
        // target/debug/deps/<test> -> target/debug
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let bin = profile_dir.join(format!("license-backup-service{}", std::env::consts::EXE_SUFFIX));
        if !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", "license-backup-service", "--bin", "license-backup-service"])
                .current_dir(&workspace)
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building license-backup-service failed");
        }
        bin
    })
    .clone()
}

/// How to make a test server.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    pub max_devices: Option<u32>,
    pub refusal_url: Option<String>,
    /// No TLS (loopback plain HTTP).
    pub plain: bool,
    /// Extra TOML appended to the configuration (limits, rates).
    pub extra_config: String,
    /// Names the certificate is for (default localhost, 127.0.0.1, ::1).
    pub hosts: Vec<String>,
    /// More (token, account) pairs for the token file, beside `init`'s token of `default`.
    pub extra_tokens: Vec<(String, String)>,
    /// Environment of the server and its admin commands (`LB_SERVICE_LEDGER=postgres://...`).
    pub env: Vec<(String, String)>,
    /// A `[ledger]` section (and its subtables) in place of the one `init` wrote.
    pub ledger: Option<String>,
}

/// What `init` printed.
#[derive(Clone, Debug)]
pub struct Made {
    pub config: PathBuf,
    pub token: String,
    pub ca_file: Option<PathBuf>,
    pub cert_sha256: Option<String>,
    pub key_fingerprint: String,
}

/// A running (or stopped) server.
pub struct TestServer {
    /// The folder `init` made (shared by every instance of [`TestServer::another_instance`]).
    pub dir: std::sync::Arc<tempfile::TempDir>,
    pub made: Made,
    pub url: String,
    pub listen: String,
    child: Option<Child>,
    stderr_log: PathBuf,
    env: Vec<(String, String)>,
}

/// Generous rates for scenario runs (the defaults would throttle a test that restores often).
pub const TEST_RATES: &str = "\n[rate]\nper_account = { per_second = 1000.0, burst = 1000.0 }\nper_device = { per_second = 1000.0, burst = 1000.0 }\n";

impl TestServer {
    pub fn start(options: &ServerOptions) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("service");
        let mut init = Command::new(service_binary());
        init.arg("init").arg(&folder).args(["--listen", "127.0.0.1:0"]);
        if let Some(n) = options.max_devices {
            init.args(["--max-devices", &n.to_string()]);
        }
        if let Some(u) = &options.refusal_url {
            init.args(["--refusal-url", u]);
        }
        if options.plain {
            init.arg("--plain");
        }
        for h in &options.hosts {
            init.args(["--host", h]);
        }
        let out = init.output().expect("license-backup-service init runs");
        assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let made = Made {
            config: v["config"].as_str().unwrap().into(),
            token: v["token"].as_str().unwrap().into(),
            ca_file: v["ca_file"].as_str().map(PathBuf::from),
            cert_sha256: v["cert_sha256"].as_str().map(String::from),
            key_fingerprint: v["key_fingerprint"].as_str().unwrap().into(),
        };
        let mut config = std::fs::read_to_string(&made.config).unwrap();
        if let Some(ledger) = &options.ledger {
            let start = config.find("\n[ledger]\n").expect("init writes a [ledger] section") + 1;
            let end = config[start + 1..].find("\n[").map_or(config.len(), |i| start + 2 + i);
            config.replace_range(start..end, ledger);
        }
        if !options.extra_config.contains("[rate]") {
            config.push_str(TEST_RATES);
        }
        config.push('\n');
        config.push_str(&options.extra_config);
        std::fs::write(&made.config, config).unwrap();
        let tokens = folder.join("tokens.txt");
        let mut lines = std::fs::read_to_string(&tokens).unwrap();
        for (token, account) in &options.extra_tokens {
            lines.push_str(&format!("{token} {account}\n"));
        }
        std::fs::write(&tokens, lines).unwrap();
        let stderr_log = dir.path().join("server.log");
        let mut server = TestServer {
            dir: std::sync::Arc::new(dir),
            made,
            url: String::new(),
            listen: "127.0.0.1:0".into(),
            child: None,
            stderr_log,
            env: options.env.clone(),
        };
        server.launch();
        server
    }

    /// Another process with this server's configuration (its keys, tokens and ledger) on a port
    /// of its own: a second instance behind the same load balancer.
    pub fn another_instance(&self) -> TestServer {
        let n = std::fs::read_dir(self.dir.path()).unwrap().count();
        let mut server = TestServer {
            dir: std::sync::Arc::clone(&self.dir),
            made: self.made.clone(),
            url: String::new(),
            listen: "127.0.0.1:0".into(),
            child: None,
            stderr_log: self.dir.path().join(format!("server-{n}.log")),
            env: self.env.clone(),
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.stderr_log).unwrap();
        let mut child = Command::new(service_binary())
            .arg("serve")
            .arg("--config")
            .arg(&self.made.config)
            .args(["--listen", &self.listen])
            .env("LB_SERVICE_LOG", "debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("license-backup-service serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            let _ = child.kill();
            panic!("the server did not start: {}", self.log());
        };
        self.url = v["listening"].as_str().unwrap().to_string();
        self.listen = self.url.rsplit("://").next().unwrap().to_string();
        self.child = Some(child);
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Options for a client that trusts this server's CA and has its token.
    pub fn options(&self) -> RemoteOptions {
        RemoteOptions { token: Some(self.made.token.clone()), ca_file: self.made.ca_file.clone(), ..Default::default() }
    }

    pub fn client(&self) -> RemoteService {
        RemoteService::new(&self.url, self.options()).unwrap()
    }

    /// The ledger file.
    pub fn ledger_path(&self) -> PathBuf {
        self.dir.path().join("service/ledger.db")
    }

    /// Runs one of the server's admin commands on this server's configuration; its JSON line.
    pub fn admin(&self, args: &[&str]) -> serde_json::Value {
        let out = Command::new(service_binary())
            .args(args)
            .arg("--config")
            .arg(&self.made.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("license-backup-service runs");
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// What the ledger holds for `account` (`license-backup-service audit`).
    pub fn audit_account(&self, account: &str) -> LedgerAudit {
        let v = self.admin(&["audit", "--account", account]);
        let n = |k: &str| v[k].as_u64().unwrap();
        LedgerAudit {
            pending: n("pending"),
            confirmed: n("confirmed"),
            released: n("released"),
            expired: n("expired"),
            licenses: n("licenses"),
            placements: n("placements"),
            devices: n("devices"),
        }
    }

    /// What the ledger holds for the token's account (`default`).
    pub fn audit(&self) -> LedgerAudit {
        self.audit_account("default")
    }

    /// Reservations the ledger holds for the default account, in any state.
    pub fn reservations(&self) -> u64 {
        let a = self.audit();
        a.pending + a.confirmed + a.released + a.expired
    }

    fn signal(&self, sig: i32) {
        let pid = self.pid() as i32;
        // SAFETY: kill(2) on the child this test started.
        unsafe {
            libc::kill(pid, sig);
        }
    }

    /// SIGTERM, then waits for the exit (a graceful stop); returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let status = self.child.as_mut().unwrap().wait().unwrap();
        self.child = None;
        status
    }

    /// SIGKILL, then waits.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the process: a server slower than any timeout.
    pub fn freeze(&self, frozen: bool) {
        self.signal(if frozen { libc::SIGSTOP } else { libc::SIGCONT });
    }

    /// Starts the server again on the same address, with the same ledger.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.launch();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A frozen server must be thawed to die cleanly.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGCONT);
            }
        }
        self.kill();
    }
}
