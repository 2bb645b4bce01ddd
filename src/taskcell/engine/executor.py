"""TaskExecutor: one execution of a task against its agent, as events.

The origin's sequence, for every attempt: a ``connect_agent`` tool call (started, then completed
with "connected" or the error), the query sent with execution metadata (user profile, language,
time zone, current context), ``task_started`` once the agent accepted the task, then the agent's
updates through the :class:`~taskcell.engine.router.EventRouter`. What the agent's last update
means for the task (completed, failed, cancelled, waiting for input) is answered as an
:class:`Outcome`; the caller owns the task's state and the closing events. Transient failures
(:class:`~taskcell.agents.base.TransientAgentError`) propagate, for the caller to retry.

Nothing an agent sends can leave a run hanging: any other exception while the agent's stream is
read or routed (an update the SDK cannot parse, text that is not a string, an agent that is no
longer registered) is raised as :class:`~taskcell.agents.base.AgentError` naming the agent and
the reason (transient, and so retried, only for connection errors), and the caller fails the
run with it.

The remote task is recorded on the task (``remote_task_ids``, its A2A context id, and
:data:`RESUMABLE_KEY` in metadata) as soon as a resumable agent accepts it, in one write (an
in-process agent's, with the write that settles the run, as its work ends with this
process). An attempt given ``resume`` takes that remote task up again instead of sending the
query anew: an agent that can (:class:`~taskcell.agents.base.ResumableAgentClient`, i.e.
A2A) answers it from its first update, and only what the task's log does not hold yet is
emitted (see :mod:`taskcell.engine.resumption`); an agent that cannot gets a cancel for it
first, then the query as a new remote task, so the agent never works on both. A once task's
new remote tasks are started in an A2A context id of taskcell's choosing
(:func:`task_context_id`), so that a remote task an attempt did not live to record can still
be found.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from taskcell.abc import LeaseLost, Store
from taskcell.agents.a2a_events import UpdateIds
from taskcell.agents.base import (
    TERMINAL_KINDS,
    AgentClient,
    AgentError,
    AgentUpdate,
    NotResumable,
    TransientAgentError,
    UpdateKind,
    can_resume,
)
from taskcell.agents.demo.door import acting_for
from taskcell.agents.registry import AgentRegistry, UnknownAgent
from taskcell.domain.events import Event, EventType
from taskcell.domain.models import Run, Task, TaskPattern
from taskcell.domain.schedule import resolve_zone_name
from taskcell.domain.state_machine import TaskStatus
from taskcell.engine.eventlog import EventLog
from taskcell.engine.responses import ResponseFactory
from taskcell.engine.resumption import UPDATE_ID_KEY, LoggedUpdate, logged_updates
from taskcell.engine.router import EventRouter, clean_text
from taskcell.metrics import AGENT_CALL_SECONDS

logger = logging.getLogger(__name__)

CONNECT_TOOL = "connect_agent"
CONTEXT_KEY = "remote_context_id"
#: The remote task a later attempt should take up again (None once it was cancelled).
RESUMABLE_KEY = "resumable_remote_task_id"
MAX_REMOTE_IDS = 20
REMOTE_CANCEL_TIMEOUT = 2.0
_MAX_REASON = 500


class OutcomeKind(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"  # the agent's own failure: its answer, never retried
    CANCELLED = "cancelled"  # the agent cancelled its task itself
    WAITING_INPUT = "waiting_input"


@dataclass(slots=True)
class Outcome:
    kind: OutcomeKind
    text: str = ""  # the result (completed), the reason (failed), the question (input)


@dataclass(slots=True)
class RunContext:
    """What a run learns while it runs (the remote task, to cancel or continue it)."""

    task: Task
    run: Run
    remote_task_id: str | None = None
    context_id: str | None = None
    router: EventRouter | None = None
    extra_metadata: dict[str, Any] = field(default_factory=dict)
    remote_changed: bool = False
    #: Record the remote task as soon as the agent accepts it (an agent that can resume it:
    #: an in-process agent's work ends with its process, and waits for the settling write).
    record_at_once: bool = False

    def remote_changes(self) -> dict[str, Any]:
        """The task fields that record the remote task, if this run learned of a new one."""
        if not self.remote_changed:
            return {}
        # Only its own keys of the metadata: an edit of the rest made meanwhile stays.
        meta = self.task.metadata
        keys = {CONTEXT_KEY: meta.get(CONTEXT_KEY), RESUMABLE_KEY: meta.get(RESUMABLE_KEY)}
        return {"remote_task_ids": self.task.remote_task_ids, "metadata_keys": keys}


def execution_metadata(task: Task, default_zone: str) -> dict[str, Any]:
    """What an agent is told besides the query (the origin's execution metadata)."""
    meta = task.metadata
    zone = (task.schedule_config.timezone if task.schedule_config else None) or meta.get("timezone")
    return {
        "task_id": task.task_id,
        "conversation_id": task.conversation_id,
        "thread_id": task.thread_id,
        "user_id": task.user_id,
        "user_profile": meta.get("user_profile", {"user_id": task.user_id}),
        "language": meta.get("language", "en"),
        "timezone": zone or default_zone,
        "current_context": meta.get("current_context", {}),
    }


class TaskExecutor:
    """Runs one attempt of a task (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        registry: AgentRegistry,
        log: EventLog,
        *,
        default_zone: str | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.log = log
        self.default_zone = default_zone or resolve_zone_name(None)

    async def execute(
        self,
        ctx: RunContext,
        *,
        reply: str | None = None,
        emit_routed: bool = True,
        resume: str | None = None,
        after_attempt: bool = False,
    ) -> Outcome:
        """One attempt: send the query (or ``reply`` to a task waiting for input), or take up
        the remote task ``resume`` an earlier attempt left (see the module docstring). With
        ``after_attempt`` and no ``resume``, an earlier attempt may have started a remote task
        it did not live to record: the agent is asked for it by the task's context id.

        With ``emit_routed`` False the agent's messages are collected, not emitted (a
        recurring run turns them into one result component instead).
        """
        task = ctx.task
        factory = ResponseFactory(task, ctx.run.run_id)
        router = ctx.router = EventRouter(factory)
        emit = self.log.emit
        await emit(factory.tool_call_started(CONNECT_TOOL + ":" + ctx.run.run_id, CONNECT_TOOL))
        try:
            client = self.registry.get(task.agent_name)
        except UnknownAgent as exc:
            raise AgentError(str(exc)) from exc
        metadata = execution_metadata(task, self.default_zone) | ctx.extra_metadata
        continuing = reply is not None
        started = time.perf_counter()
        try:
            with acting_for(task.user_id):
                stream, logged = None, None
                if not continuing and (resume is not None or after_attempt):
                    stream, logged = await self._opened(
                        ctx, factory, client, resume, read_log=emit_routed
                    )
                if stream is None:
                    stream = client.send(
                        reply if continuing else task.query,  # type: ignore[arg-type]
                        metadata=metadata,
                        remote_task_id=ctx.remote_task_id if continuing else None,
                        context_id=ctx.context_id if continuing else task_context_id(task),
                    )
                ctx.record_at_once = can_resume(client)
                return await self._read(
                    ctx, factory, stream, router, continuing, emit_routed, logged
                )
        finally:
            AGENT_CALL_SECONDS.labels(agent=task.agent_name).observe(time.perf_counter() - started)

    async def _opened(
        self,
        ctx: RunContext,
        factory: ResponseFactory,
        client: AgentClient,
        remote_task_id: str | None,
        *,
        read_log: bool,
    ) -> tuple[AsyncIterator[AgentUpdate] | None, dict[str, LoggedUpdate] | None]:
        """:meth:`_resumed`, its errors reported like those of a stream's first update."""
        try:
            return await self._resumed(ctx, client, remote_task_id, read_log=read_log)
        except LeaseLost:
            raise  # the run stops: another process owns it now
        except AgentError as exc:
            error = _readable(exc)
        except Exception as exc:
            error = self._unusable(ctx, exc)
        if isinstance(error, TransientAgentError):
            await self.log.emit(
                factory.tool_call_completed(
                    CONNECT_TOOL + ":" + ctx.run.run_id, CONNECT_TOOL, f"error: {error}"
                )
            )
        raise error

    async def _read(
        self,
        ctx: RunContext,
        factory: ResponseFactory,
        stream: AsyncIterator[AgentUpdate],
        router: EventRouter,
        continuing: bool,
        emit_routed: bool,
        logged: dict[str, LoggedUpdate] | None = None,
    ) -> Outcome:
        """Read and route the agent's stream; see the module docstring for its errors. With
        ``logged`` (a resumed remote task), updates the log holds already are not emitted."""
        emit = self.log.emit
        connected = False
        last: AgentUpdate | None = None
        have = UpdateIds(logged or ())
        try:
            async for update in stream:
                if not connected:
                    connected = True
                    await self._connected(ctx, factory, update, continuing, logged is not None)
                    if update.kind is UpdateKind.ACCEPTED:
                        continue
                last = update
                if logged is not None and have.covers(update.update_id):
                    self._replay(router, update, logged)
                elif emit_routed or update.kind is UpdateKind.INPUT_REQUIRED:
                    for event in router.route(update):
                        await emit(_tagged(event, update))
                else:
                    router.route(update)
                if update.kind in TERMINAL_KINDS or update.kind is UpdateKind.INPUT_REQUIRED:
                    break
            return self._outcome(last, router)
        except LeaseLost:
            raise  # the run stops: another process owns it now
        except AgentError as exc:
            error = _readable(exc)
        except Exception as exc:
            error = self._unusable(ctx, exc)
        finally:
            await _close(stream)
        if isinstance(error, TransientAgentError) and not connected:
            await emit(
                factory.tool_call_completed(
                    CONNECT_TOOL + ":" + ctx.run.run_id, CONNECT_TOOL, f"error: {error}"
                )
            )
        raise error

    @staticmethod
    def _unusable(ctx: RunContext, exc: Exception) -> AgentError:
        """The error that fails (or, for a connection error, retries) a run whose agent sent
        something that could not be read or routed."""
        name = ctx.task.agent_name
        detail = clean_text(str(exc) or "no detail")[:_MAX_REASON]
        logger.warning(
            "agent update unusable",
            extra={"task_id": ctx.task.task_id, "agent": name, "error": repr(exc)},
            exc_info=exc,
        )
        if isinstance(exc, OSError | TimeoutError):
            return TransientAgentError(f"connection to agent {name!r} failed: {detail}")
        return AgentError(
            f"agent {name!r} sent an update taskcell cannot use ({type(exc).__name__}: {detail})"
        )

    async def _resumed(
        self,
        ctx: RunContext,
        client: AgentClient,
        remote_task_id: str | None,
        *,
        read_log: bool = True,
    ) -> tuple[AsyncIterator[AgentUpdate] | None, dict[str, LoggedUpdate] | None]:
        """The stream that takes ``remote_task_id`` (or, without one, a remote task an earlier
        attempt started but did not record) up again and what the log has of it; or (None,
        None) when there is none, or the agent cannot resume it (then it was asked to cancel
        it). Without ``read_log`` (a run that emits none of the agent's updates) nothing is
        looked up in the log."""
        task = ctx.task
        context_id = task_context_id(task)
        if remote_task_id is None:
            if not can_resume(client) or context_id is None:
                return None, None
            remote_task_id = await client.orphan(context_id, known=task.remote_task_ids)
            if remote_task_id is None:
                return None, None
            logger.info(
                "unrecorded remote task found",
                extra={"task_id": task.task_id, "remote_task_id": remote_task_id},
            )
        if can_resume(client):
            logged: dict[str, LoggedUpdate] = {}
            if read_log:
                await self.log.flush()  # what an earlier attempt here emitted is in the log
                logged = await logged_updates(self.store, task.task_id)
            stream = client.resume(remote_task_id)
            try:
                first = await anext(stream)
            except NotResumable as exc:
                reason = str(exc)
            except StopAsyncIteration:
                raise TransientAgentError(
                    f"agent {task.agent_name!r} said nothing about task {remote_task_id}"
                ) from None
            else:
                logger.info(
                    "remote task resumed",
                    extra={"task_id": task.task_id, "remote_task_id": remote_task_id},
                )
                return _prepend(first, stream), logged
        else:
            reason = "the agent cannot resume a task"
        logger.info(
            "remote task not resumable: cancelled before the retry",
            extra={"task_id": task.task_id, "remote_task_id": remote_task_id, "reason": reason},
        )
        await self.cancel_remote(task, remote_task_id)
        task.metadata = {**task.metadata, RESUMABLE_KEY: None}
        await self.store.update(
            task.task_id,
            {"metadata_keys": {RESUMABLE_KEY: None}},
            expected=[TaskStatus.RUNNING],
            fence=ctx.run.fence,
        )
        return None, None

    @staticmethod
    def _replay(router: EventRouter, update: AgentUpdate, logged: dict[str, LoggedUpdate]) -> None:
        """An update the log holds already: routed without emitting, so the run's answer and
        its open message are what they were."""
        before = logged.get(update.update_id or "")
        if before is not None and before.event is EventType.PLAN_REQUIRE_USER_INPUT:
            if update.kind is UpdateKind.WORKING:
                return  # an earlier question, replayed from the agent's history
        router.route(update)
        if before is not None and before.event is EventType.MESSAGE_CHUNK:
            router.message_item = before.item_id  # the answer goes on in the same item

    async def cancel_remote(self, task: Task, remote_task_id: str | None) -> None:
        """Ask the agent to cancel ``remote_task_id``; a failure is logged, not raised."""
        if not remote_task_id:
            return
        try:
            client = self.registry.get(task.agent_name)
            with acting_for(task.user_id):
                await asyncio.wait_for(client.cancel(remote_task_id), REMOTE_CANCEL_TIMEOUT)
        except (AgentError, LookupError, TimeoutError) as exc:
            logger.warning(
                "remote cancel failed",
                extra={
                    "task_id": task.task_id,
                    "remote_task_id": remote_task_id,
                    "error": str(exc),
                },
            )

    async def _connected(
        self,
        ctx: RunContext,
        factory: ResponseFactory,
        update: AgentUpdate,
        continuing: bool,
        resumed: bool,
    ) -> None:
        await self.log.emit(
            factory.tool_call_completed(
                CONNECT_TOOL + ":" + ctx.run.run_id, CONNECT_TOOL, "connected"
            )
        )
        if update.remote_task_id and update.remote_task_id != ctx.remote_task_id:
            ctx.remote_task_id = update.remote_task_id
            ctx.context_id = update.context_id
            task = ctx.task
            if not task.remote_task_ids or task.remote_task_ids[-1] != update.remote_task_id:
                # A recurring task keeps the remote ids of its latest runs only.
                remote_ids = [*task.remote_task_ids, update.remote_task_id][-MAX_REMOTE_IDS:]
                task.remote_task_ids = remote_ids
            task.metadata = {
                **task.metadata,
                CONTEXT_KEY: update.context_id,
                RESUMABLE_KEY: update.remote_task_id,
            }
            ctx.remote_changed = True  # stored (again) with the write that settles the run
            if ctx.record_at_once:
                # Stored now, so that a run interrupted by a stop or a crash can be resumed.
                await self.store.update(
                    task.task_id,
                    ctx.remote_changes(),
                    expected=[TaskStatus.RUNNING],
                    fence=ctx.run.fence,
                )
        if resumed:
            await self.log.emit(
                factory.system_message(
                    "Resuming the agent's task where it was left; what it said meanwhile follows."
                )
            )
        if not continuing:
            await self.log.emit(factory.task_started())

    @staticmethod
    def _outcome(last: AgentUpdate | None, router: EventRouter) -> Outcome:
        if last is None:
            raise TransientAgentError("the agent accepted the task but said nothing more")
        if last.kind is UpdateKind.COMPLETED:
            return Outcome(OutcomeKind.COMPLETED, router.result_text)
        if last.kind is UpdateKind.FAILED:
            reason = clean_text(last.text) or "the agent reported a failure without a reason"
            return Outcome(OutcomeKind.FAILED, reason)
        if last.kind is UpdateKind.CANCELED:
            return Outcome(OutcomeKind.CANCELLED, clean_text(last.text) or "cancelled by the agent")
        if last.kind is UpdateKind.INPUT_REQUIRED:
            return Outcome(OutcomeKind.WAITING_INPUT, router.question or "")
        raise TransientAgentError("the agent's stream ended before the task finished")


