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

import json
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
    "json_longer_than",
    "json_nesting",
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


#: Every byte but the four brackets and the quote (bytes.translate deletes them in C).
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")


def json_nesting(text: str, *, stop_after: int = MAX_JSON_DEPTH + 1) -> int:
    """How deeply the JSON document ``text`` nests containers (0 for a scalar), counting at
    most to ``stop_after``. C-speed steps only (no Python loop per value), so it is cheap on
    megabytes: escapes are dropped, then everything but brackets and quotes, then the
    strings (between quote pairs), then innermost bracket pairs, once per level."""
    # Escaped backslashes first, then escaped quotes: runs of backslashes pair up left to
    # right, as a JSON parser reads them. No other escape can hide a quote or a bracket.
    raw = text.encode("utf-8", "surrogatepass").replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(raw.translate(None, _NOT_STRUCTURE).split(b'"')[::2])
    depth = 0
    while brackets and depth < stop_after:
        reduced = _EMPTY_PAIR.sub(b"", brackets)
        if reduced == brackets:  # not balanced: not JSON this function can judge
            return stop_after
        brackets = reduced
        depth += 1
    return depth


def json_longer_than(value: Any, limit: int) -> bool:
    """Whether ``json.dumps(value)`` is certainly longer than ``limit`` characters.

    Counts a lower bound of the length (each string's characters and quotes, one character
    per other value and per separator) and stops as soon as it passes ``limit``: the cost is
    bounded by ``limit``, not by the size of ``value``, so a huge value is refused after
    looking at a small part of it.
    """
    total = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, Mapping):
            total += 2
            for key, inner in item.items():
                total += len(str(key)) + 3  # quotes and colon
                stack.append(inner)
        elif isinstance(item, list | tuple):
            total += 2 + max(len(item) - 1, 0)  # brackets and separators
            stack.extend(item)
        else:
            total += 1
        if total > limit:
            return True
    return False


def check_json(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``value`` unchanged if every key and string in it is safe text and it nests at most
    ``max_depth`` containers deep; else a ``PydanticCustomError`` whose message names the
    path to the first offending key or value ("a.b.0").

    Fast for the common, clean value: one ``json.dumps`` and a few regular expressions, all
    in C. Only a value they cannot clear (a bad character, too deep, or a literal
    ``\\u0000`` in the text) is walked in Python, iteratively (any depth is safe), to name
    the path."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return _walk(value, max_depth)
    if "\\u0000" not in text and is_safe_text(text) and json_nesting(text) <= max_depth:
        return value
    return _walk(value, max_depth)


def _walk(value: Any, max_depth: int) -> Any:
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
