"""Output-checking rules hold for any table: each compared with its plain definition."""

from __future__ import annotations

import json
import math
from typing import Any, cast

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pmhub.safezone.sdc import (
    CellEvidence,
    ReleasedTable,
    RiskAppetite,
    TableSpec,
    check_table,
    evidence_from_contributions,
    nk_dominated,
    p_ratio_dominated,
)


def col(table: pa.Table, name: str) -> list[Any]:
    return cast("list[Any]", table.column(name).to_pylist())


SPEC = TableSpec(dimensions=("a", "b"), counts=("n",))
counts = st.integers(min_value=0, max_value=200)
thresholds = st.integers(min_value=1, max_value=30)


@st.composite
def tables(draw: st.DrawFn, cells: st.SearchStrategy[int | None] = counts) -> pa.Table:
    rows = draw(st.integers(min_value=1, max_value=4))
    cols = draw(st.integers(min_value=1, max_value=4))
    keys = [(f"a{i}", f"b{j}") for i in range(rows) for j in range(cols)]
    values = draw(st.lists(cells, min_size=len(keys), max_size=len(keys)))
    return pa.table({"a": [k[0] for k in keys], "b": [k[1] for k in keys], "n": values})


@settings(max_examples=200, deadline=None)
@given(tables(st.one_of(st.none(), counts)), thresholds)
def test_exactly_the_counts_under_the_threshold_are_flagged(table: pa.Table, t: int) -> None:
    report = check_table("t", table, SPEC, appetite=RiskAppetite(safe_threshold=t))
    small = {r for r, v in enumerate(col(table, "n")) if v is not None and 0 < v < t}
    assert {f.row for f in report.flagged("threshold")} == small
    if small:
        assert report.verdict == "review"


@settings(max_examples=200, deadline=None)
@given(tables(), st.integers(min_value=2, max_value=10))
def test_rounding_to_the_base_clears_the_rounding_flag(table: pa.Table, base: int) -> None:
    appetite = RiskAppetite(rounding_base=base)
    values: list[int] = col(table, "n")
    unrounded = {r for r, v in enumerate(values) if v % base}
    assert {
        f.row for f in check_table("t", table, SPEC, appetite=appetite).flagged("rounding")
    } == unrounded
    rounded = table.set_column(2, "n", pa.array([base * round(v / base) for v in values]))
    assert check_table("t", rounded, SPEC, appetite=appetite).flagged("rounding") == []


contribution_lists = st.lists(
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=15,
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(contribution_lists, min_size=1, max_size=5),
    st.integers(min_value=1, max_value=3),
    st.floats(min_value=0.5, max_value=1.0),
)
def test_dominance_matches_its_brute_force_definition(
    cells: list[list[float]], n: int, k: float
) -> None:
    spec = TableSpec(dimensions=("cell",), magnitudes=("total",))
    names = [f"c{i}" for i in range(len(cells))]
    table = pa.table({"cell": names, "total": [math.fsum(c) for c in cells]})
    contributions = pa.table(
        {
            "cell": [name for name, c in zip(names, cells, strict=True) for _ in c],
            "column": ["total" for c in cells for _ in c],
            "unit": [
                f"{name}-{i}" for name, c in zip(names, cells, strict=True) for i in range(len(c))
            ],
            "value": [v for c in cells for v in c],
        }
    )
    evidence = evidence_from_contributions(contributions, spec, top_n=n)
    appetite = RiskAppetite(safe_nk_n=n, safe_nk_k=k, safe_pratio_p=0)
    report = check_table("t", table, spec, evidence=evidence, appetite=appetite)

    got = {f.key["cell"] for f in report.flagged("nk-rule")}
    for name, values in zip(names, cells, strict=True):
        top = math.fsum(sorted(values, reverse=True)[:n])
        total = math.fsum(values)
        if math.isclose(top, k * total, rel_tol=1e-9):
            continue  # at the boundary the evidence's float sums may round either way
        assert (name in got) == (total > 0 and top >= k * total), (name, values)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=1000),
    st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), max_size=8),
    st.floats(min_value=0.01, max_value=0.5),
)
def test_p_ratio_matches_its_definition(top1: int, rest: list[float], p: float) -> None:
    values = sorted([float(top1), *[min(r, top1) for r in rest]], reverse=True)
    evidence = CellEvidence(len(values), math.fsum(values), tuple(values[:2]))
    second = values[1] if len(values) > 1 else 0.0
    remainder = math.fsum(values) - values[0] - second
    assert p_ratio_dominated(evidence, p) == (remainder / values[0] < p)
    assert nk_dominated(evidence, 1, 1.0) == (remainder + second == 0)


