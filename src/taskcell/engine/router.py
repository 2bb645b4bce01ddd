"""The event router: one run's agent updates in, events out (the origin's routing rules).

- WORKING updates are routed by ``metadata["response_event"]``: message chunks, whole messages,
  reasoning, tool calls, components; an update without one that carries text is a chunk.
- ARTIFACT updates become messages, or components when their data names a
  ``component_type``; the pieces of one artifact (``append=false``, then ``append=true``, one
  artifact id) are one message: a ``message``, then ``message_chunk`` events with its item id;
  the ``final_result`` artifact that repeats an answer already streamed as chunks is dropped
  (A2A 1.0 agents put results in artifacts, and some stream them too).
- INPUT_REQUIRED becomes ``plan_require_user_input`` carrying the agent's question.
- The terminal updates are left to the executor, which owns the task's state.

The router also collects what the run said (its messages, for a recurring run's result).

Agent output is untrusted: before routing, every string of an update (text, data, metadata)
has NUL and lone surrogates replaced with U+FFFD (:mod:`taskcell.domain.text`; data nested too
deeply is cut), and non-finite numbers with null; the events of such an update say so in their
metadata (:data:`SANITIZED`). Anything else wrong with an update (text that is not a string, say)
raises, and the executor fails the run with the reason.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from taskcell.agents.base import AgentUpdate, UpdateKind
from taskcell.domain.events import Event
from taskcell.domain.models import new_id
from taskcell.domain.text import sanitise_json, sanitise_text
from taskcell.engine.responses import ResponseFactory

FINAL_RESULT = "final_result"
#: The metadata key of an event whose agent output had characters replaced (value: a note).
SANITIZED = "sanitized"


def clean_text(text: str) -> str:
    """Text from an agent, safe for every store: NUL and lone surrogates become U+FFFD."""
    if not isinstance(text, str):
        raise TypeError(f"the agent sent {type(text).__name__} where text was expected")
    return sanitise_text(text)[0]


def clean_update(update: AgentUpdate) -> tuple[AgentUpdate, bool]:
    """``update`` with its text, data and metadata made safe to store (see the module
    docstring), and whether anything was replaced; TypeError for text that is not a string."""
    if not isinstance(update.text, str):
        raise TypeError(f"the agent sent {type(update.text).__name__} where text was expected")
    if not isinstance(update.metadata, dict):
        raise TypeError(f"the agent sent {type(update.metadata).__name__} as metadata")
    text, bad_text = sanitise_text(update.text)
    data, bad_data = _finite(*sanitise_json(update.data))
    metadata, bad_metadata = _finite(*sanitise_json(update.metadata))
    if not (bad_text or bad_data or bad_metadata):
        return update, False
    return dataclasses.replace(update, text=text, data=data, metadata=metadata), True


def _finite(value: Any, changed: bool) -> tuple[Any, bool]:
    """``value`` (depth-bounded JSON) with NaN and infinities replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, True
    if isinstance(value, dict):
        pairs = [(key, _finite(item, False)) for key, item in value.items()]
        if any(bad for _, (_, bad) in pairs):
            return {key: item for key, (item, _) in pairs}, True
    elif isinstance(value, list):
        items = [_finite(item, False) for item in value]
        if any(bad for _, bad in items):
            return [item for item, _ in items], True
    return value, changed


SANITIZED_NOTE = (
    "the agent sent characters no store can keep (lone surrogates, NUL) or numbers JSON cannot"
    " carry (NaN, infinities): they were replaced with U+FFFD (numbers with null)"
)


