"""Output checking: statistical disclosure control (SDC) of a table a member asks to release.

The rules and their parameters follow ACRO/SACRO (the "risk appetite": ``safe_threshold``,
``safe_nk_n``, ``safe_nk_k``, ``safe_pratio_p``, ``zeros_are_disclosive``), with OpenSAFELY's
rounding and checks for zeros that disclose and for differencing against what the project
released before. A figure or a model is checked through the summary table declared with it.

Input: the table (Arrow, or a CSV/Parquet file), a :class:`TableSpec` that says which
columns are categories (dimensions), counts of persons, and magnitudes (sums of a value
over persons), and for magnitude cells their contributor evidence: per cell the number of
contributors, the total and the largest contributions (:func:`evidence_from_contributions`
builds it from one row per contributor). The evidence stays inside the safe zone.

Output: an :class:`OutputReport`, JSON-serialisable, with one flag per cell and rule (the
cell's row and categories, the rule, the reason) and the overall verdict: ``pass`` when
nothing is flagged, else ``review``. The report informs the two human checkers; it never
releases or blocks anything by itself.

Rules (names as ACRO's where it has them):

=================== =====================================================================
threshold           a count (or a magnitude cell's contributors) is above 0 and under
                    ``safe_threshold``
nk-rule             the largest ``safe_nk_n`` contributions are ``safe_nk_k`` or more of
                    the cell's total (ACRO: ``top_n_sum / sum >= k``)
p-ratio             what is left after the two largest is under ``safe_pratio_p`` of the
                    largest: the second largest can estimate the largest
negative            a contribution is negative: dominance is not defined (ACRO)
zero                a zero count in a group that has persons: it says no one in the group
                    has that category (when ``zeros_are_disclosive``)
group-disclosure    every person of a group falls in one category of a dimension, so the
                    table makes that attribute certain for each of them
structural-zero     a cell declared zero by definition holds persons
rounding            a count is not a multiple of ``rounding_base`` (when one is required)
differencing        a count differs from an earlier release's count for the same
                    categories (or a margin of them) by more than 0 and less than
                    ``safe_threshold``: subtracting the two reveals a small group
=================== =====================================================================
"""

from __future__ import annotations

import dataclasses
import decimal
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pmhub.safezone.errors import SdcInputError
from pmhub.settings import Settings

Key = tuple[str | None, ...]
Verdict = Literal["pass", "review"]
OutputKind = Literal["table", "figure", "model"]
COLUMN_DIMENSION = "column"  # the pseudo-dimension of a wide table's count columns
MAX_ROWS = 1_000_000
MAX_FLAGS_PER_RULE = 1000
MAX_DIFFERENCING_DIMENSIONS = 6

RULES = (
    "threshold",
    "nk-rule",
    "p-ratio",
    "negative",
    "zero",
    "group-disclosure",
    "structural-zero",
    "rounding",
    "differencing",
)


