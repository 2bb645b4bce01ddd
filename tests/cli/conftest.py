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


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
