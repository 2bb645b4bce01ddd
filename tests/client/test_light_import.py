"""A program that only talks to a server imports ``taskcell.client`` without loading the
stores, the engine or a database driver; the package's own names still load when used."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

PROGRAM = """
import sys
import taskcell.client
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'asyncpg', 'sqlite3'}
               or m.startswith(('taskcell.stores', 'taskcell.engine', 'taskcell.agents')))
print(','.join(heavy))
import taskcell
print(taskcell.TaskService.__name__, taskcell.InMemoryTaskStore.__name__)
"""


def test_the_client_loads_no_store_engine_or_driver() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=50, check=False
    )
    assert done.returncode == 0, done.stderr
    heavy, names = done.stdout.splitlines()
    assert heavy == "", f"importing taskcell.client loaded: {heavy}"
    assert names == "TaskService InMemoryTaskStore"
