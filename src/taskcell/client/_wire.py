"""What the sync and async clients share: requests as data, answers decoded, SSE lines parsed.

An endpoint is described once as a :class:`Call` (method, path, query, body, whether it is safe
to retry, how to read its ``data``); :class:`~taskcell.client.Client` and
:class:`~taskcell.client.AsyncClient` only send it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from tenacity import (
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from taskcell.client.errors import ApiError, ConnectionFailed, FieldError, error_for_status
from taskcell.client.models import Health, TaskEvent

T = TypeVar("T")

API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
#: The events stream sends a comment at least every 15 s, so a longer silence is a dead link.
STREAM_TIMEOUT = httpx.Timeout(5.0, read=45.0)
#: Connection errors an idempotent call is retried on, this many times in all.
DEFAULT_RETRIES = 3


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request: ``parse`` turns the envelope's ``data`` into the answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    body: Any = None
    #: Sending it twice does what sending it once does: retried on a connection error.
    idempotent: bool = False
    #: A 404 means the task (``TaskNotFound``).
    about_task: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)

    def query(self) -> dict[str, Any]:
        """The query parameters that are set (None leaves a parameter out)."""
        return {k: v for k, v in (self.params or {}).items() if v is not None}


def task_path(task_id: str, *rest: str) -> str:
    """``/tasks/{id}/...`` with the id quoted (an id is never a path of its own)."""
    return "/".join(["/tasks", quote(task_id, safe=""), *rest])


def headers_for(key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def connection_failed(base_url: str, exc: httpx.HTTPError) -> ConnectionFailed:
    """The :class:`ConnectionFailed` for a transport error, said for a person."""
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return ConnectionFailed(f"not a taskcell URL: {base_url!r} (use http://HOST:PORT)")
    if isinstance(exc, httpx.ConnectError):
        return ConnectionFailed(
            f"cannot reach taskcell at {base_url}: is `taskcell serve` running?"
        )
    if isinstance(exc, httpx.TimeoutException):
        return ConnectionFailed(f"taskcell at {base_url} did not answer in time")
    return ConnectionFailed(f"lost the connection to taskcell at {base_url}: {exc}")


def retry_policy(retries: int) -> dict[str, Any]:
    """tenacity arguments: ``retries`` more tries on a transport error, backing off."""
    return {
        "retry": retry_if_exception_type(httpx.TransportError),
        "stop": stop_after_attempt(retries + 1),
        "wait": wait_exponential(multiplier=0.2, max=2.0),
        "reraise": True,
    }


def _field_errors(data: Any) -> list[FieldError]:
    if not isinstance(data, list):
        return []
    return [
        FieldError(str(item.get("field") or "body"), str(item.get("message") or ""))
        for item in data
        if isinstance(item, dict)
    ]


def error_from(response: httpx.Response, *, about_task: bool = False) -> ApiError:
    """The error for an error answer, whether or not it is an envelope."""
    try:
        body = response.json()
    except ValueError:
        body = None
    code = response.status_code
    if isinstance(body, dict):
        msg = body.get("msg") or body.get("detail") or response.reason_phrase
        fields = _field_errors(body.get("data"))
        if not fields and isinstance(body.get("detail"), list):  # a bare FastAPI 422
            msg = "the request is not valid"
            fields = [
                FieldError(
                    ".".join(str(p) for p in item.get("loc", [])), str(item.get("msg") or "")
                )
                for item in body["detail"]
                if isinstance(item, dict)
            ]
        return error_for_status(code, str(msg), fields, about_task=about_task)
    text = " ".join(response.text.split())[:200] or response.reason_phrase
    return error_for_status(code, text, about_task=about_task)


def unwrap(response: httpx.Response, *, about_task: bool = False) -> Any:
    """``data`` from a successful envelope; raise the :class:`ApiError` of an error answer."""
    if response.status_code >= 400:
        raise error_from(response, about_task=about_task)
    try:
        body = response.json()
    except ValueError as exc:
        raise ApiError(response.status_code, "the server's answer is not JSON") from exc
    if isinstance(body, dict) and "code" in body and "data" in body:
        if body["code"] not in (0, None):
            code = int(body["code"])
            msg = str(body.get("msg") or "error")
            raise error_for_status(code, msg, _field_errors(body["data"]), about_task=about_task)
        return body["data"]
    return body


def decode(call: Call[T], response: httpx.Response) -> T:
    return call.parse(unwrap(response, about_task=call.about_task))


def health_of(response: httpx.Response) -> Health:
    """``GET /health``'s checks, from a 200 or from a 503 that carries them."""
    if response.status_code == 503:
        try:
            body = response.json()
        except ValueError:
            body = None
        data = body.get("data") if isinstance(body, dict) else None
        if isinstance(data, dict) and "status" in data:
            return Health.model_validate(data)
    return Health.model_validate(unwrap(response))


