-- One row per uploader: locked (SELECT ... FOR UPDATE) by every POST /v1/media of that owner, so
-- that concurrent creations are counted one after the other; and the owner's hourly window.
CREATE TABLE IF NOT EXISTS media_quotas (
    owner VARCHAR(255) NOT NULL PRIMARY KEY,
    window_start BIGINT NOT NULL,
    window_count INTEGER NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- The quota's count of an owner's uploads in progress and bytes, read from the index alone.
ALTER TABLE media ADD INDEX media_owner_status_size (owner, status, size);
