"""Real ``taskcell serve`` processes for tests: start one on a port it picks, wait until it answers.

Ports: a server process is started with ``--port 0`` and reports the port the kernel gave it
in its banner (:func:`reported_url`); a port that must refuse connections is a socket bound
here and never listening (:func:`closed_port`). Only a program that must be told its port
(PostgreSQL) gets a :func:`spare_port`, and its caller retries if the port was taken.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from taskcell.testing import bind_loopback

#: The banner's "web page" line: ``http://127.0.0.1:PORT/``.
_BANNER_URL = re.compile(r"(http://127\.0\.0\.1:\d+)/")


@contextmanager
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections while the ``with`` block runs."""
    with bind_loopback(listen=False) as sock:
        port: int = sock.getsockname()[1]
        yield port


def spare_port() -> int:
    """A port on 127.0.0.1 that nothing listened on a moment ago, for a program that must be
    told its port and cannot be handed a socket (PostgreSQL). Another process may take it
    before the program binds it: the caller retries with another on a bind failure."""
    with bind_loopback(listen=False) as sock:
        port: int = sock.getsockname()[1]
    return port


def start_serve(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m taskcell.cli serve ARGS`` with ``env`` added; its output goes to ``log``.

    Pass ``--port 0`` and read the address with :func:`wait_healthy` (or :func:`reported_url`).
    """
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "taskcell.cli", "serve", *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


#: How long a ``taskcell serve`` may take to come up: generous, because a start-up on a machine
#: busy with other work (CPU hogs, other suites) can take many times its usual second or two.
START_TIMEOUT_S = 120.0


def reported_url(
    process: subprocess.Popen[bytes], log: Path, timeout: float = START_TIMEOUT_S
) -> str:
    """The base URL the server in ``process`` printed in its banner (its latest one in ``log``)."""
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text(errors="replace")
        found = _BANNER_URL.findall(text)
        if found:
            return str(found[-1])
        assert process.poll() is None, f"the server exited before it served:\n{text[-3000:]}"
        assert time.monotonic() < deadline, f"no address in the server's output:\n{text[-3000:]}"
        time.sleep(0.05)


def wait_healthy(
    process: subprocess.Popen[bytes], log: Path, timeout: float = START_TIMEOUT_S
) -> str:
    """Wait until the server answers its health check with 200; answers its base URL.

    Fails with the server's output if it died or did not answer within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    url = reported_url(process, log, timeout)
    while True:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return url
        except httpx.TransportError:
            pass
        output = log.read_text(errors="replace")[-3000:]
        assert process.poll() is None, f"the server at {url} exited:\n{output}"
        assert time.monotonic() < deadline, f"the server at {url} did not answer:\n{output}"
        time.sleep(0.05)
