"""Complementary suppression: for random tables with margins, no hidden cell can be
recovered from what is released.

The checks here are independent of the module's own audit (a real-valued linear
programme): exact rank over the rationals (no linear combination of the released lines
isolates a hidden cell) and integer programming (each hidden cell has at least two
integer values consistent with everything released).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp

from pmhub.disclosure import MARK, Count, Line, Why, protect
from pmhub.disclosure.cells import note, primary, round_to

Key = tuple[str, int, int]


def one_way(parts: list[int]) -> tuple[dict[Key, int], list[Line[Key]]]:
    values: dict[Key, int] = {("c", 0, j): v for j, v in enumerate(parts)}
    values[("t", 0, 0)] = sum(parts)
    return values, [Line(("t", 0, 0), tuple(("c", 0, j) for j in range(len(parts))))]


def two_way(grid: list[list[int]]) -> tuple[dict[Key, int], list[Line[Key]]]:
    rows, cols = len(grid), len(grid[0])
    values: dict[Key, int] = {("c", i, j): grid[i][j] for i in range(rows) for j in range(cols)}
    lines: list[Line[Key]] = []
    for i in range(rows):
        values[("r", i, 0)] = sum(grid[i])
        lines.append(Line(("r", i, 0), tuple(("c", i, j) for j in range(cols))))
    for j in range(cols):
        values[("k", 0, j)] = sum(grid[i][j] for i in range(rows))
        lines.append(Line(("k", 0, j), tuple(("c", i, j) for i in range(rows))))
    values[("t", 0, 0)] = sum(map(sum, grid))
    lines.append(Line(("t", 0, 0), tuple(("r", i, 0) for i in range(rows))))
    lines.append(Line(("t", 0, 0), tuple(("k", 0, j) for j in range(cols))))
    return values, lines


def system(
    released: dict[Key, Count], lines: list[Line[Key]]
) -> tuple[list[Key], list[list[Fraction]], list[Fraction]]:
    """The released lines as equations over the hidden cells."""
    unknown = sorted(k for k, c in released.items() if c.hidden)
    at = {k: i for i, k in enumerate(unknown)}
    matrix, rhs = [], []
    for line in lines:
        row = [Fraction(0)] * len(unknown)
        constant = Fraction(0)
        for key, sign in ((line.total, 1), *((p, -1) for p in line.parts)):
            value = released[key].value
            if value is None:
                row[at[key]] += sign
            else:
                constant += sign * value
        matrix.append(row)
        rhs.append(-constant)
    return unknown, matrix, rhs


def rank(rows: list[list[Fraction]]) -> int:
    """Rank by exact Gaussian elimination over the rationals."""
    work = [r[:] for r in rows if any(r)]
    found, col = 0, 0
    width = len(work[0]) if work else 0
    while found < len(work) and col < width:
        pivot = next((i for i in range(found, len(work)) if work[i][col] != 0), None)
        if pivot is None:
            col += 1
            continue
        work[found], work[pivot] = work[pivot], work[found]
        for i in range(len(work)):
            if i != found and work[i][col] != 0:
                factor = work[i][col] / work[found][col]
                work[i] = [a - factor * b for a, b in zip(work[i], work[found], strict=True)]
        found, col = found + 1, col + 1
    return found


def integer_range(
    unknown: list[Key], matrix: list[list[Fraction]], rhs: list[Fraction], target: int
) -> tuple[float, float]:
    a = np.array([[float(v) for v in row] for row in matrix]) if matrix else np.zeros((0, 1))
    b = np.array([float(v) for v in rhs])
    constraints = [LinearConstraint(a, b, b)] if len(matrix) else []
    bounds = Bounds(np.ones(len(unknown)), np.full(len(unknown), 10_000.0))
    ends = []
    for sense in (1.0, -1.0):
        cost = np.zeros(len(unknown))
        cost[target] = sense
        result = milp(
            cost, constraints=constraints, integrality=np.ones(len(unknown)), bounds=bounds
        )
        assert result.status == 0, result.message
        ends.append(sense * result.fun)
    return ends[0], ends[1]


def assert_safe(values: dict[Key, int], lines: list[Line[Key]], threshold: int) -> None:
    released = protect(values, lines, threshold).cells
    for key, value in values.items():
        cell = released[key]
        if 0 < value < threshold:
            assert cell.hidden
            assert cell.why is Why.SMALL
        if not cell.hidden:
            assert cell.value == value  # shown cells are exact
        if value == 0:
            assert cell.value == 0  # an empty cell is not hidden
    unknown, matrix, rhs = system(released, lines)
    base = rank(matrix)
    for i, key in enumerate(unknown):
        unit = [Fraction(int(j == i)) for j in range(len(unknown))]
        assert rank([*matrix, unit]) > base, f"{key} is a linear combination of the lines"
        low, high = integer_range(unknown, matrix, rhs, i)
        assert high > low, f"{key} has one integer value ({low}) consistent with the release"


counts = st.integers(min_value=0, max_value=40)


@settings(max_examples=150, deadline=None)
@given(st.lists(counts, min_size=1, max_size=7), st.integers(min_value=2, max_value=12))
def test_one_way_tables_with_a_total(parts: list[int], threshold: int) -> None:
    values, lines = one_way(parts)
    assert_safe(values, lines, threshold)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=1, max_value=4).flatmap(
        lambda rows: st.lists(
            st.lists(counts, min_size=rows, max_size=rows), min_size=1, max_size=4
        )
    ),
    st.integers(min_value=2, max_value=12),
)
def test_two_way_tables_with_margins(grid: list[list[int]], threshold: int) -> None:
    values, lines = two_way(grid)
    assert_safe(values, lines, threshold)


def test_the_subtraction_attack_of_the_issue_is_closed() -> None:
    # n = 38 with 12 + 22 shown gave the hidden 4 back
    values, lines = one_way([0, 4, 12, 22, 0])
    released = protect(values, lines, 10).cells
    assert released[("t", 0, 0)].value == 38
    assert released[("c", 0, 1)].hidden
    assert released[("c", 0, 2)].hidden
    assert released[("c", 0, 3)].value == 22
    assert [released[("c", 0, j)].value for j in (0, 4)] == [0, 0]


def test_a_never_shown_small_complement_hides_its_shown_partner() -> None:
    # "Female 35 of 38" says "3 not female"
    values = {"n": 38, "yes": 35, "no": 3}
    released = protect(values, [Line("n", ("yes", "no"))], 10, unreleased={"no"}).cells
    assert "no" not in released
    assert released["yes"].hidden
    assert released["n"].value == 38


def test_rounding_never_shows_a_figure_below_the_threshold() -> None:
    values, lines = one_way([12, 13, 27])
    released = protect(values, lines, 12, base=5).cells
    assert [released[("c", 0, j)].value for j in range(3)] == [15, 15, 25]
    assert released[("t", 0, 0)].text() == "≈50"
    assert round_to(12, 5) == 10
    assert round_to(0, 5) == 0


def test_a_count_is_a_value_or_hidden_with_a_reason() -> None:
    with pytest.raises(ValueError, match="either"):
        Count(None)
    with pytest.raises(ValueError, match="either"):
        Count(3, Why.SMALL)
    assert primary(3, 10).text() == MARK
    assert primary(0, 10).text() == "0"
    assert primary(1234, 10).text() == "1,234"
    assert "fewer than 10" in note(10)


def test_lines_must_add_up() -> None:
    with pytest.raises(ValueError, match="add up"):
        protect({"t": 5, "a": 1}, [Line("t", ("a",))], 10)
    with pytest.raises(ValueError, match="without a value"):
        protect({"t": 5}, [Line("t", ("a",))], 10)


def test_the_platform_setting_rounds_every_released_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values, lines = one_way([12, 13, 27])
    assert [protect(values, lines, 10).cells[("c", 0, j)].value for j in range(3)] == [12, 13, 27]
    monkeypatch.setenv("PMHUB_ROUNDING_BASE", "5")
    released = protect(values, lines, 10).cells
    assert [released[("c", 0, j)].value for j in range(3)] == [10, 15, 25]
    assert all(c.value is None or c.value % 5 == 0 for c in released.values())
