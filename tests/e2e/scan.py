"""Find counts below the small-cell threshold in what a report or the terminal shows.

A count is a number in a place that holds counts: an element marked ``count`` in a
report (table cells of persons, events, records; the numbers at risk; value labels on
bars of counts), ``n = N`` and ``N events``/``subjects``/``persons``/``cohort rows`` in
any text, and a whole cell of a terminal table. Zero is not a small cell.
"""

from __future__ import annotations

import re

WORDS = re.compile(r"(?<![\d.,])(\d[\d,]*)\s+(events|subjects|persons|cohort rows)\b")
N_IS = re.compile(r"\bn\s*=\s*(\d[\d,]*)(?![\d.])")
LEADING = re.compile(r"^≈?(\d[\d,]*)(?:\s*\(|$)")  # "12", "12 (31.6 %)", "≈15"


def _small(number: str, threshold: int) -> bool:
    return 0 < int(number.replace(",", "")) < threshold


def in_text(text: str, threshold: int) -> list[str]:
    """Counts below the threshold named as counts anywhere in ``text``."""
    found = [m.group(0) for m in WORDS.finditer(text) if _small(m.group(1), threshold)]
    return found + [m.group(0) for m in N_IS.finditer(text) if _small(m.group(1), threshold)]


def in_cells(cells: list[str], threshold: int) -> list[str]:
    """Cells (count cells of a report, or every cell of a terminal table) that are a
    small count, alone or before its share."""
    out = []
    for cell in cells:
        match = LEADING.match(cell.strip())
        if match and _small(match.group(1), threshold):
            out.append(cell)
    return out


def terminal_cells(output: str) -> list[str]:
    """The cells of the Rich tables in terminal output."""
    cells: list[str] = []
    for line in output.splitlines():
        if "│" in line:
            cells.extend(part.strip() for part in line.split("│")[1:-1])
    return cells


def terminal(output: str, threshold: int) -> list[str]:
    return in_text(output, threshold) + in_cells(terminal_cells(output), threshold)
