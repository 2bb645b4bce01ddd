"""SQLiteTaskStore: the store contract on one SQLite file, through the standard sqlite3 module.

How it talks to the file. Handing work to a thread costs about 0.3 ms here, more than a whole
write, so statements run directly on the event loop's thread (WAL, ``synchronous=NORMAL``, so a
commit does not wait for the disk). Writes use *group commit*: a write runs its statement at once
inside an open ``BEGIN IMMEDIATE`` transaction and then awaits the commit, which is made once for
every write of the same loop iteration. One writer at a time pays one commit per write; fifty
concurrent writers share one. A caller learns a write's outcome only after it is committed.

Each write is one guarded statement (``UPDATE ... WHERE status IN (...)``), so other processes
on the same file (the CLI, scripts) stay correct: SQLite serialises their transactions.

Disk faults. A write the disk refuses (full, read-only, an I/O error) fails its callers with
SQLite's error (an outage: the API answers 503) and is remembered until a later commit
succeeds, for :meth:`SQLiteTaskStore.check` (``/health``); reads go on. The file's identity
(device and inode) is taken when it is opened, and a descriptor of it kept: once no link is
left to that file (deleted, or replaced by a rename), every write is refused with
:class:`StoreUnavailable` rather than written into a file nobody will open again (an
``fstat`` per transaction, about as cheap as a system call gets). ``check`` runs on its own
connection in a worker thread with a time-out, so ``/health`` answers even while the disk
stalls.

Checkpoints. Moving the WAL's pages into the file (and syncing it) is the only part of a write
that waits for the disk; SQLite's automatic checkpoint would do it inside whichever commit
crosses its threshold, on the event loop, for as long as the disk takes (100 ms and more on a
large file whose pages are spread out, measured by ``bench/scale.py``). So after a commit, at
most every :data:`CHECKPOINT_EVERY_SECONDS`, the store hands a ``PASSIVE`` checkpoint (which
never blocks a writer or a reader) to a worker thread with a connection of its own; the
automatic one stays only as a bound (:data:`WAL_AUTOCHECKPOINT_PAGES`) should that thread
fall behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import IO, Any, TypeVar

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
    StoreUnavailable,
    TaskFilter,
)
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
from taskcell.outages import is_outage
from taskcell.stores import codec
from taskcell.stores.cursor import ITEMS, RUNS, TASKS, keyset_page, position
from taskcell.stores.rules import (
    admit_runs,
    check_changes,
    check_run_changes,
    lease_lost,
    log_cut,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

_TASK_SELECT = f"SELECT {', '.join(codec.TASK_COLUMNS)} FROM tasks"
_RUN_SELECT = f"SELECT {', '.join(codec.RUN_COLUMNS)} FROM runs"
_TASK_INSERT = (
    f"INSERT INTO tasks ({', '.join(codec.TASK_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in codec.TASK_COLUMNS)})"
)
_RUN_INSERT = (
    f"INSERT INTO runs ({', '.join(codec.RUN_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in codec.RUN_COLUMNS)})"
)
_EVENT_INSERT = "INSERT INTO events (task_id, seq, body) VALUES (?, ?, ?)"
_LOG_STATE = "SELECT log_closed, status FROM tasks WHERE task_id = ?"
_CLOSE_LOG = "UPDATE tasks SET log_closed = 1 WHERE task_id = ?"
_EVENT_READ = "SELECT body FROM events WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?"
_ITEM_SELECT = f"SELECT {', '.join(codec.ITEM_COLUMNS)} FROM conversation_items"
_ITEM_UPSERT = (
    f"INSERT INTO conversation_items ({', '.join(codec.ITEM_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in codec.ITEM_COLUMNS)}) "
    "ON CONFLICT (item_id) DO UPDATE SET payload = excluded.payload, event = excluded.event,"
    " metadata = excluded.metadata, run_id = excluded.run_id, updated_at = excluded.updated_at"
)
_CONVERSATION_INSERT = "INSERT INTO conversations VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
_ANY_CONVERSATION = "SELECT 1 FROM conversations WHERE conversation_id = ? LIMIT 1"
_USER_CONVERSATION = "SELECT 1 FROM conversations WHERE user_id = ? AND conversation_id = ?"
_TASKS_OF_USER_CONVERSATION = "SELECT task_id FROM tasks WHERE conversation_id = ? AND user_id = ?"
_PROCESS_COLUMNS = "process_id, started_at, heartbeat_at"
_LIVE_PROCESSES = (
    f"SELECT {_PROCESS_COLUMNS} FROM processes WHERE heartbeat_at >= ?"
    " ORDER BY started_at, process_id"
)
_DEAD_PROCESSES = (
    f"DELETE FROM processes WHERE heartbeat_at < ? AND process_id <> ? RETURNING {_PROCESS_COLUMNS}"
)
#: Two index searches (runs_by_owner_finished, runs_by_closer), not one OR that SQLite answers
#: by scanning every ended run of the file.
_RUNS_FINISHED_BY = (
    f"{_RUN_SELECT} WHERE owner = ?1 AND closed_by IS NULL"
    " AND finished_at IS NOT NULL AND finished_at >= ?2"
    f" UNION ALL {_RUN_SELECT} WHERE closed_by = ?1"
    " AND finished_at IS NOT NULL AND finished_at >= ?2 ORDER BY finished_at, run_id"
)
#: The condition of the partial index runs_active, word for word: a query that says it may use
#: that index (SQLite matches a partial index's condition by its terms; bound values never do).
_ACTIVE_RUNS = "status IN ('queued', 'running', 'waiting_input')"
#: Whether a task has a run going: a search of the partial index runs_open_by_task (010), which
#: holds only open runs, not of the task's every run.
_LIVE_RUN = (
    "SELECT 1 FROM runs WHERE task_id = ? AND status IN ('queued', 'running')"
    " AND lease_expires_at > ?"
)
_ACTIVE_RUN_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_INPUT})
_FINAL = tuple(s.value for s in FINAL_STATUSES)
#: ?1 now, ?2 the reason (None keeps the task's), ?3 the conversation, then the final statuses.
_CANCEL_CONVERSATION = (
    "UPDATE tasks SET status = 'cancelled', "
    + ", ".join(codec.effect_sql(TaskStatus.CANCELLED, "?1"))
    + ", error_message = COALESCE(?2, error_message) WHERE conversation_id = ?3"
    + f" AND status NOT IN ({', '.join(f'?{i}' for i in range(4, 4 + len(_FINAL)))})"
    + " RETURNING task_id"
)
#: A once task still running on an interrupted run: requeued, or failed without attempts left.
#: ?1 reason, ?2 now, ?3 the run's attempt, ?4 task id.
_RECOVER_TASK = (
    "UPDATE tasks SET status = CASE WHEN ?3 < max_attempts THEN 'pending' ELSE 'failed' END,"
    " error_message = CASE WHEN ?3 < max_attempts THEN error_message ELSE ?1 END, "
    + ", ".join(
        codec.effect_case_sql("?3 < max_attempts", TaskStatus.PENDING, TaskStatus.FAILED, "?2")
    )
    + " WHERE task_id = ?4 AND pattern = 'once' AND status = 'running'"
)
_ARMED = "pattern = 'recurring' AND status = 'running' AND paused = 0"
#: The earliest due time and the due tasks, read from the partial index tasks_due (the armed
#: schedules in time order) by name: with no statistics SQLite prefers tasks_by_status and
#: reads every running task (46 ms a call with 10,000 armed schedules, on each scheduler wake).
_NEXT_DUE = f"SELECT MIN(next_run_at) FROM tasks INDEXED BY tasks_due WHERE {_ARMED}"
_DUE = (
    f"{_TASK_SELECT} INDEXED BY tasks_due WHERE {_ARMED} AND next_run_at <= ?"
    " ORDER BY next_run_at, task_id LIMIT ?"
)
#: What a claim of each task due before ?1 reads (at most ?2 tasks): its row, its occurrence's
#: slot (runs_one_per_occurrence), its latest run (runs_by_task) and its log's end (events).
_READ_AHEAD = (
    "SELECT t.task_id, t.version,"
    " (SELECT 1 FROM runs WHERE task_id = t.task_id AND scheduled_for = t.next_run_at),"
    " (SELECT run_id FROM runs WHERE task_id = t.task_id ORDER BY created_at DESC LIMIT 1),"
    " (SELECT MAX(seq) FROM events WHERE task_id = t.task_id)"
    " FROM tasks AS t INDEXED BY tasks_due"
    f" WHERE {_ARMED} AND t.next_run_at < ?1"
    " ORDER BY t.next_run_at LIMIT ?2"
)
#: A claimed task whose row cannot be decoded: disarmed and paused, saying why.
_DISARM = (
    "UPDATE tasks SET next_run_at = NULL, paused = 1, error_message = ?, updated_at = ?"
    f" WHERE task_id = ? AND {_ARMED}"
)
_LAST_SEQ = (
    "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events WHERE task_id = ?1), 0),"
    " COALESCE((SELECT pruned_seq FROM tasks WHERE task_id = ?2), 0))"
)
_MAX_SEQ = 2**63 - 1
_TO_PRUNE = "pattern = 'once' AND retention_done = 0 AND completed_at IS NOT NULL"
#: ?1 task id, ?2 finished before (NULL: any task), then the final statuses.
_FINAL_MARKS = ", ".join(f"?{i}" for i in range(3, 3 + len(_FINAL)))
_PRUNABLE_WHERE = (
    "task_id = ?1 AND (?2 IS NULL OR (pattern = 'once'"
    f" AND completed_at < ?2 AND status IN ({_FINAL_MARKS})))"
)
_PRUNABLE_TASK = f"SELECT 1 FROM tasks WHERE {_PRUNABLE_WHERE}"
_OLDEST_EVENTS = "SELECT seq FROM events WHERE task_id = ? AND seq <= ? ORDER BY seq LIMIT ?"
_COUNT_EVENTS = "SELECT count(*) FROM events WHERE task_id = ? AND seq <= ?"
_PRUNE_EVENTS = "DELETE FROM events WHERE task_id = ? AND seq <= ?"
_RAISE_LOG_START = "UPDATE tasks SET pruned_seq = MAX(pruned_seq, ?) WHERE task_id = ?"
#: ?1 task id, ?2 and ?3 the moment: another task of that user's conversation is newer.
_NEWER_CONVERSATION = (
    "SELECT 1 FROM tasks AS other JOIN tasks AS this ON this.task_id = ?1"
    " WHERE other.conversation_id = this.conversation_id AND other.user_id = this.user_id"
    " AND (other.completed_at IS NULL OR other.completed_at >= ?2 OR other.created_at >= ?3)"
    " LIMIT 1"
)
_COUNT_ITEMS = "SELECT count(*) FROM conversation_items WHERE task_id = ?"
_RETENTION_DONE = (
    "UPDATE tasks SET retention_done = 1 WHERE task_id = ?"
    " AND NOT EXISTS (SELECT 1 FROM events WHERE task_id = ?)"
)
#: ?1 the kept runs less one, ?2 the kept runs, ?3 after this task id, ?4 tasks: each recurring
#: task's ``keep``-th newest run (when it has an older one) and its oldest unfinished run.
_LOG_CUTS = (
    "SELECT t.task_id, t.pruned_seq, k.created_at, k.log_from, o.created_at, o.log_from,"
    " (SELECT created_at FROM runs WHERE task_id = t.task_id ORDER BY created_at LIMIT 1)"
    " FROM tasks AS t"
    " LEFT JOIN runs AS k ON k.run_id = (SELECT run_id FROM runs WHERE task_id = t.task_id"
    " ORDER BY created_at DESC, run_id DESC LIMIT 1 OFFSET ?1)"
    " AND (SELECT 1 FROM runs WHERE task_id = t.task_id"
    " ORDER BY created_at DESC, run_id DESC LIMIT 1 OFFSET ?2) IS NOT NULL"
    " LEFT JOIN runs AS o ON o.run_id = (SELECT run_id FROM runs INDEXED BY"
    " runs_unfinished_by_task WHERE task_id = t.task_id"
    " AND status IN ('queued', 'running', 'waiting_input') ORDER BY created_at LIMIT 1)"
    " WHERE t.pattern = 'recurring' AND t.task_id > ?3 ORDER BY t.task_id LIMIT ?4"
)
_RECURRING_LOG_START = "SELECT pruned_seq FROM tasks WHERE task_id = ? AND pattern = 'recurring'"
_COUNT_EVENTS_BETWEEN = "SELECT count(*) FROM events WHERE task_id = ? AND seq > ? AND seq <= ?"
_PRUNE_EVENTS_BETWEEN = "DELETE FROM events WHERE task_id = ? AND seq > ? AND seq <= ?"
#: A finished once task's log start, when retention may still prune it (the guard's arguments).
_ONCE_LOG_START = f"SELECT pruned_seq FROM tasks WHERE {_PRUNABLE_WHERE} AND retention_done = 0"
#: Reads touching the pages a pruning write will change (see SQLiteTaskStore._on_side): a
#: log's head up to a cut; a once task's row, events, items and conversation; old runs.
_WARM_LOG = "SELECT sum(length(body)) FROM events WHERE task_id = ? AND seq > ? AND seq <= ?"
_WARM_ONCE = (
    "SELECT t.pruned_seq,"
    " (SELECT sum(length(body)) FROM events WHERE task_id = t.task_id),"
    " (SELECT sum(length(payload)) FROM conversation_items WHERE task_id = t.task_id),"
    " (SELECT count(*) FROM tasks AS other WHERE other.conversation_id = t.conversation_id"
    " AND other.user_id = t.user_id AND other.created_at >= ?2)"
    " FROM tasks AS t WHERE t.task_id = ?1"
)
_WARM_RUNS = (
    "SELECT sum(length(run_id) + length(status)) FROM (SELECT run_id, status FROM runs"
    " WHERE task_id = ?1 AND created_at < ?2 ORDER BY created_at LIMIT ?3)"
)
#: ?1 task id, ?2 finished before: a recurring task's closed runs that finished before ?2, by
#: the runs of the task made before ?2 (``runs_by_task``): only old runs are read.
_OLD_RUNS = (
    "FROM runs WHERE task_id = ?1 AND created_at < ?2 AND finished_at < ?2"
    " AND status NOT IN ('queued', 'running', 'waiting_input')"
    " AND EXISTS (SELECT 1 FROM tasks WHERE task_id = ?1 AND pattern = 'recurring')"
)
_COUNT_OLD_RUNS = f"SELECT count(*) {_OLD_RUNS}"
_PRUNE_RUNS = (
    f"DELETE FROM runs WHERE run_id IN (SELECT run_id {_OLD_RUNS} ORDER BY created_at, run_id"
    " LIMIT ?3)"
)
#: Webhook deliveries that ended before ?1 (the partial index ``deliveries_ended``).
_OLD_DELIVERIES = (
    "FROM webhook_deliveries WHERE status IN ('delivered', 'failed') AND created_at < ?1"
)
_COUNT_OLD_DELIVERIES = f"SELECT count(*) {_OLD_DELIVERIES}"
_PRUNE_DELIVERIES = (
    "DELETE FROM webhook_deliveries WHERE delivery_id IN"
    f" (SELECT delivery_id {_OLD_DELIVERIES} ORDER BY created_at LIMIT ?2)"
)
#: How long ``check`` (``/health``) waits for the file to answer a read.
CHECK_SECONDS = 0.9
#: At most this often, a commit hands a checkpoint to the store's checkpoint thread.
CHECKPOINT_EVERY_SECONDS = 0.2
#: SQLite's own checkpoint (in a commit, on the event loop) only past this many WAL pages
#: (~160 MiB): the bound should the checkpoint thread fall behind.
WAL_AUTOCHECKPOINT_PAGES = 40_000

# -- webhooks ----------------------------------------------------------------------------------

_WEBHOOK_SELECT = f"SELECT {', '.join(codec.WEBHOOK_COLUMNS)} FROM webhooks"
_WEBHOOK_INSERT = (
    f"INSERT INTO webhooks ({', '.join(codec.WEBHOOK_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in codec.WEBHOOK_COLUMNS)})"
)
_DELIVERY_SELECT = f"SELECT {', '.join(codec.DELIVERY_COLUMNS)} FROM webhook_deliveries"
_DELIVERY_INSERT = (
    f"INSERT INTO webhook_deliveries ({', '.join(codec.DELIVERY_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in codec.DELIVERY_COLUMNS)}) ON CONFLICT DO NOTHING"
)
#: The enabled subscriptions that hear of a task (its user's, its filters).
_SUBSCRIBERS = (
    f"SELECT {', '.join('w.' + c for c in codec.WEBHOOK_COLUMNS)} FROM tasks t"
    " JOIN webhooks w ON w.user_id = t.user_id WHERE t.task_id = ? AND w.disabled_at IS NULL"
    " AND (w.task_id IS NULL OR w.task_id = t.task_id)"
    " AND (w.agent_name IS NULL OR w.agent_name = t.agent_name)"
)
_ITEM_PAYLOAD = "SELECT payload FROM conversation_items WHERE item_id = ?"
#: ?1 now: the due deliveries of enabled subscriptions, in order per task and subscription.
_DUE_DELIVERIES = (
    "SELECT d.delivery_id FROM webhook_deliveries d JOIN webhooks w"
    " ON w.webhook_id = d.webhook_id AND w.disabled_at IS NULL"
    " WHERE d.status IN ('pending', 'sending') AND d.next_attempt_at <= ?1"
    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_id = d.webhook_id"
    " AND e.task_id = d.task_id AND e.seq < d.seq AND ((e.status = 'pending' AND e.attempts = 0)"
    " OR (e.status = 'sending' AND e.next_attempt_at > ?1)))"
    " ORDER BY d.next_attempt_at, d.created_at, d.seq LIMIT ?2"
)
_ANY_DUE = (
    "SELECT 1 FROM webhook_deliveries WHERE status IN ('pending', 'sending')"
    " AND next_attempt_at <= ? LIMIT 1"
)
#: ?1 now, ?2 claimed until, ?3 how many: the due deliveries claimed in one statement.
_CLAIM_DELIVERIES = (
    "UPDATE webhook_deliveries SET status = 'sending', attempts = attempts + 1,"
    " last_attempt_at = ?1, next_attempt_at = ?2"
    f" WHERE delivery_id IN ({_DUE_DELIVERIES.replace('?2', '?3')})"
    f" RETURNING {', '.join(codec.DELIVERY_COLUMNS)}"
)
_FINISH_DELIVERY = (
    "UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, last_status_code = ?,"
    " last_response = ?, last_error = ?,"
    " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END"
    " WHERE delivery_id = ? AND status = 'sending' AND attempts = ? RETURNING webhook_id"
)
_FAILING = "UPDATE webhooks SET failing_since = COALESCE(failing_since, ?) WHERE webhook_id = ?"
_SUCCEEDING = (
    "UPDATE webhooks SET failing_since = NULL WHERE webhook_id = ? AND failing_since IS NOT NULL"
)
_DISABLE = (
    "UPDATE webhooks SET disabled_at = ? WHERE webhook_id = ? AND disabled_at IS NULL"
    " AND failing_since <= ? RETURNING failing_since"
)
_FAIL_PENDING = (
    "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, last_error = ?"
    " WHERE webhook_id = ? AND status = 'pending'"
)
_REDELIVER = (
    "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?"
    " WHERE delivery_id = ? AND webhook_id = ? AND status <> 'sending'"
    f" RETURNING {', '.join(codec.DELIVERY_COLUMNS)}"
)


class _Refused(Exception):
    """Raised inside an atomic write to undo it when a later statement's guard refuses."""


