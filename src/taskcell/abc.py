"""Every interface of taskcell's storage layer, with its contract.

Stores are the truth: every state change is one guarded write and the caller learns whether it
happened. The same contract test suite (``tests/stores/test_contract.py``) runs against every
implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from taskcell.domain.events import ConversationItem, Event
from taskcell.domain.models import EDITABLE_FIELDS, Fence, Run, RunStatus, Task, TaskPattern
from taskcell.domain.state_machine import TaskStatus
from taskcell.domain.webhooks import Delivery, DeliveryStatus, Webhook

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
        "pause_note",
        "run_timeout_seconds",
        *EDITABLE_FIELDS,
    }
)


@dataclass(frozen=True, slots=True)
class OccurrenceRuns:
    """What :meth:`TaskStore.add_occurrences` stored: its runs in order (running, queued,
    skipped or cancelled as the overlap policy decided), and the runs in progress it closed as
    cancelled (overlap ``cancel_other``)."""

    runs: list[Run]
    replaced: list[Run]


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

    Rules every method keeps (each method's own contract is in its docstring):

    - Every state change is one guarded write: it happens only if its guard (the task's or
      run's current status, a fence) still holds when it is written, and the method answers
      whether it happened. A refused write changes nothing.
    - What a transition writes beside the status (``updated_at``, ``started_at`` on the first
      run, ``completed_at`` and a cleared ``next_run_at`` on a final status) is the state
      machine's (:func:`~taskcell.domain.state_machine.effects_of`), in every method that
      moves a task.
    - Datetimes go in and come out aware, in UTC.
    - A write or read the store cannot do for an outage raises an I/O error
      (:class:`StoreUnavailable`, ``OSError``, the driver's connection errors), never hangs
      without bound: the caller may retry it.
    - Leases are lengths, never moments: a shared database stores ``lease_expires_at`` as its
      own clock plus the length the caller meant, so a process's clock never sets a lease
      (see :class:`Coordination`).
    """

    async def open(self) -> None:
        """Connect and bring the schema up to date (every pending migration, applied once
        even by processes opening together). Idempotent; other methods open lazily."""
        ...

    async def close(self) -> None:
        """Release connections and files. Idempotent; the store is not used afterwards."""
        ...

    async def check(self) -> str | None:
        """None when the store is usable, else why not, for people (unreachable, its file
        deleted or replaced, its last write refused for lack of disk...).

        Answers within about a second whatever the disk or network does (``/health``);
        never raises for an outage, which it reports.
        """
        ...

    async def create(self, task: Task, *, conversation_title: str) -> bool:
        """Insert a new task and, in the same write, its conversation (owned by the task's
        user, titled ``conversation_title``) if that user has none of that id yet.

        Answers whether the conversation is new. Raises :class:`DuplicateTask` when the
        task's id is taken, storing neither. Atomic: both or neither.
        """
        ...

    async def load(self, task_id: str) -> Task | None:
        """The task, or None when no task has that id.

        A stored row that cannot be decoded is answered with the failed fields cleared and
        ``error_message`` saying which and why (so its user can see, cancel, delete it).
        """
        ...

    async def delete(self, task_id: str) -> bool:
        """Remove the task with its runs, events and conversation items, in one write.

        Answers whether the task existed. Does not look at its status (the service refuses
        to delete an unfinished task).
        """
        ...

    async def list_tasks(
        self, flt: TaskFilter, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Task]:
        """One page of the tasks matching every set field of ``flt``, newest first
        (``created_at`` then ``task_id``, both descending), at most ``limit``.

        Keyset paged: a page costs the same at any depth, and walking the cursors visits
        every matching task exactly once (tasks created meanwhile may or may not appear).
        Rows that cannot be decoded are left out (logged). Raises :class:`InvalidCursor`
        for a cursor this store did not make.
        """
        ...

    async def transition(
        self,
        task_id: str,
        target: TaskStatus,
        *,
        expected: Collection[TaskStatus] | None = None,
        changes: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Move a task to ``target`` in one guarded write.

        It happens only if the task's status is in ``expected`` (default: every status the
        state machine allows ``target`` from; statuses outside those are ignored). It writes
        the transition's effects (at ``now``, default the current time) and ``changes``
        (:data:`UPDATABLE_FIELDS` only, else ``ValueError`` before anything is written).
        Answers whether the write happened: False, changing nothing, for a refused or
        unknown task.
        """
        ...

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
        """Write non-status fields (:data:`UPDATABLE_FIELDS`, else ``ValueError``) and
        ``updated_at``, in one write guarded by the status being in ``expected`` (None: any)
        and, with ``version``, by the task's version being that one (no :meth:`edit` came
        between the caller's read and this write).

        With ``fence`` (a run writing its task's fields: remote ids, a recurring task's pause
        after failures) it happens only while the fence's run still has its owner and epoch,
        else raises :class:`LeaseLost` and changes nothing. Answers whether the task was
        updated (False for an unknown task or a refused guard).
        """
        ...

    async def edit(
        self, task_id: str, change: Callable[[Task, datetime], Mapping[str, Any]]
    ) -> Task | None:
        """Edit a task (``PATCH /tasks/{id}``) in one guarded write, read and written in one
        transaction.

        It reads the task, held against every other write of it (a claim of its occurrence
        waits, or skips it for now), and calls ``change(task, now)``, ``now`` a reading of the
        store's clock taken with the task held; ``change`` does no I/O and answers the fields
        to write (:data:`UPDATABLE_FIELDS`, else ``ValueError``). Those are written with
        ``updated_at`` at ``now`` and ``version`` one higher, guarded by the version read.
        Answers the task as written, None (writing nothing) for an unknown task. An exception
        raised by ``change`` propagates and stores nothing.
        """
        ...

    async def cancel_conversation(
        self, conversation_id: str, *, reason: str | None = None, now: datetime | None = None
    ) -> list[str]:
        """Cancel every unfinished task of a conversation (any user's) in one write, as
        ``transition`` to cancelled would (``reason``, if given, as ``error_message``).

        Answers the ids of the tasks it cancelled.
        """
        ...

    async def add_run(self, run: Run) -> bool:
        """Store a run. Answers False, storing nothing, when its task already has a run for
        the same ``scheduled_for`` (for a once task's runs, the same ``attempt``), so an
        occurrence never runs twice.

        The lease is a length: ``lease_expires_at - created_at`` from the store's clock.
        """
        ...

    async def start_run(self, run: Run, *, now: datetime | None = None) -> bool:
        """Start an attempt of a once task, in one atomic write: the task moves from pending
        to running (``attempt`` set to ``run.attempt``, stamped at ``now``) and ``run`` is
        stored, both or neither.

        Answers False, changing nothing, when the task is not pending or already has a run
        for that attempt. The lease is ``lease_expires_at - started_at`` from the store's
        clock.
        """
        ...

    async def continue_run(
        self,
        run_id: str,
        *,
        task_id: str,
        owner: str,
        lease_expires_at: datetime,
        now: datetime | None = None,
    ) -> bool:
        """Take up a task that waited for input, in one atomic write: the task moves from
        waiting_input to running and its run ``run_id`` from waiting_input to running under
        ``owner``, its epoch one higher (a takeover: the run's earlier fence is void).

        The lease is ``lease_expires_at - now`` from the store's clock. Answers False,
        changing nothing, when either is not waiting (another reply won, or the task was
        cancelled).
        """
        ...

    async def update_run(
        self,
        run_id: str,
        changes: Mapping[str, Any],
        *,
        expected: Collection[RunStatus] | None = None,
        fence: Fence | None = None,
    ) -> bool:
        """Change a run's fields (not ``run_id`` or ``task_id``: ``ValueError``), guarded by
        its status being in ``expected`` (None: any). Answers whether it did.

        With ``fence`` the write is also guarded, in the same statement, by the run being
        open and still the fence's (owner and epoch): refused, it raises :class:`LeaseLost`
        and changes nothing.
        """
        ...

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
        """End a run and settle its task, in one atomic write.

        Applies ``changes`` to the run if it is still open (queued, running or waiting for
        input), and moves the task to ``target`` exactly as ``transition`` would (with
        ``expected``, ``task_changes`` and ``now``); each part happens or not on its own
        guard. Answers (run closed, task moved). With ``fence``, nothing happens unless the
        run is open and still the fence's: then it raises :class:`LeaseLost`; the task
        moves only with its run closed.
        """
        ...

    async def load_run(self, run_id: str) -> Run | None:
        """The run, or None when no run has that id."""
        ...

    async def list_runs(
        self, task_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Run]:
        """One page of a task's runs, newest first (``created_at`` then ``run_id``), keyset
        paged like ``list_tasks`` (:class:`InvalidCursor` for a cursor not made here)."""
        ...

    async def runs_in_status(
        self, statuses: Sequence[RunStatus], *, task_id: str | None = None
    ) -> list[Run]:
        """Every run whose status is one of ``statuses`` (only ``task_id``'s, if given),
        oldest first (none for none)."""
        ...

    async def next_due_at(self) -> datetime | None:
        """The earliest ``next_run_at`` of the armed tasks (unpaused running recurring
        tasks), or None when none is armed: when the scheduler must look next."""
        ...

    async def read_ahead(self, due_before: datetime, *, limit: int = 500) -> int:
        """Read, changing nothing, what claiming the occurrences of up to ``limit`` armed
        tasks due before ``due_before`` will read: each task's row, its occurrence's slot, its
        latest run and the end of its log. The scheduler calls it shortly before they fall
        due, so a claim finds those pages in memory instead of waiting for the disk task by
        task. Never on the event loop where a read would block it (SQLite: in a worker thread
        with a connection of its own). Answers how many tasks it read."""
        ...

    async def start_due(
        self,
        now: datetime,
        next_time: Callable[[Task], datetime | None],
        make_run: Callable[[Task, datetime], Run | Sequence[Run] | None],
        *,
        skipped_reason: str,
        limit: int = 500,
    ) -> list[tuple[Task, Run | None]]:
        """Claim up to ``limit`` due occurrences and start them, in one transaction.

        For each armed task due at ``now`` (earliest first) it moves ``next_run_at`` to
        ``next_time(task)`` and stores the runs ``make_run(task, due)`` makes (one run or
        several in order, as its catch-up policy says: running ones with owner and lease, and
        skipped records; None stores no run, for a task ``next_time`` disarmed). Each running
        one is stored as the task's overlap policy decides
        (:func:`~taskcell.stores.rules.admit_runs`), counting the task's running runs whose
        lease holds and its queued ones: started, ``queued`` (no owner, no lease), skipped
        with the policy's reason (``skipped_reason`` for ``skip``), or started replacing the
        runs in progress, which are closed as cancelled in the same write (their epoch one
        higher, so their owners' writes are refused).

        Answers each stored run with its task (with its new ``next_run_at``), in order, then
        each run it replaced (status cancelled); a claimed task with no run stored (none made,
        or the task has runs for those ``scheduled_for``) is answered once with None.

        Concurrent claimers get disjoint tasks, so each occurrence is claimed once. ``now``
        is a reading of the store's clock (:meth:`Coordination.clock`); a shared database
        never claims an occurrence before its own clock reaches it, whatever ``now`` says. A
        due row that cannot be decoded is disarmed and paused with the reason (logged), so it
        never blocks the scheduler again. The run's lease is its length from the store's
        clock; a process that dies after it loses nothing: the lease expires and recovery
        closes the run by the usual rules.
        """
        ...

    async def add_occurrences(self, task_id: str, runs: Sequence[Run]) -> OccurrenceRuns | None:
        """Store occurrences of a running recurring task outside its schedule (run now, a
        backfill), in order, under the task's overlap policy exactly as :meth:`start_due`
        stores a claim's runs, in one transaction.

        A run whose ``scheduled_for`` the task has a run for already is left out. Answers
        the runs stored and the runs replaced; None, storing nothing, when the task is not a
        running recurring task.
        """
        ...

    async def start_queued(
        self, owner: str, lease: timedelta, *, limit: int = 100
    ) -> list[tuple[Task, Run]]:
        """Start waiting occurrences, in one transaction: for each armed task (running,
        recurring, not paused) with a queued run and no running run whose lease holds, its
        earliest queued run (by ``scheduled_for``) becomes running under ``owner``, started
        now with a ``lease`` (its length from the store's clock). At most ``limit``.

        Answers each started run with its task. Concurrent callers start disjoint runs, and
        never two of one task, so each waiting occurrence runs once.
        """
        ...

    async def claim_pending(self, idle_for: timedelta, *, limit: int = 100) -> list[Task]:
        """Claim up to ``limit`` pending once tasks unchanged for ``idle_for`` by the store's
        clock (orphans: their process died before running them), oldest first, by touching
        their ``updated_at`` in one write. Concurrent claimers get disjoint tasks."""
        ...

    async def count_by_status(self) -> dict[str, int]:
        """How many tasks are in each status (statuses without tasks left out), for
        metrics."""
        ...


class EventStore(Protocol):
    """The durable event log and the conversation history.

    Conversation ids are scoped per user: the same id chosen by two users names two
    conversations. Deleting a task (:meth:`TaskStore.delete`) removes its events and items.
    """

    async def append_events(
        self,
        events: Sequence[Event],
        items: Sequence[ConversationItem],
        *,
        notices: Sequence[str] = (),
    ) -> None:
        """Store a batch of events and upsert conversation items, in one transaction: after
        it returns all of it is durable, or none of it on an error.

        - Each event has its task's next ``seq``; an event whose (task_id, seq) is stored
          already raises :class:`EventConflict`. Items are upserted by ``item_id`` (an
          existing item keeps its ``created_at`` and takes the new payload).
        - Fencing: an event with a ``fence`` is stored only while the fence's run still has
          that owner and epoch (a run's closing events, written after it settled itself,
          pass; a run taken over does not); otherwise :class:`LeaseLost` names the refused
          runs. Events without a fence (a user's message, a control) are not checked.
        - A closed log: a ``done`` appended while its task's status is final closes the
          task's log (a once task's ``done``; a recurring task's after its cancel). Any event
          of a task whose log is closed, or after a closing ``done`` in the same batch,
          raises :class:`LogClosed` naming the tasks. :class:`LeaseLost` is checked first.
        - Text the store cannot encode (a lone surrogate) raises ``UnicodeEncodeError``.
        - Each of ``notices`` is sent to the other processes (as :meth:`Coordination.notify`
          would) when, and only if, the batch commits.

        Every error stores nothing of the batch.
        """
        ...

    async def read_events(self, task_id: str, *, after: int = 0, limit: int = 500) -> list[Event]:
        """A task's events with ``seq > after``, in order, at most ``limit``."""
        ...

    async def last_seq(self, task_id: str) -> int:
        """The highest ``seq`` stored for a task (0 for none), or removed by retention
        (:meth:`RetentionStore.log_start`) when that is higher: the next event follows it."""
        ...

    async def list_items(
        self,
        conversation_id: str,
        *,
        user_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[ConversationItem]:
        """One page of a conversation's items, oldest first (``created_at``, ``item_id``),
        keyset paged like tasks (:class:`InvalidCursor` for a cursor not made here).

        With ``user_id``, only the items of that user's tasks (one user's conversation);
        without, the items of every user's conversation with that id.
        """
        ...

    async def task_items(
        self, task_id: str, *, component_type: str | None = None
    ) -> list[ConversationItem]:
        """A task's items, oldest first, only those of ``component_type`` if given (found
        through an index on task id, never by scanning conversations)."""
        ...

    async def has_conversation(self, conversation_id: str, *, user_id: str | None = None) -> bool:
        """Whether ``user_id`` has a conversation with that id (any user's, with None)."""
        ...


@dataclass(frozen=True, slots=True)
class LogCut:
    """Where retention may cut one recurring task's log (:meth:`RetentionStore.recurring_log_cuts`).

    ``through``: the highest seq it may remove (the kept runs' earliest ``log_from``), or None.
    ``kept_from``: the ``created_at`` of the earliest kept run, or None when every run is kept
    (nothing of the log is removed). ``through`` is None while ``kept_from`` is not only for
    runs made before runs recorded their ``log_from``: the cut is then found by event times.
    """

    task_id: str
    log_start: int
    through: int | None
    kept_from: datetime | None
    #: The ``created_at`` of its oldest run (None: it has none): whether any run is old
    #: enough for :meth:`RetentionStore.prune_runs` to look at.
    oldest_run_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one pruning write did: ``tasks`` it is done with (from the front of those it was
    given), and the rows it removed (or, dry, would remove)."""

    tasks: int = 0
    events: int = 0
    items: int = 0
    conversations_kept: int = 0

    @property
    def rows(self) -> int:
        return self.events + self.items


class RetentionStore(Protocol):
    """What retention removes (:mod:`taskcell.engine.pruner` decides what; these methods do it).

    A task's log only ever loses its oldest events: what is stored is always the events after
    :meth:`log_start`, so a reader resuming before that is told that older events were removed.
    Tasks themselves are never removed here (only :meth:`TaskStore.delete` removes a task).
    Each removing method is one guarded write removing at most ``limit`` rows, so a caller
    bounds how long it holds a write lock; with ``dry_run`` it counts what it would remove
    (every such row, ignoring ``limit``) and changes nothing. Usable from a script::

        removed = await store.prune_events(task_id, through=None, limit=500,
                                           finished_before=cutoff)
    """

    async def log_start(self, task_id: str) -> int:
        """The highest seq retention removed from the task's log (0 when none was): its
        stored events are those after it. :meth:`EventStore.last_seq` is never below it."""
        ...

    async def once_tasks_to_prune(
        self,
        finished_before: datetime,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[tuple[datetime, str]]:
        """``(completed_at, task_id)`` of up to ``limit`` finished once tasks that finished
        before ``finished_before`` and still hold something retention may remove (not yet
        marked done by :meth:`prune_items`), by ``(completed_at, task_id)`` after ``after``."""
        ...

    async def recurring_log_cuts(
        self, keep: int, *, after: str | None = None, limit: int = 100
    ) -> list[LogCut]:
        """Where retention may cut the logs of up to ``limit`` recurring tasks (any status),
        in id order after ``after``: one read for the page (see :class:`LogCut`).

        The *kept* runs are a task's ``keep`` newest (by ``created_at``, ``run_id``) and every
        run not yet finished (``queued``, ``running``, ``waiting_input``); the cut is the
        earliest ``log_from`` of those runs (the task's last seq when the run was made). A task
        with at most ``keep`` runs has no cut. Reads index entries only: no event, and per task
        only the runs it names."""
        ...

    async def prune_events(
        self,
        task_id: str,
        *,
        through: int | None,
        limit: int,
        finished_before: datetime | None = None,
        dry_run: bool = False,
    ) -> int:
        """Remove the task's oldest stored events, at most ``limit``, none after seq
        ``through`` (None: up to its last), and raise its :meth:`log_start` to the last seq
        removed, in one write. Answers how many it removed.

        With ``finished_before`` it removes nothing unless the task is a once task that
        finished (a final status) before that moment: never an event of an unfinished task.
        """
        ...

    async def prune_items(
        self, task_id: str, *, finished_before: datetime, dry_run: bool = False
    ) -> int | None:
        """Remove a once task's conversation items, if it finished before
        ``finished_before`` and its conversation is not newer: none of that user's tasks in
        the conversation is unfinished, or was created or finished at or after that moment.
        In the same write, a task with no events left is marked done (no longer answered by
        :meth:`once_tasks_to_prune`). Answers how many items it removed, or None when the
        conversation is newer (nothing changed: the task is looked at again later)."""
        ...

    async def prune_logs(
        self, cuts: Sequence[tuple[str, int]], *, limit: int, dry_run: bool = False
    ) -> Pruned:
        """Remove, in one write, the oldest stored events of recurring tasks: for each
        ``(task_id, through)`` in the order given, its events up to seq ``through``, at most
        ``limit`` events in all, raising each one's :meth:`log_start` (a task that is not
        recurring is passed over). ``Pruned.tasks`` counts the leading cuts it is done with;
        the first one it is not done with (the limit reached) is resumed by the next call."""
        ...

    async def prune_once_tasks(
        self,
        task_ids: Sequence[str],
        *,
        finished_before: datetime,
        limit: int,
        dry_run: bool = False,
    ) -> Pruned:
        """In one write, for each task in the order given while fewer than ``limit`` rows are
        removed: if it is a once task that finished (a final status) before
        ``finished_before``, remove its events (oldest first) and then, once none is left,
        its conversation items unless its conversation is newer (as :meth:`prune_items`),
        marking it done. Any other task is passed over. ``Pruned.tasks`` counts the leading
        tasks it is done with this round (``conversations_kept`` of them kept their items);
        the first one it is not done with is resumed by the next call."""
        ...

    async def prune_runs(
        self,
        task_ids: Sequence[str],
        *,
        finished_before: datetime,
        limit: int,
        dry_run: bool = False,
    ) -> int:
        """Remove, in one write, up to ``limit`` closed runs of the given recurring tasks that
        finished before ``finished_before``, each task's oldest first, tasks in the order given
        (never an open run, never a once task's run); answers how many (fewer than ``limit``:
        none of those tasks has such a run left)."""
        ...

    async def prune_deliveries(
        self, *, created_before: datetime, limit: int, dry_run: bool = False
    ) -> int:
        """Remove up to ``limit`` webhook deliveries that ended (``delivered`` or ``failed``)
        and were made before ``created_before``, oldest first, in one write (never one still
        to be sent); answers how many."""
        ...

    async def reclaim_space(self, *, max_pages: int) -> int:
        """Give up to ``max_pages`` free pages back to the file system, in one write (SQLite
        with ``auto_vacuum=INCREMENTAL``); answers how many (0 where the database reclaims
        space itself, or cannot)."""
        ...

    async def database_size(self) -> int | None:
        """The database's size in bytes (None for a store in memory)."""
        ...

    def retention_lock(self) -> AbstractAsyncContextManager[bool]:
        """Held around a pruning round: answers True when this process may prune now, False
        when another one prunes (PostgreSQL: a session advisory lock, one process at a
        time). Released on exit."""
        ...


class Coordination(Protocol):
    """How the processes that share a store find each other.

    One clock. Every lease, heartbeat, dead-process and claim decision is made by the store's
    clock, never by the calling process's: on a shared database (PostgreSQL) that is the
    database server's clock, read inside the very statement that decides (``now()``), so a
    process whose clock is off by seconds or minutes can neither expire another's lease early
    nor bury a live process. Callers pass lengths of time (``timedelta``), not moments. A
    single-server store (SQLite, memory) uses the process's clock, which is then the only one.
    """

    #: True for a store only one server may use (SQLite, memory): at start-up every run left
    #: running is then an orphan. False for a shared database.
    single_server: bool

    async def clock(self) -> datetime:
        """A reading of the store's clock: for waits and displays, never to decide
        ownership (the statements that decide read the clock themselves)."""
        ...

    async def heartbeat(self, process_id: str) -> None:
        """Record that ``process_id`` is alive now (its first heartbeat is its
        ``started_at``)."""
        ...

    async def live_processes(self, within: timedelta) -> list[ProcessInfo]:
        """The processes whose last heartbeat is within ``within`` of now (at or after
        ``now - within``), oldest first."""
        ...

    async def claim_dead_processes(self, silent_for: timedelta, *, keep: str) -> list[ProcessInfo]:
        """Delete, in one write, the process records whose last heartbeat is more than
        ``silent_for`` ago (before ``now - silent_for``), except ``keep``'s, and answer them.

        Concurrent claimers get disjoint ones, so exactly one process tidies up after each
        dead one.
        """
        ...

    async def runs_finished_by(self, owner: str, since: datetime) -> list[Run]:
        """The runs ``owner`` closed with ``finished_at`` at or after ``since``: its own runs
        no other process closed (``closed_by`` unset), and the runs it closed as
        ``closed_by`` (taken over from a dead owner)."""
        ...

    async def renew_leases(self, owner: str, lease: timedelta) -> int:
        """Move ``lease_expires_at`` of every queued or running run of ``owner`` to now plus
        ``lease``, in one write; answers how many it renewed."""
        ...

    async def interrupt_expired(self, reason: str, *, by: str | None = None) -> list[Run]:
        """Close, in one guarded write, every queued or running run whose lease expired, and
        answer those runs: each is recovered by exactly one process, the one that closed it.

        Each closed run gets ``finished_at`` now, status interrupted, ``reason`` as error and
        its epoch one higher (its old owner's fence is void). With ``by``, the runs record
        ``by`` as their ``closed_by`` (``runs_finished_by`` then finds them under it, never
        under the dead owner), and, in the same write, each once task still running on such a
        run is requeued (pending) if its run's attempt is below its ``max_attempts``, else
        failed with ``reason`` (stamped at the run's ``finished_at``; its closing events are
        the caller's to write).
        """
        ...

    async def notify(self, message: str) -> None:
        """Tell every other process ``message`` (a no-op for a single server)."""
        ...

    async def listen(
        self, handler: Callable[[str], None], *, on_listening: Callable[[], None] | None = None
    ) -> None:
        """Call ``handler`` with each message another process sent, until cancelled, and
        ``on_listening`` (if given) each time it starts listening.

        When its connection drops it raises (an I/O error): the caller listens again, and on
        ``on_listening`` re-reads what it may have missed while deaf. A single server's
        store waits forever (nobody else speaks).
        """
        ...


class WebhookStore(Protocol):
    """Webhook subscriptions and their durable outbox of deliveries.

    Deliveries are written by :meth:`EventStore.append_events`, in the batch's own
    transaction: for each appended event that makes deliveries
    (:func:`taskcell.domain.webhooks.webhook_types`), one per enabled subscription of the
    task's user whose filters and event types take it
    (:func:`~taskcell.domain.webhooks.plan_deliveries`), pending and due at once, with its
    body made from the task as stored then. A batch with no such event looks nothing up.
    Due times are the store's clock (a shared database's own).
    """

    async def add_webhook(self, webhook: Webhook) -> None:
        """Store a new subscription (``created_at`` set by the caller)."""
        ...

    async def load_webhook(self, webhook_id: str) -> Webhook | None:
        """The subscription, or None."""
        ...

    async def list_webhooks(self, *, user_id: str | None = None) -> list[Webhook]:
        """The subscriptions of ``user_id`` (every user's with None), oldest first."""
        ...

    async def delete_webhook(self, webhook_id: str) -> bool:
        """Remove a subscription and its deliveries in one write; answers whether it
        existed."""
        ...

    async def rotate_webhook_secret(self, webhook_id: str, secret: str) -> bool:
        """Replace a subscription's secret; answers whether it exists."""
        ...

    async def claim_deliveries(
        self, claim_for: timedelta, *, limit: int = 100
    ) -> list[tuple[Delivery, Webhook]]:
        """Claim up to ``limit`` due deliveries of enabled subscriptions, oldest due first,
        in one write: each moves to sending, its ``attempts`` one higher, ``last_attempt_at``
        now and ``next_attempt_at`` now plus ``claim_for`` (when it is due again if its
        sender dies). Answers them with their subscriptions.

        Due: pending with ``next_attempt_at`` reached, or sending with its claim expired.
        In order per subscription and task: a delivery is not claimed while an earlier one
        (lower ``seq``) of the same task and subscription is being sent or was never tried.
        Concurrent claimers get disjoint deliveries (exactly one process sends each).
        """
        ...

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
        """Record how attempt ``attempt`` of a delivery went, in one write guarded by the
        delivery still being sending at that attempt (a claim that expired and was taken
        again records nothing: False).

        ``status`` delivered (``delivered_at`` now), failed (final), or pending again, due
        in ``retry_in``. Its subscription's ``failing_since`` is cleared by a delivered
        attempt and set (if unset) by any other; a subscription failing for
        ``disable_after`` is disabled, with the reason, and its pending deliveries failed.
        """
        ...

    async def list_deliveries(
        self, webhook_id: str, *, limit: int = 50, status: DeliveryStatus | None = None
    ) -> list[Delivery]:
        """A subscription's deliveries, newest first, at most ``limit`` (only ``status``'s
        if given)."""
        ...

    async def redeliver(self, webhook_id: str, delivery_id: str) -> Delivery | None:
        """Send a delivery of ``webhook_id`` again: pending, due now, its attempts back to 0
        (a new round of retries). None, changing nothing, when there is no such delivery or
        it is being sent now."""
        ...

    async def delivery_counts(self) -> dict[str, int]:
        """How many deliveries are pending and how many sending (statuses without any left
        out), for metrics; delivered and failed ones are not counted (a partial index
        answers it however many there are)."""
        ...


class Store(TaskStore, EventStore, Coordination, RetentionStore, WebhookStore, Protocol):
    """A complete store: tasks, runs, events, conversations and webhooks in one database.

    The same contract suite (``tests/stores``) runs against every implementation.
    """
