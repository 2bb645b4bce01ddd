"""``taskcell tasks edit`` end to end, against the real app on a real server, and the Python
client's ``tasks.edit`` (sync and async)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from taskcell.api.app import create_app
from taskcell.cli import app, common
from taskcell.client import AsyncClient, Client, Conflict, ScheduleConfig
from taskcell.settings import Settings
from taskcell.testing import serve_app_in_thread


@pytest.fixture(autouse=True)
def wide_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    for console in (common.console, common.err_console):
        monkeypatch.setattr(console, "_width", 160)


@contextmanager
def served(tmp_path: Path) -> Iterator[str]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'tasks.db'}", api_keys="")

    def make(base_url: str) -> Any:
        return create_app(settings.with_overrides(public_url=base_url))

    with serve_app_in_thread(app_factory=make) as url:
        yield url


def created_id(output: str) -> str:
    found = re.search(r"created task ([0-9a-f]{32})", output)
    assert found, output
    return found.group(1)


def test_tasks_edit_changes_what_it_is_given(tmp_path: Path) -> None:
    runner = CliRunner()
    with served(tmp_path) as url:
        made = runner.invoke(
            app,
            [
                "tasks",
                "create",
                "hello",
                "-a",
                "echo",
                "--every",
                "60",
                "--no-run-now",
                *["--url", url],
            ],
        )
        assert made.exit_code == 0, made.output
        task_id = created_id(made.output)
        edit = ["tasks", "edit", task_id[:8], "--url", url]
        result = runner.invoke(
            app,
            [
                *edit,
                *["--title", "standup", "--cron", "0 9 * * MON-FRI", "--tz", "Europe/Berlin"],
                *["--query", "what is new?", "--max-attempts", "4", "--metadata", '{"team": "a"}'],
            ],
        )
        assert result.exit_code == 0, result.output
        assert f"edited task {task_id} · version 2" in result.output
        assert "0 9 * * MON-FRI" in result.output or "09:00" in result.output, result.output
        with Client(url) as client:
            task = client.tasks.get(task_id)
        assert (task.title, task.query, task.max_attempts) == ("standup", "what is new?", 4)
        berlin = ScheduleConfig(cron="0 9 * * MON-FRI", timezone="Europe/Berlin")
        assert task.schedule_config == berlin
        assert task.metadata == {"team": "a"} and task.version == 2
        # --tz alone moves the schedule it has to another zone.
        zone = runner.invoke(app, [*edit, "--tz", "America/New_York", "--if-version", "2"])
        assert zone.exit_code == 0, zone.output
        with Client(url) as client:
            task = client.tasks.get(task_id)
        assert task.schedule_config is not None
        assert task.schedule_config.timezone == "America/New_York" and task.version == 3
        # A stale --if-version: 409, said in words, nothing changed.
        stale = runner.invoke(app, [*edit, "--title", "late", "--if-version", "2"])
        assert stale.exit_code == 1
        assert "error 409" in stale.output and "version 3, not 2" in stale.output, stale.output
        # Bad input: the field named.
        bad = runner.invoke(app, [*edit, "--max-attempts", "0"])
        assert bad.exit_code == 1 and "max_attempts" in bad.output, bad.output
        nothing = runner.invoke(app, edit)
        assert nothing.exit_code == 2 and "nothing to change" in nothing.output, nothing.output
        shown = runner.invoke(app, ["tasks", "show", task_id, "--url", url])
        assert shown.exit_code == 0 and re.search(r"version\s+3", shown.output), shown.output


async def test_the_clients_edit(tmp_path: Path) -> None:
    with served(tmp_path) as url:
        with Client(url) as client:
            task = client.tasks.create(
                "hello", agent="echo", schedule={"interval_minutes": 30}, run_immediately=False
            )
            edited = client.tasks.edit(
                task.task_id, title="t", schedule_config=ScheduleConfig(interval_minutes=5)
            )
            assert (edited.version, edited.title) == (2, "t")
            assert edited.schedule_config == ScheduleConfig(interval_minutes=5)
            with pytest.raises(Conflict, match="version 2, not 1"):
                client.tasks.edit(task.task_id, if_version=1, title="late")
        async with AsyncClient(url) as aclient:
            again = await aclient.tasks.edit(task.task_id, if_version=2, metadata={"k": 1})
            assert again.version == 3 and again.metadata == {"k": 1}
