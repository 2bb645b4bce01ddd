"""A PostgreSQL server of the test's own, to stop and start at will (outages, restarts).

The system PostgreSQL (tests/pg.py) stays up for everything else; tests that take the database
away use one of these instead::

    def test_outage(own_postgres: PgInstance) -> None:
        url = own_postgres.create_database("taskcell")
        ...
        own_postgres.stop()          # connections drop, new ones are refused
        own_postgres.start()         # same port, same data

It is made with Debian's ``initdb`` and ``pg_ctl`` (found on ``PATH``, /usr/local/bin, or
/usr/lib/postgresql/*/bin), listens on 127.0.0.1 on a spare port with trust authentication and
no Unix socket, and is stopped and deleted at the end of the test. PostgreSQL refuses to run as
root: when the tests run as root, the server runs as the ``postgres`` user, in a directory of
its own under the system temporary directory (pytest's ``tmp_path`` sits in a directory only
root may enter). Without ``initdb`` the fixture skips, saying why.

The methods block (they wait for the server, a few seconds at most); from an async test call
them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving import spare_port

#: How long pg_ctl may wait for a start or a stop (the machine may be busy).
PG_CTL_WAIT_S = 60
#: Server settings for throw-away test data: no fsync, small, quick to stop.
SETTINGS = (
    "-c listen_addresses=127.0.0.1",
    "-c unix_socket_directories=''",
    "-c fsync=off",
    "-c synchronous_commit=off",
    "-c full_page_writes=off",
    "-c shared_buffers=16MB",
    "-c max_connections=100",
)


def find_binary(name: str) -> str | None:
    """``name`` (initdb, pg_ctl) from PATH, /usr/local/bin or Debian's versioned directory."""
    found = shutil.which(name) or shutil.which(name, path="/usr/local/bin")
    if found:
        return found
    versioned = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return versioned[-1] if versioned else None


class PgInstance:
    """One PostgreSQL server in ``root`` on ``port``; :meth:`init` once, then start/stop."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = port
        self._initdb = find_binary("initdb")
        self._pg_ctl = find_binary("pg_ctl")
        self._as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        """The URL of the ``postgres`` database (use it to create others)."""
        return self.database_url("postgres")

    def database_url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=PG_CTL_WAIT_S + 30)
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()}\n{tail}"
            )
        return done

    def init(self) -> None:
        """Create the cluster (``initdb``): trust authentication, superuser ``postgres``."""
        if self._initdb is None or self._pg_ctl is None:
            raise RuntimeError("initdb/pg_ctl not found")
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            self._initdb,
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        assert self._pg_ctl is not None
        options = " ".join((f"-p {self.port}", *SETTINGS))
        self._run(
            self._pg_ctl,
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(PG_CTL_WAIT_S),
            "-o",
            options,
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect everyone; ``immediate``: as if it crashed)."""
        assert self._pg_ctl is not None
        self._run(
            self._pg_ctl, "stop", "-D", str(self.data), "-m", mode, "-w", "-t", str(PG_CTL_WAIT_S)
        )

    def restart(self, down_for: float = 0.0, mode: str = "fast") -> None:
        """Stop, stay down ``down_for`` seconds, start again on the same port."""
        self.stop(mode)
        time.sleep(down_for)
        self.start()

    def running(self) -> bool:
        assert self._pg_ctl is not None
        command = [self._pg_ctl, "status", "-D", str(self.data)]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0

    def psql(self, sql: str, database: str = "postgres") -> None:
        """Run ``sql`` (no result) through a short-lived asyncpg connection."""
        import asyncio

        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(self.database_url(database), timeout=10)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(run())

    def create_database(self, name: str) -> str:
        """Create database ``name``; answers its URL. (Call from a thread without a loop.)"""
        self.psql(f"CREATE DATABASE {name}")
        return self.database_url(name)

    def destroy(self) -> None:
        """Stop the server (if up) at once and delete its files."""
        if self.data.exists() and self.running():
            try:
                self.stop("immediate")
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


def start_instance() -> PgInstance:
    """A new, started instance on a spare port (retried if another process takes the port)."""
    root = Path(tempfile.mkdtemp(prefix="taskcell-pg-"))
    if os.geteuid() == 0:
        root.chmod(0o755)
    instance = PgInstance(root / "pg", spare_port())
    try:
        instance.init()
        for _ in range(3):
            try:
                instance.start()
                return instance
            except RuntimeError:
                instance.port = spare_port()
        instance.start()
        return instance
    except BaseException:
        instance.destroy()
        shutil.rmtree(root, ignore_errors=True)
        raise


def skip_reason() -> str | None:
    """Why no instance can be made here (no initdb, root without a postgres user), or None."""
    if find_binary("initdb") is None or find_binary("pg_ctl") is None:
        return "initdb/pg_ctl not installed (Debian: apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


@pytest.fixture
def own_postgres() -> Iterator[PgInstance]:
    """A PostgreSQL server of this test's own (started); stopped and deleted after."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    instance = start_instance()
    try:
        yield instance
    finally:
        instance.destroy()
        shutil.rmtree(instance.root.parent, ignore_errors=True)
