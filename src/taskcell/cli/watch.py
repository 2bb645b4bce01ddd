"""What ``taskcell tasks watch`` shows: a task's events folded into a state, then rendered.

:class:`WatchState` is pure: ``state.apply(event)`` for each event of docs/api.md's stream, then
``state.render()`` for a rich renderable. Nothing here talks to the network (see ``follow.py``).

- ``message_chunk`` events merge by ``item_id`` into one growing message; a ``message`` with the
  same ``item_id`` replaces the chunks' text (a repeat of the last message is dropped);
- reasoning is shown dimmed while it streams and folded to one line once completed;
- a tool call shows its name, then its result, merged by ``tool_call_id``;
- a component keeps its ``item_id`` when updated, so it is replaced in place;
- ``plan_require_user_input`` shows the question and how to answer it;
- ``history_truncated`` (retention removed the oldest events) says "older events were removed";
- the last line is the task's status.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from taskcell.cli.common import FINAL_STATUSES, short_id, status_text, trimmed, when

JsonObject = dict[str, Any]

#: The task status each event implies.
STATUS_OF_EVENT = {
    "task_started": "running",
    "plan_require_user_input": "waiting_input",
    "task_completed": "completed",
    "task_failed": "failed",
    "task_cancelled": "cancelled",
}
ACTIVITY_EVENTS = frozenset(
    {"message_chunk", "reasoning_started", "reasoning", "tool_call_started", "tool_call_completed"}
)
FAILURE_EVENTS = frozenset({"task_failed", "plan_failed", "system_failed"})
REASONING_LINES = 6


@dataclass
class Item:
    """One thing shown: a message, reasoning, a tool call, a component, a question, a failure."""

    kind: str
    key: str
    role: str = "agent"
    agent: str | None = None
    text: str = ""
    done: bool = False
    name: str = ""
    result: str | None = None
    content: Any = None


def _payload(event: JsonObject) -> JsonObject:
    data = event.get("data") or {}
    payload = data.get("payload") if isinstance(data, dict) else None
    return payload if isinstance(payload, dict) else {}


def _content_text(payload: JsonObject) -> str:
    content = payload.get("content")
    if content is None:
        return ""
    return content if isinstance(content, str) else json.dumps(content)


def parse_component(content: Any) -> Any:
    """A component's ``content``: a JSON string, parsed when it parses."""
    if isinstance(content, str):
        try:
            return json.loads(content)
        except ValueError:
            return content
    return content