def sqlite_path(url_or_path: str | Path) -> Path:
    """The file named by ``sqlite:///PATH`` (driver suffixes ignored) or a plain path."""
    text = str(url_or_path)
    if text.startswith("sqlite"):
        scheme, sep, rest = text.partition(":///")
        if not sep or scheme.split("+")[0] != "sqlite":
            raise ValueError(f"not an SQLite URL: {text!r} (use sqlite:///PATH)")
        text = rest
        if not text:
            raise ValueError("the SQLite URL names no file")
    return Path(text).expanduser()


@lru_cache(maxsize=256)
def _transition_sql(target: TaskStatus, sources: tuple[str, ...], fields: tuple[str, ...]) -> str:
    """?1 the target, ?2 the moment, then the fields' values, the task id and the sources."""
    sets = ["status = ?1", *codec.effect_sql(target, "?2", given=fields)]
    sets += [codec.assignment(name, f"?{i}") for i, name in enumerate(fields, start=3)]
    first = 3 + len(fields)
    marks = ", ".join(f"?{i}" for i in range(first + 1, first + 1 + len(sources)))
    return f"UPDATE tasks SET {', '.join(sets)} WHERE task_id = ?{first} AND status IN ({marks})"


@lru_cache(maxsize=256)
def _sources(target: TaskStatus, expected: frozenset[TaskStatus] | None) -> tuple[str, ...]:
    """The statuses a transition to ``target`` may leave, sorted (the guard's values)."""
    allowed = sources_of(target) if expected is None else sources_of(target) & expected
    return tuple(sorted(s.value for s in allowed))


