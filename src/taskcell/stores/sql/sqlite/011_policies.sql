-- Overlap and catch-up policies of recurring tasks (taskcell.domain.policies). The defaults are
-- the behaviour from before the policies: skip an occurrence while a run is in progress, and
-- coalesce missed occurrences into one run, with no catch-up window.
ALTER TABLE tasks ADD COLUMN overlap TEXT NOT NULL DEFAULT 'skip';
ALTER TABLE tasks ADD COLUMN catchup TEXT NOT NULL DEFAULT 'coalesce';
ALTER TABLE tasks ADD COLUMN catchup_window_seconds INTEGER;
-- Occurrences waiting for the run in progress (overlap buffer_one, buffer_all): found per task,
-- oldest first, by the scheduler's pass that starts them.
CREATE INDEX runs_queued ON runs (task_id, scheduled_for) WHERE status = 'queued';
