-- Cross-device sync: per caller (`owner`, the token's subject), named datasets of key-value records.
-- sync_owners is one row per caller: its version changes with every change to any of the caller's
-- datasets, so the cached dataset list (GET /v1/datasets) has an ETag that changes exactly then.
CREATE TABLE IF NOT EXISTS sync_owners (
    id TEXT NOT NULL PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);

-- A dataset: its sync count (that of its latest change) and what its live records hold, for the limits.
CREATE TABLE IF NOT EXISTS sync_datasets (
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    sync_count INTEGER NOT NULL DEFAULT 0,
    records INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (owner, name)
);

-- Records, keyed by the SHA-256 of the key; a deleted record stays as a tombstone (deleted = 1,
-- value NULL) so later pulls see the deletion. (owner, dataset, sync_count) serves "changes since".
CREATE TABLE IF NOT EXISTS sync_records (
    owner TEXT NOT NULL,
    dataset TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    record_key TEXT NOT NULL,
    value TEXT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    sync_count INTEGER NOT NULL,
    last_modified TEXT NOT NULL,
    PRIMARY KEY (owner, dataset, key_hash)
);
CREATE INDEX IF NOT EXISTS sync_records_changes ON sync_records (owner, dataset, sync_count);
