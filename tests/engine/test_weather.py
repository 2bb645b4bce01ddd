"""Outages are weather: which errors are I/O, and the supervisor waiting them out (a bug, not)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from taskcell.abc import StoreUnavailable
from taskcell.engine.supervisor import Supervisor
from taskcell.outages import is_outage
from taskcell.testing import bind_loopback


def sqlite_error(tmp_path: Path, statement: str, *, read_only: bool = False) -> sqlite3.Error:
    """The error SQLite itself raises for ``statement`` (on a read-only connection if asked)."""
    path = tmp_path / "x.db"
    setup = sqlite3.connect(path)
    setup.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY)")
    setup.execute("INSERT OR IGNORE INTO t VALUES (1)")
    setup.commit()
    setup.close()
    conn = sqlite3.connect(f"file:{path}?mode=ro" if read_only else path, uri=read_only)
    try:
        conn.execute(statement)
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError(f"{statement!r} did not fail")


def test_io_errors_are_outages_and_bugs_are_not(tmp_path: Path) -> None:
    read_only = sqlite_error(tmp_path, "INSERT INTO t VALUES (2)", read_only=True)
    duplicate = sqlite_error(tmp_path, "INSERT INTO t VALUES (1)")
    no_table = sqlite_error(tmp_path, "SELECT * FROM missing")
    outages = [
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        StoreUnavailable("file replaced"),
        read_only,
        # asyncpg, when PostgreSQL restarts in the middle of a statement:
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 11; another operation (12) is in progress"
        ),
    ]
    bugs = [
        ValueError("bad"),
        KeyError("k"),
        RuntimeError("boom"),
        duplicate,
        no_table,
        asyncpg.exceptions.InternalClientError("protocol violation"),
    ]
    assert [is_outage(e) for e in outages] == [True] * len(outages), outages
    assert [is_outage(e) for e in bugs] == [False] * len(bugs), bugs


async def test_a_refused_connection_is_an_outage() -> None:
    import asyncpg

    with bind_loopback(listen=False) as sock:  # bound, never listening: refuses
        port = sock.getsockname()[1]
        with pytest.raises(Exception) as raised:
            await asyncpg.connect(f"postgresql://x@127.0.0.1:{port}/x", timeout=5)
    assert is_outage(raised.value), repr(raised.value)


async def test_the_supervisor_waits_out_an_outage_and_stops_for_a_bug() -> None:
    failures: list[str] = []
    supervisor = Supervisor(lambda name, _: failures.append(name))
    attempts = 0
    back = asyncio.Event()

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise ConnectionRefusedError(111, "the database is down")
        back.set()
        await asyncio.Event().wait()

    async def buggy() -> None:
        raise RuntimeError("a bug")

    supervisor.start("flaky", flaky)
    try:
        await asyncio.wait_for(back.wait(), 30)  # back-off: well under a second each here
        assert attempts == 4 and supervisor.alive("flaky"), attempts
        assert supervisor.outages == {} and not supervisor.failed.is_set(), supervisor.outages
        supervisor.start("buggy", buggy)
        await asyncio.wait_for(supervisor.failed.wait(), 30)
        assert failures == ["buggy"], failures
        assert supervisor.failure is not None and "a bug" in supervisor.failure
        assert supervisor.alive("flaky")
    finally:
        await supervisor.stop()


async def test_a_pass_waiting_for_the_store_shows_in_outages() -> None:
    supervisor = Supervisor()
    failed_once = asyncio.Event()
    go_on = asyncio.Event()

    async def step() -> str:
        if not go_on.is_set():
            failed_once.set()
            raise TimeoutError("the statement did not answer")
        return "done"

    pass_ = asyncio.create_task(supervisor.weather("scheduler", step))
    await asyncio.wait_for(failed_once.wait(), 30)
    assert "TimeoutError" in supervisor.outages.get("scheduler", ""), supervisor.outages
    go_on.set()
    assert await asyncio.wait_for(pass_, 30) == "done"
    assert supervisor.outages == {}, supervisor.outages
