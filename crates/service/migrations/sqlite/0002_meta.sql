-- The store's identity (also in the folder's marker file, so that a start
-- can tell a deleted or replaced database), and whether it has ever held an
-- API key: set by the first key, never cleared by revoking (authentication
-- fails closed). Old stores (`user_version` 2) have all of it: OR IGNORE
-- keeps their id.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
INSERT OR IGNORE INTO meta (key, value)
    SELECT 'keys_held', '1' WHERE EXISTS (SELECT 1 FROM api_keys);
CREATE TRIGGER IF NOT EXISTS api_keys_held AFTER INSERT ON api_keys
BEGIN
    INSERT OR IGNORE INTO meta (key, value) VALUES ('keys_held', '1');
END;
