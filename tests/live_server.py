"""A real ``taskcell serve`` process for the client and MCP tests, with API keys for three
users, on a SQLite file of its own; it can be stopped and started again on the same port."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from serving import start_serve, wait_healthy

ALICE = "alice-key"
BOB = "bob-key"
ADMIN = "admin-key"
KEYS = f"{ALICE}:alice:user,{BOB}:bob:user,{ADMIN}:root:admin"


def isolated_env(folder: Path, **extra: str) -> dict[str, str]:
    """Settings for a server whose home, config and database are all under ``folder``."""
    home = folder / "home"
    home.mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "TASKCELL_CONFIG": str(home / "taskcell.toml"),
        "TASKCELL_DATABASE_URL": f"sqlite:///{folder / 'tasks.db'}",
        "TASKCELL_API_KEYS": KEYS,
        "TASKCELL_RETRY_BASE_SECONDS": "0.05",
        "TASKCELL_RETRY_CAP_SECONDS": "0.2",
        "TASKCELL_LOG_LEVEL": "WARNING",
        **extra,
    }


@dataclass
class LiveServer:
    """One ``taskcell serve`` (and, after :meth:`restart`, its successor on the same port)."""

    folder: Path
    env: dict[str, str]
    url: str = ""
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    def start(self, port: int = 0) -> str:
        log = self.folder / f"serve-{len(self.logs)}.log"
        self.logs.append(log)
        self.process = start_serve(["--port", str(port)], self.env, log)
        self.url = wait_healthy(self.process, log)
        return self.url

    def stop(self) -> None:
        """Stop it as Ctrl-C does (runs interrupted and closed, streams ended)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> str:
        """Stop it, then serve the same database on the same port again."""
        port = int(self.url.rsplit(":", 1)[1])
        self.stop()
        return self.start(port)

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace")[-3000:] for log in self.logs)


@contextmanager
def live_server(folder: Path, **extra: str) -> Iterator[LiveServer]:
    """A started :class:`LiveServer`, stopped at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    server = LiveServer(folder, isolated_env(folder, **extra))
    server.start()
    try:
        yield server
    finally:
        server.stop()
