-- Costs that stay flat as history grows (bench/scale.py). Whether a task has a run going (the
-- scheduler asks it of every occurrence it claims) is a search among open runs only, not
-- among every run the task ever had.
CREATE INDEX runs_open_by_task ON runs (task_id) WHERE status IN ('queued', 'running');

-- Tasks by status for /metrics, kept as tasks are written (one small write beside each insert,
-- status change and delete) rather than counted over every task at each scrape.
CREATE TABLE task_counts (
    status TEXT PRIMARY KEY,
    tasks INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO task_counts SELECT status, COUNT(*) FROM tasks GROUP BY status;
CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO task_counts VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET tasks = tasks + 1;
END;
CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks BEGIN
    UPDATE task_counts SET tasks = tasks - 1 WHERE status = OLD.status;
END;
CREATE TRIGGER task_counts_update AFTER UPDATE OF status ON tasks
    WHEN OLD.status IS NOT NEW.status BEGIN
    UPDATE task_counts SET tasks = tasks - 1 WHERE status = OLD.status;
    INSERT INTO task_counts VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET tasks = tasks + 1;
END;
