"""Follow a task's event stream (``GET /tasks/{id}/events``) and show it live with rich.

The SSE lines are parsed here (:func:`iter_sse`), folded by :class:`~taskcell.cli.watch.WatchState`
and drawn by :class:`rich.live.Live`. A dropped connection is resumed with ``Last-Event-ID``
(the last ``seq`` seen); events already seen are skipped. Following stops after a ``done``
event once the task is finished (a recurring task's stream goes on until Ctrl-C).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.live import Live
from rich.segment import Segment
from rich.text import Text

from taskcell.cli.client import JsonObject, TaskcellClient, Unreachable
from taskcell.cli.common import FINAL_STATUSES
from taskcell.cli.watch import WatchState

MAX_BACKOFF = 5.0


@dataclass
class SseMessage:
    """One server-sent event: its ``id``, ``event`` name and ``data`` (lines joined)."""

    id: str | None
    event: str | None
    data: str


def iter_sse(lines: Iterable[str]) -> Iterator[SseMessage]:
    """The messages in a stream of SSE lines; comment lines (``:``) are skipped."""
    ident: str | None = None
    name: str | None = None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SseMessage(ident, name, "\n".join(data))
            name, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "id":
            ident = value
        elif field == "event":
            name = value
    if data:
        yield SseMessage(ident, name, "\n".join(data))


class Tail:
    """A renderable showing the last lines of another that fit the screen (newest in view)."""

    def __init__(self, source: Callable[[], RenderableType]) -> None:
        self._source = source

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(self._source(), options.update(height=None), pad=False)
        room = max(options.max_height - 1, 3)
        if len(lines) > room:
            hidden = len(lines) - room + 1
            yield Text(f"… {hidden} line(s) above", style="dim")
            yield Segment.line()
            lines = lines[-(room - 1) :]
        for line in lines:
            yield from line
            yield Segment.line()


class Follower:
    """Reads a task's events into ``state``, reconnecting when the stream drops."""

    def __init__(
        self,
        client: TaskcellClient,
        state: WatchState,
        *,
        notice: Callable[[str], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.state = state
        self.lock = threading.Lock()
        self._notice = notice
        self._sleep = sleep

    def snapshot(self) -> RenderableType:
        """The state's rendering, taken under the lock (the live display runs in a thread)."""
        with self.lock:
            return self.state.render()

    def run(self, *, after: int | None = None) -> None:
        """Follow until the task is finished; raises ``ApiError`` for an error answer."""
        backoff = 0.5
        while True:
            resume = self.state.last_seq
            try:
                with self.client.event_lines(
                    self.state.task_id,
                    after=after if resume is None else None,
                    last_event_id=resume,
                ) as lines:
                    for message in iter_sse(lines):
                        backoff = 0.5
                        if self._take(message):
                            return
                if self._task_finished():
                    return
                self._notice("the stream ended; reconnecting…")
            except Unreachable as exc:
                self._notice(f"{exc}; reconnecting…")
                self._sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _take(self, message: SseMessage) -> bool:
        """Apply one message; True when following should stop."""
        try:
            event: JsonObject = json.loads(message.data)
        except ValueError:
            return False
        seq = event.get("seq")
        last = self.state.last_seq
        if isinstance(seq, int) and last is not None and seq <= last:
            return False  # already seen before the reconnection
        with self.lock:
            self.state.apply(event)
        return event.get("event") == "done" and self._task_finished()

    def _task_finished(self) -> bool:
        if self.state.finished:
            return True
        status = self.client.get_task(self.state.task_id).get("status")
        if status in FINAL_STATUSES:
            with self.lock:
                self.state.status = str(status)
            return True
        return False


def watch(
    client: TaskcellClient, task_id: str, console: Console, *, after: int | None = None
) -> WatchState:
    """Show ``task_id``'s events live until it is finished; print the whole transcript after.

    ``KeyboardInterrupt`` stops the watch (the transcript is still printed) and is re-raised.
    """
    task = client.get_task(task_id)
    state = WatchState(
        task_id=str(task.get("task_id") or task_id),
        title=str(task.get("title") or task.get("query") or ""),
        agent_name=str(task.get("agent_name") or ""),
        pattern=str(task.get("pattern") or "once"),
        status=task.get("status"),
    )
    live = Live(console=console, transient=True, refresh_per_second=10, redirect_stderr=False)
    follower = Follower(
        client, state, notice=lambda text: live.console.print(text, style="yellow", markup=False)
    )
    live.update(Tail(follower.snapshot))
    try:
        with live:
            follower.run(after=after)
    finally:
        console.print(follower.snapshot())
    return state
