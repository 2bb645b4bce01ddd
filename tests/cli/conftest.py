"""Fixtures of the command-line tests."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from taskcell.cli import common


@pytest.fixture(autouse=True)
def wide_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich would wrap at 80 columns under the test runner; lines are easier to assert whole."""
    for console in (common.console, common.err_console):
        monkeypatch.setattr(console, "_width", 160)


@pytest.fixture(autouse=True)
def no_user_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No taskcell.toml and no TASKCELL_* variables of the developer's leak into a test."""
    for name in ("TASKCELL_API_KEYS", "TASKCELL_URL", "TASKCELL_API_KEY", "TASKCELL_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TASKCELL_CONFIG", str(tmp_path_factory.mktemp("cfg") / "none.toml"))


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
