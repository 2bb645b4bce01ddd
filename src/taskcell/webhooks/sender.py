"""One attempt of one delivery: resolve, sign, POST to the checked address, and what the
answer means (delivered, retry, or failed for good)."""

from __future__ import annotations

import asyncio
import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import httpx

from taskcell.domain.clock import utcnow
from taskcell.webhooks.safety import IPNetwork, Unresolved, UnsafeURL, resolve
from taskcell.webhooks.signing import signed_headers

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


def judge(status: int, headers: httpx.Headers, now: datetime) -> tuple[Verdict, timedelta | None]:
    """2xx ends it delivered; 429 and 5xx retry (honouring ``Retry-After`` on 429 and 503);
    anything else (other 4xx, a redirect, which is never followed) ends it failed."""
    if 200 <= status < 300:
        return Verdict.DELIVERED, None
    if status == 429 or status >= 500:
        wait = retry_after(headers.get("retry-after"), now) if status in (429, 503) else None
        return Verdict.RETRY, wait
    return Verdict.FAILED, None


async def send(
    client: httpx.AsyncClient,
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
            now = utcnow()
            headers = signed_headers(secret, message_id, now, body)
            headers["host"] = target.host_header
            headers["user-agent"] = USER_AGENT
            extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
            request = client.build_request(
                "POST",
                target.connect_url,
                content=body.encode("utf-8"),
                headers=headers,
                extensions=extensions,
            )
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                data = b""
                async for chunk in response.aiter_raw():
                    data += chunk
                    if len(data) >= RESPONSE_CAP_BYTES:
                        break
            finally:
                await response.aclose()
    except UnsafeURL as exc:
        return Answer(Verdict.FAILED, error=f"refused: {exc}")
    except Unresolved as exc:
        return Answer(Verdict.RETRY, error=str(exc))
    except TimeoutError:
        return Answer(Verdict.RETRY, error=f"no answer within {time_limit:g} s")
    except httpx.HTTPError as exc:
        return Answer(Verdict.RETRY, error=f"{type(exc).__name__}: {exc}"[:500])
    verdict, wait = judge(response.status_code, response.headers, utcnow())
    text = data[:RESPONSE_CAP_BYTES].decode("utf-8", "replace")
    error = None
    if verdict is Verdict.FAILED and 300 <= response.status_code < 400:
        error = "redirects are not followed"
    return Answer(verdict, response.status_code, text, error, wait)
