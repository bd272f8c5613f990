-- replaces: data 1
-- The profile's avatar (profiles plugin's extension point): the id of a ready avatar media.
-- (Databases made before the profiles plugin existed have this column from the data plugin's 0001.)
ALTER TABLE profiles ADD COLUMN avatar_media_id VARCHAR(64) NULL;
