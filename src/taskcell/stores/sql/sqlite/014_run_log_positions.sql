-- Retention cuts a recurring task's log by position, not by time (taskcell.engine.pruner).
-- log_from is the task's last event seq when the run was made: every event of this run, and
-- of every later run, has a higher seq. So the events of runs older than the kept ones are
-- exactly those at or below the oldest kept run's log_from, found with no event read. Runs
-- made before this version have none (NULL): retention finds their cut by event times.
ALTER TABLE runs ADD COLUMN log_from INTEGER;
-- Set as each run is inserted, whichever statement inserts it (a writer that knows the value
-- gives it, and this leaves it).
CREATE TRIGGER runs_log_from AFTER INSERT ON runs WHEN NEW.log_from IS NULL BEGIN
    UPDATE runs SET log_from = (
        SELECT MAX(COALESCE((SELECT MAX(seq) FROM events WHERE task_id = NEW.task_id), 0),
                   pruned_seq)
        FROM tasks WHERE task_id = NEW.task_id
    ) WHERE run_id = NEW.run_id;
END;
-- A task's oldest unfinished run (its events are kept whatever its age), among unfinished runs
-- only.
CREATE INDEX runs_unfinished_by_task ON runs (task_id, created_at)
    WHERE status IN ('queued', 'running', 'waiting_input');
