-- One row per uploader: every POST /v1/media of that owner runs in a write transaction that reads
-- and updates it, so concurrent creations are counted one after the other; and the hourly window.
CREATE TABLE IF NOT EXISTS media_quotas (
    owner TEXT NOT NULL PRIMARY KEY,
    window_start INTEGER NOT NULL,
    window_count INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
-- The quota's count of an owner's uploads in progress and bytes, read from the index alone.
CREATE INDEX IF NOT EXISTS media_owner_status_size ON media (owner, status, size);
