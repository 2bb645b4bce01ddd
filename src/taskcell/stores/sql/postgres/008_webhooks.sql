-- Webhooks (taskcell.abc.WebhookStore): subscriptions, and the outbox of their deliveries,
-- written by append_events in the transaction of the events that cause them. Due times are
-- the database's clock.
-- A task's own webhook URL (a subscription to that task is made with it).
ALTER TABLE tasks ADD COLUMN webhook_url TEXT;
CREATE TABLE webhooks (
    webhook_id TEXT COLLATE "C" PRIMARY KEY,
    user_id TEXT NOT NULL,
    url TEXT NOT NULL,
    event_types JSONB NOT NULL,
    task_id TEXT,
    agent_name TEXT,
    description TEXT NOT NULL DEFAULT '',
    secret TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    failing_since TIMESTAMPTZ,
    disabled_at TIMESTAMPTZ,
    disabled_reason TEXT
);
CREATE INDEX webhooks_by_user ON webhooks (user_id, created_at);
CREATE TABLE webhook_deliveries (
    delivery_id TEXT COLLATE "C" PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    last_attempt_at TIMESTAMPTZ,
    last_status_code INTEGER,
    last_response TEXT,
    last_error TEXT,
    delivered_at TIMESTAMPTZ
);
-- One delivery per event and subscription.
CREATE UNIQUE INDEX deliveries_once ON webhook_deliveries (webhook_id, task_id, seq);
CREATE INDEX deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE INDEX deliveries_by_webhook ON webhook_deliveries (webhook_id, created_at, delivery_id);
