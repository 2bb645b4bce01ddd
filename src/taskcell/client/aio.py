"""``AsyncClient``: the taskcell HTTP API from asyncio (or trio) code, over httpx.

The same methods as :class:`~taskcell.client.Client`, awaited; lists and streams are async
iterators:

>>> async with AsyncClient("http://127.0.0.1:8000") as client:   # doctest: +SKIP
...     async for task in client.tasks.iter(status="running"):
...         print(task.task_id, task.title)
"""

from __future__ import annotations

import builtins
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import anyio
import httpx
from tenacity import AsyncRetrying

from taskcell.client import _calls
from taskcell.client._calls import Schedule
from taskcell.client._paging import every_item_async
from taskcell.client._wire import (
    API_PREFIX,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    STREAM_TIMEOUT,
    Call,
    SseParser,
    WatchCursor,
    connection_failed,
    decode,
    error_from,
    event_of,
    headers_for,
    health_of,
    retry_policy,
    stream_headers,
    task_path,
)
from taskcell.client.errors import ConnectionFailed
from taskcell.client.models import (
    Agent,
    Backfill,
    BulkOutcome,
    CancelResult,
    ConversationItem,
    DeleteResult,
    Health,
    Page,
    Run,
    Task,
    TaskEvent,
    Upcoming,
    Webhook,
    WebhookCreated,
    WebhookDeleted,
    WebhookDelivery,
    WebhookSecret,
)
from taskcell.client.sync import (
    DEFAULT_RECONNECT_FOR,
    MAX_BACKOFF,
    Notice,
    default_key,
    default_url,
)

T = TypeVar("T")


async def _events(response: httpx.Response) -> AsyncIterator[TaskEvent]:
    parser = SseParser()
    async for line in response.aiter_lines():
        message = parser.feed(line)
        event = event_of(message) if message is not None else None
        if event is not None:
            yield event
    last = parser.end()
    event = event_of(last) if last is not None else None
    if event is not None:
        yield event


