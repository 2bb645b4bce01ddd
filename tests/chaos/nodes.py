"""The ``taskcell serve`` processes under test: start, kill, pause, resume, restart.

Each life of a node listens on a port the kernel gives it (``--port 0``, read from the banner),
so its URL changes with each restart: clients and readers look it up each time. Each life's
output goes to a log file of its own. ``expected_down`` is set while the nemesis has stopped or
killed it on purpose; any other exit is a death the checker reports.

Each life runs in a process group of its own, and signals go to the group: ``faketime`` runs the
server as its child, so a signal to ``faketime`` alone would leave the server running.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

#: The banner's "web page" line (as tests/serving.py reads it).
_BANNER_URL = re.compile(r"(http://127\.0\.0\.1:\d+)/")


@dataclass
class Node:
    name: str
    env: dict[str, str]
    folder: Path
    url: str = ""
    process: subprocess.Popen[bytes] | None = None
    expected_down: bool = False
    clock_offset: str | None = None
    lives: int = 0
    #: Held by whoever acts on the process (the nemesis, or the monitor restarting it).
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def log(self) -> Path:
        return self.folder / f"{self.name}-{self.lives}.log"

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
        command = [*prefix, sys.executable, "-m", "taskcell.cli", "serve", "--port", "0"]
        self.lives += 1
        self.url = ""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.clock_offset = clock_offset
        self.expected_down = False

    def wait_healthy(self, timeout: float) -> bool:
        """Wait until the node's health answers 200; False if it died or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            if not self.url:
                found = _BANNER_URL.findall(self.log_tail(100_000))
                if not found:
                    time.sleep(0.1)
                    continue
                self.url = str(found[-1])
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=3).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        return False

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the life's process group (the server, and faketime if it runs it)."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def _group_gone(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                try:
                    os.killpg(self.process.pid, 0)
                except ProcessLookupError:
                    return True
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        """SIGKILL, and wait for the process to be gone."""
        self.expected_down = True
        if self.process is not None:
            self.signal(signal.SIGKILL)
            self._group_gone(30)

    def terminate(self, timeout: float = 30) -> None:
        """A graceful stop (SIGTERM), SIGKILL if it takes longer than ``timeout``."""
        self.expected_down = True
        if self.process is None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        if not self._group_gone(timeout):
            self.signal(signal.SIGKILL)
            self._group_gone(10)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


def clues(nodes: list[Node], subjects: list[str], per_subject: int = 40) -> str:
    """The lines of every life's log that name each subject (a task id), for a failed check:
    what the servers said about the tasks the checker blames."""
    logs = sorted(path for node in nodes for path in node.folder.glob(f"{node.name}-*.log"))
    texts = {path.name: path.read_text(errors="replace").splitlines() for path in logs}
    out = []
    for subject in dict.fromkeys(subjects):
        found = [
            f"  {name}: {line[:400]}"
            for name, lines in texts.items()
            for line in lines
            if subject in line or subject[:12] in line
        ]
        out.append(f"what the servers logged about {subject} ({len(found)} lines):")
        out.extend(found[-per_subject:])
    return "\n".join(out)
