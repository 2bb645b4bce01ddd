"""The engine's pruner: a supervised loop named ``pruner`` that never removes what a live
stream of this process has yet to send."""

from __future__ import annotations

from datetime import timedelta

import time_machine

from taskcell.abc import Store
from taskcell.agents.registry import AgentRegistry
from taskcell.engine.engine import Engine, RetentionPolicy
from taskcell.metrics import RETENTION_ROUNDS

from .fill import DAY, T0, recurring_task

STARTS = [T0 - 45 * DAY, T0 - 40 * DAY, T0 - 20 * DAY, T0 - 10 * DAY, T0 - timedelta(hours=1)]


async def test_the_pruner_holds_back_for_a_live_reader_then_prunes(store: Store) -> None:
    await recurring_task(store, "r", STARTS)
    engine = Engine(store, AgentRegistry(), retention=RetentionPolicy(days=30, runs=2))
    await engine.start(recover=False, schedule=False)
    try:
        assert engine.supervisor.alive("pruner")
        assert engine.pruner is not None
        reader = engine.subscribe_batches("r", after=3)
        first = await anext(reader)  # a live reader that was given seq 4 to 17
        assert [e.seq for e in first] == list(range(4, 18))
        rounds = RETENTION_ROUNDS._value.get()
        with time_machine.travel(T0, tick=True):
            held = await engine.pruner.round()
        assert RETENTION_ROUNDS._value.get() == rounds + 1, "/metrics counts finished rounds"
        assert held.held_for_readers == 1
        assert await store.log_start("r") == 3  # only what the reader had passed
        await reader.aclose()
        with time_machine.travel(T0, tick=True):
            report = await engine.pruner.round()
        assert await store.log_start("r") == 11
        assert report.events == 8 and report.runs == 0  # runs went in the first round
    finally:
        await engine.stop()


async def test_a_server_without_retention_has_no_pruner(store: Store) -> None:
    engine = Engine(store, AgentRegistry())
    await engine.start(recover=False, schedule=False)
    try:
        assert engine.pruner is None
        assert not engine.supervisor.alive("pruner")
    finally:
        await engine.stop()
