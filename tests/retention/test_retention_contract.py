"""Retention over every store (the contract suite's style): exactly the right rows removed."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from taskcell.abc import Store
from taskcell.domain.models import Run, RunStatus, Task
from taskcell.engine.pruner import PruneReport, RetentionPolicy, prune
from taskcell.metrics import RETENTION_REMOVED
from taskcell.stores.memory import InMemoryTaskStore
from taskcell.stores.postgres import PostgresTaskStore
from taskcell.stores.sqlite import SQLiteTaskStore

from .fill import DAY, T0, event, once_task, recurring_task

POLICY = RetentionPolicy(days=30, runs=2)


async def snapshot(store: Store, task_ids: list[str]) -> dict[str, object]:
    """Everything retention may touch, per task."""
    seen: dict[str, object] = {}
    for task_id in task_ids:
        task = await store.load(task_id)
        assert task is not None, f"retention removed task {task_id}"
        events = await store.read_events(task_id, after=0, limit=10_000)
        runs = (await store.list_runs(task_id, limit=500)).items
        items = await store.task_items(task_id)
        seen[task_id] = (
            [e.seq for e in events],
            sorted(r.run_id for r in runs),
            sorted(i.item_id for i in items),
            await store.log_start(task_id),
            await store.last_seq(task_id),
        )
    return seen


async def history(store: Store) -> dict[str, object]:
    """A small history; answers what each task holds."""
    tasks = {}
    # A: finished 40 days ago, alone in its conversation: events and items go.
    tasks["a"] = await once_task(store, "a", created=T0 - 41 * DAY, finished=T0 - 40 * DAY)
    # B: finished 10 days ago: kept.
    tasks["b"] = await once_task(store, "b", created=T0 - 11 * DAY, finished=T0 - 10 * DAY)
    # C: unfinished (running for 100 days): nothing of it goes.
    tasks["c"] = await once_task(store, "c", created=T0 - 100 * DAY, finished=None)
    # D: finished 40 days ago, but its conversation has a task created yesterday (E):
    # its events go, its items stay.
    tasks["d"] = await once_task(
        store, "d", created=T0 - 41 * DAY, finished=T0 - 40 * DAY, conversation="busy"
    )
    tasks["e"] = await once_task(
        store, "e", created=T0 - DAY, finished=T0 - DAY, conversation="busy"
    )
    # R: recurring, runs 45, 40, 20 and 10 days ago and one running now; keep 2 runs.
    starts = [T0 - 45 * DAY, T0 - 40 * DAY, T0 - 20 * DAY, T0 - 10 * DAY, T0 - timedelta(hours=1)]
    tasks["r"], runs = await recurring_task(store, "r", starts)
    return {"tasks": tasks, "runs": runs}


@pytest.mark.parametrize("batch_rows", [2, 500])
async def test_retention_removes_exactly_what_the_rules_say(store: Store, batch_rows: int) -> None:
    made = await history(store)
    runs = made["runs"]
    ids = ["a", "b", "c", "d", "e", "r"]
    before = await snapshot(store, ids)
    policy = RetentionPolicy(days=30, runs=2, batch_rows=batch_rows)
    with time_machine.travel(T0, tick=True):
        report = await prune(store, policy)
    assert (report.events, report.items, report.runs) == (5 + 5 + 11, 2, 2), report
    after = await snapshot(store, ids)
    # Kept whole: B (recent), C (unfinished), E (recent).
    for task_id in ("b", "c", "e"):
        assert after[task_id] == before[task_id], task_id
    # A: every event and item gone, the task and its run kept; its log still numbers after 5.
    assert after["a"] == ([], before["a"][1], [], 5, 5)  # type: ignore[index]
    # D: events gone, items kept (its conversation is newer).
    assert after["d"] == ([], before["d"][1], before["d"][2], 5, 5)  # type: ignore[index]
    # R: the opening events and the first three runs' events go (2 + 9); the runs that
    # finished more than 30 days ago go (the first two); the open run and its events stay.
    kept_runs = sorted(r.run_id for r in runs[2:])  # type: ignore[index]
    assert after["r"] == (list(range(12, 18)), kept_runs, [], 11, 17)
    # A second round finds nothing more.
    with time_machine.travel(T0, tick=True):
        again = await prune(store, policy)
    assert again.rows == 0, again


async def test_a_dry_run_counts_the_same_and_changes_nothing(store: Store) -> None:
    await history(store)
    ids = ["a", "b", "c", "d", "e", "r"]
    before = await snapshot(store, ids)
    with time_machine.travel(T0, tick=True):
        dry = await prune(store, POLICY, dry_run=True)
        assert await snapshot(store, ids) == before
        real = await prune(store, POLICY)
    assert dry.removed == real.removed == {"events": 21, "items": 2, "runs": 2, "deliveries": 0}, (
        dry,
        real,
    )


async def test_nothing_a_live_reader_has_yet_to_read_is_removed(store: Store) -> None:
    await history(store)
    floors = {"a": 3, "r": 4}
    with time_machine.travel(T0, tick=True):
        report = await prune(store, POLICY, reader_floor=floors.get)
    assert report.held_for_readers == 2, report
    assert [e.seq for e in await store.read_events("a")] == [4, 5]
    assert await store.log_start("a") == 3
    assert len(await store.task_items("a")) == 2  # its items wait for the reader too
    assert next(e.seq for e in await store.read_events("r")) == 5
    # The reader gone, the next round removes the rest.
    with time_machine.travel(T0, tick=True):
        await prune(store, POLICY)
    assert await store.read_events("a") == []
    assert await store.task_items("a") == []
    assert next(e.seq for e in await store.read_events("r")) == 12


async def test_time_moving_on_makes_kept_history_due(store: Store) -> None:
    await history(store)
    with time_machine.travel(T0 + 25 * DAY, tick=True):  # B finished 35 days ago now
        report = await prune(store, POLICY)
    assert await store.read_events("b") == []
    assert await store.log_start("b") == 5
    assert (await store.read_events("c"))[0].seq == 1  # unfinished: still whole
    assert isinstance(report, PruneReport)


async def test_nothing_is_removed_before_its_time(store: Store) -> None:
    await history(store)
    with time_machine.travel(T0 - 20 * DAY, tick=True):  # A finished 20 days before that
        report = await prune(store, RetentionPolicy(days=30, runs=100))
    assert report.rows == 0, report


async def test_appends_after_pruning_go_on_after_the_removed_seqs(store: Store) -> None:
    _, _runs = await recurring_task(store, "r", [T0 - 45 * DAY, T0 - 40 * DAY, T0 - DAY])
    with time_machine.travel(T0, tick=True):
        await prune(store, RetentionPolicy(days=30, runs=1))
    assert await store.log_start("r") == 11 - 3  # the opening events and the first two runs
    assert await store.last_seq("r") == 11


def _removed_so_far() -> dict[str, float]:
    return {
        kind: RETENTION_REMOVED.labels(kind=kind)._value.get()
        for kind in ("events", "items", "runs", "deliveries")
    }


async def test_metrics_count_removed_rows_as_the_round_goes(store: Store) -> None:
    """A first round over a long history takes a while: ``/metrics`` shows its progress, task
    by task, not only when it ends; a dry run counts nothing there."""
    await history(store)
    start = _removed_so_far()
    seen: list[tuple[dict[str, int], dict[str, float]]] = []

    def progress(report: PruneReport) -> None:
        now = _removed_so_far()
        seen.append((dict(report.removed), {k: now[k] - start[k] for k in now}))

    with time_machine.travel(T0, tick=True):
        await prune(store, POLICY, dry_run=True, progress=progress)
        assert all(counted == dict.fromkeys(counted, 0) for _, counted in seen), seen
        seen.clear()
        report = await prune(store, POLICY, progress=progress)
    assert len(seen) > 1 and report.rows > 0
    for removed, counted in seen:  # after each task, the metric holds what the round removed
        assert counted == {kind: float(rows) for kind, rows in removed.items()}, seen


async def test_each_run_records_where_its_log_stood(store: Store) -> None:
    """However a run is stored (``add_run``, or an occurrence under the overlap policy), the
    cut retention reads is the task's last seq when the run was made: found without reading
    an event."""
    await recurring_task(store, "r", [T0 - 3 * DAY, T0 - 2 * DAY], open_last=False)  # seqs 1-8
    when = T0 - DAY
    made = await store.add_occurrences(
        "r",
        [
            Run(
                task_id="r",
                scheduled_for=when,
                created_at=when,
                started_at=when,
                owner="p1",
                lease_expires_at=when + timedelta(days=365),
            )
        ],
    )
    assert made is not None and len(made.runs) == 1
    await store.append_events([event(await loaded(store, "r"), 9, when)], [])
    cuts = {keep: (await store.recurring_log_cuts(keep))[0] for keep in (1, 2, 3)}
    assert cuts[1].through == 8, "the occurrence was made after seq 8"
    assert cuts[2].through == 5, "the second run was made after the opening events and a run"
    assert (cuts[3].through, cuts[3].kept_from) == (None, None), "no run older than the kept"
    assert cuts[1].kept_from == when and cuts[1].oldest_run_at == T0 - 3 * DAY
    # The occurrence still running, its events are kept whatever the policy.
    assert made.runs[0].status is RunStatus.RUNNING


async def test_runs_made_before_log_positions_are_cut_by_event_times(store: Store) -> None:
    """A database from before runs recorded ``log_from``: the same rows go, the cut found
    from the events' times."""
    await history(store)
    await forget_log_positions(store)
    cut = next(c for c in await store.recurring_log_cuts(2) if c.task_id == "r")
    assert cut.through is None and cut.kept_from == T0 - 10 * DAY
    with time_machine.travel(T0, tick=True):
        report = await prune(store, POLICY)
    assert (report.events, report.items, report.runs) == (5 + 5 + 11, 2, 2), report
    assert await store.log_start("r") == 11


async def loaded(store: Store, task_id: str) -> Task:
    task = await store.load(task_id)
    assert task is not None
    return task


async def forget_log_positions(store: Store) -> None:
    """Every run as a database made before schema version 14 holds it (no ``log_from``)."""
    if isinstance(store, SQLiteTaskStore):
        await store.write(lambda conn: conn.execute("UPDATE runs SET log_from = NULL"))
    elif isinstance(store, PostgresTaskStore):
        await (await store.pool()).execute("UPDATE runs SET log_from = NULL")
    else:
        assert isinstance(store, InMemoryTaskStore)
        store._log_from.clear()
