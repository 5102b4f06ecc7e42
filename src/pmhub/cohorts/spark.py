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
import functools
import importlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pmhub import extras
from pmhub.cdm import spec as cdm_spec
from pmhub.cdm.backends import Backend
from pmhub.cohorts import query_model as q
from pmhub.cohorts import sql
from pmhub.cohorts.engines import COHORT_COLUMNS, CohortRow, cohort_tuple
from pmhub.cohorts.errors import UnsupportedFeatureError
from pmhub.cohorts.reference import Row
from pmhub.errors import CdwNotInitialisedError

COHORT_DDL = (
    "cohort_definition_id INT, subject_id INT, cohort_start_date DATE, cohort_end_date DATE"
)


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


def _cohort_view(frame: Any) -> Any:
    """The cohort table with the OMOP types, whoever wrote the Parquet file."""
    casts = [f"CAST({c} AS {t})" for c, t in zip(COHORT_COLUMNS, _COHORT_TYPES, strict=True)]
    return frame.selectExpr(
        *(f"{cast} AS {c}" for cast, c in zip(casts, COHORT_COLUMNS, strict=True))
    )


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
    name = "spark"

    def __init__(self, session: Any, cohort_path: Path | None = None) -> None:
        self.session = session
        self.dialect = sql.SPARK
        require_ansi(session)
        self.cohort_path = cohort_path  # where the cohort table persists, if anywhere
        if cohort_path is not None and cohort_path.exists():
            _cohort_view(session.read.parquet(str(cohort_path))).createOrReplaceTempView("cohort")
        elif not session.catalog.tableExists("cohort"):
            session.createDataFrame([], COHORT_DDL).createOrReplaceTempView("cohort")

    def rows(self, relation: q.Relation) -> list[Row]:
        text = sql.select_sql(relation, self.dialect)
        return [r.asDict() for r in self.session.sql(text).collect()]

    def write_cohort(self, definition_id: int, relation: q.Relation) -> int:
        query = self.session.sql(sql.select_sql(relation, self.dialect)).toDF(*COHORT_COLUMNS)
        new = query.localCheckpoint(eager=True)  # computed once, not again at each read
        # ``kept`` holds the old view's plan, so replacing the view cannot make it read itself
        kept = self.session.table("cohort").where(f"cohort_definition_id <> {int(definition_id)}")
        kept.unionByName(new).createOrReplaceTempView("cohort")
        if self.cohort_path is not None:
            self._persist(self.cohort_path)
        return int(new.count())

    def _persist(self, path: Path) -> None:
        """Write the cohort view beside ``path``, swap it in, and read it from there."""
        token = uuid.uuid4().hex[:8]
        fresh, old = path.with_name(f".cohort-{token}.parquet"), path.with_name(f".old-{token}")
        self.session.table("cohort").write.parquet(str(fresh))
        if path.exists():
            path.rename(old)
        fresh.rename(path)
        _cohort_view(self.session.read.parquet(str(path))).createOrReplaceTempView("cohort")
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
    DuckDB streams each table to the file itself; other backends go through Arrow."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    present = backend.tables()
    for table in cdm_spec.tables():
        if table not in present:
            continue
        path = folder / f"{table}.parquet"
        fresh = path.with_name(f".{table}-{uuid.uuid4().hex[:8]}.parquet")
        if backend.dialect.name == "duckdb":
            target = str(fresh).replace("'", "''")
            backend.execute(f"COPY (SELECT * FROM {table}) TO '{target}' (FORMAT parquet)")
        else:
            pq.write_table(backend.fetch_arrow(f"SELECT * FROM {table}"), fresh)
        if path.is_dir():
            shutil.rmtree(path)
        fresh.replace(path)
        written[table] = pq.ParquetFile(path).metadata.num_rows
    return written
