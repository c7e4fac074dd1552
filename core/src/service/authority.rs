//! The service's logic, independent of where its ledger lives: who made an archive, whether the
//! key IDs a device sends are the archive's, the quota, reservations and their settlement. One
//! [`Authority`] serves any number of accounts; each call names the caller's account (the
//! embedded service has one; a networked service takes it from the caller's credentials).

use std::collections::HashMap;

use zeroize::Zeroizing;

use super::ledger::{DeviceRecord, Entry, Ledger, LedgerTx, PERMANENT, Reservation, ReservationRef, ReservationState};
use super::{
    DeviceRegistration, KeyIdStream, LedgerAudit, Quota, REGISTRATION_INFO, Refusal, RequestId, RestoreGrant,
    RestoreRequest, SUCCESSION_INFO, ServiceError, ServicePolicy, Settlement, grant_aad, registration_aad,
    succession_aad,
};
use crate::archive::{self, ARCHIVE_KEY_INFO, AuthenticatedHeader, GRANT_INFO, KeyTally, V1_ARCHIVE_KEY_INFO};
use crate::clock::now_secs;
use crate::crypto::{self, KeyPair, PUBLIC_KEY_LEN};
use crate::error::{Error, ErrorCode, Result};
use crate::key_id::KeyId;

/// Fills `chunk` with the next [`CHUNK`] key IDs of `key_ids`, adding them to `tally`; false
/// once the stream has no more.
fn next_chunk(key_ids: &mut KeyIdStream<'_>, tally: &mut KeyTally, chunk: &mut Vec<KeyId>) -> Result<bool> {
    chunk.clear();
    for kid in key_ids.take(CHUNK) {
        let kid = kid?;
        tally.add(kid.as_bytes());
        chunk.push(kid);
    }
    Ok(!chunk.is_empty())
}

/// Key IDs handled together (one multi-row insert for licenses the ledger has not seen; the
/// SQLite ledger's statements take as many).
const CHUNK: usize = 1024;

/// The License Management Service's logic over a ledger `L`.
pub struct Authority<L: Ledger> {
    ledger: L,
    /// The service's keys, the current one first.
    keys: Vec<KeyPair>,
    policy: ServicePolicy,
}

impl<L: Ledger> std::fmt::Debug for Authority<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// Whether a reservation's placements count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Live {
    /// Released: they do not.
    Dead,
    /// Pending: they count for now.
    Pending,
    /// Confirmed, expired or permanent: they count for good.
    Settled,
}

/// The liveness of the reservations a call meets, each looked up once.
struct Liveness {
    ttl: u64,
    now: i64,
    known: HashMap<ReservationRef, Live>,
}

impl Liveness {
    fn new(policy: &ServicePolicy, now: i64) -> Self {
        Liveness { ttl: policy.reservation_ttl_secs, now, known: HashMap::new() }
    }

    fn of_state(&self, state: ReservationState, created_at: i64) -> Live {
        match state {
            ReservationState::Released => Live::Dead,
            ReservationState::Confirmed | ReservationState::Expired => Live::Settled,
            ReservationState::Pending if self.expired(created_at) => Live::Settled,
            ReservationState::Pending => Live::Pending,
        }
    }

    fn expired(&self, created_at: i64) -> bool {
        created_at.saturating_add(i64::try_from(self.ttl).unwrap_or(i64::MAX)) <= self.now
    }

    fn of(&mut self, tx: &mut dyn LedgerTx, id: ReservationRef) -> Result<Live> {
        if id == PERMANENT {
            return Ok(Live::Settled);
        }
        if let Some(live) = self.known.get(&id) {
            return Ok(*live);
        }
        // A reservation the ledger no longer has counts (the ledger never deletes them).
        let live = match tx.reservation(id)? {
            Some(r) => self.of_state(r.state, r.created_at),
            None => Live::Settled,
        };
        self.known.insert(id, live);
        Ok(live)
    }
}

/// What one license's placements say about a restore from `origin` onto `device`.
struct Decision {
    /// Distinct devices the license lives on (the origin included).
    count: u32,
    /// Whether `device` is one of them.
    has_device: bool,
    /// The row to write for the reservation: `None` when nothing changes.
    rewrite: Option<Vec<u8>>,
}

