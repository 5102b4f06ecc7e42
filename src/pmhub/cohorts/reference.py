"""The reference engine: the query model evaluated in plain Python.

It is slow and obvious on purpose: it says what every node means, and the SQL engines
are tested against it (tests/backends). Rows are dicts; NULL is None with SQL's
three-valued logic (a comparison with NULL is unknown; Where keeps only true rows).
"""

from __future__ import annotations

import datetime as dt
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pmhub.cohorts import query_model as q

Row = dict[str, Any]
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _and(values: Iterable[bool | None]) -> bool | None:
    result: bool | None = True
    for v in values:
        if v is False:
            return False
        if v is None:
            result = None
    return result


def _or(values: Iterable[bool | None]) -> bool | None:
    result: bool | None = False
    for v in values:
        if v is True:
            return True
        if v is None:
            result = None
    return result


def evaluate(expr: q.Expr, row: Mapping[str, Any]) -> Any:
    if isinstance(expr, q.Col):
        return row[expr.name]
    if isinstance(expr, q.Lit):
        return expr.value
    if isinstance(expr, q.Cmp):
        left, right = evaluate(expr.left, row), evaluate(expr.right, row)
        return None if left is None or right is None else _OPS[expr.op](left, right)
    if isinstance(expr, q.And):
        return _and(evaluate(i, row) for i in expr.items)
    if isinstance(expr, q.Or):
        return _or(evaluate(i, row) for i in expr.items)
    if isinstance(expr, q.Not):
        value = evaluate(expr.item, row)
        return None if value is None else not value
    if isinstance(expr, q.IsNull):
        return evaluate(expr.item, row) is None
    if isinstance(expr, q.InValues):
        value = evaluate(expr.item, row)
        return None if value is None else value in expr.values
    return _evaluate_scalar(expr, row)


def _evaluate_scalar(expr: q.Expr, row: Mapping[str, Any]) -> Any:
    if isinstance(expr, q.AddDays):
        date, days = evaluate(expr.date, row), evaluate(expr.days, row)
        return None if date is None or days is None else date + dt.timedelta(days=int(days))
    if isinstance(expr, q.DaysBetween):
        start, end = evaluate(expr.start, row), evaluate(expr.end, row)
        return None if start is None or end is None else (end - start).days
    if isinstance(expr, q.Year):
        date = evaluate(expr.date, row)
        return None if date is None else date.year
    if isinstance(expr, q.Add | q.Sub):
        left, right = evaluate(expr.left, row), evaluate(expr.right, row)
        if left is None or right is None:
            return None
        return left + right if isinstance(expr, q.Add) else left - right
    if isinstance(expr, q.Coalesce):
        return next((v for v in (evaluate(i, row) for i in expr.items) if v is not None), None)
    if isinstance(expr, q.Least | q.Greatest):
        values = [v for v in (evaluate(i, row) for i in expr.items) if v is not None]
        pick = min if isinstance(expr, q.Least) else max
        return pick(values) if values else None
    if isinstance(expr, q.Case):
        return evaluate(expr.then if evaluate(expr.when, row) is True else expr.otherwise, row)
    raise TypeError(f"no evaluation for {type(expr).__name__}")


def _aggregate(agg: q.Agg, rows: list[Row]) -> Any:
    values = [v for v in (evaluate(agg.item, r) for r in rows) if v is not None]
    if agg.kind == "count":
        return len(values)
    if agg.kind == "count_distinct":
        return len(set(values))
    if not values:
        return None
    if agg.kind == "sum":
        return sum(values)
    return min(values) if agg.kind == "min" else max(values)


def _sort_key(value: Any) -> tuple[int, Any]:
    return (1, None) if value is None else (0, value)  # NULLs last (SQL renders NULLS LAST)


class ReferenceEngine:
    """Evaluates relations over in-memory tables: ``{table: [row dict, …]}``."""

    def __init__(self, tables: Mapping[str, list[Row]]) -> None:
        self.tables = tables
        self._memo: dict[q.Relation, list[Row]] = {}

    def rows(self, node: q.Relation) -> list[Row]:
        if node not in self._memo:
            self._memo[node] = self._rows(node)
        return self._memo[node]

    def _rows(self, node: q.Relation) -> list[Row]:
        if isinstance(node, q.Table):
            return [{c: r.get(c) for c in node.columns} for r in self.tables.get(node.name, [])]
        if isinstance(node, q.Select):
            return [{n: evaluate(e, r) for n, e in node.exprs} for r in self.rows(node.source)]
        if isinstance(node, q.Where):
            return [r for r in self.rows(node.source) if evaluate(node.predicate, r) is True]
        if isinstance(node, q.Join):
            return self._join(node)
        if isinstance(node, q.UnionAll):
            return [r for s in node.sources for r in self.rows(s)]
        if isinstance(node, q.Aggregate):
            return self._group(node)
        if isinstance(node, q.RowNumber):
            return self._number(node)
        if isinstance(node, q.Distinct):
            seen = {tuple(r.values()): r for r in self.rows(node.source)}
            return list(seen.values())
        if isinstance(node, q.Eras):
            return self._eras(node)
        raise TypeError(f"no evaluation for {type(node).__name__}")

    def _join(self, node: q.Join) -> list[Row]:
        right = self.rows(node.right)
        empty = dict.fromkeys(node.right.columns)
        out = []
        for left in self.rows(node.left):
            matched = [{**left, **r} for r in right if evaluate(node.on, {**left, **r}) is True]
            out.extend(matched or ([{**left, **empty}] if node.how == "left" else []))
        return out

    def _group(self, node: q.Aggregate) -> list[Row]:
        groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
        for r in self.rows(node.source):
            groups[tuple(r[c] for c in node.by)].append(r)
        if not node.by and not groups:
            groups[()] = []  # SQL: an aggregate without GROUP BY gives one row
        return [
            {**dict(zip(node.by, key, strict=True)), **{n: _aggregate(a, rs) for n, a in node.aggs}}
            for key, rs in groups.items()
        ]

    def _number(self, node: q.RowNumber) -> list[Row]:
        groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
        for r in self.rows(node.source):
            groups[tuple(r[c] for c in node.partition_by)].append(r)
        out: list[Row] = []
        for rows in groups.values():
            ordered = sorted(rows, key=lambda r: tuple(_sort_key(r[c]) for c in node.order_by))
            out.extend({**r, node.name: i} for i, r in enumerate(ordered, start=1))
        return out

    def _eras(self, node: q.Eras) -> list[Row]:
        by_person: dict[Any, list[Row]] = defaultdict(list)
        for r in self.rows(node.source):
            by_person[r["person_id"]].append(r)
        out: list[Row] = []
        gap = dt.timedelta(days=node.gap)
        for person, rows in by_person.items():
            rows.sort(key=lambda r: (r["start_date"], r["end_date"]))
            current: Row | None = None
            for r in rows:
                if current is not None and r["start_date"] <= current["end_date"] + gap:
                    current["end_date"] = max(current["end_date"], r["end_date"])
                    continue
                current = {
                    "person_id": person,
                    "start_date": r["start_date"],
                    "end_date": r["end_date"],
                }
                out.append(current)
        return out
