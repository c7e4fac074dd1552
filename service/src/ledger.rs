//! The ledger behind the server: the [`Ledger`] trait the HTTP layer calls (every
//! [`LicenseService`](license_backup::LicenseService) operation, for the caller's account), and
//! [`AuthorityLedger`], which implements it with the library's own service logic
//! ([`Authority`]) over any storage that implements the core's [`license_backup::Ledger`]: the
//! quota rules are the embedded service's, to the byte. [`SqliteLedger`] is that over the
//! core's SQLite ledger (one file, every account in it, the service keys wrapped by a
//! protector).
//!
//! The PostgreSQL storage ([`crate::pg_ledger::PgLedger`]) implements the core's storage traits
//! ([`license_backup::Ledger`], [`license_backup::LedgerTx`]) and is served by
//! [`AuthorityLedger`] (through [`crate::pg_ledger::PostgresLedger`], which waits for its
//! database); a storage with logic of its own may implement [`Ledger`] directly, and
//! must then keep exactly the rules `docs/service-protocol.md` states.
//!
//! The trait is asynchronous and takes the key IDs as a stream of chunks ([`KeyIdReceiver`]),
//! so an asynchronous ledger (PostgreSQL) consumes them as they arrive, and a blocking one turns
//! them into an iterator ([`KeyIdReceiver::blocking_iter`]). A stream that ends without its
//! end mark (the client went away, the body was malformed) yields an error, never a short
//! stream: nothing is recorded for it.

use std::path::Path;
use std::sync::Arc;

use license_backup::protocol::{PublishedKey, hex};
use license_backup::{
    Authority, DeviceRegistration, Error, ErrorCode, KeyId, LedgerAudit, Protector, Quota, RequestId, RestoreGrant,
    RestoreRequest, ServiceError, ServicePolicy, Settlement,
};
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

/// The service's operations, as the HTTP layer calls them, each scoped to the caller's account.
/// Every method is all-or-nothing: a failed or refused call changes nothing in the ledger.
///
/// This is the trait a ledger for `license-backup-service` implements. The rules it must keep
/// are those of the library's [`Authority`] (and of `docs/service-protocol.md`):
/// [`AuthorityLedger`] runs that logic over any storage implementing the core's
/// [`license_backup::Ledger`] and [`license_backup::LedgerTx`], which is how the SQLite ledger
/// (and the PostgreSQL one, [`crate::pg_ledger::PostgresLedger`]) gets them.
pub trait Ledger: Send + Sync + 'static {
    /// The service's public keys, the current one first (archives made for the others are
    /// still restored).
    fn keys(&self) -> Vec<PublishedKey>;

    /// Whether the ledger can serve requests now.
    fn ready(&self) -> BoxFuture<'_, Result<(), Error>>;

    /// Registers a device with `account` after checking its proof of possession (idempotent;
    /// `FOREIGN_DEVICE` when it is registered with another account).
    fn register_device<'a>(
        &'a self,
        account: &'a Account,
        registration: DeviceRegistration,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Whether this restore would be authorized now, and the quota behind the answer; changes
    /// nothing.
    fn quota<'a>(
        &'a self,
        account: &'a Account,
        request: RestoreRequest,
        key_ids: KeyIdReceiver,
    ) -> BoxFuture<'a, Result<Quota, Error>>;

    /// Authorizes a restore: a reservation under the request's ID. A retry of the same request
    /// (same ID, same request, same key IDs) is answered from the ledger with the same
    /// reservation; the ID with another request is refused.
    fn authorize<'a>(
        &'a self,
        account: &'a Account,
        request: RestoreRequest,
        key_ids: KeyIdReceiver,
    ) -> BoxFuture<'a, Result<RestoreGrant, ServiceError>>;

    /// Confirms the reservation of `request_id` in `account` (idempotent).
    fn confirm<'a>(&'a self, account: &'a Account, request_id: RequestId) -> BoxFuture<'a, Result<Settlement, Error>>;

    /// Releases the reservation of `request_id` in `account` (idempotent).
    fn release<'a>(&'a self, account: &'a Account, request_id: RequestId) -> BoxFuture<'a, Result<Settlement, Error>>;

    /// What the ledger holds for `account` (for operators and tests; not on the network).
    fn audit<'a>(&'a self, account: &'a Account) -> BoxFuture<'a, Result<LedgerAudit, Error>>;
}

