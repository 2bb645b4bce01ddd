"""mypy --strict on a program that uses ``taskcell.client`` as an installed package: the
``py.typed`` marker is shipped, so the client's types reach its users."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

USER_PROGRAM = """
from taskcell.client import ApiError, AsyncClient, Client, Task, TaskEvent


def newest_titles(client: Client) -> list[str]:
    return [task.title for task in client.tasks.iter(status="running")]


def answer_of(client: Client, query: str) -> str:
    task: Task = client.tasks.create(query, agent="echo")
    events: list[TaskEvent] = list(client.watch(task.task_id))
    return "".join(e.content or "" for e in events if e.event == "message_chunk")


async def count(client: AsyncClient) -> int:
    try:
        return len([task async for task in client.tasks.iter()])
    except ApiError as error:
        return error.code
"""

WRONG_PROGRAM = """
from taskcell.client import Client

def wrong(client: Client) -> int:
    return client.tasks.get("x").title
"""


def run_mypy(folder: Path, program: str) -> subprocess.CompletedProcess[str]:
    (folder / "user.py").write_text(textwrap.dedent(program))
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("MYPYPATH", None)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "user.py"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.timeout(300)
def test_a_users_program_type_checks_strictly(tmp_path: Path) -> None:
    result = run_mypy(tmp_path, USER_PROGRAM)
    assert result.returncode == 0, result.stdout + result.stderr
    wrong = run_mypy(tmp_path, WRONG_PROGRAM)
    assert 'Incompatible return value type (got "str", expected "int")' in wrong.stdout, (
        wrong.stdout + wrong.stderr
    )
