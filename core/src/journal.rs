//! The restore journal: a small table in the store that keeps a restore's reservation until the
//! service knows how it ended, so that the quota is charged exactly for the restores that land,
//! whatever happens to the process or the connection.
//!
//! | state | written | means | settled by |
//! |---|---|---|---|
//! | `requested` | before the device asks for the grant (own transaction) | nothing applied (yet) | marking it `releasing`, then a release |
//! | `committed` | in the restore's own store transaction | the licenses landed | a confirm |
//! | `releasing` | by whoever settles a `requested` entry | nothing was applied, nor will be | a release |
//!
//! An entry is deleted once the service answered. A restore settles its own entry before END
//! (after its commit, or after whatever stopped it); entries left by a crash, or by a service
//! that could not be reached, are settled before the next restore or quota query with that
//! service and when a restorer is created for it. A restore's commit turns its entry from
//! `requested` to `committed` only if no one marked it `releasing` meanwhile (another process
//! settling the same store), so a reservation is never both released and applied.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::now_secs;
use crate::crypto;
use crate::error::{Error, ErrorCode, Result};
use crate::service::{LicenseService, RequestId};
use crate::sqlite::{no_autocheckpoint, open_connection};

/// The request IDs of the restores running in this process: their entries are theirs to settle.
static IN_FLIGHT: Mutex<Vec<RequestId>> = Mutex::new(Vec::new());

fn in_flight() -> std::sync::MutexGuard<'static, Vec<RequestId>> {
    IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner())
}

/// A journal entry's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntryState {
    /// Written before the grant was asked for.
    Requested,
    /// The restore committed.
    Committed,
    /// Being released.
    Releasing,
}

impl EntryState {
    fn parse(s: &str) -> Result<Self> {
        match s {
            "requested" => Ok(EntryState::Requested),
            "committed" => Ok(EntryState::Committed),
            "releasing" => Ok(EntryState::Releasing),
            other => Err(Error::new(ErrorCode::Storage, format!("unknown restore journal state {other:?}"))),
        }
    }
}

fn state_of(conn: &Connection, request: &RequestId) -> Result<Option<EntryState>> {
    let state: Option<String> = conn
        .query_row("SELECT state FROM restore_journal WHERE request_id = ?1", [request.as_slice()], |r| r.get(0))
        .optional()?;
    state.map(|s| EntryState::parse(&s)).transpose()
}

/// In the restore's own store transaction: turns its entry from `requested` to `committed`, or
/// fails with `BUSY` (nothing applied) when someone is releasing it.
pub(crate) fn mark_committed(tx: &Connection, request: &RequestId) -> Result<()> {
    let n = tx.execute(
        "UPDATE restore_journal SET state = 'committed' WHERE request_id = ?1 AND state = 'requested'",
        [request.as_slice()],
    )?;
    if n != 1 {
        return Err(Error::new(
            ErrorCode::Busy,
            "this restore's reservation was released by another process using the store; nothing was restored",
        ));
    }
    Ok(())
}

/// Settles one entry with `service`: confirms a committed restore, releases one that applied
/// nothing, then deletes the entry. An error (the service unreachable) leaves it for later.
fn settle_entry(conn: &Connection, service: &dyn LicenseService, request: &RequestId) -> Result<()> {
    loop {
        match state_of(conn, request)? {
            None => return Ok(()),
            Some(EntryState::Committed) => {
                service.confirm_restore(request)?;
                tracing::debug!("confirmed a restore the journal kept (it had landed)");
                break;
            }
            Some(EntryState::Requested) => {
                // Claim it first, so that the restore it belongs to (if it still runs, in
                // another process) cannot commit it any more; then look again.
                conn.execute(
                    "UPDATE restore_journal SET state = 'releasing' WHERE request_id = ?1 AND state = 'requested'",
                    [request.as_slice()],
                )?;
            }
            Some(EntryState::Releasing) => {
                service.release_restore(request)?;
                tracing::debug!("released a reservation the journal kept (its restore applied nothing)");
                break;
            }
        }
    }
    conn.execute("DELETE FROM restore_journal WHERE request_id = ?1", [request.as_slice()])?;
    Ok(())
}

