//! `license-backup-service`: the License Management Service of license-backup over HTTPS, as
//! `docs/service-protocol.md` specifies it. A tokio + hyper/axum server with rustls, configured
//! by a file and environment variables ([`config`]), whose ledger sits behind a trait
//! ([`ledger::Ledger`]: the library's service logic over a SQLite file, or over PostgreSQL
//! for several instances ([`pg_ledger`]), the service keys sealed by [`protector::KekFile`])
//! and whose callers authenticate with bearer tokens mapped
//! to accounts by a pluggable verifier ([`auth::TokenVerifier`]).

pub mod auth;
pub mod config;
pub mod http;
pub mod init;
pub mod ledger;
pub mod pg_ledger;
pub mod pg_tls;
pub mod protector;
pub mod ratelimit;
pub mod server;
pub mod tls;

use std::future::Future;
use std::pin::Pin;

/// A boxed future, for the object-safe traits ([`ledger::Ledger`], [`auth::TokenVerifier`]).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
