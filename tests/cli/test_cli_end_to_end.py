"""The command line against the real taskcell app on a real server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from taskcell.api.app import create_app
from taskcell.cli import app
from taskcell.settings import Settings
from taskcell.testing import serve_app_in_thread


@contextmanager
def served(tmp_path: Path) -> Iterator[str]:
    """A real taskcell server on an SQLite file in ``tmp_path``, in a thread; its URL."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'tasks.db'}", api_keys="")

    def make(base_url: str) -> Any:
        return create_app(settings.with_overrides(public_url=base_url))

    with serve_app_in_thread(app_factory=make) as url:
        yield url


def test_create_and_watch_an_echo_task(runner: CliRunner, tmp_path: Path) -> None:
    with served(tmp_path) as url:
        args = ["tasks", "create", "hello world", "--agent", "echo", "--watch", "--url", url]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "hello world" in result.output
        assert "status: completed" in result.output

        listed = runner.invoke(app, ["tasks", "list", "--url", url])
        assert listed.exit_code == 0, listed.output
        assert "hello world" in listed.output
        assert "completed" in listed.output


def test_status_shows_the_checks_and_the_live_process(runner: CliRunner, tmp_path: Path) -> None:
    with served(tmp_path) as url:
        result = runner.invoke(app, ["status", "--url", url])
    assert result.exit_code == 0, result.output
    assert "healthy" in result.output
    assert "store ok" in result.output and "scheduler ok" in result.output
    assert "1 live process serves this database" in result.output
    assert f":{os.getpid()}:" in result.output  # the server runs in this process's thread
    assert "answered this request" in result.output


def test_status_of_a_server_that_is_not_there(runner: CliRunner) -> None:
    result = runner.invoke(app, ["status", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "127.0.0.1:9" in result.output


def test_create_a_cron_task_and_show_its_next_fires(runner: CliRunner, tmp_path: Path) -> None:
    with served(tmp_path) as url:
        args = ["tasks", "create", "standup", "--agent", "echo", "--no-run-now", "--url", url]
        cron = ["--cron", "30 9 * * MON-FRI", "--tz", "Europe/Berlin"]
        created = runner.invoke(app, [*args, *cron])
        assert created.exit_code == 0, created.output
        assert "cron 30 9 * * MON-FRI Europe/Berlin" in created.output
        task_id = created.output.split("created task ", 1)[1].split(" ", 1)[0]

        shown = runner.invoke(app, ["tasks", "show", task_id, "--url", url])
        assert shown.exit_code == 0, shown.output
        assert "next fires · at 09:30 on Monday through Friday (Europe/Berlin)" in shown.output
        fire_lines = [line for line in shown.output.splitlines() if " 09:30 +0" in line]
        assert len(fire_lines) == 5, shown.output
        assert all(line.split()[0] in {"Mon", "Tue", "Wed", "Thu", "Fri"} for line in fire_lines)

        bad = runner.invoke(app, [*args, "--cron", "0 9 * * MON-FRX"])
        assert bad.exit_code == 1, bad.output
        assert "schedule_config.cron" in bad.output
        assert "cron field 5 (day-of-week) 'MON-FRX' is not valid" in bad.output
