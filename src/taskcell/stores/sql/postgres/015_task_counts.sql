-- Tasks by status for /metrics, kept as tasks are written rather than counted over every task
-- at each scrape (bench/scale.py --postgres: a scan of every task, 7x slower at 100,000 tasks
-- than at 1,000). Each write that adds, removes or moves a task appends its change (+1 or -1 a
-- status) as a row of its own: an insert, which never waits for another writer, so the
-- processes of a cluster never queue on a shared counter row (nor deadlock on two). Reading
-- the counts sums the changes; a fold (the count itself, and each heartbeat) replaces the rows
-- it could lock by one row a status, so the table stays a few rows long.
CREATE TABLE task_count_changes (
    status TEXT NOT NULL,
    tasks BIGINT NOT NULL
);
CREATE FUNCTION task_count_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO task_count_changes (status, tasks) VALUES (NEW.status, 1);
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO task_count_changes (status, tasks) VALUES (OLD.status, -1);
    ELSE
        INSERT INTO task_count_changes (status, tasks) VALUES (OLD.status, -1), (NEW.status, 1);
    END IF;
    RETURN NULL;
END
$$;
-- The triggers first: they lock out writers until this version commits, so the count below
-- misses no task and none is counted twice.
CREATE TRIGGER task_counts_insert_delete AFTER INSERT OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION task_count_changes();
CREATE TRIGGER task_counts_update AFTER UPDATE OF status ON tasks
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION task_count_changes();
INSERT INTO task_count_changes (status, tasks) SELECT status, count(*) FROM tasks GROUP BY status;
