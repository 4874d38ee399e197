-- The jobs and API keys, as Kettle stores before sqlx's migrations created
-- them (their `user_version` 1). IF NOT EXISTS: on such a store, this is a
-- no-op that records the history.
CREATE TABLE IF NOT EXISTS jobs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    tenant           TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    spec             TEXT    NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_ms       INTEGER NOT NULL,
    started_ms       INTEGER,
    ended_ms         INTEGER,
    result           TEXT,
    error            TEXT,
    idempotency_key  TEXT,
    request_hash     TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_tenant_seq ON jobs (tenant, seq);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_ended ON jobs (ended_ms) WHERE ended_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS api_keys (
    id         TEXT    PRIMARY KEY,
    tenant     TEXT    NOT NULL,
    hash       BLOB    NOT NULL,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
