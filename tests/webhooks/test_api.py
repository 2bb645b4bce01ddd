"""The webhooks API: refused URLs, bad input (422 naming the field, nothing stored), owners."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx
import pytest

from taskcell.webhooks.safety import _forbidden, parse_allow
from webhooks.receiver import Receiver

REFUSED_URLS = [
    "http://127.0.0.2/hook",  # loopback, not in the allow-list (127.0.0.1/32)
    "http://169.254.169.254/latest/meta-data",  # the cloud metadata address
    "http://[::1]:8000/hook",
    "http://10.1.2.3/hook",
    "http://[::ffff:192.168.1.1]/hook",
    "file:///etc/passwd",
    "ftp://example.com/hook",
    "http://user:pw@127.0.0.1/hook",
    "http:///nohost",
    "not a url",
]


def assert_names(answer: httpx.Response, field: str) -> None:
    assert answer.status_code in (400, 422), answer.text
    body = answer.json()
    assert body["code"] == answer.status_code
    assert field in [f["field"] for f in body["data"]], body


async def nothing_stored(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/webhooks")).json()["data"]["items"] == []
    assert (await client.get("/api/v1/tasks")).json()["data"]["items"] == []


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_refused_urls_are_422_naming_url(client: httpx.AsyncClient, url: str) -> None:
    answer = await client.post("/api/v1/webhooks", json={"url": url})
    assert answer.status_code == 422, answer.text
    assert_names(answer, "url")
    task = await client.post(
        "/api/v1/tasks", json={"query": "hi", "agent_name": "echo", "webhook_url": url}
    )
    assert task.status_code == 422, task.text
    assert_names(task, "webhook_url")
    await nothing_stored(client)


async def test_a_name_resolving_to_a_loopback_address_is_refused(server_factory: Any) -> None:
    # No allow-list: "localhost" resolves (through /etc/hosts) to 127.0.0.1.
    async with (
        server_factory(webhook_allow="") as url,
        httpx.AsyncClient(base_url=url, timeout=20) as client,
    ):
        answer = await client.post("/api/v1/webhooks", json={"url": "http://localhost:9/hook"})
        assert_names(answer, "url")
        assert "localhost resolves to 127.0.0.1" in answer.json()["msg"]
        await nothing_stored(client)


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("10.0.0.1", True),
        ("172.16.5.4", True),
        ("192.168.0.10", True),
        ("100.64.0.1", True),  # carrier-grade NAT
        ("169.254.169.254", True),
        ("fd00:ec2::254", True),  # a cloud's IPv6 metadata address
        ("fe80::1", True),
        ("::ffff:10.0.0.1", True),
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("93.184.216.34", False),
        ("2606:4700::1111", False),
    ],
)
def test_which_resolved_addresses_are_refused(address: str, refused: bool) -> None:
    assert (_forbidden(ipaddress.ip_address(address), ()) is not None) is refused


def test_the_allow_list_lets_addresses_through() -> None:
    allow = parse_allow("10.0.0.0/8, 127.0.0.1/32")
    assert _forbidden(ipaddress.ip_address("10.9.9.9"), allow) is None
    assert _forbidden(ipaddress.ip_address("127.0.0.2"), allow) is not None
    with pytest.raises(ValueError, match="webhook_allow"):
        parse_allow("10.0.0.0/8,nonsense")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": 5}, "url"),
        ({"url": ""}, "url"),
        ({"url": "http://127.0.0.1/x", "event_types": ["task_exploded"]}, "event_types"),
        ({"url": "http://127.0.0.1/x", "event_types": []}, "event_types"),
        ({"url": "http://127.0.0.1/x", "event_types": "task_failed"}, "event_types"),
        ({"url": "http://127.0.0.1/x", "task_id": ""}, "task_id"),
        ({"url": "http://127.0.0.1/x", "agent_name": 3}, "agent_name"),
        ({"url": "http://127.0.0.1/x", "description": "x" * 501}, "description"),
        ({"url": "http://127.0.0.1/x", "secret": "mine"}, "secret"),
        ({"url": "http://127.0.0.1/x\u0000"}, "url"),
    ],
)
async def test_bad_subscriptions_are_refused_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    answer = await client.post("/api/v1/webhooks", json=body)
    assert_names(answer, field)
    await nothing_stored(client)


async def test_a_bad_webhook_url_on_a_task_stores_nothing(client: httpx.AsyncClient) -> None:
    for value in (5, "", "http://127.0.0.1/x\u0000", "x" * 3000):
        answer = await client.post(
            "/api/v1/tasks", json={"query": "hi", "agent_name": "echo", "webhook_url": value}
        )
        assert_names(answer, "webhook_url")
    unknown_agent = await client.post(
        "/api/v1/tasks",
        json={"query": "hi", "agent_name": "nobody", "webhook_url": "http://127.0.0.1/x"},
    )
    assert_names(unknown_agent, "agent_name")
    await nothing_stored(client)


async def test_secrets_are_shown_once_and_rotate(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    made = (await client.post("/api/v1/webhooks", json={"url": receiver.url})).json()["data"]
    hook_id = made["webhook_id"]
    assert made["event_types"] == ["*"]
    shown = (await client.get(f"/api/v1/webhooks/{hook_id}")).json()["data"]
    assert "secret" not in shown and shown["url"] == receiver.url
    rotated = (await client.post(f"/api/v1/webhooks/{hook_id}/rotate")).json()["data"]
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != made["secret"]
    receiver.secrets.append(rotated["secret"])  # only the new one verifies from now on
    task = await client.post("/api/v1/tasks", json={"query": "hi", "agent_name": "echo"})
    assert task.status_code == 201
    await receiver.wait_for(1)
    assert receiver.forged == []
    gone = await client.delete(f"/api/v1/webhooks/{hook_id}")
    assert gone.json()["data"] == {"webhook_id": hook_id, "deleted": True}
    for answer in (
        await client.get(f"/api/v1/webhooks/{hook_id}"),
        await client.delete(f"/api/v1/webhooks/{hook_id}"),
        await client.post(f"/api/v1/webhooks/{hook_id}/rotate"),
        await client.get(f"/api/v1/webhooks/{hook_id}/deliveries"),
        await client.post(f"/api/v1/webhooks/{hook_id}/deliveries/msg_x/redeliver"),
    ):
        assert answer.status_code == 404, answer.text


async def test_users_see_their_own_webhooks_and_an_admin_all(server_factory: Any) -> None:
    keys = "ak:alice:user,bk:bob:user,rk:root:admin"
    async with server_factory(api_keys=keys) as url:

        def as_(key: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                base_url=url, timeout=20, headers={"Authorization": f"Bearer {key}"}
            )

        async with as_("ak") as alice, as_("bk") as bob, as_("rk") as root:
            made = await alice.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/a"})
            hook_id = made.json()["data"]["webhook_id"]
            assert made.json()["data"]["user_id"] == "alice"
            assert (await bob.get("/api/v1/webhooks")).json()["data"]["items"] == []
            assert (await bob.get(f"/api/v1/webhooks/{hook_id}")).status_code == 404
            assert (await bob.delete(f"/api/v1/webhooks/{hook_id}")).status_code == 404
            assert (await bob.get("/api/v1/webhooks?user_id=alice")).status_code == 403
            every = (await root.get("/api/v1/webhooks")).json()["data"]["items"]
            assert [w["webhook_id"] for w in every] == [hook_id]
            of_alice = (await root.get("/api/v1/webhooks?user_id=alice")).json()["data"]
            assert [w["webhook_id"] for w in of_alice["items"]] == [hook_id]
            assert (await root.delete(f"/api/v1/webhooks/{hook_id}")).status_code == 200
