"""The database of ``bench/scale.py``: a year of history written straight into the store's schema.

:func:`build_sqlite` writes ``tasks`` tasks (``recurring`` of them recurring, every other one a
finished once task), ``runs`` runs and ``events`` events (four a run: ``task_started``, one
``message_chunk``, ``task_completed``, ``done``), one conversation and one conversation item a
task. One recurring task, the *stream task*, has ``stream_events`` events (its share of runs is
``stream_events / 4``); the runs left over are shared among the other recurring tasks.

Rows are exactly what the store writes: the schema is the store's own (``SQLiteTaskStore``
applies its migrations to the new file), tasks and runs are pydantic models turned into values
by ``taskcell.stores.codec``, and events are built by the engine's ``ResponseFactory`` and stored
as ``codec.event_body``. Building is fast: ``executemany`` in large transactions, journal off
while the file is written (it is written under a temporary name and renamed when complete, so a
build cut short never passes for a finished one), rows in key order. A ``.json`` file beside the
database (the *manifest*) records the scale and the ids the benchmark needs; a database whose
manifest matches the scale asked for is reused as it is. :func:`write_history` makes the rows
(SQLite's encoding) for any writer: ``bench/scale_build_pg.py`` writes the same history into
PostgreSQL.

Times: the history ends ``END_AGO`` before the build; once tasks are spread over the year
before it; each recurring task runs every ``INTERVAL_MINUTES``, its runs ending with the history.
No task is left pending or running, so a server starting on the file has nothing to resume.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from taskcell.domain.events import ConversationItem
from taskcell.domain.models import Run, ScheduleConfig, Task, TaskPattern, new_id, utcnow
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine.responses import ResponseFactory
from taskcell.stores import codec
from taskcell.stores.sqlite import SQLiteTaskStore

USER = "default_user"  # every request is this user when no API keys are configured
EVENTS_PER_RUN = 4
INTERVAL_MINUTES = 60
YEAR = timedelta(days=365)
END_AGO = timedelta(hours=1)
#: Processes that served the history (a restart a week): the owners of its runs.
PAST_PROCESSES = 52
#: Rows per transaction.
BATCH = 20_000


@dataclass(frozen=True, slots=True)
class Scale:
    tasks: int
    recurring: int
    runs: int
    events: int
    stream_events: int

    def check(self) -> None:
        once = self.tasks - self.recurring
        if self.recurring < 1 or once < 0:
            raise ValueError("at least one recurring task, and no more than there are tasks")
        if self.events != self.runs * EVENTS_PER_RUN:
            raise ValueError(f"events must be {EVENTS_PER_RUN} a run")
        if self.stream_events % EVENTS_PER_RUN:
            raise ValueError(f"the stream task's events must be a multiple of {EVENTS_PER_RUN}")
        left = self.runs - once - self.stream_events // EVENTS_PER_RUN
        if left < 0 or (self.recurring == 1 and left):
            raise ValueError("the runs do not divide as the scale says")


#: The issue's scale: a year of work.
FULL = Scale(
    tasks=1_000_000, recurring=10_000, runs=5_000_000, events=20_000_000, stream_events=10_000
)
#: A tenth of it (the stream task keeps its 10,000 events): the PostgreSQL edition's default.
TENTH = Scale(tasks=100_000, recurring=1_000, runs=500_000, events=2_000_000, stream_events=10_000)
#: A hundredth of it (the stream task keeps its 10,000 events): a smoke test of the benchmark.
SMALL = Scale(tasks=10_000, recurring=100, runs=50_000, events=200_000, stream_events=10_000)


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a built database holds, beside it as JSON."""

    scale: Scale
    stream_task_id: str
    #: Ids of the recurring tasks, in build order (the stream task first).
    recurring_ids: list[str]
    #: The (created_at, task_id) of the task half-way down ``GET /tasks`` (newest first).
    middle: tuple[str, str]
    seconds: float
    built_at: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def write(self, path: Path) -> None:
        path.write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def parse(cls, text: str) -> Manifest | None:
        """The manifest ``text`` holds (:meth:`to_json`), or None if it holds none."""
        try:
            data = json.loads(text)
            data["scale"] = Scale(**data["scale"])
            data["middle"] = tuple(data["middle"])
            return cls(**data)
        except (ValueError, TypeError, KeyError):
            return None

    @classmethod
    def read(cls, path: Path) -> Manifest | None:
        try:
            return cls.parse(path.read_text(encoding="utf-8"))
        except OSError:
            return None


