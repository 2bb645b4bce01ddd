-- The durable event log (one row per event, its JSON body as docs/api.md shows it), the merged
-- conversation history, and conversations.
CREATE TABLE events (
    task_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;

CREATE TABLE conversation_items (
    item_id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    task_id TEXT,
    run_id TEXT,
    role TEXT NOT NULL,
    event TEXT NOT NULL,
    agent_name TEXT,
    component_type TEXT,
    payload TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX items_by_conversation ON conversation_items (conversation_id, created_at, item_id);
CREATE INDEX items_by_task ON conversation_items (task_id, component_type);

CREATE TABLE conversations (
    conversation_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);
