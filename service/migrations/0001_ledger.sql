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

-- The service keys the instances have served with: public metadata only (the private seeds
-- stay in each instance's key files).
CREATE TABLE service_keys (
    fingerprint bytea PRIMARY KEY CHECK (length(fingerprint) = 16),
    public_key  bytea NOT NULL CHECK (length(public_key) = 32),
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    last_role   text NOT NULL CHECK (last_role IN ('current', 'previous'))
);
