-- Conversation ids are scoped per user: (user_id, conversation_id) is the key, so one user's
-- id never blocks another user from choosing the same one. A conversation that tasks of
-- several users already shared (an admin could add tasks to any conversation) becomes one
-- conversation per user, each titled after that user's first task in it.
ALTER TABLE conversations DROP CONSTRAINT conversations_pkey;
ALTER TABLE conversations ADD PRIMARY KEY (user_id, conversation_id);
CREATE INDEX conversations_by_id ON conversations (conversation_id);
INSERT INTO conversations (conversation_id, title, user_id, created_at)
    SELECT DISTINCT ON (user_id, conversation_id) conversation_id,
        CASE WHEN title <> '' THEN title ELSE left(query, 80) END, user_id, created_at
    FROM tasks ORDER BY user_id, conversation_id, created_at, task_id
    ON CONFLICT DO NOTHING;
