-- Conversation ids are scoped per user: (user_id, conversation_id) is the key, so one user's
-- id never blocks another user from choosing the same one. A conversation that tasks of
-- several users already shared (an admin could add tasks to any conversation) becomes one
-- conversation per user, each titled after that user's first task in it.
CREATE TABLE conversations_per_user (
    conversation_id TEXT NOT NULL,
    title TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
) WITHOUT ROWID;
INSERT INTO conversations_per_user SELECT conversation_id, title, user_id, created_at
    FROM conversations;
INSERT OR IGNORE INTO conversations_per_user
    SELECT conversation_id, CASE WHEN title <> '' THEN title ELSE substr(query, 1, 80) END,
        user_id, created_at
    FROM tasks ORDER BY created_at, task_id;
DROP TABLE conversations;
ALTER TABLE conversations_per_user RENAME TO conversations;
CREATE INDEX conversations_by_id ON conversations (conversation_id);
