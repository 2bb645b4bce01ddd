"""Print the rows every benchmark wrote (``--json FILE``) as one table: the end of ``make bench``.

Usage: ``python bench/summary.py FILE...`` (missing files are named, not fatal: a benchmark that
could not run, such as cluster.py without PostgreSQL, leaves a gap, not a crash).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from results import Row, read_rows

HEADERS = ("measure", "taskcell", "baseline", "ratio", "target", "met")


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:,.2f} ms" if value < 10 else f"{value:,.1f} ms"
    if unit == "%":
        return f"{value:.3f} %"
    return f"{value:,.0f} {unit}"


def cells(row: Row) -> tuple[str, ...]:
    baseline = _figure(row.baseline, row.unit)
    if row.baseline is not None and row.baseline_name:
        baseline += f" ({row.baseline_name})"
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
    met = "-" if row.met is None else ("met" if row.met else "NOT met")
    return (row.measure, _figure(row.taskcell, row.unit), baseline, ratio, row.target, met)


def table(rows: list[Row]) -> str:
    lines = [HEADERS, *(cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADERS))]
    out = []
    for index, line in enumerate(lines):
        out.append("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)))
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(text.rstrip() for text in out)


def main(paths: list[Path]) -> int:
    rows: list[Row] = []
    for path in paths:
        if path.exists():
            rows += read_rows(path)
        else:
            print(f"(no figures from {path}: that benchmark did not finish)")
    print(table(rows))
    missed = [row.measure for row in rows if row.met is False]
    tail = f": {'; '.join(missed)}" if missed else ""
    print(f"{len(rows)} measures, {len(missed)} targets not met{tail}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    sys.exit(main(parser.parse_args().files))
