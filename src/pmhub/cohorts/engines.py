"""Engines run query-model relations: SQL on a CDW backend, Spark, or the reference engine.

Every engine answers ``rows(relation)`` (dicts keyed by the relation's columns) and
``write_cohort``; the cohort layer talks only to this interface. ``write_cohort`` records
the definition in ``cohort_definition`` with its rows, after :func:`provenance.admit`
has let it take the id (see :mod:`pmhub.cohorts.provenance`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pmhub.cdm.backends import Backend
from pmhub.cohorts import provenance as pv
from pmhub.cohorts import query_model as q
from pmhub.cohorts import sql
from pmhub.cohorts.reference import ReferenceEngine, Row

COHORT_COLUMNS = ("cohort_definition_id", "subject_id", "cohort_start_date", "cohort_end_date")
LOCK_CLASS = 0x504D  # PostgreSQL advisory locks of pmhub's cohort writes: (LOCK_CLASS, id)
CohortRow = tuple[int, int, dt.date, dt.date]


class Engine(Protocol):
    name: str

    def rows(self, relation: q.Relation) -> list[Row]: ...

    def write_cohort(self, provenance: pv.Provenance, relation: q.Relation) -> int:
        """Replace the cohort's rows in the OMOP cohort table and record the definition
        that made them, if :func:`provenance.admit` lets it; return how many rows."""
        ...

    def holding(self, definition_id: int) -> tuple[pv.Recorded | None, int]:
        """What ``cohort_definition`` records under the id (None: nothing), and how many
        cohort rows the id holds."""
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

    def write_cohort(self, provenance: pv.Provenance, relation: q.Relation) -> int:
        definition_id = provenance.definition_id
        insert = sql.insert_sql(relation, "cohort", COHORT_COLUMNS, self.dialect)
        with self.backend.transaction():
            self._setup()
            if self.backend.dialect.name == "postgresql":
                # two runs under one id serialise here: each sees the other's record
                self.backend.execute(
                    "SELECT pg_advisory_xact_lock(CAST(? AS integer), CAST(? AS integer))",
                    [LOCK_CLASS, definition_id],
                )
            if pv.admit(provenance, *self.holding(definition_id)):
                self._record(provenance)
            self.backend.execute(
                "DELETE FROM cohort WHERE cohort_definition_id = ?", [definition_id]
            )
            self.backend.execute(insert)
            return self._count(definition_id)

    def _count(self, definition_id: int) -> int:
        return int(
            self.backend.fetchall(
                "SELECT count(*) FROM cohort WHERE cohort_definition_id = ?", [definition_id]
            )[0][0]
        )

    def holding(self, definition_id: int) -> tuple[pv.Recorded | None, int]:
        found = self.backend.fetchall(
            "SELECT cohort_definition_name, cohort_definition_syntax FROM cohort_definition "
            "WHERE cohort_definition_id = ? ORDER BY cohort_initiation_date DESC NULLS LAST",
            [definition_id],
        )
        return (pv.read(*found[0]) if found else None), self._count(definition_id)

    def _record(self, provenance: pv.Provenance) -> None:
        self.backend.execute(
            "DELETE FROM cohort_definition WHERE cohort_definition_id = ?",
            [provenance.definition_id],
        )
        marks = ", ".join("?" for _ in pv.COLUMNS)
        self.backend.execute(
            f"INSERT INTO cohort_definition ({', '.join(pv.COLUMNS)}) VALUES ({marks})",
            list(provenance.row()),
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
        self.tables.setdefault("cohort_definition", [])

    def rows(self, relation: q.Relation) -> list[Row]:
        return ReferenceEngine(self.tables).rows(relation)

    def write_cohort(self, provenance: pv.Provenance, relation: q.Relation) -> int:
        definition_id = provenance.definition_id
        if pv.admit(provenance, *self.holding(definition_id)):
            self.tables["cohort_definition"] = [
                *self._definitions(lambda i: i != definition_id),
                dict(zip(pv.COLUMNS, provenance.row(), strict=True)),
            ]
        new = [dict(zip(COHORT_COLUMNS, r.values(), strict=True)) for r in self.rows(relation)]
        kept = [r for r in self.tables["cohort"] if r["cohort_definition_id"] != definition_id]
        self.tables["cohort"] = kept + new
        return len(new)

    def _definitions(self, keep: Callable[[int], bool]) -> list[Row]:
        rows = self.tables.get("cohort_definition", [])
        return [r for r in rows if keep(r["cohort_definition_id"])]

    def holding(self, definition_id: int) -> tuple[pv.Recorded | None, int]:
        found = self._definitions(lambda i: i == definition_id)
        held = sum(1 for r in self.tables["cohort"] if r["cohort_definition_id"] == definition_id)
        if not found:
            return None, held
        last = found[-1]
        return pv.read(last["cohort_definition_name"], last["cohort_definition_syntax"]), held

    def cohort_rows(self, definition_id: int) -> list[CohortRow]:
        return sorted(
            cohort_tuple(r)
            for r in self.tables["cohort"]
            if r["cohort_definition_id"] == definition_id
        )
