-- Account deletions (plugins/data/accounts.py), recorded under the migration name "accounts".
-- `subject` is kept only while a deletion is pending (to finish it); once done the row is the audit
-- record: the subject's SHA-256, when it was asked for and finished, and what each plugin removed.
CREATE TABLE IF NOT EXISTS account_deletions (
    id TEXT NOT NULL PRIMARY KEY,
    subject_hash TEXT NOT NULL,
    subject TEXT NULL,
    status TEXT NOT NULL,
    counts TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS account_deletions_subject ON account_deletions (subject_hash, status);
CREATE INDEX IF NOT EXISTS account_deletions_status ON account_deletions (status, created_at);
