"""Every interface of taskcell's storage layer, with its contract.

Stores are the truth: every state change is one guarded write and the caller learns whether it
happened. The same contract test suite (``tests/stores/test_contract.py``) runs against every
implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from taskcell.domain.events import ConversationItem, Event
from taskcell.domain.models import Fence, Run, RunStatus, Task, TaskPattern
from taskcell.domain.state_machine import TaskStatus

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """The filters of ``GET /tasks``; every field set is AND-ed, None means any."""

    user_id: str | None = None
    conversation_id: str | None = None
    status: TaskStatus | None = None
    pattern: TaskPattern | None = None
    agent_name: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, and the opaque cursor of the next page (None on the last)."""

    items: list[T]
    next_cursor: str | None = None


#: The task fields that :meth:`TaskStore.update` may write (status only moves by transition).
UPDATABLE_FIELDS: frozenset[str] = frozenset(
    {
        "title",
        "paused",
        "next_run_at",
        "attempt",
        "max_attempts",
        "remote_task_ids",
        "error_message",
        "metadata",
        "schedule_config",
    }
)


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A process serving the database (``process_id`` names host and pid), by its heartbeats."""

    process_id: str
    started_at: datetime
    heartbeat_at: datetime


class InvalidCursor(ValueError):
    """A cursor that this store did not hand out (the API answers 400)."""


class DuplicateTask(ValueError):
    """A task with this id exists already."""


class EventConflict(ValueError):
    """An appended event's (task_id, seq) is taken: another writer appended to that task's log
    first. Nothing of the batch was stored; numbering it after the log's end and appending
    again is the remedy."""


class LeaseLost(RuntimeError):
    """A write guarded by a run's :class:`~taskcell.domain.models.Fence` was refused: the run is
    no longer this owner's at this epoch (another process took it over after its lease expired,
    or a reply was taken up elsewhere), or it is no longer open where the write settles it.

    Nothing of the write was stored. The run that made it must stop at once (cancelling its
    remote agent task) and write nothing more: another attempt owns the task now, or owned it
    and settled it. ``run_ids`` names the refused runs.
    """

    def __init__(self, message: str, *, run_ids: Collection[str] = ()) -> None:
        super().__init__(message)
        self.run_ids = frozenset(run_ids)


class LogClosed(RuntimeError):
    """Events were appended to a task's log after its closing ``done`` (see
    :meth:`EventStore.append_events`). Nothing of the batch was stored; ``task_ids`` names
    the tasks whose logs are closed, whose events are to be dropped."""

    def __init__(self, message: str, *, task_ids: Collection[str] = ()) -> None:
        super().__init__(message)
        self.task_ids = frozenset(task_ids)


class StoreUnavailable(ConnectionError):
    """The store cannot be used now: its database is unreachable, its disk full or unwritable,
    or its file was deleted or replaced under the server. An outage, not a bug: loops wait it
    out, the API answers 503 with the reason."""


class TaskStore(Protocol):
    """Durable storage of tasks and their runs.

    Contract:

    - ``save`` inserts a new task and raises :class:`DuplicateTask` if its id exists.
      ``create`` does the same and, in the same write, stores the task's conversation (owned by
      the task's user, named ``conversation_title``) if it is not stored yet; it answers whether
      the conversation is new. A duplicate task stores neither.
    - ``load`` answers the task or None; ``exists`` whether it is stored; ``delete`` removes a
      task with its runs and answers whether it existed.
    - ``list_tasks`` answers tasks matching every set field of the filter, newest first
      (``created_at`` then ``task_id``, both descending), ``limit`` at most per page, and a
      keyset cursor: a page costs the same at any depth, and walking the cursors visits every
      matching task exactly once (tasks created meanwhile may or may not appear). A cursor not
      made by the store raises :class:`InvalidCursor`.
    - ``transition`` moves a task to ``target`` in one guarded write: it happens only if the
      task's current status is in ``expected`` (default: every status the state machine allows
      ``target`` from). It sets ``updated_at``, ``started_at`` on the first start,
      ``completed_at`` on a final status, and the given ``changes``. It answers whether the write
      happened; a refused or unknown task answers False and changes nothing.
    - ``update`` writes non-status fields (:data:`UPDATABLE_FIELDS`), optionally guarded by the
      current status, and answers whether the task was updated.
    - ``cancel_conversation`` cancels every unfinished task of a conversation in one write and
      answers their ids.
    - ``add_run`` stores a run; it answers False (and stores nothing) when the task already has a
      run for the same ``scheduled_for``, so an occurrence never runs twice.
    - ``start_run`` starts an attempt of a once task in one write: it moves the task from pending
      to running (``attempt`` set to ``run.attempt``, ``started_at`` on the first start) and
      stores ``run``, both or neither. It answers False, changing nothing, when the task is not
      pending or already has a run for that attempt.
    - ``continue_run`` takes up a task that waited for input in one write: the task moves from
      waiting_input to running and its run ``run_id`` from waiting_input to running under
      ``owner`` with ``lease_expires_at`` and its epoch one higher (a takeover: the run's
      earlier fence is void), both or neither. It answers False, changing nothing, when either
      is not waiting (another reply won, or the task was cancelled).
    - ``update_run`` changes a run, guarded by its current status being in ``expected``, and
      answers whether it did. With ``fence`` the write is also guarded, in the same statement,
      by the run being open and still the fence's (owner and epoch): refused, it raises
      :class:`LeaseLost` and changes nothing. ``list_runs`` answers a task's runs newest first.
    - ``finish_run`` ends a run and settles its task in one write: it applies ``changes`` to the
      run if the run is still open (queued, running or waiting for input), and moves the task to
      ``target`` exactly as ``transition`` would (with ``expected`` and ``task_changes``). It
      answers (run closed, task moved); each part happens or not on its own guard. With
      ``fence``, nothing happens unless the run is open and still the fence's (owner and
      epoch): then it raises :class:`LeaseLost`; the task moves only with its run closed.
    - ``update`` with ``fence`` (a run writing its task's fields: remote ids, a recurring
      task's pause after failures) happens only while the fence's run still has its owner and
      epoch, else raises :class:`LeaseLost`.
    - ``due_tasks`` answers unpaused running recurring tasks whose ``next_run_at`` is at or
      before ``now``, earliest first; ``next_due_at`` the earliest such time (or None).
    - ``claim_occurrence`` moves an armed task's ``next_run_at`` from ``due`` to ``next_run_at``
      in one guarded write and answers whether it did: of several schedulers that saw the same
      due time, exactly one wins the occurrence.
    - ``claim_due`` claims up to ``limit`` due occurrences at once: for each armed task due at
      ``now`` it moves ``next_run_at`` to ``next_time(task)`` and answers the task (with the new
      time) and the due time it had. Concurrent claimers get disjoint tasks (PostgreSQL:
      ``FOR UPDATE SKIP LOCKED``); each occurrence is claimed once. ``now`` is a reading of
      the store's clock (:meth:`Coordination.clock`); a shared database never claims an
      occurrence before its own clock reaches it, whatever ``now`` says.
    - ``start_due`` is ``claim_due`` that also starts each claimed occurrence in the same
      transaction: it stores ``make_run(task, due)`` (a running run with owner and lease, or a
      skipped one; None stores no run, for a task ``next_time`` disarmed), but a skipped run
      for ``due`` with ``skipped_reason`` instead when the task has a queued or running run
      whose lease has not expired. It answers each claimed task (with its new
      ``next_run_at``) with the run stored for it; an occurrence whose run could not be stored
      (the task has a run for that ``scheduled_for``) is claimed and answered with None. The
      run's lease is its length (``lease_expires_at - started_at``) from the store's clock,
      as for ``start_run``. A process that dies after it loses nothing: the run's lease
      expires and recovery closes it by the usual rules.
    - ``claim_pending`` claims up to ``limit`` pending once tasks unchanged for ``idle_for``
      by the store's clock (orphans: their process died before running them) by touching
      their ``updated_at``, oldest first; concurrent claimers get disjoint tasks.
    - ``start_run``, ``add_run`` and ``continue_run`` take a run's lease as its length: a
      shared database stores ``lease_expires_at`` as its own clock plus the length the caller
      meant (``lease_expires_at - started_at``; for ``add_run``, ``- created_at``; for
      ``continue_run``, ``lease_expires_at - now``), so a process's clock never sets a lease.
    - ``count_by_status`` answers how many tasks are in each status (for metrics).
    - ``ping`` answers whether the store answers. ``check`` answers None when the store is
      usable, else why not (unreachable, its file deleted or replaced, its last write refused
      for lack of disk...); it answers within about a second whatever the disk or network
      does (for ``/health``).
    - A write or read the store cannot do for an outage raises an I/O error
      (:class:`StoreUnavailable`, ``OSError``, the driver's connection errors), never hangs
      without bound: the caller may retry it.
    - Datetimes go in and come out aware, in UTC.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    async def check(self) -> str | None: ...

    async def save(self, task: Task) -> None: ...

    async def create(self, task: Task, *, conversation_title: str) -> bool: ...

    async def load(self, task_id: str) -> Task | None: ...

    async def exists(self, task_id: str) -> bool: ...

    async def delete(self, task_id: str) -> bool: ...

    async def list_tasks(
        self, flt: TaskFilter, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Task]: ...

    async def transition(
        self,
        task_id: str,
        target: TaskStatus,
        *,
        expected: Collection[TaskStatus] | None = None,
        changes: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> bool: ...

    async def update(
        self,
        task_id: str,
        changes: Mapping[str, Any],
        *,
        expected: Collection[TaskStatus] | None = None,
        now: datetime | None = None,
        fence: Fence | None = None,
    ) -> bool: ...

    async def cancel_conversation(
        self, conversation_id: str, *, reason: str | None = None, now: datetime | None = None
    ) -> list[str]: ...

    async def add_run(self, run: Run) -> bool: ...

    async def start_run(self, run: Run, *, now: datetime | None = None) -> bool: ...

    async def continue_run(
        self,
        run_id: str,
        *,
        task_id: str,
        owner: str,
        lease_expires_at: datetime,
        now: datetime | None = None,
    ) -> bool: ...

    async def update_run(
        self,
        run_id: str,
        changes: Mapping[str, Any],
        *,
        expected: Collection[RunStatus] | None = None,
        fence: Fence | None = None,
    ) -> bool: ...

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
    ) -> tuple[bool, bool]: ...

    async def load_run(self, run_id: str) -> Run | None: ...

    async def list_runs(
        self, task_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Run]: ...

    async def runs_in_status(self, statuses: Sequence[RunStatus]) -> list[Run]: ...

    async def due_tasks(self, now: datetime, *, limit: int = 100) -> list[Task]: ...

    async def next_due_at(self) -> datetime | None: ...

    async def claim_occurrence(
        self, task_id: str, *, due: datetime, next_run_at: datetime | None
    ) -> bool: ...

    async def claim_due(
        self,
        now: datetime,
        next_time: Callable[[Task], datetime | None],
        *,
        limit: int = 500,
    ) -> list[tuple[Task, datetime]]: ...

    async def start_due(
        self,
        now: datetime,
        next_time: Callable[[Task], datetime | None],
        make_run: Callable[[Task, datetime], Run | None],
        *,
        skipped_reason: str,
        limit: int = 500,
    ) -> list[tuple[Task, Run | None]]: ...

    async def claim_pending(self, idle_for: timedelta, *, limit: int = 100) -> list[Task]: ...

    async def count_by_status(self) -> dict[str, int]: ...


class EventStore(Protocol):
    """The durable event log and the conversation history.

    Contract:

    - ``append_events`` stores a batch of events (each with its task's next ``seq``; (task_id,
      seq) is unique) and upserts conversation items by ``item_id`` (an existing item keeps its
      ``created_at`` and takes the new payload), all in one transaction: after it returns, all
      of it is durable, or none of it on an error. An event whose (task_id, seq) is stored
      already raises :class:`EventConflict`, storing nothing. Each of ``notices`` is sent to
      the other processes (as ``Coordination.notify`` would) when, and only if, the batch
      commits.
    - Fencing, in the same transaction: an event with a ``fence`` is stored only while the
      fence's run still has that owner and epoch (a run's closing events, written after it
      settled itself, pass; a run taken over does not); otherwise :class:`LeaseLost` names
      the refused runs and nothing of the batch is stored. Events without a fence (a user's
      message, a control) are not checked.
    - A closed log: a ``done`` appended while its task's status is final (completed, failed,
      cancelled) closes the task's log (a once task's ``done``; a recurring task's after its
      cancel; the ``done`` that follows a recurring task's controller does not close it). Any
      event of a task whose log is closed, or after a closing ``done`` in the same batch,
      raises :class:`LogClosed` naming the tasks, storing nothing (so a log never holds a
      second ``done`` after its closing one). :class:`LeaseLost` is checked first.
    - Text the store cannot encode (a lone surrogate) raises ``UnicodeEncodeError``, storing
      nothing of the batch.
    - ``read_events`` answers a task's events with ``seq > after``, in order, at most ``limit``.
    - ``last_seq`` answers the highest ``seq`` stored for a task (0 for none).
    - ``list_items`` answers a conversation's items oldest first (``created_at``, ``item_id``),
      keyset paged like tasks.
    - ``task_items`` answers a task's items with the given component type (found through an
      index on task id, never by scanning conversations).
    - Conversation ids are scoped per user: the same id chosen by two users names two
      conversations. ``ensure_conversation`` creates the user's conversation record if missing
      and answers whether it did; ``has_conversation`` answers whether ``user_id`` has a
      conversation with that id (any user's, with ``user_id`` None).
    - ``list_items`` with ``user_id`` answers only the items of that user's tasks (one user's
      conversation); without, the items of every user's conversation with that id.
    - Deleting a task (``TaskStore.delete``) removes its events and items too.
    """

    async def append_events(
        self,
        events: Sequence[Event],
        items: Sequence[ConversationItem],
        *,
        notices: Sequence[str] = (),
    ) -> None: ...

    async def read_events(
        self, task_id: str, *, after: int = 0, limit: int = 500
    ) -> list[Event]: ...

    async def last_seq(self, task_id: str) -> int: ...

    async def list_items(
        self,
        conversation_id: str,
        *,
        user_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[ConversationItem]: ...

    async def task_items(
        self, task_id: str, *, component_type: str | None = None
    ) -> list[ConversationItem]: ...

    async def ensure_conversation(
        self, conversation_id: str, *, title: str, user_id: str
    ) -> bool: ...

    async def has_conversation(
        self, conversation_id: str, *, user_id: str | None = None
    ) -> bool: ...


class Coordination(Protocol):
    """How the processes that share a store find each other.

    Contract:

    - One clock. Every lease, heartbeat, dead-process and claim decision is made by the
      store's clock, never by the calling process's: on a shared database (PostgreSQL) that is
      the database server's clock, read inside the very statement that decides (``now()``), so
      a process whose clock is off by seconds or minutes can neither expire another's lease
      early nor bury a live process. Callers pass lengths of time (``timedelta``), not
      moments. A single-server store (SQLite, memory) uses the process's clock, which is then
      the only one. ``clock`` answers the store's clock (a reading of it: for waits and
      displays, never to decide ownership).
    - ``single_server`` is True for a store only one server may use (SQLite, memory): at
      start-up every run left running is then an orphan. False for a shared database.
    - ``heartbeat`` records that ``process_id`` is alive now (its first heartbeat is its
      ``started_at``). ``live_processes`` answers the processes whose last heartbeat is within
      ``within`` of now (at or after ``now - within``), oldest first.
    - ``claim_dead_processes`` deletes the process records whose last heartbeat is more than
      ``silent_for`` ago (before ``now - silent_for``; except ``keep``'s) and answers them:
      concurrent claimers get disjoint ones, so exactly one process tidies up after each dead
      one.
    - ``runs_finished_by`` answers the runs ``owner`` closed itself with ``finished_at`` at or
      after ``since``: its own runs that no other process closed (``closed_by`` unset), and
      the runs it closed as ``closed_by`` (taken over from a dead owner).
    - ``renew_leases`` moves ``lease_expires_at`` of every queued or running run of ``owner``
      to now plus ``lease`` and answers how many it renewed.
    - ``interrupt_expired`` closes, in one guarded write, every queued or running run whose lease
      expired (``lease_expires_at`` before now; ``finished_at`` set to now, status interrupted,
      the reason as error, its epoch one higher, so its old owner's fence is void) and answers
      those runs: each is recovered by exactly one process, the one that closed it. With
      ``by``, the closed runs record ``by`` as their ``closed_by`` (``runs_finished_by`` then
      finds them under it, never under the dead owner), and, in the same write, each once task
      still running on such a run is requeued (pending) if its run's attempt is below its
      ``max_attempts``, else failed with the reason (``completed_at`` equal to the run's
      ``finished_at``; its closing events are the caller's to write).
    - ``notify`` tells every other process ``message`` (a no-op for a single server); ``listen``
      calls ``handler`` with each message another process sent, until cancelled, and
      ``on_listening`` (if given) each time it starts listening. When its connection drops it
      raises (an I/O error): the caller retries, and on ``on_listening`` re-reads what it may
      have missed while deaf.
    """

    single_server: bool

    async def clock(self) -> datetime: ...

    async def heartbeat(self, process_id: str) -> None: ...

    async def live_processes(self, within: timedelta) -> list[ProcessInfo]: ...

    async def claim_dead_processes(
        self, silent_for: timedelta, *, keep: str
    ) -> list[ProcessInfo]: ...

    async def runs_finished_by(self, owner: str, since: datetime) -> list[Run]: ...

    async def renew_leases(self, owner: str, lease: timedelta) -> int: ...

    async def interrupt_expired(self, reason: str, *, by: str | None = None) -> list[Run]: ...

    async def notify(self, message: str) -> None: ...

    async def listen(
        self, handler: Callable[[str], None], *, on_listening: Callable[[], None] | None = None
    ) -> None: ...


class Store(TaskStore, EventStore, Coordination, Protocol):
    """A complete store: tasks, runs, events and conversations in one database."""
