"""examples/mcp_recurring_clock.py, end to end: an MCP client over stdio to ``taskcell mcp``
schedules a recurring task for the clock agent, waits for two results and cancels it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from live_server import ALICE, LiveServer
from taskcell.client import Client

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mcp_recurring_clock.py"


@pytest.mark.timeout(120)
def test_the_example_schedules_waits_for_two_results_and_cancels(server: LiveServer) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--url", server.url, "--key", ALICE],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    output = done.stdout
    assert done.returncode == 0, output + done.stderr
    created = re.search(r"created ([0-9a-f]{32}): Berlin clock", output)
    assert created, output
    results = re.findall(r"^result \d: (.*)$", output, re.MULTILINE)
    assert len(results) == 2 and all("Europe/Berlin" in text for text in results), output
    assert f"cancelled {created.group(1)}: True" in output

    with Client(server.url, ALICE) as alice:
        task = alice.tasks.get(created.group(1))
        runs = list(alice.tasks.iter_runs(task.task_id))
    assert (task.status.value, task.pattern.value) == ("cancelled", "recurring")
    assert [run.status.value for run in runs] == ["completed", "completed"], runs
