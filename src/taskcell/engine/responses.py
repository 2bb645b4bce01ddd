"""ResponseFactory: one method per event type of docs/api.md, for one task (and run).

Every event the executor emits is built here, so the payload shapes live in one place:
messages and reasoning ``{"content"}``; tool calls ``{"tool_call_id", "tool_name",
"tool_result"?}``; components ``{"component_type", "content"}`` with ``content`` a JSON string;
failures ``{"content": reason}``.
"""

from __future__ import annotations

import json
from typing import Any

from taskcell.domain.events import Event, EventType, Role
from taskcell.domain.models import Task, new_id, utcnow

CONTROLLER = "scheduled_task_controller"
RESULT = "scheduled_task_result"
SUBAGENT_CONVERSATION = "subagent_conversation"


class ResponseFactory:
    """Builds the events of one task; ``run_id`` is set for events that belong to a run."""

    def __init__(self, task: Task, run_id: str | None = None) -> None:
        self.task = task
        self.run_id = run_id

    def _event(
        self,
        kind: EventType,
        payload: dict[str, Any] | None,
        *,
        item_id: str | None = None,
        role: Role = Role.AGENT,
        metadata: dict[str, Any] | None = None,
        conversation_id: str | None = None,
    ) -> Event:
        task = self.task
        return Event(
            event=kind,
            task_id=task.task_id,
            conversation_id=conversation_id or task.conversation_id,
            thread_id=task.thread_id,
            item_id=item_id or new_id(),
            role=role,
            payload=payload,
            created_at=utcnow(),
            run_id=self.run_id,
            agent_name=task.agent_name,
            metadata=metadata or {},
        )

    # -- conversation and task lifecycle -------------------------------------------------

    def conversation_started(self) -> Event:
        return self._event(EventType.CONVERSATION_STARTED, None, role=Role.SYSTEM)

    def thread_started(self, title: str = "") -> Event:
        return self._event(EventType.THREAD_STARTED, {"content": title}, role=Role.SYSTEM)

    def task_started(self) -> Event:
        return self._event(EventType.TASK_STARTED, None, role=Role.SYSTEM)

    def task_completed(self) -> Event:
        return self._event(EventType.TASK_COMPLETED, None, role=Role.SYSTEM)

    def task_failed(self, reason: str) -> Event:
        return self._event(EventType.TASK_FAILED, {"content": reason}, role=Role.SYSTEM)

    def task_cancelled(self, reason: str) -> Event:
        return self._event(EventType.TASK_CANCELLED, {"content": reason}, role=Role.SYSTEM)

    def plan_failed(self, reason: str) -> Event:
        return self._event(EventType.PLAN_FAILED, {"content": reason}, role=Role.SYSTEM)

    def system_failed(self, reason: str) -> Event:
        return self._event(EventType.SYSTEM_FAILED, {"content": reason}, role=Role.SYSTEM)

    def done(self) -> Event:
        return self._event(EventType.DONE, None, role=Role.SYSTEM)

    # -- what agents and users say -------------------------------------------------------

    def system_message(self, content: str) -> Event:
        return self._event(EventType.MESSAGE, {"content": content}, role=Role.SYSTEM)

    def user_message(self, content: str) -> Event:
        return self._event(EventType.MESSAGE, {"content": content}, role=Role.USER)

    def message(self, content: str, *, item_id: str | None = None) -> Event:
        return self._event(EventType.MESSAGE, {"content": content}, item_id=item_id)

    def message_chunk(self, content: str, *, item_id: str) -> Event:
        return self._event(EventType.MESSAGE_CHUNK, {"content": content}, item_id=item_id)

    def reasoning_started(self, *, item_id: str) -> Event:
        return self._event(EventType.REASONING_STARTED, None, item_id=item_id)

    def reasoning(self, content: str, *, item_id: str) -> Event:
        return self._event(EventType.REASONING, {"content": content}, item_id=item_id)

    def reasoning_completed(self, *, item_id: str) -> Event:
        return self._event(EventType.REASONING_COMPLETED, None, item_id=item_id)

    def tool_call_started(self, tool_call_id: str, tool_name: str) -> Event:
        payload = {"tool_call_id": tool_call_id, "tool_name": tool_name}
        return self._event(
            EventType.TOOL_CALL_STARTED, payload, item_id=self.tool_item(tool_call_id)
        )

    def tool_call_completed(self, tool_call_id: str, tool_name: str, tool_result: str) -> Event:
        payload = {"tool_call_id": tool_call_id, "tool_name": tool_name, "tool_result": tool_result}
        return self._event(
            EventType.TOOL_CALL_COMPLETED, payload, item_id=self.tool_item(tool_call_id)
        )

    def tool_item(self, tool_call_id: str) -> str:
        """A tool call's item id: started and completed share it, so the history merges them."""
        return f"{self.run_id or self.task.task_id}:tool:{tool_call_id}"

    def component(
        self,
        component_type: str,
        content: dict[str, Any] | str,
        *,
        item_id: str | None = None,
        conversation_id: str | None = None,
    ) -> Event:
        text = content if isinstance(content, str) else json.dumps(content, default=str)
        payload = {"component_type": component_type, "content": text}
        return self._event(
            EventType.COMPONENT_GENERATOR,
            payload,
            item_id=item_id,
            conversation_id=conversation_id,
        )

    def require_user_input(self, question: str) -> Event:
        return self._event(EventType.PLAN_REQUIRE_USER_INPUT, {"content": question})
