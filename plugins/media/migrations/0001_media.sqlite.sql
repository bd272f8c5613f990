-- Media records. `id` is unguessable (secrets.token_urlsafe); `object_key` is where the object is.
-- (owner, created_at, id) serves the owner's newest-first pages; (status, created_at) the cleanup.
CREATE TABLE IF NOT EXISTS media (
    id TEXT NOT NULL PRIMARY KEY,
    owner TEXT NOT NULL,
    purpose TEXT NOT NULL,
    status TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    object_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS media_owner_created ON media (owner, created_at, id);
CREATE INDEX IF NOT EXISTS media_status_created ON media (status, created_at);
