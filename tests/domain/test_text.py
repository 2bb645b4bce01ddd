"""The one place that says which text taskcell keeps: NUL and lone surrogates never."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from taskcell.domain.models import ScheduleConfig, Task
from taskcell.domain.schedule import next_fire_time, parse_daily_time
from taskcell.domain.text import (
    MAX_JSON_DEPTH,
    REPLACEMENT,
    check_json,
    is_safe_text,
    json_longer_than,
    json_nesting,
    sanitise_json,
    sanitise_text,
    text_problem,
)

BAD = ["Ada \ud800", "\udfff", "a\x00b", "\x00"]
GOOD = ["", "plain", "\U0001f600 emoji", "tab\tnew\nline\x01\x7f", "\ufffd", "日本語"]


@pytest.mark.parametrize("value", BAD)
def test_bad_text_is_refused_without_echoing_it(value: str) -> None:
    problem = text_problem(value)
    assert problem is not None and not is_safe_text(value)
    assert is_safe_text(problem), problem  # the reason itself can always be sent


@pytest.mark.parametrize("value", GOOD)
def test_good_text_passes_unchanged(value: str) -> None:
    assert text_problem(value) is None and is_safe_text(value)
    assert sanitise_text(value) == (value, False)


def test_sanitise_replaces_each_bad_character() -> None:
    assert sanitise_text("a\ud800b\x00c") == (f"a{REPLACEMENT}b{REPLACEMENT}c", True)
    cleaned, changed = sanitise_json({"k\ud800": ["x\x00", 1, None, {"ok": "fine"}]})
    assert changed
    assert cleaned == {f"k{REPLACEMENT}": [f"x{REPLACEMENT}", 1, None, {"ok": "fine"}]}
    assert sanitise_json({"a": [1, "b"]}) == ({"a": [1, "b"]}, False)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_json_is_checked_at_any_depth_and_bounded() -> None:
    check_json(nested(MAX_JSON_DEPTH))
    with pytest.raises(ValueError, match="nests more than"):
        check_json(nested(MAX_JSON_DEPTH + 1))
    with pytest.raises(ValueError, match=r"at a\.0\.b: must not contain a lone surrogate"):
        check_json({"a": [{"b": "\ud800"}]})
    with pytest.raises(ValueError, match="a key must not contain NUL"):
        check_json({"ok": {"\x00": 1}})
    cleaned, changed = sanitise_json(nested(100))
    assert changed and "nested too deeply" in str(cleaned)


@pytest.mark.parametrize("field", ["query", "title", "conversation_id", "thread_id", "agent_name"])
@pytest.mark.parametrize("value", BAD)
def test_task_text_fields_refuse_bad_text(field: str, value: str) -> None:
    values: dict[str, Any] = {"query": "hi", "agent_name": "echo", field: f"x{value}"}
    with pytest.raises(ValidationError) as caught:
        Task(**values)
    assert [e["loc"] for e in caught.value.errors()] == [(field,)], caught.value.errors()


@pytest.mark.parametrize("value", BAD)
def test_metadata_keys_and_values_refuse_bad_text(value: str) -> None:
    for metadata in ({"k": value}, {value: 1}, {"deep": [{"er": value}]}):
        with pytest.raises(ValidationError) as caught:
            Task(query="hi", agent_name="echo", metadata=metadata)
        assert caught.value.errors()[0]["loc"] == ("metadata",)


@pytest.mark.parametrize(
    "value", ["09:05\n", "0\uff19:30", "\uff10\uff19:30", " 09:05", "09:05 ", "9:05", "24:00"]
)
def test_model_and_scheduler_refuse_the_same_daily_times(value: str) -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        parse_daily_time(value)
    with pytest.raises(ValidationError) as caught:
        ScheduleConfig(daily_time=value)
    assert caught.value.errors()[0]["loc"] == ("daily_time",)
    row = ScheduleConfig.model_construct(daily_time=value, interval_minutes=None, timezone="UTC")
    with pytest.raises(ValueError, match="HH:MM"):
        next_fire_time(row, now=datetime(2026, 11, 30, tzinfo=UTC))


@pytest.mark.parametrize("value", ["UTC\ud800", "Europe/Berlin\x00", "x" * 500])
def test_bad_zones_are_refused(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ScheduleConfig(daily_time="09:00", timezone=value)
    assert caught.value.errors()[0]["loc"] == ("timezone",)
    assert is_safe_text(str(caught.value.errors()[0]["msg"]))


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[["', 0),
        ("[]", 1),
        ('{"a": "]]]{{{"}', 1),
        ('["\\"[[[", ["x"]]', 2),
        ("[[],[[]]]", 3),
        ("[" * 50 + "]" * 50, MAX_JSON_DEPTH + 1),  # counting stops past the limit
    ],
)
def test_json_nesting_counts_containers_not_brackets_in_strings(text: str, depth: int) -> None:
    assert json_nesting(text) == depth


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_TRICKY = st.text(alphabet=st.sampled_from('\\"[]{}ab\n\x00\u00e9'), max_size=8)
_JSON = st.recursive(
    st.one_of(st.none(), st.integers(), _TRICKY),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_TRICKY, inner, max_size=3)
    ),
    max_leaves=20,
)


@given(value=_JSON, ascii_only=st.booleans())
def test_json_nesting_agrees_with_the_parsed_depth(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert json_nesting(text, stop_after=100) == _depth(value), text


@given(value=_JSON, slack=st.integers(0, 5))
def test_json_longer_than_never_refuses_what_fits(value: Any, slack: int) -> None:
    length = len(json.dumps(value))
    assert not json_longer_than(value, length + slack)
    assert json_longer_than(value, -1)
