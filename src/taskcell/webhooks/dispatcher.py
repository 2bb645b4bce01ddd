"""The dispatcher: claims due deliveries from the outbox and sends them, never in the way of
a task (a background loop of its own, bounded time per attempt).

Each claim takes up to the free capacity; a claimed delivery is the claimer's for
``claim_seconds`` (more than an attempt's time-out), so exactly one process sends it, and a
process that dies mid-attempt leaves it to be claimed again once the claim lapses. The
deliveries of one task and subscription are sent one after another, in order; the rest at
once, up to ``concurrency``. The loop wakes when this process appends an event that makes a
delivery, and looks every ``poll_seconds`` anyway (retries coming due, other processes'
events).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from taskcell.abc import WebhookStore
from taskcell.domain.clock import utcnow
from taskcell.domain.events import Event
from taskcell.domain.webhooks import (
    DISABLE_AFTER,
    Delivery,
    DeliveryStatus,
    Webhook,
    retry_delay,
    worthy_task_ids,
)
from taskcell.metrics import WEBHOOK_DELIVERIES, WEBHOOK_LAG
from taskcell.webhooks.safety import IPNetwork
from taskcell.webhooks.sender import Answer, Verdict, send
from taskcell.webhooks.wire import WirePool

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DispatcherConfig:
    """How deliveries are sent (``allow``: the networks a URL may resolve to beyond public
    addresses)."""

    allow: tuple[IPNetwork, ...] = ()
    timeout_seconds: float = 10.0
    claim_seconds: float = 60.0
    poll_seconds: float = 1.0
    concurrency: int = 16
    disable_after: timedelta = field(default=DISABLE_AFTER)


class Dispatcher:
    """See the module docstring; :meth:`run` is the loop (the engine supervises it)."""

    def __init__(
        self,
        store: WebhookStore,
        config: DispatcherConfig | None = None,
        *,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self._store = store
        self.config = config or DispatcherConfig()
        self._wakeup = asyncio.Event()
        self._rand = rand
        self._pool: WirePool | None = None

    def wake(self) -> None:
        self._wakeup.set()

    def appended(self, events: Sequence[Event]) -> None:
        """Told of each batch this process appended: one that made deliveries wakes it."""
        if worthy_task_ids(events):
            self._wakeup.set()

    async def run(self) -> None:
        config = self.config
        running: set[asyncio.Task[None]] = set()
        self._pool = pool = WirePool()
        try:
            while True:
                free = config.concurrency - len(running)
                claimed = await self._claim(free) if free > 0 else []
                for group in _groups(claimed):
                    task = asyncio.create_task(self._send_all(group), name="webhook-send")
                    running.add(task)
                    task.add_done_callback(running.discard)
                if claimed and len(claimed) >= free:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                await self._idle(running)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            pool.close()
            self._pool = None

    async def _claim(self, limit: int) -> list[tuple[Delivery, Webhook]]:
        claim_for = timedelta(seconds=self.config.claim_seconds)
        return await self._store.claim_deliveries(claim_for, limit=limit)

    async def _idle(self, running: set[asyncio.Task[None]]) -> None:
        """Wait for a wake-up, a finished send, or the poll interval."""
        self._wakeup.clear()
        waiter = asyncio.create_task(self._wakeup.wait())
        try:
            await asyncio.wait(
                {waiter, *running},
                timeout=self.config.poll_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waiter.cancel()

    async def _send_all(self, group: list[tuple[Delivery, Webhook]]) -> None:
        """Send one task's deliveries to one subscription, in order. An error here (the store
        unreachable to record an answer) is logged: the claim lapses and it is sent again."""
        for delivery, webhook in group:
            try:
                await self.attempt(delivery, webhook)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception(
                    "webhook delivery not recorded",
                    extra={"delivery_id": delivery.delivery_id, "webhook_id": webhook.webhook_id},
                )

    async def attempt(self, delivery: Delivery, webhook: Webhook) -> Answer:
        """Send one claimed delivery and record the answer."""
        pool = self._pool
        assert pool is not None, "attempt() runs inside run()"
        config = self.config
        answer = await send(
            pool,
            url=webhook.url,
            secret=webhook.secret,
            message_id=delivery.delivery_id,
            body=delivery.body,
            allow=config.allow,
            time_limit=config.timeout_seconds,
        )
        retry_in = None
        status = DeliveryStatus.FAILED
        if answer.verdict is Verdict.DELIVERED:
            status = DeliveryStatus.DELIVERED
        elif answer.verdict is Verdict.RETRY:
            kwargs = {"rand": self._rand} if self._rand is not None else {}
            retry_in = retry_delay(delivery.attempts, retry_after=answer.retry_after, **kwargs)
            if retry_in is not None:
                status = DeliveryStatus.PENDING
        recorded = await self._store.finish_delivery(
            delivery.delivery_id,
            attempt=delivery.attempts,
            status=status,
            retry_in=retry_in,
            status_code=answer.status_code,
            response=answer.response,
            error=answer.error,
            disable_after=config.disable_after,
        )
        outcome = {"delivered": "sent", "pending": "retried", "failed": "failed"}[status.value]
        if recorded:
            WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
            if status is DeliveryStatus.DELIVERED:
                WEBHOOK_LAG.observe(max((utcnow() - delivery.created_at).total_seconds(), 0.0))
        log = logger.debug if status is DeliveryStatus.DELIVERED else logger.info
        log(
            "webhook attempt",
            extra={
                "delivery_id": delivery.delivery_id,
                "webhook_id": webhook.webhook_id,
                "attempt": delivery.attempts,
                "outcome": outcome,
                "status_code": answer.status_code,
                "error": answer.error,
            },
        )
        return answer


def _groups(claimed: list[tuple[Delivery, Webhook]]) -> list[list[tuple[Delivery, Webhook]]]:
    """The claimed deliveries by task and subscription, each group in event order."""
    groups: dict[tuple[str, str], list[tuple[Delivery, Webhook]]] = {}
    for pair in claimed:
        groups.setdefault((pair[0].webhook_id, pair[0].task_id), []).append(pair)
    for group in groups.values():
        group.sort(key=lambda pair: pair[0].seq)
    return list(groups.values())
