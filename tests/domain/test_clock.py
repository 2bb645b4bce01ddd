"""domain.clock: the one place a datetime becomes UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from taskcell.domain.clock import NaiveDatetime, as_utc, utcnow


def test_an_aware_datetime_becomes_the_same_instant_in_utc() -> None:
    berlin_noon = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    moment = as_utc(berlin_noon)
    assert moment == berlin_noon and moment.tzinfo is UTC, moment
    assert moment.hour == 11, moment


def test_a_naive_datetime_is_refused_naming_what_it_is() -> None:
    with pytest.raises(NaiveDatetime, match=r"previous must be an aware datetime"):
        as_utc(datetime(2026, 1, 1, 12, 0), "previous")


def test_now_is_aware_and_utc() -> None:
    assert utcnow().tzinfo is UTC