/// Who a restore is about, as the ledger counts them.
struct Parties {
    /// The identity the archive's origin device counts as.
    origin: [u8; 16],
    /// The identity the restoring device counts as.
    device: [u8; 16],
}

/// A request whose archive, device and succession proof checked out.
struct Checked {
    header: AuthenticatedHeader,
    data_key: Zeroizing<[u8; 32]>,
    replaces: Option<[u8; 16]>,
}

fn refused(code: ErrorCode, message: impl Into<String>, url: &str) -> ServiceError {
    ServiceError::Refused(Refusal { code, message: message.into(), url: url.to_string() })
}

impl<L: Ledger> Authority<L> {
    /// The logic over `ledger`, with the ledger's service key and `policy`.
    pub fn new(ledger: L, policy: ServicePolicy) -> Result<Self> {
        if policy.max_devices == 0 {
            return Err(Error::invalid("max_devices must be at least 1"));
        }
        let keys: Vec<KeyPair> = ledger.service_seeds()?.iter().map(|s| KeyPair::from_seed(**s)).collect();
        if keys.is_empty() {
            return Err(Error::new(ErrorCode::Storage, "the service ledger holds no service key"));
        }
        Ok(Authority { keys, ledger, policy })
    }

    /// The ledger.
    pub fn ledger(&self) -> &L {
        &self.ledger
    }

    /// The policy in force.
    pub fn policy(&self) -> &ServicePolicy {
        &self.policy
    }

