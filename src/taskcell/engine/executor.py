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
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from taskcell.abc import Store
from taskcell.agents.base import (
    TERMINAL_KINDS,
    AgentError,
    AgentUpdate,
    TransientAgentError,
    UpdateKind,
)
from taskcell.agents.demo.door import acting_for
from taskcell.agents.registry import AgentRegistry, UnknownAgent
from taskcell.domain.models import Run, Task
from taskcell.domain.schedule import resolve_zone_name
from taskcell.engine.eventlog import EventLog
from taskcell.engine.responses import ResponseFactory
from taskcell.engine.router import EventRouter, clean_text
from taskcell.metrics import AGENT_CALL_SECONDS

logger = logging.getLogger(__name__)

CONNECT_TOOL = "connect_agent"
CONTEXT_KEY = "remote_context_id"
MAX_REMOTE_IDS = 20
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

    def remote_changes(self) -> dict[str, Any]:
        """The task fields that record the remote task, if this run learned of a new one."""
        if not self.remote_changed:
            return {}
        return {"remote_task_ids": self.task.remote_task_ids, "metadata": self.task.metadata}


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
    ) -> Outcome:
        """One attempt: send the query (or ``reply`` to a task waiting for input).

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
        stream = client.send(
            reply if continuing else task.query,  # type: ignore[arg-type]
            metadata=metadata,
            remote_task_id=ctx.remote_task_id if continuing else None,
            context_id=ctx.context_id if continuing else None,
        )
        started = time.perf_counter()
        try:
            with acting_for(task.user_id):
                return await self._read(ctx, factory, stream, router, continuing, emit_routed)
        finally:
            AGENT_CALL_SECONDS.labels(agent=task.agent_name).observe(time.perf_counter() - started)

    async def _read(
        self,
        ctx: RunContext,
        factory: ResponseFactory,
        stream: AsyncIterator[AgentUpdate],
        router: EventRouter,
        continuing: bool,
        emit_routed: bool,
    ) -> Outcome:
        """Read and route the agent's stream; see the module docstring for its errors."""
        emit = self.log.emit
        connected = False
        last: AgentUpdate | None = None
        try:
            async for update in stream:
                if not connected:
                    connected = True
                    await self._connected(ctx, factory, update, continuing)
                    if update.kind is UpdateKind.ACCEPTED:
                        continue
                last = update
                if emit_routed or update.kind is UpdateKind.INPUT_REQUIRED:
                    for event in router.route(update):
                        await emit(event)
                else:
                    router.route(update)
                if update.kind in TERMINAL_KINDS or update.kind is UpdateKind.INPUT_REQUIRED:
                    break
            return self._outcome(last, router)
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

    async def _connected(
        self, ctx: RunContext, factory: ResponseFactory, update: AgentUpdate, continuing: bool
    ) -> None:
        await self.log.emit(
            factory.tool_call_completed(
                CONNECT_TOOL + ":" + ctx.run.run_id, CONNECT_TOOL, "connected"
            )
        )
        if update.remote_task_id and update.remote_task_id != ctx.remote_task_id:
            ctx.remote_task_id = update.remote_task_id
            ctx.context_id = update.context_id
            # A recurring task keeps the remote ids of its latest runs only.
            remote_ids = [*ctx.task.remote_task_ids, update.remote_task_id][-MAX_REMOTE_IDS:]
            ctx.task.remote_task_ids = remote_ids
            ctx.task.metadata = {**ctx.task.metadata, CONTEXT_KEY: update.context_id}
            ctx.remote_changed = True  # stored with the write that settles the run
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
