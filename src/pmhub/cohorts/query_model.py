"""The portable query model: frozen, self-validating nodes that no backend owns.

A cohort definition is planned into a tree of these nodes (:mod:`pmhub.cohorts.planner`);
each engine evaluates the tree its own way: :mod:`pmhub.cohorts.sql` renders it for
DuckDB, PostgreSQL and Spark, :mod:`pmhub.cohorts.reference` evaluates it in plain Python
and so defines what each node means. A node checks on construction that the columns it
refers to exist, so a wrong plan fails where it is built, not inside a database.

Semantics follow SQL: NULL compares as unknown, ``Where`` keeps rows whose predicate is
true, ``Least``/``Greatest`` skip NULLs, ``count`` counts non-NULL values,
``count_distinct`` the distinct ones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from pmhub.cohorts.errors import QueryModelError

Scalar = int | float | str | dt.date | bool | None
LitType = Literal["int", "float", "str", "date", "bool"]
CmpOp = Literal["=", "!=", "<", "<=", ">", ">="]
AggKind = Literal["count", "count_distinct", "sum", "min", "max"]


def _fail(message: str) -> None:
    raise QueryModelError(message)


# --- expressions -----------------------------------------------------------------------


class Expr:
    def columns(self) -> frozenset[str]:
        """The column names this expression reads."""
        raise NotImplementedError


@dataclass(frozen=True)
class Col(Expr):
    name: str

    def columns(self) -> frozenset[str]:
        return frozenset({self.name})


@dataclass(frozen=True)
class Lit(Expr):
    value: Scalar
    type: LitType

    def __post_init__(self) -> None:
        expected: dict[str, type | tuple[type, ...]] = {
            "int": int,
            "float": (int, float),
            "str": str,
            "date": dt.date,
            "bool": bool,
        }
        ok = self.value is None or isinstance(self.value, expected[self.type])
        if not ok or (self.type in ("int", "float") and isinstance(self.value, bool)):
            _fail(f"literal {self.value!r} is not of type {self.type}")

    def columns(self) -> frozenset[str]:
        return frozenset()


def _cols(*items: Expr) -> frozenset[str]:
    return frozenset().union(*(i.columns() for i in items))


@dataclass(frozen=True)
class Cmp(Expr):
    op: CmpOp
    left: Expr
    right: Expr

    def columns(self) -> frozenset[str]:
        return _cols(self.left, self.right)


@dataclass(frozen=True)
class And(Expr):
    items: tuple[Expr, ...]

    def __post_init__(self) -> None:
        if not self.items:
            _fail("And needs at least one operand")

    def columns(self) -> frozenset[str]:
        return _cols(*self.items)


@dataclass(frozen=True)
class Or(Expr):
    items: tuple[Expr, ...]

    def __post_init__(self) -> None:
        if not self.items:
            _fail("Or needs at least one operand")

    def columns(self) -> frozenset[str]:
        return _cols(*self.items)


@dataclass(frozen=True)
class Not(Expr):
    item: Expr

    def columns(self) -> frozenset[str]:
        return self.item.columns()


@dataclass(frozen=True)
class IsNull(Expr):
    item: Expr

    def columns(self) -> frozenset[str]:
        return self.item.columns()


@dataclass(frozen=True)
class InValues(Expr):
    item: Expr
    values: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.values:
            _fail("InValues needs at least one value (an empty set matches nothing)")

    def columns(self) -> frozenset[str]:
        return self.item.columns()


@dataclass(frozen=True)
class AddDays(Expr):
    date: Expr
    days: Expr

    def columns(self) -> frozenset[str]:
        return _cols(self.date, self.days)


@dataclass(frozen=True)
class DaysBetween(Expr):
    """``end - start`` in days."""

    start: Expr
    end: Expr

    def columns(self) -> frozenset[str]:
        return _cols(self.start, self.end)


@dataclass(frozen=True)
class Year(Expr):
    date: Expr

    def columns(self) -> frozenset[str]:
        return self.date.columns()


@dataclass(frozen=True)
class Arithmetic(Expr):
    """``left + right`` or ``left - right`` of numbers (dates take :class:`AddDays`)."""

    left: Expr
    right: Expr

    def columns(self) -> frozenset[str]:
        return _cols(self.left, self.right)


class Add(Arithmetic):
    """``left + right``."""


class Sub(Arithmetic):
    """``left - right``."""


@dataclass(frozen=True)
class Coalesce(Expr):
    items: tuple[Expr, ...]

    def columns(self) -> frozenset[str]:
        return _cols(*self.items)


@dataclass(frozen=True)
class Least(Expr):
    items: tuple[Expr, ...]

    def columns(self) -> frozenset[str]:
        return _cols(*self.items)


@dataclass(frozen=True)
class Greatest(Expr):
    items: tuple[Expr, ...]

    def columns(self) -> frozenset[str]:
        return _cols(*self.items)


@dataclass(frozen=True)
class Case(Expr):
    """``CASE WHEN when THEN then ELSE otherwise END``."""

    when: Expr
    then: Expr
    otherwise: Expr

    def columns(self) -> frozenset[str]:
        return _cols(self.when, self.then, self.otherwise)


@dataclass(frozen=True)
class Agg:
    kind: AggKind
    item: Expr

    def columns(self) -> frozenset[str]:
        return self.item.columns()


# --- relations -------------------------------------------------------------------------


class Relation:
    @property
    def columns(self) -> tuple[str, ...]:
        raise NotImplementedError


def _require(relation: Relation, needed: frozenset[str], where: str) -> None:
    missing = needed - set(relation.columns)
    if missing:
        _fail(f"{where} refers to unknown columns {sorted(missing)}; has {relation.columns}")


def _unique(names: tuple[str, ...], where: str) -> None:
    if len(set(names)) != len(names):
        _fail(f"{where} has duplicate column names {names}")


@dataclass(frozen=True)
class Table(Relation):
    name: str
    table_columns: tuple[str, ...]

    def __post_init__(self) -> None:
        _unique(self.table_columns, f"table {self.name}")

    @property
    def columns(self) -> tuple[str, ...]:
        return self.table_columns


@dataclass(frozen=True)
class Select(Relation):
    source: Relation
    exprs: tuple[tuple[str, Expr], ...]

    def __post_init__(self) -> None:
        _unique(tuple(n for n, _ in self.exprs), "Select")
        for name, expr in self.exprs:
            _require(self.source, expr.columns(), f"Select column {name!r}")

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.exprs)


@dataclass(frozen=True)
class Where(Relation):
    source: Relation
    predicate: Expr

    def __post_init__(self) -> None:
        _require(self.source, self.predicate.columns(), "Where")

    @property
    def columns(self) -> tuple[str, ...]:
        return self.source.columns


@dataclass(frozen=True)
class Join(Relation):
    """Rows of both sides whose ``on`` is true; ``left`` keeps unmatched left rows with
    NULLs on the right. The sides' column names must differ (rename with Select)."""

    left: Relation
    right: Relation
    on: Expr
    how: Literal["inner", "left"] = "inner"

    def __post_init__(self) -> None:
        shared = set(self.left.columns) & set(self.right.columns)
        if shared:
            _fail(f"Join sides share columns {sorted(shared)}; rename one side")
        _require(self, self.on.columns(), "Join condition")

    @property
    def columns(self) -> tuple[str, ...]:
        return self.left.columns + self.right.columns


