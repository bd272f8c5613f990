-- Account deletions (plugins/data/accounts.py), recorded under the migration name "accounts".
-- `subject` is kept only while a deletion is pending (to finish it); once done the row is the audit
-- record: the subject's SHA-256, when it was asked for and finished, and what each plugin removed.
CREATE TABLE IF NOT EXISTS account_deletions (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    subject_hash CHAR(64) NOT NULL,
    subject VARCHAR(255) NULL,
    status VARCHAR(16) NOT NULL,
    counts VARCHAR(4000) NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    INDEX account_deletions_subject (subject_hash, status),
    INDEX account_deletions_status (status, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
