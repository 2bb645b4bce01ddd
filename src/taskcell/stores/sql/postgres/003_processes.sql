-- Processes that serve this database, with a heartbeat, and the lease index of runs.
CREATE TABLE processes (
    process_id TEXT COLLATE "C" PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX runs_by_owner ON runs (owner) WHERE status IN ('queued', 'running');
CREATE INDEX runs_by_lease ON runs (lease_expires_at) WHERE status IN ('queued', 'running');
