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
use license_backup::protocol::unhex;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::auth::{StaticTokens, TokenVerifier};
use crate::config::{AuthConfig, Config};
use crate::http::{App, router};
use crate::ledger::{Ledger, SqliteLedger};
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

/// Opens the configured ledger (created, with a fresh service key, on first use), its keys
/// unwrapped by the configured protector.
pub fn open_ledger(config: &Config) -> Result<SqliteLedger, String> {
    let path = config.ledger.path();
    let protector = config.ledger.protector()?;
    SqliteLedger::open(path, &protector, config.policy.to_policy())
        .map_err(|e| format!("cannot open the ledger {}: {e}", path.display()))
}

/// Loads everything the configuration names (files are read here, so a mistake shows at start).
pub fn load(config: &Config) -> Result<Loaded, String> {
    let ledger: Arc<dyn Ledger> = Arc::new(open_ledger(config)?);
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
