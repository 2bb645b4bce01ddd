"""``taskcell db prune``, ``taskcell export`` and retention's settings, on real SQLite files."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskcell.cli import app, common, export
from taskcell.settings import SettingsError, load_settings
from taskcell.stores.sqlite import SQLiteTaskStore

from .fill import DAY, T0, once_task, recurring_task


@pytest.fixture(autouse=True)
def wide_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    for console in (common.console, common.err_console):
        monkeypatch.setattr(console, "_width", 160)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def counts(db: Path) -> tuple[int, int, int, int]:
    """(tasks, runs, events, items) in the file."""
    with sqlite3.connect(db) as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("tasks", "runs", "events", "conversation_items")
        )


def small_history(db: Path) -> None:
    """Old finished tasks, a running one and a recurring one with old runs (T0 is long past)."""

    async def fill() -> None:
        store = SQLiteTaskStore(db)
        await store.open()
        try:
            await once_task(store, "old", created=T0 - 41 * DAY, finished=T0 - 40 * DAY)
            await once_task(
                store, "old2", created=T0 - 41 * DAY, finished=T0 - 40 * DAY, conversation="c2"
            )
            await once_task(store, "busy", created=T0, finished=None, events=3, items=1)
            starts = [T0 - 45 * DAY, T0 - 40 * DAY, T0 - 20 * DAY]
            await recurring_task(store, "rec", starts, open_last=False)
        finally:
            await store.close()

    asyncio.run(fill())


def test_db_prune_dry_run_changes_nothing_then_prune_removes_it(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "history.db"
    small_history(db)
    before = counts(db)
    monkeypatch.setenv("TASKCELL_RETENTION_RUNS", "1")
    dry = runner.invoke(app, ["db", "prune", "--db", str(db), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert counts(db) == before
    assert "would remove" in dry.output
    # The old once tasks' 10 events and 4 items; rec: 2 opening events and two runs' 6 events;
    # its three runs all finished more than 30 days before today.
    assert re.search(r"events\W+18\W", dry.output), dry.output
    real = runner.invoke(app, ["db", "prune", "--db", str(db)])
    assert real.exit_code == 0, real.output
    tasks, runs, events, items = counts(db)
    assert (tasks, runs, events, items) == (before[0], before[1] - 3, before[2] - 18, before[3] - 4)
    for line in ("events", "items", "runs"):
        assert line in real.output
    again = runner.invoke(app, ["db", "prune", "--db", str(db)])
    assert counts(db) == (tasks, runs, events, items), again.output


def test_bad_retention_settings_name_the_setting(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKCELL_RETENTION_DAYS", "0")
    result = runner.invoke(app, ["db", "prune", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2
    assert "TASKCELL_RETENTION_DAYS (retention_days in taskcell.toml)" in result.output
    assert "greater than 0" in result.output
    assert not (tmp_path / "x.db").exists()
    monkeypatch.delenv("TASKCELL_RETENTION_DAYS")
    toml = tmp_path / "taskcell.toml"
    toml.write_text('retention_runs = "many"\n', encoding="utf-8")
    monkeypatch.setenv("TASKCELL_CONFIG", str(toml))
    with pytest.raises(SettingsError, match=r"TASKCELL_RETENTION_RUNS \(retention_runs"):
        load_settings()
    served = runner.invoke(app, ["serve", "--db", str(tmp_path / "y.db")])
    assert served.exit_code == 2
    assert "retention_runs" in served.output


def test_export_round_trip_has_every_task_run_and_event_once(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "history.db"
    small_history(db)
    monkeypatch.setattr(export, "PAGE", 2)  # every list is read in several pages
    result = runner.invoke(app, ["export", "--db", str(db)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    with sqlite3.connect(db) as conn:
        tasks = sorted(row[0] for row in conn.execute("SELECT task_id FROM tasks"))
        runs = sorted(row[0] for row in conn.execute("SELECT run_id FROM runs"))
        events = sorted(conn.execute("SELECT task_id, seq FROM events").fetchall())
        items = sorted(row[0] for row in conn.execute("SELECT item_id FROM conversation_items"))
    assert sorted(line["task"]["task_id"] for line in lines) == tasks
    assert sorted(run["run_id"] for line in lines for run in line["runs"]) == runs
    exported = sorted(
        (line["task"]["task_id"], event["seq"]) for line in lines for event in line["events"]
    )
    assert exported == [tuple(e) for e in events]
    assert sorted(i["item_id"] for line in lines for i in line["items"]) == items
    for line in lines:  # each run and event is its task's
        assert all(run["task_id"] == line["task"]["task_id"] for run in line["runs"])
        assert all(e["data"]["task_id"] == line["task"]["task_id"] for e in line["events"])


def test_export_of_one_task_a_conversation_or_since_a_date(
    runner: CliRunner, tmp_path: Path
) -> None:
    db = tmp_path / "history.db"
    small_history(db)

    def ids(*args: str) -> list[str]:
        result = runner.invoke(app, ["export", "--db", str(db), *args])
        assert result.exit_code == 0, result.output
        return sorted(json.loads(x)["task"]["task_id"] for x in result.stdout.splitlines())

    assert ids("--task", "rec") == ["rec"]
    assert ids("--conversation", "c2") == ["old2"]
    assert ids("--since", (T0 - DAY).date().isoformat()) == ["busy"]
    missing = runner.invoke(app, ["export", "--db", str(db), "--task", "nope"])
    assert missing.exit_code == 1 and "no task nope" in missing.output
    bad = runner.invoke(app, ["export", "--db", str(db), "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since" in bad.output
    both = runner.invoke(app, ["export", "--db", str(db), "--task", "a", "--since", "2026-01-01"])
    assert both.exit_code == 2
