"""Recurring tasks: creation, one run per occurrence, the controller component, and controls.

A recurring task is ``running`` from creation until it is cancelled; ``paused`` is a flag beside
that. Each occurrence is a run with its own outcome: its messages are collected (reasoning and
tool calls left out) into one ``scheduled_task_result`` component, and a failed run fails only
itself. After :data:`FAILURES_BEFORE_PAUSE` failed runs in a row the schedule pauses itself and
says why. The ``scheduled_task_controller`` component is emitted at creation and updated in
place (same item id) on every run, pause, resume, cancel and failure.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from taskcell.abc import LeaseLost
from taskcell.domain.models import Fence, Run, RunStatus, ScheduleConfig, Task, TaskPattern, utcnow
from taskcell.domain.schedule import describe, next_fire_time
from taskcell.domain.state_machine import InvalidTransition, TaskConflict, TaskStatus
from taskcell.engine.executor import Outcome, OutcomeKind, RunContext
from taskcell.engine.responses import CONTROLLER, RESULT, ResponseFactory
from taskcell.metrics import SCHEDULER_LAG
from taskcell.outages import is_outage

if TYPE_CHECKING:
    from taskcell.engine.engine import Engine

FAILURES_BEFORE_PAUSE = 3
NO_OUTPUT = "Task completed without output."


class NotRecurring(TaskConflict):
    """A schedule control on a once task (the API answers 409)."""

    def __init__(self, task: Task, action: str) -> None:
        message = f"task {task.task_id} is a once task; only a recurring task can {action}"
        super().__init__(task.task_id, message)


class RunInProgress(TaskConflict):
    """``run_now`` while a run of the task is still going (the API answers 409)."""

    def __init__(self, task: Task) -> None:
        message = f"task {task.task_id} has a run in progress; wait for it to end"
        super().__init__(task.task_id, message)


def controller_item_id(task: Task) -> str:
    return f"{task.task_id}:controller"


def controller_content(task: Task, default_zone: str, **extra: Any) -> dict[str, Any]:
    schedule = task.schedule_config
    content: dict[str, Any] = {
        "task_id": task.task_id,
        "task_title": task.title or task.query[:80],
        "task_status": task.status.value,
        "paused": task.paused,
        "schedule": _described(schedule, default_zone),
        "next_run_at": task.next_run_at.isoformat() if task.next_run_at else None,
        "last_error": None,
    }
    content.update(extra)
    return content


def _described(schedule: ScheduleConfig | None, default_zone: str) -> str:
    """The schedule in words; a stored one that cannot be used says so instead of raising."""
    if schedule is None:
        return ""
    try:
        return describe(schedule, default_zone)
    except (ValueError, LookupError, TypeError):
        return "unusable schedule"


class UnusableSchedule(TaskConflict):
    """Resuming a task whose stored schedule cannot be used (the API answers 409)."""

    def __init__(self, task: Task, error: Exception) -> None:
        message = (
            f"task {task.task_id} cannot be resumed: its stored schedule cannot be used ({error})"
        )
        super().__init__(task.task_id, message)


async def submit(engine: Engine, task: Task, *, run_immediately: bool) -> Task:
    """Store a recurring task, emit its controller and ``done``, and arm its schedule."""
    schedule = task.schedule_config
    assert schedule is not None  # the model guarantees it for recurring tasks
    if schedule.daily_time is not None and schedule.timezone is None:
        task.schedule_config = ScheduleConfig(
            daily_time=schedule.daily_time, timezone=engine.default_zone
        )
    now = utcnow()
    task.status, task.started_at = TaskStatus.RUNNING, now
    task.next_run_at = (
        now
        if run_immediately
        else next_fire_time(task.schedule_config, now=now, default_zone=engine.default_zone)  # type: ignore[arg-type]
    )
    await engine.open_task(task)
    factory = ResponseFactory(task)
    content = controller_content(task, engine.default_zone)
    await engine.log.emit(factory.component(CONTROLLER, content, item_id=controller_item_id(task)))
    await engine.log.emit(factory.done())
    await engine.log.flush()  # the controller is in the history before the caller hears of it
    await engine.schedule_changed()
    return task


async def run_occurrence(engine: Engine, task: Task, run: Run) -> None:
    """Run one occurrence (its run is already stored) and record its result."""
    ctx = RunContext(task, run)
    async with engine.run_slot(task, ctx):
        if run.scheduled_for is not None and run.started_at is not None:
            SCHEDULER_LAG.observe((run.started_at - run.scheduled_for).total_seconds())
        with engine.fenced(ctx):
            try:
                try:
                    outcome = await engine.execute_with_retries(
                        ctx, emit_routed=False, count_attempts=True
                    )
                except asyncio.CancelledError:
                    await asyncio.shield(engine.stopped(ctx))
                    raise
                await _finish(engine, ctx, outcome)
            except LeaseLost:
                await engine.lease_lost(ctx)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                engine.run_hit_outage(ctx, exc)
            finally:
                engine.log.run_ended(run.run_id)  # its result is emitted: nothing of it is cached


async def _finish(engine: Engine, ctx: RunContext, outcome: Outcome) -> None:
    """Settle an occurrence: every write guarded by its run's fence (a run taken over
    publishes no result, updates no controller: :class:`LeaseLost`)."""
    task, run, fence = ctx.task, ctx.run, ctx.run.fence
    if ctx.remote_changed:
        await engine.store.update(task.task_id, ctx.remote_changes(), fence=fence)
    if outcome.kind is OutcomeKind.COMPLETED:
        await engine.close_run(run, RunStatus.COMPLETED, result=outcome.text, fence=fence)
        text, error = outcome.text or NO_OUTPUT, None
    else:
        error = outcome.text
        if outcome.kind is OutcomeKind.WAITING_INPUT:
            await engine.cancel_remote(task, ctx.remote_task_id)
            error = f"the agent asked for input, which a scheduled run cannot give: {error}"
        status = RunStatus.CANCELLED if outcome.kind is OutcomeKind.CANCELLED else RunStatus.FAILED
        await engine.close_run(run, status, error, fence=fence)
        text = f"Run failed: {error}"
    factory = ResponseFactory(task, run.run_id)
    result = {"result": text, "create_time": utcnow().isoformat(), "run_id": run.run_id}
    await engine.log.emit(factory.component(RESULT, result, item_id=f"{run.run_id}:result"))
    extra: dict[str, Any] = {"last_error": error, "last_run_at": run.started_at}
    if error is not None and await _failing_streak(engine, task):
        reason = f"paused after {FAILURES_BEFORE_PAUSE} failed runs in a row; last error: {error}"
        await engine.store.update(
            task.task_id,
            {"paused": True, "error_message": reason},
            expected=[TaskStatus.RUNNING],
            fence=fence,
        )
        extra["last_error"] = reason
        await engine.schedule_changed()
    await update_controllers(engine, task, fence=fence, **extra)


async def _failing_streak(engine: Engine, task: Task) -> bool:
    runs = (await engine.store.list_runs(task.task_id, limit=FAILURES_BEFORE_PAUSE)).items
    return len(runs) == FAILURES_BEFORE_PAUSE and all(r.status is RunStatus.FAILED for r in runs)


async def update_controllers(
    engine: Engine, task: Task, *, durable: bool = True, fence: Fence | None = None, **changes: Any
) -> list[str]:
    """Re-emit every controller component of ``task`` from its stored state plus ``changes``.

    With ``durable`` (the default) it answers once the updates are in the log and history;
    with ``fence``, they are a write of that run (dropped once its lease is lost).
    """
    items = await engine.store.task_items(task.task_id, component_type=CONTROLLER)
    if not items:
        return []
    current = await engine.store.load(task.task_id) or task
    ids = []
    for item in items:
        previous = _content_of(item.payload)
        content = controller_content(current, engine.default_zone)
        content["last_error"] = previous.get("last_error")
        content["last_run_at"] = previous.get("last_run_at")
        content.update({k: _jsonable(v) for k, v in changes.items()})
        event = ResponseFactory(current).component(
            CONTROLLER, content, item_id=item.item_id, conversation_id=item.conversation_id
        )
        await engine.log.emit(event, fence=fence)
        ids.append(item.item_id)
    if durable:
        await engine.log.flush()
    return ids


def _content_of(payload: dict[str, Any] | None) -> dict[str, Any]:
    raw = (payload or {}).get("content")
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def _recurring(engine: Engine, task_id: str, action: str) -> Task:
    task = await engine.service.require_task(task_id)
    if task.pattern is not TaskPattern.RECURRING:
        raise NotRecurring(task, action)
    if task.status is not TaskStatus.RUNNING:
        raise InvalidTransition(task_id, task.status, TaskStatus.RUNNING)
    return task


async def pause(engine: Engine, task_id: str) -> Task:
    task = await _recurring(engine, task_id, "be paused")
    if not await engine.store.update(task_id, {"paused": True}, expected=[TaskStatus.RUNNING]):
        raise InvalidTransition(task_id, None, TaskStatus.RUNNING)
    await update_controllers(engine, task)
    await engine.schedule_changed()
    return await engine.service.require_task(task_id)


async def resume(engine: Engine, task_id: str) -> Task:
    """Resume a paused schedule; its next time is computed from now (nothing missed runs)."""
    task = await _recurring(engine, task_id, "be resumed")
    now = utcnow()
    if task.schedule_config is None:  # a stored schedule that could not be read
        raise UnusableSchedule(task, ValueError("the task has no readable schedule"))
    upcoming = task.next_run_at
    if upcoming is None or upcoming <= now:  # occurrences missed while paused are dropped
        try:
            upcoming = next_fire_time(
                task.schedule_config, now=now, previous=upcoming, default_zone=engine.default_zone
            )
        except (ValueError, LookupError, TypeError) as exc:
            raise UnusableSchedule(task, exc) from exc
    changes = {"paused": False, "next_run_at": upcoming, "error_message": None}
    if not await engine.store.update(task_id, changes, expected=[TaskStatus.RUNNING]):
        raise InvalidTransition(task_id, None, TaskStatus.RUNNING)
    await update_controllers(engine, task, last_error=None)
    await engine.schedule_changed()
    return await engine.service.require_task(task_id)


async def run_now(engine: Engine, task_id: str) -> Run:
    """One extra run outside the schedule (allowed while paused)."""
    from taskcell.engine.engine import occurrence_run

    task = await _recurring(engine, task_id, "be run now")
    if await engine.has_live_run(task_id):
        raise RunInProgress(task)
    run = occurrence_run(task, utcnow(), engine.owner, engine.lease)
    if not await engine.store.add_run(run):
        raise RunInProgress(task)
    engine.spawn_occurrence(task, run)
    return run
