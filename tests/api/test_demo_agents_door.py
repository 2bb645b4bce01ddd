"""The mounted demo agents behind the server's door: with API keys they need one too.

A real server with keys for two users runs a slow demo task for alice (so the engine reaches the
agent through the door, acting for alice); then the agent's A2A routes are tried without a key,
with bob's key and with alice's, over HTTP+JSON and JSON-RPC.
"""

from __future__ import annotations

from typing import Any

import httpx

from taskcell.agents.demo import slow
from taskcell.agents.demo.common import CARD_CACHE_CONTROL

from .conftest import ServerFactory, read_sse

KEYS = "alice-key:alice:user,bob-key:bob:user,root-key:root:admin"
A2A = {"A2A-Version": "1.0"}


def rpc(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": "1", "method": method, "params": params}


async def remote_task_of(client: httpx.AsyncClient, task_id: str) -> str:
    """The A2A task id of the user's one slow task, once the agent accepted it."""
    await read_sse(
        client,
        f"/api/v1/tasks/{task_id}/events",
        stop_after=6,  # conversation, thread, message, connect started/completed, task_started
    )
    listed = (await client.get("/a2a/slow/tasks")).json()  # the user's own A2A tasks
    assert len(listed.get("tasks", [])) == 1, listed
    rid: str = listed["tasks"][0]["id"]
    return rid


async def test_demo_agents_need_a_key_and_show_each_user_only_their_tasks(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(api_keys=KEYS) as url:
        alice = httpx.AsyncClient(
            base_url=url, headers={"Authorization": "Bearer alice-key", **A2A}, timeout=20
        )
        bob = httpx.AsyncClient(
            base_url=url, headers={"Authorization": "Bearer bob-key", **A2A}, timeout=20
        )
        root = httpx.AsyncClient(
            base_url=url, headers={"Authorization": "Bearer root-key", **A2A}, timeout=20
        )
        anonymous = httpx.AsyncClient(base_url=url, headers=A2A, timeout=20)
        async with alice, bob, root, anonymous:
            made = await alice.post(
                "/api/v1/tasks", json={"query": "stream for 30 seconds", "agent_name": "slow"}
            )
            assert made.status_code == 201, made.text
            task_id = made.json()["data"]["task_id"]
            rid = await remote_task_of(alice, task_id)

            for method, path in (
                ("GET", "/a2a/slow/tasks"),
                ("GET", f"/a2a/slow/tasks/{rid}"),
                ("POST", f"/a2a/slow/tasks/{rid}:cancel"),
                ("POST", "/a2a/slow/message:send"),
            ):
                refused = await anonymous.request(method, path, json={})
                assert refused.status_code == 401, (method, path, refused.text)
                assert refused.json()["code"] == 401, refused.text
            wrong = await anonymous.get(
                "/a2a/slow/tasks", headers={"Authorization": "Bearer not-a-key"}
            )
            assert wrong.status_code == 401, wrong.text
            jsonrpc = await anonymous.post("/a2a/slow", json=rpc("GetTask", {"id": rid}))
            assert jsonrpc.status_code == 401, jsonrpc.text
            assert rid not in slow.CANCELLED, "a refused cancel reached the agent"

            for other in (bob, root):  # an admin of taskcell is not the task's user either
                assert (await other.get(f"/a2a/slow/tasks/{rid}")).status_code == 404
                cancel = await other.post(f"/a2a/slow/tasks/{rid}:cancel", json={})
                assert cancel.status_code == 404, cancel.text
                listed = (await other.get("/a2a/slow/tasks")).json()
                assert listed.get("tasks", []) == [], listed
                found = (await other.post("/a2a/slow", json=rpc("GetTask", {"id": rid}))).json()
                assert "error" in found and "not found" in found["error"]["message"].lower(), found
            assert rid not in slow.CANCELLED, "another user's cancel reached the agent"
            running = (await alice.get(f"/api/v1/tasks/{task_id}")).json()["data"]
            assert running["status"] == "running", running

            mine = await alice.get(f"/a2a/slow/tasks/{rid}")
            assert mine.status_code == 200, mine.text
            assert mine.json()["id"] == rid
            listed = (await alice.get("/a2a/slow/tasks")).json()
            assert [t["id"] for t in listed["tasks"]] == [rid], listed

            card = await anonymous.get("/a2a/slow/.well-known/agent-card.json")
            assert card.status_code == 200, card.text
            assert card.headers["cache-control"] == CARD_CACHE_CONTROL
            assert card.json()["name"] == "slow"

            # taskcell's engine cancels the remote task for alice, through the door (the cancel
            # answers once the run stopped, which waits for the agent's answer).
            cancelled = await alice.post(f"/api/v1/tasks/{task_id}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            assert rid in slow.CANCELLED, "the engine's cancel did not reach the agent"
            gone = (await alice.get(f"/a2a/slow/tasks/{rid}")).json()
            assert gone["status"]["state"] == "TASK_STATE_CANCELED", gone

            echo = await alice.post("/api/v1/tasks", json={"query": "hi", "agent_name": "echo"})
            events = await read_sse(alice, f"/api/v1/tasks/{echo.json()['data']['task_id']}/events")
            assert [e["event"] for e in events][-2:] == ["task_completed", "done"], events


async def test_without_keys_the_demo_agents_stay_open(server_factory: ServerFactory) -> None:
    async with server_factory() as url, httpx.AsyncClient(base_url=url, headers=A2A) as client:
        listed = await client.get("/a2a/echo/tasks")
        assert listed.status_code == 200, listed.text
