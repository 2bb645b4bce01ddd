"""Follow a task's event stream (``GET /tasks/{id}/events``) and show it live with rich.

:meth:`taskcell.client.Client.watch` reads the stream (resuming a dropped connection with
``Last-Event-ID``, each event once), :class:`~taskcell.cli.watch.WatchState` folds the events and
:class:`rich.live.Live` draws them. Following stops once the task is finished (a recurring
task's stream goes on until Ctrl-C).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.live import Live
from rich.segment import Segment
from rich.text import Text

from taskcell.cli.client import CliClient
from taskcell.cli.common import FINAL_STATUSES
from taskcell.cli.watch import WatchState
from taskcell.client._wire import SseMessage, iter_sse

__all__ = ["Follower", "SseMessage", "Tail", "iter_sse", "watch"]


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
    """Reads a task's events into ``state``; ``notice`` is told of each reconnection."""

    def __init__(self, client: CliClient, state: WatchState, *, notice: Callable[[str], None]):
        self.client = client
        self.state = state
        self.lock = threading.Lock()
        self._notice = notice

    def snapshot(self) -> RenderableType:
        """The state's rendering, taken under the lock (the live display runs in a thread)."""
        with self.lock:
            return self.state.render()

    def run(self, *, after: int | None = None) -> None:
        """Follow until the task is finished; raises ``ApiError`` for an error answer."""
        for event in self.client.api.watch(
            self.state.task_id,
            after=after,
            on_reconnect=lambda reason: self._notice(f"{reason}; reconnecting…"),
        ):
            with self.lock:
                self.state.apply(event.model_dump(mode="json"))
        if not self.state.finished:
            status = self.client.get_task(self.state.task_id).get("status")
            if status in FINAL_STATUSES:
                with self.lock:
                    self.state.status = str(status)


def watch(
    client: CliClient, task_id: str, console: Console, *, after: int | None = None
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
