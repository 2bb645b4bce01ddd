"""What a run that resumes a remote task already has: the agent updates in the task's log.

Every event the executor routes from an agent update that has an ``update_id`` (A2A agents'
status messages and artifact parts, see :mod:`taskcell.agents.a2a_events`) carries that id in
its metadata under :data:`UPDATE_ID_KEY`. A run that takes up the same remote task again (after a
stop, a crash or a cut stream) reads the log for those ids and emits only what is not there yet:
the log is what clients saw, so an event lost before it was written is sent again, and one
written is never sent twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskcell.abc import Store
from taskcell.domain.events import EventType

UPDATE_ID_KEY = "agent_update_id"
_PAGE = 500


@dataclass(frozen=True, slots=True)
class LoggedUpdate:
    """The last event the log holds for one agent update."""

    event: EventType
    item_id: str


async def logged_updates(store: Store, task_id: str) -> dict[str, LoggedUpdate]:
    """The agent updates in ``task_id``'s log, by ``update_id``."""
    found: dict[str, LoggedUpdate] = {}
    after = 0
    while True:
        events = await store.read_events(task_id, after=after, limit=_PAGE)
        for event in events:
            update_id = event.metadata.get(UPDATE_ID_KEY)
            if isinstance(update_id, str):
                found[update_id] = LoggedUpdate(event.event, event.item_id)
        if len(events) < _PAGE:
            return found
        after = events[-1].seq
