"""In-process agents: an async Python callable registered by name.

An agent is either an async generator function::

    async def agent(request: AgentRequest) -> AsyncIterator[str | AgentUpdate]:
        yield "Hello, "                       # a message chunk
        yield event("reasoning", "thinking")  # any WORKING event
        yield ask("What is your name?")       # pause for the user (ends this call)

or a coroutine function returning the whole answer::

    async def agent(request: AgentRequest) -> str: ...

Either may also be any callable returning such an iterator or awaitable. :class:`AgentRequest`
carries the query and the task's metadata; when a task that asked for input is continued,
``query`` is still the original query and ``input_text`` is the user's reply.

:class:`LocalAgentClient` gives such a callable the :class:`~taskcell.agents.base.AgentClient`
interface, with the same update stream and answer convention as the demo A2A agents:

- ACCEPTED first, with a generated remote task id (and context id);
- each yielded ``str`` becomes WORKING with ``metadata={"response_event": "message_chunk"}``;
  each yielded :class:`AgentUpdate` passes through (its ids filled in); a yielded terminal or
  INPUT_REQUIRED update ends the call;
- when the callable finishes, the chunks joined (or the returned string) are repeated as an
  ARTIFACT with ``metadata={"response_event": "final_result"}`` (unless the agent yielded an
  artifact itself), then COMPLETED with empty text;
- an exception becomes FAILED with the exception's text and is not retried, except
  :class:`TransientAgentError`, which ``send`` raises;
- ``cancel`` cancels the running callable at once (it sees ``CancelledError`` at its next await)
  and the stream ends with CANCELED.
- a callable that has not finished (or asked for input) ``run_timeout_seconds`` after the call
  started (default :data:`DEFAULT_RUN_TIMEOUT`, one hour) is cancelled and the stream ends with
  FAILED saying so; yielding anything but ``str`` or :class:`AgentUpdate` fails the call too.
- ``max_concurrent_runs`` (None: the engine's default for in-process agents) is how many of
  the agent's tasks may run at once; the engine holds the others back, so a hung agent cannot
  take every run slot.

The callable runs in its own asyncio task, so that cancel can stop it. Unlike a remote agent,
breaking off iteration of ``send`` also stops the callable: nobody could pick its stream up
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import inspect
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from taskcell.agents.base import (
    TERMINAL_KINDS,
    AgentError,
    AgentInfo,
    AgentUpdate,
    TransientAgentError,
    UpdateKind,
)

logger = logging.getLogger(__name__)

MESSAGE_CHUNK = "message_chunk"
FINAL_RESULT = "final_result"
DEFAULT_RUN_TIMEOUT = 3600.0
_STOPPING = TERMINAL_KINDS | {UpdateKind.INPUT_REQUIRED}


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """What a local agent is asked."""

    query: str
    metadata: dict[str, Any] = field(default_factory=dict)
    remote_task_id: str = ""
    context_id: str = ""
    input_text: str | None = None  # the user's reply, when a task that asked for input goes on


LocalAgentResult: TypeAlias = AsyncIterator[str | AgentUpdate] | Awaitable[str | AgentUpdate]
LocalAgentFn: TypeAlias = Callable[[AgentRequest], LocalAgentResult]


def event(response_event: str, text: str = "", **metadata: Any) -> AgentUpdate:
    """A WORKING update for a local agent to yield (``reasoning``, ``tool_call_started`` ...)."""
    return AgentUpdate(
        UpdateKind.WORKING, text=text, metadata={"response_event": response_event, **metadata}
    )


def ask(question: str) -> AgentUpdate:
    """An INPUT_REQUIRED update for a local agent to yield: pauses the task with ``question``."""
    return AgentUpdate(UpdateKind.INPUT_REQUIRED, text=question)


def entry_point_agent(entry: str) -> LocalAgentFn:
    """Load the agent callable named by ``"package.module:function"`` (or ``:Class.method``)."""
    module_name, sep, attr_path = entry.partition(":")
    if not sep or not module_name or not attr_path:
        raise AgentError(f"agent entry point {entry!r} is not of the form 'module:function'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise AgentError(
            f"cannot import module {module_name!r} for agent {entry!r}: {exc}"
        ) from exc
    for attr in attr_path.split("."):
        try:
            target = getattr(target, attr)
        except AttributeError as exc:
            raise AgentError(
                f"module {module_name!r} has no {attr_path!r} (agent {entry!r})"
            ) from exc
    if not callable(target):
        raise AgentError(f"agent entry point {entry!r} is not callable")
    fn: LocalAgentFn = target
    return fn


@dataclass(slots=True)
class _Paused:
    query: str
    context_id: str


class LocalAgentClient:
    """An in-process agent; see the module docstring for the callable's contract."""

    def __init__(
        self,
        name: str,
        fn: LocalAgentFn,
        description: str = "",
        skills: Sequence[str] = (),
        *,
        run_timeout_seconds: float = DEFAULT_RUN_TIMEOUT,
        max_concurrent_runs: int | None = None,
    ) -> None:
        if not run_timeout_seconds > 0:
            raise ValueError(f"run_timeout_seconds must be positive, not {run_timeout_seconds!r}")
        if max_concurrent_runs is not None and max_concurrent_runs < 1:
            raise ValueError(f"max_concurrent_runs must be at least 1, not {max_concurrent_runs}")
        self.name = name
        self.fn = fn
        self.description = description or (inspect.getdoc(fn) or "").split("\n", 1)[0]
        self.skills = list(skills)
        self.run_timeout_seconds = run_timeout_seconds
        self.max_concurrent_runs = max_concurrent_runs
        self._running: dict[str, asyncio.Task[None]] = {}
        self._paused: dict[str, _Paused] = {}

    @classmethod
    def from_entry_point(
        cls,
        name: str,
        entry: str,
        description: str = "",
        skills: Sequence[str] = (),
        *,
        run_timeout_seconds: float = DEFAULT_RUN_TIMEOUT,
        max_concurrent_runs: int | None = None,
    ) -> LocalAgentClient:
        """A client for the callable at ``entry`` (``"module:function"``)."""
        return cls(
            name,
            entry_point_agent(entry),
            description,
            skills,
            run_timeout_seconds=run_timeout_seconds,
            max_concurrent_runs=max_concurrent_runs,
        )

    async def info(self) -> AgentInfo:
        """Always reachable; ``url`` is ``"local"``."""
        return AgentInfo(
            name=self.name, description=self.description, skills=list(self.skills), url="local"
        )

    def _request(
        self,
        query: str,
        metadata: dict[str, Any],
        remote_task_id: str | None,
        context_id: str | None,
    ) -> AgentRequest:
        if remote_task_id is None:
            return AgentRequest(
                query=query,
                metadata=dict(metadata),
                remote_task_id=uuid.uuid4().hex,
                context_id=context_id or uuid.uuid4().hex,
            )
        paused = self._paused.pop(remote_task_id, None)
        if paused is None:
            raise AgentError(
                f"local agent {self.name!r} has no task {remote_task_id} waiting for input"
            )
        return AgentRequest(
            query=paused.query,
            metadata=dict(metadata),
            remote_task_id=remote_task_id,
            context_id=context_id or paused.context_id,
            input_text=query,
        )

    async def send(
        self,
        query: str,
        *,
        metadata: dict[str, Any],
        remote_task_id: str | None = None,
        context_id: str | None = None,
    ) -> AsyncIterator[AgentUpdate]:
        """Run the callable and stream its updates (see the module docstring)."""
        request = self._request(query, metadata, remote_task_id, context_id)
        rid, ctx = request.remote_task_id, request.context_id
        queue: asyncio.Queue[AgentUpdate | TransientAgentError] = asyncio.Queue()
        logger.info("agent call", extra={"agent": self.name, "remote_task_id": rid})
        yield AgentUpdate(UpdateKind.ACCEPTED, rid, ctx)
        task = asyncio.create_task(self._run(request, queue), name=f"local agent {self.name} {rid}")
        self._running[rid] = task
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.run_timeout_seconds
        try:
            while True:
                remaining = deadline - loop.time()
                if queue.empty() or remaining <= 0:
                    try:
                        # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancel
                        # that lands as the queue answers, and the call would run on.
                        async with asyncio.timeout(max(remaining, 0.0)):
                            item = await queue.get()
                    except TimeoutError:
                        yield self._timed_out(rid, ctx, task)
                        return
                else:  # the agent is ahead: no timer needed
                    item = queue.get_nowait()
                if isinstance(item, TransientAgentError):
                    raise item
                if item.kind is UpdateKind.INPUT_REQUIRED:
                    self._paused[rid] = _Paused(request.query, ctx)
                yield item
                if item.kind in _STOPPING:
                    return
        finally:
            if self._running.get(rid) is task:
                del self._running[rid]
            task.cancel()

    def _timed_out(self, rid: str, ctx: str, task: asyncio.Task[None]) -> AgentUpdate:
        """Stop a call that ran out of time; the FAILED update that ends its stream."""
        task.cancel()
        seconds = f"{self.run_timeout_seconds:g}"
        logger.warning(
            "local agent timed out",
            extra={"agent": self.name, "remote_task_id": rid, "seconds": seconds},
        )
        reason = f"local agent {self.name!r} did not finish within {seconds} s"
        return AgentUpdate(UpdateKind.FAILED, rid, ctx, text=reason)

    async def _run(
        self, request: AgentRequest, queue: asyncio.Queue[AgentUpdate | TransientAgentError]
    ) -> None:
        """Drive the callable, putting its updates (or a transient error) on ``queue``."""
        rid, ctx = request.remote_task_id, request.context_id
        try:
            async with contextlib.aclosing(self._updates(request)) as updates:
                async for update in updates:
                    queue.put_nowait(update)
                    if update.kind in _STOPPING:
                        return
        except asyncio.CancelledError:
            queue.put_nowait(AgentUpdate(UpdateKind.CANCELED, rid, ctx))
            raise
        except TransientAgentError as exc:
            queue.put_nowait(exc)
        except Exception as exc:
            logger.info(
                "local agent failed",
                extra={"agent": self.name, "remote_task_id": rid, "error": repr(exc)},
            )
            reason = str(exc) or type(exc).__name__
            queue.put_nowait(AgentUpdate(UpdateKind.FAILED, rid, ctx, text=reason))

    async def _updates(self, request: AgentRequest) -> AsyncGenerator[AgentUpdate, None]:
        """The callable's output as updates, ending with the final artifact and COMPLETED."""
        rid, ctx = request.remote_task_id, request.context_id
        result = self.fn(request)
        chunks: list[str] = []
        saw_artifact = False
        if isinstance(result, AsyncIterator):
            try:
                async for item in result:
                    update = self._as_update(item, rid, ctx)
                    if isinstance(item, str):
                        chunks.append(item)
                    saw_artifact = saw_artifact or update.kind is UpdateKind.ARTIFACT
                    yield update
                    if update.kind in _STOPPING:
                        return
            finally:
                aclose = getattr(result, "aclose", None)
                if aclose is not None:
                    await aclose()
        else:
            answer = await result
            if isinstance(answer, AgentUpdate):
                yield self._as_update(answer, rid, ctx)
                if answer.kind in _STOPPING:
                    return
            elif answer:
                chunks.append(str(answer))
                yield self._as_update(str(answer), rid, ctx)
        if chunks and not saw_artifact:
            yield AgentUpdate(
                UpdateKind.ARTIFACT,
                rid,
                ctx,
                text="".join(chunks),
                metadata={"response_event": FINAL_RESULT, "artifact_name": "answer"},
                artifact_id=f"{rid}-answer",
            )
        yield AgentUpdate(UpdateKind.COMPLETED, rid, ctx)

    def _as_update(self, item: str | AgentUpdate, rid: str, ctx: str) -> AgentUpdate:
        if isinstance(item, AgentUpdate):
            return dataclasses.replace(item, remote_task_id=rid, context_id=ctx)
        if not isinstance(item, str):
            raise AgentError(
                f"local agent {self.name!r} yielded {type(item).__name__}; "
                "an agent yields str or AgentUpdate"
            )
        return AgentUpdate(
            UpdateKind.WORKING, rid, ctx, text=item, metadata={"response_event": MESSAGE_CHUNK}
        )

    async def cancel(self, remote_task_id: str) -> None:
        """Stop the running callable for ``remote_task_id`` and wait until it has stopped."""
        self._paused.pop(remote_task_id, None)
        task = self._running.get(remote_task_id)
        if task is None or task.done():
            return
        task.cancel()
        await asyncio.wait({task})
        logger.info(
            "local agent cancelled", extra={"agent": self.name, "remote_task_id": remote_task_id}
        )

    async def aclose(self) -> None:
        """Cancel every running call."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._running.clear()
        self._paused.clear()
