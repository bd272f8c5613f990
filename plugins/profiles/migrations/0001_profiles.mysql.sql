-- replaces: data 1
-- Profiles, keyed by the identity provider's subject. Times are UTC ISO 8601 text of fixed width.
-- (Databases made before the profiles plugin existed have this table from the data plugin's 0001.)
CREATE TABLE IF NOT EXISTS profiles (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    username VARCHAR(255) NOT NULL,
    display_name VARCHAR(50) NOT NULL,
    bio VARCHAR(280) NOT NULL DEFAULT '',
    locale VARCHAR(35) NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
