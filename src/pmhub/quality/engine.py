"""Runs checks on a CDW: one aggregate query per table for the row-level checks, one query
of value counts per table for its concept fields, one grouped query per table for the
concept-level checks (units, value ranges, sex).

Checks that cannot run (a column missing, or held as another type than the CDM's) get the
status ``error`` with the reason, and the others still run: when a batched query fails, its
checks run one by one so that a single bad column does not hide a table's other results.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pmhub.cdm.backends import Backend
from pmhub.quality.catalog import Catalog, read_catalog
from pmhub.quality.checks import (
    CONCEPT_TYPES,
    Check,
    CompileContext,
    ConceptCount,
    Joins,
    RowMeasure,
    checked_tables,
    compile_row,
    expand,
    gender_query,
    histogram_query,
    histogram_violations,
    measurement_query,
    source_value_query,
    uses_histogram,
)
from pmhub.quality.definitions import GENDER_DOMAIN_TABLES, CheckDefinitions, GenderConcept

Progress = Callable[[int, int, str], None]  # (queries done, queries in all, what runs now)

PASS, FAIL, NOT_APPLICABLE, ERROR = "pass", "fail", "not_applicable", "error"


@dataclass(frozen=True)
class CheckResult:
    check: Check
    violated: int
    denominator: int
    status: str
    error: str | None = None

    @property
    def pct_violated(self) -> float:
        return 100.0 * self.violated / self.denominator if self.denominator else 0.0

    def to_json(self) -> dict[str, Any]:
        c = self.check
        return {
            "id": c.id,
            "type": c.type,
            "category": c.category,
            "subcategory": c.subcategory,
            "level": c.level,
            "table": c.table,
            "field": c.field,
            "concept_id": c.concept_id,
            "unit_concept_id": c.unit_concept_id,
            "description": c.description,
            "threshold": c.threshold,
            "violated": self.violated,
            "denominator": self.denominator,
            "pct_violated": round(self.pct_violated, 6),
            "status": self.status,
            "error": self.error,
        }


def judge(check: Check, violated: int, denominator: int) -> CheckResult:
    if denominator == 0:
        return CheckResult(check, violated, 0, NOT_APPLICABLE)
    pct = 100.0 * violated / denominator
    return CheckResult(check, violated, denominator, FAIL if pct > check.threshold else PASS)


@dataclass
class CheckRun:
    results: list[CheckResult]
    seconds: dict[str, float] = field(default_factory=dict)  # per query label

    def summary(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.results:
            row = out.setdefault(r.check.category, {PASS: 0, FAIL: 0, NOT_APPLICABLE: 0, ERROR: 0})
            row[r.status] += 1
        return out


@dataclass
class _Plan:
    row: dict[str, list[tuple[Check, RowMeasure]]] = field(default_factory=dict)
    concept: dict[tuple[str, str, str], list[Check]] = field(default_factory=dict)
    done: dict[str, CheckResult] = field(default_factory=dict)
    histogram: dict[str, list[Check]] = field(default_factory=dict)
    sources: dict[str, list[Check]] = field(default_factory=dict)
    person: str = "person"  # as the gender queries join it: many-to-one even without a key
    concept_table: str = "concept"  # likewise, as the value counts join it

    def queries(self) -> int:
        return len(self.row) + len(self.concept) + len(self.histogram) + len(self.sources)


def run_checks(
    backend: Backend,
    definitions: CheckDefinitions,
    *,
    as_of: dt.date,
    row_counts: dict[str, int] | None = None,
    catalog: Catalog | None = None,
    progress: Progress | None = None,
) -> CheckRun:
    checks = expand(definitions, as_of)
    counts = row_counts or {t.name: backend.count(t.name) for t in checked_tables()}
    plan = _plan(backend, checks, counts, as_of, catalog or read_catalog(backend))
    run = CheckRun(results=[])
    total, done = plan.queries(), 0
    for table, measures in plan.row.items():
        if progress:
            progress(done, total, table)
        started = time.perf_counter()
        for check, result in _run_table(backend, table, measures):
            plan.done[check.id] = result
        run.seconds[table] = time.perf_counter() - started
        done += 1
    for table, group in plan.histogram.items():
        label = f"{table} concept fields"
        if progress:
            progress(done, total, label)
        started = time.perf_counter()
        for result in _run_histogram(backend, table, group, counts[table], plan.concept_table):
            plan.done[result.check.id] = result
        run.seconds[label] = time.perf_counter() - started
        done += 1
    for table, group in plan.sources.items():
        label = f"{table} source values"
        if progress:
            progress(done, total, label)
        started = time.perf_counter()
        for result in _run_sources(backend, table, group):
            plan.done[result.check.id] = result
        run.seconds[label] = time.perf_counter() - started
        done += 1
    for key, group in plan.concept.items():
        label = f"{key[0]} concepts"
        if progress:
            progress(done, total, label)
        started = time.perf_counter()
        for result in _run_concepts(backend, key, group, plan.person):
            plan.done[result.check.id] = result
        run.seconds[label] = run.seconds.get(label, 0.0) + time.perf_counter() - started
        done += 1
    if progress:
        progress(total, total, "done")
    run.results = [plan.done[c.id] for c in checks]
    return run


def _plan(
    backend: Backend, checks: list[Check], counts: dict[str, int], as_of: dt.date, cat: Catalog
) -> _Plan:
    incompatible = cat.incompatible()
    keys: dict[str, tuple[str, ...]] = {}

    def unique_keys(table: str) -> tuple[str, ...]:
        if table not in keys:
            keys[table] = backend.primary_key(table)
        return keys[table]

    cc = CompileContext(backend.dialect.name, as_of, incompatible, Joins(unique_keys))
    plan = _Plan()
    for check in checks:
        problem = _cannot_run(check, cat.present(check.table), incompatible)
        if problem:
            plan.done[check.id] = CheckResult(check, 0, 0, ERROR, problem)
        elif counts.get(check.table, 0) == 0:
            plan.done[check.id] = CheckResult(check, 0, 0, NOT_APPLICABLE)
        elif uses_histogram(check):
            plan.histogram.setdefault(check.table, []).append(check)
        elif check.type == "source_value_unmapped":
            plan.sources.setdefault(check.table, []).append(check)
        elif check.type in CONCEPT_TYPES:
            key = _concept_key(check)
            plan.concept.setdefault(key, []).append(check)
        else:
            plan.row.setdefault(check.table, []).append((check, compile_row(check, cc)))
    plan.person = cc.joins.reference("person", "person_id", ("gender_concept_id",))
    plan.concept_table = cc.joins.reference(
        "concept", "concept_id", ("domain_id", "standard_concept", "invalid_reason")
    )
    return plan


def _cannot_run(
    check: Check, present: set[str], incompatible: frozenset[tuple[str, str]]
) -> str | None:
    missing = [c for c in check.columns if c not in present]
    if missing:
        return f"{check.table} has no column {', '.join(missing)}"
    if check.type in ("cdm_datatype", "is_required"):
        return None
    odd = [c for c in check.columns if (check.table, c) in incompatible]
    if odd:
        return f"{check.table}.{odd[0]} is not of its CDM type (see the cdm_datatype check)"
    return None


def _concept_key(check: Check) -> tuple[str, str, str]:
    if check.type == "plausible_gender":
        return (check.table, str(check.field), "gender")
    return ("measurement", "measurement_concept_id", "ranges")


def _run_table(
    backend: Backend, table: str, measures: list[tuple[Check, RowMeasure]]
) -> list[tuple[Check, CheckResult]]:
    try:
        return _batched(backend, table, measures)
    except Exception as exc:  # a database error names one column at best: find which fail
        if cancelled(exc):
            raise  # the run is being stopped: no check-by-check retry
        results = []
        for check, measure in measures:
            try:
                results.extend(_batched(backend, table, [(check, measure)]))
            except Exception as one:
                if cancelled(one):
                    raise
                results.append((check, CheckResult(check, 0, 0, ERROR, _first_line(one))))
        return results


def cancelled(exc: BaseException) -> bool:
    """A query cancelled on the server (SQLSTATE 57014: query_canceled), not a bad column."""
    return getattr(exc, "sqlstate", None) == "57014"


def _batched(
    backend: Backend, table: str, measures: list[tuple[Check, RowMeasure]]
) -> list[tuple[Check, CheckResult]]:
    sql, slots = batch_sql(table, (m for _, m in measures))
    row = backend.fetchall(sql)[0]
    out = []
    for (check, _), (v, d) in zip(measures, slots, strict=True):
        out.append((check, judge(check, int(row[v] or 0), int(row[d] or 0))))
    return out


def batch_sql(table: str, measures: Iterable[RowMeasure]) -> tuple[str, list[tuple[int, int]]]:
    """One SELECT of every measure's two aggregates (each distinct aggregate once)."""
    exprs: dict[str, int] = {}
    joins: dict[str, str] = {}
    slots = []
    for m in measures:
        for join in m.joins:
            joins.setdefault(join.alias, join.sql)
        slot = []
        for expr in (m.violated, m.denominator):
            slot.append(exprs.setdefault(expr, len(exprs)))
        slots.append((slot[0], slot[1]))
    select = ", ".join(f"{e} AS a{i}" for e, i in exprs.items())
    return f"SELECT {select} FROM {table} t {' '.join(joins.values())}".rstrip(), slots


