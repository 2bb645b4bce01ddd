"""Opaque keyset cursors shared by every store: (created_at, id) of the last item seen."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from taskcell.abc import InvalidCursor


def encode_cursor(created_at: datetime, item_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), item_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; :class:`InvalidCursor` for anything a store did not make."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, item_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        moment = datetime.fromisoformat(created)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor("cursor is not one this server handed out") from exc
    if moment.tzinfo is None or not isinstance(item_id, str):
        raise InvalidCursor("cursor is not one this server handed out")
    return moment, item_id
