"""``taskcell.client.Client`` against a real ``taskcell serve``: every method, every error the
server can be made to answer, and the retry rule (idempotent calls only)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from live_server import LiveServer
from serving import closed_port
from taskcell.client import (
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Run,
    ScheduleConfig,
    Task,
    TaskNotFound,
    Unauthorized,
    ValidationFailed,
)
from taskcell.testing import bind_loopback

HOURLY = {"interval_minutes": 60}


def events_until_done(client: Client, task_id: str) -> list[str]:
    return [event.event for event in client.watch(task_id)]


def test_a_once_task_from_creation_to_deletion(alice: Client) -> None:
    task = alice.tasks.create("hello there world", agent="echo", title="greeting")
    assert isinstance(task, Task)
    assert (task.agent_name, task.title, task.user_id) == ("echo", "greeting", "alice")

    events = list(alice.watch(task.task_id))
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), events
    assert events[-2].event == "task_completed" and events[-1].event == "done", events
    said = "".join(e.content or "" for e in events if e.event == "message_chunk")
    assert said == "hello there world"

    done = alice.tasks.get(task.task_id)
    assert done.status.value == "completed"
    runs = alice.tasks.runs(task.task_id)
    assert [run.status.value for run in runs.items] == ["completed"]
    assert isinstance(runs.items[0], Run) and runs.items[0].result == "hello there world"
    assert [r.run_id for r in alice.tasks.iter_runs(task.task_id)] == [runs.items[0].run_id]

    history = list(alice.conversations.iter_items(task.conversation_id, page_size=2))
    assert {item.task_id for item in history} == {task.task_id}
    assert any(item.event == "message" and item.role == "agent" for item in history), history

    assert list(alice.watch(task.task_id, after=events[-1].seq)) == []
    deleted = alice.tasks.delete(task.task_id)
    assert (deleted.task_id, deleted.deleted) == (task.task_id, True)
    with pytest.raises(TaskNotFound):
        alice.tasks.get(task.task_id)


def test_a_recurring_task_is_paused_resumed_run_and_cancelled(alice: Client) -> None:
    schedule = ScheduleConfig(daily_time="07:30", timezone="Asia/Tokyo")
    task = alice.tasks.create(
        "what time is it?", agent="clock", schedule=schedule, run_immediately=False
    )
    assert task.pattern.value == "recurring" and task.schedule_config == schedule
    assert alice.tasks.pause(task.task_id).paused is True
    assert alice.tasks.resume(task.task_id).paused is False
    upcoming = alice.tasks.upcoming(task.task_id, count=3)
    assert upcoming.timezone == "Asia/Tokyo" and len(upcoming.items) == 3, upcoming
    assert [fire.local.strftime("%H:%M") for fire in upcoming.items] == ["07:30"] * 3

    run = alice.tasks.run_now(task.task_id)
    assert run.task_id == task.task_id and run.status.value == "running"
    for event in alice.watch(task.task_id):
        if event.component_type == "scheduled_task_result":
            assert "Asia/Tokyo" in (event.content or ""), event
            break

    cancelled = alice.tasks.cancel(task.task_id)
    assert cancelled.success and cancelled.updated_component_ids == [f"{task.task_id}:controller"]
    assert alice.tasks.cancel(task.task_id).success  # cancelling again changes nothing
    assert alice.tasks.get(task.task_id).status.value == "cancelled"
    assert events_until_done(alice, task.task_id)[-2:] == ["task_cancelled", "done"]


def test_a_question_is_answered(alice: Client) -> None:
    task = alice.tasks.create("introduce yourself", agent="asker")
    for event in alice.watch(task.task_id):
        if event.event == "plan_require_user_input":
            assert event.content == "What is your name?"
            break
    answered = alice.tasks.answer(task.task_id, "Ada")
    assert answered.status.value in ("running", "completed")
    said = [e.content for e in alice.watch(task.task_id) if e.data.role == "agent" and e.content]
    assert any("Hello, Ada." in (text or "") for text in said), said


def test_streaming_create_ends_at_the_first_done(alice: Client) -> None:
    events = list(alice.stream("one two three", "echo", title="streamed"))
    assert events[0].seq == 1 and events[-1].event == "done", events
    task = alice.tasks.get(events[0].data.task_id)
    assert (task.title, task.status.value) == ("streamed", "completed")


def test_the_service_calls(alice: Client) -> None:
    names = [agent.name for agent in alice.agents.list()]
    assert names == sorted(names) and {"echo", "clock", "asker"} <= set(names)
    health = alice.health()
    assert health.status == "ok" and health.store and len(health.processes) == 1
    assert "taskcell_runs_total" in alice.metrics()


def test_each_user_sees_only_their_own_tasks(alice: Client, bob: Client, admin: Client) -> None:
    mine = alice.tasks.create("private", agent="clock", schedule=HOURLY, run_immediately=False)
    with pytest.raises(TaskNotFound) as seen:
        bob.tasks.get(mine.task_id)
    assert seen.value.code == 404
    with pytest.raises(TaskNotFound):
        bob.tasks.cancel(mine.task_id)
    with pytest.raises(TaskNotFound):
        list(bob.watch(mine.task_id))
    assert mine.task_id not in {t.task_id for t in bob.tasks.iter(pattern="recurring")}
    assert mine.task_id in {t.task_id for t in admin.tasks.iter(user_id="alice")}
    alice.tasks.cancel(mine.task_id)


def test_every_error_answer_is_its_own_exception(server: LiveServer, alice: Client) -> None:
    with pytest.raises(ValidationFailed) as refused:
        alice.tasks.create(
            "x", agent="clock", schedule={"daily_time": "09:00", "timezone": "Mars/Base"}
        )
    assert (refused.value.code, refused.value.field_names()) == (
        400,
        ["schedule_config.timezone"],
    )
    assert "unknown time zone 'Mars/Base'" in refused.value.msg

    with pytest.raises(ValidationFailed) as shape:
        alice.tasks.list(limit=0)
    assert (shape.value.code, shape.value.field_names()) == (422, ["query.limit"])

    once = alice.tasks.create("a b", agent="echo")
    list(alice.watch(once.task_id))
    for act in (alice.tasks.cancel, alice.tasks.pause, alice.tasks.run_now, alice.tasks.upcoming):
        with pytest.raises(Conflict) as conflict:
            act(once.task_id)
        assert conflict.value.code == 409
    with pytest.raises(Conflict):
        alice.tasks.answer(once.task_id, "nobody asked")

    with pytest.raises(NotFound) as missing:
        alice.conversations.items("no-such-conversation")
    assert not isinstance(missing.value, TaskNotFound)
    with pytest.raises(Forbidden):
        alice.tasks.list(user_id="bob")
    with pytest.raises(PayloadTooLarge):
        alice.tasks.create("big", agent="echo", metadata={"blob": "x" * 1_100_000})
    with Client(server.url, "wrong-key") as stranger, pytest.raises(Unauthorized) as who:
        stranger.tasks.list()
    assert who.value.msg == "unknown API key"
    with Client(server.url, "") as nobody, pytest.raises(Unauthorized):
        nobody.agents.list()


def test_a_server_that_is_not_there() -> None:
    with closed_port() as port, Client(f"http://127.0.0.1:{port}", "", retries=1) as client:
        with pytest.raises(ConnectionFailed, match="is `taskcell serve` running"):
            client.tasks.get("x" * 32)


@contextmanager
def hanging_up() -> Iterator[tuple[str, list[int]]]:
    """A port that accepts each connection and closes it unanswered; counts the connections."""
    sock = bind_loopback()
    sock.setblocking(True)
    sock.settimeout(0.1)
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            accepted.append(1)
            conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    thread = threading.Thread(target=serve, name="hang-up", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()


def test_only_idempotent_calls_are_retried_on_a_connection_error() -> None:
    with hanging_up() as (url, accepted), Client(url, "", retries=2) as client:
        with pytest.raises(ConnectionFailed, match="lost the connection"):
            client.tasks.get("t" * 32)
        assert len(accepted) == 3, f"a read is tried three times, saw {len(accepted)}"
        with pytest.raises(ConnectionFailed):
            client.tasks.cancel("t" * 32)
        assert len(accepted) == 6, f"cancel is safe to repeat, saw {len(accepted)}"
        for call in (
            lambda: client.tasks.create("x", agent="echo"),
            lambda: client.tasks.run_now("t" * 32),
            lambda: client.tasks.answer("t" * 32, "hi"),
            lambda: client.tasks.delete("t" * 32),
        ):
            before = len(accepted)
            with pytest.raises(ConnectionFailed):
                call()
            assert len(accepted) == before + 1, f"sent once, saw {len(accepted) - before}"
