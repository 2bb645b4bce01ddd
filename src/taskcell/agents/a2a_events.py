"""Turn an A2A 1.0 event stream into :class:`~taskcell.agents.base.AgentUpdate` values.

One :class:`StreamMapper` per ``send`` call; feed it each ``StreamResponse`` in order. The
mapping:

============================================  ================================================
A2A event                                     AgentUpdate
============================================  ================================================
first ``task`` (or first event of any kind)   ACCEPTED (remote_task_id, context_id)
``status_update`` SUBMITTED                   nothing (the task exists; ACCEPTED said so)
``status_update`` WORKING                     WORKING: text of the status message's text parts,
                                              data of its data parts, metadata = the message's
                                              metadata overlaid with the event's (this is where
                                              ``response_event`` travels)
``artifact_update``                           ARTIFACT: text/data of the parts, metadata = the
                                              artifact's overlaid with the event's, ``append``,
                                              ``artifact_id``
``status_update`` INPUT_REQUIRED              INPUT_REQUIRED (text = the agent's question)
``status_update`` COMPLETED                   COMPLETED (text = the status message, if any)
``status_update`` FAILED / REJECTED           FAILED (text = the reason, or a stock sentence)
``status_update`` AUTH_REQUIRED               FAILED (taskcell cannot authenticate for a user)
``status_update`` CANCELED                    CANCELED
a ``task`` snapshot already in a final or     its artifacts as ARTIFACT, then its status as
input-required state (non-streaming agents)   above
a ``message`` (agent answered without task)   COMPLETED with the message text
============================================  ================================================

After a terminal update or INPUT_REQUIRED, :attr:`StreamMapper.finished` is true and the caller
stops reading.

Every update that carries agent content has an ``update_id`` that names it across streams:
``msg:<message id>`` for a status message, ``art:<artifact id>:<n>`` for an artifact whose first
``n`` parts it completes. Resuming a remote task (:meth:`StreamMapper.snapshot`, for the task an
A2A ``subscribe`` or ``get_task`` answers) turns the task's history back into updates with the
same ids, so a consumer can tell what it already has (:class:`UpdateIds`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from a2a.types import Artifact, Role, TaskState
from google.protobuf import json_format

from taskcell.agents.base import AgentUpdate, UpdateKind

_STATE_KINDS: dict[int, UpdateKind] = {
    TaskState.TASK_STATE_WORKING: UpdateKind.WORKING,
    TaskState.TASK_STATE_INPUT_REQUIRED: UpdateKind.INPUT_REQUIRED,
    TaskState.TASK_STATE_COMPLETED: UpdateKind.COMPLETED,
    TaskState.TASK_STATE_FAILED: UpdateKind.FAILED,
    TaskState.TASK_STATE_REJECTED: UpdateKind.FAILED,
    TaskState.TASK_STATE_AUTH_REQUIRED: UpdateKind.FAILED,
    TaskState.TASK_STATE_CANCELED: UpdateKind.CANCELED,
}

_DEFAULT_TEXT: dict[int, str] = {
    TaskState.TASK_STATE_FAILED: "the agent reported a failure without a reason",
    TaskState.TASK_STATE_REJECTED: "the agent rejected the task",
    TaskState.TASK_STATE_AUTH_REQUIRED: (
        "the agent asked for authentication, which taskcell cannot provide"
    ),
}

STOPPING_KINDS = frozenset(
    {UpdateKind.COMPLETED, UpdateKind.FAILED, UpdateKind.CANCELED, UpdateKind.INPUT_REQUIRED}
)


def message_update_id(message_id: str) -> str | None:
    """The ``update_id`` of a status message (None for a message without an id)."""
    return f"msg:{message_id}" if message_id else None


def artifact_update_id(artifact_id: str, parts: int) -> str | None:
    """The ``update_id`` of an artifact update that completes its first ``parts`` parts."""
    return f"art:{artifact_id}:{parts}" if artifact_id else None


class UpdateIds:
    """A set of ``update_id`` values that answers :meth:`covers` in constant time."""

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._ids: set[str] = set()
        self._parts: dict[str, int] = {}  # "art:<artifact id>" -> the most parts seen
        for update_id in ids:
            self.add(update_id)

    def add(self, update_id: str) -> None:
        self._ids.add(update_id)
        head, _, count = update_id.rpartition(":")
        if update_id.startswith("art:") and count.isdigit():
            self._parts[head] = max(self._parts.get(head, 0), int(count))

    def covers(self, update_id: str | None) -> bool:
        """Whether ``update_id`` is here (for an artifact's parts: whether at least as many
        parts of the same artifact are)."""
        if update_id is None:
            return False
        if update_id in self._ids:
            return True
        head, _, count = update_id.rpartition(":")
        if not (update_id.startswith("art:") and count.isdigit()):
            return False
        return self._parts.get(head, -1) >= int(count)


def covered(update_id: str | None, ids: Iterable[str]) -> bool:
    """Whether the update ``update_id`` is among ``ids`` (see :class:`UpdateIds`)."""
    return UpdateIds(ids).covers(update_id)


def struct_to_dict(struct: Any) -> dict[str, Any]:
    """A protobuf ``Struct`` (metadata) as a plain dict."""
    if struct is None or not struct.fields:
        return {}
    result: dict[str, Any] = json_format.MessageToDict(struct)
    return result


def parts_content(parts: Iterable[Any]) -> tuple[str, dict[str, Any] | None]:
    """The joined text of text parts and the merged JSON of data parts (None without any)."""
    texts: list[str] = []
    data: dict[str, Any] | None = None
    for part in parts:
        kind = part.WhichOneof("content")
        if kind == "text":
            texts.append(part.text)
        elif kind == "data":
            value = json_format.MessageToDict(part.data)
            data = data if data is not None else {}
            if isinstance(value, dict):
                data.update(value)
            else:
                data.setdefault("items", []).append(value)
        elif kind == "url":
            texts.append(part.url)
    return "".join(texts), data


class StreamMapper:
    """Maps the events of one A2A stream to updates; see the module docstring."""

    def __init__(self) -> None:
        self.remote_task_id: str | None = None
        self.context_id: str | None = None
        self.accepted = False
        self.finished = False
        self._parts_seen: dict[str, int] = {}

    def feed(self, response: Any) -> list[AgentUpdate]:
        """The updates one ``StreamResponse`` stands for (possibly none)."""
        kind = response.WhichOneof("payload")
        if kind == "task":
            return self._task(response.task)
        if kind == "status_update":
            event = response.status_update
            out = self._accept(event.task_id, event.context_id)
            out.extend(self._status(event.status, struct_to_dict(event.metadata)))
            return out
        if kind == "artifact_update":
            event = response.artifact_update
            out = self._accept(event.task_id, event.context_id)
            out.append(self._artifact(event.artifact, event.append, struct_to_dict(event.metadata)))
            return out
        if kind == "message":
            message = response.message
            out = self._accept(message.task_id or message.message_id, message.context_id)
            text, data = parts_content(message.parts)
            out.append(
                self._update(UpdateKind.COMPLETED, text, data, struct_to_dict(message.metadata))
            )
            self.finished = True
            return out
        return []

    def snapshot(self, task: Any, *, final: bool = True) -> list[AgentUpdate]:
        """The updates a resumed task stands for, from its first: the agent's messages in its
        history (and its current status message) as WORKING, its artifacts part by part, then,
        with ``final`` and a task in a final or input-required state, that state."""
        out = self._accept(task.id, task.context_id)
        for message in task.history:
            if message.role == Role.ROLE_AGENT:
                out.append(self._history_message(message))
        state = task.status.state
        kind = _STATE_KINDS.get(state)
        if task.status.HasField("message") and (kind is None or kind is UpdateKind.WORKING):
            out.append(self._history_message(task.status.message))
        for artifact in task.artifacts:
            out.extend(self._artifact_parts_of(artifact))
        if final and kind is not None and kind is not UpdateKind.WORKING:
            out.extend(self._status(task.status, struct_to_dict(task.metadata)))
        return out

    def _history_message(self, message: Any) -> AgentUpdate:
        text, data = parts_content(message.parts)
        return self._update(
            UpdateKind.WORKING,
            text,
            data,
            struct_to_dict(message.metadata),
            message_update_id(message.message_id),
        )

    def _artifact_parts_of(self, artifact: Any) -> list[AgentUpdate]:
        """An artifact of a snapshot as one update per part (the first not appended), so a
        consumer that has its first parts takes only the rest."""
        out: list[AgentUpdate] = []
        for index, part in enumerate(artifact.parts):
            piece = Artifact()
            piece.CopyFrom(artifact)
            del piece.parts[:]
            piece.parts.append(part)
            out.append(self._artifact(piece, index > 0, {}))
        return out

    def _accept(self, task_id: str, context_id: str) -> list[AgentUpdate]:
        if self.accepted:
            return []
        self.accepted = True
        self.remote_task_id = task_id or None
        self.context_id = context_id or None
        return [AgentUpdate(UpdateKind.ACCEPTED, self.remote_task_id, self.context_id)]

    def _task(self, task: Any) -> list[AgentUpdate]:
        out = self._accept(task.id, task.context_id)
        state_kind = _STATE_KINDS.get(task.status.state)
        if state_kind is None or state_kind is UpdateKind.WORKING:
            return out
        # A snapshot that is already final: a non-streaming agent's whole answer.
        out.extend(self._artifact(artifact, False, {}) for artifact in task.artifacts)
        out.extend(self._status(task.status, struct_to_dict(task.metadata)))
        return out

    def _status(self, status: Any, event_metadata: dict[str, Any]) -> list[AgentUpdate]:
        kind = _STATE_KINDS.get(status.state)
        if kind is None:  # SUBMITTED, UNSPECIFIED
            return []
        text, data, metadata, update_id = "", None, {}, None
        if status.HasField("message"):
            text, data = parts_content(status.message.parts)
            metadata = struct_to_dict(status.message.metadata)
            update_id = message_update_id(status.message.message_id)
        metadata.update(event_metadata)
        if not text and kind is UpdateKind.FAILED:
            text = _DEFAULT_TEXT.get(status.state, "")
        if kind in STOPPING_KINDS:
            self.finished = True
        return [self._update(kind, text, data, metadata, update_id)]

    def _artifact(self, artifact: Any, append: bool, event_metadata: dict[str, Any]) -> AgentUpdate:
        text, data = parts_content(artifact.parts)
        metadata = struct_to_dict(artifact.metadata)
        metadata.update(event_metadata)
        if artifact.name:
            metadata.setdefault("artifact_name", artifact.name)
        update_id = None
        if artifact.artifact_id:
            before = self._parts_seen.get(artifact.artifact_id, 0) if append else 0
            parts = self._parts_seen[artifact.artifact_id] = before + len(artifact.parts)
            update_id = artifact_update_id(artifact.artifact_id, parts)
        return AgentUpdate(
            UpdateKind.ARTIFACT,
            self.remote_task_id,
            self.context_id,
            text=text,
            data=data,
            metadata=metadata,
            append=bool(append),
            artifact_id=artifact.artifact_id or None,
            update_id=update_id,
        )

    def _update(
        self,
        kind: UpdateKind,
        text: str,
        data: dict[str, Any] | None,
        metadata: dict[str, Any],
        update_id: str | None = None,
    ) -> AgentUpdate:
        return AgentUpdate(
            kind,
            self.remote_task_id,
            self.context_id,
            text=text,
            data=data,
            metadata=metadata,
            update_id=update_id,
        )
