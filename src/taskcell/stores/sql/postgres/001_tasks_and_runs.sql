-- Tasks and their runs (PostgreSQL). Datetimes are TIMESTAMPTZ, JSON fields JSONB (sent and
-- read as JSON text), identifiers TEXT COLLATE "C" so that keyset order is byte order, the
-- same order SQLite and the in-memory store use.
CREATE TABLE tasks (
    task_id TEXT COLLATE "C" PRIMARY KEY,
    title TEXT NOT NULL,
    query TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    agent_name TEXT NOT NULL,
    status TEXT NOT NULL,
    pattern TEXT NOT NULL,
    schedule_config JSONB,
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    next_run_at TIMESTAMPTZ,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    remote_task_ids JSONB NOT NULL DEFAULT '[]',
    handoff_from_super_agent BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL,
    error_message TEXT,
    metadata JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX tasks_by_created ON tasks (created_at, task_id);
CREATE INDEX tasks_by_user ON tasks (user_id, created_at, task_id);
CREATE INDEX tasks_by_user_status ON tasks (user_id, status, created_at, task_id);
CREATE INDEX tasks_by_user_pattern ON tasks (user_id, pattern, created_at, task_id);
CREATE INDEX tasks_by_user_agent ON tasks (user_id, agent_name, created_at, task_id);
CREATE INDEX tasks_by_status ON tasks (status, created_at, task_id);
CREATE INDEX tasks_by_conversation ON tasks (conversation_id, created_at, task_id);
CREATE INDEX tasks_due ON tasks (next_run_at)
    WHERE pattern = 'recurring' AND status = 'running' AND NOT paused;

CREATE TABLE runs (
    run_id TEXT COLLATE "C" PRIMARY KEY,
    task_id TEXT COLLATE "C" NOT NULL,
    attempt INTEGER NOT NULL,
    scheduled_for TIMESTAMPTZ,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    status TEXT NOT NULL,
    error TEXT,
    result TEXT,
    owner TEXT,
    lease_expires_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX runs_one_per_occurrence ON runs (task_id, scheduled_for);
CREATE UNIQUE INDEX runs_one_per_attempt ON runs (task_id, attempt) WHERE scheduled_for IS NULL;
CREATE INDEX runs_by_task ON runs (task_id, created_at, run_id);
CREATE INDEX runs_active ON runs (status) WHERE status IN ('queued', 'running', 'waiting_input');
