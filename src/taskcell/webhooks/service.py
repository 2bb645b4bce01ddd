"""Subscriptions as the API and the CLI see them: create (the secret answered once), list,
delete, rotate, deliveries, redeliver; every URL checked before anything is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from taskcell.abc import WebhookStore
from taskcell.domain.clock import utcnow
from taskcell.domain.webhooks import (
    ALL_EVENTS,
    WEBHOOK_EVENT_TYPES,
    Delivery,
    DeliveryStatus,
    Webhook,
)
from taskcell.webhooks.dispatcher import Dispatcher
from taskcell.webhooks.safety import Unresolved, UnsafeURL, resolve
from taskcell.webhooks.signing import new_secret


class WebhookError(ValueError):
    """A value a subscription cannot take: ``field`` names it (the API answers 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_event_types(event_types: Sequence[str]) -> list[str]:
    """The event types, checked (known ones or ``*``, at least one, no repeats)."""
    if not event_types:
        raise WebhookError("event_types", "name at least one event type, or *")
    unknown = [t for t in event_types if t != ALL_EVENTS and t not in WEBHOOK_EVENT_TYPES]
    if unknown:
        known = ", ".join((*WEBHOOK_EVENT_TYPES, ALL_EVENTS))
        raise WebhookError("event_types", f"unknown event type {unknown[0]!r} (known: {known})")
    return list(dict.fromkeys(event_types))


class WebhookService:
    """See the module docstring."""

    def __init__(self, store: WebhookStore, dispatcher: Dispatcher) -> None:
        self._store = store
        self.dispatcher = dispatcher

    async def check_url(self, url: str, field: str = "url") -> None:
        """:class:`WebhookError` naming ``field`` for a URL a webhook may not call (not
        http(s), or resolving to a loopback, private, link-local or metadata address that the
        allow-list does not allow, or not resolving at all)."""
        limit = self.dispatcher.config.timeout_seconds
        try:
            async with asyncio.timeout(limit):
                await resolve(url, self.dispatcher.config.allow)
        except (UnsafeURL, Unresolved) as exc:
            raise WebhookError(field, str(exc)) from None
        except TimeoutError:
            raise WebhookError(field, f"its host did not resolve within {limit:g} s") from None

    async def create(
        self,
        *,
        user_id: str,
        url: str,
        event_types: Sequence[str] = (ALL_EVENTS,),
        task_id: str | None = None,
        agent_name: str | None = None,
        description: str = "",
        url_field: str = "url",
    ) -> Webhook:
        """Store a new subscription; answers it with its secret (shown this once)."""
        types = check_event_types(event_types)
        await self.check_url(url, url_field)
        webhook = Webhook(
            url=url,
            user_id=user_id,
            secret=new_secret(),
            event_types=types,
            task_id=task_id,
            agent_name=agent_name,
            description=description,
            created_at=utcnow(),
        )
        await self._store.add_webhook(webhook)
        return webhook

    async def get(self, webhook_id: str) -> Webhook | None:
        return await self._store.load_webhook(webhook_id)

    async def list_for(self, *, user_id: str | None) -> list[Webhook]:
        return await self._store.list_webhooks(user_id=user_id)

    async def delete(self, webhook_id: str) -> bool:
        return await self._store.delete_webhook(webhook_id)

    async def rotate(self, webhook_id: str) -> str | None:
        """A new secret for the subscription (answered this once), or None if it is gone."""
        secret = new_secret()
        return secret if await self._store.rotate_webhook_secret(webhook_id, secret) else None

    async def deliveries(
        self, webhook_id: str, *, limit: int, status: DeliveryStatus | None = None
    ) -> list[Delivery]:
        return await self._store.list_deliveries(webhook_id, limit=limit, status=status)

    async def redeliver(self, webhook_id: str, delivery_id: str) -> Delivery | None:
        delivery = await self._store.redeliver(webhook_id, delivery_id)
        if delivery is not None:
            self.dispatcher.wake()
        return delivery
