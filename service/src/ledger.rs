//! The ledger behind the server: the [`Ledger`] trait the HTTP layer calls, and [`SqliteLedger`],
//! which runs the embedded service's quota logic on SQLite files, one per account, on
//! blocking threads.
//!
//! The trait is asynchronous and takes the key IDs as a stream of chunks ([`KeyIdReceiver`]),
//! so an asynchronous ledger (PostgreSQL) consumes them as they arrive, and a blocking one turns
//! them into an iterator ([`KeyIdReceiver::blocking_iter`]). A stream that ends without its
//! end mark (the client went away, the body was malformed) yields an error, never a short
//! stream: nothing is recorded for it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use license_backup::protocol::{PublishedKey, hex};
use license_backup::{
    EmbeddedService, Error, ErrorCode, KeyId, LicenseService, Quota, RestoreGrant, RestoreRequest, ServiceError,
    ServiceKey, ServicePolicy,
};
use rusqlite::OptionalExtension;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::BoxFuture;
use crate::auth::Account;

/// What flows from the request body to the ledger.
#[derive(Debug)]
pub enum Chunk {
    /// Key IDs, 16 bytes each.
    KeyIds(Vec<u8>),
    /// The body ended and its trailer matched: the stream is complete.
    End,
    /// The body broke off or is malformed: the ledger must record nothing.
    Fail(Error),
}

/// The sending half: what the HTTP layer feeds.
pub type KeyIdSender = mpsc::Sender<Chunk>;

/// The key IDs of one request, as they arrive.
pub struct KeyIdReceiver(mpsc::Receiver<Chunk>);

/// Chunks in flight between the body and the ledger (each at most 64 KiB).
const CHANNEL_DEPTH: usize = 4;

/// A channel for one request's key IDs.
pub fn key_id_channel() -> (KeyIdSender, KeyIdReceiver) {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    (tx, KeyIdReceiver(rx))
}

fn broken_off() -> Error {
    Error::new(ErrorCode::ProtocolViolation, "the request's key IDs broke off")
}

impl KeyIdReceiver {
    /// The next chunk: `Ok(Some(bytes))`, `Ok(None)` at the end mark, `Err` if the stream
    /// failed or broke off.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, Error> {
        match self.0.recv().await {
            Some(Chunk::KeyIds(v)) => Ok(Some(v)),
            Some(Chunk::End) => Ok(None),
            Some(Chunk::Fail(e)) => Err(e),
            None => Err(broken_off()),
        }
    }

    /// The key IDs as a blocking iterator, for a ledger on a blocking thread.
    pub fn blocking_iter(self) -> BlockingKeyIds {
        BlockingKeyIds { rx: self.0, chunk: Vec::new(), pos: 0, done: false }
    }
}

/// The key IDs of a request, read on a blocking thread.
pub struct BlockingKeyIds {
    rx: mpsc::Receiver<Chunk>,
    chunk: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Iterator for BlockingKeyIds {
    type Item = license_backup::Result<KeyId>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.pos + 16 <= self.chunk.len() {
                let kid = KeyId::from_slice(&self.chunk[self.pos..self.pos + 16]).expect("16 bytes");
                self.pos += 16;
                return Some(Ok(kid));
            }
            if self.done {
                return None;
            }
            match self.rx.blocking_recv() {
                Some(Chunk::KeyIds(v)) => {
                    self.chunk = v;
                    self.pos = 0;
                }
                Some(Chunk::End) => self.done = true,
                Some(Chunk::Fail(e)) => {
                    self.done = true;
                    self.chunk.clear();
                    return Some(Err(e));
                }
                None => {
                    self.done = true;
                    self.chunk.clear();
                    return Some(Err(broken_off()));
                }
            }
        }
    }
}

/// A grant, as the ledger answers it.
#[derive(Clone, Debug)]
pub struct Grant {
    /// The data key, sealed to the device.
    pub grant: RestoreGrant,
    /// `"reserved"` or `"confirmed"`.
    pub state: &'static str,
}

