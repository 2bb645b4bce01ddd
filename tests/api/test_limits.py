"""Limits before work: a body over the limit is refused while it arrives, a request without a
valid key is refused before its body is read, and /health answers meanwhile (issue 12)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from taskcell.settings import DEFAULT_MAX_BODY_BYTES

from .conftest import ServerFactory

MB = 1024 * 1024
KEYS = "alice-key:alice:user"


async def chunks(total: int, *, started: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    """``total`` bytes of a JSON array, 1 MiB at a time, yielding to the loop between chunks."""
    piece = b"[" + b"1," * (MB // 2 - 1)
    sent = 0
    while sent < total:
        yield piece
        sent += len(piece)
        if started is not None:
            started.set()
        await asyncio.sleep(0)
    yield b"1]"


async def send_big(
    client: httpx.AsyncClient, path: str, body: AsyncIterator[bytes], **kw: object
) -> httpx.Response | Exception:
    """POST a streamed body; the server may answer and close before it is all sent, so a
    write error after the answer arrived is what a client sees on some platforms."""
    try:
        return await client.post(path, content=body, **kw)  # type: ignore[arg-type]
    except httpx.TransportError as exc:
        return exc


async def health_during(
    client: httpx.AsyncClient, upload: asyncio.Task[object], started: asyncio.Event
) -> int:
    """How many /health answers (each 200) came while ``upload`` was still running."""
    await started.wait()
    answered = 0
    while not upload.done():
        response = await client.get("/api/v1/health")
        assert response.status_code == 200, response.text
        answered += 1
    return answered


@pytest.mark.timeout(120)
async def test_a_100_mb_body_without_length_is_refused_413_while_health_answers(
    server_factory: ServerFactory,
) -> None:
    async with server_factory() as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
        started = asyncio.Event()
        upload = asyncio.create_task(
            send_big(
                client,
                "/api/v1/tasks",
                chunks(100 * MB, started=started),
                headers={"content-type": "application/json"},
            )
        )
        async with httpx.AsyncClient(base_url=url, timeout=30) as other:
            answered = await health_during(other, upload, started)
        result = await upload
        assert isinstance(result, httpx.Response), f"no answer, only {result!r}"
        assert result.status_code == 413, result.text
        answer = result.json()
        assert answer["code"] == 413 and str(DEFAULT_MAX_BODY_BYTES) in answer["msg"], answer
        assert "TASKCELL_MAX_BODY_BYTES" in answer["msg"], answer
        assert answered >= 1, "/health never answered while the upload ran"
        listed = (await client.get("/api/v1/tasks")).json()["data"]["items"]
        assert listed == []


async def test_a_declared_length_over_the_limit_is_refused_before_reading(
    server_factory: ServerFactory,
) -> None:
    """A Content-Length over the limit is answered at once: the server reads none of it."""
    async with server_factory(max_body_bytes=64 * 1024) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 104857600\r\n\r\n" + b"[" * 1000
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert head.startswith(b"HTTP/1.1 413"), head
        writer.close()


async def test_bodies_at_the_limit_are_parsed_and_over_it_refused(
    server_factory: ServerFactory,
) -> None:
    limit = 64 * 1024
    async with (
        server_factory(max_body_bytes=limit) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        base = {
            "query": "hello",
            "agent_name": "echo",
            "pattern": "recurring",
            "schedule_config": {"interval_minutes": 60},
            "run_immediately": False,
            "metadata": {"pad": ""},
        }
        overhead = len(json.dumps(base).encode())
        at_limit = {**base, "metadata": {"pad": "x" * (limit - overhead)}}
        fits = await client.post(
            "/api/v1/tasks",
            content=json.dumps(at_limit).encode(),
            headers={"content-type": "application/json"},
        )
        # Over 64,000 characters of metadata: refused by the domain (400), after parsing.
        assert fits.status_code == 400 and fits.json()["data"][0]["field"] == "metadata", fits.text
        over = {**base, "metadata": {"pad": "x" * (limit - overhead + 1)}}
        refused = await client.post(
            "/api/v1/tasks",
            content=json.dumps(over).encode(),
            headers={"content-type": "application/json"},
        )
        assert refused.status_code == 413, refused.text
        assert (await client.get("/api/v1/health")).status_code == 200


@pytest.mark.timeout(120)
async def test_the_key_is_checked_before_the_body_is_read(server_factory: ServerFactory) -> None:
    """30 MB with no key: 401 while the body is still being sent (it is never read)."""
    async with (
        server_factory(api_keys=KEYS, max_body_bytes=64 * MB) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        started = asyncio.Event()
        result = await send_big(
            client,
            "/api/v1/tasks",
            chunks(30 * MB, started=started),
            headers={"content-type": "application/json"},
        )
        assert isinstance(result, httpx.Response), f"no answer, only {result!r}"
        assert result.status_code == 401, result.text
        assert result.headers["www-authenticate"] == "Bearer"
        wrong = await client.post(
            "/api/v1/tasks",
            json={"query": "q", "agent_name": "echo"},
            headers={"Authorization": "Bearer nope"},
        )
        assert wrong.status_code == 401, wrong.text
        keyed = httpx.AsyncClient(
            base_url=url, timeout=30, headers={"Authorization": "Bearer alice-key"}
        )
        async with keyed:
            made = await keyed.post("/api/v1/tasks", json={"query": "q", "agent_name": "echo"})
            assert made.status_code == 201, made.text
            assert made.json()["data"]["user_id"] == "alice"
        assert (await client.get("/api/v1/health")).status_code == 200  # open without a key
