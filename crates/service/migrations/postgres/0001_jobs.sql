-- The jobs, API keys and the store's identity, shared by every node.
-- Times are Unix milliseconds; `spec`, `result` and `error` are the JSON
-- text the service writes (TEXT, not JSONB: stored and returned as is).
CREATE TABLE jobs (
    seq              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    tenant           TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    memory_bytes     BIGINT  NOT NULL DEFAULT 0,
    spec             TEXT    NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    -- The node id of the claim that runs it, which fences its end, and
    -- until when that claim holds (a heartbeat renews it).
    owner            TEXT,
    lease_until_ms   BIGINT,
    created_ms       BIGINT  NOT NULL,
    started_ms       BIGINT,
    ended_ms         BIGINT,
    result           TEXT,
    error            TEXT,
    idempotency_key  TEXT,
    request_hash     TEXT
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_tenant_seq ON jobs (tenant, seq);
-- The claim's scan: each tenant's queued jobs by priority, then age (and,
-- by its leading column, the tenants that have queued jobs).
CREATE INDEX jobs_queue ON jobs (tenant, priority DESC, seq) WHERE status = 'queued';
CREATE INDEX jobs_tenant_status ON jobs (tenant, status);
CREATE INDEX jobs_ended ON jobs (ended_ms) WHERE ended_ms IS NOT NULL;
CREATE INDEX jobs_leases ON jobs (lease_until_ms) WHERE status = 'running';
CREATE TABLE api_keys (
    id         TEXT   PRIMARY KEY,
    tenant     TEXT   NOT NULL,
    hash       BYTEA  NOT NULL,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
-- `store_id`: the store's identity; `keys_held`: set by the first key,
-- never cleared (authentication fails closed once a key existed).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('store_id', replace(gen_random_uuid()::text, '-', ''));
