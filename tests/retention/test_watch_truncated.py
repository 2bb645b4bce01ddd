"""The CLI's watch says "older events were removed" when a stream starts with
``history_truncated``."""

from __future__ import annotations

import io

from rich.console import Console

from taskcell.cli.watch import WatchState
from taskcell.client._wire import WatchCursor
from taskcell.client.models import TaskEvent


def truncated(first_seq: int) -> dict[str, object]:
    return {
        "seq": first_seq - 1,
        "event": "history_truncated",
        "data": {
            "conversation_id": "c1",
            "thread_id": "th1",
            "task_id": "t1",
            "run_id": None,
            "item_id": "history-truncated-t1",
            "role": "system",
            "agent_name": None,
            "payload": {"first_seq": first_seq, "content": "older events were removed"},
            "metadata": {},
        },
        "created_at": "2026-06-01T12:00:00+00:00",
    }


def test_watch_shows_that_older_events_were_removed() -> None:
    state = WatchState(task_id="t1", status="running")
    state.apply(truncated(12))
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(state.render())
    assert "older events were removed (the log now starts at event 12)" in out.getvalue()
    assert state.last_seq == 11


def test_a_watch_of_a_finished_task_whose_events_are_all_gone_stops() -> None:
    cursor = WatchCursor(after=None)
    cursor.begin()
    assert cursor.take(TaskEvent.model_validate(truncated(6)))
    assert cursor.may_stop("completed")
    assert not cursor.may_stop("running")
