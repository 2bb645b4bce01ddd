"""Auth that cannot be misconfigured quietly: a key list that names no valid key refuses to
start, showing no key material; URLs with passwords are redacted in logs (issue 12)."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from typer.testing import CliRunner

from taskcell.agents.remote import classify_error
from taskcell.api.app import create_app
from taskcell.api.auth import KeyConfigError, Role, parse_api_keys
from taskcell.cli import app as cli
from taskcell.cli.serve import banner, exposure_problem
from taskcell.settings import Settings, redact_url

from .conftest import ServerFactory, settings_for

SECRET = "Zq9-secret-key-material"

REFUSED = [
    (",", "entry 1 is empty"),
    (" , ", "entry 1 is empty"),
    (f"{SECRET}:alice:user,", "entry 2 is empty"),
    (f"{SECRET}:alice", "entry 1 must be KEY:USER:ROLE"),
    (f"{SECRET}:alice:user:extra", "entry 1 must be KEY:USER:ROLE"),
    (f"{SECRET}::user", "entry 1 must be KEY:USER:ROLE"),
    (f"{SECRET}:alice:root", "entry 1: the role must be user or admin"),
    (f"{SECRET}:alice:user,{SECRET}:bob:admin", "entry 2 repeats the key of entry 1"),
    (f"{SECRET}:alice:user,other:bob:user, {SECRET} :carol:user", "entry 3 repeats"),
]


@pytest.mark.parametrize(("text", "words"), REFUSED, ids=[w for _, w in REFUSED])
def test_key_lists_that_name_no_valid_key_are_refused_without_key_material(
    text: str, words: str, tmp_path: Path
) -> None:
    with pytest.raises(KeyConfigError) as caught:
        parse_api_keys(text)
    message = str(caught.value)
    assert words in message, message
    assert SECRET[:3] not in message, message
    with pytest.raises(KeyConfigError):
        create_app(settings_for(tmp_path / "k.db", api_keys=text))
    for host in ("0.0.0.0", "127.0.0.1"):
        problem = exposure_problem(Settings(api_keys=text, host=host), insecure_no_auth=False)
        assert problem is not None and words in problem and SECRET[:3] not in problem, problem


def test_valid_key_lists_and_no_keys_are_taken() -> None:
    assert parse_api_keys("") == {}
    assert parse_api_keys("   ") == {}
    keys = parse_api_keys(f" {SECRET}:alice:user , k2:root:admin ")
    assert {k: (c.user_id, c.role) for k, c in keys.items()} == {
        SECRET: ("alice", Role.USER),
        "k2": ("root", Role.ADMIN),
    }


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_serve_refuses_to_start_with_an_empty_key_list(
    host: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``TASKCELL_API_KEYS=","`` used to serve with no authentication while saying "API keys"."""
    monkeypatch.setenv("TASKCELL_API_KEYS", ",")
    result = CliRunner().invoke(
        cli, ["serve", "--host", host, "--port", "9", "--db", str(tmp_path / "s.db")]
    )
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert "refusing to serve" in out and "entry 1 is empty" in out, out
    assert "Traceback" not in result.output


def test_serve_shows_no_key_material_for_a_malformed_entry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TASKCELL_API_KEYS", f"{SECRET}:alice:user,{SECRET}-2:bob")
    result = CliRunner().invoke(
        cli, ["serve", "--host", "0.0.0.0", "--port", "9", "--db", str(tmp_path / "s.db")]
    )
    assert result.exit_code == 2, result.output
    assert "entry 2 must be KEY:USER:ROLE" in " ".join(result.output.split())
    assert SECRET[:3] not in result.output and "Traceback" not in result.output


def test_the_banner_tells_the_truth_about_auth() -> None:
    keyed = Settings(api_keys="k1:alice:user,k2:alice:admin,k3:bob:user", host="0.0.0.0")
    text = _render(banner(keyed, insecure=False))
    assert "3 key(s) for 2 user(s)" in text and "k1" not in text, text
    open_loopback = _render(banner(Settings(api_keys=""), insecure=False))
    assert "none (loopback only)" in open_loopback, open_loopback


def _render(panel: object) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(panel)
    return " ".join(console.export_text().split())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/tasks", "postgresql://app:***@db:5432/tasks"),
        ("postgresql://:s3cret@db/tasks", "postgresql://:***@db/tasks"),
        ("postgresql://app:s3cret@[::1]:5432/tasks", "postgresql://app:***@[::1]:5432/tasks"),
        ("postgresql://app:p%40ss@db/tasks", "postgresql://app:***@db/tasks"),
        ("postgresql://app@db/tasks", "postgresql://app@db/tasks"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


async def test_the_serving_log_line_redacts_the_database_password(
    postgres_database: str, server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL here trusts local logins, so a URL with a made-up password still connects."""
    parts = urlsplit(postgres_database)
    user = parts.username or "postgres"
    host = parts.netloc.rpartition("@")[2]
    with_password = urlunsplit(parts._replace(netloc=f"{user}:hunter2-pw@{host}"))
    caplog.set_level(logging.INFO)
    async with (
        server_factory(database_url=with_password) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        assert (await client.get("/api/v1/health")).status_code == 200
    serving = [r for r in caplog.records if r.getMessage() == "taskcell serving"]
    assert serving, [r.getMessage() for r in caplog.records]
    logged = " ".join(f"{r.__dict__}" for r in caplog.records)
    assert "hunter2-pw" not in logged
    assert f"{user}:***@" in str(serving[0].__dict__.get("database_url")), serving[0].__dict__


def test_agent_errors_redact_a_password_in_the_agent_url() -> None:
    """An agent's error becomes a task's error_message, shown to users: never a password."""
    error = classify_error(httpx.ConnectError("refused"), "shout", "http://bot:pw-123@h:1/a2a")
    assert "pw-123" not in str(error) and "http://bot:***@h:1/a2a" in str(error), str(error)