Statement = tuple[str, list[Any]]


def _transition_statement(
    task_id: str,
    target: TaskStatus,
    expected: Collection[TaskStatus] | None,
    changes: Mapping[str, Any] | None,
    now: datetime | None,
) -> Statement | None:
    """The guarded UPDATE of ``transition``, or None when no source status is allowed."""
    changes = changes or {}
    if changes:
        check_changes(changes)
    sources = _sources(target, None if expected is None else frozenset(expected))
    if not sources:
        return None
    fields = tuple(changes)
    moment = codec.ts(now or utcnow())
    args: list[Any] = [target.value, moment]
    args += [codec.encode_field(name, changes[name]) for name in fields]
    args += [task_id, *sources]
    return _transition_sql(target, sources, fields), args


def _run_update_statement(
    run_id: str,
    changes: Mapping[str, Any],
    expected: Collection[RunStatus] | None,
    fence: Fence | None = None,
) -> Statement | None:
    """The (guarded) UPDATE of ``update_run``, or None when ``expected`` is empty; with
    ``fence`` it is also guarded by the run being open and the fence's."""
    if fence is not None:
        expected = OPEN_RUN_STATUSES if expected is None else OPEN_RUN_STATUSES & set(expected)
    check_run_changes(changes)
    encoded = codec.encode_changes(changes)
    sets = ", ".join(f"{name} = ?" for name in encoded) or "status = status"
    sql = f"UPDATE runs SET {sets} WHERE run_id = ?"
    args: list[Any] = [*encoded.values(), run_id]
    if expected is not None:
        statuses = sorted(RunStatus(s).value for s in expected)
        if not statuses:
            return None
        sql += f" AND status IN ({', '.join('?' for _ in statuses)})"
        args += statuses
    if fence is not None:
        sql += " AND owner = ? AND epoch = ?"
        args += [fence.owner, fence.epoch]
    return sql, args


_HOLDS = "SELECT 1 FROM runs WHERE run_id = ? AND owner = ? AND epoch = ?"


def _holds(conn: sqlite3.Connection, fence: Fence) -> bool:
    """Whether the fence's run still has its owner and epoch (inside a write transaction)."""
    return conn.execute(_HOLDS, (fence.run_id, fence.owner, fence.epoch)).fetchone() is not None


def _changed_one(conn: sqlite3.Connection, statement: Statement | None) -> bool:
    return statement is not None and conn.execute(*statement).rowcount == 1


#: The earliest queued run of each armed task with no running run whose lease holds.
_NEXT_QUEUED = (
    "SELECT r.run_id, r.task_id FROM runs r JOIN tasks t ON t.task_id = r.task_id"
    " WHERE r.status = 'queued' AND t.pattern = 'recurring' AND t.status = 'running'"
    " AND t.paused = 0"
    " AND NOT EXISTS (SELECT 1 FROM runs q WHERE q.task_id = r.task_id AND q.status = 'queued'"
    " AND (q.scheduled_for < r.scheduled_for"
    " OR (q.scheduled_for = r.scheduled_for AND q.run_id < r.run_id)))"
    " AND NOT EXISTS (SELECT 1 FROM runs l WHERE l.task_id = r.task_id"
    " AND l.status = 'running' AND l.lease_expires_at > ?)"
    " ORDER BY r.scheduled_for, r.run_id LIMIT ?"
)
_TAKEN = "SELECT 1 FROM runs WHERE task_id = ? AND scheduled_for = ?"
#: A task's running runs whose lease holds, and its queued ones: a search of the partial index
#: runs_open_by_task (010), whose condition it repeats word for word.
_BUSY_OF = (
    "SELECT COALESCE(SUM(status = 'running' AND lease_expires_at > ?), 0),"
    " COALESCE(SUM(status = 'queued'), 0)"
    " FROM runs WHERE task_id = ? AND status IN ('queued', 'running')"
)
_REPLACE = (
    "UPDATE runs SET status = 'cancelled', finished_at = ?, error = ?, epoch = epoch + 1"
    " WHERE task_id = ? AND (status = 'queued' OR (status = 'running' AND lease_expires_at > ?))"
    f" RETURNING {', '.join(codec.RUN_COLUMNS)}"
)


def _admit(
    conn: sqlite3.Connection,
    task: Task,
    runs: Sequence[Run],
    now: datetime,
    skipped_reason: str | None = None,
) -> OccurrenceRuns:
    """Store ``runs`` of ``task`` (in the caller's transaction) under its overlap policy:
    see :func:`~taskcell.stores.rules.admit_runs`. Runs for an occurrence that has a run
    already are left out."""
    moment = codec.ts(now)
    fresh: list[Run] = []
    seen: set[str | None] = set()
    for run in runs:
        key = codec.ts(run.scheduled_for)
        if key in seen or conn.execute(_TAKEN, (task.task_id, key)).fetchone() is not None:
            continue
        seen.add(key)
        fresh.append(run)
    if not fresh:
        return OccurrenceRuns([], [])
    running, queued = conn.execute(_BUSY_OF, (moment, task.task_id)).fetchone()
    admitted = admit_runs(
        task, fresh, running=running, queued=queued, now=now, skipped_reason=skipped_reason
    )
    replaced: list[Run] = []
    if admitted.replace:
        args = (moment, CANCELLED_BY_NEWER, task.task_id, moment)
        replaced = [codec.run_from_row(r) for r in conn.execute(_REPLACE, args).fetchall()]
    insert = _RUN_INSERT.replace("INSERT", "INSERT OR IGNORE", 1)
    stored = [r for r in admitted.runs if conn.execute(insert, codec.run_values(r)).rowcount == 1]
    return OccurrenceRuns(stored, replaced)


def runs_in_status_sql(count: int, *, active: bool) -> str:
    """The query of ``runs_in_status`` for ``count`` statuses; ``active`` when they are all
    open ones, so it searches the partial index runs_active rather than every run."""
    where = f"status IN ({', '.join('?' for _ in range(count))})"
    if active:
        where = f"{_ACTIVE_RUNS} AND {where}"
    return f"{_RUN_SELECT} WHERE {where} ORDER BY created_at"


def _claimable(
    conn: sqlite3.Connection, rows: list[Any], moment: str | None, *, where: str
) -> list[Task]:
    """The due tasks of ``rows`` that decode; each that does not is disarmed and paused with
    the reason, in the claim's transaction, so it never blocks the scheduler again."""
    tasks, bad = codec.decoded_tasks(rows, where=where)
    for error in bad:
        reason = f"{error.reason}; its schedule is paused"
        conn.execute(_DISARM, (reason, moment, error.task_id))
    return tasks


_TASK_POSITION = codec.row_position("task_id")
_RUN_POSITION = codec.row_position("run_id")
_ITEM_POSITION = codec.row_position("item_id")


def _list_decoded(rows: Sequence[sqlite3.Row]) -> list[Task]:
    return codec.decoded_tasks(rows, where="list_tasks")[0]


def _runs(rows: Sequence[sqlite3.Row]) -> list[Run]:
    return [codec.run_from_row(row) for row in rows]


def _items(rows: Sequence[sqlite3.Row]) -> list[ConversationItem]:
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
            where.append(f"{column} = ?")
            args.append(str(value))
    return where, args


