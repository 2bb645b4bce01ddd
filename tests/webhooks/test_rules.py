"""The pure rules: the retry schedule, what an answer means, Retry-After, and signing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from taskcell.domain.webhooks import JITTER, MAX_ATTEMPTS, RETRY_DELAYS, retry_delay
from taskcell.webhooks.sender import Verdict, judge, retry_after
from taskcell.webhooks.signing import new_secret, signed_headers

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_the_schedule_spans_about_a_day_with_jitter_never_shorter() -> None:
    waits = [retry_delay(n, rand=lambda: 0.0) for n in range(1, MAX_ATTEMPTS)]
    assert waits == list(RETRY_DELAYS)
    assert [w.total_seconds() for w in RETRY_DELAYS] == [5, 300, 1800, 7200, 18000, 36000]
    assert retry_delay(MAX_ATTEMPTS) is None  # the last attempt: failed for good
    most = retry_delay(1, rand=lambda: 0.999)
    assert most == RETRY_DELAYS[0] * (1 + JITTER * 0.999)  # the jitter adds at most JITTER
    assert retry_delay(1, retry_after=timedelta(minutes=2)) == timedelta(minutes=2)
    capped = retry_delay(1, retry_after=timedelta(days=30))
    assert capped == timedelta(days=1)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),
        (301, Verdict.FAILED),
        (400, Verdict.FAILED),
        (404, Verdict.FAILED),
        (408, Verdict.FAILED),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
    ],
)
def test_what_an_answer_means(status: int, verdict: Verdict) -> None:
    assert judge(status, httpx.Headers(), NOW)[0] is verdict


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after("120", NOW) == timedelta(seconds=120)
    assert retry_after("Mon, 30 Nov 2026 12:05:00 GMT", NOW) == timedelta(minutes=5)
    assert retry_after("Mon, 30 Nov 2026 11:00:00 GMT", NOW) == timedelta(0)
    assert retry_after("soon", NOW) is None
    assert retry_after(None, NOW) is None
    headers = httpx.Headers({"Retry-After": "7"})
    assert judge(429, headers, NOW) == (Verdict.RETRY, timedelta(seconds=7))
    assert judge(500, headers, NOW) == (Verdict.RETRY, None)


def test_signatures_verify_with_the_standard_verifier() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and new_secret() != secret
    now = datetime.now(UTC)
    body = '{"type":"task_completed"}'
    headers = signed_headers(secret, "msg_1", now, body)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert headers["webhook-signature"].startswith("v1,")
    assert Verifier(secret).verify(body, headers) == {"type": "task_completed"}
    with pytest.raises(Exception, match="signature"):
        Verifier(new_secret()).verify(body, headers)
