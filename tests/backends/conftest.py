"""Engines for the cross-backend spec suite: reference (Python), DuckDB, PostgreSQL, Spark.

Each engine's CDW (schema and shipped vocabulary) is built once per test session; a test
empties the clinical tables and loads its own little tables. PostgreSQL skips without
PMHUB_TEST_POSTGRES_URL; Spark skips without PySpark, and runs in one session on one
worker (``xdist_group``) because a JVM takes long to start on two cores.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pmhub import extras
from pmhub.cdm import schema
from pmhub.cdm.backends import Backend
from pmhub.cdm.backends.duckdb import DuckDBBackend
from pmhub.cohorts import service
from pmhub.cohorts.definition import Definition
from pmhub.cohorts.engines import Engine, PythonEngine, SqlEngine
from tests.backends import harness
from tests.conftest import postgres_url

VOCABULARY = {  # the vocabulary columns cohorts read
    "concept": ("concept_id", "vocabulary_id", "concept_code"),
    "concept_ancestor": ("ancestor_concept_id", "descendant_concept_id"),
    "source_to_concept_map": ("source_code", "source_vocabulary_id", "target_concept_id"),
}
SPARK = pytest.param(
    "spark", marks=[pytest.mark.xdist_group("spark"), pytest.mark.spark, pytest.mark.slow]
)
ENGINES = ("reference", "duckdb", pytest.param("postgresql", marks=pytest.mark.postgres))
# The Spark leg runs the cases marked ``@every_engine``: together they use every node of
# the query model, and a Spark query costs seconds where DuckDB needs milliseconds.
ALL_ENGINES = (*ENGINES, SPARK)
every_engine = pytest.mark.parametrize("site", ALL_ENGINES, indirect=True)


def _init(backend: Backend) -> Backend:
    schema.init_cdm(backend, source_name="spec", abbreviation="spec", holder="pmhub")
    return backend


@pytest.fixture(scope="session")
def duckdb_cdw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    backend = _init(DuckDBBackend(tmp_path_factory.mktemp("spec") / "spec.duckdb"))
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def postgresql_cdw() -> Iterator[Backend]:
    import psycopg

    from pmhub.cdm.backends.postgres import PostgresBackend

    url = postgres_url()
    name = f"pmhub_spec_{uuid.uuid4().hex[:12]}"
    backend = _init(PostgresBackend(url, name))
    yield backend
    backend.close()
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(scope="session")
def vocabulary(duckdb_cdw: Backend) -> dict[str, pa.Table]:
    return {name: duckdb_cdw.fetch_arrow(f"SELECT * FROM {name}") for name in VOCABULARY}


@pytest.fixture(scope="session")
def spark_session(vocabulary: dict[str, pa.Table]) -> Any:
    if not extras.available("pyspark"):
        pytest.skip("PySpark is not installed: pip install 'pmhub[spark]' to run the Spark leg")
    from pmhub.cohorts.spark import local_session, register_arrow

    session = local_session()
    for name, table in vocabulary.items():
        register_arrow(session, name, table.select(list(VOCABULARY[name])))
    return session


@dataclass
class SpecSite:
    """One engine with its CDW; ``load`` replaces the clinical data."""

    kind: str
    engine: Engine
    backend: Backend | None = None
    session: Any = None
    vocabulary: dict[str, pa.Table] = field(default_factory=dict)

    def load(self, text: str) -> None:
        self.load_tables(harness.parse(text))

    def load_tables(self, tables: harness.Rows) -> None:
        if self.kind == "reference":
            rows = {n: t.to_pylist() for n, t in self.vocabulary.items()}
            self.engine = PythonEngine({**rows, **tables})
        elif self.backend is not None:
            self._load_sql(tables)
        else:
            self._load_spark(tables)

    def _load_sql(self, tables: harness.Rows) -> None:
        assert self.backend is not None
        with self.backend.transaction():
            for name in harness.CLINICAL:
                self.backend.execute(f"DELETE FROM {name}")
            for name, rows in tables.items():
                data = harness.arrow(name, rows)
                self.backend.insert_batches(name, data.schema, data.to_batches())

    def _load_spark(self, tables: harness.Rows) -> None:
        from pmhub.cohorts.spark import SparkEngine, register_arrow

        for name in harness.CLINICAL:
            register_arrow(self.session, name, harness.arrow(name, tables.get(name, [])))
        self.engine = SparkEngine(self.session)

    def run(self, definition: Definition) -> list[tuple[int, dt.date, dt.date]]:
        """The cohort's rows (subject, start, end), generated through the engine."""
        service.generate(definition, self.engine, replace=True)  # one id, many definitions
        rows = self.engine.cohort_rows(definition.id)
        assert all(r[0] == definition.id for r in rows)
        return sorted((r[1], r[2], r[3]) for r in rows)


@pytest.fixture(params=ENGINES)
def site(request: pytest.FixtureRequest, vocabulary: dict[str, pa.Table]) -> SpecSite:
    return make_site(request, request.param, vocabulary)


def make_site(
    request: pytest.FixtureRequest, kind: str, vocabulary: dict[str, pa.Table]
) -> SpecSite:
    if kind == "reference":
        return SpecSite(kind, PythonEngine({}), vocabulary=vocabulary)
    if kind == "spark":
        session = request.getfixturevalue("spark_session")
        return SpecSite(kind, PythonEngine({}), session=session)
    backend: Backend = request.getfixturevalue(f"{kind}_cdw")
    return SpecSite(kind, SqlEngine(backend), backend=backend)


@pytest.fixture
def tmp_cdw(tmp_path: Path) -> Iterator[Backend]:
    backend = _init(DuckDBBackend(tmp_path / "cdw.duckdb"))
    yield backend
    backend.close()