class SQLiteTaskStore:
    """See :class:`taskcell.abc.TaskStore` for the contract; this module's docstring for how."""

    def __init__(self, url_or_path: str | Path, *, busy_timeout_ms: int = 5000) -> None:
        self.path = sqlite_path(url_or_path)
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._tx_open = False
        self._waiters: list[asyncio.Future[None]] = []
        #: (device, inode) of the file this store opened; a different one means it was replaced.
        self._identity: tuple[int, int] | None = None
        #: A descriptor of that file: no link left to it means it was deleted or replaced.
        self._file: int | None = None
        #: Why the last write failed for an outage (disk full...), until a commit succeeds.
        self.write_problem: str | None = None
        self._checker: concurrent.futures.ThreadPoolExecutor | None = None
        #: The checkpoint thread, its connection, the checkpoint in flight and when the last
        #: one was handed over (see the module docstring).
        self._checkpointer: concurrent.futures.ThreadPoolExecutor | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpointing: concurrent.futures.Future[None] | None = None
        self._checkpointed_at = 0.0
        #: The reader thread and its connection (see _on_side).
        self._reader: concurrent.futures.ThreadPoolExecutor | None = None
        self._reader_conn: sqlite3.Connection | None = None

    # -- connection and schema ----------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, cached_statements=512
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        # A new file gives the space retention frees back to the file system a little at a
        # time (see reclaim_space); the mode can only be chosen before the first table.
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache
        # Checkpoints are made by the checkpoint thread; SQLite's own only past this bound.
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        apply_migrations(conn)
        # Rows are read by column name (see codec): sqlite3.Row answers row["status"] (and
        # row[0]), at about 2 microseconds a task row more than a tuple.
        conn.row_factory = sqlite3.Row
        stat = os.stat(self.path)
        self._identity = (stat.st_dev, stat.st_ino)
        self._file = os.open(self.path, os.O_RDONLY)
        return conn

    def _replaced(self) -> str | None:
        """Why the file this store writes is no longer the one at its path, or None."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return f"the database file {self.path} was deleted while the server ran"
        if (stat.st_dev, stat.st_ino) != self._identity:
            return f"the database file {self.path} was replaced while the server ran"
        return None

    async def open(self) -> None:
        _ = self.conn

    async def close(self) -> None:
        if self._tx_open:
            self._commit()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.shutdown, wait=True)
            self._checkpointer = self._checkpointing = None
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
            self._checkpoint_conn = None
        if self._reader is not None:
            await asyncio.to_thread(self._reader.shutdown, wait=True)
            self._reader = None
        if self._reader_conn is not None:
            self._reader_conn.close()
            self._reader_conn = None
        if self._checker is not None:
            self._checker.shutdown(wait=False, cancel_futures=True)
            self._checker = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._file is not None:
            os.close(self._file)
            self._file = None

    async def check(self) -> str | None:
        """None if the file is the one opened, answers a read within :data:`CHECK_SECONDS` on
        a connection of its own (in a worker thread: never the event loop's), and the last
        write did not fail for an outage; else why not."""
        timeout = CHECK_SECONDS
        if self._conn is not None:
            replaced = self._replaced()
            if replaced is not None:
                return f"{replaced}; writes are refused (restart the server to open the new file)"
        if self._checker is None:
            self._checker = concurrent.futures.ThreadPoolExecutor(1, "sqlite-check")
        loop = asyncio.get_running_loop()
        probe = loop.run_in_executor(self._checker, self._probe)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(probe)
        except TimeoutError:
            return (
                f"the database file {self.path} did not answer within {timeout:g} s"
                " (a stalled disk?)"
            )
        except sqlite3.Error as exc:
            return f"the database file {self.path} cannot be read: {exc}"
        if self.write_problem is not None:
            return f"writes to {self.path} fail: {self.write_problem}"
        return None

    def _probe(self) -> None:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=0.5)
        try:
            conn.execute("SELECT count(*) FROM schema_version").fetchone()
        finally:
            conn.close()

    # -- group commit -------------------------------------------------------------------

    async def write(
        self, operation: Callable[[sqlite3.Connection], T], *, atomic: bool = False
    ) -> T:
        """Run ``operation`` in the shared write transaction and answer once it is committed.

        ``operation`` must be synchronous. A single statement that fails undoes only itself;
        an operation of several statements passes ``atomic=True`` to run in a savepoint, so a
        failure undoes all of its statements and nothing else.
        """
        conn = self.conn
        loop = asyncio.get_running_loop()
        if not self._tx_open:
            if self._file is not None and os.fstat(self._file).st_nlink == 0:  # cheap: no path
                replaced = self._replaced() or f"the database file {self.path} was replaced"
                raise StoreUnavailable(f"{replaced}; nothing is written to it")
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self._remember(exc)
                raise
            self._tx_open = True
            loop.call_soon(self._commit)
        elif not conn.in_transaction:
            # An earlier statement's error rolled the shared transaction back: this write
            # must not run outside it (it would commit alone while its batch fails).
            raise StoreUnavailable(f"the write transaction was rolled back: {self.write_problem}")
        try:
            if atomic:
                conn.execute("SAVEPOINT op")
                try:
                    result = operation(conn)
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                    raise
                conn.execute("RELEASE op")
            else:
                result = operation(conn)
        except sqlite3.Error as exc:
            self._remember(exc)
            raise
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        await waiter
        return result

    def _remember(self, exc: sqlite3.Error) -> None:
        """Keep an outage's reason (disk full, read-only...) for ``check``."""
        if is_outage(exc):
            self.write_problem = str(exc)

    def _commit(self) -> None:
        conn = self._conn
        if not self._tx_open or conn is None:
            return  # close() committed it already: never reopen a closed store
        waiters, self._waiters = self._waiters, []
        self._tx_open = False
        failure: BaseException | None = None
        if not conn.in_transaction:
            # A statement's error (disk full, I/O) rolled the whole transaction back.
            failure = StoreUnavailable(f"the write was rolled back: {self.write_problem}")
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                logger.exception("commit failed", extra={"path": str(self.path)})
                self._remember(exc)
                failure = exc
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        logger.exception("rollback failed", extra={"path": str(self.path)})
        if failure is not None:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(failure)
            return
        self.write_problem = None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._checkpoint_soon()

    def _checkpoint_soon(self) -> None:
        """Hand a checkpoint to the checkpoint thread, unless one is in flight or one was
        handed over within :data:`CHECKPOINT_EVERY_SECONDS`."""
        now = time.monotonic()
        if now - self._checkpointed_at < CHECKPOINT_EVERY_SECONDS or (
            self._checkpointing is not None and not self._checkpointing.done()
        ):
            return
        self._checkpointed_at = now
        if self._checkpointer is None:
            self._checkpointer = concurrent.futures.ThreadPoolExecutor(1, "sqlite-checkpoint")
        self._checkpointing = self._checkpointer.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        """In the checkpoint thread: a ``PASSIVE`` checkpoint, as far as readers allow. On a
        connection of its own that never creates the file (``mode=rw``: a file deleted under
        the server is not made anew); a failure is logged, the next commit tries again."""
        try:
            self._side_connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            logger.warning("checkpoint failed", exc_info=True, extra={"path": str(self.path)})

    async def _on_side(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """``read`` on the reader thread with a connection of its own: reads that may wait for
        the disk (retention's candidates, the pages a pruning write will touch, the scheduler's
        read-ahead) never block the event loop, nor hold the write lock, nor wait for a
        checkpoint. It sees what is committed."""
        if self._reader is None:
            self._reader = concurrent.futures.ThreadPoolExecutor(1, "sqlite-reads")
        return await asyncio.wrap_future(self._reader.submit(lambda: read(self._read_conn())))

    def _read_conn(self) -> sqlite3.Connection:
        """The reader thread's connection (used on that thread only), made on first use."""
        if self._reader_conn is None:
            self._reader_conn = self._side_open()
            self._reader_conn.execute("PRAGMA cache_size = -16384")  # 16 MiB: index interiors
        return self._reader_conn

    def _side_connection(self) -> sqlite3.Connection:
        """The checkpoint thread's connection (used on that thread only), made on first use."""
        if self._checkpoint_conn is None:
            self._checkpoint_conn = self._side_open()
        return self._checkpoint_conn

    def _side_open(self) -> sqlite3.Connection:
        """A connection of a worker thread: never creates the file (``mode=rw``: a file
        deleted under the server is not made anew)."""
        return sqlite3.connect(
            f"file:{self.path}?mode=rw", uri=True, isolation_level=None, check_same_thread=False
        )

    # -- tasks --------------------------------------------------------------------------

    async def save(self, task: Task) -> None:
        """Insert a new task alone (no conversation); :class:`~taskcell.abc.DuplicateTask`
        when its id is taken. Beyond the protocol: for scripts, benchmarks and tests that
        fill a store (the service creates tasks with ``create``)."""
        values = codec.task_values(task)

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_TASK_INSERT, values)
            except sqlite3.IntegrityError as exc:
                raise DuplicateTask(f"task {task.task_id} exists already") from exc

        await self.write(insert)

    async def create(self, task: Task, *, conversation_title: str) -> bool:
        values = codec.task_values(task)
        conversation = (task.conversation_id, conversation_title, task.user_id, codec.ts(utcnow()))

        def insert(conn: sqlite3.Connection) -> bool:
            try:
                conn.execute(_TASK_INSERT, values)
            except sqlite3.IntegrityError as exc:
                raise DuplicateTask(f"task {task.task_id} exists already") from exc
            return conn.execute(_CONVERSATION_INSERT, conversation).rowcount == 1

        return await self.write(insert, atomic=True)

    async def load(self, task_id: str) -> Task | None:
        row = self.conn.execute(f"{_TASK_SELECT} WHERE task_id = ?", (task_id,)).fetchone()
        return codec.salvaged_task(row) if row else None

    async def delete(self, task_id: str) -> bool:
        def remove(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM runs WHERE task_id = ?", (task_id,))
            conn.execute("DELETE FROM events WHERE task_id = ?", (task_id,))
            conn.execute("DELETE FROM conversation_items WHERE task_id = ?", (task_id,))
            return conn.execute("DELETE FROM tasks WHERE task_id = ?", (task_id,)).rowcount > 0

        return await self.write(remove, atomic=True)

    async def list_tasks(
        self, flt: TaskFilter, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Task]:
        where, args = _filter_sql(flt)
        after = position(cursor)
        if after is not None:
            where.append(TASKS.after_sql("?", "?"))
            args += [codec.ts(after[0]), after[1]]
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        sql = f"{_TASK_SELECT}{clause} {TASKS.order_sql} LIMIT ?"
        rows = self.conn.execute(sql, (*args, limit + 1)).fetchall()
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
        statement = _transition_statement(task_id, target, expected, changes, now)
        if statement is None:
            return False
        return await self.write(lambda conn: _changed_one(conn, statement))

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
        encoded = codec.encode_changes(changes)
        sets = ", ".join([*(codec.assignment(name, "?") for name in encoded), "updated_at = ?"])
        args: list[Any] = [*encoded.values(), codec.ts(now or utcnow()), task_id]
        sql = f"UPDATE tasks SET {sets} WHERE task_id = ?"
        if version is not None:
            sql += " AND version = ?"
            args.append(version)
        if expected is not None:
            statuses = [TaskStatus(s).value for s in expected]
            if not statuses:
                return False
            sql += f" AND status IN ({', '.join('?' for _ in statuses)})"
            args += statuses

        def change(conn: sqlite3.Connection) -> bool:
            if fence is not None and not _holds(conn, fence):
                raise lease_lost(fence)
            return bool(conn.execute(sql, args).rowcount == 1)

        return await self.write(change)

    async def edit(
        self, task_id: str, change: Callable[[Task, datetime], Mapping[str, Any]]
    ) -> Task | None:
        select = f"{_TASK_SELECT} WHERE task_id = ?"

        def write(conn: sqlite3.Connection) -> Task | None:
            # Inside the write transaction: no other write of the task comes between.
            row = conn.execute(select, (task_id,)).fetchone()
            if row is None:
                return None
            task, now = codec.salvaged_task(row), utcnow()
            changes = dict(change(task.model_copy(deep=True), now))
            check_changes(changes)
            encoded = codec.encode_changes(changes)
            sets = [*(codec.assignment(n, "?") for n in encoded), "updated_at = ?"]
            sets.append("version = version + 1")
            sql = f"UPDATE tasks SET {', '.join(sets)} WHERE task_id = ? AND version = ?"
            args = [*encoded.values(), codec.ts(now), task_id, task.version]
            if conn.execute(sql, args).rowcount != 1:  # pragma: no cover - held since read
                raise _Refused
            return task.model_copy(
                update={**changes, "updated_at": now, "version": task.version + 1}
            )

        return await self.write(write, atomic=True)

    async def cancel_conversation(
        self, conversation_id: str, *, reason: str | None = None, now: datetime | None = None
    ) -> list[str]:
        moment = codec.ts(now or utcnow())
        sql = _CANCEL_CONVERSATION
        args = (moment, reason, conversation_id, *_FINAL)
        rows = await self.write(lambda conn: conn.execute(sql, args).fetchall())
        return [row["task_id"] for row in rows]

    # -- runs ---------------------------------------------------------------------------

    async def add_run(self, run: Run) -> bool:
        values = codec.run_values(run)

        def insert(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(_RUN_INSERT.replace("INSERT", "INSERT OR IGNORE", 1), values)
            return cursor.rowcount == 1

        return await self.write(insert)

    async def start_run(self, run: Run, *, now: datetime | None = None) -> bool:
        values = codec.run_values(run)
        statement = _transition_statement(
            run.task_id, TaskStatus.RUNNING, [TaskStatus.PENDING], {"attempt": run.attempt}, now
        )

        def start(conn: sqlite3.Connection) -> bool:
            if not _changed_one(conn, statement):
                return False
            try:
                conn.execute(_RUN_INSERT, values)
            except sqlite3.IntegrityError:
                raise _Refused from None
            return True

        try:
            return await self.write(start, atomic=True)
        except _Refused:
            return False

    async def continue_run(
        self,
        run_id: str,
        *,
        task_id: str,
        owner: str,
        lease_expires_at: datetime,
        now: datetime | None = None,
    ) -> bool:
        moving = _transition_statement(
            task_id, TaskStatus.RUNNING, [TaskStatus.WAITING_INPUT], None, now
        )
        resuming = (
            "UPDATE runs SET status = 'running', owner = ?, lease_expires_at = ?, epoch = epoch + 1"
            " WHERE run_id = ? AND task_id = ? AND status = 'waiting_input'",
            [owner, codec.ts(lease_expires_at), run_id, task_id],
        )

        def take_up(conn: sqlite3.Connection) -> bool:
            if not _changed_one(conn, moving):
                return False
            if not _changed_one(conn, resuming):
                raise _Refused
            return True

        try:
            return await self.write(take_up, atomic=True)
        except _Refused:
            return False

    async def update_run(
        self,
        run_id: str,
        changes: Mapping[str, Any],
        *,
        expected: Collection[RunStatus] | None = None,
        fence: Fence | None = None,
    ) -> bool:
        statement = _run_update_statement(run_id, changes, expected, fence)
        if statement is None:
            return False

        def change(conn: sqlite3.Connection) -> bool:
            changed = _changed_one(conn, statement)
            if fence is not None and not changed:
                raise lease_lost(fence)
            return changed

        return await self.write(change)

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
        closing = _run_update_statement(run_id, changes, OPEN_RUN_STATUSES, fence)
        moving = _transition_statement(task_id, target, expected, task_changes, now)

        def finish(conn: sqlite3.Connection) -> tuple[bool, bool]:
            closed = _changed_one(conn, closing)
            if fence is not None and not closed:
                raise lease_lost(fence)
            return closed, _changed_one(conn, moving)

        return await self.write(finish, atomic=True)

    async def load_run(self, run_id: str) -> Run | None:
        row = self.conn.execute(f"{_RUN_SELECT} WHERE run_id = ?", (run_id,)).fetchone()
        return codec.run_from_row(row) if row else None

    async def list_runs(
        self, task_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Run]:
        sql = f"{_RUN_SELECT} WHERE task_id = ?"
        args: list[Any] = [task_id]
        after = position(cursor)
        if after is not None:
            sql += f" AND {RUNS.after_sql('?', '?')}"
            args += [codec.ts(after[0]), after[1]]
        sql += f" {RUNS.order_sql} LIMIT ?"
        rows = self.conn.execute(sql, (*args, limit + 1)).fetchall()
        return keyset_page(rows, limit, decode=_runs, key=_RUN_POSITION)

    async def runs_in_status(
        self, statuses: Sequence[RunStatus], *, task_id: str | None = None
    ) -> list[Run]:
        values: list[Any] = [RunStatus(s).value for s in statuses]
        if not values:
            return []
        sql = runs_in_status_sql(len(values), active=set(statuses) <= _ACTIVE_RUN_STATUSES)
        if task_id is not None:
            sql = sql.replace(" ORDER BY", " AND task_id = ? ORDER BY", 1)
            values.append(task_id)
        return [codec.run_from_row(row) for row in self.conn.execute(sql, values)]

    async def next_due_at(self) -> datetime | None:
        row = self.conn.execute(_NEXT_DUE).fetchone()
        return codec.from_ts(row[0]) if row else None

    async def read_ahead(self, due_before: datetime, *, limit: int = 500) -> int:
        """Twice: first on the reader thread's connection, so the pages come from the
        disk into the file system's cache while the event loop goes on; then on this store's
        own connection (SQLite's page cache is per connection), from the file system's cache,
        a few microseconds a page, so the claim finds them in its own cache."""
        args = (codec.ts(due_before), limit)
        await self._on_side(lambda side: side.execute(_READ_AHEAD, args).fetchall())
        return len(self.conn.execute(_READ_AHEAD, args).fetchall())

    async def claim_occurrence(
        self, task_id: str, *, due: datetime, next_run_at: datetime | None
    ) -> bool:
        """Move an armed task's ``next_run_at`` from ``due`` to ``next_run_at`` in one
        guarded write; answers whether it did (of several claimers of one ``due``, exactly
        one wins). Beyond the protocol: the scheduler claims with ``start_due``; this is the
        one-at-a-time claim benchmarks compare it with."""
        sql = (
            "UPDATE tasks SET next_run_at = ?, updated_at = ?"
            f" WHERE task_id = ? AND next_run_at = ? AND {_ARMED}"
        )
        args = (codec.ts(next_run_at), codec.ts(utcnow()), task_id, codec.ts(due))
        return await self.write(lambda conn: conn.execute(sql, args).rowcount == 1)

    async def start_due(
        self,
        now: datetime,
        next_time: Callable[[Task], datetime | None],
        make_run: Callable[[Task, datetime], Run | Sequence[Run] | None],
        *,
        skipped_reason: str,
        limit: int = 500,
    ) -> list[tuple[Task, Run | None]]:
        select = _DUE
        update = "UPDATE tasks SET next_run_at = ?, updated_at = ? WHERE task_id = ?"
        moment = codec.ts(utcnow())

        def claim(conn: sqlite3.Connection) -> list[tuple[Task, Run | None]]:
            # One write transaction: the claim and the runs are stored together or not at all.
            started: list[tuple[Task, Run | None]] = []
            rows = conn.execute(select, (codec.ts(now), limit)).fetchall()
            for task in _claimable(conn, rows, moment, where="start_due"):
                due = task.next_run_at
                assert due is not None
                task.next_run_at = next_time(task)
                conn.execute(update, (codec.ts(task.next_run_at), moment, task.task_id))
                made = make_run(task, due)
                runs = [] if made is None else [made] if isinstance(made, Run) else list(made)
                stored = _admit(conn, task, runs, now, skipped_reason)
                answers = [(task, r) for r in [*stored.runs, *stored.replaced]]
                started += answers or [(task, None)]
            return started

        return await self.write(claim, atomic=True)

    async def add_occurrences(self, task_id: str, runs: Sequence[Run]) -> OccurrenceRuns | None:
        now = utcnow()

        def add(conn: sqlite3.Connection) -> OccurrenceRuns | None:
            row = conn.execute(f"{_TASK_SELECT} WHERE task_id = ?", (task_id,)).fetchone()
            if row is None or row["pattern"] != "recurring" or row["status"] != "running":
                return None
            return _admit(conn, codec.task_from_row(row), runs, now)

        return await self.write(add, atomic=True)

    async def start_queued(
        self, owner: str, lease: timedelta, *, limit: int = 100
    ) -> list[tuple[Task, Run]]:
        now = utcnow()
        moment = codec.ts(now)
        start = (
            "UPDATE runs SET status = 'running', owner = ?, started_at = ?, lease_expires_at = ?"
            f" WHERE run_id = ? AND status = 'queued' RETURNING {', '.join(codec.RUN_COLUMNS)}"
        )

        def promote(conn: sqlite3.Connection) -> list[tuple[Task, Run]]:
            started = []
            for row in conn.execute(_NEXT_QUEUED, (moment, limit)).fetchall():
                args = (owner, moment, codec.ts(now + lease), row["run_id"])
                updated = conn.execute(start, args).fetchone()
                if updated is None:
                    continue
                task_row = conn.execute(
                    f"{_TASK_SELECT} WHERE task_id = ?", (row["task_id"],)
                ).fetchone()
                started.append((codec.task_from_row(task_row), codec.run_from_row(updated)))
            return started

        return await self.write(promote, atomic=True)

    async def claim_pending(self, idle_for: timedelta, *, limit: int = 100) -> list[Task]:
        now = utcnow()
        sql = (
            "UPDATE tasks SET updated_at = ? WHERE task_id IN (SELECT task_id FROM tasks"
            " WHERE status = 'pending' AND pattern = 'once' AND updated_at < ?"
            f" ORDER BY created_at LIMIT ?) RETURNING {', '.join(codec.TASK_COLUMNS)}"
        )
        args = (codec.ts(now), codec.ts(now - idle_for), limit)
        rows = await self.write(lambda conn: conn.execute(sql, args).fetchall())
        tasks, _ = codec.decoded_tasks(rows, where="claim_pending")
        return sorted(tasks, key=lambda t: (t.created_at, t.task_id))

    async def count_by_status(self) -> dict[str, int]:
        # Kept by triggers (schema version 10): not a count over every task at each scrape.
        rows = self.conn.execute("SELECT status, tasks FROM task_counts WHERE tasks > 0")
        return {str(row["status"]): int(row["tasks"]) for row in rows.fetchall()}

    # -- coordination (one server) -------------------------------------------------------

    single_server = True

    async def clock(self) -> datetime:
        return utcnow()

    async def heartbeat(self, process_id: str) -> None:
        sql = (
            "INSERT INTO processes VALUES (?, ?, ?)"
            " ON CONFLICT (process_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at"
        )
        now = codec.ts(utcnow())
        args = (process_id, now, now)
        await self.write(lambda conn: conn.execute(sql, args))

    async def live_processes(self, within: timedelta) -> list[ProcessInfo]:
        rows = self.conn.execute(_LIVE_PROCESSES, (codec.ts(utcnow() - within),)).fetchall()
        return [codec.process_from_row(row) for row in rows]

    async def claim_dead_processes(self, silent_for: timedelta, *, keep: str) -> list[ProcessInfo]:
        args = (codec.ts(utcnow() - silent_for), keep)
        rows = await self.write(lambda conn: conn.execute(_DEAD_PROCESSES, args).fetchall())
        processes = [codec.process_from_row(row) for row in rows]
        return sorted(processes, key=lambda p: (p.started_at, p.process_id))

    async def runs_finished_by(self, owner: str, since: datetime) -> list[Run]:
        rows = self.conn.execute(_RUNS_FINISHED_BY, (owner, codec.ts(since))).fetchall()
        return [codec.run_from_row(row) for row in rows]

    async def renew_leases(self, owner: str, lease: timedelta) -> int:
        sql = (
            "UPDATE runs SET lease_expires_at = ?"
            " WHERE owner = ? AND status IN ('queued', 'running')"
        )
        args = (codec.ts(utcnow() + lease), owner)
        return await self.write(lambda conn: conn.execute(sql, args).rowcount)

    async def interrupt_expired(self, reason: str, *, by: str | None = None) -> list[Run]:
        sql = (
            "UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?,"
            " epoch = epoch + 1, closed_by = ?"
            " WHERE status IN ('queued', 'running') AND lease_expires_at < ?"
            f" RETURNING {', '.join(codec.RUN_COLUMNS)}"
        )
        now = codec.ts(utcnow())
        args = (now, reason, by, now)

        def interrupt(conn: sqlite3.Connection) -> list[Run]:
            runs = [codec.run_from_row(row) for row in conn.execute(sql, args).fetchall()]
            if by is not None:
                for run in runs:
                    conn.execute(_RECOVER_TASK, (reason, now, run.attempt, run.task_id))
            return runs

        return await self.write(interrupt, atomic=True)

    async def notify(self, message: str) -> None:
        return None

    async def listen(
        self, handler: Callable[[str], None], *, on_listening: Callable[[], None] | None = None
    ) -> None:
        await asyncio.Event().wait()  # one server: nobody else to hear from

    # -- events and conversations ---------------------------------------------------------

    async def append_events(
        self,
        events: Sequence[Event],
        items: Sequence[ConversationItem],
        *,
        notices: Sequence[str] = (),
    ) -> None:
        event_rows = [(e.task_id, e.seq, codec.event_body(e)) for e in events]
        item_rows = [codec.item_values(item) for item in items]
        fences = {e.fence for e in events if e.fence is not None}
        task_ids = list(dict.fromkeys(e.task_id for e in events))
        done_tasks = {e.task_id for e in events if e.event is EventType.DONE}
        worthy = worthy_task_ids(events)  # most batches: none, and no lookup

        def append(conn: sqlite3.Connection) -> None:
            lost = {f.run_id for f in fences if not _holds(conn, f)}
            if lost:
                raise LeaseLost(f"runs no longer held: {sorted(lost)}", run_ids=lost)
            closing: dict[str, int] = {}
            refused: set[str] = set()
            for task_id in task_ids:
                row = conn.execute(_LOG_STATE, (task_id,)).fetchone()
                if row is None:
                    continue
                if row["log_closed"]:
                    refused.add(task_id)
                elif task_id in done_tasks and row["status"] in _FINAL:
                    closing[task_id] = min(
                        e.seq for e in events if e.task_id == task_id and e.event is EventType.DONE
                    )
            refused |= {e.task_id for e in events if e.seq > closing.get(e.task_id, e.seq)}
            if refused:
                raise LogClosed(f"logs closed: {sorted(refused)}", task_ids=refused)
            try:
                conn.executemany(_EVENT_INSERT, event_rows)
            except sqlite3.IntegrityError as exc:
                raise EventConflict(f"events already stored: {exc}") from exc
            if worthy:
                _write_outbox(conn, events, worthy)
            conn.executemany(_ITEM_UPSERT, item_rows)
            conn.executemany(_CLOSE_LOG, [(task_id,) for task_id in closing])

        await self.write(append, atomic=True)

    async def read_events(self, task_id: str, *, after: int = 0, limit: int = 500) -> list[Event]:
        rows = self.conn.execute(_EVENT_READ, (task_id, after, limit)).fetchall()
        return [codec.event_from_body(row["body"]) for row in rows]

    async def last_seq(self, task_id: str) -> int:
        row = self.conn.execute(_LAST_SEQ, (task_id, task_id)).fetchone()
        return int(row[0] or 0)

    # -- retention ------------------------------------------------------------------------

    async def log_start(self, task_id: str) -> int:
        row = self.conn.execute("SELECT pruned_seq FROM tasks WHERE task_id = ?", (task_id,))
        found = row.fetchone()
        return int(found[0]) if found else 0

    async def once_tasks_to_prune(
        self,
        finished_before: datetime,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[tuple[datetime, str]]:
        sql = f"SELECT completed_at, task_id FROM tasks WHERE {_TO_PRUNE} AND completed_at < ?"
        args: list[Any] = [codec.ts(finished_before)]
        if after is not None:
            sql += " AND (completed_at, task_id) > (?, ?)"
            args += [codec.ts(after[0]), after[1]]
        sql += " ORDER BY completed_at, task_id LIMIT ?"
        moment = codec.ts(finished_before)

        def read(side: sqlite3.Connection) -> list[Any]:
            rows = side.execute(sql, (*args, limit)).fetchall()
            for row in rows:  # the pages pruning them will change, read ahead of the writes
                side.execute(_WARM_ONCE, (row[1], moment)).fetchall()
            return rows

        rows = await self._on_side(read)
        return [(codec.from_ts(row[0]), row[1]) for row in rows]  # type: ignore[misc]

    async def recurring_log_cuts(
        self, keep: int, *, after: str | None = None, limit: int = 100
    ) -> list[LogCut]:
        keep = max(keep, 1)
        args = (keep - 1, keep, after or "", limit)

        def read(side: sqlite3.Connection) -> list[LogCut]:
            cuts = [
                log_cut(
                    row[0],
                    int(row[1]),
                    (codec.from_ts(row[2]), row[3]) if row[2] is not None else None,  # type: ignore[arg-type]
                    (codec.from_ts(row[4]), row[5]) if row[4] is not None else None,  # type: ignore[arg-type]
                    codec.from_ts(row[6]),
                )
                for row in side.execute(_LOG_CUTS, args).fetchall()
            ]
            for cut in cuts:  # the log heads pruning will remove, read ahead of the writes
                if cut.through is not None and cut.through > cut.log_start:
                    side.execute(_WARM_LOG, (cut.task_id, cut.log_start, cut.through)).fetchall()
            return cuts

        return await self._on_side(read)

    async def prune_events(
        self,
        task_id: str,
        *,
        through: int | None,
        limit: int,
        finished_before: datetime | None = None,
        dry_run: bool = False,
    ) -> int:
        guard = (task_id, codec.ts(finished_before), *_FINAL)
        upto = _MAX_SEQ if through is None else through
        if dry_run:
            if self.conn.execute(_PRUNABLE_TASK, guard).fetchone() is None:
                return 0
            row = self.conn.execute(_COUNT_EVENTS, (task_id, upto)).fetchone()
            return int(row[0])

        def prune(conn: sqlite3.Connection) -> int:
            if conn.execute(_PRUNABLE_TASK, guard).fetchone() is None:
                return 0
            seqs = conn.execute(_OLDEST_EVENTS, (task_id, upto, limit)).fetchall()
            if not seqs:
                return 0
            bound = seqs[-1][0]
            removed = conn.execute(_PRUNE_EVENTS, (task_id, bound)).rowcount
            conn.execute(_RAISE_LOG_START, (bound, task_id))
            return int(removed)

        return await self.write(prune, atomic=True)

    async def prune_items(
        self, task_id: str, *, finished_before: datetime, dry_run: bool = False
    ) -> int | None:
        guard = (task_id, codec.ts(finished_before), *_FINAL)
        moment = codec.ts(finished_before)

        def prune(conn: sqlite3.Connection) -> int | None:
            if conn.execute(_PRUNABLE_TASK + " AND retention_done = 0", guard).fetchone() is None:
                return 0
            if conn.execute(_NEWER_CONVERSATION, (task_id, moment, moment)).fetchone():
                return None
            if dry_run:
                return int(conn.execute(_COUNT_ITEMS, (task_id,)).fetchone()[0])
            removed = conn.execute("DELETE FROM conversation_items WHERE task_id = ?", (task_id,))
            conn.execute(_RETENTION_DONE, (task_id, task_id))
            return int(removed.rowcount)

        if dry_run:
            return prune(self.conn)
        return await self.write(prune, atomic=True)

    async def prune_logs(
        self, cuts: Sequence[tuple[str, int]], *, limit: int, dry_run: bool = False
    ) -> Pruned:
        def prune(conn: sqlite3.Connection) -> Pruned:
            done = removed = 0
            for task_id, through in cuts:
                row = conn.execute(_RECURRING_LOG_START, (task_id,)).fetchone()
                start = through if row is None else int(row[0])
                if start >= through:
                    done += 1
                    continue
                if dry_run:
                    counted = conn.execute(_COUNT_EVENTS_BETWEEN, (task_id, start, through))
                    removed += int(counted.fetchone()[0])
                    done += 1
                    continue
                if removed >= limit:
                    break
                upto = min(through, start + limit - removed)  # a log's seqs have no gaps
                removed += conn.execute(_PRUNE_EVENTS_BETWEEN, (task_id, start, upto)).rowcount
                conn.execute(_RAISE_LOG_START, (upto, task_id))
                if upto < through:
                    break
                done += 1
            return Pruned(tasks=done, events=removed)

        if dry_run:
            return prune(self.conn)
        return await self.write(prune, atomic=True)

    async def prune_once_tasks(
        self,
        task_ids: Sequence[str],
        *,
        finished_before: datetime,
        limit: int,
        dry_run: bool = False,
    ) -> Pruned:
        moment = codec.ts(finished_before)

        def prune(conn: sqlite3.Connection) -> Pruned:
            done = events = items = kept = 0
            for task_id in task_ids:
                if events + items >= limit and not dry_run:
                    break
                row = conn.execute(_ONCE_LOG_START, (task_id, moment, *_FINAL)).fetchone()
                if row is None:
                    done += 1
                    continue
                if dry_run:
                    events += int(conn.execute(_COUNT_EVENTS, (task_id, _MAX_SEQ)).fetchone()[0])
                else:
                    budget = limit - events - items
                    seqs = conn.execute(_OLDEST_EVENTS, (task_id, _MAX_SEQ, budget)).fetchall()
                    if seqs:
                        bound = seqs[-1][0]
                        events += conn.execute(_PRUNE_EVENTS, (task_id, bound)).rowcount
                        conn.execute(_RAISE_LOG_START, (bound, task_id))
                    if len(seqs) == budget:
                        break  # the limit reached: more may be left (the next call goes on)
                if conn.execute(_NEWER_CONVERSATION, (task_id, moment, moment)).fetchone():
                    kept += 1
                elif dry_run:
                    items += int(conn.execute(_COUNT_ITEMS, (task_id,)).fetchone()[0])
                else:
                    gone = conn.execute(
                        "DELETE FROM conversation_items WHERE task_id = ?", (task_id,)
                    )
                    items += gone.rowcount
                    conn.execute(_RETENTION_DONE, (task_id, task_id))
                done += 1
            return Pruned(tasks=done, events=events, items=items, conversations_kept=kept)

        if dry_run:
            return prune(self.conn)
        return await self.write(prune, atomic=True)

    async def prune_runs(
        self,
        task_ids: Sequence[str],
        *,
        finished_before: datetime,
        limit: int,
        dry_run: bool = False,
    ) -> int:
        cutoff = codec.ts(finished_before)
        if dry_run:
            return sum(
                int(self.conn.execute(_COUNT_OLD_RUNS, (task_id, cutoff)).fetchone()[0])
                for task_id in task_ids
            )

        await self._on_side(  # the rows to remove, read first off the loop and the write lock
            lambda side: [
                side.execute(_WARM_RUNS, (task_id, cutoff, limit)).fetchall()
                for task_id in task_ids
            ]
        )

        def prune(conn: sqlite3.Connection) -> int:
            removed = 0
            for task_id in task_ids:
                if removed >= limit:
                    break
                removed += conn.execute(_PRUNE_RUNS, (task_id, cutoff, limit - removed)).rowcount
            return removed

        return await self.write(prune, atomic=True)

    async def prune_deliveries(
        self, *, created_before: datetime, limit: int, dry_run: bool = False
    ) -> int:
        cutoff = codec.ts(created_before)
        if dry_run:
            return int(self.conn.execute(_COUNT_OLD_DELIVERIES, (cutoff,)).fetchone()[0])
        return await self.write(
            lambda conn: int(conn.execute(_PRUNE_DELIVERIES, (cutoff, limit)).rowcount)
        )

    async def reclaim_space(self, *, max_pages: int) -> int:
        """``PRAGMA incremental_vacuum`` in a transaction of its own (Python's ``execute``
        stops it after one page: it answers rows of no columns, so ``executescript`` runs it),
        once the shared write transaction of this loop iteration is committed."""
        if self.conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:  # not INCREMENTAL
            return 0
        while self._tx_open:  # join the shared transaction, then go on once it is committed
            await self.write(lambda conn: None)
        free = int(self.conn.execute("PRAGMA freelist_count").fetchone()[0])
        if free == 0:
            return 0
        if self._file is not None and os.fstat(self._file).st_nlink == 0:
            replaced = self._replaced() or f"the database file {self.path} was replaced"
            raise StoreUnavailable(replaced)
        try:
            self.conn.executescript(f"PRAGMA incremental_vacuum({int(min(free, max_pages))});")
        except sqlite3.Error as exc:
            self._remember(exc)
            raise
        return free - int(self.conn.execute("PRAGMA freelist_count").fetchone()[0])

    def incremental_vacuum(self) -> bool:
        """Whether this file gives freed pages back (``auto_vacuum=INCREMENTAL``): files made
        before retention existed do not until ``taskcell db vacuum`` rewrites them."""
        return bool(self.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2)

    async def database_size(self) -> int | None:
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(size)

    @contextlib.asynccontextmanager
    async def retention_lock(self) -> AsyncIterator[bool]:
        yield True  # one server; a CLI prune beside it only makes the same guarded writes

    async def list_items(
        self,
        conversation_id: str,
        *,
        user_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[ConversationItem]:
        sql = f"{_ITEM_SELECT} WHERE conversation_id = ?"
        args: list[Any] = [conversation_id]
        if user_id is not None:
            sql += f" AND task_id IN ({_TASKS_OF_USER_CONVERSATION})"
            args += [conversation_id, user_id]
        after = position(cursor)
        if after is not None:
            sql += f" AND {ITEMS.after_sql('?', '?')}"
            args += [codec.ts(after[0]), after[1]]
        sql += f" {ITEMS.order_sql} LIMIT ?"
        rows = self.conn.execute(sql, (*args, limit + 1)).fetchall()
        return keyset_page(rows, limit, decode=_items, key=_ITEM_POSITION)

    async def task_items(
        self, task_id: str, *, component_type: str | None = None
    ) -> list[ConversationItem]:
        sql = f"{_ITEM_SELECT} WHERE task_id = ?"
        args: list[Any] = [task_id]
        if component_type is not None:
            sql += " AND component_type = ?"
            args.append(component_type)
        rows = self.conn.execute(sql + " ORDER BY created_at, item_id", args).fetchall()
        return [codec.item_from_row(row) for row in rows]

    async def ensure_conversation(self, conversation_id: str, *, title: str, user_id: str) -> bool:
        """Create ``user_id``'s conversation record if missing; answers whether it did.
        Beyond the protocol (``create`` stores a task's conversation): for tests."""
        args = (conversation_id, title, user_id, codec.ts(utcnow()))
        return await self.write(lambda conn: conn.execute(_CONVERSATION_INSERT, args).rowcount == 1)

    async def has_conversation(self, conversation_id: str, *, user_id: str | None = None) -> bool:
        if user_id is None:
            row = self.conn.execute(_ANY_CONVERSATION, (conversation_id,)).fetchone()
        else:
            row = self.conn.execute(_USER_CONVERSATION, (user_id, conversation_id)).fetchone()
        return row is not None

    # -- webhooks -------------------------------------------------------------------------

    async def add_webhook(self, webhook: Webhook) -> None:
        values = codec.webhook_values(webhook)
        await self.write(lambda conn: conn.execute(_WEBHOOK_INSERT, values))

    async def load_webhook(self, webhook_id: str) -> Webhook | None:
        row = self.conn.execute(f"{_WEBHOOK_SELECT} WHERE webhook_id = ?", (webhook_id,)).fetchone()
        return codec.webhook_from_row(row) if row else None

    async def list_webhooks(self, *, user_id: str | None = None) -> list[Webhook]:
        if user_id is None:
            rows = self.conn.execute(f"{_WEBHOOK_SELECT} ORDER BY created_at, webhook_id")
        else:
            rows = self.conn.execute(
                f"{_WEBHOOK_SELECT} WHERE user_id = ? ORDER BY created_at, webhook_id", (user_id,)
            )
        return [codec.webhook_from_row(row) for row in rows.fetchall()]

    async def delete_webhook(self, webhook_id: str) -> bool:
        def remove(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM webhook_deliveries WHERE webhook_id = ?", (webhook_id,))
            sql = "DELETE FROM webhooks WHERE webhook_id = ?"
            return conn.execute(sql, (webhook_id,)).rowcount > 0

        return await self.write(remove, atomic=True)

    async def rotate_webhook_secret(self, webhook_id: str, secret: str) -> bool:
        sql = "UPDATE webhooks SET secret = ? WHERE webhook_id = ?"
        return await self.write(lambda conn: conn.execute(sql, (secret, webhook_id)).rowcount > 0)

    async def claim_deliveries(
        self, claim_for: timedelta, *, limit: int = 100
    ) -> list[tuple[Delivery, Webhook]]:
        now = utcnow()
        args = (codec.ts(now), codec.ts(now + claim_for))
        if self.conn.execute(_ANY_DUE, (args[0],)).fetchone() is None:
            return []  # nothing due (most looks): no write transaction

        def claim(conn: sqlite3.Connection) -> list[tuple[Delivery, Webhook]]:
            rows = conn.execute(_CLAIM_DELIVERIES, (*args, limit)).fetchall()
            claimed = []
            hooks: dict[str, Webhook] = {}
            for row in rows:
                delivery = codec.delivery_from_row(row)
                if delivery.webhook_id not in hooks:
                    hook = conn.execute(
                        f"{_WEBHOOK_SELECT} WHERE webhook_id = ?", (delivery.webhook_id,)
                    ).fetchone()
                    hooks[delivery.webhook_id] = codec.webhook_from_row(hook)
                claimed.append((delivery, hooks[delivery.webhook_id]))
            claimed.sort(key=lambda pair: (pair[0].next_attempt_at or now, pair[0].seq))
            return claimed

        return await self.write(claim, atomic=True)

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
        now = utcnow()
        due = now + retry_in if status is DeliveryStatus.PENDING and retry_in is not None else None
        args = (
            status.value,
            codec.ts(due),
            status_code,
            response,
            error,
            status.value,
            codec.ts(now),
            delivery_id,
            attempt,
        )

        def finish(conn: sqlite3.Connection) -> bool:
            row = conn.execute(_FINISH_DELIVERY, args).fetchone()
            if row is None:
                return False
            webhook_id = row[0]
            if status is DeliveryStatus.DELIVERED:
                conn.execute(_SUCCEEDING, (webhook_id,))
                return True
            conn.execute(_FAILING, (codec.ts(now), webhook_id))
            limit = codec.ts(now - disable_after)
            gone = conn.execute(_DISABLE, (codec.ts(now), webhook_id, limit)).fetchone()
            if gone is not None:
                reason = disabled_reason(codec.from_ts(gone[0]) or now)
                conn.execute(
                    "UPDATE webhooks SET disabled_reason = ? WHERE webhook_id = ?",
                    (reason, webhook_id),
                )
                conn.execute(_FAIL_PENDING, (reason, webhook_id))
                logger.warning("webhook disabled", extra={"webhook_id": webhook_id})
            return True

        return await self.write(finish, atomic=True)

    async def list_deliveries(
        self, webhook_id: str, *, limit: int = 50, status: DeliveryStatus | None = None
    ) -> list[Delivery]:
        sql = f"{_DELIVERY_SELECT} WHERE webhook_id = ?"
        args: list[Any] = [webhook_id]
        if status is not None:
            sql += " AND status = ?"
            args.append(status.value)
        sql += " ORDER BY created_at DESC, delivery_id DESC LIMIT ?"
        rows = self.conn.execute(sql, (*args, limit)).fetchall()
        return [codec.delivery_from_row(row) for row in rows]

    async def redeliver(self, webhook_id: str, delivery_id: str) -> Delivery | None:
        args = (codec.ts(utcnow()), delivery_id, webhook_id)
        row = await self.write(lambda conn: conn.execute(_REDELIVER, args).fetchone())
        return codec.delivery_from_row(row) if row else None

    async def delivery_counts(self) -> dict[str, int]:
        sql = (
            "SELECT status, count(*) FROM webhook_deliveries"
            " WHERE status IN ('pending', 'sending') GROUP BY status"
        )
        return {str(row[0]): int(row[1]) for row in self.conn.execute(sql).fetchall()}


def _write_outbox(conn: sqlite3.Connection, events: Sequence[Event], task_ids: list[str]) -> None:
    """Store the deliveries a batch makes (before its items are upserted: a controller's
    stored state says whether its task was just paused)."""
    heard = {
        task_id: [codec.webhook_from_row(r) for r in conn.execute(_SUBSCRIBERS, (task_id,))]
        for task_id in task_ids
    }
    if not any(heard.values()):
        return
    paused: dict[str, bool] = {}
    for item_id in controller_ids(events):
        row = conn.execute(_ITEM_PAYLOAD, (item_id,)).fetchone()
        paused[item_id] = row is not None and paused_in(json.loads(row[0] or "null"))
    now = utcnow()
    for task_id, webhooks in heard.items():
        if not webhooks:
            continue
        row = conn.execute(f"{_TASK_SELECT} WHERE task_id = ?", (task_id,)).fetchone()
        task = codec.salvaged_task(row)
        planned = plan_deliveries(events, task, webhooks, lambda i: paused.get(i, False), now)
        conn.executemany(_DELIVERY_INSERT, [codec.delivery_values(d) for d in planned])


class ServerAlreadyRunning(RuntimeError):
    """A second ``taskcell serve`` on one SQLite file."""


class ServerLock:
    """An exclusive lock beside the database file, held while a server uses it.

    SQLite serves one server: a second ``taskcell serve`` on the same file is refused. Other
    processes (the CLI, scripts) may still open the file; every change is a guarded write.
    """

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self._handle = handle

    @classmethod
    def acquire(cls, database: Path) -> ServerLock:
        lock_path = database.with_name(database.name + ".serve.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = lock_path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ServerAlreadyRunning(
                f"another taskcell server ({holder}) is already serving {database}. "
                "SQLite serves one server at a time: stop it, use another --db file, "
                "or run several servers on PostgreSQL (--db postgresql://...)."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        return cls(lock_path, handle)

    def release(self) -> None:
        if not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


# -- schema versions ---------------------------------------------------------------------


def _migration_files() -> list[tuple[int, str, str]]:
    folder = resources.files("taskcell.stores.sql").joinpath("sqlite")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            found.append((number, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def _statements(script: str) -> Iterator[str]:
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement in a schema file: {buffer[:80]!r}")


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Apply every schema version not yet applied, each in its own transaction.

    A version is applied when its own number is missing from ``schema_version``, whatever
    higher numbers are there (a version that lands after a higher one is still applied). Safe
    when several processes open the same new file at once: the version is looked for again
    under the write lock. Answers the highest schema version now in force.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_version")}
    for number, name, script in _migration_files():
        if number in applied:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT 1 FROM schema_version WHERE version = ?", (number,)).fetchone():
                conn.execute("COMMIT")
                continue
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version VALUES (?, ?, ?)",
                (number, name, codec.ts(utcnow())),
            )
            logger.info("schema version applied", extra={"version": number, "file": name})
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)
