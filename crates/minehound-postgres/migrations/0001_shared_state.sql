-- minehound's shared state: the service's jobs, reports and verdicts, the
-- replicas working on them, and the layer results every machine shares.

-- One row per scan job. `record` is the job as the API shows it; the other
-- columns are what the queue needs to hand it to exactly one replica.
CREATE TABLE minehound_jobs (
    id          text PRIMARY KEY,
    digest      text NOT NULL,
    state       text NOT NULL CHECK (state IN ('queued', 'running', 'finished', 'failed')),
    record      jsonb NOT NULL,
    -- The replica holding the job's registry authorization (kept in its
    -- memory only); no other replica can pull for it.
    pinned_to   text,
    -- The replica scanning it, and until when its lease runs.
    lease_owner text,
    lease_until timestamptz,
    attempts    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX minehound_jobs_pending ON minehound_jobs (created_at)
    WHERE state IN ('queued', 'running');
CREATE INDEX minehound_jobs_pending_digest ON minehound_jobs (digest)
    WHERE state IN ('queued', 'running');
CREATE INDEX minehound_jobs_updated ON minehound_jobs (updated_at);

-- A finished job's report, byte for byte as the scanner wrote it.
CREATE TABLE minehound_reports (
    job        text PRIMARY KEY,
    report     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The latest word on each image digest.
CREATE TABLE minehound_images (
    digest     text PRIMARY KEY,
    record     jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Replicas alive: each renews its row while it runs.
CREATE TABLE minehound_replicas (
    id         text PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
);

-- Layer results, keyed as the layer cache keys them (engine, signature
-- fingerprint, limits, layer digest), in the layer cache's own encoding.
CREATE TABLE minehound_layers (
    key        bytea PRIMARY KEY CHECK (length(key) = 32),
    entry      bytea NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz NOT NULL DEFAULT now()
);

-- Who is reading a layer now, so other machines wait instead of reading it too.
CREATE TABLE minehound_layer_claims (
    key   bytea PRIMARY KEY,
    owner text NOT NULL,
    until timestamptz NOT NULL
);