/// The quota logic and its storage, as the HTTP layer uses them. Every call is scoped to the
/// caller's account.
pub trait Ledger: Send + Sync + 'static {
    /// The public keys, the current one first.
    fn keys(&self) -> Vec<PublishedKey>;

    /// Whether the ledger can serve requests now.
    fn ready(&self) -> BoxFuture<'_, Result<(), Error>>;

    /// Records a device's public key (idempotent).
    fn register_device<'a>(
        &'a self,
        account: &'a Account,
        device_id: [u8; 16],
        public_key: [u8; 32],
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// The quota for the request's archive onto its device; changes nothing.
    fn quota<'a>(
        &'a self,
        account: &'a Account,
        request: RestoreRequest,
        key_ids: KeyIdReceiver,
    ) -> BoxFuture<'a, Result<Quota, Error>>;

    /// Authorizes a restore, idempotently per request ID.
    fn authorize<'a>(
        &'a self,
        account: &'a Account,
        request_id: &'a str,
        request: RestoreRequest,
        key_ids: KeyIdReceiver,
    ) -> BoxFuture<'a, Result<Grant, ServiceError>>;
}

/// The quota logic of [`EmbeddedService`] over SQLite files in a folder, one per account
/// (`<account>.db`), all with the key files' keys. SQLite has one writer at a time: a file's
/// authorizations run one after the other.
pub struct SqliteLedger {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    seeds: Vec<[u8; 32]>,
    policy: ServicePolicy,
    open: Mutex<HashMap<Account, Arc<EmbeddedService>>>,
}

/// The server's own tables in an account's ledger file: the grant of each request ID (a
/// retried request is answered from it; the same ID with another request is refused) and
/// registered devices.
const SERVER_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS server_requests (
    request_id TEXT PRIMARY KEY,
    digest     BLOB NOT NULL CHECK (length(digest) = 32),
    enc        BLOB NOT NULL,
    wrapped    BLOB NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS server_devices (
    device_id  BLOB PRIMARY KEY CHECK (length(device_id) = 16),
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    first_seen INTEGER NOT NULL
) WITHOUT ROWID;
";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn storage(e: rusqlite::Error) -> Error {
    Error::new(ErrorCode::Storage, format!("ledger: {e}"))
}

/// What identifies a request apart from its ID: everything in its preamble.
fn request_digest(request: &RestoreRequest) -> [u8; 32] {
    let mut d = Sha256::new();
    for part in [
        &request.header[..],
        &request.wrapped_key.enc,
        &request.wrapped_key.ciphertext,
        &request.device_id,
        &request.device_public_key,
    ] {
        d.update((part.len() as u64).to_le_bytes());
        d.update(part);
    }
    d.update(request.licenses.to_le_bytes());
    d.finalize().into()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::new(ErrorCode::Internal, format!("ledger task: {e}"))))
}

impl SqliteLedger {
    /// A ledger in `dir` (created if missing) with these keys (the current one first).
    pub fn new(dir: PathBuf, keys: &[ServiceKey], policy: ServicePolicy) -> Result<Self, String> {
        if keys.is_empty() {
            return Err("at least one service key".into());
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create the ledger folder {}: {e}", dir.display()))?;
        let seeds = keys.iter().map(|k| *k.seed()).collect();
        Ok(SqliteLedger { inner: Arc::new(Inner { dir, seeds, policy, open: Mutex::new(HashMap::new()) }) })
    }
}

impl Inner {
    fn path(&self, account: &Account) -> PathBuf {
        self.dir.join(format!("{}.db", account.as_str()))
    }

    /// The account's service (opened on first use), on a blocking thread.
    fn service(&self, account: &Account) -> Result<Arc<EmbeddedService>, Error> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = open.get(account) {
            return Ok(Arc::clone(s));
        }
        let keys = self.seeds.iter().map(|s| ServiceKey::from_seed(*s)).collect();
        let service = Arc::new(EmbeddedService::open_with_keys(self.path(account), self.policy.clone(), keys)?);
        let conn = self.connection(account)?;
        conn.execute_batch(SERVER_SCHEMA).map_err(storage)?;
        open.insert(account.clone(), Arc::clone(&service));
        Ok(service)
    }

    fn connection(&self, account: &Account) -> Result<rusqlite::Connection, Error> {
        let conn = rusqlite::Connection::open(self.path(account)).map_err(storage)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(storage)?;
        Ok(conn)
    }

