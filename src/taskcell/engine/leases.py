"""Keeping this process's leases: heartbeat and renewal every half lease.

Every decision is made by the store's clock, never this process's (see
``taskcell.abc.Coordination``). An outage is waited out: if the leases go unrenewed for
:data:`LEASE_SAFETY` of their length, this process stops its runs (writing nothing more) before
the leases expire, so whoever recovers them never meets a live writer. Once the store answers
again, the runs stopped meanwhile are recovered before any lease is renewed (so theirs never
are).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from taskcell.abc import Store
from taskcell.domain.models import utcnow
from taskcell.engine.supervisor import Supervisor

logger = logging.getLogger(__name__)

#: Past this fraction of a lease without a successful renewal, this process's runs stop.
LEASE_SAFETY = 0.8


class LeaseKeeper:
    """See the module docstring. ``before_renewing`` runs before every renewal (it recovers
    the runs stopped for an outage, if any); ``on_lapse`` stops this process's runs and
    answers their task ids (none if they were stopped already)."""

    def __init__(
        self,
        store: Store,
        supervisor: Supervisor,
        *,
        owner: str,
        lease: timedelta,
        before_renewing: Callable[[], Awaitable[object]],
        on_lapse: Callable[[], list[str]],
    ) -> None:
        self._store = store
        self._supervisor = supervisor
        self._owner = owner
        self._lease = lease
        self._before_renewing = before_renewing
        self._on_lapse = on_lapse
        self._lease_guard: asyncio.TimerHandle | None = None
        #: Loop time of the last renewal that succeeded (sent then), None before the first.
        self.renewed_at: float | None = None
        #: A renewal failed (an outage) since the last one that succeeded.
        self._failing = False
        #: Loop time from which failing renewals stop this process's runs.
        self._deadline = float("inf")
        #: The store's clock minus this process's, as last read (at each lease renewal).
        self.clock_offset = timedelta(0)

    def store_now(self) -> datetime:
        """The store's clock, as last read (no round trip)."""
        return utcnow() + self.clock_offset

    async def run(self) -> None:
        """The supervised ``leases`` loop: heartbeat and renew this process's leases every half
        lease (by the store's clock), waiting out outages; see :meth:`_arm_lease_guard`."""
        interval = self._lease.total_seconds() / 2
        self._arm_lease_guard(asyncio.get_running_loop().time())
        try:
            while True:
                await self._supervisor.weather(
                    "leases",
                    self._renew,
                    cap_seconds=max(interval / 4, 0.05),
                    on_outage=self._renewal_failed,
                )
                await asyncio.sleep(interval)
        finally:
            if self._lease_guard is not None:
                self._lease_guard.cancel()

    async def _renew(self) -> None:
        sent = asyncio.get_running_loop().time()
        # Never renew the leases of runs stopped for the outage: recover them first.
        await self._before_renewing()
        await self._store.heartbeat(self._owner)
        await self._store.renew_leases(self._owner, self._lease)
        if not self._store.single_server:
            self.clock_offset = await self._store.clock() - utcnow()
        self.renewed_at, self._failing = sent, False
        self._arm_lease_guard(sent)

    def _renewal_failed(self, _: BaseException) -> None:
        self._failing = True
        if asyncio.get_running_loop().time() >= self._deadline:
            self._leases_lost()

    def _arm_lease_guard(self, renewed: float) -> None:
        """From :data:`LEASE_SAFETY` of a lease after ``renewed`` (loop time the last renewal
        was sent) on, stop this process's runs as soon as renewals fail (an outage), unless
        one succeeds first. A renewal that is merely late (a busy event loop, a slow statement)
        stops nothing; one that hangs fails at the statement time-out."""
        if self._lease_guard is not None:
            self._lease_guard.cancel()
        self._deadline = renewed + LEASE_SAFETY * self._lease.total_seconds()
        loop = asyncio.get_running_loop()
        self._lease_guard = loop.call_at(self._deadline, self._guard)

    def _guard(self) -> None:
        self._lease_guard = None
        if self._failing:
            self._leases_lost()

    def _leases_lost(self) -> None:
        stopped = self._on_lapse()
        if stopped:
            logger.error(
                "leases not renewed in time (the store is unavailable): runs stopped",
                extra={"runs": stopped, "lease_s": self._lease.total_seconds()},
            )
