"""Prometheus metrics (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUNS = Counter("taskcell_runs_total", "Runs finished, by outcome", ["outcome"])
EVENTS_APPENDED_GAUGE = Gauge(
    "taskcell_events_appended", "Events appended to the log by this process since it started"
)
TASKS_BY_STATUS = Gauge("taskcell_tasks", "Tasks in the store, by status", ["status"])
LIVE_SUBSCRIBERS = Gauge("taskcell_live_subscribers", "Live event subscribers")
SCHEDULER_LAG = Histogram(
    "taskcell_scheduler_lag_seconds",
    "Start of a scheduled run minus its scheduled time",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
AGENT_CALL_SECONDS = Histogram(
    "taskcell_agent_call_seconds", "Duration of one call to an agent", ["agent"]
)
WEBHOOK_DELIVERIES = Counter(
    "taskcell_webhook_deliveries_total",
    "Webhook delivery attempts by outcome: sent (2xx), retried (to be tried again), failed",
    ["outcome"],
)
WEBHOOK_LAG = Histogram(
    "taskcell_webhook_delivery_lag_seconds",
    "From the event to its delivery's 2xx answer",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
WEBHOOK_BACKLOG = Gauge(
    "taskcell_webhook_backlog", "Webhook deliveries not yet done (pending, sending)", ["status"]
)
RETENTION_REMOVED = Counter(
    "taskcell_retention_removed_total",
    "Rows retention removed in this process, by kind (events, items, runs)",
    ["kind"],
)
RETENTION_BATCH_SECONDS = Histogram(
    "taskcell_retention_batch_seconds",
    "Duration of one pruning write (SQLite: how long it held the write lock, at most)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
RETENTION_ROUNDS = Counter(
    "taskcell_retention_rounds_total", "Retention rounds this process's pruner finished"
)
RETENTION_ROUND_SECONDS = Gauge(
    "taskcell_retention_last_round_seconds", "How long this process's last retention round took"
)
DATABASE_BYTES = Gauge("taskcell_database_bytes", "Size of the database, in bytes")
