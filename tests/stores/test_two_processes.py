"""Two OS processes doing conflicting transitions on the same 500 tasks in one SQLite file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from taskcell import SQLiteTaskStore, Task, TaskStatus
from taskcell.abc import TaskFilter

WORKER = r"""
import asyncio, json, pathlib, random, sys, time
from taskcell import SQLiteTaskStore, TaskStatus

async def main(path, role, ids):
    store = SQLiteTaskStore(path)
    random.Random(role).shuffle(ids)
    folder = pathlib.Path(path).parent
    (folder / f"ready-{role}").touch()
    while len(list(folder.glob("ready-*"))) < 2:  # start together, so they really race
        time.sleep(0.002)
    done = {}
    async def one(task_id):
        if role == "finisher":
            started = await store.transition(task_id, TaskStatus.RUNNING)
            completed = started and await store.transition(task_id, TaskStatus.COMPLETED)
            done[task_id] = completed
        else:
            done[task_id] = await store.transition(task_id, TaskStatus.CANCELLED)
    began = time.time()
    for start in range(0, len(ids), 25):
        await asyncio.gather(*(one(t) for t in ids[start:start + 25]))
    ended = time.time()
    await store.close()
    print(json.dumps({"done": done, "began": began, "ended": ended}))

asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())))
"""


async def test_conflicting_processes_leave_each_task_in_exactly_one_state(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    store = SQLiteTaskStore(path)
    ids = []
    for _ in range(500):
        task = Task(query="race", agent_name="echo")
        await store.save(task)
        ids.append(task.task_id)

    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            str(path),
            role,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for role in ("finisher", "canceller")
    ]
    outputs = await asyncio.gather(*(p.communicate(json.dumps(ids).encode()) for p in procs))
    assert [p.returncode for p in procs] == [0, 0]
    reports = [json.loads(out) for out, _ in outputs]
    completed, cancelled = (report["done"] for report in reports)

    final = {t.task_id: t.status for t in (await store.list_tasks(TaskFilter(), limit=500)).items}
    await store.close()
    assert sorted(final) == sorted(ids)
    for task_id in ids:
        # Exactly one process reports the final change, and that change is what is stored.
        assert completed[task_id] != cancelled[task_id], task_id
        expected = TaskStatus.COMPLETED if completed[task_id] else TaskStatus.CANCELLED
        assert final[task_id] is expected, task_id
    # The two processes really ran at the same time.
    assert max(r["began"] for r in reports) < min(r["ended"] for r in reports)
