"""The command line's view of :mod:`taskcell.client`: answers kept as plain JSON for display.

Commands open a :class:`CliClient` with :func:`connect`, which prints any error in red and
exits with status 1: the server's error answers (:class:`taskcell.client.ApiError`, with each
field it named), a server that cannot be reached (:class:`taskcell.client.ConnectionFailed`),
and the command line's own :class:`CliError`. The endpoints, retries, errors, paging and the
resuming event stream are the public client's; only the decoding differs: a command shows
whatever the server answered, field by field, so it keeps the JSON as it came.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from taskcell.cli.common import err_console
from taskcell.client import ApiError, Client, ConnectionFailed, TaskcellError, _calls
from taskcell.client._wire import Call, task_path

JsonObject = dict[str, Any]


class CliError(Exception):
    """An error the command line reports to the person in words, then exits."""


def render(error: Exception) -> Text:
    """What to print (in red) for ``error``."""
    if not isinstance(error, ApiError):
        return Text(str(error), style="red")
    text = Text(f"error {error.code}: {error.msg}", style="bold red")
    for item in error.fields:
        text.append(f"\n  • {item.field or '(body)'}: {item.message}", style="red")
    if error.code == 401:
        text.append("\n  pass --key KEY or set TASKCELL_API_KEY", style="dim")
    return text


def _json(call: Call[Any]) -> Call[Any]:
    """The same request, its ``data`` kept as JSON."""
    return dataclasses.replace(call, parse=lambda data: data)


class CliClient:
    """The endpoints the commands use, answering JSON; :attr:`api` is the typed client."""

    def __init__(self, base_url: str, key: str | None) -> None:
        self.api = Client(base_url, key or "")
        self.base_url = self.api.base_url

    def close(self) -> None:
        self.api.close()

    def _send(self, call: Call[Any]) -> Any:
        return self.api.send(_json(call))

    def create_task(self, body: JsonObject) -> JsonObject:
        """POST /tasks."""
        result: JsonObject = self._send(_calls.create_task(body))
        return result

    def list_tasks(self, **params: Any) -> JsonObject:
        """GET /tasks: one page, ``{"items", "next_cursor"}``."""
        result: JsonObject = self._send(_calls.list_tasks(**params))
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
        result: JsonObject = self._send(_calls.get_task(task_id))
        return result

    def list_runs(self, task_id: str, *, limit: int | None = None) -> JsonObject:
        """GET /tasks/{id}/runs: one page, ``{"items", "next_cursor"}``."""
        result: JsonObject = self._send(_calls.runs(task_id, limit=limit))
        return result

    def upcoming(self, task_id: str, *, count: int | None = None) -> JsonObject:
        """GET /tasks/{id}/upcoming: ``{"timezone", "schedule", "paused", "items"}``."""
        result: JsonObject = self._send(_calls.upcoming_json(task_id, count=count))
        return result

    def action(self, task_id: str, name: str, body: JsonObject | None = None) -> JsonObject:
        """POST /tasks/{id}/{name}: cancel, pause, resume, run, input."""
        actions: dict[str, Callable[[], Call[Any]]] = {
            "cancel": lambda: _calls.cancel(task_id),
            "pause": lambda: _calls.pause(task_id, (body or {}).get("note")),
            "resume": lambda: _calls.resume(task_id),
            "run": lambda: _calls.run_now(task_id),
            "input": lambda: _calls.answer(task_id, str((body or {}).get("text", ""))),
        }
        make = actions.get(name)
        call = (
            make()
            if make is not None
            else Call("POST", task_path(task_id, name), lambda d: d, body=body, about_task=True)
        )
        result: JsonObject = self._send(call)
        return result

    def bulk(self, body: JsonObject) -> JsonObject:
        """POST /tasks:bulk: ``{"action", "succeeded", "failed", "results", "next_cursor"}``."""
        result: JsonObject = self._send(_calls.bulk(body))
        return result

    def edit_task(
        self, task_id: str, changes: JsonObject, *, if_version: int | None = None
    ) -> JsonObject:
        """PATCH /tasks/{id}."""
        result: JsonObject = self._send(_calls.edit(task_id, changes, if_version=if_version))
        return result

    def delete_task(self, task_id: str) -> JsonObject:
        """DELETE /tasks/{id}."""
        result: JsonObject = self._send(_calls.delete(task_id))
        return result

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Any other endpoint (``path`` under /api/v1), its ``data`` as JSON (webhooks)."""
        return self._send(Call(method, path, lambda data: data, params=params, body=body))

    def health(self) -> JsonObject:
        """GET /health: the checks and the live processes, also when it answers 503."""
        return self.api.health().model_dump(mode="json")

    def agents(self) -> list[JsonObject]:
        """GET /agents."""
        result = self._send(_calls.agents())
        if isinstance(result, dict):  # tolerate {"items": [...]}
            result = result.get("items") or []
        return list(result)


def report(error: Exception, out: Console | None = None) -> None:
    """Print ``error`` in red on stderr."""
    (out or err_console).print(render(error))


@contextlib.contextmanager
def connect(url: str, key: str | None) -> Iterator[CliClient]:
    """A client for a command: errors are printed in red and end the command with status 1."""
    client = CliClient(url, key)
    try:
        yield client
    except (CliError, TaskcellError) as exc:
        report(exc)
        raise typer.Exit(1) from None
    finally:
        client.close()


__all__ = ["ApiError", "CliClient", "CliError", "ConnectionFailed", "JsonObject", "connect"]