/// [`Ledger`] by the library's service logic, [`Authority`], over a storage `L`, on blocking
/// threads (the logic is synchronous; the key IDs reach it through [`KeyIdReceiver::blocking_iter`]).
pub struct AuthorityLedger<L: license_backup::Ledger + 'static> {
    authority: Arc<Authority<L>>,
}

/// The SQLite ledger: the library's [`license_backup::SqliteLedger`] (one file for every
/// account, the service keys in it, wrapped by the configured protector) under the library's
/// logic.
pub type SqliteLedger = AuthorityLedger<license_backup::SqliteLedger>;

impl SqliteLedger {
    /// Opens (or creates, with a fresh service key) the ledger file at `path`, its keys wrapped
    /// by `protector`.
    pub fn open(path: &Path, protector: &Protector, policy: ServicePolicy) -> Result<Self, Error> {
        let storage = license_backup::SqliteLedger::open_with(path, protector)?;
        Ok(AuthorityLedger::new(Authority::new(storage, policy)?))
    }
}

impl<L: license_backup::Ledger + 'static> AuthorityLedger<L> {
    /// The logic and storage of `authority`, served.
    pub fn new(authority: Authority<L>) -> Self {
        AuthorityLedger { authority: Arc::new(authority) }
    }

    /// The logic and its storage.
    pub fn authority(&self) -> &Authority<L> {
        &self.authority
    }

    /// Runs `f` with the logic on a blocking thread.
    async fn run<T: Send + 'static, E: From<Error> + Send + 'static>(
        &self,
        f: impl FnOnce(&Authority<L>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let authority = Arc::clone(&self.authority);
        tokio::task::spawn_blocking(move || f(&authority))
            .await
            .unwrap_or_else(|e| Err(Error::new(ErrorCode::Internal, format!("ledger task: {e}")).into()))
    }
}

impl<L: license_backup::Ledger + 'static> Ledger for AuthorityLedger<L> {
    fn keys(&self) -> Vec<PublishedKey> {
        self.authority.public_keys().iter().enumerate().map(|(i, k)| PublishedKey::new(k, i == 0)).collect()
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.run(|a| a.ledger().read().map(drop)))
    }

    fn register_device<'a>(
        &'a self,
        account: &'a Account,
        registration: DeviceRegistration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let account = account.clone();
        Box::pin(self.run(move |a| a.register_device(account.as_str(), &registration)))
    }

    fn quota<'a>(
        &'a self,
        account: &'a Account,
        request: RestoreRequest,
        key_ids: KeyIdReceiver,
    ) -> BoxFuture<'a, Result<Quota, Error>> {
        let account = account.clone();
        Box::pin(self.run(move |a| {
            let mut iter = key_ids.blocking_iter();
            a.quota(account.as_str(), &request, &mut iter)
        }))
    }

    fn authorize<'a>(
        &'a self,
        account: &'a Account,
        request: RestoreRequest,
        key_ids: KeyIdReceiver,
    ) -> BoxFuture<'a, Result<RestoreGrant, ServiceError>> {
        let account = account.clone();
        Box::pin(self.run(move |a| {
            // For the log only: whether this request ID already has its reservation (a retry).
            let retried = a
                .ledger()
                .read()
                .and_then(|mut tx| tx.reservation_by_request(account.as_str(), &request.request_id))
                .is_ok_and(|r| r.is_some());
            let mut iter = key_ids.blocking_iter();
            let grant = a.authorize_restore(account.as_str(), &request, &mut iter)?;
            let device = hex(&request.device_id);
            if retried {
                tracing::info!(account = account.as_str(), device, "answered a retried request from its reservation");
            } else {
                tracing::debug!(account = account.as_str(), device, "reservation made");
            }
            Ok(grant)
        }))
    }

    fn confirm<'a>(&'a self, account: &'a Account, request_id: RequestId) -> BoxFuture<'a, Result<Settlement, Error>> {
        let account = account.clone();
        Box::pin(self.run(move |a| a.confirm_restore(account.as_str(), &request_id)))
    }

    fn release<'a>(&'a self, account: &'a Account, request_id: RequestId) -> BoxFuture<'a, Result<Settlement, Error>> {
        let account = account.clone();
        Box::pin(self.run(move |a| a.release_restore(account.as_str(), &request_id)))
    }

    fn audit<'a>(&'a self, account: &'a Account) -> BoxFuture<'a, Result<LedgerAudit, Error>> {
        let account = account.clone();
        Box::pin(self.run(move |a| a.audit(account.as_str())))
    }
}
