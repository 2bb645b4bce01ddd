"""A small typed HTTP client for the taskcell API (see docs/api.md), over httpx.

Every JSON answer is an envelope ``{"code", "msg", "data"}``: the client returns ``data`` on
success and raises :class:`ApiError` otherwise. A server that cannot be reached raises
:class:`Unreachable`. Commands open the client with :func:`connect`, which prints either error
in red and exits with status 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.text import Text

from taskcell.cli.common import err_console

JsonObject = dict[str, Any]

API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
#: The events stream sends a comment at least every 15 s, so a longer silence is a dead link.
STREAM_TIMEOUT = httpx.Timeout(5.0, read=45.0)


class CliError(Exception):
    """An error the command line reports to the person in words, then exits."""

    def render(self) -> Text:
        """What to print (in red)."""
        return Text(str(self), style="red")


class ApiError(CliError):
    """The server answered with an error: its HTTP ``status``, ``msg`` and field errors."""

    def __init__(self, status: int, msg: str, fields: list[JsonObject] | None = None) -> None:
        super().__init__(f"{status}: {msg}")
        self.status = status
        self.msg = msg
        self.fields = fields or []

    def render(self) -> Text:
        text = Text(f"error {self.status}: {self.msg}", style="bold red")
        for item in self.fields:
            field = item.get("field") or "(body)"
            text.append(f"\n  • {field}: {item.get('message', '')}", style="red")
        if self.status == 401:
            text.append("\n  pass --key KEY or set TASKCELL_API_KEY", style="dim")
        return text


class Unreachable(CliError):
    """No answer from the server at all (refused, timed out, cut)."""


def _unreachable(base_url: str, exc: httpx.HTTPError) -> Unreachable:
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return Unreachable(f"not a taskcell URL: {base_url!r} (use http://HOST:PORT)")
    if isinstance(exc, httpx.ConnectError):
        return Unreachable(f"cannot reach taskcell at {base_url}: is `taskcell serve` running?")
    if isinstance(exc, httpx.TimeoutException):
        return Unreachable(f"taskcell at {base_url} did not answer in time")
    return Unreachable(f"lost the connection to taskcell at {base_url}: {exc}")


def _field_errors(data: Any) -> list[JsonObject]:
    if not isinstance(data, list):
        return []
    return [item for item in data if isinstance(item, dict)]


def error_from_response(response: httpx.Response) -> ApiError:
    """The :class:`ApiError` for an error answer, whether or not it is an envelope."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        msg = body.get("msg") or body.get("detail") or response.reason_phrase
        fields = _field_errors(body.get("data"))
        if not fields and isinstance(body.get("detail"), list):  # a bare FastAPI 422
            msg = "the request is not valid"
            fields = [
                {"field": ".".join(str(p) for p in d.get("loc", [])), "message": d.get("msg")}
                for d in _field_errors(body["detail"])
            ]
        return ApiError(response.status_code, str(msg), fields)
    text = " ".join(response.text.split())[:200] or response.reason_phrase
    return ApiError(response.status_code, text)


def unwrap(response: httpx.Response) -> Any:
    """``data`` from a successful envelope; raise :class:`ApiError` for an error answer."""
    if response.status_code >= 400:
        raise error_from_response(response)
    try:
        body = response.json()
    except ValueError as exc:
        raise ApiError(response.status_code, "the server's answer is not JSON") from exc
    if isinstance(body, dict) and "code" in body and "data" in body:
        if body["code"] not in (0, None):
            raise ApiError(int(body["code"]), str(body.get("msg") or "error"))
        return body["data"]
    return body


