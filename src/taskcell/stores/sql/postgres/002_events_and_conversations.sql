-- The durable event log, the merged conversation history, and conversations (PostgreSQL),
-- mirroring SQLite's 002. Identifiers are TEXT COLLATE "C" (keyset order is byte order, as in
-- SQLite and the in-memory store); datetimes TIMESTAMPTZ.
--
-- JSON here is TEXT, not JSONB: the store never looks inside an event body or an item payload,
-- and agents' output is untrusted. TEXT keeps exactly what was written (JSONB refuses "\u0000"
-- and NaN, and turns 1e300 back into an integer), and costs no parse on the append path.
CREATE TABLE events (
    task_id TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE conversation_items (
    item_id TEXT COLLATE "C" PRIMARY KEY,
    conversation_id TEXT COLLATE "C" NOT NULL,
    thread_id TEXT NOT NULL,
    task_id TEXT COLLATE "C",
    run_id TEXT,
    role TEXT NOT NULL,
    event TEXT NOT NULL,
    agent_name TEXT,
    component_type TEXT,
    payload TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX items_by_conversation ON conversation_items (conversation_id, created_at, item_id);
CREATE INDEX items_by_task ON conversation_items (task_id, component_type);

CREATE TABLE conversations (
    conversation_id TEXT COLLATE "C" PRIMARY KEY,
    title TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
