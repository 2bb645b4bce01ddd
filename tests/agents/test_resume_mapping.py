"""Update ids across streams: a live stream and a resumed task's snapshot name the same
agent output alike, so a resumed run can tell what it already has."""

from __future__ import annotations

from a2a.types import (
    Artifact,
    Message,
    Part,
    Role,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)

from taskcell.agents.a2a_events import StreamMapper, covered
from taskcell.agents.base import UpdateKind


def agent_message(message_id: str, text: str) -> Message:
    return Message(message_id=message_id, role=Role.ROLE_AGENT, parts=[Part(text=text)])


def status(message_id: str, text: str) -> StreamResponse:
    event = TaskStatusUpdateEvent(
        task_id="t1",
        context_id="c1",
        status=TaskStatus(
            state=TaskState.TASK_STATE_WORKING, message=agent_message(message_id, text)
        ),
    )
    return StreamResponse(status_update=event)


def artifact_chunk(text: str, *, append: bool) -> StreamResponse:
    event = TaskArtifactUpdateEvent(
        task_id="t1",
        context_id="c1",
        artifact=Artifact(artifact_id="a1", parts=[Part(text=text)]),
        append=append,
    )
    return StreamResponse(artifact_update=event)


def test_a_snapshot_names_history_and_artifact_parts_as_the_live_stream_did() -> None:
    live = StreamMapper()
    seen = [
        u.update_id
        for response in (
            status("m1", "tick 1 "),
            status("m2", "tick 2 "),
            artifact_chunk("part one ", append=False),
            artifact_chunk("part two ", append=True),
        )
        for u in live.feed(response)
        if u.update_id is not None
    ]
    assert seen == ["msg:m1", "msg:m2", "art:a1:1", "art:a1:2"], seen

    task = Task(
        id="t1",
        context_id="c1",
        status=TaskStatus(state=TaskState.TASK_STATE_COMPLETED),
        history=[
            Message(message_id="u1", role=Role.ROLE_USER, parts=[Part(text="go")]),
            agent_message("m1", "tick 1 "),
            agent_message("m2", "tick 2 "),
            agent_message("m3", "tick 3 "),
        ],
        artifacts=[
            Artifact(
                artifact_id="a1",
                parts=[Part(text="part one "), Part(text="part two "), Part(text="part three")],
            )
        ],
    )
    resumed = StreamMapper().snapshot(task)
    kinds = [(u.kind, u.update_id, u.text) for u in resumed]
    assert kinds == [
        (UpdateKind.ACCEPTED, None, ""),
        (UpdateKind.WORKING, "msg:m1", "tick 1 "),
        (UpdateKind.WORKING, "msg:m2", "tick 2 "),
        (UpdateKind.WORKING, "msg:m3", "tick 3 "),
        (UpdateKind.ARTIFACT, "art:a1:1", "part one "),
        (UpdateKind.ARTIFACT, "art:a1:2", "part two "),
        (UpdateKind.ARTIFACT, "art:a1:3", "part three"),
        (UpdateKind.COMPLETED, None, ""),
    ], kinds
    new = [u.text for u in resumed if u.update_id and not covered(u.update_id, seen)]
    assert new == ["tick 3 ", "part three"], f"only what the live stream missed, saw {new}"


def test_covered_counts_artifact_parts_and_nothing_else() -> None:
    assert covered("art:a1:2", ["art:a1:3"])
    assert not covered("art:a1:4", ["art:a1:3"])
    assert not covered("art:a10:1", ["art:a1:3"]), "another artifact whose id starts alike"
    assert covered("msg:m1", {"msg:m1"})
    assert not covered("msg:m1", {"msg:m10"})
    assert not covered(None, {"msg:m1"})
