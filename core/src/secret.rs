//! A file's secret seed at rest (a store's device seed, a ledger's service seed): one row of the
//! `secret` table, in clear for an unprotected file or wrapped by its [`Protector`].

use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::crypto::{self, KeyPair};
use crate::error::{Error, ErrorCode, Result};
use crate::file_kind::FileKind;
use crate::protector::{ProtectedFile, Protector};

/// The table, the same in a store and in a ledger. `protector` is NULL when `seed` is the seed
/// in clear, else the label of the protector that wrapped it (for messages); `key_fingerprint`
/// is the fingerprint of the public key the seed derives, checked after every unwrap.
pub(crate) const SECRET_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS secret (
    singleton       INTEGER PRIMARY KEY CHECK (singleton = 1),
    file_id         BLOB NOT NULL CHECK (length(file_id) = 16),
    protector       TEXT,
    seed            BLOB NOT NULL CHECK (protector IS NOT NULL OR length(seed) = 32),
    key_fingerprint BLOB NOT NULL CHECK (length(key_fingerprint) = 16)
);
";

/// The secret as the file holds it.
struct Row {
    file_id: [u8; 16],
    protector: Option<String>,
    seed: Zeroizing<Vec<u8>>,
    fingerprint: [u8; 16],
}

fn read_row(conn: &Connection) -> Result<Option<Row>> {
    let row = conn
        .query_row("SELECT file_id, protector, seed, key_fingerprint FROM secret WHERE singleton = 1", [], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })
        .optional()?;
    let Some((file_id, protector, seed, fingerprint)) = row else { return Ok(None) };
    let bad = || Error::new(ErrorCode::Storage, "the file's secret row is malformed");
    Ok(Some(Row {
        file_id: file_id.as_slice().try_into().map_err(|_| bad())?,
        protector,
        seed: Zeroizing::new(seed),
        fingerprint: fingerprint.as_slice().try_into().map_err(|_| bad())?,
    }))
}

/// The ID of the file whose secret `conn` holds (`None` before one is written).
pub(crate) fn file(conn: &Connection, kind: FileKind) -> Result<Option<ProtectedFile>> {
    Ok(read_row(conn)?.map(|r| ProtectedFile { kind, file_id: r.file_id }))
}

/// Opens the row's seed with `protector`; checks it derives the key the row names.
fn open_row(row: &Row, kind: FileKind, protector: &Protector, upgrading: bool) -> Result<KeyPair> {
    let file = ProtectedFile { kind, file_id: row.file_id };
    let pair = match (&row.protector, protector.is_unprotected()) {
        (None, true) => KeyPair::from_seed_slice(&row.seed)?,
        (None, false) if upgrading => KeyPair::from_seed_slice(&row.seed)?,
        (None, false) => {
            return Err(Error::new(
                ErrorCode::ProtectorMismatch,
                format!("this {}'s secret is no longer protected: it was replaced since it was opened", kind.name()),
            ));
        }
        (Some(label), true) => {
            return Err(Error::new(
                ErrorCode::ProtectorRequired,
                format!("this {} is protected by a key protector ({label}); open it with that protector", kind.name()),
            ));
        }
        (Some(_), false) => KeyPair::from_seed(*protector.unwrap(&row.seed, &file)?),
    };
    if pair.id() != row.fingerprint {
        return Err(Error::new(
            ErrorCode::ProtectorMismatch,
            format!(
                "the {} protector cannot unwrap this {}'s secret (it returned another key)",
                protector.label(),
                kind.name()
            ),
        ));
    }
    Ok(pair)
}

/// The file's key pair, read in the caller's transaction and opened with `protector`.
pub(crate) fn load(conn: &Connection, kind: FileKind, protector: &Protector) -> Result<KeyPair> {
    let row = read_row(conn)?
        .ok_or_else(|| Error::new(ErrorCode::Storage, format!("the {} has no secret key", kind.name())))?;
    open_row(&row, kind, protector, false)
}

/// At open, in the caller's write transaction: the file's key pair, with a fresh one written
/// when the file has none (`fresh()` makes it), and an unprotected secret wrapped in place when
/// a protector is given. Returns the pair and whether it is fresh.
pub(crate) fn open_or_create(
    tx: &Connection,
    kind: FileKind,
    protector: &Protector,
    fresh: impl FnOnce() -> KeyPair,
) -> Result<(KeyPair, bool)> {
    match read_row(tx)? {
        Some(row) => {
            let pair = open_row(&row, kind, protector, true)?;
            if row.protector.is_none() && !protector.is_unprotected() {
                let file = ProtectedFile { kind, file_id: row.file_id };
                let wrapped = protector.wrap(pair.seed(), &file)?.expect("a protector");
                // The wrapped form must open again before the clear seed is overwritten.
                if *protector.unwrap(&wrapped, &file)? != *pair.seed() {
                    return Err(Error::new(
                        ErrorCode::ProtectorMismatch,
                        format!("the {} protector does not give back what it wrapped", protector.label()),
                    ));
                }
                tx.execute(
                    "UPDATE secret SET protector = ?1, seed = ?2 WHERE singleton = 1",
                    params![protector.label(), wrapped],
                )?;
            }
            Ok((pair, false))
        }
        None => {
            let pair = fresh();
            let file = ProtectedFile { kind, file_id: crypto::random_array() };
            insert(tx, &file, &pair, protector)?;
            Ok((pair, true))
        }
    }
}

