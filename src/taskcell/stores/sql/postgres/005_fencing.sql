-- Fencing (taskcell.abc, "Fencing"): every run carries its owner and a lease epoch that grows
-- at each takeover; a run's writes are guarded by both. A task's log closes at its last
-- ``done``: the append that writes it sets log_closed, and every append checks it.
ALTER TABLE runs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
-- The process that closed a run it did not own (recovery, after a takeover), so that the
-- process that buries a dead one looks only at the runs the dead one closed itself.
ALTER TABLE runs ADD COLUMN closed_by TEXT;
CREATE INDEX runs_by_closer ON runs (closed_by, finished_at) WHERE closed_by IS NOT NULL;
ALTER TABLE tasks ADD COLUMN log_closed BOOLEAN NOT NULL DEFAULT FALSE;