    /// The grant already made for this request ID, if any; `PROTOCOL_VIOLATION` if the ID was used
    /// for another request.
    fn replay(
        &self,
        account: &Account,
        request_id: &str,
        request: &RestoreRequest,
    ) -> Result<Option<RestoreGrant>, Error> {
        let conn = self.connection(account)?;
        let row: Option<(Vec<u8>, Vec<u8>, Vec<u8>)> = conn
            .query_row("SELECT digest, enc, wrapped FROM server_requests WHERE request_id = ?1", [request_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(storage)?;
        match row {
            None => Ok(None),
            Some((digest, _, _)) if digest.as_slice() != request_digest(request).as_slice() => Err(Error::new(
                ErrorCode::ProtocolViolation,
                format!("request ID {request_id} was used for another request"),
            )),
            Some((_, enc, ciphertext)) => {
                Ok(Some(RestoreGrant { wrapped_key: license_backup::WrappedKey { enc, ciphertext } }))
            }
        }
    }

    /// Keeps the grant of a request ID, for its retries.
    fn record(
        &self,
        account: &Account,
        request_id: &str,
        request: &RestoreRequest,
        grant: &RestoreGrant,
    ) -> Result<(), Error> {
        let conn = self.connection(account)?;
        conn.execute(
            "INSERT INTO server_requests (request_id, digest, enc, wrapped, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO NOTHING",
            rusqlite::params![
                request_id,
                request_digest(request).as_slice(),
                grant.wrapped_key.enc,
                grant.wrapped_key.ciphertext,
                now()
            ],
        )
        .map_err(storage)?;
        Ok(())
    }
}

impl Ledger for SqliteLedger {
    fn keys(&self) -> Vec<PublishedKey> {
        let keys: Vec<ServiceKey> = self.inner.seeds.iter().map(|s| ServiceKey::from_seed(*s)).collect();
        crate::keys::published(&keys)
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), Error>> {
        let dir = self.inner.dir.clone();
        Box::pin(blocking(move || {
            let probe = dir.join(".ready-probe");
            std::fs::write(&probe, b"ok").and_then(|()| std::fs::remove_file(&probe)).map_err(|e| {
                Error::new(ErrorCode::ServiceUnavailable, format!("the ledger folder is not writable: {e}"))
            })
        }))
    }

    fn register_device<'a>(
        &'a self,
        account: &'a Account,
        device_id: [u8; 16],
        public_key: [u8; 32],
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let this = Arc::clone(&self.inner);
            let account = account.clone();
            blocking(move || {
                this.service(&account)?;
                let conn = this.connection(&account)?;
                conn.execute(
                    "INSERT INTO server_devices (device_id, public_key, first_seen) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    rusqlite::params![device_id.as_slice(), public_key.as_slice(), now()],
                )
                .map_err(storage)?;
                Ok(())
            })
            .await
        })
    }

    fn quota<'a>(
        &'a self,
        account: &'a Account,
        request: RestoreRequest,
        key_ids: KeyIdReceiver,
    ) -> BoxFuture<'a, Result<Quota, Error>> {
        Box::pin(async move {
            let this = Arc::clone(&self.inner);
            let account = account.clone();
            blocking(move || {
                let service = this.service(&account)?;
                let mut iter = key_ids.blocking_iter();
                service.quota(&request, &mut iter)
            })
            .await
        })
    }

    fn authorize<'a>(
        &'a self,
        account: &'a Account,
        request_id: &'a str,
        request: RestoreRequest,
        key_ids: KeyIdReceiver,
    ) -> BoxFuture<'a, Result<Grant, ServiceError>> {
        Box::pin(async move {
            let this = Arc::clone(&self.inner);
            let (account, request_id) = (account.clone(), request_id.to_string());
            let answer = tokio::task::spawn_blocking(move || {
                let service = this.service(&account)?;
                if let Some(grant) = this.replay(&account, &request_id, &request)? {
                    tracing::info!(account = account.as_str(), request_id, "answered a retried request from the ledger");
                    return Ok(Grant { grant, state: "reserved" });
                }
                let mut iter = key_ids.blocking_iter();
                let grant = service.authorize_restore(&request, &mut iter)?;
                // The engine's rule: a grant only for the whole stream, up to its end mark.
                if iter.next().is_some() || !iter.done {
                    return Err(ServiceError::Failed(broken_off()));
                }
                this.record(&account, &request_id, &request, &grant)?;
                tracing::debug!(account = account.as_str(), request_id, device = %hex(&request.device_id), "authorized");
                Ok(Grant { grant, state: "reserved" })
            })
            .await;
            answer.unwrap_or_else(|e| Err(Error::new(ErrorCode::Internal, format!("ledger task: {e}")).into()))
        })
    }
}