@dataclass
class SseMessage:
    """One server-sent event: its ``id``, ``event`` name and ``data`` (lines joined)."""

    id: str | None
    event: str | None
    data: str


class SseParser:
    """Feed it a stream's lines one by one; it hands back each complete message."""

    def __init__(self) -> None:
        self._id: str | None = None
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, raw: str) -> SseMessage | None:
        line = raw.rstrip("\r\n")
        if not line:
            message = None
            if self._data:
                message = SseMessage(self._id, self._event, "\n".join(self._data))
            self._event, self._data = None, []
            return message
        if line.startswith(":"):
            return None  # a comment: the server's keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        elif name == "event":
            self._event = value
        return None

    def end(self) -> SseMessage | None:
        """The last message, if the stream ended without its blank line."""
        if not self._data:
            return None
        message = SseMessage(self._id, self._event, "\n".join(self._data))
        self._data = []
        return message


def iter_sse(lines: Iterable[str]) -> Iterator[SseMessage]:
    """The messages in a stream of SSE lines; comment lines (``:``) are skipped."""
    parser = SseParser()
    for line in lines:
        message = parser.feed(line)
        if message is not None:
            yield message
    last = parser.end()
    if last is not None:
        yield last


def event_of(message: SseMessage) -> TaskEvent | None:
    """The :class:`TaskEvent` a message holds; None for one that is not a task event."""
    try:
        raw = json.loads(message.data)
    except ValueError:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("seq"), int):
        return None
    return TaskEvent.model_validate(raw)


def stream_headers(last_event_id: int | None) -> dict[str, str]:
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    return headers


FINAL = frozenset({"completed", "failed", "cancelled"})


class WatchCursor:
    """Where a watch is: the last ``seq`` it handed out, and whether it may stop.

    A watch ends when the server ends the stream and the task is finished, and either the last
    event was ``done`` or the stream brought nothing new (the resume point was already at the
    end). Anything else (a restart, a dropped connection) is resumed with ``Last-Event-ID``.
    """

    def __init__(self, after: int | None) -> None:
        self.after = after
        self.last: int | None = None
        self.last_event: str | None = None
        self.new_in_stream = 0

    def params(self) -> dict[str, int] | None:
        return {"after": self.after} if self.last is None and self.after is not None else None

    def headers(self) -> dict[str, str]:
        return stream_headers(self.last)

    def begin(self) -> None:
        self.new_in_stream = 0

    def take(self, event: TaskEvent) -> bool:
        """Whether ``event`` is new (an event seen before a reconnection is dropped)."""
        if self.last is not None and event.seq <= self.last:
            return False
        self.last = event.seq
        self.last_event = event.event
        self.new_in_stream += 1
        return True

    def may_stop(self, status: str | None) -> bool:
        """After the stream ended: may the watch end, the task now being in ``status``?"""
        if status not in FINAL:
            return False
        # A stream that ended on history_truncated had nothing left to send (every event of
        # a finished task was removed by retention).
        return self.last_event in ("done", "history_truncated") or self.new_in_stream == 0