class EventRouter:
    """Routes the updates of one run; see the module docstring."""

    def __init__(self, factory: ResponseFactory) -> None:
        self.factory = factory
        self.message_item: str | None = None
        self.reasoning_item: str | None = None
        self.messages: list[str] = []
        self.streamed = False
        self.question: str | None = None
        self.artifact_items: dict[str, str] = {}  # artifact id -> item id of its message

    @property
    def result_text(self) -> str:
        return "".join(self.messages).strip()

    def route(self, update: AgentUpdate) -> list[Event]:
        """The events ``update`` stands for (see the module docstring)."""
        update, replaced = clean_update(update)
        events = self._route(update)
        if replaced:
            for event in events:
                event.metadata = {**event.metadata, SANITIZED: SANITIZED_NOTE}
        return events

    def _route(self, update: AgentUpdate) -> list[Event]:
        if update.kind is UpdateKind.WORKING:
            return self._working(update)
        if update.kind is UpdateKind.ARTIFACT:
            return self._artifact(update)
        if update.kind is UpdateKind.INPUT_REQUIRED:
            self.question = clean_text(update.text) or "The agent needs more input."
            self.message_item = None
            return [self.factory.require_user_input(self.question)]
        if update.kind is UpdateKind.COMPLETED and update.text and not self.messages:
            return self._whole_message(update.text)
        return []

    # -- working updates ----------------------------------------------------------------

    def _working(self, update: AgentUpdate) -> list[Event]:
        meta = update.metadata
        kind = meta.get("response_event")
        text = clean_text(update.text)
        if kind in (None, "message_chunk"):
            return self._chunk(text) if text else []
        if kind == "message":
            return self._whole_message(text)
        if kind in ("reasoning_started", "reasoning", "reasoning_completed"):
            return self._reasoning(kind, text)
        if kind in ("tool_call_started", "tool_call_completed"):
            return self._tool_call(kind, meta, text)
        if kind == "component_generator":
            return self._component(meta, update.data, text)
        return self._chunk(text) if text else []

    def _chunk(self, text: str, *, item_id: str | None = None) -> list[Event]:
        if item_id is None:
            if self.message_item is None:
                self.message_item = new_id()
            item_id = self.message_item
        self.messages.append(text)
        self.streamed = True
        return [self.factory.message_chunk(text, item_id=item_id)]

    def _whole_message(self, text: str, *, item_id: str | None = None) -> list[Event]:
        self.message_item = None
        text = clean_text(text)
        if self.messages:
            self.messages.append("\n\n")
        self.messages.append(text)
        self.streamed = True
        return [self.factory.message(text, item_id=item_id)]

    def _reasoning(self, kind: str, text: str) -> list[Event]:
        factory = self.factory
        if kind == "reasoning_started" or self.reasoning_item is None:
            self.reasoning_item = new_id()
            events = [factory.reasoning_started(item_id=self.reasoning_item)]
            if kind == "reasoning_started":
                return events
        else:
            events = []
        item = self.reasoning_item
        if kind == "reasoning":
            events.append(factory.reasoning(text, item_id=item))
        else:
            events.append(factory.reasoning_completed(item_id=item))
            self.reasoning_item = None
        return events

    def _tool_call(self, kind: str, meta: dict[str, Any], text: str) -> list[Event]:
        self.message_item = None
        tool_call_id = str(meta.get("tool_call_id") or new_id())
        tool_name = str(meta.get("tool_name") or "tool")
        if kind == "tool_call_started":
            return [self.factory.tool_call_started(tool_call_id, tool_name)]
        result = meta.get("tool_result", text)
        result_text = result if isinstance(result, str) else json.dumps(result, default=str)
        return [self.factory.tool_call_completed(tool_call_id, tool_name, clean_text(result_text))]

    def _component(
        self, meta: dict[str, Any], data: dict[str, Any] | None, text: str
    ) -> list[Event]:
        self.message_item = None
        source = data or {}
        component_type = meta.get("component_type") or source.get("component_type") or "card"
        content: Any = meta.get("content", source.get("content", text))
        agent_item = meta.get("item_id") or meta.get("component_id")
        # An agent names its own components; they are kept apart from every other task's.
        item_id = f"{self.factory.task.task_id}:agent:{agent_item}" if agent_item else None
        return [
            self.factory.component(
                str(component_type),
                content if isinstance(content, str | dict) else json.dumps(content),
                item_id=item_id,
            )
        ]

    # -- artifacts ----------------------------------------------------------------------

    def _artifact(self, update: AgentUpdate) -> list[Event]:
        meta = update.metadata
        if meta.get("response_event") == FINAL_RESULT and self.streamed:
            return []
        data = update.data or {}
        if "component_type" in data:
            return self._component(meta, data, update.text)
        text = clean_text(update.text)
        if not text:
            return []
        artifact_item = self.artifact_items.get(update.artifact_id or "")
        if update.append and artifact_item is not None:
            return self._chunk(text, item_id=artifact_item)
        if update.append:
            return self._chunk(text)
        if update.artifact_id is None:
            return self._whole_message(text)
        item_id = self.artifact_items[update.artifact_id] = new_id()
        return self._whole_message(text, item_id=item_id)