def manifest_path(db: Path) -> Path:
    return db.with_name(db.name + ".json")


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


#: Tasks with ``log_closed``: a once task's log is closed by its ``done`` (see the store).
_TASK_INSERT = _insert("tasks", (*codec.TASK_COLUMNS, "log_closed"))
#: Runs with ``log_from``, the task's last event seq when the run was made (the store's trigger
#: sets it as a run is inserted; written here, the trigger leaves it).
_RUN_INSERT = _insert("runs", (*codec.RUN_COLUMNS, "log_from"))
_ITEM_INSERT = _insert("conversation_items", codec.ITEM_COLUMNS)
_EVENT_INSERT = "INSERT INTO events (task_id, seq, body) VALUES (?, ?, ?)"
_CONVERSATION_INSERT = "INSERT INTO conversations VALUES (?, ?, ?, ?)"


@dataclass(slots=True)
class Rows:
    """Rows waiting for the next transaction."""

    tasks: list[tuple[Any, ...]]
    runs: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    items: list[tuple[Any, ...]]
    conversations: list[tuple[Any, ...]]

    @classmethod
    def empty(cls) -> Rows:
        return cls([], [], [], [], [])

    def size(self) -> int:
        return len(self.runs) + len(self.events) + len(self.tasks)

    def clear(self) -> None:
        self.tasks, self.runs, self.events, self.items, self.conversations = [], [], [], [], []


#: Writes the rows waiting (in SQLite's encoding: ``codec`` values of dialect ``"sqlite"``) and
#: clears them.
Flush = Callable[[Rows], None]


def _flush(conn: sqlite3.Connection, rows: Rows) -> None:
    conn.execute("BEGIN")
    conn.executemany(_TASK_INSERT, rows.tasks)
    conn.executemany(_CONVERSATION_INSERT, rows.conversations)
    conn.executemany(_ITEM_INSERT, rows.items)
    conn.executemany(_RUN_INSERT, rows.runs)
    conn.executemany(_EVENT_INSERT, rows.events)
    conn.execute("COMMIT")


#: Stand-ins in an event's stored body, replaced per event (see :class:`_EventBodies`).
_SEQ, _RUN, _ITEM, _TEXT = 987654321, "RUN-ID-HERE", "ITEM-ID-HERE", "TEXT-HERE"
_TASK, _CONVERSATION, _THREAD = "TASK-ID-HERE", "CONVERSATION-ID-HERE", "THREAD-ID-HERE"
_WHEN = datetime(1901, 2, 3, 4, 5, 6, 70809, tzinfo=UTC)


