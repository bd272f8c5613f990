-- The quota's counters, kept in the transactions that change media (plugins/media/quotas.py): the
-- owner's uploads in progress and stored bytes (pending uploads at their declared size), so that a
-- creation is admitted by one conditional UPDATE of this row instead of a count over media.
-- One statement: MySQL commits each DDL statement on its own. 0006 fills them in.
ALTER TABLE media_quotas
    ADD COLUMN pending_count INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN stored_bytes BIGINT NOT NULL DEFAULT 0;
