-- Media records. `id` is unguessable (secrets.token_urlsafe); `object_key` is where the object is.
-- (owner, created_at, id) serves the owner's newest-first pages; (status, created_at) the cleanup.
CREATE TABLE IF NOT EXISTS media (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    owner VARCHAR(255) NOT NULL,
    purpose VARCHAR(16) NOT NULL,
    status VARCHAR(16) NOT NULL,
    content_type VARCHAR(127) NOT NULL,
    size BIGINT NOT NULL,
    object_key VARCHAR(512) NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    INDEX media_owner_created (owner, created_at, id),
    INDEX media_status_created (status, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
