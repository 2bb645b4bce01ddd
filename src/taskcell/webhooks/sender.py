"""One attempt of one delivery: resolve, sign, POST to the checked address, and what the
answer means (delivered, retry, or failed for good)."""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from taskcell.domain.clock import utcnow
from taskcell.webhooks.safety import IPNetwork, Unresolved, UnsafeURL, resolve
from taskcell.webhooks.signing import signed_headers
from taskcell.webhooks.wire import WireError, WirePool

#: How much of a receiver's answer is read and kept (for the deliveries list).
RESPONSE_CAP_BYTES = 1024
USER_AGENT = "taskcell-webhooks/1"


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Answer:
    """What one attempt came to."""

    verdict: Verdict
    status_code: int | None = None
    response: str | None = None
    error: str | None = None
    retry_after: timedelta | None = None


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as a wait; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(moment - now, timedelta(0))


def judge(
    status: int, headers: Mapping[str, str], now: datetime
) -> tuple[Verdict, timedelta | None]:
    """2xx ends it delivered; 429 and 5xx retry (honouring ``Retry-After`` on 429 and 503);
    anything else (other 4xx, a redirect, which is never followed) ends it failed."""
    if 200 <= status < 300:
        return Verdict.DELIVERED, None
    if status == 429 or status >= 500:
        wait = retry_after(headers.get("retry-after"), now) if status in (429, 503) else None
        return Verdict.RETRY, wait
    return Verdict.FAILED, None


async def send(
    pool: WirePool,
    *,
    url: str,
    secret: str,
    message_id: str,
    body: str,
    allow: tuple[IPNetwork, ...],
    time_limit: float,
) -> Answer:
    """One attempt, within ``time_limit`` seconds in all (resolving, connecting, the answer)."""
    try:
        async with asyncio.timeout(time_limit):
            target = await resolve(url, allow)
            headers = signed_headers(secret, message_id, utcnow(), body)
            headers["host"] = target.host_header
            headers["user-agent"] = USER_AGENT
            reply = await pool.post(
                scheme=target.scheme,
                address=target.address,
                port=target.port,
                host=target.host,
                target=target.target,
                headers=headers,
                body=body.encode("utf-8"),
                cap=RESPONSE_CAP_BYTES,
            )
    except UnsafeURL as exc:
        return Answer(Verdict.FAILED, error=f"refused: {exc}")
    except Unresolved as exc:
        return Answer(Verdict.RETRY, error=str(exc))
    except TimeoutError:
        return Answer(Verdict.RETRY, error=f"no answer within {time_limit:g} s")
    except WireError as exc:
        return Answer(Verdict.RETRY, error=str(exc)[:500])
    verdict, wait = judge(reply.status, reply.headers, utcnow())
    text = reply.body.decode("utf-8", "replace")
    error = None
    if verdict is Verdict.FAILED and 300 <= reply.status < 400:
        error = "redirects are not followed"
    return Answer(verdict, reply.status, text, error, wait)
