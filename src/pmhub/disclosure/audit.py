"""The audit of a suppressed table: how far can a reader pin down each hidden cell?

What a reader knows is a linear programme: the shown cells, every line (a total is the
sum of its parts), and that a hidden cell is at least 1 (zeros are shown; a cell that is
never shown may be 0). A hidden cell's feasible interval is its minimum and maximum over
that programme (HiGHS through scipy). The constraint matrix of one- and two-way tables
with margins is totally unimodular, so the bounds are integers there and an interval
wider than a point holds at least two integer solutions.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from pmhub.disclosure.tables import Line

K = TypeVar("K", bound=Hashable)
UNBOUNDED = float("inf")


def intervals(
    values: Mapping[K, float],
    lines: Sequence[Line[K]],
    hidden: set[K],
    targets: set[K],
    unreleased: set[K],
    floor: float = 1.0,
) -> dict[K, tuple[float, float]]:
    """Each target's feasible interval, given everything but the hidden cells."""
    from scipy.optimize import linprog  # heavy: only when a table has hidden cells

    relevant = [ln for ln in lines if any(k in hidden for k in ln.members())]
    order = sorted(hidden, key=str)
    index = {k: i for i, k in enumerate(order)}
    rows, rhs = [], []
    for line in relevant:
        row = [0.0] * len(order)
        constant = 0.0
        for k, sign in ((line.total, 1.0), *((p, -1.0) for p in line.parts)):
            if k in index:
                row[index[k]] += sign
            else:
                constant += sign * float(values[k])
        rows.append(row)
        rhs.append(-constant)
    bounds = [(0.0 if k in unreleased else floor, None) for k in order]
    out: dict[K, tuple[float, float]] = {}
    for key in targets:
        if key not in index or not any(key in ln.members() for ln in relevant):
            out[key] = (bounds[index[key]][0] if key in index else 0.0, UNBOUNDED)
            continue
        ends = []
        for sense in (1.0, -1.0):
            cost = [0.0] * len(order)
            cost[index[key]] = sense
            result = linprog(
                cost, A_eq=rows or None, b_eq=rhs or None, bounds=bounds, method="highs"
            )
            if result.status == 3:  # unbounded
                ends.append(UNBOUNDED if sense < 0 else -UNBOUNDED)
            elif result.status != 0:
                raise ValueError(f"the released table is inconsistent ({result.message})")
            else:
                ends.append(sense * float(result.fun))
        out[key] = (ends[0], ends[1])
    return out


def determined(
    values: Mapping[K, float],
    lines: Sequence[Line[K]],
    hidden: set[K],
    guarded: set[K],
    unreleased: set[K],
    floor: float = 1.0,
) -> list[K]:
    """Hidden cells (shown ones, and small ones never shown) that a reader can pin down
    to one value, in a stable order."""
    targets = (hidden - unreleased) | (guarded & unreleased)
    if not targets:
        return []
    found = intervals(values, lines, hidden, targets, unreleased, floor)
    return sorted(
        (k for k, (low, high) in found.items() if high - low < _tolerance(values[k])), key=str
    )


def _tolerance(value: float) -> float:
    return max(1e-6 * abs(value), 1e-6) if value != int(value) else 0.5
