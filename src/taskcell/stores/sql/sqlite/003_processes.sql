-- Processes that serve this database, with a heartbeat, and the lease index of runs.
CREATE TABLE processes (
    process_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);
CREATE INDEX runs_by_owner ON runs (owner) WHERE status IN ('queued', 'running');
