"""``taskcell db upgrade`` on a real SQLite file."""

from __future__ import annotations

import re
import sqlite3
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskcell.cli import app


def _newest_sqlite_version() -> int:
    files = resources.files("taskcell.stores.sql.sqlite").iterdir()
    return max(int(m.group(1)) for f in files if (m := re.match(r"(\d+)_.*\.sql$", f.name)))


def test_db_upgrade_creates_the_schema_and_prints_its_version(
    runner: CliRunner, tmp_path: Path
) -> None:
    db = tmp_path / "sub" / "tasks.db"
    result = runner.invoke(app, ["db", "upgrade", "--db", str(db)])
    assert result.exit_code == 0, result.output
    newest = _newest_sqlite_version()
    assert f"schema version {newest}" in result.output
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == newest
        assert conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 0

    again = runner.invoke(app, ["db", "upgrade", "--db", f"sqlite:///{db}"])
    assert again.exit_code == 0, again.output
    assert f"schema version {newest}" in again.output


def test_db_upgrade_uses_the_configured_database(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "configured.db"
    monkeypatch.setenv("TASKCELL_DATABASE_URL", f"sqlite:///{db}")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert db.exists()


def test_db_upgrade_reports_a_bad_url(runner: CliRunner) -> None:
    result = runner.invoke(app, ["db", "upgrade", "--db", "sqlite://nothing"])
    assert result.exit_code == 1
    assert "cannot upgrade" in result.output
