"""A remote agent reached over A2A (protocol 1.0, or 0.3 through the SDK's compatibility layer).

:class:`RemoteAgentClient` implements :class:`~taskcell.agents.base.AgentClient` with a2a-sdk
1.x:

- The agent card is read from ``{url}/.well-known/agent-card.json`` (or from ``url`` itself if
  it ends in ``.json``) and cached for ``card_ttl`` seconds; a transient failure drops the cache
  so the next call reads the card again. The SDK client then talks to the URL *the card*
  advertises, over the first binding in the card's ``supported_interfaces`` that taskcell speaks
  (JSON-RPC or HTTP+JSON), unless ``binding`` forces one. A card that declares protocol 0.3
  gets the SDK's 0.3 transport.
- ``send`` streams (``SendStreamingMessage`` / ``POST message:stream``) and maps the events with
  :class:`~taskcell.agents.a2a_events.StreamMapper` (see its table).
- ``resume`` takes up a remote task a run started earlier (before a stop, a crash or a cut
  stream): ``SubscribeToTask`` answers the task as it is (its history replayed as updates with
  their original ids), then its live events. A task already finished (the agent refuses to
  subscribe to it) is read with ``GetTask``. When the live stream reaches a final state the task
  is read once more, so an update published while the subscription was being set up (the SDK
  reads the task before it taps its queue) is not lost. An unknown task, or one still working
  that the agent will not stream to a new subscriber, is :class:`NotResumable`. ``orphan``
  finds a remote task a run started but did not live to record, with ``ListTasks`` in the
  context id taskcell gave it.
- Errors: connection refused, DNS failures, cut streams, time-outs, HTTP 5xx (and 408/429) are
  :class:`TransientAgentError`; anything else the SDK raises (HTTP 4xx, a JSON-RPC error, a bad
  card) is :class:`AgentError`. Messages name the agent and its URL.

Every client without an explicit ``http_client`` uses the pooled client from
:func:`taskcell.agents.http.shared_http_client`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Collection
from typing import Any

import httpx
from a2a.client import ClientConfig, ClientFactory
from a2a.client.card_resolver import A2ACardResolver
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
)
from a2a.utils.constants import TransportProtocol
from a2a.utils.errors import A2AError, TaskNotCancelableError, TaskNotFoundError

from taskcell.agents.a2a_events import StreamMapper, UpdateIds
from taskcell.agents.base import (
    AgentError,
    AgentInfo,
    AgentUpdate,
    NotResumable,
    TransientAgentError,
    UpdateKind,
)
from taskcell.agents.http import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    shared_http_client,
)
from taskcell.settings import redact_url

logger = logging.getLogger(__name__)

SUPPORTED_BINDINGS = (TransportProtocol.JSONRPC.value, TransportProtocol.HTTP_JSON.value)
_TRANSIENT_STATUS = frozenset({408, 425, 429})
_CARD_PATH = "/.well-known/agent-card.json"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _connect_reason(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower() or text == "All connection attempts failed":
        return "connection refused"
    return text


def classify_error(exc: BaseException, name: str, url: str) -> AgentError:
    """The :class:`AgentError` (transient or not) a person should read for ``exc``."""
    url = redact_url(url)  # errors are shown and logged: never a password
    where = f"agent {name!r} at {url}"
    for cause in _causes(exc):
        if isinstance(cause, httpx.ConnectTimeout):
            return TransientAgentError(f"agent {name!r} unreachable at {url}: connect timed out")
        if isinstance(cause, httpx.ConnectError):
            reason = _connect_reason(cause)
            return TransientAgentError(f"agent {name!r} unreachable at {url}: {reason}")
        if isinstance(cause, httpx.TimeoutException):
            return TransientAgentError(f"{where} timed out ({type(cause).__name__})")
        if isinstance(cause, httpx.HTTPStatusError):
            status = cause.response.status_code
            if status >= 500 or status in _TRANSIENT_STATUS:
                return TransientAgentError(f"{where} answered HTTP {status}")
            return AgentError(f"{where} refused the request: HTTP {status}")
        if isinstance(cause, httpx.TransportError):
            detail = str(cause) or type(cause).__name__
            return TransientAgentError(f"connection to {where} was cut: {detail}")
    if isinstance(exc, A2AError):
        return AgentError(f"{where}: {exc.message}")
    return AgentError(f"{where}: {exc or type(exc).__name__}")


def _fresh(update: AgentUpdate, given: UpdateIds) -> bool:
    """Whether ``update`` is new to this stream (remembering it in ``given``)."""
    if update.update_id is None:
        return True
    if given.covers(update.update_id):
        return False
    given.add(update.update_id)
    return True


def _without_accepted(updates: list[AgentUpdate]) -> list[AgentUpdate]:
    return [update for update in updates if update.kind is not UpdateKind.ACCEPTED]


def _jsonable(metadata: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(metadata, default=str))
    return result


class RemoteAgentClient:
    """An A2A agent at ``url`` (its base URL; the card is read from the well-known path)."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        binding: str | None = None,
        card_ttl: float = 300.0,
        served_here: bool = False,
    ) -> None:
        if binding is not None and binding not in SUPPORTED_BINDINGS:
            raise ValueError(f"binding must be one of {SUPPORTED_BINDINGS}, not {binding!r}")
        self.name = name
        self.url = url.rstrip("/")
        #: The agent is served by this process (the demo agents): its tasks end with the
        #: process, and no other process of a cluster can resume them.
        self.served_here = served_here
        self._http_client = http_client
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._binding = binding
        self._card_ttl = card_ttl
        self._card: Any = None
        self._card_read_at = 0.0
        self._client: Any = None

    def _http(self) -> httpx.AsyncClient:
        if self._http_client is not None:
            return self._http_client
        return shared_http_client(
            connect_timeout=self._connect_timeout, read_timeout=self._read_timeout
        )

    def _forget(self) -> None:
        self._card = None
        self._client = None

    async def _get_card(self) -> Any:
        if self._card is not None and time.monotonic() - self._card_read_at < self._card_ttl:
            return self._card
        base, path = self.url, _CARD_PATH
        if self.url.endswith(".json"):
            base, _, path = self.url.rpartition("/")
        try:
            card = await A2ACardResolver(self._http(), base, path).get_agent_card()
        except (A2AError, httpx.HTTPError) as exc:
            # The resolver wraps connect errors; look at its status code too.
            status = getattr(exc, "status_code", None)
            card_url = f"{base}/{path.lstrip('/')}"
            if status is not None and (status >= 500 or status in _TRANSIENT_STATUS):
                raise TransientAgentError(
                    f"agent {self.name!r} at {self.url} answered HTTP {status} for its card"
                ) from exc
            if status is not None:
                raise AgentError(
                    f"agent {self.name!r}: no agent card at {card_url} (HTTP {status})"
                ) from exc
            raise classify_error(exc, self.name, self.url) from exc
        self._card, self._card_read_at, self._client = card, time.monotonic(), None
        return card

    async def _get_client(self) -> Any:
        card = await self._get_card()
        if self._client is None:
            bindings = [self._binding] if self._binding else list(SUPPORTED_BINDINGS)
            config = ClientConfig(
                streaming=True, httpx_client=self._http(), supported_protocol_bindings=bindings
            )
            try:
                self._client = ClientFactory(config).create(card)
            except ValueError as exc:
                offered = [i.protocol_binding for i in card.supported_interfaces]
                raise AgentError(
                    f"agent {self.name!r} at {self.url} offers no binding taskcell speaks "
                    f"(it offers {offered}, taskcell speaks {bindings})"
                ) from exc
        return self._client

    async def info(self) -> AgentInfo:
        """Name, description and skills from the card; ``reachable=False`` if it can't be read."""
        try:
            card = await self._get_card()
        except AgentError as exc:
            logger.info("agent card unavailable", extra={"agent": self.name, "error": str(exc)})
            return AgentInfo(name=self.name, url=self.url, reachable=False)
        return AgentInfo(
            name=self.name,
            description=card.description,
            skills=[skill.name or skill.id for skill in card.skills],
            url=self.url,
            reachable=True,
        )

    async def send(
        self,
        query: str,
        *,
        metadata: dict[str, Any],
        remote_task_id: str | None = None,
        context_id: str | None = None,
    ) -> AsyncIterator[AgentUpdate]:
        """Send ``query`` (or a reply, when continuing ``remote_task_id``) and stream updates."""
        client = await self._get_client()
        meta = _jsonable(metadata)
        message = Message(
            role=Role.ROLE_USER,
            message_id=str(uuid.uuid4()),
            parts=[Part(text=query)],
            metadata=meta,
            task_id=remote_task_id or None,
            context_id=context_id or None,
        )
        request = SendMessageRequest(message=message, metadata=meta)
        mapper = StreamMapper()
        logger.info(
            "agent call",
            extra={
                "agent": self.name,
                "url": redact_url(self.url),
                "remote_task_id": remote_task_id,
            },
        )
        try:
            async with contextlib.aclosing(client.send_message(request)) as stream:
                async for response in stream:
                    for update in mapper.feed(response):
                        yield update
                    if mapper.finished:
                        return
        except (A2AError, httpx.HTTPError) as exc:
            error = classify_error(exc, self.name, self.url)
            if isinstance(error, TransientAgentError):
                self._forget()
            logger.info(
                "agent call failed",
                extra={
                    "agent": self.name,
                    "error": str(error),
                    "transient": isinstance(error, TransientAgentError),
                },
            )
            raise error from exc
        self._forget()
        raise TransientAgentError(
            f"the stream from agent {self.name!r} at {self.url} ended before the task finished"
        )

    async def resume(self, remote_task_id: str) -> AsyncIterator[AgentUpdate]:
        """Take up ``remote_task_id`` again: its updates from the first, then live ones (see
        :class:`~taskcell.agents.base.ResumableAgentClient`)."""
        client = await self._get_client()
        given = UpdateIds()
        mapper = StreamMapper()
        logger.info("agent resume", extra={"agent": self.name, "remote_task_id": remote_task_id})
        refusal: Exception | None = None
        try:
            try:
                async for update in self._subscribed(client, remote_task_id, mapper):
                    if _fresh(update, given):
                        yield update
                if mapper.finished:
                    return
                # Else the live stream ended early (the task finished before the agent
                # tapped its events for this subscriber): read the task.
            except (A2AError, NotImplementedError) as exc:
                # Finished already, unknown, or no streaming to a new subscriber: read it.
                logger.info(
                    "agent subscribe refused",
                    extra={
                        "agent": self.name,
                        "remote_task_id": remote_task_id,
                        "reason": str(exc),
                    },
                )
                refusal = exc
            for update in await self._finished(remote_task_id, refusal, resumed=mapper.accepted):
                if _fresh(update, given):
                    yield update
        except (A2AError, httpx.HTTPError) as exc:
            error = classify_error(exc, self.name, self.url)
            if isinstance(error, TransientAgentError):
                self._forget()
            raise error from exc

    async def _subscribed(
        self, client: Any, remote_task_id: str, mapper: StreamMapper
    ) -> AsyncIterator[AgentUpdate]:
        """``SubscribeToTask`` as updates: the snapshot's, the live ones, and before the final
        one whatever a second read of the task holds (an update published while the
        subscription was set up reaches neither the snapshot nor the live stream)."""
        request = SubscribeToTaskRequest(id=remote_task_id)
        async with contextlib.aclosing(client.subscribe(request)) as stream:
            async for response in stream:
                if not mapper.accepted and response.WhichOneof("payload") == "task":
                    for update in mapper.snapshot(response.task):
                        yield update
                else:
                    updates = mapper.feed(response)
                    if mapper.finished:
                        task = await client.get_task(GetTaskRequest(id=remote_task_id))
                        again = StreamMapper().snapshot(task, final=False)
                        updates = [*_without_accepted(again), *updates]
                    for update in updates:
                        yield update
                if mapper.finished:
                    return

    async def _finished(
        self, remote_task_id: str, refusal: Exception | None, *, resumed: bool
    ) -> list[AgentUpdate]:
        """The whole of a task the agent would not subscribe to, if it has finished (or waits
        for input); else :class:`NotResumable` (or transient, after some updates)."""
        task = await self._read_task(remote_task_id, resumed=resumed)
        mapper = StreamMapper()
        updates = mapper.snapshot(task)
        if mapper.finished:
            return _without_accepted(updates) if resumed else updates
        if resumed:
            self._forget()
            raise TransientAgentError(
                f"the stream from agent {self.name!r} at {self.url} ended before its task "
                f"{remote_task_id} finished"
            ) from refusal
        raise NotResumable(
            f"agent {self.name!r} at {self.url} will not stream its task {remote_task_id}, "
            f"which is still running ({refusal or 'its stream ended'})"
        ) from refusal

    async def orphan(self, context_id: str, *, known: Collection[str]) -> str | None:
        """``ListTasks`` in ``context_id``: the newest task not in ``known`` (see
        :class:`~taskcell.agents.base.ResumableAgentClient`)."""
        client = await self._get_client()
        try:
            page = await client.list_tasks(ListTasksRequest(context_id=context_id, page_size=20))
        except (A2AError, NotImplementedError) as exc:
            logger.info(
                "agent cannot list tasks",
                extra={"agent": self.name, "context_id": context_id, "reason": str(exc)},
            )
            return None
        except httpx.HTTPError as exc:
            error = classify_error(exc, self.name, self.url)
            if isinstance(error, TransientAgentError):
                self._forget()
            raise error from exc
        for task in page.tasks:  # newest first
            if task.id not in known:
                return str(task.id)
        return None

    async def _read_task(self, remote_task_id: str, *, resumed: bool) -> Any:
        """``GetTask``; an unknown task is :class:`NotResumable` (before any update) or
        transient (after some: the agent lost it while this client read it)."""
        client = await self._get_client()
        try:
            return await client.get_task(GetTaskRequest(id=remote_task_id))
        except TaskNotFoundError as exc:
            message = f"agent {self.name!r} at {self.url} does not know task {remote_task_id}"
            if resumed:
                raise TransientAgentError(message) from exc
            raise NotResumable(message) from exc

    async def cancel(self, remote_task_id: str) -> None:
        """Ask the agent to cancel; a task it no longer knows or already finished is fine."""
        client = await self._get_client()
        try:
            await client.cancel_task(CancelTaskRequest(id=remote_task_id))
        except (TaskNotFoundError, TaskNotCancelableError) as exc:
            logger.info(
                "agent task not cancelable",
                extra={"agent": self.name, "remote_task_id": remote_task_id, "reason": str(exc)},
            )
        except (A2AError, httpx.HTTPError) as exc:
            error = classify_error(exc, self.name, self.url)
            if isinstance(error, TransientAgentError):
                self._forget()
            raise error from exc

    async def aclose(self) -> None:
        """Drop the cached card and SDK client (the pooled HTTP client stays open)."""
        client, self._client = self._client, None
        self._card = None
        if client is not None:
            await client.close()
