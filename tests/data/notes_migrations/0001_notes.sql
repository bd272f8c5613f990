CREATE TABLE IF NOT EXISTS notes (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    owner_id VARCHAR(255) NOT NULL,
    body VARCHAR(100) NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX notes_by_owner ON notes (owner_id, created_at, id);