    /// The service's current public key: backups wrap their data key to it.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.keys[0].public_bytes()
    }

    /// Every public key the service holds, the current one first, then the keys it replaced
    /// (archives made for them are still restored).
    pub fn public_keys(&self) -> Vec<[u8; PUBLIC_KEY_LEN]> {
        self.keys.iter().map(KeyPair::public_bytes).collect()
    }

    /// The key an archive was made for, by the fingerprint its header records.
    fn key_for(&self, fingerprint: &[u8; 16]) -> Option<&KeyPair> {
        self.keys.iter().find(|k| k.id() == *fingerprint)
    }

    /// Checks a proof of possession sealed to any of the service's keys (a device seals to the
    /// key that was current when it asked; a rotation in between does not void the proof).
    fn check_proof_any(&self, public_key: &[u8; 32], proof: &crypto::WrappedKey, info: &[u8], aad: &[u8]) -> bool {
        self.keys.iter().any(|k| k.check_proof(public_key, proof, info, aad).is_ok())
    }

    /// Registers a device with `account` after checking its proof of possession; idempotent.
    /// A device registered with another account is refused (`FOREIGN_DEVICE`).
    pub fn register_device(&self, account: &str, registration: &DeviceRegistration) -> Result<()> {
        check_device_key(&registration.device_id, &registration.public_key)?;
        let signed = self.keys.iter().any(|k| {
            let aad = registration_aad(&k.id(), &registration.device_id, &registration.public_key);
            k.check_proof(&registration.public_key, &registration.proof, REGISTRATION_INFO, &aad).is_ok()
        });
        if !signed {
            return Err(Error::new(ErrorCode::WrongKey, "the registration is not signed by the device it names"));
        }
        let foreign = || {
            Error::new(
                ErrorCode::ForeignDevice,
                "this device is registered with another account of this License Management Service",
            )
        };
        let mut tx = self.ledger.write()?;
        match tx.device(&registration.device_id)? {
            Some(d) if d.account != account => Err(foreign()),
            Some(_) => Ok(()),
            None => {
                let inserted = tx.insert_device(&DeviceRecord {
                    device_id: registration.device_id,
                    account: account.to_string(),
                    counts_as: registration.device_id,
                    public_key: Some(registration.public_key),
                    since: now_secs(),
                })?;
                if inserted {
                    return tx.commit();
                }
                // Another transaction recorded the device between the read and the insert (a
                // ledger whose writers of different accounts run at once): its record decides.
                match tx.device(&registration.device_id)? {
                    Some(d) if d.account == account => Ok(()),
                    _ => Err(foreign()),
                }
            }
        }
    }

    /// Recovers an archive's data key (the service holds the private key it is wrapped to), for
    /// audit and recovery tools; restores go through [`Authority::authorize_restore`].
    pub fn unwrap_data_key(&self, header: &archive::ArchiveHeader) -> Result<Zeroizing<[u8; 32]>> {
        let auth = archive::parse_authenticated_header(&header.authenticated)?;
        self.open_data_key(&auth, &header.authenticated, &header.wrapped_key)
    }

    /// Checks the service fingerprint and opens the data key as the archive's version requires:
    /// version 2 only as sealed by its origin device (HPKE auth mode).
    fn open_data_key(
        &self,
        header: &AuthenticatedHeader,
        aad: &[u8],
        wrapped: &crypto::WrappedKey,
    ) -> Result<Zeroizing<[u8; 32]>> {
        let Some(keys) = self.key_for(&header.service_key_fingerprint) else {
            return Err(Error::new(ErrorCode::WrongKey, "the archive was made for another License Management Service"));
        };
        let key = match &header.origin_public_key {
            Some(origin) => keys.unwrap_from(origin, wrapped, ARCHIVE_KEY_INFO, aad).map_err(|_| {
                Error::corrupt(
                    "the archive's wrapped key does not open: its header was altered, or it was not made by the \
                     device it names",
                )
            })?,
            None => keys
                .unwrap(wrapped, V1_ARCHIVE_KEY_INFO, aad)
                .map_err(|_| Error::corrupt("the archive's wrapped key does not open: the header was altered"))?,
        };
        let key: [u8; 32] =
            key.as_slice().try_into().map_err(|_| Error::corrupt("the archive's data key has the wrong length"))?;
        Ok(Zeroizing::new(key))
    }

    /// The checks that need no ledger: the archive (service, attribution, version policy), the
    /// restoring device's key, the license count, the succession proof.
    fn check_request(&self, request: &RestoreRequest) -> Result<Checked, ServiceError> {
        let header = archive::parse_authenticated_header(&request.header)?;
        if header.version == 1 && !self.policy.accept_v1_archives {
            if self.key_for(&header.service_key_fingerprint).is_none() {
                return Err(Error::new(ErrorCode::WrongKey, "the archive was made for another service").into());
            }
            return Err(refused(
                ErrorCode::UnsupportedVersion,
                "this License Management Service no longer restores version-1 archives: back up again with a \
                 current version",
                &self.policy.refusal_url,
            ));
        }
        let data_key = self.open_data_key(&header, &request.header, &request.wrapped_key)?;
        check_device_key(&request.device_id, &request.device_public_key)?;
        if let Some(c) = &header.commitment {
            if request.licenses != c.licenses {
                return Err(Error::corrupt(format!(
                    "the request counts {} licenses, the archive commits to {}",
                    request.licenses, c.licenses
                ))
                .into());
            }
        }
        let replaces = match &request.replaces {
            None => None,
            Some(old) => {
                check_device_key(&old.device_id, &old.public_key)?;
                if old.device_id == request.device_id {
                    return Err(Error::invalid("an identity cannot replace itself").into());
                }
                let aad = succession_aad(&request.request_id, &header.archive_id, &request.device_id, &old.device_id);
                if !self.check_proof_any(&old.public_key, &old.proof, SUCCESSION_INFO, &aad) {
                    return Err(Error::new(
                        ErrorCode::WrongKey,
                        "the restoring device does not hold the identity it replaces",
                    )
                    .into());
                }
                Some(old.device_id)
            }
        };
        Ok(Checked { header, data_key, replaces })
    }

    /// The identities the ledger counts the origin and the restoring device as, in `account`;
    /// `FOREIGN_DEVICE` when the archive (or the identity being replaced) belongs to another
    /// account.
    fn parties(
        &self,
        tx: &mut dyn LedgerTx,
        account: &str,
        checked: &Checked,
        request: &RestoreRequest,
    ) -> Result<Parties, ServiceError> {
        let origin = match tx.device(&checked.header.origin_device)? {
            Some(d) if d.account != account => {
                return Err(refused(
                    ErrorCode::ForeignDevice,
                    "this archive was made on a device of another account",
                    &self.policy.refusal_url,
                ));
            }
            Some(d) => d.counts_as,
            None => checked.header.origin_device,
        };
        let device = match checked.replaces {
            Some(old) => match tx.device(&old)? {
                Some(d) if d.account != account => {
                    return Err(refused(
                        ErrorCode::ForeignDevice,
                        "the identity this device replaces belongs to another account",
                        &self.policy.refusal_url,
                    ));
                }
                Some(d) => d.counts_as,
                None => old,
            },
            None => match tx.device(&request.device_id)? {
                Some(d) if d.account == account => d.counts_as,
                _ => request.device_id,
            },
        };
        Ok(Parties { origin, device })
    }

    /// What the row `row` of one license says about placing it on `parties.device` for the
    /// reservation `this` (`None`: a query that writes nothing).
    fn decide(
        &self,
        tx: &mut dyn LedgerTx,
        live: &mut Liveness,
        row: Option<&[u8]>,
        parties: &Parties,
        this: Option<ReservationRef>,
    ) -> Result<Decision> {
        // (device, counts for good or placed by this reservation)
        let mut devices: Vec<([u8; 16], bool)> = Vec::with_capacity(4);
        let mut kept: Vec<Entry> = Vec::new();
        let mut dropped = false;
        if let Some(row) = row {
            for entry in super::ledger::entries(row)? {
                let state = live.of(tx, entry.reservation)?;
                if state == Live::Dead {
                    dropped = true;
                    continue;
                }
                let firm = state == Live::Settled || Some(entry.reservation) == this;
                match devices.iter_mut().find(|(d, _)| *d == entry.device) {
                    Some((_, f)) => *f |= firm,
                    None => devices.push((entry.device, firm)),
                }
                kept.push(entry);
            }
        }
        let listed = |d: &[u8; 16]| devices.iter().any(|(x, _)| x == d);
        let count = devices.len() as u32 + u32::from(!listed(&parties.origin));
        let has_device = listed(&parties.device) || parties.device == parties.origin;
        let mut rewrite = None;
        if let Some(this) = this {
            let allowed = has_device || count < self.policy.max_devices;
            let mut add: Vec<[u8; 16]> = Vec::with_capacity(2);
            for d in [parties.origin, parties.device] {
                if !add.contains(&d) && !devices.iter().any(|(x, firm)| *x == d && *firm) {
                    add.push(d);
                }
            }
            if allowed && (dropped || !add.is_empty()) {
                let mut out = Vec::with_capacity((kept.len() + add.len()) * super::ledger::MAX_ENTRY_LEN);
                for e in &kept {
                    e.encode(&mut out);
                }
                for d in add {
                    Entry { device: d, reservation: this }.encode(&mut out);
                }
                rewrite = Some(out);
            }
        }
        Ok(Decision { count, has_device, rewrite })
    }

    /// Marks the reservations of `account` left pending past the policy's limit as expired
    /// (they count, for good), recording the successions they carry.
    fn expire(&self, tx: &mut dyn LedgerTx, account: &str, now: i64) -> Result<()> {
        let ttl = i64::try_from(self.policy.reservation_ttl_secs).unwrap_or(i64::MAX);
        for id in tx.pending_before(account, now.saturating_sub(ttl))? {
            tx.set_reservation_state(id, ReservationState::Expired, now)?;
            if let Some(r) = tx.reservation(id)? {
                record_succession(tx, &r, now)?;
            }
        }
        Ok(())
    }

    /// Authorizes a restore for `account`: checks the archive (made for this service, by the
    /// device it names, of this account or of no account), the restoring device and its
    /// succession proof; streams the key IDs, checking each license's quota and reserving its
    /// placement; refuses (and records nothing) when the stream is not what the archive commits
    /// to or a license is over the limit; then grants the data key, wrapped to the device.
    /// Retrying a request (same ID, same request) returns a grant for the same reservation.
    pub fn authorize_restore(
        &self,
        account: &str,
        request: &RestoreRequest,
        key_ids: &mut KeyIdStream<'_>,
    ) -> Result<RestoreGrant, ServiceError> {
        let checked = self.check_request(request)?;
        let now = now_secs();
        let mut tx = self.ledger.write()?;
        self.expire(tx.as_mut(), account, now)?;
        let parties = self.parties(tx.as_mut(), account, &checked, request)?;
        if let Some(existing) = tx.reservation_by_request(account, &request.request_id)? {
            return self.retry(tx, existing, &checked, request, key_ids, now);
        }
        let this = tx.insert_reservation(&Reservation {
            id: PERMANENT,
            account: account.to_string(),
            request_id: Some(request.request_id),
            archive_id: checked.header.archive_id,
            device_id: request.device_id,
            counted_as: parties.device,
            replaces: checked.replaces,
            licenses: request.licenses,
            key_digest: [0; 32],
            state: ReservationState::Pending,
            created_at: now,
            settled_at: None,
        })?;
        let mut live = Liveness::new(&self.policy, now);
        live.known.insert(this, Live::Pending);
        // A license the ledger has not seen lives, once placed, on the origin and this device.
        let fresh_allowed = parties.origin == parties.device || self.policy.max_devices >= 2;
        let mut fresh_row = Vec::new();
        Entry { device: parties.origin, reservation: this }.encode(&mut fresh_row);
        if parties.device != parties.origin {
            Entry { device: parties.device, reservation: this }.encode(&mut fresh_row);
        }
        let (mut tally, mut over) = (KeyTally::default(), 0u64);
        let mut chunk: Vec<KeyId> = Vec::with_capacity(CHUNK);
        // Whether the last chunk's licenses were all new to the ledger (the next one likely is).
        let mut all_new = true;
        while next_chunk(key_ids, &mut tally, &mut chunk)? {
            // The common case, licenses the ledger has not seen: one statement for many. When
            // some were known, each is checked (the rows just written check out as they are);
            // after such a chunk the next is read first (an archive restored before).
            if all_new
                && fresh_allowed
                && over == 0
                && tx.insert_placements(account, &chunk, &fresh_row)? == chunk.len()
            {
                continue;
            }
            let rows = tx.placements_of(account, &chunk)?;
            all_new = rows.iter().all(Option::is_none);
            let mut rewrites = Vec::new();
            for (kid, row) in chunk.iter().zip(rows) {
                let d = self.decide(tx.as_mut(), &mut live, row.as_deref(), &parties, Some(this))?;
                if !d.has_device && d.count >= self.policy.max_devices {
                    over += 1;
                } else if let (0, Some(entries)) = (over, d.rewrite) {
                    rewrites.push((*kid, entries));
                }
            }
            if over == 0 {
                tx.put_many_placements(account, &rewrites)?;
            }
        }
        check_stream(&tally, &checked.header, request)?;
        if over > 0 {
            // Dropping the transaction rolls back the reservation and every placement.
            return Err(refused(
                ErrorCode::RestoreLimitExceeded,
                format!(
                    "{over} of {} licenses already live on the maximum of {} devices",
                    tally.licenses(),
                    self.policy.max_devices
                ),
                &self.policy.refusal_url,
            ));
        }
        tx.set_reservation_digest(this, &tally.digest())?;
        tx.commit()?;
        self.grant(&checked, request)
    }

    /// Answers a retried request from its reservation, once its key IDs checked out again.
    fn retry(
        &self,
        tx: Box<dyn LedgerTx + '_>,
        existing: Reservation,
        checked: &Checked,
        request: &RestoreRequest,
        key_ids: &mut KeyIdStream<'_>,
        now: i64,
    ) -> Result<RestoreGrant, ServiceError> {
        drop(tx);
        if existing.archive_id != checked.header.archive_id
            || existing.device_id != request.device_id
            || existing.replaces != checked.replaces
            || existing.licenses != request.licenses
        {
            return Err(Error::invalid("this request ID was already used for another request").into());
        }
        let mut tally = KeyTally::default();
        for kid in key_ids {
            tally.add(kid?.as_bytes());
        }
        check_stream(&tally, &checked.header, request)?;
        if tally.digest() != existing.key_digest {
            return Err(Error::invalid("this request ID was already used for other licenses").into());
        }
        if Liveness::new(&self.policy, now).of_state(existing.state, existing.created_at) != Live::Pending {
            return Err(Error::invalid("the reservation of this request was already settled").into());
        }
        self.grant(checked, request)
    }

    fn grant(&self, checked: &Checked, request: &RestoreRequest) -> Result<RestoreGrant, ServiceError> {
        let aad = grant_aad(&checked.header.archive_id, &request.device_id, &request.request_id);
        let wrapped_key = crypto::wrap_to(&request.device_public_key, checked.data_key.as_slice(), GRANT_INFO, &aad)?;
        Ok(RestoreGrant { wrapped_key })
    }

    /// Confirms the reservation of `request_id` in `account`: the restore landed. Records the
    /// succession of an individualizing restore, so the new identity counts as the old one for
    /// every license from now on. Idempotent; returns how the reservation stands.
    pub fn confirm_restore(&self, account: &str, request_id: &RequestId) -> Result<Settlement> {
        let now = now_secs();
        let mut tx = self.ledger.write()?;
        self.expire(tx.as_mut(), account, now)?;
        let Some(r) = tx.reservation_by_request(account, request_id)? else { return Ok(Settlement::Unknown) };
        let settled = match r.state {
            ReservationState::Pending => {
                tx.set_reservation_state(r.id, ReservationState::Confirmed, now)?;
                record_succession(tx.as_mut(), &r, now)?;
                Settlement::Confirmed
            }
            ReservationState::Confirmed | ReservationState::Expired => Settlement::Confirmed,
            ReservationState::Released => Settlement::Released,
        };
        tx.commit()?;
        Ok(settled)
    }

    /// Releases the reservation of `request_id` in `account`: nothing was applied, so nothing
    /// counts. A reservation past the policy's limit stays counted. Idempotent; returns how the
    /// reservation stands.
    pub fn release_restore(&self, account: &str, request_id: &RequestId) -> Result<Settlement> {
        let now = now_secs();
        let mut tx = self.ledger.write()?;
        self.expire(tx.as_mut(), account, now)?;
        let Some(r) = tx.reservation_by_request(account, request_id)? else { return Ok(Settlement::Unknown) };
        let settled = match r.state {
            ReservationState::Pending => {
                tx.set_reservation_state(r.id, ReservationState::Released, now)?;
                Settlement::Released
            }
            ReservationState::Confirmed | ReservationState::Expired => Settlement::Confirmed,
            ReservationState::Released => Settlement::Released,
        };
        tx.commit()?;
        Ok(settled)
    }

    /// Whether [`Authority::authorize_restore`] would grant this request now, and the quota
    /// behind the answer, from the same checks; nothing is written. Refusals other than the
    /// limit (another account's archive, version 1 refused) are errors with their code.
    pub fn quota(&self, account: &str, request: &RestoreRequest, key_ids: &mut KeyIdStream<'_>) -> Result<Quota> {
        let checked = self.check_request(request).map_err(ServiceError::into_error)?;
        let now = now_secs();
        let mut tx = self.ledger.read()?;
        let parties = self.parties(tx.as_mut(), account, &checked, request).map_err(ServiceError::into_error)?;
        let mut live = Liveness::new(&self.policy, now);
        let max = self.policy.max_devices;
        let (mut remaining, mut counted, mut allowed) = (max, true, true);
        let mut tally = KeyTally::default();
        let mut chunk: Vec<KeyId> = Vec::with_capacity(CHUNK);
        while next_chunk(key_ids, &mut tally, &mut chunk)? {
            for row in tx.placements_of(account, &chunk)? {
                let d = self.decide(tx.as_mut(), &mut live, row.as_deref(), &parties, None)?;
                remaining = remaining.min(max.saturating_sub(d.count));
                counted &= d.has_device;
                allowed &= d.has_device || d.count < max;
            }
        }
        check_stream(&tally, &checked.header, request)?;
        let licenses = tally.licenses();
        Ok(Quota {
            licenses,
            max_devices: max,
            restores_remaining: remaining,
            device_already_counted: counted && licenses > 0,
            allowed,
        })
    }

    /// What the ledger holds for `account` (a full pass over its placements).
    pub fn audit(&self, account: &str) -> Result<LedgerAudit> {
        let now = now_secs();
        let mut tx = self.ledger.read()?;
        let mut live = Liveness::new(&self.policy, now);
        let mut audit = LedgerAudit::default();
        for r in tx.reservations(account)? {
            let state = live.of_state(r.state, r.created_at);
            live.known.insert(r.id, state);
            match (r.state, state) {
                (ReservationState::Pending, Live::Pending) => audit.pending += 1,
                (ReservationState::Pending, _) | (ReservationState::Expired, _) => audit.expired += 1,
                (ReservationState::Confirmed, _) => audit.confirmed += 1,
                (ReservationState::Released, _) => audit.released += 1,
            }
        }
        audit.devices = tx.device_count(account)?;
        let known = live.known;
        tx.for_each_placement(account, &mut |_, row| {
            let devices = live_devices(&known, row)?;
            audit.licenses += u64::from(!devices.is_empty());
            audit.placements += devices.len() as u64;
            Ok(())
        })?;
        Ok(audit)
    }

    /// The devices (as the identities they count as) a license lives on in `account`, sorted.
    pub fn devices_of(&self, account: &str, key_id: &KeyId) -> Result<Vec<[u8; 16]>> {
        let now = now_secs();
        let mut tx = self.ledger.read()?;
        let Some(row) = tx.placements(account, key_id)? else { return Ok(Vec::new()) };
        let mut live = Liveness::new(&self.policy, now);
        for e in super::ledger::entries(&row)? {
            live.of(tx.as_mut(), e.reservation)?;
        }
        live_devices(&live.known, &row)
    }
}

