"""Spark as a cohort engine, for sites whose CDW outgrows one machine.

The CDM tables are Spark tables or views in the session (for example, Parquet files
registered with :func:`register_parquet`); the query model renders as Spark SQL. The
``cohort`` table is a session view that :meth:`SparkEngine.write_cohort` replaces.
PySpark is an optional extra (``pip install 'pmhub[spark]'``).

A Spark *site* (``spark:///path/to/folder`` in the site registry) is a folder holding
each OMOP table as ``<table>.parquet`` (a file, or a folder of part files as Spark
writes them); :func:`export_parquet` writes one from a DuckDB or PostgreSQL CDW.
:func:`open_folder` reads it in a local session, and the cohort table persists as
``cohort.parquet`` in the folder (rewritten beside it and swapped in, so a failed write
leaves the old one).
"""

from __future__ import annotations

import atexit
import errno
import functools
import importlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pmhub import extras, outputs
from pmhub.cdm import spec as cdm_spec
from pmhub.cdm.backends import Backend
from pmhub.cohorts import provenance as pv
from pmhub.cohorts import query_model as q
from pmhub.cohorts import sql
from pmhub.cohorts.engines import COHORT_COLUMNS, CohortRow, cohort_tuple
from pmhub.cohorts.errors import UnsupportedFeatureError
from pmhub.cohorts.reference import Row
from pmhub.errors import CdwNotInitialisedError

COHORT_DDL = (
    "cohort_definition_id INT, subject_id INT, cohort_start_date DATE, cohort_end_date DATE"
)
DEFINITION_TYPES = ("INT", "STRING", "STRING", "INT", "STRING", "INT", "DATE")
DEFINITION_DDL = ", ".join(f"{c} {t}" for c, t in zip(pv.COLUMNS, DEFINITION_TYPES, strict=True))