class AsyncClient:
    """The async twin of :class:`~taskcell.client.Client` (same arguments, same errors, same
    retries). Use it as an async context manager, or await :meth:`aclose`."""

    def __init__(
        self,
        base_url: str | None = None,
        key: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = (base_url or default_url()).rstrip("/")
        self._retries = retries
        self._http = httpx.AsyncClient(
            base_url=self.base_url + API_PREFIX,
            headers=headers_for(default_key() if key is None else key),
            timeout=timeout,
            transport=transport,
        )
        self.tasks = AsyncTasks(self)
        self.agents = AsyncAgents(self)
        self.conversations = AsyncConversations(self)
        self.webhooks = AsyncWebhooks(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    # -- sending ----------------------------------------------------------------------------

    async def send(self, call: Call[T]) -> T:
        """Send one :class:`~taskcell.client._wire.Call` and decode its answer."""

        async def once() -> httpx.Response:
            return await self._http.request(
                call.method,
                call.path,
                params=call.query(),
                json=call.body,
                headers=dict(call.headers),
            )

        try:
            if call.idempotent and self._retries > 0:
                response: httpx.Response = await AsyncRetrying(**retry_policy(self._retries))(once)
            else:
                response = await once()
        except httpx.HTTPError as exc:
            raise connection_failed(self.base_url, exc) from exc
        return decode(call, response)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Any endpoint under ``/api/v1``: the envelope's ``data`` as plain JSON (see
        :meth:`taskcell.client.Client.request`)."""
        safe = method.upper() == "GET" if idempotent is None else idempotent
        return await self.send(Call(method.upper(), path, lambda d: d, params, json, safe))

    # -- the whole service ------------------------------------------------------------------

    async def health(self) -> Health:
        """``GET /health``: the checks and the live processes, also when it answers 503."""
        try:
            response = await self._http.get("/health")
        except httpx.HTTPError as exc:
            raise connection_failed(self.base_url, exc) from exc
        return health_of(response)

    async def metrics(self) -> str:
        """``GET /metrics``: the Prometheus text."""
        try:
            response = await self._http.get(self.base_url + "/metrics")
        except httpx.HTTPError as exc:
            raise connection_failed(self.base_url, exc) from exc
        if response.status_code >= 400:
            raise error_from(response)
        return response.text

    # -- streams ----------------------------------------------------------------------------

    async def watch(
        self,
        task_id: str,
        *,
        after: int | None = None,
        on_reconnect: Notice | None = None,
        reconnect_for: float = DEFAULT_RECONNECT_FOR,
    ) -> AsyncIterator[TaskEvent]:
        """The task's events, each exactly once, in order, across reconnections and server
        restarts (see :meth:`taskcell.client.Client.watch`)."""
        cursor = WatchCursor(after)
        failing_since: float | None = None
        backoff = 0.2
        while True:
            cursor.begin()
            try:
                async for event in self._one_stream(task_id, cursor):
                    yield event
                reason = "the stream ended"
                if cursor.may_stop(await self._status(task_id)):
                    return
                failing_since = None
            except (httpx.HTTPError, ConnectionFailed) as exc:
                failure = (
                    connection_failed(self.base_url, exc)
                    if isinstance(exc, httpx.HTTPError)
                    else exc
                )
                reason = str(failure)
                now = time.monotonic()
                failing_since = failing_since if failing_since is not None else now
                if cursor.new_in_stream:
                    failing_since = now
                if now - failing_since > reconnect_for:
                    raise failure from exc
            if on_reconnect is not None:
                on_reconnect(reason)
            if cursor.new_in_stream:
                backoff = 0.2
            else:
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _one_stream(self, task_id: str, cursor: WatchCursor) -> AsyncIterator[TaskEvent]:
        async with self._http.stream(
            "GET",
            task_path(task_id, "events"),
            params=cursor.params(),
            headers=cursor.headers(),
            timeout=STREAM_TIMEOUT,
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                raise error_from(response, about_task=True)
            async for event in _events(response):
                if cursor.take(event):
                    yield event

    async def _status(self, task_id: str) -> str | None:
        data = await self.send(_calls.get_task_raw(task_id))
        status = data.get("status") if isinstance(data, dict) else None
        return str(status) if status is not None else None

    async def stream(
        self,
        query: str,
        agent: str,
        *,
        title: str | None = None,
        conversation_id: str | None = None,
        schedule: Schedule | None = None,
        on_reconnect: Notice | None = None,
    ) -> AsyncIterator[TaskEvent]:
        """``POST /agents/stream`` (see :meth:`taskcell.client.Client.stream`)."""
        body = _calls.stream_body(
            query, agent, title=title, conversation_id=conversation_id, schedule=schedule
        )
        last: TaskEvent | None = None
        try:
            async with self._http.stream(
                "POST",
                "/agents/stream",
                json=body,
                headers=stream_headers(None),
                timeout=STREAM_TIMEOUT,
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise error_from(response)
                async for event in _events(response):
                    last = event
                    yield event
                    if event.event == "done":
                        return
        except httpx.HTTPError as exc:
            if last is None:
                raise connection_failed(self.base_url, exc) from exc
            if on_reconnect is not None:
                on_reconnect(str(connection_failed(self.base_url, exc)))
        if last is None:
            return
        async for event in self.watch(last.data.task_id, after=last.seq, on_reconnect=on_reconnect):
            yield event
            if event.event == "done":
                return


class AsyncTasks:
    """``client.tasks`` of an :class:`AsyncClient` (see :class:`taskcell.client.sync.Tasks`)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        query: str,
        *,
        agent: str,
        title: str | None = None,
        conversation_id: str | None = None,
        thread_id: str | None = None,
        schedule: Schedule | None = None,
        run_immediately: bool | None = None,
        max_attempts: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        run_timeout_seconds: int | None = None,
        overlap: str | None = None,
        catchup: str | None = None,
        catchup_window_seconds: int | None = None,
    ) -> Task:
        """``POST /tasks`` (a recurring task when ``schedule`` is given). Never retried."""
        body = _calls.create_body(
            query,
            agent,
            title=title,
            conversation_id=conversation_id,
            thread_id=thread_id,
            schedule=schedule,
            run_immediately=run_immediately,
            max_attempts=max_attempts,
            metadata=metadata,
            run_timeout_seconds=run_timeout_seconds,
            overlap=overlap,
            catchup=catchup,
            catchup_window_seconds=catchup_window_seconds,
        )
        return await self._client.send(_calls.create_task(body))

    async def list(
        self,
        *,
        status: str | None = None,
        pattern: str | None = None,
        agent_name: str | None = None,
        conversation_id: str | None = None,
        user_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Task]:
        """``GET /tasks``: one page of the caller's tasks, newest first."""
        return await self._client.send(
            _calls.list_tasks(
                status=status,
                pattern=pattern,
                agent_name=agent_name,
                conversation_id=conversation_id,
                user_id=user_id,
                limit=limit,
                cursor=cursor,
            )
        )

    def iter(
        self,
        *,
        status: str | None = None,
        pattern: str | None = None,
        agent_name: str | None = None,
        conversation_id: str | None = None,
        user_id: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Task]:
        """Every matching task, newest first, page after page as you iterate."""
        return every_item_async(
            lambda cursor: self.list(
                status=status,
                pattern=pattern,
                agent_name=agent_name,
                conversation_id=conversation_id,
                user_id=user_id,
                limit=page_size,
                cursor=cursor,
            )
        )

    async def get(self, task_id: str) -> Task:
        """``GET /tasks/{id}``."""
        return await self._client.send(_calls.get_task(task_id))

    async def cancel(self, task_id: str) -> CancelResult:
        """``POST /tasks/{id}/cancel``."""
        return await self._client.send(_calls.cancel(task_id))

    async def pause(self, task_id: str, *, note: str | None = None) -> Task:
        """``POST /tasks/{id}/pause``, with an optional ``note`` saying why."""
        return await self._client.send(_calls.pause(task_id, note))

    async def resume(self, task_id: str) -> Task:
        """``POST /tasks/{id}/resume``."""
        return await self._client.send(_calls.resume(task_id))

    async def edit(self, task_id: str, *, if_version: int | None = None, **changes: Any) -> Task:
        """``PATCH /tasks/{id}``: change the fields given as keyword arguments (``title``,
        ``query``, ``schedule_config`` (a :class:`ScheduleConfig` or a dict), ``max_attempts``,
        ``metadata``; a once task only its title and metadata); the others stay. With
        ``if_version`` only while the task still has that version, else a ``Conflict`` (409).
        Answers the task as edited (its ``version`` one higher). Never retried."""
        return await self._client.send(_calls.edit(task_id, changes, if_version=if_version))

    async def run_now(self, task_id: str) -> Run:
        """``POST /tasks/{id}/run``."""
        return await self._client.send(_calls.run_now(task_id))

    async def bulk(
        self,
        action: str,
        *,
        ids: Sequence[str] | None = None,
        filter: Mapping[str, Any] | None = None,
        note: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> BulkOutcome:
        """``POST /tasks:bulk``: see :meth:`taskcell.client.Client.tasks.bulk`."""
        body = _calls.bulk_body(
            action, ids=ids, filter=filter, note=note, limit=limit, cursor=cursor
        )
        return await self._client.send(_calls.bulk(body))

    async def backfill(self, task_id: str, *, start: datetime, end: datetime) -> Backfill:
        """``POST /tasks/{id}/backfill``: run the occurrences of ``[start, end)`` (aware
        datetimes) that have no run yet, in order, under the task's overlap policy (at most
        1,000). A reversed or naive range, or one with more, is a ``ValidationFailed``."""
        return await self._client.send(_calls.backfill(task_id, start, end))

    async def upcoming(self, task_id: str, *, count: int | None = None) -> Upcoming:
        """``GET /tasks/{id}/upcoming``: the next ``count`` (1 to 100, default 5) fire times."""
        return await self._client.send(_calls.upcoming(task_id, count=count))

    async def answer(self, task_id: str, text: str) -> Task:
        """``POST /tasks/{id}/input``."""
        return await self._client.send(_calls.answer(task_id, text))

    async def delete(self, task_id: str) -> DeleteResult:
        """``DELETE /tasks/{id}``."""
        return await self._client.send(_calls.delete(task_id))

    async def runs(
        self, task_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Run]:
        """``GET /tasks/{id}/runs``: one page, newest first."""
        return await self._client.send(_calls.runs(task_id, limit=limit, cursor=cursor))

    def iter_runs(self, task_id: str, *, page_size: int | None = None) -> AsyncIterator[Run]:
        """Every run of the task, newest first."""
        return every_item_async(lambda cursor: self.runs(task_id, limit=page_size, cursor=cursor))


class AsyncAgents:
    """``client.agents`` of an :class:`AsyncClient`."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self) -> builtins.list[Agent]:
        """``GET /agents``, sorted by name."""
        return await self._client.send(_calls.agents())


class AsyncConversations:
    """``client.conversations`` of an :class:`AsyncClient`."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def items(
        self, conversation_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ConversationItem]:
        """``GET /conversations/{id}/items``: one page, oldest first."""
        return await self._client.send(_calls.items(conversation_id, limit=limit, cursor=cursor))

    def iter_items(
        self, conversation_id: str, *, page_size: int | None = None
    ) -> AsyncIterator[ConversationItem]:
        """Every item of the conversation's history, oldest first."""
        return every_item_async(
            lambda cursor: self.items(conversation_id, limit=page_size, cursor=cursor)
        )


