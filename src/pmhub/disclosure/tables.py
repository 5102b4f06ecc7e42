"""Primary and complementary (secondary) suppression of a table with margins.

A table is a set of cells and *lines*: each line says that one cell (a total, a margin,
an overall stratum) is the sum of others. A one-way table with its total is one line; a
two-way table has a line per row and per column, and its margins form a line with the
grand total; strata of the same population (age bands, sexes, calendar years of the same
events) are each a line with the overall figure.

Suppression, in order:

1. primary: every cell from 1 to threshold - 1;
2. complementary: while a line has exactly one hidden cell, the smallest non-zero shown
   cell of that line is hidden too (a part before the line's total), so that no single
   subtraction gives a hidden cell back;
3. audit (:mod:`pmhub.disclosure.audit`): the linear programme of what is released
   (the shown cells, every line, hidden cells at least 1 since zeros are shown) gives
   each protected cell's feasible interval; while one is a single point, one more cell
   of a line through it is hidden, then steps 2-3 run again.

Cells that are never shown (the "no" of a yes/no row, whose total is shown) take part as
hidden cells from the start, and are protected when they are small.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pmhub.disclosure import audit
from pmhub.disclosure.cells import Count, Why, hidden, round_to, shown, small

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Line(Generic[K]):
    """``total`` is the sum of ``parts``."""

    total: K
    parts: tuple[K, ...]

    def members(self) -> tuple[K, ...]:
        return (self.total, *self.parts)


@dataclass(frozen=True)
class Protected(Generic[K]):
    cells: dict[K, Count]  # the released cells (unreleased ones are left out)
    threshold: int
    base: int

    def __getitem__(self, key: K) -> Count:
        return self.cells[key]


def protect(
    values: Mapping[K, int],
    lines: Sequence[Line[K]],
    threshold: int,
    *,
    unreleased: Iterable[K] = (),
    base: int | None = None,
) -> Protected[K]:
    """Suppress ``values`` so that no small cell can be worked out from what is left;
    shown counts are rounded to ``base`` (by default the settings' ``rounding_base``)."""
    base = default_base() if base is None else base
    never = set(unreleased)
    why = hide(values, lines, threshold, unreleased=never)
    cells = {
        k: hidden(why[k]) if k in why else _rounded(v, threshold, base)
        for k, v in values.items()
        if k not in never
    }
    return Protected(cells, threshold, base)


def hide(
    values: Mapping[K, float],
    lines: Sequence[Line[K]],
    threshold: int,
    *,
    unreleased: Iterable[K] = (),
    sensitive: Iterable[K] | None = None,
    floor: float = 1.0,
) -> dict[K, Why]:
    """The cells to hide, and why. ``sensitive`` names the primary cells when they are
    not the small values themselves (person-time of a stratum with few persons); then
    a hidden cell may be as small as ``floor``, else it is at least 1 (zeros are shown)."""
    _check(values, lines)
    never = set(unreleased)
    if sensitive is None:
        guarded = {k for k, v in values.items() if small(v, threshold)}
    else:
        guarded = set(sensitive)
    why: dict[K, Why] = dict.fromkeys(guarded, Why.SMALL)
    why.update({k: Why.COMPLEMENT for k in never if k not in why})
    spare = never - guarded  # never shown and not small: no need to hide a partner for it
    while True:
        _complements(values, lines, why, spare)
        stuck = audit.determined(values, lines, set(why), guarded, never, floor)
        if not stuck:
            return why
        if not _widen(values, lines, why, stuck):
            raise AssertionError(f"cells {stuck} stay determined with every line hidden")


def _check(values: Mapping[K, float], lines: Sequence[Line[K]]) -> None:
    for line in lines:
        missing = [k for k in line.members() if k not in values]
        if missing:
            raise ValueError(f"a line names cells without a value: {missing}")
        total, parts = values[line.total], sum(values[k] for k in line.parts)
        if abs(total - parts) > 1e-6 * max(abs(total), 1.0):
            raise ValueError(f"the parts of {line.total!r} do not add up to it")


def default_base() -> int:
    """The platform's rounding of released counts (PMHUB_ROUNDING_BASE; 1 is none)."""
    from pmhub.settings import load_settings

    return load_settings().rounding_base


def _rounded(value: int, threshold: int, base: int) -> Count:
    if base <= 1 or value == 0:
        return shown(value)
    rounded = round_to(value, base)
    while rounded < threshold:  # rounding never shows a figure below the threshold
        rounded += base
    return shown(rounded, base)


def _candidates(values: Mapping[K, float], line: Line[K], why: Mapping[K, Why]) -> list[K]:
    """Shown, non-zero cells of a line, the parts first and then the smallest."""
    free = [k for k in line.members() if k not in why and values[k] != 0]
    return sorted(free, key=lambda k: (k == line.total, values[k], str(k)))


def _complements(
    values: Mapping[K, float], lines: Sequence[Line[K]], why: dict[K, Why], spare: set[K]
) -> None:
    changed = True
    while changed:
        changed = False
        for line in lines:
            if sum(k in why for k in line.members()) != 1:
                continue
            if any(k in spare for k in line.members()):
                continue
            free = _candidates(values, line, why)
            if free:  # none: the other cells are zeros, the audit widens elsewhere
                why[free[0]] = Why.COMPLEMENT
                changed = True


def _widen(
    values: Mapping[K, float], lines: Sequence[Line[K]], why: dict[K, Why], stuck: list[K]
) -> bool:
    """Hide one more cell on a line through a determined cell; False if none is left."""
    for key in stuck:
        for line in lines:
            if key in line.members():
                free = _candidates(values, line, why)
                if free:
                    why[free[0]] = Why.COMPLEMENT
                    return True
    return False
