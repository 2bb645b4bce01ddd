"""Text that every part of taskcell can store, send and log: the one place that says so.

Two characters are never kept: NUL (PostgreSQL's text type refuses it, C libraries cut at it)
and lone surrogates (U+D800..U+DFFF on their own: they cannot be encoded as UTF-8, so the
first write, log line or answer that meets one fails). JSON can carry both (``"\\u0000"``,
``"\\ud800"``), so any text that came from outside may hold them.

Requests are *refused* (``SafeText`` and :func:`check_text` in request models; the API answers
400 naming the field); agent output is *repaired* (:func:`sanitise_text` and
:func:`sanitise_json` replace each bad character with U+FFFD and say whether they did).
Nothing here does I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

__all__ = [
    "MAX_JSON_DEPTH",
    "REPLACEMENT",
    "UNSAFE_TEXT",
    "SafeJsonObject",
    "SafeText",
    "check_json",
    "check_text",
    "is_safe_text",
    "replace_invalid",
    "replace_invalid_in",
    "sanitise_json",
    "sanitise_text",
    "text_problem",
]

#: What :func:`sanitise_text` puts in place of each character it removes.
REPLACEMENT = "\ufffd"
#: The pydantic error type of refused text (the API answers it 400, not 422).
UNSAFE_TEXT = "unsafe_text"
#: How deeply JSON values (metadata, agent payloads) may nest: containers within containers.
MAX_JSON_DEPTH = 32

_SURROGATES = range(0xD800, 0xE000)


def is_safe_text(value: str) -> bool:
    """Whether ``value`` holds neither NUL nor a lone surrogate (fast: one C-level encode)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be kept (in words, without echoing it), or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters (U+0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"must not contain a lone surrogate (U+{ord(value[exc.start]):04X} at position "
            f"{exc.start}); send characters outside the BMP as a surrogate pair or as UTF-8"
        )
    return None


def check_text(value: str) -> str:
    """``value`` unchanged, or a ``PydanticCustomError`` of type :data:`UNSAFE_TEXT`."""
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError(UNSAFE_TEXT, problem)
    return value


#: A ``str`` that :func:`check_text` accepts: use it for every text field of a request.
SafeText = Annotated[str, AfterValidator(check_text)]


def check_json(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``value`` unchanged if every key and string in it is safe text and it nests at most
    ``max_depth`` containers deep; else a ``PydanticCustomError`` whose message names the
    path to the first offending key or value ("a.b.0"). Iterative: any depth is safe."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                raise PydanticCustomError(
                    UNSAFE_TEXT, "{path}{problem}", {"path": _at(path), "problem": problem}
                )
        elif isinstance(item, Mapping | list | tuple):
            if len(path) >= max_depth:
                raise PydanticCustomError(
                    "json_too_deep",
                    "{path}nests more than {limit} levels deep",
                    {"path": _at(path), "limit": max_depth},
                )
            if isinstance(item, Mapping):
                for key, inner in item.items():
                    key_text = str(key)
                    problem = text_problem(key_text)
                    if problem is not None:
                        raise PydanticCustomError(
                            UNSAFE_TEXT,
                            "{path}a key {problem}",
                            {"path": _at(path), "problem": problem},
                        )
                    stack.append((inner, (*path, key_text)))
            else:
                stack.extend((inner, (*path, str(i))) for i, inner in enumerate(item))
    return value


#: A JSON object (``dict``) whose keys and values, at any depth, pass :func:`check_json`.
SafeJsonObject = Annotated[dict[str, Any], AfterValidator(check_json)]


def sanitise_text(value: str) -> tuple[str, bool]:
    """``value`` with each NUL and lone surrogate replaced by U+FFFD, and whether any was."""
    if is_safe_text(value):
        return value, False
    cleaned = "".join(REPLACEMENT if ch == "\x00" or ord(ch) in _SURROGATES else ch for ch in value)
    return cleaned, True


def sanitise_json(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> tuple[Any, bool]:
    """A copy of ``value`` whose keys and strings went through :func:`sanitise_text`, and
    whether anything changed. Containers nested deeper than ``max_depth`` become the string
    ``"<nested too deeply>"``; NaN and infinities are kept (callers that need strict JSON
    check for them). Non-JSON leaves (numbers, booleans, None, other objects) are kept."""
    changed = False

    def clean(item: Any, depth: int) -> Any:
        nonlocal changed
        if isinstance(item, str):
            text, bad = sanitise_text(item)
            changed = changed or bad
            return text
        if isinstance(item, Mapping | list | tuple):
            if depth >= max_depth:
                changed = True
                return "<nested too deeply>"
            if isinstance(item, Mapping):
                return {clean(str(k), depth): clean(v, depth + 1) for k, v in item.items()}
            return [clean(inner, depth + 1) for inner in item]
        return item

    return clean(value, 0), changed


def _at(path: tuple[str, ...]) -> str:
    return f"at {'.'.join(path)}: " if path else ""


#: NUL and every surrogate code point (a str holding one cannot be encoded as UTF-8; a valid
#: pair never appears in a Python str, which holds the combined code point instead).
_INVALID = re.compile("[\x00\ud800-\udfff]")


def replace_invalid(text: str) -> tuple[str, int]:
    """``text`` with NUL and lone surrogates replaced by U+FFFD, and how many were replaced."""
    return _INVALID.subn(REPLACEMENT, text)


def replace_invalid_in(value: Any) -> tuple[Any, int]:
    """``value`` (JSON-like) with :func:`replace_invalid` applied to every string in it (keys
    too) and non-finite floats replaced by None; answers the copy and how many were replaced.
    Values of other types are returned as they are."""
    if isinstance(value, str):
        return replace_invalid(value)
    if isinstance(value, float):
        return (value, 0) if math.isfinite(value) else (None, 1)
    if isinstance(value, dict):
        total = 0
        result: dict[Any, Any] = {}
        for key, item in value.items():
            new_key, key_count = replace_invalid_in(key)
            new_item, item_count = replace_invalid_in(item)
            result[new_key] = new_item
            total += key_count + item_count
        return (result, total) if total else (value, 0)
    if isinstance(value, list | tuple):
        items = [replace_invalid_in(item) for item in value]
        total = sum(count for _, count in items)
        return ([item for item, _ in items], total) if total else (value, 0)
    return value, 0