/// Writes the secret of a file that has none (a new file, or one migrated from the layout that
/// kept its seed elsewhere).
pub(crate) fn insert(tx: &Connection, file: &ProtectedFile, pair: &KeyPair, protector: &Protector) -> Result<()> {
    let wrapped = protector.wrap(pair.seed(), file)?;
    let label = (!protector.is_unprotected()).then(|| protector.label());
    let seed: &[u8] = match &wrapped {
        Some(w) => w,
        None => pair.seed(),
    };
    tx.execute(
        "INSERT INTO secret (singleton, file_id, protector, seed, key_fingerprint) VALUES (1, ?1, ?2, ?3, ?4)",
        params![file.file_id.as_slice(), label, seed, pair.id().as_slice()],
    )?;
    Ok(())
}

/// A new secret for a file, made ready (wrapped) before the transaction that writes it, so no
/// protector is called while the file is locked.
pub(crate) struct Replacement {
    protector: Option<String>,
    seed: Zeroizing<Vec<u8>>,
    fingerprint: [u8; 16],
}

impl Replacement {
    /// Wraps `pair`'s seed for `file` with `protector`.
    pub(crate) fn new(file: &ProtectedFile, pair: &KeyPair, protector: &Protector) -> Result<Self> {
        let seed = match protector.wrap(pair.seed(), file)? {
            Some(wrapped) => Zeroizing::new(wrapped),
            None => Zeroizing::new(pair.seed().to_vec()),
        };
        Ok(Replacement {
            protector: (!protector.is_unprotected()).then(|| protector.label()),
            seed,
            fingerprint: pair.id(),
        })
    }

    /// Writes it, in the caller's transaction, over the file's secret.
    pub(crate) fn write(&self, tx: &Connection) -> Result<()> {
        let n = tx.execute(
            "UPDATE secret SET protector = ?1, seed = ?2, key_fingerprint = ?3 WHERE singleton = 1",
            params![self.protector, self.seed.as_slice(), self.fingerprint.as_slice()],
        )?;
        if n != 1 {
            return Err(Error::new(ErrorCode::Storage, "the file has no secret key to replace"));
        }
        Ok(())
    }
}

/// The secrets a file held before its current one (a ledger's earlier service keys, kept so the
/// archives made for them stay restorable), each as the `secret` row held it.
pub(crate) const RETIRED_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS retired_secrets (
    key_fingerprint BLOB PRIMARY KEY CHECK (length(key_fingerprint) = 16),
    protector       TEXT,
    seed            BLOB NOT NULL CHECK (protector IS NOT NULL OR length(seed) = 32),
    retired         INTEGER NOT NULL UNIQUE,
    retired_at      INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Moves the file's current secret, as it is stored, to `retired_secrets` and writes
/// `replacement` in its place, in the caller's transaction.
pub(crate) fn retire(tx: &Connection, replacement: &Replacement, now: i64) -> Result<()> {
    let moved = tx.execute(
        "INSERT INTO retired_secrets (key_fingerprint, protector, seed, retired, retired_at) \
         SELECT key_fingerprint, protector, seed, (SELECT coalesce(max(retired), 0) + 1 FROM retired_secrets), ?1 \
         FROM secret WHERE singleton = 1",
        [now],
    )?;
    if moved != 1 {
        return Err(Error::new(ErrorCode::Storage, "the file has no secret key to retire"));
    }
    replacement.write(tx)
}

/// The retired secrets' key pairs, newest first, opened with `protector` (the current secret's
/// file ID binds them, like it); in a write transaction, unprotected ones are wrapped in place
/// when a protector is given, like the current secret.
pub(crate) fn open_retired(tx: &Connection, kind: FileKind, protector: &Protector) -> Result<Vec<KeyPair>> {
    let Some(file) = file(tx, kind)? else { return Ok(Vec::new()) };
    let rows: Vec<(Vec<u8>, Option<String>, Vec<u8>)> = tx
        .prepare("SELECT key_fingerprint, protector, seed FROM retired_secrets ORDER BY retired DESC")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let bad = || Error::new(ErrorCode::Storage, "a retired secret row is malformed");
    let mut pairs = Vec::with_capacity(rows.len());
    for (fingerprint, label, seed) in rows {
        let row = Row {
            file_id: file.file_id,
            protector: label,
            seed: Zeroizing::new(seed),
            fingerprint: fingerprint.as_slice().try_into().map_err(|_| bad())?,
        };
        let pair = open_row(&row, kind, protector, true)?;
        if row.protector.is_none() && !protector.is_unprotected() {
            let wrapped = protector.wrap(pair.seed(), &file)?.expect("a protector");
            if *protector.unwrap(&wrapped, &file)? != *pair.seed() {
                return Err(Error::new(
                    ErrorCode::ProtectorMismatch,
                    format!("the {} protector does not give back what it wrapped", protector.label()),
                ));
            }
            tx.execute(
                "UPDATE retired_secrets SET protector = ?1, seed = ?2 WHERE key_fingerprint = ?3",
                params![protector.label(), wrapped, row.fingerprint.as_slice()],
            )?;
        }
        pairs.push(pair);
    }
    Ok(pairs)
}
