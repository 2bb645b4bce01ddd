"""Two users with keys: each sees only their own tasks; 401, 403 and 404 where docs/api.md says."""

from __future__ import annotations

import httpx

from .conftest import ServerFactory, read_sse

KEYS = "alice-key:alice:user,bob-key:bob:user,root-key:root:admin"


async def test_users_see_only_their_own_tasks(server_factory: ServerFactory) -> None:
    async with server_factory(api_keys=KEYS) as url:
        alice = httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer alice-key"})
        bob = httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer bob-key"})
        root = httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer root-key"})
        anonymous = httpx.AsyncClient(base_url=url)
        async with alice, bob, root, anonymous:
            made = await alice.post(
                "/api/v1/tasks", json={"query": "mine", "agent_name": "echo", "user_id": "bob"}
            )
            assert made.status_code == 422  # user_id comes from the caller, never the body
            made = await alice.post("/api/v1/tasks", json={"query": "mine", "agent_name": "echo"})
            assert made.status_code == 201
            task = made.json()["data"]
            assert task["user_id"] == "alice"
            task_id = task["task_id"]
            await bob.post("/api/v1/tasks", json={"query": "bob's", "agent_name": "echo"})

            listed = (await alice.get("/api/v1/tasks")).json()["data"]["items"]
            assert [t["task_id"] for t in listed] == [task_id]
            bobs = (await bob.get("/api/v1/tasks")).json()["data"]["items"]
            assert [t["user_id"] for t in bobs] == ["bob"]
            everyone = (await root.get("/api/v1/tasks")).json()["data"]["items"]
            assert sorted(t["user_id"] for t in everyone) == ["alice", "bob"]
            only_alice = (await root.get("/api/v1/tasks", params={"user_id": "alice"})).json()
            assert [t["task_id"] for t in only_alice["data"]["items"]] == [task_id]

            for path in (
                f"/api/v1/tasks/{task_id}",
                f"/api/v1/tasks/{task_id}/runs",
                f"/api/v1/tasks/{task_id}/events",
            ):
                hidden = await bob.get(path)
                assert hidden.status_code == 404, path
                assert hidden.json()["code"] == 404
            assert (await bob.post(f"/api/v1/tasks/{task_id}/cancel")).status_code == 404
            assert (await root.get(f"/api/v1/tasks/{task_id}")).status_code == 200

            conversation = task["conversation_id"]
            items = await alice.get(f"/api/v1/conversations/{conversation}/items")
            assert items.status_code == 200 and items.json()["data"]["items"]
            peek = await bob.get(f"/api/v1/conversations/{conversation}/items")
            assert peek.status_code == 404
            # Conversation ids are per user: bob may use the same id, for his own conversation.
            join = await bob.post(
                "/api/v1/tasks",
                json={"query": "my own", "agent_name": "echo", "conversation_id": conversation},
            )
            assert join.status_code == 201, join.text
            bob_task = join.json()["data"]["task_id"]
            await read_sse(bob, f"/api/v1/tasks/{bob_task}/events")
            bobs_items = (await bob.get(f"/api/v1/conversations/{conversation}/items")).json()
            assert {i["task_id"] for i in bobs_items["data"]["items"]} == {bob_task}, bobs_items
            alices_items = (await alice.get(f"/api/v1/conversations/{conversation}/items")).json()
            assert {i["task_id"] for i in alices_items["data"]["items"]} == {task_id}

            forbidden = await bob.get("/api/v1/tasks", params={"user_id": "alice"})
            assert forbidden.status_code == 403
            assert forbidden.json() == {
                "code": 403,
                "msg": "user_id: only an admin may list another user's tasks",
                "data": None,
            }
            missing = await anonymous.get("/api/v1/tasks")
            assert missing.status_code == 401 and missing.json()["code"] == 401
            assert missing.headers["www-authenticate"] == "Bearer"
            wrong = await anonymous.get("/api/v1/tasks", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and wrong.json()["msg"] == "unknown API key"
