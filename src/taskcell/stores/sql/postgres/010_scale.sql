-- Costs that stay flat as history grows (bench/scale.py). Whether a task has a run going (the
-- scheduler asks it of every occurrence it claims) is a search among open runs only, not
-- among every run the task ever had.
CREATE INDEX runs_open_by_task ON runs (task_id) WHERE status IN ('queued', 'running');
