"""Rendering per dialect: golden fragments, and refusals instead of different results."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import sqlglot

from pmhub.cohorts import query_model as q
from pmhub.cohorts import sql
from pmhub.cohorts.errors import QueryModelError, UnsupportedFeatureError

EVENTS = q.Table("events", ("person_id", "start_date", "end_date"))


def shifted() -> q.Relation:
    return q.Select(
        EVENTS,
        (
            ("person_id", q.Col("person_id")),
            ("start_date", q.AddDays(q.Col("start_date"), q.Lit(30, "int"))),
            ("end_date", q.Least((q.Col("end_date"), q.Lit(dt.date(2020, 1, 1), "date")))),
        ),
    )


@pytest.mark.parametrize(
    ("dialect", "fragments"),
    [
        (sql.DUCKDB, ["(start_date + 30)", "LEAST(end_date, CAST('2020-01-01' AS DATE))"]),
        (sql.POSTGRES, ["(start_date + 30)", "AS NOT MATERIALIZED"]),
        (sql.SPARK, ["DATE_ADD(start_date, 30)", "LEAST(end_date"]),
    ],
)
def test_each_dialect_renders_its_own_date_arithmetic(
    dialect: sql.SqlDialect, fragments: list[str]
) -> None:
    text = sql.select_sql(q.Eras(shifted(), 5), dialect)
    for fragment in fragments:
        assert fragment in text
    sqlglot.parse_one(text, read=dialect.sqlglot_name)  # the text parses back


def test_a_node_used_twice_is_rendered_once() -> None:
    events = shifted()
    left = q.rename(events, {c: f"l_{c}" for c in events.columns})
    joined = q.Join(left, events, q.eq(q.Col("l_person_id"), q.Col("person_id")))
    text = sql.select_sql(joined, sql.DUCKDB)
    assert text.count("FROM events") == 1


def test_a_backend_without_a_feature_refuses_instead_of_differing() -> None:
    limited = dataclasses.replace(
        sql.DUCKDB, name="limited", unsupported={"window functions": "no OVER clause"}
    )
    with pytest.raises(UnsupportedFeatureError, match="window functions is unsupported on limited"):
        sql.select_sql(q.Eras(EVENTS, 0), limited)
    sql.select_sql(shifted(), limited)  # what it supports still renders


@pytest.mark.parametrize(
    "build",
    [
        lambda: q.Select(EVENTS, (("x", q.Col("nope")),)),
        lambda: q.Join(EVENTS, EVENTS, q.Lit(True, "bool")),
        lambda: q.UnionAll((EVENTS, q.keep(EVENTS, "person_id"))),
        lambda: q.InValues(q.Col("person_id"), ()),
        lambda: q.Lit("2020", "date"),
        lambda: q.Lit(True, "int"),
        lambda: q.Eras(EVENTS, -1),
        lambda: q.RowNumber(EVENTS, ("person_id",), (), "rn"),
    ],
)
def test_nodes_validate_themselves(build: object) -> None:
    with pytest.raises(QueryModelError):
        build()  # type: ignore[operator]