def task_context_id(task: Task) -> str | None:
    """The A2A context id a once task's new remote tasks are started in: the task's own, so
    that a remote task an attempt did not live to record can be found again (``orphan``)."""
    return f"taskcell-{task.task_id}" if task.pattern is TaskPattern.ONCE else None


def _tagged(event: Event, update: AgentUpdate) -> Event:
    """``event`` naming the agent update it came from (what a resumed run looks for)."""
    if update.update_id is not None:
        event.metadata = {**event.metadata, UPDATE_ID_KEY: update.update_id}
    return event


async def _prepend(
    first: AgentUpdate, rest: AsyncIterator[AgentUpdate]
) -> AsyncIterator[AgentUpdate]:
    try:
        yield first
        async for update in rest:
            yield update
    finally:
        await _close(rest)


async def _close(stream: AsyncIterator[AgentUpdate]) -> None:
    """Close an agent's stream however reading it stopped (a local agent's callable stops with
    it; a remote agent's task goes on: only the connection closes)."""
    aclose = getattr(stream, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception as exc:
        logger.info("closing an agent stream failed", extra={"error": repr(exc)})


def _readable(exc: AgentError) -> AgentError:
    """``exc``, or one of its kind whose message has its invalid characters replaced."""
    message = str(exc)
    cleaned = clean_text(message)
    if cleaned == message:
        return exc
    error = type(exc)(cleaned)
    error.__cause__ = exc
    return error
