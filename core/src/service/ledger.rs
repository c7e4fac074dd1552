//! The ledger a service keeps, as storage: devices and their accounts, reservations, and where
//! each account's licenses live. [`Ledger`] is the storage interface the service logic
//! ([`crate::service::Authority`]) runs over; [`crate::service::SqliteLedger`] is the SQLite
//! implementation. Every operation of the logic runs in one transaction ([`Ledger::write`]) in
//! which it reads rows and writes them back: a serializable transaction or row locks in SQL.
//!
//! Layout (see `docs/security.md`, "The ledger"):
//! * a **device** row per device ID: its account, the identity it counts as (itself, or the
//!   identity it replaced through an individualizing restore, transitively) and, when it
//!   registered, its public key;
//! * a **reservation** row per authorized restore: the request, what it placed, its state;
//! * a **placement** row per (account, license): the devices the license lives on, each entry
//!   tagged with the reservation that placed it. Confirming or releasing a restore changes one
//!   reservation row, whatever the number of licenses; entries of released reservations are
//!   ignored, and dropped when their row is next written.

use crate::error::{Error, ErrorCode, Result};
use crate::key_id::KeyId;
use crate::service::RequestId;

/// The number a ledger gives a reservation (its row); entries placed before reservations existed
/// (a ledger migrated from an earlier layout) carry [`PERMANENT`].
pub type ReservationRef = i64;

/// The reservation number of placements that always count.
pub const PERMANENT: ReservationRef = 0;

/// The most bytes one placement entry takes: a device ID (16) and a reservation number
/// (LEB128, at most 10 bytes; 1 to 3 for the first two million reservations).
pub const MAX_ENTRY_LEN: usize = 26;

/// A reservation's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReservationState {
    /// Granted, not yet settled: counts.
    Pending,
    /// Confirmed by the device: counts.
    Confirmed,
    /// Released by the device: does not count.
    Released,
    /// Left pending past the policy's limit: counts, for good.
    Expired,
}

impl ReservationState {
    /// The name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationState::Pending => "pending",
            ReservationState::Confirmed => "confirmed",
            ReservationState::Released => "released",
            ReservationState::Expired => "expired",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => ReservationState::Pending,
            "confirmed" => ReservationState::Confirmed,
            "released" => ReservationState::Released,
            "expired" => ReservationState::Expired,
            other => return Err(Error::new(ErrorCode::Storage, format!("unknown reservation state {other:?}"))),
        })
    }
}

/// A device the ledger knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The device ID.
    pub device_id: [u8; 16],
    /// The account it belongs to.
    pub account: String,
    /// The identity it counts as: itself, or (after an individualizing restore) the identity
    /// it replaced, resolved to that identity's own.
    pub counts_as: [u8; 16],
    /// Its public key, when it registered itself (a new identity known only through its
    /// predecessor has none).
    pub public_key: Option<[u8; 32]>,
    /// When the ledger learned of it.
    pub since: i64,
}

/// A reservation: one authorized restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// The ledger's number for it ([`Ledger`] implementations assign it on insert).
    pub id: ReservationRef,
    /// The account it was made in.
    pub account: String,
    /// The device's request ID (`None` for restores recorded before requests had IDs).
    pub request_id: Option<RequestId>,
    /// The archive restored.
    pub archive_id: [u8; 16],
    /// The restoring device (its new identity when individualizing).
    pub device_id: [u8; 16],
    /// The identity the placements were made for.
    pub counted_as: [u8; 16],
    /// The identity an individualizing restore replaces.
    pub replaces: Option<[u8; 16]>,
    /// Licenses in the archive.
    pub licenses: u64,
    /// The digest of the archive's key IDs (`archive::KeyTally`).
    pub key_digest: [u8; 32],
    /// Its state as stored (a pending one may be past its expiry: see the policy).
    pub state: ReservationState,
    /// When it was granted (seconds since the Unix epoch).
    pub created_at: i64,
    /// When it was settled.
    pub settled_at: Option<i64>,
}

/// One device entry of a placement row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The device (the identity it counts as).
    pub device: [u8; 16],
    /// The reservation that placed it.
    pub reservation: ReservationRef,
}

impl Entry {
    /// Appends the entry's bytes to `out`: the device ID, then the reservation number as an
    /// unsigned LEB128 (a row is read and written whole, and a restore writes one for each
    /// license: a fresh row of two entries is 36 bytes rather than 48 with fixed-size numbers,
    /// which makes the restore's ledger inserts about a quarter cheaper).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.device);
        let mut n = self.reservation as u64;
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
}

fn malformed_row() -> Error {
    Error::new(ErrorCode::Storage, "malformed placement row in the service ledger")
}

