"""The live renderer, without a server: events folded into a :class:`WatchState`."""

from __future__ import annotations

import io
import itertools
import json
from typing import Any

from rich.console import Console, RenderableType

from taskcell.cli.follow import Tail, iter_sse
from taskcell.cli.watch import WatchState

TASK = "t" * 32
_seq = itertools.count(1)


def ev(
    event: str, item: str = "", payload: dict[str, Any] | None = None, **data: Any
) -> dict[str, Any]:
    """One event in docs/api.md's shape."""
    body = {
        "conversation_id": "c1",
        "thread_id": "th1",
        "task_id": TASK,
        "item_id": item or f"i{next(_seq)}",
        "role": data.pop("role", "agent"),
        "agent_name": data.pop("agent_name", "echo"),
        "payload": payload,
    }
    return {
        "seq": next(_seq),
        "event": event,
        "data": body,
        "created_at": "2025-01-01T00:00:00+00:00",
    }


def text_of(renderable: RenderableType, height: int = 200) -> str:
    console = Console(width=100, height=height, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def fold(*events: dict[str, Any], pattern: str = "once") -> WatchState:
    state = WatchState(task_id=TASK, pattern=pattern)
    for event in events:
        state.apply(event)
    return state


def test_message_chunks_merge_by_item_id() -> None:
    state = fold(
        ev("task_started", role="system"),
        ev("message", "u1", {"content": "hello big world"}, role="user"),
        ev("message_chunk", "m1", {"content": "hello"}),
        ev("message_chunk", "m1", {"content": " big"}),
        ev("message_chunk", "m1", {"content": " world"}),
    )
    out = text_of(state.render())
    assert "you: hello big world" in out
    assert "echo: hello big world" in out
    assert out.count("hello big world") == 2
    assert "status: running" in out


def test_a_whole_message_after_its_chunks_is_not_shown_twice() -> None:
    state = fold(
        ev("message_chunk", "m1", {"content": "hi"}),
        ev("message_chunk", "m1", {"content": " there"}),
        ev("message", "m2", {"content": "hi there"}),
        ev("message", "m3", {"content": "and more"}),
    )
    out = text_of(state.render())
    assert out.count("hi there") == 1
    assert "echo: and more" in out


def test_a_message_with_the_chunks_item_id_replaces_their_text() -> None:
    state = fold(
        ev("message_chunk", "m1", {"content": "draf"}),
        ev("message", "m1", {"content": "final text"}),
    )
    out = text_of(state.render())
    assert "final text" in out
    assert "draf" not in out


def test_reasoning_streams_dimmed_then_folds_to_one_line() -> None:
    started = fold(
        ev("reasoning_started", "r1"),
        ev("reasoning", "r1", {"content": "first I think\nthen I think more"}),
    )
    out = text_of(started.render())
    assert "reasoning…" in out
    assert "then I think more" in out

    started.apply(ev("reasoning_completed", "r1"))
    out = text_of(started.render())
    assert "▸ reasoning: first I think then I think more" in out
    assert len(started.items) == 1


def test_reasoning_events_with_fresh_item_ids_join_the_open_reasoning() -> None:
    state = fold(
        ev("reasoning_started", "r1"),
        ev("reasoning", "r2", {"content": "thinking"}),
        ev("reasoning_completed", "r3"),
    )
    assert [item.kind for item in state.items.values()] == ["reasoning"]
    assert next(iter(state.items.values())).done


def test_tool_call_shows_its_name_then_its_result() -> None:
    state = fold(
        ev("tool_call_started", "tc1", {"tool_call_id": "call-1", "tool_name": "count_words"}),
    )
    assert "⚙ count_words …" in text_of(state.render())
    state.apply(
        ev(
            "tool_call_completed",
            "tc1",
            {"tool_call_id": "call-1", "tool_name": "count_words", "tool_result": "3 words"},
        )
    )
    out = text_of(state.render())
    assert "⚙ count_words → 3 words" in out
    assert "…" not in out.split("count_words", 1)[1].splitlines()[0]
    assert len(state.items) == 1


def test_tool_call_completed_under_another_item_id_merges_by_tool_call_id() -> None:
    state = fold(
        ev("tool_call_started", "a", {"tool_call_id": "call-9", "tool_name": "search"}),
        ev("tool_call_completed", "b", {"tool_call_id": "call-9", "tool_result": "found"}),
    )
    assert len(state.items) == 1
    assert "⚙ search → found" in text_of(state.render())


def _controller(status: str, next_run: str) -> dict[str, Any]:
    content = {
        "task_id": TASK,
        "task_title": "Morning news",
        "task_status": status,
        "schedule": "daily at 09:00 Europe/Paris",
        "next_run_at": next_run,
    }
    return {"component_type": "scheduled_task_controller", "content": json.dumps(content)}


def test_a_controller_component_is_replaced_in_place_by_item_id() -> None:
    state = fold(
        ev("component_generator", "ctl", _controller("running", "2025-01-02T08:00:00+00:00")),
        ev("message_chunk", "m1", {"content": "the news"}),
        pattern="recurring",
    )
    state.apply(ev("component_generator", "ctl", _controller("cancelled", "")))
    out = text_of(state.render())
    assert out.count("scheduled task · Morning news") == 1
    assert "cancelled" in out
    assert "running" not in out.split("the news")[0]
    assert "daily at 09:00 Europe/Paris" in out
    # still before the message: replaced where it was, not moved to the end
    assert out.index("Morning news") < out.index("the news")
    assert list(state.items) == ["ctl", "m1"]


def test_result_cards_and_unknown_components() -> None:
    result = {"result": "It is sunny.", "create_time": "2025-01-02T08:00:00+00:00"}
    state = fold(
        ev(
            "component_generator",
            "r",
            {"component_type": "scheduled_task_result", "content": json.dumps(result)},
        ),
        ev("component_generator", "x", {"component_type": "chart", "content": "not json"}),
    )
    out = text_of(state.render())
    assert "It is sunny." in out
    assert "result · " in out
    assert "chart" in out
    assert "not json" in out


def test_a_question_tells_how_to_answer() -> None:
    state = fold(ev("plan_require_user_input", "q", {"content": "Which city?"}))
    out = text_of(state.render())
    assert "Which city?" in out
    assert f'taskcell tasks answer {TASK} "..."' in out
    assert state.status == "waiting_input"
    state.apply(ev("message_chunk", "m", {"content": "Paris it is"}))
    assert state.status == "running"


def test_done_after_completion_finishes_a_once_task() -> None:
    state = fold(
        ev("task_started", role="system"),
        ev("message_chunk", "m1", {"content": "ok"}),
        ev("task_completed", role="system"),
    )
    assert state.finished
    state.apply(ev("done", role="system"))
    assert state.runs_done == 1
    out = text_of(state.render())
    assert "status: completed" in out
    assert state.last_seq is not None


def test_failures_are_shown_with_their_reason() -> None:
    state = fold(
        ev("plan_failed", payload={"content": "the agent is unreachable"}, role="system"),
        ev("task_failed", payload={"content": "gave up after 3 attempts"}, role="system"),
    )
    out = text_of(state.render())
    assert "✗ plan failed: the agent is unreachable" in out
    assert "✗ task failed: gave up after 3 attempts" in out
    assert "status: failed" in out
    assert state.finished


def test_a_recurring_task_keeps_going_after_done() -> None:
    state = fold(
        ev("task_started", role="system"),
        ev("done", role="system"),
        pattern="recurring",
    )
    assert not state.finished
    assert "1 run(s) done; watching for the next run" in text_of(state.render())


def test_markup_in_content_is_shown_verbatim() -> None:
    state = fold(ev("message_chunk", "m", {"content": "[bold]x[/bold] [red]"}))
    assert "[bold]x[/bold] [red]" in text_of(state.render())


def test_iter_sse_reads_ids_and_data_and_skips_comments() -> None:
    lines = [
        ": ping",
        "id: 1",
        'data: {"seq": 1}',
        "",
        ": keep-alive",
        "",
        "id: 2",
        "event: message",
        "data: line one",
        "data: line two",
        "",
        "id: 3",
        'data:{"seq": 3}',
    ]
    messages = list(iter_sse(lines))
    assert [(m.id, m.event, m.data) for m in messages] == [
        ("1", None, '{"seq": 1}'),
        ("2", "message", "line one\nline two"),
        ("3", None, '{"seq": 3}'),
    ]


def test_tail_keeps_the_newest_lines_in_view() -> None:
    state = WatchState(task_id=TASK)
    for n in range(40):
        state.apply(ev("message", f"m{n}", {"content": f"line {n}"}))
    out = text_of(Tail(state.render), height=10)
    assert "line 39" in out
    assert "line 0\n" not in out
    assert "line(s) above" in out
    assert len(out.splitlines()) <= 10
