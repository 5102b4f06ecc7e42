"""Where the ETL runs: a DuckDB work engine next to the target CDW.

Staging, validation and the mapping to OMOP are set-based SQL in DuckDB. On a DuckDB CDW
the work engine *is* the CDW's connection, so staged rows reach the CDM tables by
``INSERT … SELECT`` without leaving the engine. On PostgreSQL the work engine is an
embedded DuckDB (spilling to disk past its memory limit); vocabulary look-ups run inside
PostgreSQL on the small set of distinct codes, and results reach the CDM tables through
``COPY`` (``Backend.insert_batches``). One SQL dialect for the transform, and no row ever
travels one at a time.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pmhub.cdm import ddl
from pmhub.cdm.backends import Backend
from pmhub.cdm.backends.duckdb import DuckDBBackend
from pmhub.cdm.ddl import quote
from pmhub.cdm.spec import arrow_schema, table

STAGE = "pmhub_stage"
# DuckDB's buffers, in bytes, so that the import process stays under 4 GB at its peak:
# less beside PostgreSQL, where the COPY batches live outside DuckDB. (At 100k patients a
# 3 GB limit on a DuckDB CDW spilled 0.3–1.6 GB of stage data to disk; 3.5 GB spills none.)
# On a small machine DuckDB gets at most half its memory (``memory_limit``).
MEMORY_LIMIT = 3_500_000_000
MEMORY_LIMIT_BESIDE_POSTGRES = 3_000_000_000
BATCH_ROWS = 200_000
REBUILD_BELOW = 5_000_000  # rows in a CDM table under which PostgreSQL rebuilds indexes
PROFILE = os.environ.get("PMHUB_INGEST_PROFILE") == "1"
PLANS = os.environ.get("PMHUB_INGEST_PLANS")  # a folder for every statement's plan


class Engine:
    def __init__(self, target: Backend, workdir: Path | None = None) -> None:
        self.target = target
        self._tmp = tempfile.TemporaryDirectory(prefix="pmhub-ingest-")
        self.workdir = workdir or Path(self._tmp.name)
        self.same = isinstance(target, DuckDBBackend)
        self._statements = 0
        if PLANS:
            Path(PLANS).mkdir(parents=True, exist_ok=True)
        if isinstance(target, DuckDBBackend):
            self.work = target.con
        else:
            self.work = duckdb.connect(":memory:")
        self.work.execute(f"SET temp_directory = '{self.workdir / 'spill'}'")
        limit = memory_limit(beside_postgres=not self.same)
        self.work.execute(f"SET memory_limit = '{limit}B'")
        # Buffer blocks from a pool the database keeps (DuckDB's block allocator): else a
        # freed block's memory goes back to the system and the next block faults its pages
        # in again. At 100k patients: a fifth fewer page faults, 1.3 s less system time. The
        # pool lives as long as the database instance (for a DuckDB CDW, until its
        # connection closes); a larger pool set before is kept, since it cannot shrink.
        with contextlib.suppress(duckdb.Error):
            self.work.execute(f"SET block_allocator_memory = '{limit}B'")
        # A DuckDB CDW writes its new rows without trying run-length encoding: the other
        # methods (bit packing's constant and frame-of-reference modes) store the CDM
        # tables in as many blocks (at 100k patients, 0.3 % more), and the inserts take
        # about a tenth less CPU. Restored when the load ends.
        self._compression_before = ""
        if self.same:
            self._compression_before = str(
                self.scalar("SELECT current_setting('disabled_compression_methods')")
            )
            methods = {m for m in self._compression_before.lower().split(",") if m} | {"rle"}
            self._compression(",".join(sorted(methods)))
        # line numbers and ids follow the order rows are read in (stage.py, clinical.py)
        self.work.execute("SET preserve_insertion_order = true")
        # Stage tables live in an attached in-memory database: no WAL writes for scratch
        # data, nothing left in the CDW file if the process dies, spilling to
        # temp_directory when large.
        self.work.execute(f"DETACH DATABASE IF EXISTS {STAGE}")
        self.work.execute(f"ATTACH ':memory:' AS {STAGE}")
        _macros(self.work)

    def unordered(self) -> None:
        """After staging: ids and lines are computed, so the engine may write rows in any
        order (DuckDB then streams inserts without keeping the order of their source)."""
        self.work.execute("SET preserve_insertion_order = false")

    @contextlib.contextmanager
    def ordered(self) -> Iterator[None]:
        """Within: rows are written in the order they are read (a late read of a file
        whose lines are numbered by position); the setting before is restored after."""
        before = self.scalar("SELECT current_setting('preserve_insertion_order')")
        self.work.execute("SET preserve_insertion_order = true")
        try:
            yield
        finally:
            self.work.execute(f"SET preserve_insertion_order = {str(bool(before)).lower()}")

    def close(self) -> None:
        try:
            self.work.execute(f"DETACH DATABASE IF EXISTS {STAGE}")
        finally:
            if not self.same:
                self.work.close()
            else:  # the CDW's connection goes on: give it back its settings
                self.work.execute("SET preserve_insertion_order = true")
                self._compression(self._compression_before)
            self._tmp.cleanup()

    def _compression(self, disabled: str) -> None:
        """Set DuckDB's disabled compression methods (a comma-separated list)."""
        quoted = disabled.replace("'", "''")
        self.work.execute(f"SET disabled_compression_methods = '{quoted}'")

    # --- work engine ----------------------------------------------------------------

    def run(self, sql: str, params: list[Any] | None = None) -> None:
        started = time.perf_counter()
        cpu0 = time.process_time()
        if PLANS:  # each statement's DuckDB plan with its operators' timings, numbered
            self._statements += 1
            target = str(Path(PLANS) / f"{self._statements:03d}.txt").replace("'", "''")
            self.work.execute("PRAGMA enable_profiling = 'query_tree'")
            self.work.execute(f"PRAGMA profiling_output = '{target}'")
        try:
            self.work.execute(sql, params or [])
        finally:
            if PLANS:
                self.work.execute("PRAGMA disable_profiling")
        if PROFILE:
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
            print(f"{wall:7.2f}s {cpu:6.2f}c {' '.join(sql.split())[:100]}")

    def rows(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.work.execute(sql, params or []).fetchall()

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        return self.rows(sql, params)[0][0]

    def has(self, name: str) -> bool:
        found = self.rows(
            "SELECT count(*) FROM information_schema.tables WHERE table_catalog = ? "
            "AND table_name = ?",
            [STAGE, name],
        )
        return bool(found[0][0])

    def columns(self, name: str) -> list[str]:
        """A stage table's (or view's) columns, in order: from binding an empty query,
        which costs a fraction of a millisecond (a look-up in information_schema reads
        the whole catalog, a few milliseconds each, fifty times a load)."""
        cursor = self.work.execute(f"SELECT * FROM {STAGE}.{quote(name)} LIMIT 0")
        return [str(d[0]) for d in cursor.description or []]

    def put(self, name: str, data: pa.Table) -> None:
        """A small Arrow table as a stage table."""
        view = f"__pmhub_put_{uuid.uuid4().hex[:8]}"
        self.work.register(view, data)
        try:
            self.run(f"CREATE OR REPLACE TABLE {STAGE}.{name} AS SELECT * FROM {view}")
        finally:
            self.work.unregister(view)

    # --- target ---------------------------------------------------------------------

    def target_lookup(self, name: str, data: pa.Table, sql: str) -> pa.Table:
        """Run ``sql`` in the target CDW with ``data`` available as table ``name``.

        Used for vocabulary and person-map look-ups: the keys are few (distinct codes,
        source patient ids), so they travel to the target and the answer travels back.
        """
        if self.same:
            self.work.register(name, data)
            try:
                result: pa.Table = self.work.sql(sql).to_arrow_table()
            finally:
                self.work.unregister(name)
            return result
        columns = ", ".join(f"{quote(f.name)} {_pg_type(f.type)}" for f in data.schema)
        self.target.execute(f"DROP TABLE IF EXISTS {name}")
        self.target.execute(f"CREATE TEMP TABLE {name} ({columns})")
        try:
            self.target.insert_batches(name, data.schema, data.to_batches(BATCH_ROWS))
            return self.target.fetch_arrow(sql)
        finally:
            self.target.execute(f"DROP TABLE IF EXISTS {name}")

    def publish(self, stage_table: str, cdm_table: str) -> int:
        """Append a stage table (spec columns) to a CDM table; return the rows written.

        Call inside a transaction. On PostgreSQL, while the table is small its secondary
        indexes are dropped and rebuilt around the insert (a B-tree build from a bulk
        load is far faster than row-by-row maintenance); a DuckDB CDW keeps no secondary
        indexes on clinical tables (``Dialect.clinical_indexes``).
        """
        spec = table(cdm_table)
        schema = arrow_schema(spec)
        names = ", ".join(quote(n) for n in schema.names)
        select = f"SELECT {names} FROM {STAGE}.{stage_table}"
        before = self.target.count(cdm_table)
        rebuild = not self.same and before < REBUILD_BELOW
        if rebuild:
            for statement in ddl.drop_indexes(spec):
                self.target.execute(statement)
        if self.same:
            self.run(f"INSERT INTO main.{cdm_table} ({names}) {select}")
            written = self.target.count(cdm_table) - before
        else:
            written = self.target.insert_batches(cdm_table, schema, self._batches(select, schema))
        if rebuild:
            for statement in ddl.create_indexes(spec, self.target.dialect):
                self.target.execute(statement)
        return written

    def copy_to_target(self, stage_table: str, target_table: str, schema: pa.Schema) -> int:
        names = ", ".join(quote(n) for n in schema.names)
        select = f"SELECT {names} FROM {STAGE}.{stage_table}"
        if self.same:
            self.run(f"INSERT INTO main.{target_table} ({names}) {select}")
            return int(self.scalar(f"SELECT count(*) FROM {STAGE}.{stage_table}"))
        return self.target.insert_batches(target_table, schema, self._batches(select, schema))

    def _batches(self, select: str, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """The query's rows as batches typed as ``schema`` (without its NOT NULL flags)."""
        reader = self.work.sql(select).to_arrow_reader(BATCH_ROWS)
        if reader is None:
            return
        plain = pa.schema([pa.field(f.name, f.type) for f in schema])
        for batch in reader:
            yield batch.cast(plain)


def memory_limit(*, beside_postgres: bool) -> int:
    """DuckDB's memory for a load, in bytes: its budget, or half the machine's memory
    when that is less."""
    budget = MEMORY_LIMIT_BESIDE_POSTGRES if beside_postgres else MEMORY_LIMIT
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # no sysconf: the budget as it is
        return budget
    return min(budget, physical // 2) if physical > 0 else budget


def _pg_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_integer(arrow_type):
        return "bigint"
    if pa.types.is_floating(arrow_type):
        return "double precision"
    return "text"


def _macros(con: duckdb.DuckDBPyConnection) -> None:
    """Parsing helpers for messy sources: ISO timestamps (Synthea's 2019-02-17T05:07:38Z),
    plain dates, and Korean compact forms (YYYYMMDD, with or without a time). Impossible
    dates such as 2023-02-30 parse to NULL, which validation reports."""
    # The value as it is first: most are clean, and a cast that succeeds on the raw text
    # gives what it gives on the trimmed text (the casts allow leading blanks, and refuse
    # trailing ones, which then take the trimmed path); the trim costs a copy of each text.
    # coalesce() evaluates an argument only for the rows still NULL, but an expression
    # written twice is computed once for every row before it (common subexpressions): the
    # two trims are spelt differently so that neither runs for a value the raw cast took.
    con.execute(
        "CREATE OR REPLACE TEMP MACRO pmhub_ts(x) AS coalesce(try_cast(x AS TIMESTAMP), "
        "try_cast(trim(x) AS TIMESTAMP), "
        "try_strptime(rtrim(ltrim(x)), ['%Y%m%d', '%Y%m%d%H%M%S', '%Y%m%d %H%M%S', "
        "'%Y%m%d %H:%M:%S', '%Y%m%d %H:%M', '%Y%m%d%H%M', '%Y.%m.%d', '%Y/%m/%d', "
        "'%Y/%m/%d %H:%M:%S']))"
    )
    con.execute(
        "CREATE OR REPLACE TEMP MACRO pmhub_num(x) AS "
        "coalesce(try_cast(x AS DOUBLE), try_cast(trim(x) AS DOUBLE))"
    )
