-- The counters of 0005 from the media there are: a quota row for every owner with media (one made
-- before quotas existed has none; its hourly window starts at its next upload), then each row's
-- uploads in progress and stored bytes. Safe to run again.
INSERT INTO media_quotas (owner, window_start, window_count, created_at, updated_at, version)
SELECT owner, 0, 0, MIN(created_at), MIN(created_at), 1 FROM media
WHERE NOT EXISTS (SELECT 1 FROM media_quotas WHERE media_quotas.owner = media.owner)
GROUP BY owner;
UPDATE media_quotas SET
    pending_count = (SELECT COUNT(*) FROM media WHERE media.owner = media_quotas.owner AND media.status = 'pending'),
    stored_bytes = (SELECT COALESCE(SUM(media.size), 0) FROM media WHERE media.owner = media_quotas.owner);
