-- Cross-device sync: per caller (`owner`, the token's subject), named datasets of key-value records.
-- sync_owners is one row per caller: its version changes with every change to any of the caller's
-- datasets, so the cached dataset list (GET /v1/datasets) has an ETag that changes exactly then.
CREATE TABLE IF NOT EXISTS sync_owners (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A dataset: its sync count (that of its latest change) and what its live records hold, for the limits.
CREATE TABLE IF NOT EXISTS sync_datasets (
    owner VARCHAR(255) NOT NULL,
    name VARCHAR(128) NOT NULL,
    sync_count BIGINT NOT NULL DEFAULT 0,
    records INTEGER NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL,
    PRIMARY KEY (owner, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Records, keyed by the SHA-256 of the key (keys run to 1024 characters, longer than an index key);
-- a deleted record stays as a tombstone (deleted = 1, value NULL) so later pulls see the deletion.
-- (owner, dataset, sync_count) serves "changes since".
CREATE TABLE IF NOT EXISTS sync_records (
    owner VARCHAR(255) NOT NULL,
    dataset VARCHAR(128) NOT NULL,
    key_hash CHAR(64) NOT NULL,
    record_key VARCHAR(1024) NOT NULL,
    value MEDIUMTEXT NULL,
    deleted TINYINT NOT NULL DEFAULT 0,
    sync_count BIGINT NOT NULL,
    last_modified VARCHAR(32) NOT NULL,
    PRIMARY KEY (owner, dataset, key_hash),
    KEY sync_records_changes (owner, dataset, sync_count)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
