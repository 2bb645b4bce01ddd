"""A PostgreSQL instance of the tests' own, for faults the system one must never see.

``initdb`` and ``pg_ctl`` refuse to run as root, so when the tests run as root they run as the
``postgres`` OS user (``runuser -u postgres --``), in a directory that user owns. The instance
listens on 127.0.0.1 at a spare port, with trust authentication, and is stopped and deleted at
the end. Durability is switched off (``fsync``, ``synchronous_commit``): the faults here are
process faults, not power cuts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from serving import free_port

_TOOLS = Path("/usr/local/bin")
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "300",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
}


def _tool(name: str) -> str:
    found = shutil.which(name) or str(_TOOLS / name)
    return found


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def available() -> str | None:
    """Why an instance cannot be made here, or None if it can."""
    for tool in ("initdb", "pg_ctl"):
        if not Path(_tool(tool)).exists():
            return f"{tool} not found (needed to run a PostgreSQL instance of the tests' own)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: initdb cannot be run as the postgres user"
    return None


class PostgresInstance:
    """One private PostgreSQL server: start, stop, restart, and its URL."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="taskcell-chaos-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(
            _as_postgres(list(args)), capture_output=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({done.returncode}): "
                f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"
            )

    def _ctl(self, *args: str) -> None:
        self._run(
            _tool("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", *args
        )

    def create(self) -> None:
        """initdb the cluster (trust authentication, user postgres) and write its settings."""
        self._run(
            _tool("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        lines = [f"{key} = {value}" for key, value in _SETTINGS.items()]
        lines += [f"port = {self.port}", f"unix_socket_directories = '{self.folder}'"]
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(lines) + "\n")

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, as in a failover or a restart."""
        self._ctl("-m", "fast", "stop")

    def restart(self) -> None:
        self._ctl("-m", "fast", "restart")

    def running(self) -> bool:
        done = subprocess.run(
            _as_postgres([_tool("pg_ctl"), "-D", str(self.data), "status"]),
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    def destroy(self) -> None:
        """Stop the server (immediately) if it runs, and delete its files."""
        if self.running():
            self._run(_tool("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        deadline = time.monotonic() + 10
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.folder, ignore_errors=True)