@dataclasses.dataclass(frozen=True)
class RiskAppetite:
    """The parameters of the rules, named as ACRO names them."""

    safe_threshold: int = 10
    safe_nk_n: int = 2
    safe_nk_k: float = 0.9
    safe_pratio_p: float = 0.1
    zeros_are_disclosive: bool = True
    rounding_base: int | None = None

    def __post_init__(self) -> None:
        _require(_is_int(self.safe_threshold) and self.safe_threshold >= 1, "safe_threshold ≥ 1")
        _require(_is_int(self.safe_nk_n) and 1 <= self.safe_nk_n <= 10, "safe_nk_n in 1..10")
        _require(_is_number(self.safe_nk_k) and 0 < self.safe_nk_k <= 1, "safe_nk_k in (0, 1]")
        _require(
            _is_number(self.safe_pratio_p) and 0 <= self.safe_pratio_p < 1,
            "safe_pratio_p in [0, 1)",
        )
        _require(isinstance(self.zeros_are_disclosive, bool), "zeros_are_disclosive a boolean")
        base = self.rounding_base
        _require(base is None or (_is_int(base) and base >= 2), "rounding_base ≥ 2 or none")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RiskAppetite:
        return cls(**{"safe_threshold": settings.small_cell_threshold, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """What each column of an output table is."""

    dimensions: tuple[str, ...]
    counts: tuple[str, ...] = ()
    magnitudes: tuple[str, ...] = ()
    # a category value that marks a margin row (e.g. "Total"); such rows are sums
    total_label: str | None = None
    # cells zero by definition, as partial keys: {"sex": "M", "pregnant": "yes"}
    structural_zeros: tuple[Mapping[str, str], ...] = ()
    # a wide table (one count column per category, e.g. n_female, n_male): the count
    # columns are then one more dimension for the zero and group rules
    columns_are_categories: bool = False

    def __post_init__(self) -> None:
        for field in ("dimensions", "counts", "magnitudes", "structural_zeros"):
            value = getattr(self, field)
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise SdcInputError(f"table spec: '{field}' must be a list")
            object.__setattr__(self, field, tuple(value))
        names = [*self.dimensions, *self.counts, *self.magnitudes]
        if not all(isinstance(n, str) and n for n in names):
            raise SdcInputError("table spec: column names must be non-empty strings")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise SdcInputError(f"table spec: column(s) {repeated} named in two roles")
        if not self.counts and not self.magnitudes:
            raise SdcInputError("table spec: name at least one count or magnitude column")
        allowed = set(self.dimensions) | (
            {COLUMN_DIMENSION} if self.columns_are_categories else set()
        )
        for zero in self.structural_zeros:
            if not isinstance(zero, Mapping) or not zero or not set(zero) <= allowed:
                raise SdcInputError(
                    f"table spec: structural zero {zero!r} must map dimensions to values"
                )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableSpec:
        if not isinstance(data, Mapping):
            raise SdcInputError("table spec must be an object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SdcInputError(f"table spec: unknown field(s) {unknown}")
        if "dimensions" not in data:
            raise SdcInputError("table spec: 'dimensions' is required (may be empty)")
        zeros = data.get("structural_zeros", ())
        if not isinstance(zeros, list | tuple):
            raise SdcInputError("table spec: 'structural_zeros' must be a list")
        total = data.get("total_label")
        if total is not None and not isinstance(total, str):
            raise SdcInputError("table spec: 'total_label' must be a string")
        wide = data.get("columns_are_categories", False)
        if not isinstance(wide, bool):
            raise SdcInputError("table spec: 'columns_are_categories' must be a boolean")
        return cls(
            dimensions=data["dimensions"],
            counts=data.get("counts", ()),
            magnitudes=data.get("magnitudes", ()),
            total_label=total,
            structural_zeros=tuple(
                {str(k): str(v) for k, v in z.items()} if isinstance(z, Mapping) else z
                for z in zeros
            ),
            columns_are_categories=wide,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "dimensions": list(self.dimensions),
            "counts": list(self.counts),
            "magnitudes": list(self.magnitudes),
            "total_label": self.total_label,
            "structural_zeros": [dict(z) for z in self.structural_zeros],
            "columns_are_categories": self.columns_are_categories,
        }


@dataclasses.dataclass(frozen=True)
class CellEvidence:
    """Who contributes to one magnitude cell: how many, the total, the largest first."""

    contributors: int
    total: float
    top: tuple[float, ...]
    negatives: int = 0


@dataclasses.dataclass(frozen=True)
class ReleasedTable:
    """An output the project released before, for the differencing rule."""

    name: str
    table: pa.Table
    spec: TableSpec


@dataclasses.dataclass(frozen=True)
class Flag:
    rule: str
    row: int | None  # 0-based row of the output table; None for a margin it does not hold
    column: str
    key: dict[str, str | None]
    value: float | int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RuleResult:
    rule: str
    status: Literal["pass", "review", "not applied"]
    flagged: int
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class OutputReport:
    output: str
    kind: OutputKind
    verdict: Verdict
    rows: int
    cells: int
    appetite: RiskAppetite
    spec: TableSpec
    rules: tuple[RuleResult, ...]
    flags: tuple[Flag, ...]
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "kind": self.kind,
            "verdict": self.verdict,
            "rows": self.rows,
            "cells": self.cells,
            "appetite": self.appetite.to_dict(),
            "spec": self.spec.to_dict(),
            "rules": [r.to_dict() for r in self.rules],
            "flags": [f.to_dict() for f in self.flags],
            "notes": list(self.notes),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2)

    def flagged(self, rule: str) -> list[Flag]:
        return [f for f in self.flags if f.rule == rule]


# --- reading the input ------------------------------------------------------------------


def read_output_table(path: Path) -> pa.Table:
    """An output table from a CSV or Parquet file."""
    try:
        if path.suffix.lower() == ".csv":
            return pacsv.read_csv(path)
        if path.suffix.lower() == ".parquet":
            return pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise SdcInputError(f"cannot read output table {path.name}: {exc}") from exc
    raise SdcInputError(f"{path.name}: an output table is a .csv or .parquet file")


@dataclasses.dataclass
class _Table:
    """An output table as rows of category keys and numbers, checked against its spec."""

    spec: TableSpec
    keys: list[Key]
    values: dict[str, list[float | int | None]]

    @property
    def rows(self) -> int:
        return len(self.keys)

    def is_margin(self, key: Key) -> bool:
        label = self.spec.total_label
        return label is not None and label in key

    def key_dict(self, key: Key) -> dict[str, str | None]:
        return dict(zip(self.spec.dimensions, key, strict=True))


def _parse(table: pa.Table, spec: TableSpec, what: str) -> _Table:
    if not isinstance(table, pa.Table):
        raise SdcInputError(f"{what}: expected an Arrow table, got {type(table).__name__}")
    if table.num_rows > MAX_ROWS:
        raise SdcInputError(f"{what} has {table.num_rows:,} rows; an output may have {MAX_ROWS:,}")
    missing = [
        c for c in (*spec.dimensions, *spec.counts, *spec.magnitudes) if c not in table.column_names
    ]
    if missing:
        raise SdcInputError(f"{what} has no column(s) {missing}; it has {table.column_names}")
    dims = [table.column(d).to_pylist() for d in spec.dimensions]
    keys: list[Key] = (
        [tuple(_label(v) for v in row) for row in zip(*dims, strict=True)]
        if dims
        else [()] * table.num_rows
    )
    seen: dict[Key, int] = {}
    for row, key in enumerate(keys):
        if key in seen:
            raise SdcInputError(
                f"{what}: rows {seen[key]} and {row} have the same categories {list(key)}; "
                "each cell must be one row"
            )
        seen[key] = row
    values: dict[str, list[float | int | None]] = {}
    for column in spec.counts:
        values[column] = [
            _count(v, what, column, r) for r, v in enumerate(table.column(column).to_pylist())
        ]
    for column in spec.magnitudes:
        values[column] = [
            _magnitude(v, what, column, r) for r, v in enumerate(table.column(column).to_pylist())
        ]
    return _Table(spec, keys, values)


def _label(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 3.0 and 3 are the same category across releases
    return str(value)


def _count(value: Any, what: str, column: str, row: int) -> int | None:
    number = _number(value, what, column, row)
    if number is None:
        return None  # suppressed already
    if number < 0 or number != int(number):
        raise SdcInputError(
            f"{what}: count column '{column}' row {row} holds {value!r}, not a count"
        )
    return int(number)


def _magnitude(value: Any, what: str, column: str, row: int) -> float | None:
    return _number(value, what, column, row)


def _number(value: Any, what: str, column: str, row: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        raise SdcInputError(f"{what}: column '{column}' row {row} holds {value!r}, not a number")
    number = float(value)
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise SdcInputError(f"{what}: column '{column}' row {row} is infinite")
    return int(value) if isinstance(value, int) else number


# --- evidence ---------------------------------------------------------------------------

EVIDENCE_COLUMNS = ("column", "contributors", "total")


def evidence_from_contributions(
    contributions: pa.Table,
    spec: TableSpec,
    *,
    unit: str = "unit",
    value: str = "value",
    top_n: int = 2,
) -> pa.Table:
    """Summary evidence from one row per contribution: the dimensions, ``column`` (which
    magnitude column), ``unit`` (who contributes; a unit's rows are summed first, as
    dominance is about contributors, not records) and ``value``."""
    needed = [*spec.dimensions, "column", unit, value]
    missing = [c for c in needed if c not in contributions.column_names]
    if missing:
        raise SdcInputError(f"contributions have no column(s) {missing}")
    sums: dict[tuple[Key, str], dict[Any, float]] = defaultdict(lambda: defaultdict(float))
    cols = [contributions.column(c).to_pylist() for c in needed]
    for r, row in enumerate(zip(*cols, strict=True)):
        *dims, column, who, amount = row
        number = _number(amount, "contributions", value, r)
        if number is None:
            continue
        sums[(tuple(_label(d) for d in dims), str(column))][who] += number
    out: dict[str, list[Any]] = {d: [] for d in spec.dimensions}
    out.update({c: [] for c in (*EVIDENCE_COLUMNS, "negatives", *_top_names(top_n))})
    for (key, column), per_unit in sums.items():
        amounts = sorted(per_unit.values(), reverse=True)
        for d, label in zip(spec.dimensions, key, strict=True):
            out[d].append(label)
        out["column"].append(column)
        out["contributors"].append(len(amounts))
        out["total"].append(float(sum(amounts)))
        out["negatives"].append(sum(1 for a in amounts if a < 0))
        for i, name in enumerate(_top_names(top_n)):
            out[name].append(float(amounts[i]) if i < len(amounts) else 0.0)
    return pa.table(out)


def _top_names(n: int) -> list[str]:
    return [f"top{i}" for i in range(1, n + 1)]


def _parse_evidence(
    evidence: pa.Table, spec: TableSpec, n: int
) -> dict[tuple[Key, str], CellEvidence]:
    needed = [*spec.dimensions, *EVIDENCE_COLUMNS, *_top_names(n)]
    missing = [c for c in needed if c not in evidence.column_names]
    if missing:
        raise SdcInputError(
            f"evidence has no column(s) {missing}: it needs the dimensions, column, "
            f"contributors, total and top1..top{n}"
        )
    cols = {c: evidence.column(c).to_pylist() for c in needed}
    negatives = (
        evidence.column("negatives").to_pylist()
        if "negatives" in evidence.column_names
        else [0] * evidence.num_rows
    )
    cells: dict[tuple[Key, str], CellEvidence] = {}
    for r in range(evidence.num_rows):
        key = tuple(_label(cols[d][r]) for d in spec.dimensions)
        column = str(cols["column"][r])
        contributors = _count(cols["contributors"][r], "evidence", "contributors", r)
        total = _number(cols["total"][r], "evidence", "total", r)
        top = tuple(_number(cols[t][r], "evidence", t, r) or 0.0 for t in _top_names(n))
        if contributors is None or total is None:
            raise SdcInputError(f"evidence row {r}: contributors and total are required")
        if (key, column) in cells:
            raise SdcInputError(f"evidence rows repeat the cell {list(key)} '{column}'")
        neg = _count(negatives[r], "evidence", "negatives", r) or 0
        cells[(key, column)] = CellEvidence(
            contributors, float(total), tuple(float(t) for t in top), neg
        )
    return cells


# --- the check --------------------------------------------------------------------------


def check_table(
    output: str,
    table: pa.Table,
    spec: TableSpec,
    *,
    evidence: pa.Table | None = None,
    earlier: Sequence[ReleasedTable] = (),
    appetite: RiskAppetite | None = None,
    kind: OutputKind = "table",
) -> OutputReport:
    """Run every rule on one output and say what a checker should look at."""
    appetite = appetite or RiskAppetite()
    if kind not in ("table", "figure", "model"):
        raise SdcInputError(f"output kind {kind!r} is not table, figure or model")
    parsed = _parse(table, spec, f"output '{output}'")
    cells = _parse_evidence(evidence, spec, appetite.safe_nk_n) if evidence is not None else {}
    unknown = [k for k in cells if k[1] not in spec.magnitudes or k[0] not in set(parsed.keys)]
    if unknown:
        key, column = unknown[0]
        raise SdcInputError(
            f"evidence names a cell the output does not have: {list(key)} '{column}'"
        )
    releases = [(r.name, _parse(r.table, r.spec, f"earlier release '{r.name}'")) for r in earlier]
    found: dict[str, list[Flag]] = {rule: [] for rule in RULES}
    for flag in itertools.chain(
        _threshold(parsed, cells, appetite),
        _dominance(parsed, cells, appetite),
        _zeros(parsed, appetite),
        _rounding(parsed, appetite),
        _differencing(parsed, releases, appetite),
    ):
        found[flag.rule].append(flag)
    return _report(output, kind, parsed, appetite, found, releases)


def check_file(
    path: Path,
    spec: TableSpec,
    *,
    evidence: Path | None = None,
    earlier: Sequence[ReleasedTable] = (),
    appetite: RiskAppetite | None = None,
    kind: OutputKind = "table",
) -> OutputReport:
    """:func:`check_table` of a saved result (and its evidence) read from CSV or Parquet."""
    table = read_output_table(path)
    cells = read_output_table(evidence) if evidence is not None else None
    return check_table(
        path.name, table, spec, evidence=cells, earlier=earlier, appetite=appetite, kind=kind
    )


def _report(
    output: str,
    kind: OutputKind,
    table: _Table,
    appetite: RiskAppetite,
    found: dict[str, list[Flag]],
    releases: list[tuple[str, _Table]],
) -> OutputReport:
    spec = table.spec
    applies = {
        "threshold": True,
        "nk-rule": bool(spec.magnitudes),
        "p-ratio": bool(spec.magnitudes),
        "negative": bool(spec.magnitudes),
        "zero": bool(spec.counts) and appetite.zeros_are_disclosive,
        "group-disclosure": bool(spec.counts),
        "structural-zero": bool(spec.structural_zeros),
        "rounding": bool(spec.counts) and appetite.rounding_base is not None,
        "differencing": bool(spec.counts) and bool(releases),
    }
    notes = [
        "Absent category combinations count as zeros (a GROUP BY leaves empty groups out).",
        "Check by hand for tables linked to this one that are not among the earlier releases.",
    ]
    if kind != "table":
        notes.append(
            f"This {kind} was checked through its declared summary table; compare the two."
        )
    results, flags = [], []
    for rule in RULES:
        kept = found[rule][:MAX_FLAGS_PER_RULE]
        flags.extend(kept)
        extra = len(found[rule]) - len(kept)
        if extra:
            notes.append(f"{extra} more '{rule}' flags are not listed.")
        status: Literal["pass", "review", "not applied"]
        status = "review" if found[rule] else ("pass" if applies[rule] else "not applied")
        results.append(
            RuleResult(rule, status, len(found[rule]), _describe(rule, appetite, releases))
        )
    cells = table.rows * (len(spec.counts) + len(spec.magnitudes))
    verdict: Verdict = "review" if flags else "pass"
    return OutputReport(
        output,
        kind,
        verdict,
        table.rows,
        cells,
        appetite,
        spec,
        tuple(results),
        tuple(flags),
        tuple(notes),
    )


def _describe(rule: str, a: RiskAppetite, releases: list[tuple[str, _Table]]) -> str:
    names = ", ".join(name for name, _ in releases) or "none"
    return {
        "threshold": f"counts and contributors from 1 to {a.safe_threshold - 1}",
        "nk-rule": f"top {a.safe_nk_n} contributions ≥ {a.safe_nk_k:.0%} of a cell",
        "p-ratio": f"the rest under {a.safe_pratio_p:.0%} of the largest contribution",
        "negative": "negative contributions make dominance undefined",
        "zero": "zero counts in groups that have persons"
        if a.zeros_are_disclosive
        else "zeros are not disclosive",
        "group-disclosure": "a group whose persons all share one category",
        "structural-zero": "declared structural zeros that hold persons",
        "rounding": f"counts not a multiple of {a.rounding_base}"
        if a.rounding_base
        else "no rounding base",
        "differencing": (
            f"differences of 1 to {a.safe_threshold - 1} from earlier releases: {names}"
        ),
    }[rule]


def _threshold(
    t: _Table, cells: dict[tuple[Key, str], CellEvidence], a: RiskAppetite
) -> Iterable[Flag]:
    for column in t.spec.counts:
        for row, value in enumerate(t.values[column]):
            if value is not None and 0 < value < a.safe_threshold:
                yield Flag(
                    "threshold",
                    row,
                    column,
                    t.key_dict(t.keys[row]),
                    value,
                    f"count {value} is under the minimum of {a.safe_threshold}",
                )
    for column in t.spec.magnitudes:
        for row, value in enumerate(t.values[column]):
            ev = cells.get((t.keys[row], column))
            if value is not None and ev is not None and 0 < ev.contributors < a.safe_threshold:
                yield Flag(
                    "threshold",
                    row,
                    column,
                    t.key_dict(t.keys[row]),
                    value,
                    f"{ev.contributors} contributors, under the minimum of {a.safe_threshold}",
                )


def nk_dominated(ev: CellEvidence, n: int, k: float) -> bool:
    """ACRO's NK check: the largest ``n`` contributions are ``k`` or more of the total."""
    return ev.total > 0 and sum(ev.top[:n]) >= k * ev.total


def p_ratio_dominated(ev: CellEvidence, p: float) -> bool:
    """ACRO's p-ratio check: (total − largest − second) / largest < p."""
    top1 = ev.top[0] if ev.top else 0.0
    top2 = ev.top[1] if len(ev.top) > 1 else 0.0
    return top1 > 0 and (ev.total - top1 - top2) / top1 < p


def _dominance(
    t: _Table, cells: dict[tuple[Key, str], CellEvidence], a: RiskAppetite
) -> Iterable[Flag]:
    for column in t.spec.magnitudes:
        for row, value in enumerate(t.values[column]):
            if value is None:
                continue
            key = t.key_dict(t.keys[row])
            ev = cells.get((t.keys[row], column))
            if ev is None:
                yield Flag(
                    "nk-rule",
                    row,
                    column,
                    key,
                    value,
                    "no contributor evidence was given, so dominance cannot be checked",
                )
                continue
            if ev.negatives:
                yield Flag(
                    "negative",
                    row,
                    column,
                    key,
                    value,
                    f"{ev.negatives} contributions are negative; dominance is not defined",
                )
                continue
            if nk_dominated(ev, a.safe_nk_n, a.safe_nk_k):
                share = sum(ev.top[: a.safe_nk_n]) / ev.total
                yield Flag(
                    "nk-rule",
                    row,
                    column,
                    key,
                    value,
                    f"the largest {a.safe_nk_n} contributions are {share:.1%} of the cell "
                    f"(at least {a.safe_nk_k:.0%} is dominated)",
                )
            if a.safe_pratio_p > 0 and p_ratio_dominated(ev, a.safe_pratio_p):
                yield Flag(
                    "p-ratio",
                    row,
                    column,
                    key,
                    value,
                    "the second-largest contributor could estimate the largest within "
                    f"{a.safe_pratio_p:.0%}",
                )


def _layers(t: _Table) -> list[tuple[str, dict[Key, int | None], tuple[str, ...], dict[Key, int]]]:
    """The count cells per check layer: (label, cells by key, dimension names, rows).

    A wide table's count columns are one layer with the column as a further dimension."""
    dims = t.spec.dimensions
    if t.spec.columns_are_categories:
        cells: dict[Key, int | None] = {}
        rows: dict[Key, int] = {}
        for column in t.spec.counts:
            for row, key in enumerate(t.keys):
                if not t.is_margin(key):
                    cells[(*key, column)] = _int_or_none(t.values[column][row])
                    rows[(*key, column)] = row
        return [("", cells, (*dims, COLUMN_DIMENSION), rows)]
    layers = []
    for column in t.spec.counts:
        cells, rows = {}, {}
        for row, key in enumerate(t.keys):
            if not t.is_margin(key):
                cells[key] = _int_or_none(t.values[column][row])
                rows[key] = row
        layers.append((column, cells, dims, rows))
    return layers


def _int_or_none(value: float | int | None) -> int | None:
    return None if value is None else int(value)


def _structural(spec: TableSpec, dims: tuple[str, ...], key: Key) -> bool:
    labels = dict(zip(dims, key, strict=True))
    return any(all(labels.get(d) == v for d, v in zero.items()) for zero in spec.structural_zeros)


def _zeros(t: _Table, a: RiskAppetite) -> Iterable[Flag]:
    for column, cells, dims, rows in _layers(t):
        structural = {k for k in cells if _structural(t.spec, dims, k)}
        for key in structural:
            value = cells[key]
            if value:
                yield _layer_flag(
                    t,
                    "structural-zero",
                    column,
                    dims,
                    key,
                    rows,
                    value,
                    f"declared a structural zero, but holds {value}",
                )
        if a.zeros_are_disclosive:
            yield from _disclosive_zeros(t, column, cells, dims, rows, structural)
        yield from _group_disclosure(t, column, cells, dims, rows, structural)


def _disclosive_zeros(
    t: _Table,
    column: str,
    cells: dict[Key, int | None],
    dims: tuple[str, ...],
    rows: dict[Key, int],
    structural: set[Key],
) -> Iterable[Flag]:
    totals = {i: _group_totals(cells, i) for i in range(len(dims))}
    for key, value in cells.items():
        if value != 0 or key in structural:
            continue
        for i, dim in enumerate(dims):
            group = key[:i] + key[i + 1 :]
            if totals[i].get(group, 0) > 0:
                described = _describe_group(dims, i, group)
                yield _layer_flag(
                    t,
                    "zero",
                    column,
                    dims,
                    key,
                    rows,
                    0,
                    f"a zero: no one {described} has {dim} = {key[i]}",
                )
                break


def _group_totals(cells: dict[Key, int | None], i: int) -> dict[Key, int]:
    totals: dict[Key, int] = defaultdict(int)
    for key, value in cells.items():
        totals[key[:i] + key[i + 1 :]] += value or 0
    return totals


def _group_disclosure(
    t: _Table,
    column: str,
    cells: dict[Key, int | None],
    dims: tuple[str, ...],
    rows: dict[Key, int],
    structural: set[Key],
) -> Iterable[Flag]:
    for i, dim in enumerate(dims):
        domain = sorted({k[i] for k in cells}, key=str)
        if len(domain) < 2:
            continue
        groups: dict[Key, list[Key]] = defaultdict(list)
        for key in cells:
            groups[key[:i] + key[i + 1 :]].append(key)
        for group in groups:
            possible = [(*group[:i], v, *group[i:]) for v in domain]
            possible = [k for k in possible if k not in structural]
            if len(possible) < 2:
                continue
            values = [cells.get(k, 0) for k in possible]  # absent: a zero GROUP BY left out
            if any(v is None for v in values):
                continue  # a suppressed cell: the attribute is not certain
            positive = [k for k, v in zip(possible, values, strict=True) if v]
            if len(positive) == 1:
                only = positive[0]
                value = cells[only] or 0
                yield _layer_flag(
                    t,
                    "group-disclosure",
                    column,
                    dims,
                    only,
                    rows,
                    value,
                    f"all {value} {_describe_group(dims, i, group)} have "
                    f"{dim} = {only[i]}: every other {dim} is zero",
                )


def _describe_group(dims: tuple[str, ...], i: int, group: Key) -> str:
    others = [f"{d} = {v}" for d, v in zip(dims[:i] + dims[i + 1 :], group, strict=True)]
    return ("with " + ", ".join(others)) if others else "in the table"


def _layer_flag(
    t: _Table,
    rule: str,
    column: str,
    dims: tuple[str, ...],
    key: Key,
    rows: dict[Key, int],
    value: int | None,
    reason: str,
) -> Flag:
    labels = dict(zip(dims, key, strict=True))
    name = column or str(labels.pop(COLUMN_DIMENSION, ""))
    return Flag(rule, rows.get(key), name, labels, value, reason)


def _rounding(t: _Table, a: RiskAppetite) -> Iterable[Flag]:
    base = a.rounding_base
    if base is None:
        return
    for column in t.spec.counts:
        for row, value in enumerate(t.values[column]):
            if value is not None and int(value) % base:
                yield Flag(
                    "rounding",
                    row,
                    column,
                    t.key_dict(t.keys[row]),
                    value,
                    f"count {value} is not rounded to a multiple of {base}",
                )


def _differencing(t: _Table, releases: list[tuple[str, _Table]], a: RiskAppetite) -> Iterable[Flag]:
    for name, earlier in releases:
        shared = [d for d in t.spec.dimensions if d in earlier.spec.dimensions]
        for column in (c for c in t.spec.counts if c in earlier.spec.counts):
            for subset in _subsets(shared):
                ours, ours_rows = _marginal(t, column, subset)
                theirs, _ = _marginal(earlier, column, subset)
                for key, value in ours.items():
                    other = theirs.get(key)
                    if other is None or not 0 < abs(value - other) < a.safe_threshold:
                        continue
                    over = (
                        ", ".join(f"{d} = {v}" for d, v in zip(subset, key, strict=True))
                        or "the whole table"
                    )
                    yield Flag(
                        "differencing",
                        ours_rows.get(key),
                        column,
                        dict(zip(subset, key, strict=True)),
                        value,
                        f"for {over}, this output gives {value} and '{name}' gave {other}: "
                        f"the difference, {abs(value - other)}, is under {a.safe_threshold}",
                    )


def _subsets(dims: list[str]) -> Iterable[tuple[str, ...]]:
    if len(dims) > MAX_DIFFERENCING_DIMENSIONS:
        return [tuple(dims), ()]
    return [c for r in range(len(dims), -1, -1) for c in itertools.combinations(dims, r)]


def _marginal(
    t: _Table, column: str, subset: tuple[str, ...]
) -> tuple[dict[Key, int], dict[Key, int]]:
    """Counts summed over the dimensions not in ``subset``; a margin row given is used as is.

    Returns the sums and, for sums the table holds as a row, that row."""
    dims = t.spec.dimensions
    index = [dims.index(d) for d in subset]
    rest = [i for i in range(len(dims)) if i not in index]
    label = t.spec.total_label
    direct: dict[Key, int] = {}
    direct_rows: dict[Key, int] = {}
    sums: dict[Key, int] = defaultdict(int)
    unknown: set[Key] = set()
    for row, key in enumerate(t.keys):
        value = t.values[column][row]
        part = tuple(key[i] for i in index)
        if label is not None and label in part:
            continue
        if rest and label is not None and all(key[i] == label for i in rest):
            if value is not None:
                direct[part], direct_rows[part] = int(value), row
            continue
        if t.is_margin(key):
            continue
        if value is None:
            unknown.add(part)
        else:
            sums[part] += int(value)
    if not rest:
        direct_rows = {
            tuple(k[i] for i in index): r for r, k in enumerate(t.keys) if not t.is_margin(k)
        }
    merged = {k: v for k, v in sums.items() if k not in unknown}
    merged.update(direct)
    return merged, direct_rows


# --- small helpers ----------------------------------------------------------------------


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise SdcInputError(f"risk appetite: expected {what}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
