"""The ``taskcell serve`` processes under test: start, kill, pause, resume, restart.

A node keeps its port across restarts, so clients and readers find it again, and appends every
life's output to one log file. ``expected_down`` is set while the nemesis has stopped or killed
it on purpose; any other exit is a death the checker reports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from serving import free_port


@dataclass
class Node:
    name: str
    env: dict[str, str]
    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    expected_down: bool = False
    clock_offset: str | None = None
    lives: int = 0
    #: Held by whoever acts on the process (the nemesis, or the monitor restarting it).
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, clock_offset: str | None = None) -> None:
        """Start a new life of the node (``clock_offset``: faketime's, e.g. ``+30s``)."""
        assert not self.alive(), f"{self.name} is already running"
        prefix = ["faketime", "-f", clock_offset] if clock_offset else []
        command = [*prefix, sys.executable, "-m", "taskcell.cli", "serve", "--port", str(self.port)]
        self.lives += 1
        with self.log.open("ab") as out:
            out.write(f"\n=== life {self.lives} clock {clock_offset or 'true'} ===\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                command,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.clock_offset = clock_offset
        self.expected_down = False

    def wait_healthy(self, timeout: float) -> bool:
        """Wait until the node's health answers 200; False if it died or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=3).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        return False

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, and wait for the process to be gone."""
        self.expected_down = True
        if self.alive():
            self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)

    def terminate(self, timeout: float = 30) -> None:
        """A graceful stop (SIGTERM), SIGKILL if it takes longer than ``timeout``."""
        self.expected_down = True
        if self.process is None:
            return
        if self.alive():
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""
