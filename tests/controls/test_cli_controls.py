"""The command line's controls against the real taskcell app on a real server: a run time-out
at creation, pause with a note (and ``tasks show``), bulk actions by ids and by filter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from taskcell.api.app import create_app
from taskcell.cli import app, common
from taskcell.client import Client
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
    return output.split("created task ", 1)[1].split(" ", 1)[0]


def test_timeout_pause_note_and_show(tmp_path: Path) -> None:
    runner = CliRunner()
    with served(tmp_path) as url:
        args = ["tasks", "create", "report", "--agent", "echo", "--every", "30", "--no-run-now"]
        created = runner.invoke(app, [*args, "--timeout", "120", "--url", url])
        assert created.exit_code == 0, created.output
        task_id = created_id(created.output)
        paused = runner.invoke(app, ["tasks", "pause", task_id, "--note", "db move", "--url", url])
        assert paused.exit_code == 0, paused.output
        assert "paused" in paused.output and "(db move)" in paused.output
        shown = runner.invoke(app, ["tasks", "show", task_id, "--url", url])
        assert shown.exit_code == 0, shown.output
        assert "run time-out  120 s" in shown.output
        assert "pause note    db move" in shown.output
        assert "next fires · every 30 minutes" in shown.output  # upcoming, as before
        bad = runner.invoke(app, ["tasks", "pause", task_id, "--note", "a\nb", "--url", url])
        assert bad.exit_code == 1 and "note" in bad.output
        refused = runner.invoke(app, [*args, "--timeout", "0", "--url", url])
        assert refused.exit_code == 1 and "run_timeout_seconds" in refused.output
        edit = ["tasks", "edit", task_id, "--url", url]
        edited = runner.invoke(app, [*edit, "--timeout", "45"])
        assert edited.exit_code == 0, edited.output
        with Client(url) as client:
            assert client.tasks.get(task_id).run_timeout_seconds == 45
            assert runner.invoke(app, [*edit, "--timeout", "0"]).exit_code == 0
            assert client.tasks.get(task_id).run_timeout_seconds is None


def test_bulk_by_filter_and_by_ids(tmp_path: Path) -> None:
    runner = CliRunner()
    with served(tmp_path) as url:
        args = ["tasks", "create", "report", "--agent", "echo", "--every", "30", "--no-run-now"]
        ids = [created_id(runner.invoke(app, [*args, "--url", url]).output) for _ in range(3)]
        paused = runner.invoke(
            app,
            ["tasks", "bulk", "pause", "--status", "running", "--note", "freeze", "--url", url],
        )
        assert paused.exit_code == 0, paused.output
        assert "pause: 3 task(s), all done" in paused.output
        with Client(url) as client:
            assert all(client.tasks.get(t).pause_note == "freeze" for t in ids)
        once = runner.invoke(app, ["tasks", "create", "hi", "--agent", "echo", "--url", url])
        once_id = created_id(once.output)
        resumed = runner.invoke(app, ["tasks", "bulk", "resume", ids[0], once_id, "--url", url])
        assert resumed.exit_code == 1, resumed.output  # the once task cannot be resumed
        assert "1 done, 1 refused" in resumed.output and "409" in resumed.output
        cancelled = runner.invoke(
            app, ["tasks", "bulk", "cancel", "--pattern", "recurring", "--yes", "--url", url]
        )
        assert cancelled.exit_code == 0, cancelled.output
        assert "cancel: 3 task(s), all done" in cancelled.output
        nothing = runner.invoke(app, ["tasks", "bulk", "pause", "--url", url])
        assert nothing.exit_code == 2  # neither ids nor a filter nor --all
        wrong = runner.invoke(app, ["tasks", "bulk", "explode", "--all", "--url", url])
        assert wrong.exit_code == 2
