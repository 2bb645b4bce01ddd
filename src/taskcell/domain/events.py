"""Events: everything the executor emits, and the conversation items they merge into.

An :class:`Event` is what a client reads from a task's stream (docs/api.md, "Events"): a per-task
sequence number, an event type and a body. A :class:`ConversationItem` is one entry of a
conversation's history: message chunks of one message merged into one item, a component in its
latest state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from taskcell.domain.models import Fence


class EventType(StrEnum):
    CONVERSATION_STARTED = "conversation_started"
    THREAD_STARTED = "thread_started"
    TASK_STARTED = "task_started"
    MESSAGE_CHUNK = "message_chunk"
    MESSAGE = "message"
    REASONING_STARTED = "reasoning_started"
    REASONING = "reasoning"
    REASONING_COMPLETED = "reasoning_completed"
    TOOL_CALL_STARTED = "tool_call_started"
    TOOL_CALL_COMPLETED = "tool_call_completed"
    COMPONENT_GENERATOR = "component_generator"
    PLAN_REQUIRE_USER_INPUT = "plan_require_user_input"
    TASK_COMPLETED = "task_completed"
    TASK_FAILED = "task_failed"
    TASK_CANCELLED = "task_cancelled"
    PLAN_FAILED = "plan_failed"
    SYSTEM_FAILED = "system_failed"
    DONE = "done"


class Role(StrEnum):
    USER = "user"
    AGENT = "agent"
    SYSTEM = "system"


#: Event types that end a run's stream.
FINAL_EVENTS = frozenset(
    {EventType.TASK_COMPLETED, EventType.TASK_FAILED, EventType.TASK_CANCELLED}
)


#: JSON escapes for the characters outside ASCII that line readers may split at.
_LINE_BREAK_ESCAPES = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


@dataclass(slots=True)
class Event:
    """One event of a task. ``seq`` is 0 until the event log gives it the task's next number."""

    event: EventType
    task_id: str
    conversation_id: str
    thread_id: str
    item_id: str
    role: Role
    payload: dict[str, Any] | None
    created_at: datetime
    run_id: str | None = None
    agent_name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    _wire: str | None = field(default=None, repr=False, compare=False)
    _frame: bytes | None = field(default=None, repr=False, compare=False)
    #: The fencing token of the run that wrote it (never stored): see ``EventStore.append_events``.
    fence: Fence | None = field(default=None, repr=False, compare=False)

    def renumber(self, seq: int) -> None:
        """Give the event another sequence number (before anyone saw it)."""
        self.seq = seq
        self._wire = None
        self._frame = None

    def to_json(self) -> str:
        """The event as compact JSON, made once and shared by every reader."""
        if self._wire is None:
            self._wire = json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)
        return self._wire

    def sse_frame(self) -> bytes:
        """The event as one Server-Sent Events message (``id:`` and one ``data:`` line).

        The characters that some line readers take for a line break (NEL, U+2028, U+2029:
        Python's ``str.splitlines``, and clients built on it) are written as JSON escapes, so
        the ``data:`` line stays one line for every client, not only for those that follow
        the SSE rule (CR and LF only)."""
        if self._frame is None:
            data = self.to_json()
            if not data.isascii():
                data = data.translate(_LINE_BREAK_ESCAPES)
            self._frame = f"id: {self.seq}\r\ndata: {data}\r\n\r\n".encode()
        return self._frame

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of docs/api.md: ``{"seq", "event", "data": {...}, "created_at"}``."""
        data: dict[str, Any] = {
            "conversation_id": self.conversation_id,
            "thread_id": self.thread_id,
            "task_id": self.task_id,
            "run_id": self.run_id,
            "item_id": self.item_id,
            "role": self.role.value,
            "agent_name": self.agent_name,
            "payload": self.payload,
            "metadata": self.metadata,
        }
        return {
            "seq": self.seq,
            "event": self.event.value,
            "data": data,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Event:
        data = body["data"]
        return cls(
            event=EventType(body["event"]),
            task_id=data["task_id"],
            conversation_id=data["conversation_id"],
            thread_id=data["thread_id"],
            item_id=data["item_id"],
            role=Role(data["role"]),
            payload=data.get("payload"),
            created_at=datetime.fromisoformat(body["created_at"]),
            run_id=data.get("run_id"),
            agent_name=data.get("agent_name"),
            metadata=data.get("metadata") or {},
            seq=body["seq"],
        )


@dataclass(slots=True)
class ConversationItem:
    """One entry of a conversation's history, in its latest state."""

    item_id: str
    conversation_id: str
    thread_id: str
    task_id: str | None
    run_id: str | None
    role: Role
    event: EventType
    payload: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    agent_name: str | None = None
    component_type: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "conversation_id": self.conversation_id,
            "thread_id": self.thread_id,
            "task_id": self.task_id,
            "run_id": self.run_id,
            "role": self.role.value,
            "event": self.event.value,
            "agent_name": self.agent_name,
            "component_type": self.component_type,
            "payload": self.payload,
            "metadata": self.metadata,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
