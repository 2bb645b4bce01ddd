"""``client.webhooks`` on both clients against a real ``taskcell serve`` (webhooks to loopback
allowed) and a real receiver that verifies every signature."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from live_server import ALICE, BOB, LiveServer, live_server
from taskcell.client import (
    AsyncClient,
    Client,
    NotFound,
    ValidationFailed,
    Webhook,
    WebhookCreated,
    WebhookDelivery,
)
from webhooks.receiver import Receiver

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("client-webhooks")
    with live_server(folder, TASKCELL_WEBHOOK_ALLOW="127.0.0.1/32") as running:
        yield running


def test_subscribe_list_rotate_and_delete(hooked: LiveServer) -> None:
    with Client(hooked.url, ALICE) as alice, Client(hooked.url, BOB) as bob:
        made = alice.webhooks.create(
            "http://127.0.0.1:9/hook",
            event_types=["task_completed", "task_failed"],
            agent_name="echo",
            description="ops",
        )
        assert isinstance(made, WebhookCreated)
        assert made.secret.startswith("whsec_")
        assert (made.event_types, made.agent_name, made.task_id) == (
            ["task_completed", "task_failed"],
            "echo",
            None,
        )
        listed = alice.webhooks.list()
        assert [w.webhook_id for w in listed] == [made.webhook_id]
        assert isinstance(listed[0], Webhook) and not hasattr(listed[0], "secret")
        assert alice.webhooks.get(made.webhook_id).description == "ops"
        assert bob.webhooks.list() == []
        with pytest.raises(NotFound):
            bob.webhooks.rotate(made.webhook_id)
        rotated = alice.webhooks.rotate(made.webhook_id)
        assert rotated.webhook_id == made.webhook_id
        assert rotated.secret.startswith("whsec_") and rotated.secret != made.secret
        assert alice.webhooks.deliveries(made.webhook_id) == []
        with pytest.raises(ValidationFailed) as bad_url:
            alice.webhooks.create("ftp://127.0.0.1/hook")
        assert bad_url.value.field_names() == ["url"]
        with pytest.raises(ValidationFailed) as bad_type:
            alice.webhooks.create("http://127.0.0.1:9/hook", event_types=["nope"])
        assert bad_type.value.field_names() == ["event_types"]
        gone = alice.webhooks.delete(made.webhook_id)
        assert (gone.webhook_id, gone.deleted) == (made.webhook_id, True)
        assert alice.webhooks.list() == []
        with pytest.raises(NotFound):
            alice.webhooks.delete(made.webhook_id)


async def delivered(client: AsyncClient, webhook_id: str) -> WebhookDelivery:
    """The subscription's one delivery, once it is ``delivered`` (the row is written just
    after the receiver answers, so it is read until then)."""
    async with asyncio.timeout(30):
        while True:
            found = await client.webhooks.deliveries(webhook_id)
            if found and found[0].status == "delivered":
                return found[0]
            await asyncio.sleep(0.05)


async def test_the_async_client_sees_a_delivery_and_redelivers_it(hooked: LiveServer) -> None:
    receiver = Receiver()
    async with receiver.serving() as url, AsyncClient(hooked.url, ALICE) as alice:
        made = await alice.webhooks.create(url, event_types=["task_completed"])
        receiver.secrets.append(made.secret)
        task = await alice.tasks.create("hello hooks", agent="echo")
        first = (await receiver.wait_for(1))[0]
        assert first.body["type"] == "task_completed"
        assert first.body["data"]["task"]["task_id"] == task.task_id
        done = await delivered(alice, made.webhook_id)
        assert (done.delivery_id, done.task_id, done.attempts) == (
            first.webhook_id,
            task.task_id,
            1,
        )
        assert done.last_status_code == 200 and done.delivered_at is not None
        again = await alice.webhooks.redeliver(made.webhook_id, done.delivery_id)
        assert (again.delivery_id, again.attempts) == (done.delivery_id, 0)
        second = (await receiver.wait_for(2))[1]
        assert second.webhook_id == first.webhook_id
        assert receiver.forged == []
        with pytest.raises(NotFound):
            await alice.webhooks.redeliver(made.webhook_id, "msg_unknown")
        assert (await alice.webhooks.delete(made.webhook_id)).deleted