def _run_histogram(
    backend: Backend, table: str, checks: list[Check], rows: int, concept: str
) -> list[CheckResult]:
    fields = sorted({str(c.field) for c in checks})
    try:
        found = backend.fetchall(histogram_query(table, fields, concept))
    except Exception as exc:
        return [CheckResult(c, 0, 0, ERROR, _first_line(exc)) for c in checks]
    counts = [
        ConceptCount(str(f), int(v), int(n), cid is not None, dom, std, inv)
        for f, v, n, cid, dom, std, inv in found
    ]
    return [judge(c, histogram_violations(c, counts), rows) for c in checks]


def _run_sources(backend: Backend, table: str, checks: list[Check]) -> list[CheckResult]:
    try:
        rows = backend.fetchall(source_value_query(table, checks))
    except Exception as exc:
        return [CheckResult(c, 0, 0, ERROR, _first_line(exc)) for c in checks]
    found = {str(f): (int(n), int(u or 0)) for f, n, u in rows}
    results = []
    for check in checks:
        values, unmapped = found.get(str(check.field), (0, 0))
        results.append(judge(check, unmapped, values))
    return results


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else repr(exc)


def _run_concepts(
    backend: Backend, key: tuple[str, str, str], checks: list[Check], person: str
) -> list[CheckResult]:
    try:
        if key[2] == "gender":
            return _gender_results(backend, key, checks, person)
        return _measurement_results(backend, checks)
    except Exception as exc:
        return [CheckResult(c, 0, 0, ERROR, _first_line(exc)) for c in checks]


