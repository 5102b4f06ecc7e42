"""Engines run query-model relations: SQL on a CDW backend, Spark, or the reference engine.

Every engine answers ``rows(relation)`` (dicts keyed by the relation's columns) and
``write_cohort``; the cohort layer talks only to this interface.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol

from pmhub.cdm.backends import Backend
from pmhub.cohorts import query_model as q
from pmhub.cohorts import sql
from pmhub.cohorts.reference import ReferenceEngine, Row

COHORT_COLUMNS = ("cohort_definition_id", "subject_id", "cohort_start_date", "cohort_end_date")
CohortRow = tuple[int, int, dt.date, dt.date]


class Engine(Protocol):
    name: str

    def rows(self, relation: q.Relation) -> list[Row]: ...

    def write_cohort(self, definition_id: int, relation: q.Relation) -> int:
        """Replace the cohort's rows in the OMOP cohort table; return how many."""
        ...

    def cohort_rows(self, definition_id: int) -> list[CohortRow]: ...


def _as_date(value: Any) -> dt.date:
    # PostgreSQL and DuckDB give dates; a DATE through Spark may come back as datetime
    return value.date() if isinstance(value, dt.datetime) else value


def cohort_tuple(row: Mapping[str, Any] | tuple[Any, ...]) -> CohortRow:
    values = tuple(row[c] for c in COHORT_COLUMNS) if isinstance(row, Mapping) else tuple(row)
    return (int(values[0]), int(values[1]), _as_date(values[2]), _as_date(values[3]))


class SqlEngine:
    """A DuckDB or PostgreSQL CDW through its pmhub backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.dialect = sql.DIALECTS[backend.dialect.name]
        self.name = self.dialect.name

    def rows(self, relation: q.Relation) -> list[Row]:
        text = sql.select_sql(relation, self.dialect)
        with self.backend.transaction():
            self._setup()
            rows = self.backend.fetchall(text)
        return [dict(zip(relation.columns, r, strict=True)) for r in rows]

    def _setup(self) -> None:
        for statement in self.dialect.setup:
            self.backend.execute(statement)

    def write_cohort(self, definition_id: int, relation: q.Relation) -> int:
        insert = sql.insert_sql(relation, "cohort", COHORT_COLUMNS, self.dialect)
        with self.backend.transaction():
            self._setup()
            self.backend.execute(
                "DELETE FROM cohort WHERE cohort_definition_id = ?", [definition_id]
            )
            self.backend.execute(insert)
            return int(
                self.backend.fetchall(
                    "SELECT count(*) FROM cohort WHERE cohort_definition_id = ?", [definition_id]
                )[0][0]
            )

    def cohort_rows(self, definition_id: int) -> list[CohortRow]:
        rows = self.backend.fetchall(
            "SELECT cohort_definition_id, subject_id, cohort_start_date, cohort_end_date "
            "FROM cohort WHERE cohort_definition_id = ? ORDER BY 2, 3, 4",
            [definition_id],
        )
        return [cohort_tuple(r) for r in rows]


class PythonEngine:
    """The reference engine over in-memory tables; its cohort table is a list."""

    name = "reference"

    def __init__(self, tables: Mapping[str, list[Row]]) -> None:
        self.tables = dict(tables)
        self.tables.setdefault("cohort", [])

    def rows(self, relation: q.Relation) -> list[Row]:
        return ReferenceEngine(self.tables).rows(relation)

    def write_cohort(self, definition_id: int, relation: q.Relation) -> int:
        new = [dict(zip(COHORT_COLUMNS, r.values(), strict=True)) for r in self.rows(relation)]
        kept = [r for r in self.tables["cohort"] if r["cohort_definition_id"] != definition_id]
        self.tables["cohort"] = kept + new
        return len(new)

    def cohort_rows(self, definition_id: int) -> list[CohortRow]:
        return sorted(
            cohort_tuple(r)
            for r in self.tables["cohort"]
            if r["cohort_definition_id"] == definition_id
        )
