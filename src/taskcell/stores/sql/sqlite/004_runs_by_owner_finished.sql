-- Ended runs by their process, so that the process that tidies up after a dead one finds
-- what it finished last (taskcell.engine.Engine.bury_dead_processes).
CREATE INDEX runs_by_owner_finished ON runs (owner, finished_at) WHERE finished_at IS NOT NULL;
