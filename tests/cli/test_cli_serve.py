"""``taskcell serve``: the database URL forms, the refusal to expose an open server, and the
refusal of a database it cannot use."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from serving import closed_port
from taskcell.cli import app, serve
from taskcell.cli.serve import is_loopback, resolve_db_url
from taskcell.settings import Settings, redact_url


def test_resolve_db_url_takes_sqlite_urls_postgres_urls_and_paths(tmp_path: Path) -> None:
    assert resolve_db_url("sqlite:///tmp/x.db") == "sqlite:///tmp/x.db"
    assert resolve_db_url("sqlite+aiosqlite:///tmp/x.db") == "sqlite:///tmp/x.db"
    assert resolve_db_url("postgresql://u:p@db:5432/tc") == "postgresql://u:p@db:5432/tc"
    assert resolve_db_url("postgresql+asyncpg://u@db/tc") == "postgresql://u@db/tc"
    assert resolve_db_url(str(tmp_path / "a.db")) == f"sqlite:///{tmp_path / 'a.db'}"


def test_resolve_db_url_makes_a_relative_path_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_db_url("data/tasks.db") == f"sqlite:///{tmp_path.resolve() / 'data/tasks.db'}"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.4", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_redact_url_hides_the_password() -> None:
    assert redact_url("postgresql://u:secret@db/tc") == "postgresql://u:***@db/tc"
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"


def test_serve_refuses_a_public_host_without_keys(runner: CliRunner) -> None:
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", "9"])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "refusing to serve on 0.0.0.0: no API keys are configured" in out
    assert "TASKCELL_API_KEYS" in out
    assert "--insecure-no-auth" in out
    assert "default_user" in out


class _Recorder:
    """Stands in for the server module and uvicorn's run: records what serve would start."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.settings: Settings | None = None
        self.config: uvicorn.Config | None = None
        module = types.ModuleType("taskcell.api.app")
        module.create_app = self._create_app  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "taskcell.api.app", module)
        recorder = self

        def run(server: uvicorn.Server, sockets: Any = None) -> None:
            recorder.config = server.config

        monkeypatch.setattr(uvicorn.Server, "run", run)

    def _create_app(self, settings: Settings, **_: Any) -> object:
        self.settings = settings
        return object()


def test_serve_with_insecure_no_auth_starts_and_says_so(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorder = _Recorder(monkeypatch)
    db = tmp_path / "t.db"
    result = runner.invoke(
        app, ["serve", "--host", "0.0.0.0", "--port", "8123", "--db", str(db), "--insecure-no-auth"]
    )
    assert result.exit_code == 0, result.output
    assert recorder.settings is not None
    assert recorder.settings.host == "0.0.0.0"
    assert recorder.settings.port == 8123
    assert recorder.settings.database_url == f"sqlite:///{db}"
    assert recorder.config is not None
    assert (recorder.config.host, recorder.config.port, recorder.config.lifespan) == (
        "0.0.0.0",
        8123,
        "on",
    )
    assert "http://0.0.0.0:8123/" in result.output
    assert "http://0.0.0.0:8123/docs" in result.output
    assert f"sqlite:///{db}" in result.output
    assert "NONE" in result.output


def test_serve_on_a_public_host_with_keys_starts(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = _Recorder(monkeypatch)
    monkeypatch.setattr(serve, "database_problem", lambda url: None)  # no server at h
    monkeypatch.setenv("TASKCELL_API_KEYS", "k1:alice:admin")
    result = runner.invoke(
        app, ["serve", "--host", "0.0.0.0", "--db", "postgresql+asyncpg://u:pw@h/d"]
    )
    assert result.exit_code == 0, result.output
    assert recorder.settings is not None
    assert recorder.settings.database_url == "postgresql://u:pw@h/d"
    assert "postgresql://u:***@h/d" in result.output
    assert "pw" not in result.output


def test_serve_on_loopback_needs_no_keys(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = _Recorder(monkeypatch)
    result = runner.invoke(app, ["serve", "--port", "8124"])
    assert result.exit_code == 0, result.output
    assert recorder.config is not None
    assert recorder.config.host == "127.0.0.1"
    assert "http://127.0.0.1:8124/" in result.output


def test_serve_refuses_a_postgres_database_nobody_answers_at(runner: CliRunner) -> None:
    with closed_port() as port:  # nothing listens there
        result = runner.invoke(app, ["serve", "--db", f"postgresql://postgres@127.0.0.1:{port}/x"])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert f"cannot open the PostgreSQL database 127.0.0.1:{port}/x" in out
    assert "Traceback" not in out


def test_serve_refuses_an_sqlite_file_it_cannot_make(runner: CliRunner, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["serve", "--db", str(blocker / "tasks.db")])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "cannot use the SQLite database" in out
    assert "Traceback" not in out