class AsyncWebhooks:
    """``client.webhooks`` of an :class:`AsyncClient` (see
    :class:`taskcell.client.sync.Webhooks`)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        url: str,
        *,
        event_types: Sequence[str] | None = None,
        task_id: str | None = None,
        agent_name: str | None = None,
        description: str | None = None,
    ) -> WebhookCreated:
        """``POST /webhooks``: subscribe ``url`` (``event_types`` default ``["*"]``); the
        answer's ``secret`` is shown this once."""
        call = _calls.create_webhook(
            url,
            event_types=event_types,
            task_id=task_id,
            agent_name=agent_name,
            description=description,
        )
        return await self._client.send(call)

    async def list(self, *, user_id: str | None = None) -> builtins.list[Webhook]:
        """``GET /webhooks``: the caller's subscriptions (an admin's: ``user_id``'s or
        everyone's), oldest first, without secrets."""
        return await self._client.send(_calls.list_webhooks(user_id=user_id))

    async def get(self, webhook_id: str) -> Webhook:
        """``GET /webhooks/{id}``."""
        return await self._client.send(_calls.get_webhook(webhook_id))

    async def delete(self, webhook_id: str) -> WebhookDeleted:
        """``DELETE /webhooks/{id}``: the subscription and its deliveries."""
        return await self._client.send(_calls.delete_webhook(webhook_id))

    async def rotate(self, webhook_id: str) -> WebhookSecret:
        """``POST /webhooks/{id}/rotate``: a new signing secret, shown this once."""
        return await self._client.send(_calls.rotate_webhook(webhook_id))

    async def deliveries(
        self, webhook_id: str, *, status: str | None = None, limit: int | None = None
    ) -> builtins.list[WebhookDelivery]:
        """``GET /webhooks/{id}/deliveries``: newest first (``limit`` 1 to 500, default 50)."""
        return await self._client.send(_calls.deliveries(webhook_id, status=status, limit=limit))

    async def redeliver(self, webhook_id: str, delivery_id: str) -> WebhookDelivery:
        """``POST /webhooks/{id}/deliveries/{delivery_id}/redeliver``: send it again now;
        ``Conflict`` while an attempt of it is in flight."""
        return await self._client.send(_calls.redeliver(webhook_id, delivery_id))


__all__ = ["AsyncAgents", "AsyncClient", "AsyncConversations", "AsyncTasks", "AsyncWebhooks"]