@dataclass
class WatchState:
    """A task's events folded into what a person should see. Feed it with :meth:`apply`."""

    task_id: str
    title: str = ""
    agent_name: str = ""
    pattern: str = "once"
    status: str | None = None
    last_seq: int | None = None
    runs_done: int = 0
    items: dict[str, Item] = field(default_factory=dict)
    _tool_keys: dict[str, str] = field(default_factory=dict)
    _open_reasoning: str | None = None
    _last_message: str | None = None

    # -- folding ------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """Whether the events say the task reached a final status."""
        return self.status in FINAL_STATUSES

    def apply(self, event: JsonObject) -> None:
        """Fold one event (``{"seq", "event", "data", "created_at"}``) into the state."""
        seq = event.get("seq")
        if isinstance(seq, int):
            self.last_seq = seq if self.last_seq is None else max(self.last_seq, seq)
        name = str(event.get("event") or "")
        raw = event.get("data")
        data: JsonObject = raw if isinstance(raw, dict) else {}
        key = str(data.get("item_id") or f"seq-{seq}")
        self.agent_name = self.agent_name or str(data.get("agent_name") or "")
        if self.status == "waiting_input" and name in ACTIVITY_EVENTS:
            self.status = "running"  # answered: the agent goes on
        self.status = STATUS_OF_EVENT.get(name, self.status)
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, key, data, _payload(event))
        elif name in FAILURE_EVENTS or (name == "task_cancelled" and _payload(event)):
            self._failure(key, name, _payload(event))
        elif name == "done":
            self.runs_done += 1
        elif name == "thread_started" and not self.title:
            self.title = _content_text(_payload(event))

    def _item(self, key: str, kind: str, data: JsonObject) -> Item:
        item = self.items.get(key)
        if item is None:
            item = Item(
                kind=kind,
                key=key,
                role=str(data.get("role") or "agent"),
                agent=data.get("agent_name"),
            )
            self.items[key] = item
        return item

    def _chunk(self, key: str, data: JsonObject, payload: JsonObject) -> None:
        item = self._item(key, "message", data)
        item.text += _content_text(payload)
        self._last_message = key

    def _message(self, key: str, data: JsonObject, payload: JsonObject) -> None:
        text = _content_text(payload)
        last = self.items.get(self._last_message or "")
        role = str(data.get("role") or "agent")
        if (
            key not in self.items
            and last is not None
            and last.role == role
            and last.text.strip() == text.strip()
        ):
            return  # the whole answer repeated after its chunks
        item = self._item(key, "message", data)
        item.text = text or item.text
        item.done = True
        self._last_message = key

    def _reasoning(self, key: str, data: JsonObject, payload: JsonObject, *, end: bool) -> None:
        if key not in self.items and self._open_reasoning is not None:
            key = self._open_reasoning
        item = self._item(key, "reasoning", data)
        item.text += _content_text(payload)
        item.done = end
        self._open_reasoning = None if end else key

    def _tool(self, key: str, data: JsonObject, payload: JsonObject, *, end: bool) -> None:
        call_id = payload.get("tool_call_id")
        if call_id is not None:
            key = self._tool_keys.setdefault(str(call_id), key)
        item = self._item(key, "tool", data)
        item.name = str(payload.get("tool_name") or item.name or "tool")
        if end:
            item.done = True
            result = payload.get("tool_result")
            item.result = None if result is None else str(result)

    def _component(self, key: str, data: JsonObject, payload: JsonObject) -> None:
        item = self._item(key, "component", data)
        item.name = str(payload.get("component_type") or "component")
        item.content = parse_component(payload.get("content"))
        if item.name == "scheduled_task_controller" and isinstance(item.content, dict):
            self.title = self.title or str(item.content.get("task_title") or "")

    def _question(self, key: str, data: JsonObject, payload: JsonObject) -> None:
        item = self._item(key, "question", data)
        item.text = _content_text(payload) or item.text

    def _truncated(self, key: str, data: JsonObject, payload: JsonObject) -> None:
        item = self._item(key, "notice", {"role": "system"})
        first = payload.get("first_seq")
        item.text = "older events were removed" + (
            f" (the log now starts at event {first})" if isinstance(first, int) else ""
        )

    def _failure(self, key: str, name: str, payload: JsonObject) -> None:
        item = self._item(key, "failure", {"role": "system"})
        item.name = name
        item.text = _content_text(payload)

    # -- rendering ----------------------------------------------------------------------

    def render(self) -> RenderableType:
        """Everything so far: the header, each item in order, and the status line."""
        parts: list[RenderableType] = [self._header()]
        parts.extend(self._render_item(item) for item in self.items.values())
        parts.append(self.status_line())
        return Group(*parts)

    def _header(self) -> Text:
        text = Text.assemble(("task ", "bold"))
        text.append(self.task_id, style="bold cyan")
        if self.agent_name:
            text.append(f" · {self.agent_name}", style="bold")
        if self.title:
            text.append(f" · {trimmed(self.title, 60)}")
        return text

    def _render_item(self, item: Item) -> RenderableType:
        renderer = _RENDERERS.get(item.kind, _render_message)
        return renderer(self, item)

    def status_line(self) -> Text:
        """``status: running`` and what the person can do next."""
        text = Text.assemble(("status: ", "bold"))
        text.append_text(status_text(self.status))
        if self.status == "waiting_input":
            text.append(f'  answer with: taskcell tasks answer {self.task_id} "..."', style="bold")
        elif self.pattern == "recurring" and not self.finished:
            done = f"{self.runs_done} run(s) done; " if self.runs_done else ""
            text.append(f"  {done}watching for the next run (Ctrl-C to stop)", style="dim")
        return text


