"""Streams against a real uvicorn server: read to done, resume after a cut and a restart."""

from __future__ import annotations

import httpx

from .conftest import ServerFactory, read_sse

WORDS = " ".join(f"word{i}" for i in range(40))


async def create(client: httpx.AsyncClient, **body: object) -> dict[str, object]:
    response = await client.post("/api/v1/tasks", json={"agent_name": "echo", **body})
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["code"] == 0
    data: dict[str, object] = answer["data"]
    return data


async def test_echo_stream_reads_to_done_and_resumes_after_a_cut(
    client: httpx.AsyncClient,
) -> None:
    task = await create(client, query=WORDS)
    path = f"/api/v1/tasks/{task['task_id']}/events"
    everything = await read_sse(client, path)
    assert everything[-1]["event"] == "done"
    assert everything[-2]["event"] == "task_completed"
    seqs = [int(e["id"]) for e in everything]
    assert seqs == [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    chunks = "".join(
        e["data"]["payload"]["content"] for e in everything if e["event"] == "message_chunk"
    )
    assert chunks == WORDS

    first = await read_sse(client, path, stop_after=7)  # disconnect in the middle
    rest = await read_sse(client, path, headers={"Last-Event-ID": first[-1]["id"]})
    assert first + rest == everything
    by_query = await read_sse(client, f"{path}?after=20")
    assert by_query == everything[20:]


async def test_a_stream_resumes_after_a_server_restart(server_factory: ServerFactory) -> None:
    async with server_factory() as url, httpx.AsyncClient(base_url=url, timeout=20) as client:
        task = await create(client, query=WORDS)
        path = f"/api/v1/tasks/{task['task_id']}/events"
        first = await read_sse(client, path, stop_after=10)
        everything = await read_sse(client, path)
    async with server_factory() as url, httpx.AsyncClient(base_url=url, timeout=20) as client:
        rest = await read_sse(client, path, headers={"Last-Event-ID": first[-1]["id"]})
    assert first + rest == everything


async def test_agents_stream_creates_and_streams(client: httpx.AsyncClient) -> None:
    events = await read_sse(
        client,
        "/api/v1/agents/stream",
        method="POST",
        json_body={"query": "hi there", "agent_name": "echo"},
    )
    assert events[-1]["event"] == "done"
    recurring = await read_sse(
        client,
        "/api/v1/agents/stream",
        method="POST",
        json_body={
            "query": "what time is it",
            "agent_name": "clock",
            "pattern": "recurring",
            "schedule_config": {"interval_minutes": 60, "timezone": "Europe/Berlin"},
        },
    )
    assert [e["event"] for e in recurring][-2:] == ["component_generator", "done"]
    assert recurring[-2]["data"]["payload"]["component_type"] == "scheduled_task_controller"
