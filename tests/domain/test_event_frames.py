"""An event's SSE frame stays one ``data:`` line for every line reader."""

from __future__ import annotations

import json

import pytest

from taskcell.domain.events import Event, EventType, Role
from taskcell.domain.models import utcnow


@pytest.mark.parametrize("odd", ["\x85", "\u2028", "\u2029", "a\x85b\u2028c\u2029d"])
def test_line_breaks_outside_ascii_are_escaped_in_the_frame(odd: str) -> None:
    event = Event(
        event=EventType.MESSAGE,
        task_id="t",
        conversation_id=f"conv{odd}",
        thread_id="th",
        item_id="i",
        role=Role.AGENT,
        payload={"content": f"hello{odd}world"},
        created_at=utcnow(),
        seq=3,
    )
    lines = event.sse_frame().decode().splitlines()
    data = [line for line in lines if line.startswith("data: ")]
    assert len(data) == 1, lines
    decoded = json.loads(data[0][len("data: ") :])
    assert decoded["data"]["conversation_id"] == f"conv{odd}"
    assert decoded["data"]["payload"] == {"content": f"hello{odd}world"}
    assert json.loads(event.to_json()) == decoded  # the stored JSON says the same
