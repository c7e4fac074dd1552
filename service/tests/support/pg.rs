//! A throw-away PostgreSQL cluster for the tests and the bench: `initdb` into a temporary
//! folder (as the `postgres` user when running as root, through `runuser`), started with
//! `pg_ctl` on 127.0.0.1 and a free port, its socket in the same folder; stopped and removed
//! when dropped. Nothing outside the folder is used: no system cluster, no service manager.
//!
//! The server binaries are found in `$LB_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`
//! (Debian's packages), else on `PATH`. Without them every caller fails loudly with the
//! command that installs them.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What installs the server on the machines this project is tested on.
pub const INSTALL_HINT: &str = "PostgreSQL is not installed: `apt-get install -y postgresql` (Debian; \
     `make pg-tools` runs it), or point LB_PG_BIN at a folder holding initdb, pg_ctl and psql";

/// The folder holding `initdb`, `pg_ctl` and `psql`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LB_PG_BIN") {
        let dir = PathBuf::from(dir);
        assert!(dir.join("initdb").exists(), "LB_PG_BIN={} has no initdb. {INSTALL_HINT}", dir.display());
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists()))
        .unwrap_or_default();
    on_path.unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

fn is_root() -> bool {
    // SAFETY: a plain libc call.
    unsafe { libc::geteuid() == 0 }
}

/// A running throw-away cluster.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    settings: Vec<String>,
    running: bool,
}

/// How to start a cluster.
#[derive(Clone, Debug, Default)]
pub struct PgOptions {
    /// `fsync` (off for the tests: a killed server process loses nothing the kernel holds; on
    /// for the bench, so it compares with a SQLite ledger that syncs).
    pub fsync: bool,
    /// Extra `-c name=value` settings.
    pub settings: Vec<String>,
    /// TLS (`ssl=on`) with this certificate chain and private key (PEM).
    pub tls: Option<(String, String)>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PgCluster {
    /// Starts a cluster with the test settings.
    pub fn start() -> PgCluster {
        Self::start_with(&PgOptions::default())
    }

    /// Starts a cluster: `initdb` (trust authentication on loopback only, UTF-8), then `pg_ctl
    /// start` on a free port.
    pub fn start_with(options: &PgOptions) -> PgCluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new().prefix("lb-pg-").tempdir().expect("a temporary folder");
        // The postgres user must reach the folder (the temporary root is world-writable).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        let sock = dir.path().join("sock");
        std::fs::create_dir(&data).unwrap();
        std::fs::create_dir(&sock).unwrap();
        if is_root() {
            for d in [&data, &sock] {
                let out = Command::new("chown").arg("postgres:postgres").arg(d).output().expect("chown runs");
                assert!(
                    out.status.success(),
                    "chown postgres {}: {}",
                    d.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let mut settings = vec![
            format!("fsync={}", if options.fsync { "on" } else { "off" }),
            "full_page_writes=off".to_string(),
            "max_connections=200".to_string(),
            "shared_buffers=128MB".to_string(),
        ];
        if options.fsync {
            settings.retain(|s| !s.starts_with("full_page_writes"));
        }
        settings.extend(options.settings.iter().cloned());
        let mut cluster = PgCluster { dir, bin, port: free_port(), settings, running: false };
        let out = cluster.run_as_postgres(
            "initdb",
            &["-D", path_str(&data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        );
        assert!(out.status.success(), "initdb failed:\n{}{}", lossy(&out.stdout), lossy(&out.stderr));
        if let Some((cert, key)) = &options.tls {
            // In the data folder, the key readable by its owner only (PostgreSQL refuses it otherwise).
            for (name, pem) in [("server.crt", cert), ("server.key", key)] {
                let path = data.join(name);
                std::fs::write(&path, pem).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
                if is_root() {
                    let out = Command::new("chown").arg("postgres:postgres").arg(&path).output().expect("chown runs");
                    assert!(out.status.success(), "chown {}: {}", path.display(), lossy(&out.stderr));
                }
            }
            cluster.settings.push("ssl=on".to_string());
        }
        cluster.launch();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sock").join("server.log")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn run_as_postgres(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).current_dir(self.dir.path()).stdin(Stdio::null());
        cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}. {INSTALL_HINT}", exe.display()))
    }

    fn launch(&mut self) {
        let mut opts = format!("-h 127.0.0.1 -p {} -k {}", self.port, path_str(&self.dir.path().join("sock")));
        for s in &self.settings {
            opts.push_str(" -c ");
            opts.push_str(s);
        }
        let data = self.data();
        let log = self.log_path();
        let out = self.run_as_postgres(
            "pg_ctl",
            &["-D", path_str(&data), "-o", &opts, "-l", path_str(&log), "-w", "-t", "60", "start"],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed:\n{}{}\n{}",
            lossy(&out.stdout),
            lossy(&out.stderr),
            self.log()
        );
        self.running = true;
    }

    /// The URL of `database` as the `postgres` superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs SQL with `psql` in `database`, failing the test on an error; returns its output
    /// (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &self.port.to_string(), "-d", database, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "psql {sql:?} failed: {}", lossy(&out.stderr));
        lossy(&out.stdout).trim().to_string()
    }

    /// Creates a database and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// Stops the server (`immediate`: as if it crashed; `fast`: a clean shutdown that ends
    /// every session).
    pub fn stop(&mut self, mode: &str) {
        if !self.running {
            return;
        }
        let data = self.data();
        let out = self.run_as_postgres("pg_ctl", &["-D", path_str(&data), "-m", mode, "-w", "-t", "60", "stop"]);
        assert!(out.status.success(), "pg_ctl stop failed: {}{}", lossy(&out.stdout), lossy(&out.stderr));
        self.running = false;
    }

    /// Starts the server again on the same port (after [`PgCluster::stop`]).
    pub fn start_again(&mut self) {
        if !self.running {
            self.launch();
        }
    }

    /// Whether it is running.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// The postmaster's process ID.
    pub fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Waits until `psql` connects (after a restart).
    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"])
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "PostgreSQL did not come back: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let data = self.data();
            let _ = self.run_as_postgres("pg_ctl", &["-D", path_str(&data), "-m", "immediate", "-w", "stop"]);
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