class _EventBodies:
    """The stored bodies of the run events of an agent's tasks, made by the codec once per kind
    (with stand-ins for the ids, seq, time and text) and filled in per event: ``codec.event_body``
    on every one of 20 million events would take most of the build. ``tests/scale`` checks that
    each body is what ``codec.event_body`` writes for the event it decodes to."""

    def __init__(self, agent_name: str) -> None:
        stand_in = Task.model_construct(
            task_id=_TASK,
            conversation_id=_CONVERSATION,
            thread_id=_THREAD,
            agent_name=agent_name,
        )
        responses = ResponseFactory(stand_in, _RUN)
        kinds = {
            "started": responses.task_started(),
            "chunk": responses.message_chunk(_TEXT, item_id=_ITEM),
            "completed": responses.task_completed(),
            "failed": responses.task_failed(_TEXT),
            "done": responses.done(),
        }
        self._templates = {}
        for name, event in kinds.items():
            event.created_at, event.item_id = _WHEN, _ITEM
            event.renumber(_SEQ)
            body = codec.event_body(event).replace("%", "%%")
            for token, field in (
                (str(_SEQ), "seq"),
                (_RUN, "run"),
                (_ITEM, "item"),
                (_TEXT, "text"),
                (_WHEN.isoformat(), "when"),
                (_TASK, "task"),
                (_CONVERSATION, "conversation"),
                (_THREAD, "thread"),
            ):
                body = body.replace(f'"{token}"' if field != "seq" else token, f"%({field})s")
            self._templates[name] = body

    def rows(self, task: Task, run: _RunRow, first_seq: int) -> list[tuple[Any, ...]]:
        """The four events of a finished run, as stored rows."""
        final = "completed" if run.status == "completed" else "failed"
        quoted = json.dumps(run.text, ensure_ascii=False)
        ids = {
            "task": f'"{task.task_id}"',
            "conversation": f'"{task.conversation_id}"',
            "thread": f'"{task.thread_id}"',
            "run": f'"{run.run_id}"',
            "text": quoted,
        }
        started, finished = _event_time(run.started), _event_time(run.finished)
        rows = []
        for offset, (name, moment) in enumerate(
            (("started", started), ("chunk", started), (final, finished), ("done", finished))
        ):
            seq = first_seq + offset
            values = {**ids, "seq": seq, "item": f'"{_fast_id()}"', "when": f'"{moment}"'}
            rows.append((task.task_id, seq, self._templates[name] % values))
        return rows


def _event_time(stored: str) -> str:
    """An event's ``created_at`` (``datetime.isoformat``) from the run's stored time (the codec's
    fixed width): the same text, but with no fraction when there is none."""
    return stored.replace(".000000", "", 1)


def _fast_id() -> str:
    """An id of ``new_id``'s form (32 hexadecimal digits), from ``random``: several times cheaper
    than ``os.urandom``, and the build makes 26 million of them."""
    return f"{random.getrandbits(128):032x}"


_BODIES = {name: _EventBodies(name) for name in ("echo", "clock")}

#: The columns a run row is built with here (checked against the store's at import).
_RUN_ROW_COLUMNS = (
    "run_id",
    "task_id",
    "attempt",
    "scheduled_for",
    "started_at",
    "finished_at",
    "status",
    "error",
    "result",
    "owner",
    "lease_expires_at",
    "created_at",
    "epoch",
    "closed_by",
)
assert codec.RUN_COLUMNS[: len(_RUN_ROW_COLUMNS)] == _RUN_ROW_COLUMNS, (
    "the store's runs changed: update the builder"
)
#: Columns added to runs after these: each row takes a new run's own values for them (a
#: finished run of the first version, with no time-out; ``tests/scale`` checks each row).
_RUN_LATER_VALUES = codec.run_values(Run(task_id="-"))[len(_RUN_ROW_COLUMNS) :]


@dataclass(slots=True)
class _RunRow:
    """A finished run: its stored row (what ``codec.run_values`` makes of the run, built directly:
    ``tests/scale`` checks each row against the codec) and what its events need."""

    run_id: str
    status: str
    started: str
    finished: str
    text: str
    values: tuple[Any, ...]


def _finished_run(
    task_id: str, title: str, *, start: datetime, scheduled_for: str | None, owner: str
) -> _RunRow:
    roll = random.random()
    finished_at = start + timedelta(seconds=2 + roll * 20)
    started, finished = codec.ts(start) or "", codec.ts(finished_at) or ""
    if roll < 0.05:
        status, error, result = "failed", "the agent failed: upstream error", None
    else:
        status, error, result = "completed", None, f"Result of {title} at {started[:16]}."
    run_id = _fast_id()
    values = (
        run_id,
        task_id,
        1,
        scheduled_for,
        started,
        finished,
        status,
        error,
        result,
        owner,
        finished,
        started,
        0,
        None,
        *_RUN_LATER_VALUES,
    )
    return _RunRow(run_id, status, started, finished, result or error or "", values)