@dataclass(frozen=True)
class UnionAll(Relation):
    sources: tuple[Relation, ...]

    def __post_init__(self) -> None:
        if not self.sources:
            _fail("UnionAll needs at least one source")
        first = self.sources[0].columns
        for other in self.sources[1:]:
            if other.columns != first:
                _fail(f"UnionAll sources differ: {first} vs {other.columns}")

    @property
    def columns(self) -> tuple[str, ...]:
        return self.sources[0].columns


@dataclass(frozen=True)
class Aggregate(Relation):
    source: Relation
    by: tuple[str, ...]
    aggs: tuple[tuple[str, Agg], ...]

    def __post_init__(self) -> None:
        _require(self.source, frozenset(self.by), "Aggregate group")
        _unique(self.by + tuple(n for n, _ in self.aggs), "Aggregate")
        for name, agg in self.aggs:
            _require(self.source, agg.columns(), f"Aggregate {name!r}")

    @property
    def columns(self) -> tuple[str, ...]:
        return self.by + tuple(n for n, _ in self.aggs)


@dataclass(frozen=True)
class RowNumber(Relation):
    """Numbers rows 1, 2, … within each partition in ``order_by`` order (ascending).
    Callers order by enough columns that ties are rows equal in every column they keep."""

    source: Relation
    partition_by: tuple[str, ...]
    order_by: tuple[str, ...]
    name: str

    def __post_init__(self) -> None:
        _require(self.source, frozenset(self.partition_by + self.order_by), "RowNumber")
        if not self.order_by:
            _fail("RowNumber needs an order")
        if self.name in self.source.columns:
            _fail(f"RowNumber column {self.name!r} exists already")

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.source.columns, self.name)


@dataclass(frozen=True)
class Distinct(Relation):
    source: Relation

    @property
    def columns(self) -> tuple[str, ...]:
        return self.source.columns


ERA_COLUMNS = ("person_id", "start_date", "end_date")


@dataclass(frozen=True)
class Eras(Relation):
    """Collapse each person's periods into eras: a period that starts no more than ``gap``
    days after the latest end so far joins the current era. Output: person_id,
    start_date, end_date (earliest start, latest end of each era)."""

    source: Relation
    gap: int

    def __post_init__(self) -> None:
        _require(self.source, frozenset(ERA_COLUMNS), "Eras")
        if self.gap < 0:
            _fail("Eras gap must not be negative")

    @property
    def columns(self) -> tuple[str, ...]:
        return ERA_COLUMNS


# --- small builders used by the planner -----------------------------------------------


def col(name: str) -> Col:
    return Col(name)


def lit_int(value: int | None) -> Lit:
    return Lit(value, "int")


def lit_date(value: dt.date | None) -> Lit:
    return Lit(value, "date")


def eq(left: Expr, right: Expr) -> Cmp:
    return Cmp("=", left, right)


def rename(source: Relation, mapping: dict[str, str]) -> Select:
    """All columns of ``source``, some renamed."""
    return Select(source, tuple((mapping.get(c, c), Col(c)) for c in source.columns))


def keep(source: Relation, *names: str) -> Select:
    return Select(source, tuple((n, Col(n)) for n in names))


def children(relation: Relation) -> tuple[Relation, ...]:
    if isinstance(relation, Select | Where | Aggregate | RowNumber | Distinct | Eras):
        return (relation.source,)
    if isinstance(relation, Join):
        return (relation.left, relation.right)
    if isinstance(relation, UnionAll):
        return relation.sources
    return ()