/// The entries of a placement row; a malformed row is a storage error.
pub fn entries(row: &[u8]) -> Result<Vec<Entry>> {
    let mut out = Vec::with_capacity(row.len() / 17);
    let mut rest = row;
    while !rest.is_empty() {
        if rest.len() < 17 {
            return Err(malformed_row());
        }
        let device: [u8; 16] = rest[..16].try_into().expect("16 bytes");
        rest = &rest[16..];
        let (mut n, mut shift) = (0u64, 0u32);
        loop {
            let (&byte, tail) = rest.split_first().ok_or_else(malformed_row)?;
            rest = tail;
            if shift > 56 && byte >> (63 - shift) != 0 {
                return Err(malformed_row());
            }
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let reservation = i64::try_from(n).map_err(|_| malformed_row())?;
        out.push(Entry { device, reservation });
    }
    Ok(out)
}

/// A ledger's storage. Thread-safe: a service calls it from many requests at once; each
/// transaction sees a consistent ledger and commits all its writes or none.
pub trait Ledger: Send + Sync {
    /// The seeds of the service's key pairs, the current one first (backups wrap to it), then
    /// the keys it replaced, newest first (archives made for them stay restorable). The current
    /// one is made on first use; all are kept with the ledger.
    fn service_seeds(&self) -> Result<Vec<zeroize::Zeroizing<[u8; 32]>>>;

    /// Starts a transaction that may write: transactions that write are serialized (or fail
    /// to commit when they conflict), so a check and the write it allows are never split.
    fn write(&self) -> Result<Box<dyn LedgerTx + '_>>;

    /// Starts a transaction that only reads, from one consistent snapshot.
    fn read(&self) -> Result<Box<dyn LedgerTx + '_>>;
}

/// One ledger transaction; dropped without [`LedgerTx::commit`], it changes nothing.
pub trait LedgerTx {
    /// The device with this ID, in any account.
    fn device(&mut self, device_id: &[u8; 16]) -> Result<Option<DeviceRecord>>;

    /// Records a device; `false` (and nothing changed) when the ID is already known.
    fn insert_device(&mut self, device: &DeviceRecord) -> Result<bool>;

    /// How many devices belong to `account`.
    fn device_count(&mut self, account: &str) -> Result<u64>;

    /// The reservation with this number.
    fn reservation(&mut self, id: ReservationRef) -> Result<Option<Reservation>>;

    /// The reservation `account` made with this request ID.
    fn reservation_by_request(&mut self, account: &str, request_id: &RequestId) -> Result<Option<Reservation>>;

    /// Records a reservation (its `id` is ignored) and returns its number, never [`PERMANENT`].
    fn insert_reservation(&mut self, reservation: &Reservation) -> Result<ReservationRef>;

    /// Sets a reservation's state and when it was settled.
    fn set_reservation_state(&mut self, id: ReservationRef, state: ReservationState, at: i64) -> Result<()>;

    /// Sets the digest of the key IDs a reservation covers (known once they were all read).
    fn set_reservation_digest(&mut self, id: ReservationRef, key_digest: &[u8; 32]) -> Result<()>;

    /// Every reservation of `account`, in the order they were made (for audits).
    fn reservations(&mut self, account: &str) -> Result<Vec<Reservation>>;

    /// The pending reservations of `account` created at or before `before`.
    fn pending_before(&mut self, account: &str, before: i64) -> Result<Vec<ReservationRef>>;

    /// The placement row of one license in `account` (its entries, see [`Entry::encode`]).
    fn placements(&mut self, account: &str, key_id: &KeyId) -> Result<Option<Vec<u8>>>;

    /// Writes the row `entries` for each license of `key_ids` that has no row in `account`
    /// (others are left as they are); returns how many rows were written.
    fn insert_placements(&mut self, account: &str, key_ids: &[KeyId], entries: &[u8]) -> Result<usize>;

    /// Writes (creates or replaces) the row of one license.
    fn put_placements(&mut self, account: &str, key_id: &KeyId, entries: &[u8]) -> Result<()>;

    /// The placement rows of several licenses in `account`, in the order of `key_ids`
    /// ([`LedgerTx::placements`] of each, which a ledger may read in fewer statements).
    fn placements_of(&mut self, account: &str, key_ids: &[KeyId]) -> Result<Vec<Option<Vec<u8>>>> {
        key_ids.iter().map(|k| self.placements(account, k)).collect()
    }

    /// Writes (creates or replaces) the rows of several licenses ([`LedgerTx::put_placements`]
    /// of each, which a ledger may write in fewer statements).
    fn put_many_placements(&mut self, account: &str, rows: &[(KeyId, Vec<u8>)]) -> Result<()> {
        rows.iter().try_for_each(|(k, entries)| self.put_placements(account, k, entries))
    }

    /// Calls `visit` with every placement row of `account`, in key-ID order.
    fn for_each_placement(&mut self, account: &str, visit: &mut dyn FnMut(&KeyId, &[u8]) -> Result<()>) -> Result<()>;

    /// Commits every write of the transaction.
    fn commit(self: Box<Self>) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_malformed_rows_are_refused() {
        let list = [
            Entry { device: [1; 16], reservation: PERMANENT },
            Entry { device: [2; 16], reservation: 127 },
            Entry { device: [3; 16], reservation: 128 },
            Entry { device: [4; 16], reservation: 2_000_000 },
            Entry { device: [5; 16], reservation: i64::MAX },
        ];
        let mut row = Vec::new();
        for e in &list {
            e.encode(&mut row);
        }
        assert_eq!(row.len(), 17 + 17 + 18 + 19 + 25);
        assert_eq!(entries(&row).unwrap(), list);
        assert!(entries(&[]).unwrap().is_empty());
        for bad in [&row[..16], &row[..33], &[[9u8; 16].as_slice(), &[0x80]].concat()[..]] {
            assert_eq!(entries(bad).unwrap_err().code(), ErrorCode::Storage);
        }
        // A number past i64, or longer than ten bytes.
        let too_big = [[9u8; 16].as_slice(), &[0xff; 9], &[0x01]].concat();
        assert_eq!(entries(&too_big).unwrap_err().code(), ErrorCode::Storage);
        let too_long = [[9u8; 16].as_slice(), &[0x80; 10], &[0x00]].concat();
        assert_eq!(entries(&too_long).unwrap_err().code(), ErrorCode::Storage);
    }
}
