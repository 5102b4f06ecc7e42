"""A released count: a number, or the explicit mark that it is hidden and why.

A hidden cell is never 0 and never a number: code that sums released counts must decide
what to do with a hidden one (the pooled figures come from exact contributions instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MARK = "(s)"  # how every hidden cell is shown, whatever hid it (the reason is not shown:
# telling a small cell from its complement would narrow what a reader can work out)


class Why(StrEnum):
    SMALL = "small"  # from 1 to threshold - 1 (primary suppression)
    COMPLEMENT = "complement"  # would give a hidden cell back through totals or strata
    TRUNCATED = "truncated"  # a Kaplan-Meier step after fewer than the threshold at risk


@dataclass(frozen=True)
class Count:
    """A count as released. ``value`` is None exactly when the cell is hidden."""

    value: int | None
    why: Why | None = None
    base: int = 1  # the value is rounded to a multiple of this (1: exact)

    def __post_init__(self) -> None:
        if (self.value is None) != (self.why is not None):
            raise ValueError("a count is either a value or hidden with a reason")

    @property
    def hidden(self) -> bool:
        return self.value is None

    def text(self) -> str:
        """The count for a table cell: ``(s)`` when hidden, ``≈1,235`` when rounded."""
        if self.value is None:
            return MARK
        return f"{'≈' if self.base > 1 and self.value else ''}{self.value:,}"

    def __str__(self) -> str:
        return self.text()


def shown(value: int, base: int = 1) -> Count:
    return Count(int(value), None, base)


def hidden(why: Why) -> Count:
    return Count(None, why)


def small(value: float, threshold: int) -> bool:
    """A small cell: from 1 to threshold - 1. Zero is not small: an empty cell is shown."""
    return 0 < value < threshold


def primary(value: int, threshold: int) -> Count:
    """Primary suppression of one count that is in no table with margins."""
    return hidden(Why.SMALL) if small(value, threshold) else shown(value)


def round_to(value: int, base: int) -> int:
    """The nearest multiple of ``base`` (halves up); 0 stays 0."""
    if base <= 1:
        return int(value)
    return int((value + base // 2) // base * base)


def note(threshold: int, base: int = 1) -> str:
    """The sentence every report and terminal table shows under its counts."""
    rounded = f" Counts are rounded to the nearest {base} (≈)." if base > 1 else ""
    return (
        f"{MARK}: suppressed: fewer than {threshold}, or hidden so that such a count cannot "
        f"be worked out from totals, margins or other strata.{rounded}"
    )