def _add_task(rows: Rows, task: Task) -> None:
    log_closed = int(task.pattern is TaskPattern.ONCE)
    rows.tasks.append((*codec.task_values(task), log_closed))
    rows.conversations.append(
        (task.conversation_id, task.title, task.user_id, codec.ts(task.created_at))
    )


def _add_item(rows: Rows, task: Task, run_id: str | None, text: str) -> None:
    """The conversation item a task leaves: its answer (once) or its controller (recurring)."""
    responses = ResponseFactory(task, run_id)
    if task.pattern is TaskPattern.RECURRING:
        event = responses.component("scheduled_task_controller", {"task_id": task.task_id})
        component_type: str | None = "scheduled_task_controller"
    else:
        event = responses.message(text)
        component_type = None
    item = ConversationItem(
        item_id=event.item_id,
        conversation_id=task.conversation_id,
        thread_id=task.thread_id,
        task_id=task.task_id,
        run_id=run_id,
        role=event.role,
        event=event.event,
        payload=event.payload,
        created_at=task.created_at,
        updated_at=task.updated_at,
        agent_name=task.agent_name,
        component_type=component_type,
    )
    rows.items.append(codec.item_values(item))


_TASK_STATUS = {
    "completed": TaskStatus.COMPLETED,
    "failed": TaskStatus.FAILED,
    "cancelled": TaskStatus.CANCELLED,
}


def _once_task(task_id: str, created: datetime, owner: str, rows: Rows) -> None:
    task = Task(
        task_id=task_id,
        title=f"Summary {task_id[:6]}",
        query=f"summarise today's filings for {task_id[:4].upper()}",
        agent_name="echo",
        user_id=USER,
        created_at=created,
        updated_at=created,
    )
    run = _finished_run(task_id, task.title, start=created, scheduled_for=None, owner=owner)
    if random.random() < 0.03:  # cancelled while it ran
        run.status, run.text = "cancelled", "cancelled by the user"
        run.values = (*run.values[:6], "cancelled", run.text, None, *run.values[9:])
    finished = codec.from_ts(run.finished)
    task.attempt, task.status = 1, _TASK_STATUS[run.status]
    task.started_at, task.completed_at, task.updated_at = created, finished, finished
    task.error_message = None if run.status == "completed" else run.text
    _add_task(rows, task)
    _add_item(rows, task, run.run_id, run.text)
    rows.runs.append((*run.values, 0))
    rows.events += _BODIES["echo"].rows(task, run, 1)


def _recurring_task(
    task_id: str, runs: int, end: datetime, owners: list[str], rows: Rows, flush: Flush
) -> None:
    interval = timedelta(minutes=INTERVAL_MINUTES)
    created = end - interval * (runs + 1) - timedelta(seconds=random.random() * 3000)
    task = Task(
        task_id=task_id,
        title=f"Hourly report {task_id[:6]}",
        query=f"report the hourly figures for desk {task_id[:4]}",
        agent_name="clock",
        user_id=USER,
        pattern=TaskPattern.RECURRING,
        schedule_config=ScheduleConfig(interval_minutes=INTERVAL_MINUTES),
        status=TaskStatus.RUNNING,
        created_at=created,
        started_at=created,
        updated_at=created,
        next_run_at=created + interval * (runs + 1),
    )
    _add_task(rows, task)
    _add_item(rows, task, None, "")
    bodies = _BODIES["clock"]
    seq = 1
    for k in range(runs):
        due = created + interval * (k + 1)
        owner = owners[min(len(owners) - 1, int(len(owners) * k / max(runs, 1)))]
        start = due + timedelta(microseconds=1 + random.randrange(50_000))
        run = _finished_run(
            task_id, task.title, start=start, scheduled_for=codec.ts(due), owner=owner
        )
        rows.runs.append((*run.values, seq - 1))
        rows.events += bodies.rows(task, run, seq)
        seq += EVENTS_PER_RUN
        if rows.size() >= BATCH:
            flush(rows)