class TaskcellClient:
    """The taskcell API at ``base_url`` (e.g. ``http://127.0.0.1:8000``), as the caller ``key``."""

    def __init__(
        self,
        base_url: str,
        key: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(
            base_url=self.base_url + API_PREFIX,
            headers=headers,
            timeout=DEFAULT_TIMEOUT,
            transport=transport,
        )

    def __enter__(self) -> TaskcellClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one request and return the envelope's ``data``."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, json=json, params=clean)
        except httpx.HTTPError as exc:
            raise _unreachable(self.base_url, exc) from exc
        return unwrap(response)

    # -- endpoints --------------------------------------------------------------------------

    def create_task(self, body: JsonObject) -> JsonObject:
        """POST /tasks."""
        result: JsonObject = self.request("POST", "/tasks", json=body)
        return result

    def list_tasks(self, **params: Any) -> JsonObject:
        """GET /tasks: one page, ``{"items", "next_cursor"}``."""
        result: JsonObject = self.request("GET", "/tasks", params=params)
        return result

    def iter_tasks(self, *, limit: int | None = None, **params: Any) -> Iterator[JsonObject]:
        """Every task matching ``params``, following ``next_cursor`` page after page."""
        cursor: str | None = None
        while True:
            page = self.list_tasks(limit=limit, cursor=cursor, **params)
            yield from page.get("items") or []
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def get_task(self, task_id: str) -> JsonObject:
        """GET /tasks/{id}."""
        result: JsonObject = self.request("GET", f"/tasks/{task_id}")
        return result

    def list_runs(self, task_id: str, *, limit: int | None = None) -> JsonObject:
        """GET /tasks/{id}/runs: one page, ``{"items", "next_cursor"}``."""
        result: JsonObject = self.request("GET", f"/tasks/{task_id}/runs", params={"limit": limit})
        return result

    def action(self, task_id: str, name: str, body: JsonObject | None = None) -> JsonObject:
        """POST /tasks/{id}/{name}: cancel, pause, resume, run, input."""
        result: JsonObject = self.request("POST", f"/tasks/{task_id}/{name}", json=body)
        return result

    def delete_task(self, task_id: str) -> JsonObject:
        """DELETE /tasks/{id}."""
        result: JsonObject = self.request("DELETE", f"/tasks/{task_id}")
        return result

    def health(self) -> JsonObject:
        """GET /health: the checks and the live processes, also when it answers 503."""
        try:
            response = self._http.get("/health")
        except httpx.HTTPError as exc:
            raise _unreachable(self.base_url, exc) from exc
        if response.status_code == 503:
            with contextlib.suppress(ValueError):
                body = response.json()
                data = body.get("data") if isinstance(body, dict) else None
                if isinstance(data, dict):
                    return data
        result: JsonObject = unwrap(response)
        return result

    def agents(self) -> list[JsonObject]:
        """GET /agents."""
        result = self.request("GET", "/agents")
        if isinstance(result, dict):  # tolerate {"items": [...]}
            result = result.get("items") or []
        return list(result)

    @contextlib.contextmanager
    def event_lines(
        self, task_id: str, *, after: int | None = None, last_event_id: int | None = None
    ) -> Iterator[Iterator[str]]:
        """GET /tasks/{id}/events as an open stream of text lines.

        ``after`` is sent as ``?after=N``, ``last_event_id`` as the ``Last-Event-ID`` header.
        Raises :class:`ApiError` for an error answer and :class:`Unreachable` if the
        connection cannot be made or breaks (also while the lines are being read).
        """
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        params = {"after": after} if after is not None else None
        url = f"/tasks/{task_id}/events"
        try:
            with self._http.stream(
                "GET", url, params=params, headers=headers, timeout=STREAM_TIMEOUT
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from_response(response)
                yield response.iter_lines()
        except httpx.HTTPError as exc:
            raise _unreachable(self.base_url, exc) from exc


def report(error: CliError, out: Console | None = None) -> None:
    """Print ``error`` in red on stderr."""
    (out or err_console).print(error.render())


@contextlib.contextmanager
def connect(url: str, key: str | None) -> Iterator[TaskcellClient]:
    """A client for a command: errors are printed in red and end the command with status 1."""
    try:
        with TaskcellClient(url, key) as client:
            yield client
    except CliError as exc:
        report(exc)
        raise typer.Exit(1) from None
