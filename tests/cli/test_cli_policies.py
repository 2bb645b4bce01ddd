"""``taskcell tasks create --overlap/--catchup/--catchup-window`` and ``tasks backfill``
against the real app on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from taskcell.api.app import create_app
from taskcell.cli import app
from taskcell.settings import Settings
from taskcell.testing import serve_app_in_thread


@contextmanager
def served(tmp_path: Path) -> Iterator[str]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'tasks.db'}", api_keys="")

    def make(base_url: str) -> Any:
        return create_app(settings.with_overrides(public_url=base_url))

    with serve_app_in_thread(app_factory=make) as url:
        yield url


def test_create_with_policies_show_them_and_backfill(runner: CliRunner, tmp_path: Path) -> None:
    with served(tmp_path) as url:
        args = ["tasks", "create", "tick", "--agent", "echo", "--every", "60", "--no-run-now"]
        policies = ["--overlap", "buffer_all", "--catchup", "all", "--catchup-window", "7200"]
        created = runner.invoke(app, [*args, *policies, "--url", url])
        assert created.exit_code == 0, created.output
        task_id = created.output.split("created task ", 1)[1].split(" ", 1)[0]
        shown = runner.invoke(app, ["tasks", "show", task_id, "--url", url])
        assert shown.exit_code == 0, shown.output
        assert "buffer_all" in shown.output
        assert "all (window 7200 s)" in shown.output

        task = httpx.get(f"{url}/api/v1/tasks/{task_id}").json()["data"]
        armed = datetime.fromisoformat(task["next_run_at"])
        # [armed - 4 h, armed - 1 h): three hourly occurrences on the task's grid.
        start = (armed - timedelta(hours=4)).isoformat()
        end = (armed - timedelta(hours=1)).isoformat()
        done = runner.invoke(
            app, ["tasks", "backfill", task_id, "--start", start, "--end", end, "--url", url]
        )
        assert done.exit_code == 0, done.output
        assert "backfilled 3 occurrence(s)" in done.output
        assert done.output.count("queued") == 2 and "running" in done.output
        again = runner.invoke(
            app, ["tasks", "backfill", task_id, "--start", start, "--end", end, "--url", url]
        )
        assert again.exit_code == 0, again.output
        assert "backfilled 0 occurrence(s)" in again.output
        assert "3 occurrence(s) had a run already" in again.output


def test_bad_policy_and_range_are_named(runner: CliRunner, tmp_path: Path) -> None:
    with served(tmp_path) as url:
        args = ["tasks", "create", "tick", "--agent", "echo", "--every", "60", "--no-run-now"]
        bad = runner.invoke(app, [*args, "--overlap", "sometimes", "--url", url])
        assert bad.exit_code == 1, bad.output
        assert "overlap" in bad.output and "buffer_one" in bad.output
        created = runner.invoke(app, [*args, "--url", url])
        task_id = created.output.split("created task ", 1)[1].split(" ", 1)[0]
        reversed_range = [
            "tasks",
            "backfill",
            task_id,
            "--start",
            "2026-03-02T00:00:00Z",
            "--end",
            "2026-03-01T00:00:00Z",
            "--url",
            url,
        ]
        refused = runner.invoke(app, reversed_range)
        assert refused.exit_code == 1, refused.output
        assert "end" in refused.output and "after start" in refused.output
