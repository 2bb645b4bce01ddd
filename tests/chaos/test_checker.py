"""The checker finds each kind of violation in a made-up end state, and none in a clean one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from . import checker
from .snapshot import Snapshot
from .workload import Acked, Stream

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=4)


def event(seq: int, kind: str, run_id: str | None = None, item_id: str = "") -> dict[str, Any]:
    return {
        "seq": seq,
        "event": kind,
        "data": {"run_id": run_id, "item_id": item_id},
        "created_at": (NOW - timedelta(seconds=60 - seq)).isoformat(),
        "_stored_seq": seq,
    }


def run(run_id: str, attempt: int, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "task_id": "t",
        "attempt": attempt,
        "status": status,
        "scheduled_for": None,
        "started_at": NOW - timedelta(seconds=50),
        "finished_at": NOW - timedelta(seconds=40),
        "owner": "vm:1:x",
        "lease_expires_at": NOW - timedelta(seconds=30),
        **extra,
    }


def once(status: str, runs: list[dict[str, Any]], log: list[dict[str, Any]]) -> Snapshot:
    snap = Snapshot(NOW)
    snap.tasks["t"] = {
        "task_id": "t",
        "pattern": "once",
        "status": status,
        "paused": False,
        "schedule_config": None,
        "started_at": NOW - timedelta(minutes=1),
        "updated_at": NOW - timedelta(seconds=40),
    }
    snap.runs["t"] = runs
    snap.events["t"] = log
    return snap


OPENING = [event(1, "thread_started"), event(2, "message")]


def clean() -> Snapshot:
    return once(
        "completed",
        [run("r1", 1, "interrupted"), run("r2", 2, "completed")],
        [
            *OPENING,
            event(3, "task_started", "r1"),
            event(4, "task_started", "r2"),
            event(5, "task_completed", "r2"),
            event(6, "done", "r2"),
        ],
    )


def everything(snap: Snapshot, read: dict[str, Stream] | None = None) -> list[checker.Violation]:
    acked = {"t": Acked("t", "echo", "once", "A", 0.0)}
    return [
        *checker.occurrences(snap, timedelta(seconds=20)),
        *checker.settled(snap),
        *checker.concurrent(snap),
        *checker.logs(snap, acked),
        *checker.stuck(snap, LEASE),
        *checker.streams(snap, read or {}),
    ]


def test_a_clean_end_state_has_no_violation() -> None:
    snap = clean()
    stream = Stream(
        "t", [{k: v for k, v in e.items() if k != "_stored_seq"} for e in snap.log_of("t")]
    )
    stream.ended = True
    assert everything(snap, {"t": stream}) == []


def test_a_stale_attempt_that_settles_after_the_takeover_breaks_three_invariants() -> None:
    snap = clean()
    snap.events["t"] += [event(7, "message_chunk", "r1"), event(8, "task_completed", "r1")]
    found = {v.invariant for v in everything(snap)}
    assert found == {checker.SETTLED, checker.CONCURRENT, checker.LOG}, found


def test_a_gap_a_lost_opening_and_a_stuck_run_are_found() -> None:
    snap = once(
        "running",
        [run("r1", 1, "running")],
        [event(1, "task_started", "r1"), event(3, "message_chunk", "r1")],
    )
    found = {(v.invariant, v.detail.split(":")[0]) for v in everything(snap)}
    assert (checker.LOG, "gaps in the log") in found, found
    assert (checker.LOG, "opening events missing") in found, found
    assert (checker.STUCK, "running with no run under a live lease") in found, found


def test_a_stream_that_differs_from_the_log_or_never_ends_is_found() -> None:
    snap = clean()
    short = Stream("t", [{"seq": 1, "event": "thread_started"}], ended=True)
    open_ended = Stream("t", [], ended=False)
    assert [v.invariant for v in checker.streams(snap, {"t": short})] == [checker.STREAMS]
    details = [v.detail for v in checker.streams(snap, {"t": open_ended})]
    assert len(details) == 1 and details[0].startswith("stream never ended"), details


def test_a_missing_occurrence_and_a_result_of_an_interrupted_run_are_found() -> None:
    snap = Snapshot(NOW)
    anchor = NOW - timedelta(minutes=3)
    snap.tasks["r"] = {
        "task_id": "r",
        "pattern": "recurring",
        "status": "running",
        "paused": False,
        "schedule_config": {"interval_minutes": 1},
        "started_at": anchor,
        "updated_at": anchor,
    }
    snap.runs["r"] = [
        run("o0", 1, "completed", task_id="r", scheduled_for=anchor),
        run("o2", 1, "interrupted", task_id="r", scheduled_for=anchor + timedelta(minutes=2)),
    ]
    snap.events["r"] = [event(1, "done"), event(2, "component_generator", "o2", "o2:result")]
    found = {(v.invariant, v.detail) for v in everything(snap)}
    missing = anchor + timedelta(minutes=1)
    assert (checker.OCCURRENCES, f"no run for {missing:%H:%M:%S}") in found, found
    assert (checker.OCCURRENCES, f"no run for {NOW:%H:%M:%S}") not in found  # within the settle
    assert any(i == checker.SETTLED and "interrupted" in d for i, d in found), found
