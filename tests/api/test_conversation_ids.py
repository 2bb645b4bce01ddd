"""Conversation ids are per user: one user's choice never blocks another's."""

from __future__ import annotations

import httpx

from .conftest import ServerFactory, read_sse

KEYS = "alice-key:alice:user,bob-key:bob:user,root-key:root:admin"


async def test_two_users_can_both_use_one_conversation_id(server_factory: ServerFactory) -> None:
    async with server_factory(api_keys=KEYS) as url:
        clients = {
            name: httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {name}-key"}, timeout=20
            )
            for name in ("alice", "bob", "root")
        }
        async with clients["alice"], clients["bob"], clients["root"]:
            made: dict[str, str] = {}
            for name in ("alice", "bob"):
                body = {"query": f"{name} here", "agent_name": "echo", "conversation_id": "shared"}
                answer = await clients[name].post("/api/v1/tasks", json=body)
                assert answer.status_code == 201, (name, answer.text)
                made[name] = answer.json()["data"]["task_id"]
                events = await read_sse(clients[name], f"/api/v1/tasks/{made[name]}/events")
                kinds = [e["event"] for e in events]
                # Each user's first task opens their own conversation.
                assert kinds[0] == "conversation_started", (name, kinds)
                assert kinds[-2:] == ["task_completed", "done"], (name, kinds)

            for name in ("alice", "bob"):
                page = await clients[name].get("/api/v1/conversations/shared/items")
                assert page.status_code == 200, page.text
                items = page.json()["data"]["items"]
                assert {i["task_id"] for i in items} == {made[name]}, (name, items)
                contents = [i["payload"]["content"] for i in items if i["event"] == "message"]
                assert f"{name} here" in contents, (name, contents)
                listed = await clients[name].get(
                    "/api/v1/tasks", params={"conversation_id": "shared"}
                )
                assert [t["task_id"] for t in listed.json()["data"]["items"]] == [made[name]]

            everyone = (await clients["root"].get("/api/v1/conversations/shared/items")).json()
            assert {i["task_id"] for i in everyone["data"]["items"]} == set(made.values())
            unknown = await clients["bob"].get("/api/v1/conversations/nobody-has-it/items")
            assert unknown.status_code == 404, unknown.text
