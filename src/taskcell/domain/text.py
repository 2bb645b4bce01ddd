"""Text that every store can hold: what taskcell does with characters it cannot keep.

A lone surrogate (``"\\ud800"``) cannot be encoded as UTF-8, and PostgreSQL refuses NUL in
text. Requests that carry them are refused; an agent's output is repaired instead, so a run
goes on: :func:`replace_invalid` turns each such character into U+FFFD (the replacement
character) and says how many it replaced; :func:`replace_invalid_in` does the same through
JSON-like values (dicts, lists, strings), and also replaces floats JSON cannot carry (NaN,
infinities) with None.
"""

from __future__ import annotations

import math
import re
from typing import Any

REPLACEMENT = "\ufffd"

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


__all__ = ["REPLACEMENT", "replace_invalid", "replace_invalid_in"]
