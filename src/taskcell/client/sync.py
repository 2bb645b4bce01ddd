"""``Client``: the taskcell HTTP API from ordinary (blocking) Python code, over httpx.

>>> with Client("http://127.0.0.1:8000", key="KEY") as client:   # doctest: +SKIP
...     task = client.tasks.create("hello there", agent="echo")
...     for event in client.watch(task.task_id):
...         print(event.event, event.content or "")
"""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import httpx
from tenacity import Retrying

from taskcell.client import _calls
from taskcell.client._calls import Schedule
from taskcell.client._paging import every_item
from taskcell.client._wire import (
    API_PREFIX,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    STREAM_TIMEOUT,
    Call,
    WatchCursor,
    connection_failed,
    decode,
    error_from,
    event_of,
    headers_for,
    health_of,
    iter_sse,
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

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"
#: How long a watch keeps trying to reconnect before it raises :class:`ConnectionFailed`.
DEFAULT_RECONNECT_FOR = 60.0
MAX_BACKOFF = 5.0

Notice = Callable[[str], None]


def default_url() -> str:
    """``$TASKCELL_URL``, else http://127.0.0.1:8000."""
    return os.environ.get("TASKCELL_URL") or DEFAULT_URL


def default_key() -> str | None:
    """``$TASKCELL_API_KEY``, else no key."""
    return os.environ.get("TASKCELL_API_KEY") or None


class Client:
    """The taskcell API at ``base_url`` (default ``$TASKCELL_URL`` or http://127.0.0.1:8000), as
    the caller whose key is ``key`` (default ``$TASKCELL_API_KEY``; ``""`` for no key).

    Methods answer typed models (:mod:`taskcell.client.models`) and raise
    :class:`~taskcell.client.errors.ApiError` subclasses for error answers and
    :class:`~taskcell.client.errors.ConnectionFailed` when the server does not answer. Calls
    that are safe to repeat (reads, cancel, pause, resume) are retried ``retries`` times on a
    connection error; the others (create, run now, answer, delete) are sent once.

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        key: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = (base_url or default_url()).rstrip("/")
        self._retries = retries
        self._http = httpx.Client(
            base_url=self.base_url + API_PREFIX,
            headers=headers_for(default_key() if key is None else key),
            timeout=timeout,
            transport=transport,
        )
        self.tasks = Tasks(self)
        self.agents = Agents(self)
        self.conversations = Conversations(self)
        self.webhooks = Webhooks(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    # -- sending ----------------------------------------------------------------------------

    def send(self, call: Call[T]) -> T:
        """Send one :class:`~taskcell.client._wire.Call` and decode its answer."""

        def once() -> httpx.Response:
            return self._http.request(
                call.method,
                call.path,
                params=call.query(),
                json=call.body,
                headers=dict(call.headers),
            )

        try:
            if call.idempotent and self._retries > 0:
                response = Retrying(**retry_policy(self._retries))(once)
            else:
                response = once()
        except httpx.HTTPError as exc:
            raise connection_failed(self.base_url, exc) from exc
        return decode(call, response)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Any endpoint under ``/api/v1`` (``path`` like ``/tasks``): the envelope's ``data`` as
        plain JSON, for fields or endpoints newer than this client. Errors as for every call;
        retried on a connection error when ``idempotent`` (default: for GET)."""
        safe = method.upper() == "GET" if idempotent is None else idempotent
        return self.send(Call(method.upper(), path, lambda d: d, params, json, safe))

    # -- the whole service ------------------------------------------------------------------

    def health(self) -> Health:
        """``GET /health``: the checks and the live processes, also when it answers 503
        (degraded or failing)."""
        try:
            response = self._http.get("/health")
        except httpx.HTTPError as exc:
            raise connection_failed(self.base_url, exc) from exc
        return health_of(response)

    def metrics(self) -> str:
        """``GET /metrics``: the Prometheus text."""
        try:
            response = self._http.get(self.base_url + "/metrics")
        except httpx.HTTPError as exc:
            raise connection_failed(self.base_url, exc) from exc
        if response.status_code >= 400:
            raise error_from(response)
        return response.text

    # -- streams ----------------------------------------------------------------------------

    def watch(
        self,
        task_id: str,
        *,
        after: int | None = None,
        on_reconnect: Notice | None = None,
        reconnect_for: float = DEFAULT_RECONNECT_FOR,
    ) -> Iterator[TaskEvent]:
        """The task's events (``GET /tasks/{id}/events``), each exactly once, in order.

        Starts after ``after`` (default: from the first event). When the connection drops or
        the server restarts, it reconnects with ``Last-Event-ID`` (``on_reconnect`` is told
        why), so nothing is lost or repeated. It ends when the task is finished and its
        ``done`` was read; a recurring task's stream goes on across its runs until it is
        cancelled (stop iterating to stop watching). Raises
        :class:`~taskcell.client.errors.TaskNotFound` for an unknown task and
        :class:`~taskcell.client.errors.ConnectionFailed` after ``reconnect_for`` seconds
        without reaching the server.
        """
        cursor = WatchCursor(after)
        failing_since: float | None = None
        backoff = 0.2
        while True:
            cursor.begin()
            try:
                yield from self._one_stream(task_id, cursor)
                reason = "the stream ended"
                if cursor.may_stop(self._status(task_id)):
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
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _one_stream(self, task_id: str, cursor: WatchCursor) -> Iterator[TaskEvent]:
        with self._http.stream(
            "GET",
            task_path(task_id, "events"),
            params=cursor.params(),
            headers=cursor.headers(),
            timeout=STREAM_TIMEOUT,
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise error_from(response, about_task=True)
            for message in iter_sse(response.iter_lines()):
                event = event_of(message)
                if event is not None and cursor.take(event):
                    yield event

    def _status(self, task_id: str) -> str | None:
        data = self.send(_calls.get_task_raw(task_id))
        status = data.get("status") if isinstance(data, dict) else None
        return str(status) if status is not None else None

    def stream(
        self,
        query: str,
        agent: str,
        *,
        title: str | None = None,
        conversation_id: str | None = None,
        schedule: Schedule | None = None,
        on_reconnect: Notice | None = None,
    ) -> Iterator[TaskEvent]:
        """``POST /agents/stream``: create a task and stream its events up to its first
        ``done`` (a once task's end; a recurring task's creation). A connection lost midway is
        resumed on ``GET /tasks/{id}/events`` from the last event read."""
        body = _calls.stream_body(
            query, agent, title=title, conversation_id=conversation_id, schedule=schedule
        )
        last: TaskEvent | None = None
        try:
            with self._http.stream(
                "POST",
                "/agents/stream",
                json=body,
                headers=stream_headers(None),
                timeout=STREAM_TIMEOUT,
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from(response)
                for message in iter_sse(response.iter_lines()):
                    event = event_of(message)
                    if event is None:
                        continue
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
        for event in self.watch(last.data.task_id, after=last.seq, on_reconnect=on_reconnect):
            yield event
            if event.event == "done":
                return


class Tasks:
    """``client.tasks``: create, read and act on tasks."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
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
        """``POST /tasks``: ask ``agent``; with ``schedule`` (a :class:`ScheduleConfig` or a
        dict: ``interval_minutes``, or ``daily_time`` "HH:MM" with an IANA ``timezone``) it is
        a recurring task. Never retried (a lost answer could mean the task exists)."""
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
        return self._client.send(_calls.create_task(body))

    def list(
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
        return self._client.send(
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
    ) -> Iterator[Task]:
        """Every matching task, newest first, fetching page after page as you iterate."""
        return every_item(
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

    def get(self, task_id: str) -> Task:
        """``GET /tasks/{id}``."""
        return self._client.send(_calls.get_task(task_id))

    def cancel(self, task_id: str) -> CancelResult:
        """``POST /tasks/{id}/cancel``: the run, the schedule, a wait for input; 409 when it
        already completed or failed."""
        return self._client.send(_calls.cancel(task_id))

    def pause(self, task_id: str, *, note: str | None = None) -> Task:
        """``POST /tasks/{id}/pause``: a recurring task fires no scheduled runs until
        resumed; ``note`` (one line, up to 500 characters) says why, until then."""
        return self._client.send(_calls.pause(task_id, note))

    def resume(self, task_id: str) -> Task:
        """``POST /tasks/{id}/resume``."""
        return self._client.send(_calls.resume(task_id))

    def edit(self, task_id: str, *, if_version: int | None = None, **changes: Any) -> Task:
        """``PATCH /tasks/{id}``: change the fields given as keyword arguments (``title``,
        ``query``, ``schedule_config`` (a :class:`ScheduleConfig` or a dict), ``max_attempts``,
        ``metadata``; a once task only its title and metadata); the others stay. With
        ``if_version`` only while the task still has that version, else a ``Conflict`` (409).
        Answers the task as edited (its ``version`` one higher). Never retried."""
        return self._client.send(_calls.edit(task_id, changes, if_version=if_version))

    def run_now(self, task_id: str) -> Run:
        """``POST /tasks/{id}/run``: one extra run of a recurring task now."""
        return self._client.send(_calls.run_now(task_id))

    def bulk(
        self,
        action: str,
        *,
        ids: Sequence[str] | None = None,
        filter: Mapping[str, Any] | None = None,
        note: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> BulkOutcome:
        """``POST /tasks:bulk``: ``action`` (pause, resume, cancel or delete) on the tasks
        ``ids`` (up to 1,000), or on those ``filter`` chooses (``status``, ``pattern``,
        ``agent_name``, ``conversation_id``; an admin's ``user_id``) up to ``limit``; a result
        per task. With a filter, the answer's ``next_cursor`` goes on as ``cursor``."""
        body = _calls.bulk_body(
            action, ids=ids, filter=filter, note=note, limit=limit, cursor=cursor
        )
        return self._client.send(_calls.bulk(body))

    def backfill(self, task_id: str, *, start: datetime, end: datetime) -> Backfill:
        """``POST /tasks/{id}/backfill``: run the occurrences of ``[start, end)`` (aware
        datetimes) that have no run yet, in order, under the task's overlap policy (at most
        1,000). A reversed or naive range, or one with more, is a ``ValidationFailed``."""
        return self._client.send(_calls.backfill(task_id, start, end))

    def upcoming(self, task_id: str, *, count: int | None = None) -> Upcoming:
        """``GET /tasks/{id}/upcoming``: the next ``count`` (1 to 100, default 5) fire times of
        a recurring task, in UTC and in its schedule's zone. A once task is a ``Conflict``."""
        return self._client.send(_calls.upcoming(task_id, count=count))

    def answer(self, task_id: str, text: str) -> Task:
        """``POST /tasks/{id}/input``: answer the question of a task that is ``waiting_input``."""
        return self._client.send(_calls.answer(task_id, text))

    def delete(self, task_id: str) -> DeleteResult:
        """``DELETE /tasks/{id}``: a finished task, with its runs, events and history."""
        return self._client.send(_calls.delete(task_id))

    def runs(
        self, task_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Run]:
        """``GET /tasks/{id}/runs``: one page of the task's runs, newest first."""
        return self._client.send(_calls.runs(task_id, limit=limit, cursor=cursor))

    def iter_runs(self, task_id: str, *, page_size: int | None = None) -> Iterator[Run]:
        """Every run of the task, newest first."""
        return every_item(lambda cursor: self.runs(task_id, limit=page_size, cursor=cursor))


class Agents:
    """``client.agents``: the agents tasks can be given to."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> builtins.list[Agent]:
        """``GET /agents``, sorted by name."""
        return self._client.send(_calls.agents())


class Conversations:
    """``client.conversations``: a conversation's history."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def items(
        self, conversation_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ConversationItem]:
        """``GET /conversations/{id}/items``: one page of its history, oldest first."""
        return self._client.send(_calls.items(conversation_id, limit=limit, cursor=cursor))

    def iter_items(
        self, conversation_id: str, *, page_size: int | None = None
    ) -> Iterator[ConversationItem]:
        """Every item of the conversation's history, oldest first."""
        return every_item(
            lambda cursor: self.items(conversation_id, limit=page_size, cursor=cursor)
        )


class Webhooks:
    """``client.webhooks``: subscriptions to the caller's task events, and their
    deliveries (docs/api.md, "Webhooks")."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
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
        return self._client.send(call)

    def list(self, *, user_id: str | None = None) -> builtins.list[Webhook]:
        """``GET /webhooks``: the caller's subscriptions (an admin's: ``user_id``'s or
        everyone's), oldest first, without secrets."""
        return self._client.send(_calls.list_webhooks(user_id=user_id))

    def get(self, webhook_id: str) -> Webhook:
        """``GET /webhooks/{id}``."""
        return self._client.send(_calls.get_webhook(webhook_id))

    def delete(self, webhook_id: str) -> WebhookDeleted:
        """``DELETE /webhooks/{id}``: the subscription and its deliveries."""
        return self._client.send(_calls.delete_webhook(webhook_id))

    def rotate(self, webhook_id: str) -> WebhookSecret:
        """``POST /webhooks/{id}/rotate``: a new signing secret, shown this once."""
        return self._client.send(_calls.rotate_webhook(webhook_id))

    def deliveries(
        self, webhook_id: str, *, status: str | None = None, limit: int | None = None
    ) -> builtins.list[WebhookDelivery]:
        """``GET /webhooks/{id}/deliveries``: newest first (``limit`` 1 to 500, default 50)."""
        return self._client.send(_calls.deliveries(webhook_id, status=status, limit=limit))

    def redeliver(self, webhook_id: str, delivery_id: str) -> WebhookDelivery:
        """``POST /webhooks/{id}/deliveries/{delivery_id}/redeliver``: send it again now;
        ``Conflict`` while an attempt of it is in flight."""
        return self._client.send(_calls.redeliver(webhook_id, delivery_id))


__all__ = ["Agents", "Client", "Conversations", "Tasks", "Webhooks"]