# -- item renderers ------------------------------------------------------------------------


def _render_message(state: WatchState, item: Item) -> RenderableType:
    if item.role == "user":
        text = Text.assemble(("you: ", "bold cyan"))
    else:
        text = Text.assemble((f"{item.agent or state.agent_name or 'agent'}: ", "bold green"))
    text.append(item.text)
    return text


def _render_reasoning(state: WatchState, item: Item) -> RenderableType:
    if item.done:
        return Text(f"▸ reasoning: {trimmed(item.text, 90)}", style="dim italic")
    lines = item.text.splitlines()[-REASONING_LINES:] or [""]
    return Text("▾ reasoning…\n  " + "\n  ".join(lines), style="dim italic")


def _render_tool(state: WatchState, item: Item) -> RenderableType:
    text = Text.assemble(("⚙ ", "yellow"))
    text.append(item.name, style="bold yellow")
    if not item.done:
        text.append(" …", style="dim")
    elif item.result is not None:
        text.append(" → ")
        text.append(trimmed(item.result, 200))
    else:
        text.append(" ✓", style="green")
    return text


def _render_component(state: WatchState, item: Item) -> RenderableType:
    content = item.content
    if item.name == "scheduled_task_controller" and isinstance(content, dict):
        grid = Table.grid(padding=(0, 2))
        grid.add_row("status", status_text(str(content.get("task_status") or "")))
        grid.add_row("schedule", str(content.get("schedule") or "-"))
        grid.add_row("next run", when(content.get("next_run_at")))
        title = f"scheduled task · {content.get('task_title') or short_id(state.task_id)}"
        return Panel(grid, title=title, title_align="left", border_style="blue", expand=False)
    if item.name == "scheduled_task_result" and isinstance(content, dict):
        body = Text(str(content.get("result") or ""))
        title = f"result · {when(content.get('create_time'))}"
        return Panel(body, title=title, title_align="left", border_style="green", expand=False)
    shown = content if isinstance(content, str) else json.dumps(content, indent=2)
    return Panel(Text(trimmed(shown, 500)), title=item.name, title_align="left", expand=False)


def _render_question(state: WatchState, item: Item) -> RenderableType:
    body = Text(item.text or "The agent needs more input.")
    body.append(f'\n\nanswer with: taskcell tasks answer {state.task_id} "..."', style="dim")
    return Panel(body, title="question", title_align="left", border_style="magenta", expand=False)


def _render_failure(state: WatchState, item: Item) -> RenderableType:
    label = item.name.replace("_", " ")
    if item.name == "task_cancelled":
        return Text(f"○ {label}: {item.text}", style="yellow")
    return Text(f"✗ {label}: {item.text or 'no reason given'}", style="bold red")


def _render_notice(state: WatchState, item: Item) -> RenderableType:
    return Text(f"… {item.text}", style="dim italic")


_RENDERERS: dict[str, Callable[[WatchState, Item], RenderableType]] = {
    "notice": _render_notice,
    "message": _render_message,
    "reasoning": _render_reasoning,
    "tool": _render_tool,
    "component": _render_component,
    "question": _render_question,
    "failure": _render_failure,
}

Handler = Callable[[WatchState, str, JsonObject, JsonObject], None]

_HANDLERS: dict[str, Handler] = {
    "message_chunk": WatchState._chunk,
    "message": WatchState._message,
    "reasoning_started": lambda s, k, d, p: s._reasoning(k, d, p, end=False),
    "reasoning": lambda s, k, d, p: s._reasoning(k, d, p, end=False),
    "reasoning_completed": lambda s, k, d, p: s._reasoning(k, d, p, end=True),
    "tool_call_started": lambda s, k, d, p: s._tool(k, d, p, end=False),
    "tool_call_completed": lambda s, k, d, p: s._tool(k, d, p, end=True),
    "component_generator": WatchState._component,
    "plan_require_user_input": WatchState._question,
    "history_truncated": WatchState._truncated,
}
