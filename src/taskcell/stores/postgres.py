"""PostgresTaskStore: the store contract on a PostgreSQL database shared by a cluster (asyncpg).

How it talks to the database. An asyncpg pool is opened by :meth:`PostgresTaskStore.open` (or
lazily by the first operation) and closed by :meth:`PostgresTaskStore.close`. Every operation is
one statement on a pooled connection in autocommit, so its outcome is committed when the call
answers; asyncpg prepares and caches each statement per connection.

Each state change is one guarded statement (``UPDATE ... WHERE task_id = $1 AND status =
ANY($2)``) and answers whether it happened, so any number of processes on the same database stay
correct without any in-process lock: PostgreSQL's row locks serialise the writes, and a guard
re-checked after a concurrent update (READ COMMITTED re-evaluates the WHERE clause on the newest
row version) refuses a change the other writer made stale.

Values: datetimes go to asyncpg as aware ``datetime`` objects in UTC (TIMESTAMPTZ columns) and
come back aware; JSON fields of tasks are JSONB columns, sent and read as JSON text through
asyncpg's default codec (``codec.encode_field(..., dialect="postgres")`` and
``codec.task_from_row``). Event bodies and conversation item payloads are JSON in TEXT columns,
stored exactly as written (see ``002_events_and_conversations.sql``).

The event log. :meth:`PostgresTaskStore.append_events` is one statement, hence one transaction
and one round trip: data-modifying CTEs insert the batch's events from arrays
(``INSERT ... SELECT FROM unnest($1::text[], $2::bigint[], $3::text[])``) and upsert the
conversation items the same way, and the main statement sends the batch's notices with
``pg_notify`` (delivered by PostgreSQL at commit, so never for a batch that failed). A batch of
1,000 events costs one statement, not 1,000. Items repeated within a batch are merged first (an
upsert may not touch a row twice in one statement): the first occurrence's ``created_at``, the
last one's values.

Round trips per once task: ``create`` (the task and, if new, its conversation), ``start_run``
(pending to running plus the run) and ``finish_run`` (the run closed plus the task settled) are
one statement each, each a CTE of the writes that must happen together; the task's events share
the event log's batched appends.

Schema versions are the numbered files in ``taskcell/stores/sql/postgres``, applied at open, each
in its own transaction under ``pg_advisory_xact_lock``, so processes starting together do not
race; applied versions are recorded in ``schema_version``. All SQL of this dialect is in this
module and those files.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

import asyncpg

from taskcell.abc import (
    DuplicateTask,
    EventConflict,
    LeaseLost,
    LogClosed,
    LogCut,
    OccurrenceRuns,
    Page,
    ProcessInfo,
    Pruned,
    TaskFilter,
)
from taskcell.domain.clock import as_utc
from taskcell.domain.events import ConversationItem, Event, EventType
from taskcell.domain.models import OPEN_RUN_STATUSES, Fence, Run, RunStatus, Task, utcnow
from taskcell.domain.policies import CANCELLED_BY_NEWER
from taskcell.domain.state_machine import FINAL_STATUSES, TaskStatus, sources_of
from taskcell.domain.webhooks import (
    Delivery,
    DeliveryStatus,
    Webhook,
    controller_ids,
    disabled_reason,
    paused_in,
    plan_deliveries,
    worthy_task_ids,
)
from taskcell.outages import describe
from taskcell.stores import codec
from taskcell.stores.cursor import ITEMS, RUNS, TASKS, keyset_page, position
from taskcell.stores.rules import (
    admit_runs,
    check_changes,
    check_run_changes,
    lease_lost,
    log_cut,
)

if TYPE_CHECKING:  # asyncpg's classes are generic only in its stubs
    from asyncpg.pool import PoolConnectionProxy

    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

logger = logging.getLogger(__name__)

# -- SQL of this dialect ---------------------------------------------------------------------

#: The advisory lock key that serialises schema changes ("taskcell" in ASCII).
SCHEMA_LOCK_KEY = 0x7461736B63656C6C

_TASK_SELECT = f"SELECT {', '.join(codec.TASK_COLUMNS)} FROM tasks"
_RUN_SELECT = f"SELECT {', '.join(codec.RUN_COLUMNS)} FROM runs"
_TASK_INSERT = (
    f"INSERT INTO tasks ({', '.join(codec.TASK_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(codec.TASK_COLUMNS) + 1))})"
)
_RUN_CREATED_AT = codec.RUN_COLUMNS.index("created_at") + 1
_RUN_STARTED_AT = codec.RUN_COLUMNS.index("started_at") + 1
_RUN_LEASE_AT = codec.RUN_COLUMNS.index("lease_expires_at") + 1


def _run_value_sql(index: int, since: str, *, typed: bool) -> str:
    """The SQL of run column ``index``'s value. One clock: the lease is the database's
    ``now()`` plus the length the caller meant (its ``lease_expires_at`` minus ``since``, both
    the caller's clock), never the caller's moment."""
    if index == _RUN_LEASE_AT:
        return f"now() + (${index}::timestamptz - {since})"
    if not typed:
        return f"${index}"
    return f"${index}::{_RUN_TYPES.get(codec.RUN_COLUMNS[index - 1], 'text')}"


_CONVERSATION_COLUMNS = "conversation_id, title, user_id, created_at"
_CREATE_TASK = (
    "WITH conversation AS (INSERT INTO conversations"
    f" ({_CONVERSATION_COLUMNS}) VALUES ("
    + ", ".join(f"${len(codec.TASK_COLUMNS) + i}" for i in range(1, 5))
    + f") ON CONFLICT DO NOTHING RETURNING 1) {_TASK_INSERT}"
    " RETURNING (SELECT count(*) FROM conversation)"
)
#: The type of each run column, for a run inserted from a SELECT (which does not infer them).
_RUN_TYPES = {
    "attempt": "integer",
    "epoch": "integer",
    "version": "integer",
    **dict.fromkeys(
        (
            "scheduled_for",
            "started_at",
            "finished_at",
            "lease_expires_at",
            "created_at",
            "deadline_at",
        ),
        "timestamptz",
    ),
}
_RUN_INSERT = (
    f"INSERT INTO runs ({', '.join(codec.RUN_COLUMNS)}) VALUES ("
    + ", ".join(
        _run_value_sql(i, f"${_RUN_CREATED_AT}::timestamptz", typed=False)
        for i in range(1, len(codec.RUN_COLUMNS) + 1)
    )
    + ") ON CONFLICT DO NOTHING"
)
_START_RUN = (
    "WITH started AS (UPDATE tasks SET status = 'running', attempt = $3, "
    + ", ".join(codec.effect_sql(TaskStatus.RUNNING, f"${len(codec.RUN_COLUMNS) + 1}"))
    + " WHERE task_id = $2 AND status = 'pending' RETURNING 1)"
    + f" INSERT INTO runs ({', '.join(codec.RUN_COLUMNS)}) SELECT "
    + ", ".join(
        _run_value_sql(
            i, f"COALESCE(${_RUN_STARTED_AT}::timestamptz, ${_RUN_CREATED_AT})", typed=True
        )
        for i in range(1, len(codec.RUN_COLUMNS) + 1)
    )
    + " FROM started"
)
#: $1 task id, $2 run id, $3 owner, $4 lease expiry, $5 now. The task moves only if its run
#: waits too; the run moves only if the task did.
_CONTINUE_RUN = (
    "WITH moved AS (UPDATE tasks SET status = 'running', "
    + ", ".join(codec.effect_sql(TaskStatus.RUNNING, "$5"))
    + " WHERE task_id = $1 AND status = 'waiting_input' AND EXISTS (SELECT 1 FROM runs"
    " WHERE run_id = $2 AND task_id = $1 AND status = 'waiting_input') RETURNING 1)"
    " UPDATE runs SET status = 'running', owner = $3, epoch = epoch + 1,"
    " lease_expires_at = now() + ($4::timestamptz - $5::timestamptz)"
    " WHERE run_id = $2 AND status = 'waiting_input' AND EXISTS (SELECT 1 FROM moved)"
)
_TASK_BY_ID = f"{_TASK_SELECT} WHERE task_id = $1"
_TASK_FOR_EDIT = f"{_TASK_BY_ID} FOR UPDATE"
_TASK_DELETE = (
    "WITH gone_runs AS (DELETE FROM runs WHERE task_id = $1),"
    " gone_events AS (DELETE FROM events WHERE task_id = $1),"
    " gone_items AS (DELETE FROM conversation_items WHERE task_id = $1)"
    " DELETE FROM tasks WHERE task_id = $1"
)
_CANCEL_CONVERSATION = (
    "UPDATE tasks SET status = 'cancelled', "
    + ", ".join(codec.effect_sql(TaskStatus.CANCELLED, "$1"))
    + ", error_message = COALESCE($2, error_message)"
    " WHERE conversation_id = $3 AND status <> ALL($4::text[]) RETURNING task_id"
)
_RUN_BY_ID = f"{_RUN_SELECT} WHERE run_id = $1"
_RUNS_IN_STATUS = f"{_RUN_SELECT} WHERE status = ANY($1::text[]) ORDER BY created_at, run_id"
_RUNS_OF_IN_STATUS = (
    f"{_RUN_SELECT} WHERE status = ANY($1::text[]) AND task_id = $2 ORDER BY created_at, run_id"
)
_ARMED = "pattern = 'recurring' AND status = 'running' AND NOT paused"
_NEXT_DUE_AT = f"SELECT MIN(next_run_at) FROM tasks WHERE {_ARMED}"
#: What a claim of each task due before $1 reads (at most $2 tasks): its row, its occurrence's
#: slot, its latest run and its log's end.
_READ_AHEAD = (
    "SELECT t.task_id, t.version,"
    " (SELECT 1 FROM runs WHERE task_id = t.task_id AND scheduled_for = t.next_run_at),"
    " (SELECT run_id FROM runs WHERE task_id = t.task_id ORDER BY created_at DESC LIMIT 1),"
    " (SELECT MAX(seq) FROM events WHERE task_id = t.task_id)"
    f" FROM tasks AS t WHERE {_ARMED} AND t.next_run_at < $1"
    " ORDER BY t.next_run_at LIMIT $2"
)
_CLAIM_DUE_SELECT = (
    f"{_TASK_SELECT} WHERE {_ARMED} AND next_run_at <= LEAST($1, now())"
    " ORDER BY next_run_at, task_id LIMIT $2 FOR UPDATE SKIP LOCKED"
)
_CLAIM_DUE_UPDATE = "UPDATE tasks SET next_run_at = $1, updated_at = $2 WHERE task_id = $3"
#: A claimed task whose row cannot be decoded: disarmed and paused, saying why.
_DISARM = (
    "UPDATE tasks SET next_run_at = NULL, paused = TRUE, error_message = $1, updated_at = $2"
    " WHERE task_id = $3 AND pattern = 'recurring' AND status = 'running' AND NOT paused"
)
_CLAIM_PENDING = (
    "UPDATE tasks SET updated_at = now() WHERE task_id IN (SELECT task_id FROM tasks"
    " WHERE status = 'pending' AND pattern = 'once' AND updated_at < now() - $1::interval"
    " ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
    f" RETURNING {', '.join(codec.TASK_COLUMNS)}"
)
#: Per task, its running runs whose lease holds and its queued ones (the overlap policy's
#: counts).
_BUSY_RUNS_OF = (
    "SELECT task_id,"
    " count(*) FILTER (WHERE status = 'running' AND lease_expires_at > now()) AS running,"
    " count(*) FILTER (WHERE status = 'queued') AS queued"
    " FROM runs WHERE task_id = ANY($1::text[]) AND status IN ('queued', 'running')"
    " GROUP BY task_id"
)
#: Which of these occurrences have a run already.
_TAKEN_OF = (
    "SELECT r.task_id, r.scheduled_for FROM runs r"
    " JOIN unnest($1::text[], $2::timestamptz[]) AS u(task_id, scheduled_for)"
    " ON r.task_id = u.task_id AND r.scheduled_for = u.scheduled_for"
)
#: The runs in progress and waiting of these tasks, closed as replaced (overlap cancel_other).
_REPLACE = (
    "UPDATE runs SET status = 'cancelled', finished_at = now(), error = $2, epoch = epoch + 1"
    " WHERE task_id = ANY($1::text[])"
    " AND (status = 'queued' OR (status = 'running' AND lease_expires_at > now()))"
    f" RETURNING {', '.join(codec.RUN_COLUMNS)}"
)
_LOCK_TASK = f"{_TASK_SELECT} WHERE task_id = $1 FOR UPDATE"
#: The earliest queued run of each armed task with no running run whose lease holds; the
#: task rows are locked (the claims of ``start_due`` lock them too), skipping locked ones.
_NEXT_QUEUED = (
    "SELECT r.run_id, r.task_id FROM runs r JOIN tasks t ON t.task_id = r.task_id"
    " WHERE r.status = 'queued' AND t.pattern = 'recurring' AND t.status = 'running'"
    " AND NOT t.paused"
    " AND NOT EXISTS (SELECT 1 FROM runs q WHERE q.task_id = r.task_id AND q.status = 'queued'"
    " AND (q.scheduled_for < r.scheduled_for"
    " OR (q.scheduled_for = r.scheduled_for AND q.run_id < r.run_id)))"
    " AND NOT EXISTS (SELECT 1 FROM runs l WHERE l.task_id = r.task_id"
    " AND l.status = 'running' AND l.lease_expires_at > now())"
    " ORDER BY r.scheduled_for, r.run_id LIMIT $1 FOR UPDATE OF r, t SKIP LOCKED"
)
#: Stamped by the statement's own time (not the transaction's): it comes after the read
#: that saw the run before it end, so a run never starts before the one before it ended.
_START_QUEUED = (
    "UPDATE runs SET status = 'running', owner = $1, started_at = statement_timestamp(),"
    " lease_expires_at = statement_timestamp() + $2::interval"
    " WHERE run_id = ANY($3::text[]) AND status = 'queued'"
    f" RETURNING {', '.join(codec.RUN_COLUMNS)}"
)
_TASKS_OF = f"{_TASK_SELECT} WHERE task_id = ANY($1::text[])"
#: Runs inserted from one array per column; those for an occupied occurrence are left out.
#: One clock: each lease is the database's now() plus the length the caller meant.
_INSERT_RUNS = (
    f"INSERT INTO runs ({', '.join(codec.RUN_COLUMNS)}) SELECT "
    + ", ".join(
        "now() + (lease_expires_at - COALESCE(started_at, created_at))"
        if name == "lease_expires_at"
        else name
        for name in codec.RUN_COLUMNS
    )
    + " FROM unnest("
    + ", ".join(
        f"${i}::{_RUN_TYPES.get(name, 'text')}[]"
        for i, name in enumerate(codec.RUN_COLUMNS, start=1)
    )
    + f") AS u({', '.join(codec.RUN_COLUMNS)}) ON CONFLICT DO NOTHING RETURNING run_id"
)
#: Folds the rows of ``task_count_changes`` (schema version 15) it can lock into one row a
#: status, as CTEs: rows another fold has locked are skipped (SKIP LOCKED), so a fold never
#: waits, and what each fold removes it puts back summed, so the sums never change.
_FOLD_COUNTS = (
    "folded AS (DELETE FROM task_count_changes WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM task_count_changes FOR UPDATE SKIP LOCKED)) RETURNING status, tasks),"
    " refolded AS (INSERT INTO task_count_changes (status, tasks)"
    " SELECT status, sum(tasks) FROM folded GROUP BY status HAVING sum(tasks) <> 0)"
)
#: Tasks by status: the sum of the changes as the statement's snapshot has them (the fold's
#: writes are not seen by it, so it counts each change once), folding them meanwhile.
_COUNT_BY_STATUS = (
    f"WITH {_FOLD_COUNTS} SELECT status, sum(tasks) AS tasks FROM task_count_changes"
    " GROUP BY status HAVING sum(tasks) > 0"
)
_CLAIM_OCCURRENCE = (
    "UPDATE tasks SET next_run_at = $1, updated_at = $2"
    f" WHERE task_id = $3 AND next_run_at = $4 AND {_ARMED}"
)
#: The array type of each conversation item column, for ``unnest``.
_ITEM_ARRAY_TYPES = tuple(
    "timestamptz[]" if name in ("created_at", "updated_at") else "text[]"
    for name in codec.ITEM_COLUMNS
)
_ITEM_CREATED_AT = codec.ITEM_COLUMNS.index("created_at")
#: $1-$3 the events, $4-$6 the fences, $7-$8 the first done of each task, $9 the batch's task
#: ids, then the items (one array per column), the notices and the final statuses.
_APPEND_FIRST_ITEM = 10
_APPEND_NOTICES = _APPEND_FIRST_ITEM + len(_ITEM_ARRAY_TYPES)
#: One statement: the fence and closed-log checks, then (only if both pass) the events, the
#: items, the logs closed by this batch's ``done`` and the notices. It answers how many notices
#: went out, the runs whose fence failed and the tasks whose log is closed. Runs and tasks are
#: looked up by primary key (``= ANY``); a held run's row is share-locked until the commit, so
#: a takeover cannot slip between the check and the insert.
_APPEND_EVENTS = (
    "WITH ev AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])"
    " AS e(task_id, seq, body)),"
    " fenced AS (SELECT * FROM unnest($4::text[], $5::text[], $6::integer[])"
    " AS f(run_id, owner, epoch)),"
    " held AS (SELECT r.run_id FROM runs r JOIN fenced f ON r.run_id = f.run_id"
    " AND r.owner = f.owner AND r.epoch = f.epoch WHERE r.run_id = ANY($4::text[])"
    " FOR SHARE OF r),"
    " lost AS (SELECT run_id FROM fenced EXCEPT SELECT run_id FROM held),"
    " state AS (SELECT task_id, log_closed, status FROM tasks WHERE task_id = ANY($9::text[])),"
    " closing AS (SELECT d.task_id, d.seq FROM unnest($7::text[], $8::bigint[]) AS d(task_id, seq)"
    f" JOIN state s ON s.task_id = d.task_id WHERE s.status = ANY(${_APPEND_NOTICES + 1}::text[])),"
    " closed AS (SELECT DISTINCT ev.task_id FROM ev JOIN state s ON s.task_id = ev.task_id"
    " LEFT JOIN closing c ON c.task_id = ev.task_id WHERE s.log_closed OR ev.seq > c.seq),"
    " ok AS (SELECT NOT EXISTS (SELECT 1 FROM lost) AND NOT EXISTS (SELECT 1 FROM closed) AS ok),"
    " appended AS (INSERT INTO events (task_id, seq, body)"
    " SELECT task_id, seq, body FROM ev WHERE (SELECT ok FROM ok)),"
    f" upserted AS (INSERT INTO conversation_items ({', '.join(codec.ITEM_COLUMNS)})"
    " SELECT * FROM unnest("
    + ", ".join(f"${i}::{t}" for i, t in enumerate(_ITEM_ARRAY_TYPES, start=_APPEND_FIRST_ITEM))
    + ") WHERE (SELECT ok FROM ok)"
    " ON CONFLICT (item_id) DO UPDATE SET payload = excluded.payload, event = excluded.event,"
    " metadata = excluded.metadata, run_id = excluded.run_id, updated_at = excluded.updated_at),"
    " shut AS (UPDATE tasks SET log_closed = TRUE"
    " WHERE task_id IN (SELECT task_id FROM closing) AND (SELECT ok FROM ok)),"
    " notified AS (SELECT pg_notify('taskcell', notice)"
    f" FROM unnest(${_APPEND_NOTICES}::text[]) AS notice"
    " WHERE (SELECT ok FROM ok))"
    " SELECT (SELECT count(*) FROM notified) AS notified, ARRAY(SELECT run_id FROM lost) AS lost,"
    " ARRAY(SELECT task_id FROM closed) AS closed"
)
_EVENT_READ = "SELECT body FROM events WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"

# -- webhooks ----------------------------------------------------------------------------------

_WEBHOOK_SELECT = f"SELECT {', '.join(codec.WEBHOOK_COLUMNS)} FROM webhooks"
_WEBHOOK_INSERT = (
    f"INSERT INTO webhooks ({', '.join(codec.WEBHOOK_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(codec.WEBHOOK_COLUMNS) + 1))})"
)
_DELIVERY_SELECT = f"SELECT {', '.join(codec.DELIVERY_COLUMNS)} FROM webhook_deliveries"
#: The enabled subscriptions that hear of the tasks $1 (their users', their filters).
_SUBSCRIBERS = (
    f"SELECT t.task_id AS heard_task, {', '.join('w.' + c for c in codec.WEBHOOK_COLUMNS)}"
    " FROM tasks t JOIN webhooks w ON w.user_id = t.user_id"
    " WHERE t.task_id = ANY($1::text[]) AND w.disabled_at IS NULL"
    " AND (w.task_id IS NULL OR w.task_id = t.task_id)"
    " AND (w.agent_name IS NULL OR w.agent_name = t.agent_name)"
)
_ITEM_PAYLOADS = "SELECT item_id, payload FROM conversation_items WHERE item_id = ANY($1::text[])"
#: Deliveries inserted from arrays, created and due at the database's now().
_DELIVERY_INSERT = (
    "INSERT INTO webhook_deliveries (delivery_id, webhook_id, task_id, seq, event_type, body,"
    " status, attempts, next_attempt_at, created_at)"
    " SELECT d.*, 'pending', 0, now(), now() FROM unnest($1::text[], $2::text[], $3::text[],"
    " $4::bigint[], $5::text[], $6::text[]) AS d ON CONFLICT DO NOTHING"
)
#: $1 how long a claim lasts, $2 how many: due deliveries of enabled subscriptions, in order
#: per task and subscription, each claimed by one process (SKIP LOCKED).
_CLAIM_DELIVERIES = (
    "WITH due AS (SELECT d.delivery_id FROM webhook_deliveries d JOIN webhooks w"
    " ON w.webhook_id = d.webhook_id AND w.disabled_at IS NULL"
    " WHERE d.status IN ('pending', 'sending') AND d.next_attempt_at <= now()"
    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_id = d.webhook_id"
    " AND e.task_id = d.task_id AND e.seq < d.seq AND ((e.status = 'pending' AND e.attempts = 0)"
    " OR (e.status = 'sending' AND e.next_attempt_at > now())))"
    " ORDER BY d.next_attempt_at, d.created_at, d.seq LIMIT $2 FOR UPDATE OF d SKIP LOCKED)"
    " UPDATE webhook_deliveries d SET status = 'sending', attempts = d.attempts + 1,"
    " last_attempt_at = now(), next_attempt_at = now() + $1::interval"
    " FROM due, webhooks w WHERE d.delivery_id = due.delivery_id AND w.webhook_id = d.webhook_id"
    f" RETURNING {', '.join('d.' + c for c in codec.DELIVERY_COLUMNS)},"
    f" {', '.join(f'w.{c} AS w_{c}' for c in codec.WEBHOOK_COLUMNS)}"
)
#: $1 status, $2 retry in, $3 code, $4 response, $5 error, $6 delivery, $7 attempt.
_FINISH_DELIVERY = (
    "UPDATE webhook_deliveries SET status = $1,"
    " next_attempt_at = CASE WHEN $1 = 'pending' THEN now() + $2::interval END,"
    " last_status_code = $3, last_response = $4, last_error = $5,"
    " delivered_at = CASE WHEN $1 = 'delivered' THEN now() ELSE delivered_at END"
    " WHERE delivery_id = $6 AND status = 'sending' AND attempts = $7 RETURNING webhook_id"
)
_SUCCEEDING = (
    "UPDATE webhooks SET failing_since = NULL WHERE webhook_id = $1 AND failing_since IS NOT NULL"
)
#: $1 webhook, $2 disable after: failing noted, and the subscription disabled when stale.
_FAILING = (
    "UPDATE webhooks SET failing_since = COALESCE(failing_since, now()),"
    " disabled_at = CASE WHEN disabled_at IS NULL AND COALESCE(failing_since, now())"
    " <= now() - $2::interval THEN now() ELSE disabled_at END"
    " WHERE webhook_id = $1 RETURNING disabled_at = now() AS disabled, failing_since"
)
_DISABLED_REASON = "UPDATE webhooks SET disabled_reason = $2 WHERE webhook_id = $1"
_FAIL_PENDING = (
    "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, last_error = $2"
    " WHERE webhook_id = $1 AND status = 'pending'"
)
_REDELIVER = (
    "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now()"
    " WHERE delivery_id = $1 AND webhook_id = $2 AND status <> 'sending'"
    f" RETURNING {', '.join(codec.DELIVERY_COLUMNS)}"
)
_LAST_SEQ = (
    "SELECT GREATEST((SELECT COALESCE(MAX(seq), 0) FROM events WHERE task_id = $1),"
    " (SELECT COALESCE(MAX(pruned_seq), 0) FROM tasks WHERE task_id = $1))"
)
#: The session advisory lock a pruning round holds: one process prunes at a time ("tcprune").
RETENTION_LOCK_KEY = 0x746370_72756E65
_LOG_START = "SELECT pruned_seq FROM tasks WHERE task_id = $1"
_TO_PRUNE = (
    "SELECT completed_at, task_id FROM tasks WHERE pattern = 'once' AND NOT retention_done"
    " AND completed_at IS NOT NULL AND completed_at < $1"
    " AND ($2::timestamptz IS NULL OR (completed_at, task_id) > ($2, $3::text))"
    " ORDER BY completed_at, task_id LIMIT $4"
)
_OPEN_RUN_SQL = "status IN ('queued', 'running', 'waiting_input')"
#: $1 the kept runs less one, $2 the kept runs, $3 after this task id, $4 tasks: each recurring
#: task's ``keep``-th newest run (when it has an older one) and its oldest unfinished run.
_LOG_CUTS = (
    "SELECT t.task_id, t.pruned_seq, k.created_at AS kept_at, k.log_from AS kept_log,"
    " o.created_at AS open_at, o.log_from AS open_log, (SELECT created_at FROM runs"
    " WHERE task_id = t.task_id ORDER BY created_at LIMIT 1) AS oldest_at FROM tasks AS t"
    " LEFT JOIN LATERAL (SELECT created_at, log_from FROM runs WHERE task_id = t.task_id"
    " ORDER BY created_at DESC, run_id DESC LIMIT 1 OFFSET $1) AS k"
    " ON EXISTS (SELECT 1 FROM (SELECT 1 FROM runs WHERE task_id = t.task_id"
    " ORDER BY created_at DESC, run_id DESC LIMIT 1 OFFSET $2) AS older)"
    " LEFT JOIN LATERAL (SELECT created_at, log_from FROM runs WHERE task_id = t.task_id"
    f" AND {_OPEN_RUN_SQL} ORDER BY created_at, run_id LIMIT 1) AS o ON TRUE"
    " WHERE t.pattern = 'recurring' AND t.task_id > $3 ORDER BY t.task_id LIMIT $4"
)
_RECURRING_LOG_START = "SELECT pruned_seq FROM tasks WHERE task_id = $1 AND pattern = 'recurring'"
_COUNT_EVENTS_BETWEEN = "SELECT count(*) FROM events WHERE task_id = $1 AND seq > $2 AND seq <= $3"
_PRUNE_EVENTS_BETWEEN = (
    "WITH gone AS (DELETE FROM events WHERE task_id = $1 AND seq > $2 AND seq <= $3"
    " RETURNING 1), raised AS (UPDATE tasks SET pruned_seq = GREATEST(pruned_seq, $3)"
    " WHERE task_id = $1 RETURNING 1) SELECT count(*) FROM gone"
)
_FINAL_VALUES = ", ".join(f"'{s.value}'" for s in sorted(FINAL_STATUSES))
#: $1 task id, $2 finished before (NULL: any task).
_PRUNABLE_WHERE = (
    "task_id = $1 AND ($2::timestamptz IS NULL OR (pattern = 'once' AND completed_at < $2"
    f" AND status IN ({_FINAL_VALUES})))"
)
_PRUNABLE = f"EXISTS (SELECT 1 FROM tasks WHERE {_PRUNABLE_WHERE})"
#: $1 task id, $2 finished before, $3 through, $4 limit.
_PRUNE_EVENTS = (
    f"WITH target AS (SELECT seq FROM events WHERE task_id = $1 AND seq <= $3 AND {_PRUNABLE}"
    " ORDER BY seq LIMIT $4),"
    " bound AS (SELECT MAX(seq) AS seq FROM target),"
    " gone AS (DELETE FROM events WHERE task_id = $1 AND seq <= (SELECT seq FROM bound)"
    " RETURNING 1),"
    " raised AS (UPDATE tasks SET pruned_seq = GREATEST(pruned_seq, (SELECT seq FROM bound))"
    " WHERE task_id = $1 AND (SELECT seq FROM bound) IS NOT NULL RETURNING 1)"
    " SELECT count(*) FROM gone"
)
_COUNT_EVENTS = f"SELECT count(*) FROM events WHERE task_id = $1 AND seq <= $3 AND {_PRUNABLE}"
#: $1 task id, $2 the moment: the task's conversation (its user's) has a newer task.
_NEWER_CONVERSATION = (
    "EXISTS (SELECT 1 FROM tasks AS other JOIN tasks AS this ON this.task_id = $1"
    " WHERE other.conversation_id = this.conversation_id AND other.user_id = this.user_id"
    " AND (other.completed_at IS NULL OR other.completed_at >= $2 OR other.created_at >= $2))"
)
_ITEMS_PRUNABLE = f"EXISTS (SELECT 1 FROM tasks WHERE {_PRUNABLE_WHERE} AND NOT retention_done)"
_PRUNE_ITEMS = (
    f"WITH allowed AS (SELECT {_ITEMS_PRUNABLE} AS ok, {_NEWER_CONVERSATION} AS newer),"
    " gone AS (DELETE FROM conversation_items WHERE task_id = $1"
    " AND (SELECT ok AND NOT newer FROM allowed) RETURNING 1),"
    " done AS (UPDATE tasks SET retention_done = TRUE WHERE task_id = $1"
    " AND (SELECT ok AND NOT newer FROM allowed)"
    " AND NOT EXISTS (SELECT 1 FROM events WHERE task_id = $1) RETURNING 1)"
    " SELECT (SELECT ok FROM allowed), (SELECT newer FROM allowed), (SELECT count(*) FROM gone)"
)
_ONCE_PRUNABLE = f"SELECT {_ITEMS_PRUNABLE}"
_COUNT_ITEMS = (
    f"SELECT {_ITEMS_PRUNABLE}, {_NEWER_CONVERSATION},"
    " (SELECT count(*) FROM conversation_items WHERE task_id = $1)"
)
#: $1 task id, $2 finished before: a recurring task's closed runs that finished before $2,
#: found among the task's runs made before $2 (``runs_by_task``): only old runs are read.
_OLD_RUNS = (
    f"FROM runs WHERE task_id = $1 AND created_at < $2 AND finished_at < $2"
    f" AND NOT {_OPEN_RUN_SQL}"
    " AND EXISTS (SELECT 1 FROM tasks WHERE task_id = $1 AND pattern = 'recurring')"
)
_COUNT_OLD_RUNS = f"SELECT count(*) {_OLD_RUNS}"
_PRUNE_RUNS = (
    f"WITH gone AS (DELETE FROM runs WHERE run_id IN (SELECT run_id {_OLD_RUNS}"
    " ORDER BY created_at, run_id LIMIT $3) RETURNING 1) SELECT count(*) FROM gone"
)
#: Webhook deliveries that ended before $1 (the partial index ``deliveries_ended``).
_OLD_DELIVERIES = (
    "FROM webhook_deliveries WHERE status IN ('delivered', 'failed') AND created_at < $1"
)
_COUNT_OLD_DELIVERIES = f"SELECT count(*) {_OLD_DELIVERIES}"
_PRUNE_DELIVERIES = (
    "WITH gone AS (DELETE FROM webhook_deliveries WHERE delivery_id IN"
    f" (SELECT delivery_id {_OLD_DELIVERIES} ORDER BY created_at LIMIT $2) RETURNING 1)"
    " SELECT count(*) FROM gone"
)
_ITEM_SELECT = f"SELECT {', '.join(codec.ITEM_COLUMNS)} FROM conversation_items"
_ITEMS_OF_CONVERSATION = f"{_ITEM_SELECT} WHERE conversation_id = $1 {ITEMS.order_sql} LIMIT $2"
_ITEMS_OF_CONVERSATION_AFTER = (
    f"{_ITEM_SELECT} WHERE conversation_id = $1 AND {ITEMS.after_sql('$3', '$4')}"
    f" {ITEMS.order_sql} LIMIT $2"
)
#: One user's conversation: only the items of their tasks ($5 is the user).
_OF_USER = " AND task_id IN (SELECT task_id FROM tasks WHERE conversation_id = $1 AND user_id = $5)"
_ITEMS_OF_USER_CONVERSATION = (
    f"{_ITEM_SELECT} WHERE conversation_id = $1 AND ($3::timestamptz IS NULL"
    f" OR {ITEMS.after_sql('$3', '$4')}){_OF_USER} {ITEMS.order_sql} LIMIT $2"
)
_ANY_CONVERSATION = "SELECT EXISTS (SELECT 1 FROM conversations WHERE conversation_id = $1)"
_USER_CONVERSATION = (
    "SELECT EXISTS (SELECT 1 FROM conversations WHERE user_id = $2 AND conversation_id = $1)"
)
_ITEMS_OF_TASK = f"{_ITEM_SELECT} WHERE task_id = $1 ORDER BY created_at, item_id"
_ITEMS_OF_TASK_TYPED = (
    f"{_ITEM_SELECT} WHERE task_id = $1 AND component_type = $2 ORDER BY created_at, item_id"
)
_CONVERSATION_INSERT = (
    f"INSERT INTO conversations ({_CONVERSATION_COLUMNS}) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT DO NOTHING"
)
#: The database's clock, read; every decision below reads it inside its own statement.
_CLOCK = "SELECT now()"
_HEARTBEAT = (
    f"WITH {_FOLD_COUNTS}"
    " INSERT INTO processes (process_id, started_at, heartbeat_at) VALUES ($1, now(), now())"
    " ON CONFLICT (process_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at"
)
_PROCESS_COLUMNS = "process_id, started_at, heartbeat_at"
_LIVE_PROCESSES = (
    f"SELECT {_PROCESS_COLUMNS} FROM processes WHERE heartbeat_at >= now() - $1::interval"
    " ORDER BY started_at, process_id"
)
#: A row deleted by one claimer is gone for every other: each dead process is claimed once.
_DEAD_PROCESSES = (
    "DELETE FROM processes WHERE heartbeat_at < now() - $1::interval AND process_id <> $2"
    f" RETURNING {_PROCESS_COLUMNS}"
)
_RUNS_FINISHED_BY = (
    f"{_RUN_SELECT} WHERE ((owner = $1 AND closed_by IS NULL) OR closed_by = $1)"
    " AND finished_at IS NOT NULL AND finished_at >= $2 ORDER BY finished_at, run_id"
)
_RENEW_LEASES = (
    "UPDATE runs SET lease_expires_at = now() + $1::interval"
    " WHERE owner = $2 AND status IN ('queued', 'running')"
)
_INTERRUPT_EXPIRED = (
    "WITH closed AS (UPDATE runs SET status = 'interrupted', finished_at = now(), error = $1,"
    " epoch = epoch + 1, closed_by = $2"
    " WHERE run_id IN (SELECT run_id FROM runs WHERE status IN ('queued', 'running')"
    " AND lease_expires_at < now() FOR UPDATE SKIP LOCKED)"
    f" RETURNING {', '.join(codec.RUN_COLUMNS)}),"
    # With a recovering process ($2), its once tasks are requeued or failed in the same write.
    " recovered AS (UPDATE tasks SET"
    " status = CASE WHEN closed.attempt < max_attempts THEN 'pending' ELSE 'failed' END,"
    " error_message = CASE WHEN closed.attempt < max_attempts THEN error_message ELSE $1 END, "
    + ", ".join(
        codec.effect_case_sql(
            "closed.attempt < max_attempts", TaskStatus.PENDING, TaskStatus.FAILED, "now()"
        )
    )
    + " FROM closed WHERE $2::text IS NOT NULL AND tasks.task_id = closed.task_id"
    " AND tasks.pattern = 'once' AND tasks.status = 'running')"
    " SELECT * FROM closed"
)
#: How long ``check`` (``/health``) waits for the database.
CHECK_SECONDS = 0.9
#: The channel every taskcell process listens on.
CHANNEL = "taskcell"
_NOTIFY = "SELECT pg_notify('taskcell', $1)"
_SCHEMA_LOCK = "SELECT pg_advisory_xact_lock($1)"
_SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version"
    " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
)
_SCHEMA_VERSION_EXISTS = "SELECT to_regclass('schema_version') IS NOT NULL"
_SCHEMA_VERSION_NOW = "SELECT COALESCE(MAX(version), 0) FROM schema_version"
_SCHEMA_VERSIONS = "SELECT version FROM schema_version"
_SCHEMA_VERSION_IS = "SELECT EXISTS (SELECT 1 FROM schema_version WHERE version = $1)"
_SCHEMA_VERSION_ADD = "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)"

_FINAL = [s.value for s in FINAL_STATUSES]
_OPEN_RUN = sorted(s.value for s in OPEN_RUN_STATUSES)


@lru_cache(maxsize=256)
def _transition_sql(target: str, fields: tuple[str, ...], first: int = 1) -> str:
    """$first target, then now, task id, allowed sources, and one value per field."""
    target_, now, task_id, sources = (f"${first + i}" for i in range(4))
    sets = [f"status = {target_}", *codec.effect_sql(TaskStatus(target), now, given=fields)]
    sets += [
        codec.assignment(name, f"${i}", dialect="postgres")
        for i, name in enumerate(fields, start=first + 4)
    ]
    return (
        f"UPDATE tasks SET {', '.join(sets)}"
        f" WHERE task_id = {task_id} AND status = ANY({sources}::text[])"
    )


@lru_cache(maxsize=256)
def _update_sql(fields: tuple[str, ...], guarded: bool) -> str:
    """$1 task id, $2 now, [$3 expected statuses], then one value per field."""
    first = 4 if guarded else 3
    sets = [
        *(
            codec.assignment(name, f"${i}", dialect="postgres")
            for i, name in enumerate(fields, start=first)
        ),
        "updated_at = $2",
    ]
    sql = f"UPDATE tasks SET {', '.join(sets)} WHERE task_id = $1"
    return sql + " AND status = ANY($3::text[])" if guarded else sql


@lru_cache(maxsize=256)
def _update_run_sql(fields: tuple[str, ...], guarded: bool, fenced: bool = False) -> str:
    """$1 run id, [$2 expected statuses], then one value per field, then [owner, epoch]."""
    first = 3 if guarded else 2
    sets = [f"{name} = ${i}" for i, name in enumerate(fields, start=first)] or ["status = status"]
    sql = f"UPDATE runs SET {', '.join(sets)} WHERE run_id = $1"
    if guarded:
        sql += " AND status = ANY($2::text[])"
    if fenced:
        sql += f" AND owner = ${first + len(fields)} AND epoch = ${first + len(fields) + 1}"
    return sql


@lru_cache(maxsize=256)
def _fenced_update_sql(fields: tuple[str, ...], guarded: bool) -> str:
    """``update`` while a run holds its fence: $1 task id, $2 now, [$3 statuses], the values,
    then the fence's run id, owner and epoch. Answers (fence held, task updated)."""
    n = (4 if guarded else 3) + len(fields)
    return (
        f"WITH held AS (SELECT 1 FROM runs WHERE run_id = ${n} AND owner = ${n + 1}"
        f" AND epoch = ${n + 2} FOR SHARE),"
        f" changed AS ({_update_sql(fields, guarded)} AND EXISTS (SELECT 1 FROM held) RETURNING 1)"
        " SELECT (SELECT count(*) FROM held) AS held, (SELECT count(*) FROM changed) AS changed"
    )


@lru_cache(maxsize=256)
def _finish_run_sql(
    run_fields: tuple[str, ...], target: str, task_fields: tuple[str, ...], fenced: bool = False
) -> str:
    """Both guarded UPDATEs of ``finish_run`` in one statement, answering their row counts.

    $1 run id, $2 open statuses, one value per run field, [owner, epoch: the fence, and then
    the task moves only with its run closed], then the transition's arguments.
    """
    closing = _update_run_sql(run_fields, True, fenced)
    first = 3 + len(run_fields) + (2 if fenced else 0)
    moving = _transition_sql(target, task_fields, first)
    if fenced:
        moving += " AND EXISTS (SELECT 1 FROM closed)"
    return (
        f"WITH closed AS ({closing} RETURNING 1), moved AS ({moving} RETURNING 1)"
        " SELECT (SELECT count(*) FROM closed) AS closed, (SELECT count(*) FROM moved) AS moved"
    )


def _transition_args(
    task_id: str,
    target: TaskStatus,
    expected: Collection[TaskStatus] | None,
    changes: Mapping[str, Any],
    now: datetime | None,
) -> list[Any]:
    """The arguments of :func:`_transition_sql` (no sources allowed: an empty array)."""
    check_changes(changes)
    allowed = sources_of(target) if expected is None else sources_of(target) & set(expected)
    return [
        target.value,
        codec.utc(now or utcnow()),
        task_id,
        sorted(s.value for s in allowed),
        *(codec.encode_field(name, changes[name], dialect="postgres") for name in changes),
    ]


def _run_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    check_run_changes(changes)
    return codec.encode_changes(changes, dialect="postgres")


_TASK_POSITION = codec.row_position("task_id")
_RUN_POSITION = codec.row_position("run_id")
_ITEM_POSITION = codec.row_position("item_id")


def _list_decoded(rows: Sequence[asyncpg.Record]) -> list[Task]:
    return codec.decoded_tasks(rows, where="list_tasks")[0]


def _runs(rows: Sequence[asyncpg.Record]) -> list[Run]:
    return [codec.run_from_row(row) for row in rows]


def _items(rows: Sequence[asyncpg.Record]) -> list[ConversationItem]:
    return [codec.item_from_row(row) for row in rows]


def _filter_sql(flt: TaskFilter) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    for column, value in (
        ("user_id", flt.user_id),
        ("conversation_id", flt.conversation_id),
        ("status", flt.status),
        ("pattern", flt.pattern),
        ("agent_name", flt.agent_name),
    ):
        if value is not None:
            args.append(str(value))
            where.append(f"{column} = ${len(args)}")
    return where, args


async def _admit_all(
    conn: Connection,
    batches: Sequence[tuple[Task, list[Run]]],
    now: datetime,
    skipped_reason: str | None = None,
) -> list[OccurrenceRuns]:
    """Store each task's runs (in the caller's transaction) under its overlap policy: see
    :func:`~taskcell.stores.rules.admit_runs`. Runs for an occurrence that has a run already
    are left out. A few statements for the whole batch, whatever its size."""
    wanted = [(t.task_id, r.scheduled_for) for t, runs in batches for r in runs]
    if not wanted:
        return [OccurrenceRuns([], []) for _ in batches]
    ids = list({task_id for task_id, _ in wanted})
    taken_rows = await conn.fetch(
        _TAKEN_OF, [i for i, _ in wanted], [codec.utc(at) for _, at in wanted]
    )
    taken = {(r["task_id"], codec.utc(r["scheduled_for"])) for r in taken_rows}
    busy = {r["task_id"]: (r["running"], r["queued"]) for r in await conn.fetch(_BUSY_RUNS_OF, ids)}
    admitted = []
    for task, runs in batches:
        fresh = []
        for run in runs:
            key = (task.task_id, codec.utc(run.scheduled_for))
            if key not in taken:
                taken.add(key)
                fresh.append(run)
        running, queued = busy.get(task.task_id, (0, 0))
        admitted.append(
            admit_runs(
                task,
                fresh,
                running=running,
                queued=queued,
                now=now,
                skipped_reason=skipped_reason,
            )
        )
    replacing = [t.task_id for (t, _), a in zip(batches, admitted, strict=True) if a.replace]
    replaced: dict[str, list[Run]] = {}
    if replacing:
        for row in await conn.fetch(_REPLACE, replacing, CANCELLED_BY_NEWER):
            run = codec.run_from_row(row)
            replaced.setdefault(run.task_id, []).append(run)
    values = [codec.run_values(r, dialect="postgres") for a in admitted for r in a.runs]
    stored: set[str] = set()
    if values:
        columns = [list(c) for c in zip(*values, strict=True)]
        stored = {r["run_id"] for r in await conn.fetch(_INSERT_RUNS, *columns)}
    return [
        OccurrenceRuns([r for r in a.runs if r.run_id in stored], replaced.get(t.task_id, []))
        for (t, _), a in zip(batches, admitted, strict=True)
    ]


async def _claimable(
    conn: Connection, rows: Sequence[asyncpg.Record], moment: datetime, *, where: str
) -> list[Task]:
    """The due tasks of ``rows`` that decode; each that does not is disarmed and paused with
    the reason, in the claim's transaction, so it never blocks the scheduler again."""
    tasks, bad = codec.decoded_tasks(rows, where=where)
    for error in bad:
        reason = f"{error.reason}; its schedule is paused"
        await conn.execute(_DISARM, reason, moment, error.task_id)
    return tasks


def _row_count(status: str) -> int:
    """The row count of a command status such as ``UPDATE 1`` or ``INSERT 0 1``."""
    return int(status.rsplit(" ", 1)[-1])


def _item_columns(items: Sequence[ConversationItem]) -> list[list[Any]]:
    """The items as one array per column of :data:`codec.ITEM_COLUMNS`, for ``unnest``.

    An item id given more than once becomes one row: the first occurrence's ``created_at``
    with the last occurrence's other values, as upserting them one by one would leave it.
    """
    merged: dict[str, tuple[Any, ...]] = {}
    for item in items:
        values = codec.item_values(item, "postgres")
        first = merged.get(item.item_id)
        if first is not None:
            values = (
                *values[:_ITEM_CREATED_AT],
                first[_ITEM_CREATED_AT],
                *values[_ITEM_CREATED_AT + 1 :],
            )
        merged[item.item_id] = values
    return [list(column) for column in zip(*merged.values(), strict=True)] or [
        [] for _ in codec.ITEM_COLUMNS
    ]


async def _keep_session(_: object) -> None:
    return None


def _set_event(event: asyncio.Event, *_: object) -> None:
    event.set()


def describe_url(url: str) -> str:
    """``host:port/database`` of a PostgreSQL URL, without user or password (for logs)."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


class PostgresTaskStore:
    """See :class:`taskcell.abc.Store` for the contract; this module's docstring for how.

    ``url`` is a ``postgresql://`` URL as asyncpg takes it; the pool holds ``min_size`` to
    ``max_size`` connections, each made within ``connect_timeout`` seconds; a statement that
    does not answer within ``command_timeout`` seconds raises ``TimeoutError`` (an outage: the
    network or the server hangs), so no caller waits without bound. Beyond the
    contract: a run id given to :meth:`add_run` twice raises ``ValueError`` (only a repeated
    occurrence answers False), an event whose (task_id, seq) is stored already makes
    :meth:`append_events` raise ``EventConflict`` (and store nothing of the batch), and values
    PostgreSQL cannot store (a NUL character in text, NaN in a task's JSON, an integer past 32
    bits) raise :class:`asyncpg.DataError`.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 20,
        connect_timeout: float = 10.0,
        close_timeout: float = 10.0,
        command_timeout: float = 30.0,
    ) -> None:
        self.url = url
        self._min_size = min_size
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        self._command_timeout = command_timeout
        self._pool: Pool | None = None
        self._opening = asyncio.Lock()

    # -- pool and schema ------------------------------------------------------------------

    async def pool(self) -> Pool:
        """The connection pool, opened (and the schema brought up to date) on first use."""
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await self._create_pool()
        return self._pool

    async def _create_pool(self) -> Pool:
        pool: Pool = await asyncpg.create_pool(
            self.url,
            min_size=self._min_size,
            max_size=self._max_size,
            timeout=self._connect_timeout,
            command_timeout=self._command_timeout,
            server_settings={"application_name": "taskcell"},
            # The store keeps no session state (LISTEN has its own connection; advisory locks
            # are per transaction), so skip asyncpg's RESET ALL / UNLISTEN round trip on
            # every release; asyncpg still rolls back an open transaction itself.
            reset=_keep_session,
        )
        try:
            async with pool.acquire() as conn:
                version = await apply_migrations(conn)
        except BaseException:
            pool.terminate()
            raise
        logger.info(
            "postgres store opened",
            extra={"database": describe_url(self.url), "schema_version": version},
        )
        return pool

    async def open(self) -> None:
        await self.pool()

    async def close(self) -> None:
        """Close the pool, waiting up to ``close_timeout`` for queries in flight."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            async with asyncio.timeout(self._close_timeout):
                await pool.close()
        except TimeoutError:
            logger.warning(
                "postgres pool did not close in time; connections terminated",
                extra={"database": describe_url(self.url), "timeout_s": self._close_timeout},
            )
            pool.terminate()
        except BaseException:
            pool.terminate()
            raise

    async def check(self) -> str | None:
        """None if the database answers ``SELECT 1`` within :data:`CHECK_SECONDS`, else why."""
        timeout = CHECK_SECONDS
        try:
            async with asyncio.timeout(timeout):
                pool = await self.pool()
                async with pool.acquire() as conn:
                    await conn.fetchval("SELECT 1")
        except TimeoutError:
            return f"the database did not answer within {timeout:g} s ({describe_url(self.url)})"
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            return f"the database is unreachable ({describe_url(self.url)}): {describe(exc)}"
        return None

    # -- tasks --------------------------------------------------------------------------

    async def save(self, task: Task) -> None:
        """Insert a new task alone (no conversation); :class:`~taskcell.abc.DuplicateTask`
        when its id is taken. Beyond the protocol: for scripts, benchmarks and tests that
        fill a store (the service creates tasks with ``create``)."""
        values = codec.task_values(task, dialect="postgres")
        pool = await self.pool()
        try:
            await pool.execute(_TASK_INSERT, *values)
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateTask(f"task {task.task_id} exists already") from exc

    async def create(self, task: Task, *, conversation_title: str) -> bool:
        """Insert the task and its conversation (if new) in one statement (a CTE)."""
        values = codec.task_values(task, dialect="postgres")
        conversation = (task.conversation_id, conversation_title, task.user_id, utcnow())
        pool = await self.pool()
        try:
            return bool(await pool.fetchval(_CREATE_TASK, *values, *conversation))
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateTask(f"task {task.task_id} exists already") from exc

    async def load(self, task_id: str) -> Task | None:
        row = await (await self.pool()).fetchrow(_TASK_BY_ID, task_id)
        return codec.salvaged_task(row) if row is not None else None

    async def delete(self, task_id: str) -> bool:
        """Delete the task with its runs, events and conversation items in one statement."""
        return _row_count(await (await self.pool()).execute(_TASK_DELETE, task_id)) > 0

    async def list_tasks(
        self, flt: TaskFilter, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Task]:
        where, args = _filter_sql(flt)
        after = position(cursor)
        if after is not None:
            args += [codec.utc(after[0]), after[1]]
            where.append(TASKS.after_sql(f"${len(args) - 1}", f"${len(args)}"))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        args.append(limit + 1)
        sql = f"{_TASK_SELECT}{clause} {TASKS.order_sql} LIMIT ${len(args)}"
        rows = await (await self.pool()).fetch(sql, *args)
        return keyset_page(rows, limit, decode=_list_decoded, key=_TASK_POSITION)

    async def transition(
        self,
        task_id: str,
        target: TaskStatus,
        *,
        expected: Collection[TaskStatus] | None = None,
        changes: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> bool:
        changes = changes or {}
        args = _transition_args(task_id, target, expected, changes, now)
        if not args[3]:
            return False
        sql = _transition_sql(target.value, tuple(changes))
        return _row_count(await (await self.pool()).execute(sql, *args)) == 1

    async def update(
        self,
        task_id: str,
        changes: Mapping[str, Any],
        *,
        expected: Collection[TaskStatus] | None = None,
        now: datetime | None = None,
        fence: Fence | None = None,
        version: int | None = None,
    ) -> bool:
        check_changes(changes)
        if fence is not None and version is not None:
            raise ValueError("an update is guarded by a fence or by a version, not both")
        encoded = codec.encode_changes(changes, dialect="postgres")
        args: list[Any] = [task_id, codec.utc(now or utcnow())]
        if expected is not None:
            statuses = [TaskStatus(s).value for s in expected]
            if not statuses:
                return False
            args.append(statuses)
        args += encoded.values()
        if fence is not None:
            sql = _fenced_update_sql(tuple(encoded), expected is not None)
            args += [fence.run_id, fence.owner, fence.epoch]
            row = await (await self.pool()).fetchrow(sql, *args)
            assert row is not None
            if row["held"] == 0:
                raise lease_lost(fence)
            return bool(row["changed"] == 1)
        sql = _update_sql(tuple(encoded), expected is not None)
        if version is not None:
            args.append(version)
            sql += f" AND version = ${len(args)}"
        return _row_count(await (await self.pool()).execute(sql, *args)) == 1

    async def edit(
        self, task_id: str, change: Callable[[Task, datetime], Mapping[str, Any]]
    ) -> Task | None:
        """The task held (``FOR UPDATE``: a claim skips it until the edit commits) and read,
        the database's clock read with it held, the change written in the same transaction."""
        pool = await self.pool()
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_TASK_FOR_EDIT, task_id)
            if row is None:
                return None
            now = as_utc(await conn.fetchval("SELECT clock_timestamp()"), "the database clock")
            task = codec.salvaged_task(row)
            changes = dict(change(task.model_copy(deep=True), now))
            check_changes(changes)
            encoded = codec.encode_changes(changes, dialect="postgres")
            sets = [
                codec.assignment(name, f"${i}", dialect="postgres")
                for i, name in enumerate(encoded, start=4)
            ]
            sets += ["updated_at = $1", "version = version + 1"]
            sql = f"UPDATE tasks SET {', '.join(sets)} WHERE task_id = $2 AND version = $3"
            status = await conn.execute(sql, now, task_id, task.version, *encoded.values())
            if _row_count(status) != 1:  # pragma: no cover - held since read
                raise RuntimeError(f"task {task_id} changed while held for an edit")
        return task.model_copy(update={**changes, "updated_at": now, "version": task.version + 1})

    async def cancel_conversation(
        self, conversation_id: str, *, reason: str | None = None, now: datetime | None = None
    ) -> list[str]:
        moment = codec.utc(now or utcnow())
        pool = await self.pool()
        rows = await pool.fetch(_CANCEL_CONVERSATION, moment, reason, conversation_id, _FINAL)
        return [row["task_id"] for row in rows]

    # -- runs ---------------------------------------------------------------------------

    async def add_run(self, run: Run) -> bool:
        """Insert ``run``; False when its task already has a run for ``run.scheduled_for``."""
        values = codec.run_values(run, dialect="postgres")
        pool = await self.pool()
        try:
            return _row_count(await pool.execute(_RUN_INSERT, *values)) == 1
        except asyncpg.UniqueViolationError as exc:
            raise ValueError(f"run {run.run_id} exists already") from exc

    async def start_run(self, run: Run, *, now: datetime | None = None) -> bool:
        """Move the task to running and insert the run in one statement (a CTE), so both or
        neither: a unique violation on the attempt undoes the move too."""
        values = codec.run_values(run, dialect="postgres")
        pool = await self.pool()
        try:
            status = await pool.execute(_START_RUN, *values, codec.utc(now or utcnow()))
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "runs_pkey":
                raise ValueError(f"run {run.run_id} exists already") from exc
            return False
        return _row_count(status) == 1

    async def continue_run(
        self,
        run_id: str,
        *,
        task_id: str,
        owner: str,
        lease_expires_at: datetime,
        now: datetime | None = None,
    ) -> bool:
        """Both moves in one statement: the run's UPDATE reads the task's from a CTE."""
        args = (task_id, run_id, owner, codec.utc(lease_expires_at), codec.utc(now or utcnow()))
        status = await (await self.pool()).execute(_CONTINUE_RUN, *args)
        return _row_count(status) == 1

    async def update_run(
        self,
        run_id: str,
        changes: Mapping[str, Any],
        *,
        expected: Collection[RunStatus] | None = None,
        fence: Fence | None = None,
    ) -> bool:
        encoded = _run_changes(changes)
        args: list[Any] = [run_id]
        if fence is not None:
            expected = OPEN_RUN_STATUSES if expected is None else OPEN_RUN_STATUSES & set(expected)
        if expected is not None:
            statuses = sorted(RunStatus(s).value for s in expected)
            if not statuses:
                return False
            args.append(statuses)
        sql = _update_run_sql(tuple(encoded), expected is not None, fence is not None)
        args += encoded.values()
        if fence is not None:
            args += [fence.owner, fence.epoch]
        changed = _row_count(await (await self.pool()).execute(sql, *args)) == 1
        if fence is not None and not changed:
            raise lease_lost(fence)
        return changed

    async def finish_run(
        self,
        run_id: str,
        changes: Mapping[str, Any],
        *,
        task_id: str,
        target: TaskStatus,
        expected: Collection[TaskStatus] | None = None,
        task_changes: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        fence: Fence | None = None,
    ) -> tuple[bool, bool]:
        """Close the run and move its task in one statement: two guarded UPDATEs in a CTE."""
        encoded = _run_changes(changes)
        task_changes = task_changes or {}
        moving = _transition_args(task_id, target, expected, task_changes, now)
        fenced = fence is not None
        sql = _finish_run_sql(tuple(encoded), target.value, tuple(task_changes), fenced)
        held = [fence.owner, fence.epoch] if fence is not None else []
        args = [run_id, _OPEN_RUN, *encoded.values(), *held, *moving]
        row = await (await self.pool()).fetchrow(sql, *args)
        assert row is not None
        if fence is not None and row["closed"] != 1:
            raise lease_lost(fence)
        return row["closed"] == 1, row["moved"] == 1

    async def load_run(self, run_id: str) -> Run | None:
        row = await (await self.pool()).fetchrow(_RUN_BY_ID, run_id)
        return codec.run_from_row(row) if row is not None else None

    async def list_runs(
        self, task_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Run]:
        sql = f"{_RUN_SELECT} WHERE task_id = $1"
        args: list[Any] = [task_id]
        after = position(cursor)
        if after is not None:
            sql += f" AND {RUNS.after_sql('$2', '$3')}"
            args += [codec.utc(after[0]), after[1]]
        args.append(limit + 1)
        sql += f" {RUNS.order_sql} LIMIT ${len(args)}"
        rows = await (await self.pool()).fetch(sql, *args)
        return keyset_page(rows, limit, decode=_runs, key=_RUN_POSITION)

    async def runs_in_status(
        self, statuses: Sequence[RunStatus], *, task_id: str | None = None
    ) -> list[Run]:
        values = [RunStatus(s).value for s in statuses]
        if not values:
            return []
        pool = await self.pool()
        if task_id is not None:
            rows = await pool.fetch(_RUNS_OF_IN_STATUS, values, task_id)
            return [codec.run_from_row(row) for row in rows]
        rows = await pool.fetch(_RUNS_IN_STATUS, values)
        return [codec.run_from_row(row) for row in rows]

    async def next_due_at(self) -> datetime | None:
        value = await (await self.pool()).fetchval(_NEXT_DUE_AT)
        return codec.utc(value) if value is not None else None

    async def read_ahead(self, due_before: datetime, *, limit: int = 500) -> int:
        rows = await (await self.pool()).fetch(_READ_AHEAD, codec.utc(due_before), limit)
        return len(rows)

    async def claim_occurrence(
        self, task_id: str, *, due: datetime, next_run_at: datetime | None
    ) -> bool:
        """Move an armed task's ``next_run_at`` from ``due`` to ``next_run_at`` in one
        guarded write; answers whether it did (of several claimers of one ``due``, exactly
        one wins). Beyond the protocol: the scheduler claims with ``start_due``; this is the
        one-at-a-time claim benchmarks compare it with."""
        args = (codec.utc(next_run_at), codec.utc(utcnow()), task_id, codec.utc(due))
        return _row_count(await (await self.pool()).execute(_CLAIM_OCCURRENCE, *args)) == 1

    async def start_due(
        self,
        now: datetime,
        next_time: Callable[[Task], datetime | None],
        make_run: Callable[[Task, datetime], Run | Sequence[Run] | None],
        *,
        skipped_reason: str,
        limit: int = 500,
    ) -> list[tuple[Task, Run | None]]:
        """``claim_due`` and the claimed occurrences' runs in one transaction."""
        pool = await self.pool()
        started: list[tuple[Task, Run | None]] = []
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM_DUE_SELECT, codec.utc(now), limit)
            if not rows:
                return started
            moment = utcnow()
            claimed = []
            for task in await _claimable(conn, rows, moment, where="start_due"):
                due = task.next_run_at
                assert due is not None
                task.next_run_at = next_time(task)
                claimed.append((task, due))
            if not claimed:
                return started
            await conn.executemany(
                _CLAIM_DUE_UPDATE,
                [(codec.utc(t.next_run_at), moment, t.task_id) for t, _ in claimed],
            )
            batches = []
            for task, due in claimed:
                made = make_run(task, due)
                runs = [] if made is None else [made] if isinstance(made, Run) else list(made)
                batches.append((task, runs))
            for (task, _), stored in zip(
                batches, await _admit_all(conn, batches, moment, skipped_reason), strict=True
            ):
                answers = [(task, r) for r in [*stored.runs, *stored.replaced]]
                started += answers or [(task, None)]
        return started

    async def add_occurrences(self, task_id: str, runs: Sequence[Run]) -> OccurrenceRuns | None:
        pool = await self.pool()
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_LOCK_TASK, task_id)
            if row is None or row["pattern"] != "recurring" or row["status"] != "running":
                return None
            task = codec.task_from_row(row)
            return (await _admit_all(conn, [(task, list(runs))], utcnow()))[0]

    async def start_queued(
        self, owner: str, lease: timedelta, *, limit: int = 100
    ) -> list[tuple[Task, Run]]:
        pool = await self.pool()
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_NEXT_QUEUED, limit)
            if not rows:
                return []
            updated = await conn.fetch(_START_QUEUED, owner, lease, [r["run_id"] for r in rows])
            runs = [codec.run_from_row(r) for r in updated]
            tasks, _ = codec.decoded_tasks(
                await conn.fetch(_TASKS_OF, [r.task_id for r in runs]), where="start_queued"
            )
        by_id = {t.task_id: t for t in tasks}
        return [(by_id[r.task_id], r) for r in runs if r.task_id in by_id]

    async def claim_pending(self, idle_for: timedelta, *, limit: int = 100) -> list[Task]:
        """Claim orphaned pending tasks no other process holds (SKIP LOCKED), idle for
        ``idle_for`` by the database's clock."""
        rows = await (await self.pool()).fetch(_CLAIM_PENDING, idle_for, limit)
        tasks, _ = codec.decoded_tasks(rows, where="claim_pending")
        return sorted(tasks, key=lambda t: (t.created_at, t.task_id))

    async def count_by_status(self) -> dict[str, int]:
        """How many tasks are in each status (statuses without tasks are left out): the sum
        of the changes each task write appends (``015_task_counts.sql``), never a scan of the
        tasks."""
        rows = await (await self.pool()).fetch(_COUNT_BY_STATUS)
        return {row["status"]: int(row["tasks"]) for row in rows}

    # -- coordination (a cluster) --------------------------------------------------------

    single_server = False

    async def clock(self) -> datetime:
        now: datetime = await (await self.pool()).fetchval(_CLOCK)
        return as_utc(now)

    async def heartbeat(self, process_id: str) -> None:
        """Beyond the protocol: also folds the task count changes (see :meth:`count_by_status`),
        so they stay a few rows long on a database whose counts nobody reads."""
        await (await self.pool()).execute(_HEARTBEAT, process_id)

    async def live_processes(self, within: timedelta) -> list[ProcessInfo]:
        rows = await (await self.pool()).fetch(_LIVE_PROCESSES, within)
        return [codec.process_from_row(row) for row in rows]

    async def claim_dead_processes(self, silent_for: timedelta, *, keep: str) -> list[ProcessInfo]:
        rows = await (await self.pool()).fetch(_DEAD_PROCESSES, silent_for, keep)
        processes = [codec.process_from_row(row) for row in rows]
        return sorted(processes, key=lambda p: (p.started_at, p.process_id))

    async def runs_finished_by(self, owner: str, since: datetime) -> list[Run]:
        rows = await (await self.pool()).fetch(_RUNS_FINISHED_BY, owner, codec.utc(since))
        return [codec.run_from_row(row) for row in rows]

    async def renew_leases(self, owner: str, lease: timedelta) -> int:
        status = await (await self.pool()).execute(_RENEW_LEASES, lease, owner)
        return _row_count(status)

    async def interrupt_expired(self, reason: str, *, by: str | None = None) -> list[Run]:
        rows = await (await self.pool()).fetch(_INTERRUPT_EXPIRED, reason, by)
        return [codec.run_from_row(row) for row in rows]

    async def notify(self, message: str) -> None:
        await (await self.pool()).execute(_NOTIFY, message)

    async def listen(
        self, handler: Callable[[str], None], *, on_listening: Callable[[], None] | None = None
    ) -> None:
        """LISTEN on a connection of its own until cancelled; raises ``ConnectionError`` when
        that connection drops (the caller listens again, see the contract)."""
        conn = await asyncpg.connect(self.url, timeout=self._connect_timeout)
        lost = asyncio.Event()

        def on_message(_c: object, _pid: int, _channel: str, payload: object) -> None:
            handler(str(payload))

        conn.add_termination_listener(functools.partial(_set_event, lost))
        try:
            await conn.add_listener(CHANNEL, on_message)
            if on_listening is not None:
                on_listening()
            await lost.wait()
            raise ConnectionError(f"notification connection lost ({describe_url(self.url)})")
        finally:
            if not conn.is_closed():
                await asyncio.shield(conn.close(timeout=self._close_timeout))

    # -- events and conversations ---------------------------------------------------------

    async def append_events(
        self,
        events: Sequence[Event],
        items: Sequence[ConversationItem],
        *,
        notices: Sequence[str] = (),
    ) -> None:
        """Insert the events, upsert the items and notify in one statement (one transaction)."""
        if not events and not items:
            for notice in notices:
                await self.notify(notice)
            return
        event_columns: list[list[Any]] = [[], [], []]
        for event in events:
            event_columns[0].append(event.task_id)
            event_columns[1].append(event.seq)
            event_columns[2].append(codec.event_body(event))
        fences = {e.fence for e in events if e.fence is not None}
        fence_columns = [
            [f.run_id for f in fences],
            [f.owner for f in fences],
            [f.epoch for f in fences],
        ]
        dones: dict[str, int] = {}
        for event in events:
            if event.event is EventType.DONE:
                dones.setdefault(event.task_id, event.seq)
        pool = await self.pool()
        args = (
            *event_columns,
            *fence_columns,
            list(dones),
            list(dones.values()),
            list(dict.fromkeys(event_columns[0])),
            *_item_columns(items),
            list(notices),
            _FINAL,
        )
        worthy = worthy_task_ids(events)  # most batches: none, and no lookup
        try:
            if worthy:
                row = await self._append_with_outbox(pool, args, events, worthy)
            else:
                row = await pool.fetchrow(_APPEND_EVENTS, *args)
        except asyncpg.UniqueViolationError as exc:
            raise EventConflict(f"events already stored: {exc.detail or exc}") from exc
        except asyncpg.DataError as exc:
            if isinstance(exc.__cause__, UnicodeError):
                raise exc.__cause__ from exc  # text that is not valid Unicode, as in SQLite
            raise
        assert row is not None
        if row["lost"]:
            raise LeaseLost(f"runs no longer held: {sorted(row['lost'])}", run_ids=row["lost"])
        if row["closed"]:
            raise LogClosed(f"logs closed: {sorted(row['closed'])}", task_ids=row["closed"])

    async def read_events(self, task_id: str, *, after: int = 0, limit: int = 500) -> list[Event]:
        rows = await (await self.pool()).fetch(_EVENT_READ, task_id, after, limit)
        return [codec.event_from_body(row["body"]) for row in rows]

    async def last_seq(self, task_id: str) -> int:
        return int(await (await self.pool()).fetchval(_LAST_SEQ, task_id))

    # -- retention ------------------------------------------------------------------------

    async def log_start(self, task_id: str) -> int:
        return int(await (await self.pool()).fetchval(_LOG_START, task_id) or 0)

    async def once_tasks_to_prune(
        self,
        finished_before: datetime,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[tuple[datetime, str]]:
        moment, task_id = after if after is not None else (None, None)
        rows = await (await self.pool()).fetch(
            _TO_PRUNE, codec.utc(finished_before), codec.utc(moment), task_id, limit
        )
        return [(as_utc(row["completed_at"]), row["task_id"]) for row in rows]

    async def recurring_log_cuts(
        self, keep: int, *, after: str | None = None, limit: int = 100
    ) -> list[LogCut]:
        keep = max(keep, 1)
        rows = await (await self.pool()).fetch(_LOG_CUTS, keep - 1, keep, after or "", limit)
        return [
            log_cut(
                row["task_id"],
                int(row["pruned_seq"]),
                None if row["kept_at"] is None else (as_utc(row["kept_at"]), row["kept_log"]),
                None if row["open_at"] is None else (as_utc(row["open_at"]), row["open_log"]),
                None if row["oldest_at"] is None else as_utc(row["oldest_at"]),
            )
            for row in rows
        ]

    async def prune_events(
        self,
        task_id: str,
        *,
        through: int | None,
        limit: int,
        finished_before: datetime | None = None,
        dry_run: bool = False,
    ) -> int:
        upto = 2**63 - 1 if through is None else through
        args = (task_id, codec.utc(finished_before), upto)
        pool = await self.pool()
        if dry_run:
            return int(await pool.fetchval(_COUNT_EVENTS, *args))
        return int(await pool.fetchval(_PRUNE_EVENTS, *args, limit))

    async def prune_items(
        self, task_id: str, *, finished_before: datetime, dry_run: bool = False
    ) -> int | None:
        sql = _COUNT_ITEMS if dry_run else _PRUNE_ITEMS
        row = await (await self.pool()).fetchrow(sql, task_id, codec.utc(finished_before))
        assert row is not None
        allowed, newer, count = row[0], row[1], row[2]
        if not allowed:
            return 0
        return None if newer else int(count)

    async def prune_logs(
        self, cuts: Sequence[tuple[str, int]], *, limit: int, dry_run: bool = False
    ) -> Pruned:
        done = removed = 0
        async with (await self.pool()).acquire() as conn, conn.transaction():
            for task_id, through in cuts:
                found = await conn.fetchval(_RECURRING_LOG_START, task_id)
                start = through if found is None else int(found)
                if start >= through:
                    done += 1
                    continue
                if dry_run:
                    removed += int(
                        await conn.fetchval(_COUNT_EVENTS_BETWEEN, task_id, start, through)
                    )
                    done += 1
                    continue
                if removed >= limit:
                    break
                upto = min(through, start + limit - removed)  # a log's seqs have no gaps
                removed += int(await conn.fetchval(_PRUNE_EVENTS_BETWEEN, task_id, start, upto))
                if upto < through:
                    break
                done += 1
        return Pruned(tasks=done, events=removed)

    async def prune_once_tasks(
        self,
        task_ids: Sequence[str],
        *,
        finished_before: datetime,
        limit: int,
        dry_run: bool = False,
    ) -> Pruned:
        moment = codec.utc(finished_before)
        done = events = items = kept = 0
        async with (await self.pool()).acquire() as conn, conn.transaction():
            for task_id in task_ids:
                if events + items >= limit and not dry_run:
                    break
                if not await conn.fetchval(_ONCE_PRUNABLE, task_id, moment):
                    done += 1
                    continue
                budget = limit - events - items
                if dry_run:
                    events += int(await conn.fetchval(_COUNT_EVENTS, task_id, moment, 2**63 - 1))
                else:
                    removed = int(
                        await conn.fetchval(_PRUNE_EVENTS, task_id, moment, 2**63 - 1, budget)
                    )
                    events += removed
                    if removed == budget:
                        break  # the limit reached: more may be left (the next call goes on)
                row = await conn.fetchrow(
                    _COUNT_ITEMS if dry_run else _PRUNE_ITEMS, task_id, moment
                )
                assert row is not None
                allowed, newer, count = row[0], row[1], row[2]
                if allowed and newer:
                    kept += 1
                elif allowed:
                    items += int(count)
                done += 1
        return Pruned(tasks=done, events=events, items=items, conversations_kept=kept)

    async def prune_runs(
        self,
        task_ids: Sequence[str],
        *,
        finished_before: datetime,
        limit: int,
        dry_run: bool = False,
    ) -> int:
        cutoff = codec.utc(finished_before)
        removed = 0
        async with (await self.pool()).acquire() as conn, conn.transaction():
            for task_id in task_ids:
                if dry_run:
                    removed += int(await conn.fetchval(_COUNT_OLD_RUNS, task_id, cutoff))
                    continue
                if removed >= limit:
                    break
                removed += int(await conn.fetchval(_PRUNE_RUNS, task_id, cutoff, limit - removed))
        return removed

    async def prune_deliveries(
        self, *, created_before: datetime, limit: int, dry_run: bool = False
    ) -> int:
        pool = await self.pool()
        cutoff = codec.utc(created_before)
        if dry_run:
            return int(await pool.fetchval(_COUNT_OLD_DELIVERIES, cutoff))
        return int(await pool.fetchval(_PRUNE_DELIVERIES, cutoff, limit))

    async def reclaim_space(self, *, max_pages: int) -> int:
        return 0  # PostgreSQL's autovacuum makes freed space reusable by itself

    async def database_size(self) -> int | None:
        value = await (await self.pool()).fetchval("SELECT pg_database_size(current_database())")
        return int(value)

    @contextlib.asynccontextmanager
    async def retention_lock(self) -> AsyncIterator[bool]:
        pool = await self.pool()
        async with pool.acquire() as conn:
            got = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK_KEY))
            try:
                yield got
            finally:
                if got:
                    await conn.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK_KEY)

    async def list_items(
        self,
        conversation_id: str,
        *,
        user_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[ConversationItem]:
        pool = await self.pool()
        after = position(cursor)
        if user_id is not None:
            created, item_id = after if after is not None else (None, None)
            rows = await pool.fetch(
                _ITEMS_OF_USER_CONVERSATION,
                conversation_id,
                limit + 1,
                codec.utc(created),
                item_id,
                user_id,
            )
        elif after is None:
            rows = await pool.fetch(_ITEMS_OF_CONVERSATION, conversation_id, limit + 1)
        else:
            sql = _ITEMS_OF_CONVERSATION_AFTER
            rows = await pool.fetch(sql, conversation_id, limit + 1, codec.utc(after[0]), after[1])
        return keyset_page(rows, limit, decode=_items, key=_ITEM_POSITION)

    async def task_items(
        self, task_id: str, *, component_type: str | None = None
    ) -> list[ConversationItem]:
        pool = await self.pool()
        if component_type is None:
            rows = await pool.fetch(_ITEMS_OF_TASK, task_id)
        else:
            rows = await pool.fetch(_ITEMS_OF_TASK_TYPED, task_id, component_type)
        return [codec.item_from_row(row) for row in rows]

    async def ensure_conversation(self, conversation_id: str, *, title: str, user_id: str) -> bool:
        """Create ``user_id``'s conversation record if missing; answers whether it did.
        Beyond the protocol (``create`` stores a task's conversation): for tests."""
        args = (conversation_id, title, user_id, codec.utc(utcnow()))
        return _row_count(await (await self.pool()).execute(_CONVERSATION_INSERT, *args)) == 1

    async def has_conversation(self, conversation_id: str, *, user_id: str | None = None) -> bool:
        pool = await self.pool()
        if user_id is None:
            return bool(await pool.fetchval(_ANY_CONVERSATION, conversation_id))
        return bool(await pool.fetchval(_USER_CONVERSATION, conversation_id, user_id))

    # -- schema versions ---------------------------------------------------------------------

    async def _append_with_outbox(
        self, pool: Pool, args: tuple[Any, ...], events: Sequence[Event], worthy: list[str]
    ) -> asyncpg.Record | None:
        """Append a batch and write the deliveries it makes, in one transaction."""
        async with pool.acquire() as conn, conn.transaction():
            controllers = controller_ids(events)
            paused: dict[str, bool] = {}
            if controllers:  # read before the batch's items replace them
                for found in await conn.fetch(_ITEM_PAYLOADS, controllers):
                    paused[found["item_id"]] = paused_in(codec._json(found["payload"]))
            row = await conn.fetchrow(_APPEND_EVENTS, *args)
            if row is None or row["lost"] or row["closed"]:
                return row  # nothing was written
            heard: dict[str, list[Webhook]] = {}
            for found in await conn.fetch(_SUBSCRIBERS, worthy):
                heard.setdefault(found["heard_task"], []).append(codec.webhook_from_row(found))
            if not heard:
                return row
            tasks = await conn.fetch(f"{_TASK_SELECT} WHERE task_id = ANY($1::text[])", list(heard))
            now = utcnow()
            planned: list[Delivery] = []
            for task_row in tasks:
                task = codec.salvaged_task(task_row)
                planned += plan_deliveries(
                    events, task, heard[task.task_id], lambda i: paused.get(i, False), now
                )
            if planned:
                await conn.execute(
                    _DELIVERY_INSERT,
                    [d.delivery_id for d in planned],
                    [d.webhook_id for d in planned],
                    [d.task_id for d in planned],
                    [d.seq for d in planned],
                    [d.event_type for d in planned],
                    [d.body for d in planned],
                )
            return row

    # -- webhooks -------------------------------------------------------------------------

    async def add_webhook(self, webhook: Webhook) -> None:
        values = codec.webhook_values(webhook, "postgres")
        await (await self.pool()).execute(_WEBHOOK_INSERT, *values)

    async def load_webhook(self, webhook_id: str) -> Webhook | None:
        sql = f"{_WEBHOOK_SELECT} WHERE webhook_id = $1"
        row = await (await self.pool()).fetchrow(sql, webhook_id)
        return codec.webhook_from_row(row) if row is not None else None

    async def list_webhooks(self, *, user_id: str | None = None) -> list[Webhook]:
        pool = await self.pool()
        if user_id is None:
            rows = await pool.fetch(f"{_WEBHOOK_SELECT} ORDER BY created_at, webhook_id")
        else:
            sql = f"{_WEBHOOK_SELECT} WHERE user_id = $1 ORDER BY created_at, webhook_id"
            rows = await pool.fetch(sql, user_id)
        return [codec.webhook_from_row(row) for row in rows]

    async def delete_webhook(self, webhook_id: str) -> bool:
        sql = (
            "WITH gone AS (DELETE FROM webhook_deliveries WHERE webhook_id = $1)"
            " DELETE FROM webhooks WHERE webhook_id = $1"
        )
        return _row_count(await (await self.pool()).execute(sql, webhook_id)) > 0

    async def rotate_webhook_secret(self, webhook_id: str, secret: str) -> bool:
        sql = "UPDATE webhooks SET secret = $2 WHERE webhook_id = $1"
        return _row_count(await (await self.pool()).execute(sql, webhook_id, secret)) > 0

    async def claim_deliveries(
        self, claim_for: timedelta, *, limit: int = 100
    ) -> list[tuple[Delivery, Webhook]]:
        rows = await (await self.pool()).fetch(_CLAIM_DELIVERIES, claim_for, limit)
        claimed = []
        for row in rows:
            hook = {c: row[f"w_{c}"] for c in codec.WEBHOOK_COLUMNS}
            claimed.append((codec.delivery_from_row(row), codec.webhook_from_row(hook)))
        claimed.sort(key=lambda pair: (pair[0].next_attempt_at or utcnow(), pair[0].seq))
        return claimed

    async def finish_delivery(
        self,
        delivery_id: str,
        *,
        attempt: int,
        status: DeliveryStatus,
        retry_in: timedelta | None = None,
        status_code: int | None = None,
        response: str | None = None,
        error: str | None = None,
        disable_after: timedelta,
    ) -> bool:
        pool = await self.pool()
        async with pool.acquire() as conn, conn.transaction():
            webhook_id = await conn.fetchval(
                _FINISH_DELIVERY,
                status.value,
                retry_in or timedelta(0),
                status_code,
                response,
                error,
                delivery_id,
                attempt,
            )
            if webhook_id is None:
                return False
            if status is DeliveryStatus.DELIVERED:
                await conn.execute(_SUCCEEDING, webhook_id)
                return True
            row = await conn.fetchrow(_FAILING, webhook_id, disable_after)
            if row is not None and row["disabled"]:
                reason = disabled_reason(as_utc(row["failing_since"]))
                await conn.execute(_DISABLED_REASON, webhook_id, reason)
                await conn.execute(_FAIL_PENDING, webhook_id, reason)
                logger.warning("webhook disabled", extra={"webhook_id": webhook_id})
            return True

    async def list_deliveries(
        self, webhook_id: str, *, limit: int = 50, status: DeliveryStatus | None = None
    ) -> list[Delivery]:
        sql = (
            f"{_DELIVERY_SELECT} WHERE webhook_id = $1 AND ($2::text IS NULL OR status = $2)"
            " ORDER BY created_at DESC, delivery_id DESC LIMIT $3"
        )
        value = None if status is None else status.value
        rows = await (await self.pool()).fetch(sql, webhook_id, value, limit)
        return [codec.delivery_from_row(row) for row in rows]

    async def redeliver(self, webhook_id: str, delivery_id: str) -> Delivery | None:
        row = await (await self.pool()).fetchrow(_REDELIVER, delivery_id, webhook_id)
        return codec.delivery_from_row(row) if row is not None else None

    async def delivery_counts(self) -> dict[str, int]:
        sql = (
            "SELECT status, count(*) AS n FROM webhook_deliveries"
            " WHERE status IN ('pending', 'sending') GROUP BY status"
        )
        rows = await (await self.pool()).fetch(sql)
        return {row["status"]: int(row["n"]) for row in rows}


def migration_files() -> list[tuple[int, str, str]]:
    """(number, file name, SQL) of every PostgreSQL schema version, in order."""
    folder = resources.files("taskcell.stores.sql").joinpath("postgres")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            found.append((number, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def apply_migrations(conn: Connection) -> int:
    """Apply every schema version not yet applied, each in its own transaction.

    A version is applied when its own number is missing from ``schema_version``, whatever
    higher numbers are there (a version that lands after a higher one is still applied). Each
    transaction first takes ``pg_advisory_xact_lock(SCHEMA_LOCK_KEY)`` and looks for the version
    again under it, so processes opening the same new database at once apply each version
    exactly once. Answers the highest schema version now in force.
    """
    files = migration_files()
    applied: set[int] = set()
    if await conn.fetchval(_SCHEMA_VERSION_EXISTS):
        applied = {row["version"] for row in await conn.fetch(_SCHEMA_VERSIONS)}
    missing = [(number, name, script) for number, name, script in files if number not in applied]
    for number, name, script in missing:
        async with conn.transaction():
            await conn.execute(_SCHEMA_LOCK, SCHEMA_LOCK_KEY)
            await conn.execute(_SCHEMA_VERSION_TABLE)
            if not await conn.fetchval(_SCHEMA_VERSION_IS, number):
                await conn.execute(script)
                await conn.execute(_SCHEMA_VERSION_ADD, number, name, utcnow())
                logger.info("schema version applied", extra={"version": number, "file": name})
    current: int = await conn.fetchval(_SCHEMA_VERSION_NOW) if files or applied else 0
    return current
