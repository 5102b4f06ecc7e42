"""Render the query model as SQL for DuckDB, PostgreSQL and Spark, through sqlglot.

Each relation node becomes one common table expression; a node used twice is rendered
once. Dialect differences are flags on :class:`SqlDialect` (sqlglot's habit), and
sqlglot itself is told to raise, not guess, when a dialect cannot express something —
an unsupported feature is an error naming the backend, never a silently different query.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, UnsupportedError

from pmhub.cohorts import query_model as q
from pmhub.cohorts.errors import UnsupportedFeatureError


@dataclass(frozen=True)
class SqlDialect:
    name: str  # as users know the backend
    sqlglot_name: str
    date_add_function: bool  # DATE_ADD(d, n) instead of d + n
    datediff_function: bool  # DATEDIFF(end, start) instead of end - start
    # PostgreSQL materialises a CTE used twice and then guesses its size (often 1 row),
    # which turns joins into nested loops; inlined, the planner sees the tables' statistics
    inline_ctes: bool = False
    # statements run in the query's transaction; PostgreSQL underestimates the rows left
    # after ROW_NUMBER() = 1 filters and picks nested loops that take minutes at 100,000
    # persons where hash joins take a second
    setup: tuple[str, ...] = ()
    # features of the query model this backend lacks → what to tell the user
    unsupported: dict[str, str] = field(default_factory=dict)


DUCKDB = SqlDialect("duckdb", "duckdb", date_add_function=False, datediff_function=False)
POSTGRES = SqlDialect(
    "postgresql",
    "postgres",
    date_add_function=False,
    datediff_function=False,
    inline_ctes=True,
    setup=("SET LOCAL enable_nestloop = off",),
)
SPARK = SqlDialect("spark", "spark", date_add_function=True, datediff_function=True)
DIALECTS = {d.name: d for d in (DUCKDB, POSTGRES, SPARK)}

_CMP: dict[str, type[exp.Binary]] = {
    "=": exp.EQ,
    "!=": exp.NEQ,
    "<": exp.LT,
    "<=": exp.LTE,
    ">": exp.GT,
    ">=": exp.GTE,
}
_AGG: dict[str, type[exp.AggFunc]] = {
    "count": exp.Count,
    "sum": exp.Sum,
    "min": exp.Min,
    "max": exp.Max,
}
_TYPES = {"int": "INT", "float": "DOUBLE", "str": "VARCHAR", "date": "DATE", "bool": "BOOLEAN"}


# what each node needs of a backend beyond plain SELECT, JOIN, GROUP BY and UNION ALL
FEATURES: dict[type[q.Relation], tuple[str, ...]] = {
    q.RowNumber: ("window functions",),
    q.Eras: ("window functions",),
}


def require_feature(dialect: SqlDialect, feature: str) -> None:
    if feature in dialect.unsupported:
        raise UnsupportedFeatureError(
            f"{feature} is unsupported on {dialect.name}: {dialect.unsupported[feature]}"
        )


def _paren(node: exp.Expr) -> exp.Expression:
    return exp.Paren(this=node)


class ExprCompiler:
    def __init__(self, dialect: SqlDialect) -> None:
        self.dialect = dialect
        self._handlers: dict[type[q.Expr], Callable[[Any], Any]] = {
            q.Col: lambda e: exp.column(e.name),
            q.Lit: self._lit,
            q.Cmp: lambda e: _CMP[e.op](this=self(e.left), expression=self(e.right)),
            q.And: lambda e: _paren(exp.and_(*(self(i) for i in e.items))),
            q.Or: lambda e: _paren(exp.or_(*(self(i) for i in e.items))),
            q.Not: lambda e: exp.Not(this=_paren(self(e.item))),
            q.IsNull: lambda e: exp.Is(this=self(e.item), expression=exp.Null()),
            q.InValues: lambda e: exp.In(
                this=self(e.item), expressions=[exp.Literal.number(v) for v in e.values]
            ),
            q.AddDays: self._add_days,
            q.DaysBetween: self._days_between,
            q.Year: lambda e: exp.cast(
                exp.Extract(this=exp.var("YEAR"), expression=self(e.date)), "INT"
            ),
            q.Add: lambda e: _paren(exp.Add(this=self(e.left), expression=self(e.right))),
            q.Sub: lambda e: _paren(exp.Sub(this=self(e.left), expression=self(e.right))),
            q.Coalesce: lambda e: self._variadic(exp.Coalesce, e.items),
            # the query model's LEAST/GREATEST skip NULLs (as PostgreSQL, DuckDB and Spark)
            q.Least: lambda e: self._variadic(exp.Least, e.items, ignore_nulls=True),
            q.Greatest: lambda e: self._variadic(exp.Greatest, e.items, ignore_nulls=True),
            q.Case: lambda e: exp.Case(
                ifs=[exp.If(this=self(e.when), true=self(e.then))], default=self(e.otherwise)
            ),
        }

    def __call__(self, node: q.Expr) -> exp.Expression:
        result: exp.Expression = self._handlers[type(node)](node)
        return result

    def _variadic(
        self, kind: type[exp.Func], items: tuple[q.Expr, ...], **args: object
    ) -> exp.Expression:
        first, *rest = (self(i) for i in items)
        result: Any = kind(this=first, expressions=rest, **args)
        return cast(exp.Expression, result)

    def _lit(self, node: q.Lit) -> exp.Expression:
        value = node.value
        if value is None:
            return exp.cast(exp.Null(), _TYPES[node.type])
        if isinstance(value, bool):
            return exp.Boolean(this=value)
        if isinstance(value, int | float):
            return exp.Literal.number(value)
        if isinstance(value, dt.date):
            return exp.cast(exp.Literal.string(value.isoformat()), "DATE")
        return exp.Literal.string(value)

    def _add_days(self, node: q.AddDays) -> exp.Expression:
        date = self(node.date)
        days = self(node.days)
        if not isinstance(node.days, q.Lit):
            days = exp.cast(days, "INT")  # DuckDB adds INTEGER days to a DATE, not BIGINT
        if self.dialect.date_add_function:
            return exp.Anonymous(this="DATE_ADD", expressions=[date, days])
        return _paren(exp.Add(this=date, expression=days))

    def _days_between(self, node: q.DaysBetween) -> exp.Expression:
        start, end = self(node.start), self(node.end)
        if self.dialect.datediff_function:
            return exp.Anonymous(this="DATEDIFF", expressions=[end, start])
        return _paren(exp.Sub(this=end, expression=start))


class Compiler:
    """Turns a relation tree into one WITH … SELECT statement."""

    def __init__(self, dialect: SqlDialect) -> None:
        self.dialect = dialect
        self.expr = ExprCompiler(dialect)
        self.ctes: list[tuple[str, exp.Expression]] = []
        self.names: dict[q.Relation, str] = {}

    def _cols(self, names: tuple[str, ...]) -> list[exp.Expression]:
        return [exp.column(n) for n in names]

    def _add(self, body: exp.Expression) -> str:
        name = f"q{len(self.ctes)}"
        self.ctes.append((name, body))
        return name

    def relation(self, node: q.Relation) -> str:
        """The CTE name holding ``node``'s rows; each distinct node is rendered once."""
        if node not in self.names:
            self.names[node] = self._add(self._body(node))
        return self.names[node]

    def _body(self, node: q.Relation) -> exp.Expression:
        for feature in FEATURES.get(type(node), ()):
            require_feature(self.dialect, feature)
        if isinstance(node, q.Table):
            return exp.select(*self._cols(node.columns)).from_(exp.to_table(node.name), copy=False)
        if isinstance(node, q.Select):
            return exp.select(*(exp.alias_(self.expr(e), n) for n, e in node.exprs)).from_(
                self.relation(node.source), copy=False
            )
        if isinstance(node, q.Where):
            return (
                exp.select(*self._cols(node.columns))
                .from_(self.relation(node.source), copy=False)
                .where(self.expr(node.predicate), copy=False)
            )
        if isinstance(node, q.Join):
            return self._join(node)
        if isinstance(node, q.UnionAll):
            parts = [
                exp.select(*self._cols(node.columns)).from_(self.relation(s), copy=False)
                for s in node.sources
            ]
            return parts[0] if len(parts) == 1 else exp.union(*parts, distinct=False, copy=False)
        if isinstance(node, q.Aggregate):
            return self._aggregate(node)
        if isinstance(node, q.RowNumber):
            window = exp.Window(
                this=exp.RowNumber(),
                partition_by=self._cols(node.partition_by),
                # NULLs last everywhere (Spark puts them first unless told)
                order=exp.Order(
                    expressions=[
                        exp.Ordered(this=c, nulls_first=False) for c in self._cols(node.order_by)
                    ]
                ),
            )
            return exp.select(
                *self._cols(node.source.columns), exp.alias_(window, node.name)
            ).from_(self.relation(node.source), copy=False)
        if isinstance(node, q.Distinct):
            return (
                exp.select(*self._cols(node.columns))
                .from_(self.relation(node.source), copy=False)
                .distinct(copy=False)
            )
        if isinstance(node, q.Eras):
            return self._eras(node)
        raise TypeError(f"no SQL for {type(node).__name__}")

    def _join(self, node: q.Join) -> exp.Expression:
        left, right = self.relation(node.left), self.relation(node.right)
        return (
            exp.select(*self._cols(node.columns))
            .from_(exp.to_table(left).as_("l"))
            .join(
                exp.to_table(right).as_("r"),
                on=self.expr(node.on),
                join_type="LEFT" if node.how == "left" else "INNER",
                copy=False,
            )
        )

    def _aggregate(self, node: q.Aggregate) -> exp.Expression:
        aggs = [exp.alias_(self._agg(a), n) for n, a in node.aggs]
        query = exp.select(*self._cols(node.by), *aggs).from_(
            self.relation(node.source), copy=False
        )
        return query.group_by(*self._cols(node.by), copy=False) if node.by else query

    def _agg(self, agg: q.Agg) -> exp.Expression:
        item = self.expr(agg.item)
        if agg.kind == "count_distinct":
            result: Any = exp.Count(this=exp.Distinct(expressions=[item]))
        else:
            result = _AGG[agg.kind](this=item)
        return cast(exp.Expression, result)

    def _eras(self, node: q.Eras) -> exp.Expression:
        """Gaps and islands: a period starts a new era when it starts more than ``gap``
        days after the latest end of the periods before it (in start, end order)."""
        source = self.relation(node.source)
        order = exp.Order(
            expressions=[exp.Ordered(this=exp.column(c)) for c in ("start_date", "end_date")]
        )
        person = [exp.column("person_id")]
        previous_end = exp.Window(
            this=exp.Max(this=exp.column("end_date")),
            partition_by=person,
            order=order,
            spec=exp.WindowSpec(
                kind="ROWS",
                start="UNBOUNDED",
                start_side="PRECEDING",
                end=exp.Literal.number(1),
                end_side="PRECEDING",
            ),
        )
        marked = exp.select(*self._cols(q.ERA_COLUMNS), exp.alias_(previous_end, "prev_end")).from_(
            source, copy=False
        )
        marked_name = self._add(marked)
        reach = self.expr(q.AddDays(q.Col("prev_end"), q.Lit(node.gap, "int")))
        is_new = exp.Case(
            ifs=[
                exp.If(
                    this=exp.or_(
                        exp.Is(this=exp.column("prev_end"), expression=exp.Null()),
                        exp.GT(this=exp.column("start_date"), expression=reach),
                    ),
                    true=exp.Literal.number(1),
                )
            ],
            default=exp.Literal.number(0),
        )
        flagged = exp.select(*self._cols(q.ERA_COLUMNS), exp.alias_(is_new, "is_new")).from_(
            marked_name, copy=False
        )
        flagged_name = self._add(flagged)
        era_number = exp.Window(
            this=exp.Sum(this=exp.column("is_new")),
            partition_by=person,
            order=order,
            spec=exp.WindowSpec(
                kind="ROWS", start="UNBOUNDED", start_side="PRECEDING", end="CURRENT ROW"
            ),
        )
        numbered = exp.select(*self._cols(q.ERA_COLUMNS), exp.alias_(era_number, "era")).from_(
            flagged_name, copy=False
        )
        numbered_name = self._add(numbered)
        return (
            exp.select(
                exp.column("person_id"),
                exp.alias_(exp.Min(this=exp.column("start_date")), "start_date"),
                exp.alias_(exp.Max(this=exp.column("end_date")), "end_date"),
            )
            .from_(numbered_name, copy=False)
            .group_by(exp.column("person_id"), exp.column("era"), copy=False)
        )

    def statement(self, root: q.Relation) -> exp.Select:
        final = self.relation(root)
        query = exp.select(*self._cols(root.columns)).from_(final, copy=False)
        for name, body in self.ctes:
            materialized = False if self.dialect.inline_ctes else None
            query = query.with_(name, as_=body, materialized=materialized, copy=False)
        return query


def render(expression: exp.Expression, dialect: SqlDialect) -> str:
    try:
        return expression.sql(dialect=dialect.sqlglot_name, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        raise UnsupportedFeatureError(
            f"the query is unsupported on {dialect.name}: {exc}"
        ) from None


def select_sql(root: q.Relation, dialect: SqlDialect) -> str:
    """One SELECT statement returning ``root``'s columns."""
    return render(Compiler(dialect).statement(root), dialect)


def insert_sql(root: q.Relation, table: str, columns: tuple[str, ...], dialect: SqlDialect) -> str:
    """``INSERT INTO table (columns) WITH … SELECT …`` of ``root``'s rows."""
    if len(columns) != len(root.columns):
        raise ValueError(f"{table} takes {columns}, the query gives {root.columns}")
    select = Compiler(dialect).statement(root)
    return render(exp.insert(select, table, columns=list(columns), copy=False), dialect)


def parse_check(sql: str, dialect: SqlDialect) -> None:
    """Parse rendered SQL back (a test aid: the text is valid for the dialect)."""
    sqlglot.parse_one(sql, read=dialect.sqlglot_name)
