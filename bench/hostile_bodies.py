"""/health latency while clients send hostile bodies, beside the same probe on an idle server.

One real ``taskcell serve`` process (127.0.0.1, a SQLite file in a temporary directory, default
limits: ``TASKCELL_MAX_BODY_BYTES`` 1 MiB); the clients run in this process, so their own work
does not share the server's interpreter. A prober asks ``GET /api/v1/health`` back to back and
records each answer's latency, first for ``--seconds`` on the idle server (the baseline), then
for ``--seconds`` while ``--clients`` clients each send, over and over:

- ``near-limit``: a 1,000,000-byte create body whose metadata holds a 200,000-item list (parsed
  in a worker thread, refused 400 by the domain: metadata over 64,000 characters);
- ``over-limit``: a 100 MB body sent without Content-Length (refused 413 at 1 MiB).

Prints, per phase: /health answers, median and maximum latency, and the ratio of the loaded
maximum to the idle maximum; and for the 100 MB body the seconds until its 413.

    PYTHONPATH=src .venv/bin/python bench/hostile_bodies.py [--seconds 5] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

MB = 1024 * 1024


def near_limit_body() -> bytes:
    items = ["x"] * 200_000
    body = json.dumps({"query": "q", "agent_name": "echo", "metadata": {"a": items}}).encode()
    assert len(body) <= MB, len(body)
    return body


async def huge(total: int) -> AsyncIterator[bytes]:
    piece = b"[" + b"1," * (MB // 2 - 1)
    sent = 0
    while sent < total:
        yield piece
        sent += len(piece)
    yield b"1]"


async def probe(url: str, seconds: float) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            start = time.perf_counter()
            response = await client.get("/api/v1/health")
            assert response.status_code == 200, response.text
            latencies.append(time.perf_counter() - start)
    return latencies


async def attack(url: str, kind: str, stop: asyncio.Event, sent: list[int]) -> None:
    body = near_limit_body()
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        while not stop.is_set():
            headers = {"content-type": "application/json"}
            if kind == "near-limit":
                response = await client.post("/api/v1/tasks", content=body, headers=headers)
                assert response.status_code == 400, response.text[:200]
            else:
                response = await client.post(
                    "/api/v1/tasks", content=huge(100 * MB), headers=headers
                )
                assert response.status_code == 413, response.text[:200]
            sent.append(response.status_code)


async def loaded(url: str, kind: str, clients: int, seconds: float) -> tuple[list[float], int]:
    stop = asyncio.Event()
    sent: list[int] = []
    attackers = [asyncio.create_task(attack(url, kind, stop, sent)) for _ in range(clients)]
    await asyncio.sleep(0.2)  # the attack is under way before the probe starts
    latencies = await probe(url, seconds)
    stop.set()
    await asyncio.gather(*attackers)
    return latencies, len(sent)


def line(name: str, latencies: list[float], baseline: float | None) -> str:
    worst = max(latencies)
    ratio = f", max/idle max {worst / baseline:.1f}x" if baseline else ""
    median = statistics.median(latencies) * 1e3
    return (
        f"{name:<22} {len(latencies):>6} answers  median {median:7.1f} ms"
        f"  max {worst * 1e3:7.1f} ms{ratio}"
    )


async def main(url: str, seconds: float, clients: int) -> None:
    idle = await probe(url, seconds)
    print(line("idle", idle, None))
    for kind in ("near-limit", "over-limit"):
        latencies, bodies = await loaded(url, kind, clients, seconds)
        print(line(f"{kind} x{clients}", latencies, max(idle)), f"({bodies} bodies refused)")
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        start = time.perf_counter()
        response = await client.post(
            "/api/v1/tasks", content=huge(100 * MB), headers={"content-type": "application/json"}
        )
        print(f"one 100 MB body: {response.status_code} after {time.perf_counter() - start:.2f} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_until_healthy(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server exited"
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"no server at {url}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "TASKCELL_LOG_LEVEL": "WARNING", "TASKCELL_AGENTS": "{}"}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taskcell.cli",
                "serve",
                "--port",
                str(port),
                "--db",
                str(Path(tmp) / "bench.db"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_until_healthy(base_url, server)
            asyncio.run(main(base_url, args.seconds, args.clients))
        finally:
            server.terminate()
            server.wait(30)
