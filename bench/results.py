"""The rows a benchmark hands to ``bench/summary.py``: one JSON file per benchmark script.

Each row is one measure: taskcell's figure, its baseline's (measured in the same run), the
ratio, the target and whether it was met. ``make bench`` passes ``--json FILE`` to each script
and ends with ``bench/summary.py FILE...``, which prints them all as one table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Row:
    """One measure. ``target`` is readable text (``ratio >= 0.8``, ``p99 < 250 ms``); ``met``
    is None when the measure has no target (a figure printed for context)."""

    measure: str
    taskcell: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None


def write_rows(path: Path | None, rows: list[Row]) -> None:
    """Write ``rows`` to ``path`` as JSON (nothing when ``path`` is None)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(row) for row in rows], indent=1), encoding="utf-8")


def read_rows(path: Path) -> list[Row]:
    return [Row(**fields) for fields in json.loads(path.read_text(encoding="utf-8"))]
