"""A small HTTP/1.1 client for webhook attempts: h11 (the protocol) over asyncio streams.

Why not httpx here: an attempt connects to an address already checked (never to a name the
client would resolve again), must send the original ``Host`` and, for https, the original
name as SNI and certificate name, reads at most a few bytes of the answer, and never follows a
redirect. httpx can do all of that, but its connection pool costs several milliseconds of CPU
per request under concurrency (its pool re-scans every connection on each request), which made
deliveries trail far behind the tasks that cause them (bench/webhooks.py). Connections are kept
alive per (scheme, address, port, host name), a few per key, and dropped on any doubt.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

import h11

#: Idle connections kept per (scheme, address, port, host name).
KEEP_PER_TARGET = 16
_READ_BYTES = 65_536


class WireError(OSError):
    """The connection failed or the answer was not HTTP (an attempt to retry)."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))

    def close(self) -> None:
        self.writer.close()


Key = tuple[str, str, int, str]


class WirePool:
    """Kept-alive connections; :meth:`post` makes one request on one of them."""

    def __init__(self) -> None:
        self._idle: dict[Key, list[_Connection]] = {}
        self._tls = ssl.create_default_context()

    async def post(
        self,
        *,
        scheme: str,
        address: str,
        port: int,
        host: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        cap: int,
    ) -> Reply:
        """POST ``body`` to ``address``; the answer's body read up to ``cap`` bytes. The
        caller bounds the time (``asyncio.timeout``); a cancelled request's connection is
        closed, never reused."""
        key = (scheme, address, port, host)
        conn = self._take(key)
        fresh = conn is None
        if conn is None:
            conn = await self._open(key)
        try:
            reply, reusable = await self._exchange(conn, target, headers, body, cap)
        except (OSError, h11.ProtocolError, asyncio.IncompleteReadError) as exc:
            conn.close()
            if fresh:
                raise WireError(f"{type(exc).__name__}: {exc}") from None
            # A kept-alive connection the other side had closed: once more on a new one.
            conn = await self._open(key)
            try:
                reply, reusable = await self._exchange(conn, target, headers, body, cap)
            except (OSError, h11.ProtocolError, asyncio.IncompleteReadError) as again:
                conn.close()
                raise WireError(f"{type(again).__name__}: {again}") from None
        except BaseException:
            conn.close()
            raise
        if reusable:
            self._give_back(key, conn)
        else:
            conn.close()
        return reply

    def _take(self, key: Key) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn
            conn.close()
        return None

    def _give_back(self, key: Key, conn: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) >= KEEP_PER_TARGET:
            conn.close()
            return
        conn.protocol.start_next_cycle()
        idle.append(conn)

    async def _open(self, key: Key) -> _Connection:
        scheme, address, port, host = key
        try:
            if scheme == "https":
                reader, writer = await asyncio.open_connection(
                    address, port, ssl=self._tls, server_hostname=host
                )
            else:
                reader, writer = await asyncio.open_connection(address, port)
        except (OSError, ssl.SSLError) as exc:
            raise WireError(f"cannot connect to {address}:{port}: {exc}") from None
        return _Connection(reader, writer)

    async def _exchange(
        self,
        conn: _Connection,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        cap: int,
    ) -> tuple[Reply, bool]:
        protocol = conn.protocol
        fields = [(name, value) for name, value in headers.items()]
        fields.append(("content-length", str(len(body))))
        data = protocol.send(h11.Request(method="POST", target=target, headers=fields))
        data = (data or b"") + (protocol.send(h11.Data(data=body)) or b"")
        data += protocol.send(h11.EndOfMessage()) or b""
        conn.writer.write(data)
        await conn.writer.drain()
        response: h11.Response | None = None
        received = b""
        complete = False
        while True:
            event = protocol.next_event()
            if event is h11.NEED_DATA:
                chunk = await conn.reader.read(_READ_BYTES)
                protocol.receive_data(chunk)
                if not chunk and response is None:
                    raise WireError("the connection closed before an answer")
                continue
            if isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                received += bytes(event.data)
                if len(received) >= cap:
                    break  # enough read: the rest is not waited for
            elif isinstance(event, h11.EndOfMessage):
                complete = True
                break
            elif isinstance(event, h11.ConnectionClosed):
                break
        if response is None:
            raise WireError("no answer")
        answer_headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in response.headers
        }
        reusable = complete and protocol.our_state is h11.DONE and protocol.their_state is h11.DONE
        return Reply(response.status_code, answer_headers, received[:cap]), reusable

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
