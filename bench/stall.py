"""/api/v1/health while the disk stalls: answered within a second, and nothing acknowledged lost.

Runs ``taskcell serve`` on an SQLite file with a steady workload (one client creating echo tasks
one after another) and a probe asking ``/api/v1/health`` on a fresh connection every 0.25 s.
Then it stalls the database for ``--seconds``:

- ``fsfreeze`` (as root, where ``mount -o loop`` works): the file lives on a small ext4 image
  mounted for the run, and the file system is frozen, so every write to it waits for the thaw;
- ``lock`` (anywhere): another connection holds the database's exclusive lock, so every write
  of the server waits in SQLite's busy timeout (5 s), fails, and the next one waits again.

It prints the health answers during the stall (latency, status) and checks afterwards that
every task the server acknowledged exists and completes. Usage::

    python bench/stall.py [--mode auto|fsfreeze|lock] [--seconds 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from results import Row, write_rows

PROBE_EVERY = 0.25
TARGET_MS = 1000.0


def can_freeze() -> bool:
    return os.geteuid() == 0 and all(shutil.which(t) for t in ("fsfreeze", "mkfs.ext4", "mount"))


@contextlib.contextmanager
def frozen_fs(tmp: Path) -> Iterator[Path]:
    """A 64 MiB ext4 file system mounted under ``tmp``; yields the mount point."""
    image, mount = tmp / "fs.img", tmp / "mnt"
    mount.mkdir()
    with image.open("wb") as f:
        f.truncate(64 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["fsfreeze", "-u", str(mount)], capture_output=True)
        subprocess.run(["umount", "-l", str(mount)], check=False)


def start_server(db: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "TASKCELL_LOG_LEVEL": "WARNING", "TASKCELL_AGENTS": "{}"}
    server = subprocess.Popen(
        [sys.executable, "-m", "taskcell.cli", "serve", "--port", "0", "--db", str(db)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert server.stdout is not None
    for line in server.stdout:
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if found:
            return server, f"http://127.0.0.1:{found.group(1)}"
    raise RuntimeError("the server printed no address")


async def wait_healthy(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/api/v1/health")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"no healthy server at {url}")


async def workload(url: str, stop: asyncio.Event, acknowledged: list[str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while not stop.is_set():
            try:
                answer = await client.post(
                    "/api/v1/tasks", json={"agent_name": "echo", "query": "stall bench"}
                )
            except httpx.TransportError:
                continue
            if answer.status_code == 201:
                acknowledged.append(answer.json()["data"]["task_id"])


async def probe(url: str, stop: asyncio.Event, seen: list[tuple[float, float, int]]) -> None:
    """(moment, latency, status) of a health request on a new connection every PROBE_EVERY."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        while not stop.is_set():
            start = time.monotonic()
            try:
                status = (await client.get("/api/v1/health")).status_code
            except httpx.TransportError:
                status = 0
            seen.append((start, time.monotonic() - start, status))
            await asyncio.sleep(max(0.0, PROBE_EVERY - (time.monotonic() - start)))


async def settled(url: str, task_ids: list[str]) -> tuple[int, int]:
    """(missing, not completed) among ``task_ids``, after waiting up to 60 s for them."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        deadline = time.monotonic() + 60
        while True:
            missing = unfinished = 0
            for task_id in task_ids:
                answer = await client.get(f"/api/v1/tasks/{task_id}")
                if answer.status_code == 404:
                    missing += 1
                elif answer.json()["data"]["status"] != "completed":
                    unfinished += 1
            if unfinished == 0 or time.monotonic() > deadline:
                return missing, unfinished
            await asyncio.sleep(0.5)


async def run(mode: str, db: Path, seconds: float) -> list[Row]:
    server, url = start_server(db)
    try:
        await wait_healthy(url)
        stop = asyncio.Event()
        acknowledged: list[str] = []
        seen: list[tuple[float, float, int]] = []
        tasks = [
            asyncio.create_task(workload(url, stop, acknowledged)),
            asyncio.create_task(probe(url, stop, seen)),
        ]
        await asyncio.sleep(3)
        holder: sqlite3.Connection | None = None
        began = time.monotonic()
        if mode == "fsfreeze":
            await asyncio.to_thread(subprocess.run, ["fsfreeze", "-f", str(db.parent)], check=True)
        else:
            holder = sqlite3.connect(db, isolation_level=None, timeout=30)
            holder.execute("BEGIN EXCLUSIVE")
        await asyncio.sleep(seconds)
        ended = time.monotonic()
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
        else:
            await asyncio.to_thread(subprocess.run, ["fsfreeze", "-u", str(db.parent)], check=True)
        await asyncio.sleep(3)
        stop.set()
        await asyncio.gather(*tasks)
        missing, unfinished = await settled(url, acknowledged)
    finally:
        server.terminate()
        server.wait(30)
    during = [(lat, status) for moment, lat, status in seen if began <= moment < ended]
    latencies_ms = sorted(lat * 1000 for lat, _ in during)
    statuses: dict[int, int] = {}
    for _, status in during:
        statuses[status] = statuses.get(status, 0) + 1
    worst = latencies_ms[-1] if latencies_ms else float("nan")
    print(f"mode: {mode}; stall: {seconds:.0f} s; database: {db}")
    print(
        f"health during the stall: {len(during)} probes, median "
        f"{statistics.median(latencies_ms):.0f} ms, max {worst:.0f} ms; statuses {statuses}"
    )
    print(
        f"acknowledged tasks: {len(acknowledged)}; missing after the stall: {missing}; "
        f"not completed: {unfinished}"
    )
    return [
        Row(
            measure=f"health during a {seconds:.0f} s stall ({mode}), max",
            taskcell=worst,
            unit="ms",
            target=f"< {TARGET_MS:.0f} ms",
            met=worst < TARGET_MS and 0 not in statuses,
        ),
        Row(
            measure=f"acknowledged tasks lost or unfinished after the stall ({mode})",
            taskcell=float(missing + unfinished),
            unit="tasks",
            target="0",
            met=missing + unfinished == 0,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("auto", "fsfreeze", "lock"), default="auto")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    mode = args.mode
    if mode == "auto":
        mode = "fsfreeze" if can_freeze() else "lock"
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if mode == "fsfreeze":
            with frozen_fs(tmp) as mount:
                rows = asyncio.run(run(mode, mount / "stall.db", args.seconds))
        else:
            rows = asyncio.run(run(mode, tmp / "stall.db", args.seconds))
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()
