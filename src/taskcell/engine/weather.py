"""Outages are weather, not death: which failures are I/O, and waiting them out.

A lost database connection, a database restarting, a full or unwritable disk, a statement that
timed out: these are *outages*. They end by themselves (or by an operator), so every
background loop waits them out, retrying with capped exponential back-off and jitter
(`tenacity`) for as long as they last, and the API answers 503 meanwhile. Anything else that
escapes a loop is a *bug*: the supervisor stops the service rather than limp on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_never
from tenacity.wait import wait_random_exponential

from taskcell.outages import describe, is_outage

__all__ = ["describe", "is_outage", "retrying", "weather"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Back-off between attempts: random within an exponentially growing window, at most this.
BACKOFF_MIN_SECONDS = 0.1
BACKOFF_CAP_SECONDS = 10.0


def retrying(
    what: str,
    *,
    cap_seconds: float = BACKOFF_CAP_SECONDS,
    on_outage: Callable[[BaseException], None] | None = None,
) -> AsyncRetrying:
    """A tenacity retrier that retries outages (only) without end, with capped exponential
    back-off and full jitter, logging each; ``on_outage`` hears of each failure."""

    def before_sleep(state: RetryCallState) -> None:
        assert state.outcome is not None
        exc = state.outcome.exception()
        assert exc is not None
        if on_outage is not None:
            on_outage(exc)
        logger.warning(
            "store unavailable; retrying",
            extra={
                "loop": what,
                "attempt": state.attempt_number,
                "error": describe(exc),
                "retry_in_s": round(state.upcoming_sleep, 2),
            },
        )

    return AsyncRetrying(
        retry=retry_if_exception(is_outage),
        wait=wait_random_exponential(multiplier=BACKOFF_MIN_SECONDS, max=cap_seconds),
        stop=stop_never,
        before_sleep=before_sleep,
        reraise=True,
    )


async def weather(
    what: str,
    step: Callable[[], Awaitable[T]],
    *,
    cap_seconds: float = BACKOFF_CAP_SECONDS,
    on_outage: Callable[[BaseException], None] | None = None,
) -> T:
    """Run ``step`` until it succeeds, waiting out outages (each call starts a fresh back-off;
    any other exception propagates)."""
    async for attempt in retrying(what, cap_seconds=cap_seconds, on_outage=on_outage):
        with attempt:
            return await step()
    raise AssertionError("unreachable: the retrier never stops")