/// The distinct devices of a placement row whose reservations count, sorted; `known` holds the
/// liveness of every reservation the row names (a missing one counts).
fn live_devices(known: &HashMap<ReservationRef, Live>, row: &[u8]) -> Result<Vec<[u8; 16]>> {
    let mut devices: Vec<[u8; 16]> = super::ledger::entries(row)?
        .into_iter()
        .filter(|e| {
            e.reservation == PERMANENT || known.get(&e.reservation).copied().unwrap_or(Live::Settled) != Live::Dead
        })
        .map(|e| e.device)
        .collect();
    devices.sort_unstable();
    devices.dedup();
    Ok(devices)
}

/// Records that an individualizing restore's new identity counts as the one it replaced.
fn record_succession(tx: &mut dyn LedgerTx, r: &Reservation, now: i64) -> Result<()> {
    if r.replaces.is_some() {
        tx.insert_device(&DeviceRecord {
            device_id: r.device_id,
            account: r.account.clone(),
            counts_as: r.counted_as,
            public_key: None,
            since: now,
        })?;
    }
    Ok(())
}

/// `INVALID_ARGUMENT` unless `public_key` is a usable X25519 key whose fingerprint is `device_id`.
fn check_device_key(device_id: &[u8; 16], public_key: &[u8; PUBLIC_KEY_LEN]) -> Result<()> {
    if !crypto::is_usable_public_key(public_key) {
        return Err(Error::invalid("a device key of small order identifies nobody"));
    }
    if crypto::fingerprint(public_key) != *device_id {
        return Err(Error::invalid("the device ID does not match the device public key"));
    }
    Ok(())
}

/// `ARCHIVE_CORRUPT` unless the key IDs received are what the request announced and, for a
/// version-2 archive, what its header commits to.
fn check_stream(tally: &KeyTally, header: &AuthenticatedHeader, request: &RestoreRequest) -> Result<()> {
    if tally.licenses() != request.licenses {
        return Err(Error::corrupt(format!(
            "{} key IDs were sent for a request of {} licenses",
            tally.licenses(),
            request.licenses
        )));
    }
    if let Some(c) = &header.commitment {
        if !tally.matches_commitment(c) {
            return Err(Error::corrupt("the key IDs sent are not those the archive commits to"));
        }
    }
    Ok(())
}
