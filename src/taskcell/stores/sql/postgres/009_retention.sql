-- Retention (taskcell.engine.pruner): a task's log loses its oldest events, never a middle part.
-- pruned_seq is the highest seq retention removed (0: none), so a stream asked for removed
-- events can say so and the log goes on numbering after it; retention_done marks a finished
-- once task with nothing left for retention to remove (its events and items gone).
ALTER TABLE tasks ADD COLUMN pruned_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN retention_done BOOLEAN NOT NULL DEFAULT FALSE;
-- Finished once tasks retention has yet to look at, oldest finished first.
CREATE INDEX tasks_to_prune ON tasks (completed_at, task_id)
    WHERE pattern = 'once' AND NOT retention_done AND completed_at IS NOT NULL;
-- Recurring tasks, walked by id (a few in a million tasks).
CREATE INDEX tasks_recurring ON tasks (task_id) WHERE pattern = 'recurring';
