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
