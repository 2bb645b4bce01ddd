-- Retention cuts a recurring task's log by position, not by time (taskcell.engine.pruner).
-- log_from is the task's last event seq when the run was made: every event of this run, and
-- of every later run, has a higher seq (an event appended at the same moment by a transaction
-- not yet committed may get a higher seq than log_from although it belongs to an earlier run;
-- it is then kept one more round, never removed early). So the events of runs older than the
-- kept ones are exactly those at or below the oldest kept run's log_from, found with no event
-- read. Runs made before this version have none (NULL): retention finds their cut by event
-- times.
ALTER TABLE runs ADD COLUMN log_from BIGINT;
CREATE FUNCTION runs_log_from() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.log_from IS NULL THEN
        NEW.log_from := (
            SELECT GREATEST(
                COALESCE((SELECT MAX(seq) FROM events WHERE task_id = NEW.task_id), 0),
                pruned_seq)
            FROM tasks WHERE task_id = NEW.task_id);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER runs_log_from BEFORE INSERT ON runs FOR EACH ROW EXECUTE FUNCTION runs_log_from();
-- A task's oldest unfinished run (its events are kept whatever its age), among unfinished runs
-- only.
CREATE INDEX runs_unfinished_by_task ON runs (task_id, created_at)
    WHERE status IN ('queued', 'running', 'waiting_input');