@functools.cache
def _warehouse() -> str:
    """Spark's warehouse folder: a temporary one, not ./spark-warehouse wherever pmhub runs."""
    folder = tempfile.mkdtemp(prefix="pmhub-spark-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def local_session(cores: int = 1) -> Any:
    """A small local Spark session: no UI, few shuffle partitions, UTC dates."""
    extras.require("pyspark")  # a MissingExtraError naming the extra when absent
    pyspark_sql: Any = importlib.import_module("pyspark.sql")
    session = (
        pyspark_sql.SparkSession.builder.master(f"local[{cores}]")
        .appName("pmhub-cohorts")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")  # no stage bars over the CLI output
        .config("spark.sql.warehouse.dir", _warehouse())
        .config("spark.sql.shuffle.partitions", str(cores))
        .config("spark.default.parallelism", str(cores))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.ansi.enabled", "true")
        .config("spark.driver.memory", "1g")
        # small local sessions: the JIT's quick tier and a serial GC start fastest
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def register_arrow(session: Any, name: str, table: pa.Table) -> None:
    session.createDataFrame(table).createOrReplaceTempView(name)


# what the cohort verbs read; a Spark site must hold at least these tables
REQUIRED = ("person", "observation_period", "concept", "concept_ancestor")


def register_parquet(session: Any, folder: Path) -> list[str]:
    """Each ``<table>.parquet`` in ``folder`` becomes a view named after the table."""
    names = []
    for path in sorted(folder.glob("*.parquet")):
        session.read.parquet(str(path)).createOrReplaceTempView(path.stem.lower())
        names.append(path.stem.lower())
    return names


def _typed(frame: Any, columns: tuple[str, ...], types: tuple[str, ...]) -> Any:
    """A table with the OMOP types, whoever wrote the Parquet file."""
    return frame.selectExpr(
        *(f"CAST({c} AS {t}) AS {c}" for c, t in zip(columns, types, strict=True))
    )


def _cohort_view(frame: Any) -> Any:
    return _typed(frame, COHORT_COLUMNS, _COHORT_TYPES)


def _definition_view(frame: Any) -> Any:
    return _typed(frame, pv.COLUMNS, DEFINITION_TYPES)


_COHORT_TYPES = ("INT", "INT", "DATE", "DATE")


def require_ansi(session: Any) -> None:
    """Refuse a session in Spark's legacy (non-ANSI) mode: there an overflowing sum or
    date, or a failed cast, gives NULL or a wrapped value where DuckDB and PostgreSQL
    raise, so a cohort could differ without a word."""
    ansi = str(session.conf.get("spark.sql.ansi.enabled", "false")).strip().lower()
    if ansi != "true":
        raise UnsupportedFeatureError(
            "Spark SQL without ANSI mode is unsupported on spark: overflows and failed "
            "casts would give NULL or wrapped values where DuckDB and PostgreSQL stop",
            hint="Set spark.sql.ansi.enabled=true in the session (pmhub's own sessions do).",
        )


class SparkEngine:
    """Spark SQL over the session's OMOP views. With ``cohort_path``, the cohort table
    persists there and ``cohort_definition`` beside it (``cohort_definition.parquet``):
    the definition's record is swapped in before its rows, so a run cut between the two
    leaves a record whose rerun makes the rows."""

    name = "spark"

    def __init__(self, session: Any, cohort_path: Path | None = None) -> None:
        self.session = session
        self.dialect = sql.SPARK
        require_ansi(session)
        self.cohort_path = cohort_path  # where the cohort table persists, if anywhere
        self.definition_path = (
            cohort_path.with_name("cohort_definition.parquet") if cohort_path else None
        )
        self._view("cohort", cohort_path, _cohort_view, COHORT_DDL)
        self._view("cohort_definition", self.definition_path, _definition_view, DEFINITION_DDL)

    def _view(self, name: str, path: Path | None, typed: Any, ddl: str) -> None:
        if path is not None and path.exists():
            typed(self.session.read.parquet(str(path))).createOrReplaceTempView(name)
        elif not self.session.catalog.tableExists(name):
            self.session.createDataFrame([], ddl).createOrReplaceTempView(name)

    def rows(self, relation: q.Relation) -> list[Row]:
        text = sql.select_sql(relation, self.dialect)
        return [r.asDict() for r in self.session.sql(text).collect()]

    def holding(self, definition_id: int) -> tuple[pv.Recorded | None, int]:
        found = (
            self.session.table("cohort_definition")
            .where(f"cohort_definition_id = {int(definition_id)}")
            .orderBy("cohort_initiation_date", ascending=False)
            .select("cohort_definition_name", "cohort_definition_syntax")
            .collect()
        )
        held = self.session.table("cohort").where(f"cohort_definition_id = {int(definition_id)}")
        return (pv.read(found[0][0], found[0][1]) if found else None), int(held.count())

    def write_cohort(self, provenance: pv.Provenance, relation: q.Relation) -> int:
        definition_id = int(provenance.definition_id)
        if pv.admit(provenance, *self.holding(definition_id)):
            self._record(provenance)
        query = self.session.sql(sql.select_sql(relation, self.dialect)).toDF(*COHORT_COLUMNS)
        new = query.localCheckpoint(eager=True)  # computed once, not again at each read
        # ``kept`` holds the old view's plan, so replacing the view cannot make it read itself
        kept = self.session.table("cohort").where(f"cohort_definition_id <> {definition_id}")
        kept.unionByName(new).createOrReplaceTempView("cohort")
        if self.cohort_path is not None:
            self._persist("cohort", self.cohort_path, _cohort_view)
        return int(new.count())

    def _record(self, provenance: pv.Provenance) -> None:
        row = self.session.createDataFrame([provenance.row()], DEFINITION_DDL)
        others = self.session.table("cohort_definition").where(
            f"cohort_definition_id <> {int(provenance.definition_id)}"
        )
        others.unionByName(row).localCheckpoint(eager=True).createOrReplaceTempView(
            "cohort_definition"
        )
        if self.definition_path is not None:
            self._persist("cohort_definition", self.definition_path, _definition_view)

    def _persist(self, view: str, path: Path, typed: Any) -> None:
        """Write the view beside ``path``, swap it in, and read it from there."""
        token = uuid.uuid4().hex[:8]
        fresh, old = path.with_name(f".{view}-{token}.parquet"), path.with_name(f".old-{token}")
        self.session.table(view).write.parquet(str(fresh))
        if path.exists():
            path.rename(old)
        fresh.rename(path)
        typed(self.session.read.parquet(str(path))).createOrReplaceTempView(view)
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()

    def cohort_rows(self, definition_id: int) -> list[CohortRow]:
        rows = (
            self.session.table("cohort")
            .where(f"cohort_definition_id = {int(definition_id)}")
            .collect()
        )
        return sorted(cohort_tuple(tuple(r)) for r in rows)


@contextmanager
def open_folder(folder: Path, cores: int = 1) -> Iterator[SparkEngine]:
    """A Spark engine over a site's Parquet folder, in a session of its own (its views
    do not mix with another site's)."""
    if not folder.is_dir():
        raise CdwNotInitialisedError(f"the Spark site folder {folder} does not exist")
    present = {p.stem.lower() for p in folder.glob("*.parquet")}
    missing = [t for t in REQUIRED if t not in present]
    if missing:
        raise CdwNotInitialisedError(
            f"the Spark site folder {folder} lacks {', '.join(t + '.parquet' for t in missing)}",
            hint="Write the folder from an initialised CDW with `pmhub cohort export-parquet`.",
        )
    session = local_session(cores).newSession()
    register_parquet(session, folder)
    try:
        yield SparkEngine(session, cohort_path=folder / "cohort.parquet")
    finally:
        for name in session.catalog.listTables():
            if name.isTemporary:
                session.catalog.dropTempView(name.name)


def export_parquet(backend: Backend, folder: Path) -> dict[str, int]:
    """Write every OMOP table of a CDW as ``folder/<table>.parquet``; rows per table.
    DuckDB streams each table to the file itself; other backends go through Arrow. Each
    file is written beside its place and renamed into it (:mod:`pmhub.outputs`)."""
    outputs.make_folder(folder, what="Parquet export folder")
    written = {}
    present = backend.tables()
    for table in cdm_spec.tables():
        if table not in present:
            continue
        path = folder / f"{table}.parquet"
        if path.is_dir():  # part files that Spark wrote: one file takes their place
            shutil.rmtree(path)
        with outputs.replacing(path, what="Parquet export") as fresh:
            _export_table(backend, table, fresh)
        written[table] = pq.ParquetFile(path).metadata.num_rows
    return written


def _export_table(backend: Backend, table: str, path: Path) -> None:
    if backend.dialect.name != "duckdb":
        pq.write_table(backend.fetch_arrow(f"SELECT * FROM {table}"), path)
        return
    target = str(path).replace("'", "''")
    try:
        backend.execute(f"COPY (SELECT * FROM {table}) TO '{target}' (FORMAT parquet)")
    except duckdb.IOException as exc:  # DuckDB's own writes fail as its error, not OSError
        raise OSError(errno.EIO, str(exc).splitlines()[0]) from exc
