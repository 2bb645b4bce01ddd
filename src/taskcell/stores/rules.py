"""The rules every store applies the same way, stated once: which fields a write may change,
how a refused fenced write is reported, and what a skipped occurrence's run looks like."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskcell.abc import UPDATABLE_FIELDS, LeaseLost, LogCut
from taskcell.domain.models import Fence, Run, RunStatus, Task
from taskcell.domain.policies import (
    CANCELLED_BY_NEWER,
    Admission,
    OverlapPolicy,
    admit,
    skip_reason,
)

#: Write-only changes beyond the task's fields: ``metadata_keys`` sets those keys of the stored
#: metadata (a None value removes its key) and keeps every other, in the same write, so what a
#: run records there (its remote task and context) never undoes an edit made while it ran.
MERGED_FIELDS = frozenset({"metadata_keys"})

#: The run fields no write may change (a run's identity).
_RUN_IDENTITY = frozenset({"run_id", "task_id"})


def check_changes(changes: Mapping[str, Any]) -> None:
    """``ValueError`` naming the task fields ``changes`` may not write (status moves only by
    transition; see :data:`~taskcell.abc.UPDATABLE_FIELDS`)."""
    unknown = set(changes) - UPDATABLE_FIELDS - MERGED_FIELDS
    if unknown:
        raise ValueError(f"fields that cannot be updated: {sorted(unknown)}")


def apply_changes(task: Any, changes: Mapping[str, Any]) -> None:
    """Set ``changes`` on an in-memory task (``metadata_keys`` merged into its metadata)."""
    for name, value in changes.items():
        if name == "metadata_keys":
            merged = {**task.metadata, **value}
            task.metadata = {k: v for k, v in merged.items() if k not in value or v is not None}
        else:
            setattr(task, name, value)


def check_run_changes(changes: Mapping[str, Any]) -> None:
    """``ValueError`` naming the fields of ``changes`` that are not run fields, or are its
    identity (``run_id``, ``task_id``)."""
    bad = sorted(name for name in changes if name not in Run.model_fields or name in _RUN_IDENTITY)
    if bad:
        raise ValueError(f"run fields cannot be updated: {bad}")


def lease_lost(fence: Fence) -> LeaseLost:
    """The error a refused fenced write raises (every store words it the same)."""
    return LeaseLost(
        f"run {fence.run_id} is no longer open under {fence.owner} at epoch {fence.epoch}",
        run_ids=[fence.run_id],
    )


def skipped_run(run: Run, due: datetime, now: datetime, reason: str) -> Run:
    """The record of an occurrence skipped because the previous run still ran."""
    return run.model_copy(
        update={
            "scheduled_for": due,
            "status": RunStatus.SKIPPED,
            "started_at": None,
            "finished_at": now,
            "error": reason,
            "lease_expires_at": None,
            "deadline_at": None,  # it never runs
        }
    )


def queued_run(run: Run) -> Run:
    """The record of an occurrence that waits for the run in progress (overlap buffer_one,
    buffer_all): queued, with no owner and no lease until a scheduler starts it."""
    return run.model_copy(
        update={
            "status": RunStatus.QUEUED,
            "started_at": None,
            "owner": None,
            "lease_expires_at": None,
        }
    )


def cancelled_run(run: Run, now: datetime) -> Run:
    """The record of an occurrence that a newer one of the same write replaced before it
    started (overlap cancel_other)."""
    return run.model_copy(
        update={
            "status": RunStatus.CANCELLED,
            "started_at": None,
            "finished_at": now,
            "error": CANCELLED_BY_NEWER,
            "lease_expires_at": None,
        }
    )


@dataclass(frozen=True, slots=True)
class Admitted:
    """Runs as a store writes them under their task's overlap policy (:func:`admit_runs`)."""

    runs: list[Run]
    #: Whether the task's runs in progress and waiting ones are to be closed as cancelled
    #: (:data:`~taskcell.domain.policies.CANCELLED_BY_NEWER`), in the same write.
    replace: bool


def admit_runs(
    task: Task,
    runs: Sequence[Run],
    *,
    running: int,
    queued: int,
    now: datetime,
    skipped_reason: str | None = None,
) -> Admitted:
    """Each of ``runs`` (occurrences of ``task``, in order) as it is stored, given ``running``
    runs of the task in progress (leases held) and ``queued`` waiting before them.

    A run that is not ``running`` (a skipped occurrence's record) is stored as it is. Every
    other is decided by :func:`~taskcell.domain.policies.admit`: started (as it is), queued,
    skipped with the policy's reason (``skipped_reason``, when given, for ``skip``), or
    started replacing the runs before it; runs of this same write that it replaces are
    recorded cancelled, never started.
    """
    why = skip_reason(task.overlap)
    if skipped_reason and task.overlap is OverlapPolicy.SKIP:
        why = skipped_reason
    out = list(runs)
    live: list[int] = []  # this write's runs that start, and those that wait
    waiting: list[int] = []
    replace = False
    for index, run in enumerate(out):
        if run.status is not RunStatus.RUNNING:
            continue
        due = run.scheduled_for or now
        decision = admit(task.overlap, running=running + len(live), queued=queued + len(waiting))
        if decision is Admission.SKIP:
            out[index] = skipped_run(run, due, now, why)
        elif decision is Admission.QUEUE:
            out[index] = queued_run(run)
            waiting.append(index)
        else:
            if decision is Admission.REPLACE:
                replace = replace or running > 0 or queued > 0
                running = queued = 0
                for earlier in live + waiting:
                    out[earlier] = cancelled_run(out[earlier], now)
                live, waiting = [], []
            live.append(index)
    return Admitted(out, replace)


#: A kept run as the cut reads it: its ``created_at`` and ``log_from`` (None: made before runs
#: recorded it).
KeptRun = tuple[datetime, int | None]


def log_cut(
    task_id: str,
    log_start: int,
    kept: KeptRun | None,
    unfinished: KeptRun | None,
    oldest_run_at: datetime | None,
) -> LogCut:
    """The :class:`~taskcell.abc.LogCut` of a recurring task from its ``keep``-th newest run
    (None when it has no older run: every run is kept), its oldest unfinished run, and when
    its oldest run was made."""
    if kept is None:
        return LogCut(task_id, log_start, None, None, oldest_run_at)
    runs = [kept] if unfinished is None else [kept, unfinished]
    positions = [log_from for _, log_from in runs]
    through = None if None in positions else min(p for p in positions if p is not None)
    return LogCut(task_id, log_start, through, min(c for c, _ in runs), oldest_run_at)
