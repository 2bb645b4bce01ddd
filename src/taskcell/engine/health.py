"""How this process is doing: the store, the background loops, the live processes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from taskcell.abc import ProcessInfo, Store
from taskcell.engine.supervisor import Supervisor
from taskcell.engine.weather import describe, is_outage

#: How long a health check waits for the list of live processes (the store check has its own
#: bound).
PROCESSES_QUERY_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Health:
    """``status``: "ok"; "degraded" while the store is unavailable (the service waits the
    outage out); "failing" if a background loop died. ``problem`` says why, if not ok."""

    status: str
    store: bool
    scheduler: bool
    event_log: bool
    problem: str | None
    processes: list[ProcessInfo] = field(default_factory=list)


async def check_health(store: Store, supervisor: Supervisor, dead_after: timedelta) -> Health:
    """The store answers (within about a second, whatever it does), the scheduler and event
    log writer run; which processes serve the database (a heartbeat within ``dead_after``)."""
    problem = await store.check()
    processes: list[ProcessInfo] = []
    if problem is None:
        try:
            async with asyncio.timeout(PROCESSES_QUERY_SECONDS):
                processes = await store.live_processes(dead_after)
        except Exception as exc:
            if not is_outage(exc):
                raise
            problem = f"the store did not answer: {describe(exc)}"
    store_ok = problem is None
    if problem is None and supervisor.outages:
        name, why = sorted(supervisor.outages.items())[0]
        problem = f"{name}: waiting for the store ({why})"
    scheduler_ok = supervisor.alive("scheduler")
    log_ok = supervisor.alive("event-log-writer")
    status = "ok"
    if not (scheduler_ok and log_ok):
        status, problem = "failing", supervisor.failure or problem
    elif problem is not None:
        status = "degraded"
    return Health(status, store_ok, scheduler_ok, log_ok, problem, processes)
