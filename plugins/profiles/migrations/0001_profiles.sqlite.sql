-- replaces: data 1
-- Profiles, keyed by the identity provider's subject. Times are UTC ISO 8601 text of fixed width.
-- (Databases made before the profiles plugin existed have this table from the data plugin's 0001.)
CREATE TABLE IF NOT EXISTS profiles (
    id TEXT NOT NULL PRIMARY KEY,
    username TEXT NOT NULL,
    display_name TEXT NOT NULL,
    bio TEXT NOT NULL DEFAULT '',
    locale TEXT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