@settings(max_examples=150, deadline=None)
@given(tables(st.integers(min_value=20, max_value=200)), st.data(), thresholds)
def test_a_small_difference_on_any_cell_is_differencing(
    table: pa.Table, data: st.DataObject, t: int
) -> None:
    values = col(table, "n")
    row = data.draw(st.integers(min_value=0, max_value=len(values) - 1))
    change = data.draw(st.integers(min_value=1, max_value=40))
    earlier_values = list(values)
    earlier_values[row] += change
    earlier = ReleasedTable("before", table.set_column(2, "n", pa.array(earlier_values)), SPEC)
    appetite = RiskAppetite(safe_threshold=t)
    flags = check_table("t", table, SPEC, earlier=[earlier], appetite=appetite).flagged(
        "differencing"
    )
    key = dict(
        zip(
            ("a", "b"),
            (table.column("a")[row].as_py(), table.column("b")[row].as_py()),
            strict=True,
        )
    )
    if change < t:
        assert key in [f.key for f in flags]  # the cell itself, and every margin holding it
        assert {} in [f.key for f in flags]
    else:
        assert flags == []
    same = ReleasedTable("same", table, SPEC)
    assert (
        check_table("t", table, SPEC, earlier=[same], appetite=appetite).flagged("differencing")
        == []
    )


@settings(max_examples=150, deadline=None)
@given(tables(st.one_of(st.none(), counts)))
def test_a_group_is_disclosed_exactly_when_one_category_holds_all_of_it(table: pa.Table) -> None:
    a_column: list[str] = col(table, "a")
    b_column: list[str] = col(table, "b")
    keys = list(zip(a_column, b_column, strict=True))
    values: dict[tuple[str, str], int | None] = dict(zip(keys, col(table, "n"), strict=True))
    a_values = sorted({k[0] for k in keys})
    b_values = sorted({k[1] for k in keys})
    expected: set[tuple[str, str]] = set()
    for dim in ("b", "a"):  # the attribute made certain; the group is the other dimension
        groups, domain = (a_values, b_values) if dim == "b" else (b_values, a_values)
        if len(domain) < 2:
            continue
        for g in groups:
            cells = [(g, v) if dim == "b" else (v, g) for v in domain]
            line = [values[c] for c in cells]
            positive = [c for c, x in zip(cells, line, strict=True) if x]
            if None not in line and len(positive) == 1:
                expected.add(positive[0])
    report = check_table("t", table, SPEC)
    assert {(f.key["a"], f.key["b"]) for f in report.flagged("group-disclosure")} == expected


@settings(max_examples=100, deadline=None)
@given(tables(st.one_of(st.none(), counts)), thresholds, st.booleans())
def test_every_report_is_json_and_its_verdict_follows_its_flags(
    table: pa.Table, t: int, zeros: bool
) -> None:
    report = check_table(
        "t", table, SPEC, appetite=RiskAppetite(safe_threshold=t, zeros_are_disclosive=zeros)
    )
    data = json.loads(report.to_json())
    assert data["verdict"] == ("review" if data["flags"] else "pass")
    assert data["rows"] == table.num_rows
    assert sum(r["flagged"] for r in data["rules"]) == len(data["flags"])
