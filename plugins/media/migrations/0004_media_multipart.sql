-- A resumable upload's session: the store's multipart upload id and the part size it was given
-- (both NULL for a single POST upload).
ALTER TABLE media ADD COLUMN upload_id VARCHAR(255) NULL;
ALTER TABLE media ADD COLUMN part_size BIGINT NULL;
