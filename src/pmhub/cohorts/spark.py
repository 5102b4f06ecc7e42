"""Spark as a cohort engine, for sites whose CDW outgrows one machine.

The CDM tables are Spark tables or views in the session (for example, Parquet files
registered with :func:`register_parquet`); the query model renders as Spark SQL. The
``cohort`` table is a session view that :meth:`SparkEngine.write_cohort` replaces.
PySpark is an optional extra (``pip install 'pmhub[spark]'``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pyarrow as pa

from pmhub import extras
from pmhub.cohorts import query_model as q
from pmhub.cohorts import sql
from pmhub.cohorts.engines import COHORT_COLUMNS, CohortRow, cohort_tuple
from pmhub.cohorts.reference import Row

COHORT_DDL = (
    "cohort_definition_id INT, subject_id INT, cohort_start_date DATE, cohort_end_date DATE"
)


def local_session(cores: int = 1) -> Any:
    """A small local Spark session: no UI, few shuffle partitions, UTC dates."""
    extras.require("pyspark")  # a MissingExtraError naming the extra when absent
    pyspark_sql: Any = importlib.import_module("pyspark.sql")
    return (
        pyspark_sql.SparkSession.builder.master(f"local[{cores}]")
        .appName("pmhub-cohorts")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(cores))
        .config("spark.default.parallelism", str(cores))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.ansi.enabled", "true")
        .config("spark.driver.memory", "1g")
        # small local sessions: the JIT's quick tier and a serial GC start fastest
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .getOrCreate()
    )


def register_arrow(session: Any, name: str, table: pa.Table) -> None:
    session.createDataFrame(table).createOrReplaceTempView(name)


def register_parquet(session: Any, folder: Path) -> list[str]:
    """Each ``<table>.parquet`` in ``folder`` becomes a view named after the table."""
    names = []
    for path in sorted(folder.glob("*.parquet")):
        session.read.parquet(str(path)).createOrReplaceTempView(path.stem.lower())
        names.append(path.stem.lower())
    return names


class SparkEngine:
    name = "spark"

    def __init__(self, session: Any) -> None:
        self.session = session
        self.dialect = sql.SPARK
        if not session.catalog.tableExists("cohort"):
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
        return int(new.count())

    def cohort_rows(self, definition_id: int) -> list[CohortRow]:
        rows = (
            self.session.table("cohort")
            .where(f"cohort_definition_id = {int(definition_id)}")
            .collect()
        )
        return sorted(cohort_tuple(tuple(r)) for r in rows)
