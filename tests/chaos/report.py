"""The report: faults injected, violations per invariant charged to the fault that was on.

A violation with a time is charged to the phase it falls in (a phase runs from one injection to
the next; before the first it is ``none``); one without a time is charged to ``(end state)``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime

from .checker import INVARIANTS, Violation

EXAMPLES = 3


@dataclass
class Phase:
    fault: str
    started: datetime


def charge(violation: Violation, phases: list[Phase]) -> str:
    if violation.at is None:
        return "(end state)"
    fault = "none"
    for phase in phases:
        if phase.started <= violation.at:
            fault = phase.fault
    return fault


def render(title: str, phases: list[Phase], violations: list[Violation], notes: list[str]) -> str:
    injected = Counter(p.fault for p in phases)
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for violation in violations:
        table[charge(violation, phases)][violation.invariant] += 1
    rows = [("fault", "injected", "invariant", "violations")]
    for fault in ["none", *injected, "(end state)"]:
        count = str(injected.get(fault, "-"))
        found = table.get(fault, Counter())
        if not found and fault in injected:
            rows.append((fault, count, "(all)", "0"))
        rows.extend((fault, count, i, str(found[i])) for i in INVARIANTS if found[i])
    totals = Counter(v.invariant for v in violations)
    rows.append(("", "", "", ""))
    total = str(sum(injected.values()))
    rows.extend(("total", total, i, str(totals[i])) for i in INVARIANTS)
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [title, ""]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    shown: dict[str, list[Violation]] = defaultdict(list)
    for violation in violations:
        shown[violation.invariant].append(violation)
    if shown:
        lines += ["", "examples:"]
    for invariant in INVARIANTS:
        for violation in shown[invariant][:EXAMPLES]:
            when = f" at {violation.at:%H:%M:%S}" if violation.at else ""
            lines.append(
                f"  [{invariant}] {violation.subject[:12]}{when} "
                f"({charge(violation, phases)}): {violation.detail}"
            )
    lines += ["", *notes]
    return "\n".join(lines)
