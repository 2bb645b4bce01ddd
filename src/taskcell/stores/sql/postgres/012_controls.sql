-- Controls (issue 16): a pause's note, a per-task run time-out, and each run's deadline.
-- pause_note: what the user said when pausing (cleared by resume). run_timeout_seconds: a run
-- still going this long after its start is stopped and recorded failed. runs.deadline_at: the
-- moment that run times out, written with the run's start, so a run taken up again (a reply
-- continued elsewhere, a once task's attempt resuming an interrupted run's remote task) keeps it.
ALTER TABLE tasks ADD COLUMN pause_note TEXT;
ALTER TABLE tasks ADD COLUMN run_timeout_seconds INTEGER;
ALTER TABLE runs ADD COLUMN deadline_at TIMESTAMPTZ;