/// Settles every entry of the store at `store_path` made with `service` (but those of restores
/// running in this process). Returns how many were settled; stops at the first that cannot
/// be (the others stay for later). Asks the service nothing when the journal is empty.
pub(crate) fn settle(store_path: &Path, service: &dyn LicenseService) -> Result<usize> {
    let result = settle_all(store_path, service);
    match &result {
        Ok(0) => {}
        Ok(n) => tracing::info!(settled = n, "settled restore reservations left in the journal"),
        Err(e) => tracing::warn!(
            code = e.code().name(),
            error = %e.message(),
            "restore reservations left in the journal could not be settled now; kept for later"
        ),
    }
    result
}

fn settle_all(store_path: &Path, service: &dyn LicenseService) -> Result<usize> {
    let conn = open_connection(store_path)?;
    let any: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM restore_journal)", [], |r| r.get(0))?;
    if !any {
        return Ok(0);
    }
    let fingerprint = crypto::fingerprint(&service.public_key()?);
    let entries: Vec<Vec<u8>> = conn
        .prepare("SELECT request_id FROM restore_journal WHERE service_key = ?1 ORDER BY created_at, request_id")?
        .query_map([fingerprint.as_slice()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut settled = 0;
    for id in entries {
        let request: RequestId =
            id.try_into().map_err(|_| Error::new(ErrorCode::Storage, "malformed restore journal"))?;
        if in_flight().contains(&request) {
            continue;
        }
        settle_entry(&conn, service, &request)?;
        settled += 1;
    }
    Ok(settled)
}

/// A restore's reservation, from before the grant is asked for until the service knows how
/// the restore ended. Dropping it settles it (a confirm if the store committed, else a
/// release), on every path: success, error, cancel, a failing callback, a panic.
pub(crate) struct PendingRestore {
    store_path: PathBuf,
    service: Arc<dyn LicenseService>,
    request_id: RequestId,
    /// Whether the service was asked (a reservation may exist).
    asked: bool,
    done: bool,
}

impl PendingRestore {
    /// Writes the journal entry (`requested`, in its own transaction) of a new request to the
    /// service whose key is `service_key`, for the archive `archive_id`.
    pub(crate) fn begin(
        store_path: &Path,
        service: Arc<dyn LicenseService>,
        service_key: &[u8; 32],
        archive_id: &[u8; 16],
    ) -> Result<Self> {
        let request_id: RequestId = crypto::random_array();
        in_flight().push(request_id);
        let pending =
            PendingRestore { store_path: store_path.to_path_buf(), service, request_id, asked: false, done: false };
        open_connection(store_path)?.execute(
            "INSERT INTO restore_journal (request_id, service_key, archive_id, state, created_at) \
             VALUES (?1, ?2, ?3, 'requested', ?4)",
            params![
                request_id.as_slice(),
                crypto::fingerprint(service_key).as_slice(),
                archive_id.as_slice(),
                now_secs()
            ],
        )?;
        Ok(pending)
    }

    /// The request's ID.
    pub(crate) fn request_id(&self) -> &RequestId {
        &self.request_id
    }

    /// Notes that the service is about to be asked (from then on a reservation may exist).
    pub(crate) fn asking(&mut self) {
        self.asked = true;
    }

    /// Settles the reservation now: a confirm if the store committed the restore, else a
    /// release (or, if the service was never asked, just the entry's removal). An error leaves
    /// the entry for a later settle.
    pub(crate) fn settle(&mut self) -> Result<()> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        let conn = open_connection(&self.store_path)?;
        // Right after a restore's commit: its pages stay in the log for the checkpoint that
        // follows the restore, not copied by this small commit.
        no_autocheckpoint(&conn)?;
        if !self.asked && state_of(&conn, &self.request_id)? == Some(EntryState::Requested) {
            conn.execute("DELETE FROM restore_journal WHERE request_id = ?1", [self.request_id.as_slice()])?;
            return Ok(());
        }
        settle_entry(&conn, self.service.as_ref(), &self.request_id)
    }
}

impl Drop for PendingRestore {
    fn drop(&mut self) {
        // A settle that fails (the service unreachable, a storage error) leaves the entry in
        // the journal; the next restore, quota query or restorer settles it.
        let _ = self.settle();
        in_flight().retain(|r| *r != self.request_id);
    }
}
