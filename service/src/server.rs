//! Serving: the listener, TLS, one hyper connection per client with its timeouts, the
//! connection limit, and graceful shutdown (in-flight requests finish; nothing is half-written,
//! the ledger's transactions are all-or-nothing).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use license_backup::ErrorCode;
use license_backup::protocol::unhex;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use crate::auth::{StaticTokens, TokenVerifier};
use crate::config::{AuthConfig, Config, LedgerConfig};
use crate::http::{App, router};
use crate::ledger::{Ledger, SqliteLedger};
use crate::pg_ledger::PostgresLedger;
use crate::ratelimit::RateLimiter;

/// The largest buffer a connection reads into (request head and body pieces).
const MAX_BUF: usize = 64 * 1024;

/// What the configuration names, loaded: the keys, the ledger, the token verifier, TLS.
pub struct Loaded {
    /// The shared state of the handlers.
    pub app: Arc<App>,
    /// The TLS configuration, if any.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The key fingerprints, the current one first.
    pub fingerprints: Vec<[u8; 16]>,
}

/// Opens the configured SQLite ledger (created, with a fresh service key, on first use), its
/// keys unwrapped by the configured protector.
pub fn open_ledger(config: &Config) -> Result<SqliteLedger, String> {
    let path = config.ledger.path().ok_or("the configured ledger is a PostgreSQL database, not a file")?;
    let protector = config.ledger.protector()?;
    SqliteLedger::open(path, &protector, config.policy.to_policy())
        .map_err(|e| format!("cannot open the ledger {}: {e}", path.display()))
}

/// The configured PostgreSQL ledger (`None` for SQLite), calling the database on `handle`'s
/// runtime; nothing is read yet.
pub fn postgres_ledger(config: &Config, handle: &Handle) -> Result<Option<Arc<PostgresLedger>>, String> {
    let LedgerConfig::Postgres { url, pool, .. } = &config.ledger else { return Ok(None) };
    let protector = config.ledger.protector()?;
    let ledger = PostgresLedger::new(url, pool.settings(), protector, config.policy.to_policy(), handle.clone())
        .map_err(|e| format!("the ledger: {e}"))?;
    Ok(Some(Arc::new(ledger)))
}

/// Opens the configured ledger for serving. PostgreSQL: one attempt now, so that a mistake (a
/// protector that does not open the keys, a schema newer than this server) stops the start; a
/// database that cannot be reached is retried in the background, the server answering "not
/// ready" meanwhile. Call it outside `handle`'s runtime.
pub fn open_served_ledger(config: &Config, handle: &Handle) -> Result<Arc<dyn Ledger>, String> {
    let Some(pg) = postgres_ledger(config, handle)? else { return Ok(Arc::new(open_ledger(config)?)) };
    match pg.open_now() {
        Ok(applied) => tracing::info!(?applied, "the ledger database is open"),
        Err(e) if e.code() == ErrorCode::ServiceUnavailable => {
            tracing::warn!(error = %e, "the ledger database cannot be reached: not ready until it can");
            pg.open_in_background(handle);
        }
        Err(e) => return Err(format!("cannot open the ledger database: {e}")),
    }
    Ok(pg)
}

/// Loads everything the configuration names (files are read here, so a mistake shows at start);
/// the ledger's database calls run on `handle`'s runtime. Call it outside that runtime.
pub fn load(config: &Config, handle: &Handle) -> Result<Loaded, String> {
    let ledger = open_served_ledger(config, handle)?;
    let fingerprints: Vec<[u8; 16]> = ledger
        .keys()
        .iter()
        .map(|k| unhex(&k.fingerprint, 16, "fingerprint").map(|v| v.try_into().expect("16 bytes")))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let AuthConfig::Static { tokens_file } = &config.auth;
    let verifier: Arc<dyn TokenVerifier> = Arc::new(StaticTokens::load(tokens_file)?);
    let tls = match &config.tls {
        Some(t) => Some(crate::tls::server_config(&t.certificate, &t.private_key)?),
        None => None,
    };
    let app = Arc::new(App {
        ledger,
        verifier,
        limits: config.limits.clone(),
        per_account: RateLimiter::new(config.rate.per_account),
        per_device: RateLimiter::new(config.rate.per_device),
        draining: Default::default(),
    });
    Ok(Loaded { app, tls, fingerprints })
}

/// Resolves when the process is asked to stop (SIGTERM, or SIGINT / Ctrl-C).
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves `loaded` on `listener` until `stop` resolves, then stops accepting, lets in-flight
/// requests finish (at most the configured grace period) and returns.
pub async fn serve(listener: TcpListener, loaded: Loaded, stop: impl std::future::Future<Output = ()>) {
    let Loaded { app, tls, .. } = loaded;
    let limits = app.limits.clone();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let service = TowerToHyperService::new(router(Arc::clone(&app)));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let (acceptor, service) = (acceptor.clone(), service.clone());
        let header_timeout = limits.header_timeout();
        tokio::spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(header_timeout).max_buf_size(MAX_BUF).keep_alive(true);
            match acceptor {
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = http.serve_connection(TokioIo::new(tls), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                }
                None => {
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                }
            }
        });
    }
    app.draining.store(true, Ordering::Release);
    drop(listener);
    tracing::info!("stopping: no new connections; waiting for requests in flight");
    match tokio::time::timeout(limits.shutdown_grace(), graceful.shutdown()).await {
        Ok(()) => tracing::info!("stopped"),
        Err(_) => tracing::warn!("stopped with requests still in flight after the grace period"),
    }
}

/// Binds the configured address.
pub async fn bind(config: &Config) -> Result<(TcpListener, SocketAddr), String> {
    let listener =
        TcpListener::bind(config.listen).await.map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| format!("the listening address: {e}"))?;
    Ok((listener, addr))
}
