-- Live edits (PATCH /tasks/{id}): a task's version grows by one at each edit, and each run
-- records the version of the task it ran. Rows from before count as version 1.
ALTER TABLE tasks ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