def _measurement_results(backend: Backend, checks: list[Check]) -> list[CheckResult]:
    bounds: dict[tuple[int, int], tuple[float, float]] = {}
    for c in checks:
        if c.type == "measurement_value_range":
            pair = (int(c.concept_id or 0), int(c.unit_concept_id or 0))
            bounds[pair] = (float(c.param("low")), float(c.param("high")))
    for c in checks:
        for unit in c.param("unit_ids") if c.type == "measurement_unit" else ():
            bounds.setdefault((int(c.concept_id or 0), unit), (-HUGE, HUGE))
    ranges = [(c, u, lo, hi) for (c, u), (lo, hi) in sorted(bounds.items())]
    rows = backend.fetchall(measurement_query(ranges))
    counts = {(int(r[0]), None if r[1] is None else int(r[1])): (int(r[2]), r[3]) for r in rows}
    results = []
    for check in checks:
        if check.type == "measurement_value_range":
            n, outside = counts.get((int(check.concept_id or 0), check.unit_concept_id), (0, 0))
            results.append(judge(check, int(outside or 0), n))
            continue
        units = set(check.param("unit_ids"))
        mine = [(u, n) for (c, u), (n, _) in counts.items() if c == check.concept_id]
        wrong = sum(n for u, n in mine if u not in units)
        results.append(judge(check, wrong, sum(n for _, n in mine)))
    return results


HUGE = 1e300  # an open bound; VALUES takes no infinity literal on every backend


def _gender_results(
    backend: Backend, key: tuple[str, str, str], checks: list[Check], person: str
) -> list[CheckResult]:
    table, column, _ = key
    domain = next(d for d, (t, _) in GENDER_DOMAIN_TABLES.items() if t == table)
    concepts = [
        GenderConcept(int(c.concept_id or 0), "", domain, int(c.param("gender_concept_id")))
        for c in checks
    ]
    rows = backend.fetchall(gender_query(table, column, concepts, person))
    found = {int(r[0]): (int(r[1]), int(r[2] or 0)) for r in rows}
    results = []
    for c in checks:
        records, other_sex = found.get(int(c.concept_id or 0), (0, 0))
        results.append(judge(c, other_sex, records))
    return results


__all__ = [
    "ERROR",
    "FAIL",
    "NOT_APPLICABLE",
    "PASS",
    "CheckResult",
    "CheckRun",
    "judge",
    "run_checks",
]
