"""The agent-client interface every agent (remote A2A or in-process) implements.

The executor talks to agents only through :class:`AgentClient`. An agent turns a query into a
stream of :class:`AgentUpdate` values; the executor routes those into events. Transient
failures (the agent is unreachable, the stream was cut, an HTTP 5xx, a time-out) are raised as
:class:`TransientAgentError` so the executor can retry them; everything else an agent says,
including its own failed state, arrives as an update and is its answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeGuard, runtime_checkable


class UpdateKind(StrEnum):
    """What an :class:`AgentUpdate` says."""

    ACCEPTED = "accepted"  # the agent created its task (remote_task_id is set)
    WORKING = "working"  # a progress update; routed by metadata["response_event"]
    ARTIFACT = "artifact"  # a result artifact (text or data)
    INPUT_REQUIRED = "input_required"  # the agent asks the user something (text = question)
    COMPLETED = "completed"  # the agent finished (text = final message, if any)
    FAILED = "failed"  # the agent's own failure (text = reason); never retried
    CANCELED = "canceled"  # the agent cancelled its task


TERMINAL_KINDS = frozenset({UpdateKind.COMPLETED, UpdateKind.FAILED, UpdateKind.CANCELED})


@dataclass(frozen=True, slots=True)
class AgentUpdate:
    """One thing an agent said.

    ``text`` is the text of the update's message or artifact parts joined, ``data`` the merged
    JSON of its data parts (None if it had none). ``metadata`` is the update's metadata; for
    WORKING updates ``metadata.get("response_event")`` names the event it maps to
    (``message_chunk``, ``reasoning``, ``tool_call_started``, ``component_generator``, ...).
    """

    kind: UpdateKind
    remote_task_id: str | None = None
    context_id: str | None = None
    text: str = ""
    data: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    append: bool = False  # for ARTIFACT: this chunk extends the previous one of the same artifact
    artifact_id: str | None = None
    #: Names this update across streams of one remote task (set by agents that can resume it).
    update_id: str | None = None


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """What the registry shows about an agent (from its card, for remote agents)."""

    name: str
    description: str = ""
    skills: list[str] = field(default_factory=list)
    url: str = "local"  # the agent's URL, or "local" for an in-process agent
    reachable: bool = True


class AgentError(Exception):
    """An agent could not be used. The message is meant for a person."""


class TransientAgentError(AgentError):
    """A failure worth retrying: unreachable, stream cut, HTTP 5xx, time-out."""


class NotResumable(AgentError):
    """The agent cannot resume this remote task: it does not know it, or cannot stream it."""


@runtime_checkable
class AgentClient(Protocol):
    """A connection to one agent.

    Contract:

    - ``send`` starts a new remote task (or, with ``remote_task_id`` and ``context_id`` set,
      continues one that asked for input) and yields its updates in order. The first update is
      ACCEPTED with the remote task id as soon as the agent has created its task. The stream ends
      after a terminal update (COMPLETED, FAILED, CANCELED) or INPUT_REQUIRED. Connection
      problems raise :class:`TransientAgentError`; breaking off iteration does not cancel the
      remote task.
    - ``cancel`` asks the agent to cancel ``remote_task_id``; it returns once the agent
      answered, and raises :class:`AgentError` only if the agent could not be reached.
    - ``info`` describes the agent; it never raises (``reachable`` says whether it answered).
    - ``aclose`` releases connections.
    """

    name: str

    def send(
        self,
        query: str,
        *,
        metadata: dict[str, Any],
        remote_task_id: str | None = None,
        context_id: str | None = None,
    ) -> AsyncIterator[AgentUpdate]: ...

    async def cancel(self, remote_task_id: str) -> None: ...

    async def info(self) -> AgentInfo: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ResumableAgentClient(AgentClient, Protocol):
    """An agent whose remote tasks outlive a connection (and this process), so a run
    interrupted by a stop, a crash or a cut stream can take up the same remote task again.

    The ids of the remote tasks a run started are recorded as soon as the agent accepts them;
    ``send`` without ``remote_task_id`` is given a ``context_id`` of taskcell's choosing, so a
    remote task whose acceptance a crash cut off can still be found (``orphan``).

    Contract of ``resume``: yields the updates of ``remote_task_id`` *from its beginning*:
    ACCEPTED first, then what the agent already said (each update with an ``update_id`` that
    names it as the original stream did), then its live updates, ending like ``send`` (after
    a terminal update or INPUT_REQUIRED). A task already finished yields its whole answer and
    its final state. :class:`NotResumable` (before any update) means the agent does not know
    the task or cannot stream it to a new subscriber; connection problems raise
    :class:`TransientAgentError`; breaking off iteration does not cancel the remote task.
    """

    def resume(self, remote_task_id: str) -> AsyncIterator[AgentUpdate]: ...

    async def orphan(self, context_id: str, *, known: Collection[str]) -> str | None:
        """The newest remote task in ``context_id`` whose id is not in ``known`` (one a run
        started but did not live to record), or None, also when the agent cannot list its
        tasks. Connection problems raise :class:`TransientAgentError`."""
        ...


_RESUMABLE: dict[type, bool] = {}


def can_resume(client: AgentClient) -> TypeGuard[ResumableAgentClient]:
    """Whether ``client`` is a :class:`ResumableAgentClient` (known per class: a protocol's
    ``isinstance`` costs tens of microseconds, on every run's path)."""
    kind = type(client)
    known = _RESUMABLE.get(kind)
    if known is None:
        known = _RESUMABLE[kind] = isinstance(client, ResumableAgentClient)
    return known
