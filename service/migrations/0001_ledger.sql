-- The ledger of issue 12's quota model (docs/deploy.md, "The schema"): the same tables as the
-- embedded SQLite ledger (core/src/service/sqlite_ledger.rs), in PostgreSQL types.

-- One row per account. A transaction that writes takes its account's row lock first
-- (SELECT ... FOR NO KEY UPDATE): the writes of one account are serialized across every
-- service instance.
CREATE TABLE accounts (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE
);

-- Devices: registered ones (with their public key) and the new identities of individualizing
-- restores (counting as the identity they replaced).
CREATE TABLE devices (
    device_id  bytea PRIMARY KEY CHECK (length(device_id) = 16),
    account    bigint NOT NULL,
    counts_as  bytea NOT NULL CHECK (length(counts_as) = 16),
    public_key bytea CHECK (public_key IS NULL OR length(public_key) = 32),
    since      bigint NOT NULL
);
CREATE INDEX devices_by_account ON devices (account);

-- One row per authorized restore; a retried request finds its row by (account, request_id).
CREATE TABLE reservations (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account    bigint NOT NULL,
    request_id bytea CHECK (request_id IS NULL OR length(request_id) = 16),
    archive_id bytea NOT NULL CHECK (length(archive_id) = 16),
    device_id  bytea NOT NULL CHECK (length(device_id) = 16),
    counted_as bytea NOT NULL CHECK (length(counted_as) = 16),
    replaces   bytea CHECK (replaces IS NULL OR length(replaces) = 16),
    licenses   bigint NOT NULL CHECK (licenses >= 0),
    key_digest bytea NOT NULL CHECK (length(key_digest) = 32),
    state      text NOT NULL CHECK (state IN ('pending', 'confirmed', 'released', 'expired')),
    created_at bigint NOT NULL,
    settled_at bigint,
    UNIQUE (account, request_id)
);
CREATE INDEX reservations_pending ON reservations (account, created_at) WHERE state = 'pending';

-- One row per (account, license): the devices it lives on, each tagged with the reservation
-- that placed it (core/src/service/ledger.rs, Entry::encode).
CREATE TABLE placements (
    account bigint NOT NULL,
    key_id  bytea NOT NULL CHECK (length(key_id) = 16),
    entries bytea NOT NULL CHECK (length(entries) >= 17),
    PRIMARY KEY (account, key_id)
);

-- The ledger's ID: protectors bind the keys they wrap to it (ProtectedFile, kind "ledger").
CREATE TABLE ledger_file (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    file_id    bytea NOT NULL CHECK (length(file_id) = 16),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The service keys: the current one (backups wrap their data key to it) and the ones it
-- replaced (archives made for them stay restorable). The seed is in clear only with the
-- "unprotected" protector; otherwise it is what the protector wrapped. The public key and
-- fingerprint are filled in by the first instance that opens the key.
CREATE TABLE service_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state       text NOT NULL CHECK (state IN ('current', 'retired')),
    protector   text NOT NULL,
    seed        bytea NOT NULL,
    public_key  bytea CHECK (public_key IS NULL OR length(public_key) = 32),
    fingerprint bytea CHECK (fingerprint IS NULL OR length(fingerprint) = 16),
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);
CREATE UNIQUE INDEX service_keys_one_current ON service_keys ((state)) WHERE state = 'current';
