"""``/api/v1/health`` answered while the event loop is stuck in the database.

The SQLite store runs its statements on the event loop's thread (group commit: a thread
hand-off per commit would cost more than the commit). So when the disk stalls (a frozen or
failing file system) or another process holds the database's lock past ``busy_timeout``, the
loop waits inside SQLite and nothing on it answers, ``/health`` included: a monitor would see a
hung server instead of a degraded one.

:class:`StallResponder` is a thread of its own that never touches the database. It watches
uvicorn's tick (every 0.1 s on the loop). When the tick is late by more than
:data:`STALL_SECONDS` *and* the loop's thread is inside a store statement, it takes new
connections off the listening sockets itself. It reads their request line without consuming it
(``MSG_PEEK``): a ``GET /api/v1/health`` is answered at once, 503 ``degraded`` with the reason;
any other request is handed, untouched, to the loop (``loop.connect_accepted_socket``), which
serves it when the database lets go, exactly as if it had accepted it late. So the stall never
refuses a request the server would have served, and health tells the truth within a second.
Connections the loop already holds (keep-alive) wait for the loop, as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import taskcell.stores

logger = logging.getLogger(__name__)

#: The loop is stalled when its tick (every 0.1 s) is this late while it runs a store statement.
STALL_SECONDS = 0.5
#: How often the thread looks at the tick; how long it waits for a request line.
POLL_SECONDS = 0.05
READ_SECONDS = 0.5
HEALTH_PATH = b"/api/v1/health"
#: Frames of the loop's thread looked at (innermost first) to find a store statement.
FRAMES_LOOKED_AT = 4

_STORES = str(Path(taskcell.stores.__file__).resolve().parent)

#: Hands an accepted connection to the event loop (see :meth:`StallResponder.__init__`).
HandOff = Callable[[socket.socket], None]


def in_store(frame: FrameType | None) -> str | None:
    """The store function a thread is in (``sqlite.py:create``), from its innermost frames."""
    for _ in range(FRAMES_LOOKED_AT):
        if frame is None:
            return None
        code = frame.f_code
        if code.co_filename.startswith(_STORES):
            return f"{Path(code.co_filename).name}:{code.co_name}"
        frame = frame.f_back
    return None


class StallResponder:
    """Answers health while the loop is stuck in the database; see the module docstring.

    ``listeners`` are the file descriptors of the server's listening sockets (duplicated here,
    closed by :meth:`stop`);
    ``hand_off`` gives an accepted connection to the loop (called from this thread);
    ``health`` returns the fields of a health answer that do not need the loop (process id,
    whether the loops live), and must not block.
    """

    def __init__(
        self,
        listeners: list[int],
        *,
        loop_thread: int,
        hand_off: HandOff,
        health: Callable[[], dict[str, Any]],
        stall_after: float = STALL_SECONDS,
    ) -> None:
        self._listeners = [socket.socket(fileno=os.dup(fd)) for fd in listeners]
        self._loop_thread = loop_thread
        self._hand_off = hand_off
        self._health = health
        self._stall_after = stall_after
        self._tick = time.monotonic()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stall-responder", daemon=True)
        #: Health requests answered here (for tests and the log).
        self.answered = 0

    def start(self) -> None:
        self._thread.start()

    def tick(self) -> None:
        """The loop is alive (called on the loop at each uvicorn tick)."""
        self._tick = time.monotonic()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for sock in self._listeners:
            sock.close()

    def stalled_in(self) -> tuple[float, str] | None:
        """How long the loop has been stuck and in which store function, or None."""
        late = time.monotonic() - self._tick
        if late < self._stall_after:
            return None
        where = in_store(sys._current_frames().get(self._loop_thread))
        return None if where is None else (late, where)

    def _run(self) -> None:
        while not self._stopping.wait(POLL_SECONDS):
            try:
                self._serve_once()
            except Exception:  # a bug here must never take the server down
                logger.exception("stall responder failed")

    def _serve_once(self) -> None:
        stall = self.stalled_in()
        if stall is None:
            return
        ready, _, _ = select.select(self._listeners, [], [], POLL_SECONDS)
        for listener in ready:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                continue  # the loop took it
            stall = self.stalled_in() or stall
            self._serve(conn, stall)

    def _serve(self, conn: socket.socket, stall: tuple[float, str]) -> None:
        conn.settimeout(READ_SECONDS)
        try:
            line = _peek_request_line(conn)
        except OSError:
            line = b""
        if not _is_health(line):
            conn.setblocking(False)
            self._hand_off(conn)
            return
        try:
            _consume_head(conn)
            conn.sendall(self._answer(*stall))
        except OSError:
            pass
        finally:
            conn.close()
        self.answered += 1
        logger.warning(
            "health answered while the loop is stuck in the database",
            extra={"stalled_seconds": round(stall[0], 2), "where": stall[1]},
        )

    def _answer(self, late: float, where: str) -> bytes:
        problem = (
            f"the database has held the server for {late:.1f} s ({where}): a stalled or "
            "failing disk, or another process holding the database's lock; requests wait for it"
        )
        known = self._health()
        data = {
            "status": "degraded",
            "store": False,
            "scheduler": known.get("scheduler", False),
            "event_log": known.get("event_log", False),
            "problem": problem,
            "process_id": known.get("process_id", ""),
            "processes": [],
        }
        body = json.dumps({"code": 503, "msg": "degraded", "data": data}).encode()
        head = (
            "HTTP/1.1 503 Service Unavailable\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "retry-after: 1\r\n"
            "cache-control: no-store\r\n"
            "connection: close\r\n\r\n"
        )
        return head.encode() + body


def _peek_request_line(conn: socket.socket) -> bytes:
    """The request's first line, left in the socket for whoever serves it."""
    deadline = time.monotonic() + READ_SECONDS
    data = b""
    while b"\r\n" not in data and len(data) < 8192 and time.monotonic() < deadline:
        ready, _, _ = select.select([conn], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        peeked = conn.recv(8192, socket.MSG_PEEK)
        if not peeked or peeked == data:
            if not peeked:
                break  # the client closed
            time.sleep(0.005)  # nothing new yet: the rest of the line is on its way
        data = peeked
    return data.split(b"\r\n", 1)[0]


def _is_health(line: bytes) -> bool:
    parts = line.split(b" ")
    return len(parts) == 3 and parts[0] == b"GET" and parts[1].split(b"?", 1)[0] == HEALTH_PATH


def _consume_head(conn: socket.socket) -> None:
    """Read the request's head off the socket (a GET has no body), bounded."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(8192)
        if not chunk:
            return
        data += chunk


def hand_off_to(
    loop: asyncio.AbstractEventLoop, protocol: Callable[[], asyncio.Protocol]
) -> HandOff:
    """A :data:`HandOff` that serves the connection on ``loop`` with uvicorn's ``protocol``."""

    def hand_off(conn: socket.socket) -> None:
        asyncio.run_coroutine_threadsafe(loop.connect_accepted_socket(protocol, conn), loop)

    return hand_off