def _recurring_runs(scale: Scale) -> Iterator[int]:
    """How many runs each recurring task has (the stream task first)."""
    yield scale.stream_events // EVENTS_PER_RUN
    others = scale.recurring - 1
    if not others:
        return
    left = scale.runs - (scale.tasks - scale.recurring) - scale.stream_events // EVENTS_PER_RUN
    share, extra = divmod(left, others)
    for index in range(others):
        yield share + (1 if index < extra else 0)


def _open_for_build(path: Path) -> sqlite3.Connection:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = SQLiteTaskStore(path)
    _ = store.conn  # applies the store's schema to the new file
    store.conn.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1048576")  # 1 GiB: index pages stay in memory
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


def write_history(
    scale: Scale, flush: Flush, *, seed: int = 19, progress: bool = False
) -> list[str]:
    """Make the rows of a history of ``scale`` (the same for the same ``seed``), handing them to
    ``flush`` in batches of about :data:`BATCH` rows, in task id order; answers the ids of the
    recurring tasks, the stream task first."""
    scale.check()
    random.seed(seed)
    began = time.perf_counter()
    end = utcnow() - END_AGO
    owners = [f"bench-host:{1000 + k}:{new_id()[:6]}" for k in range(PAST_PROCESSES)]
    # Task ids in key order, so every table and index is written in order (a compact file);
    # creation times are shuffled over the year, so the list order is not the key order.
    ids = sorted(new_id() for _ in range(scale.tasks))
    recurring_at = set(random.sample(range(scale.tasks), scale.recurring))
    once_times = list(range(scale.tasks - scale.recurring))
    random.shuffle(once_times)
    step = YEAR / max(1, len(once_times))
    start = end - YEAR
    runs_of = _recurring_runs(scale)
    recurring_ids: list[str] = []
    rows = Rows.empty()
    once_index = 0
    for index, task_id in enumerate(ids):
        if index in recurring_at:
            recurring_ids.append(task_id)
            _recurring_task(task_id, next(runs_of), end, owners, rows, flush)
        else:
            created = start + step * once_times[once_index]
            owner = owners[int(PAST_PROCESSES * once_times[once_index] / len(once_times))]
            once_index += 1
            _once_task(task_id, created, owner, rows)
        if rows.size() >= BATCH:
            flush(rows)
        if progress and index % 50_000 == 0 and index:
            elapsed = time.perf_counter() - began
            print(f"  {index:,} of {scale.tasks:,} tasks written ({elapsed:.0f} s)", flush=True)
    flush(rows)
    return recurring_ids


def build_sqlite(path: Path, scale: Scale, *, seed: int = 19, progress: bool = False) -> Manifest:
    """Write a database of ``scale`` at ``path`` (replacing any) and its manifest."""
    scale.check()
    began = time.perf_counter()
    building = path.with_name(path.name + ".building")
    conn = _open_for_build(building)

    def flush(rows: Rows) -> None:
        _flush(conn, rows)
        rows.clear()

    recurring_ids = write_history(scale, flush, seed=seed, progress=progress)
    middle = conn.execute(
        "SELECT created_at, task_id FROM tasks ORDER BY created_at DESC, task_id DESC"
        " LIMIT 1 OFFSET ?",
        (scale.tasks // 2,),
    ).fetchone()
    # No ANALYZE: the store never runs it, so a served file has no statistics either.
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    os.replace(building, path)
    manifest = Manifest(
        scale=scale,
        stream_task_id=recurring_ids[0],
        recurring_ids=recurring_ids,
        middle=(middle[0], middle[1]) if middle else ("", ""),
        seconds=time.perf_counter() - began,
        built_at=codec.ts(utcnow()) or "",
    )
    manifest.write(manifest_path(path))
    return manifest


def built(path: Path, scale: Scale) -> Manifest | None:
    """The manifest of the database at ``path`` if it was built complete at ``scale``."""
    manifest = Manifest.read(manifest_path(path))
    if manifest is None or manifest.scale != scale or not path.exists():
        return None
    return manifest
