-- Claims by node: who holds a running job (`owner`, the claiming handle's
-- node id, which fences its end) and until when (`lease_until_ms`; NULL for
-- a single service's claim, which never expires); `memory_bytes`, a copy of
-- the spec's, so a claim can filter on it without reading JSON.
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until_ms INTEGER;
ALTER TABLE jobs ADD COLUMN memory_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET memory_bytes = COALESCE(json_extract(spec, '$.memory_bytes'), 0);
CREATE INDEX jobs_claim ON jobs (status, priority DESC, seq);
CREATE INDEX jobs_tenant_status ON jobs (tenant, status);
