"""The rules every store applies the same way, stated once: which fields a write may change,
how a refused fenced write is reported, and what a skipped occurrence's run looks like."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from taskcell.abc import UPDATABLE_FIELDS, LeaseLost
from taskcell.domain.models import Fence, Run, RunStatus

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
        }
    )
