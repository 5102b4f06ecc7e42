"""DuckDB: the default CDW, one database file per site."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pmhub.cdm import spec as cdm_spec
from pmhub.cdm.backends.base import Backend, ByteProgress, ColumnInfo, CsvSource
from pmhub.cdm.ddl import DUCKDB, quote
from pmhub.errors import CdwError, CdwUnreachableError


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@contextlib.contextmanager
def _polling(con: duckdb.DuckDBPyConnection, report: Callable[[float], None]) -> Iterator[None]:
    """Report DuckDB's query progress (percent) from a side thread while a query runs."""
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.2):
            percent = con.query_progress()
            if percent >= 0:
                report(percent)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


class DuckDBBackend(Backend):
    dialect = DUCKDB

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.url = f"duckdb:///{path}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CdwError(
                f"cannot create the directory {path.parent} for the CDW: {exc.strerror}",
                hint="Choose a directory you can write in the site's CDW URL.",
            ) from exc
        try:
            self.con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            raise CdwUnreachableError(
                f"cannot open DuckDB CDW {path}: {exc}",
                hint="Check the file's permissions and that no other process holds it open.",
            ) from exc
        self._in_transaction = False
        # progress of long statements, read by copy_csv; never printed by DuckDB itself
        self.con.execute("SET enable_progress_bar = true")
        self.con.execute("SET enable_progress_bar_print = false")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.con.execute(sql, list(params))

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()

    def fetch_arrow(self, sql: str) -> pa.Table:
        result = self.con.execute(sql).to_arrow_table()
        if result is None:
            raise CdwError(f"query returned no result set: {sql[:80]}")
        return result

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_transaction:  # nested: the outer transaction decides
            yield
            return
        self.con.begin()
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self.con.rollback()
            raise
        else:
            self.con.commit()
        finally:
            self._in_transaction = False

    def tables(self) -> set[str]:
        rows = self.fetchall(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'main' AND table_catalog = current_database()"
        )
        return {r[0].lower() for r in rows}

    def columns(self, table: str) -> dict[str, ColumnInfo]:
        rows = self.fetchall(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_catalog = current_database() "
            "AND table_name = ? ORDER BY ordinal_position",
            [table],
        )
        return {r[0].lower(): ColumnInfo(r[0].lower(), r[1].lower(), r[2] == "YES") for r in rows}

    def primary_key(self, table: str) -> tuple[str, ...]:
        rows = self.fetchall(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY' "
            "AND database_name = current_database()",
            [table],
        )
        return tuple(c.lower() for c in rows[0][0]) if rows else ()

    def indexes(self, table: str) -> set[str]:
        rows = self.fetchall(
            "SELECT index_name FROM duckdb_indexes() WHERE table_name = ? "
            "AND database_name = current_database()",
            [table],
        )
        return {r[0].lower() for r in rows}

    def insert_batches(
        self, table: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
    ) -> int:
        written = 0
        producer_error: list[BaseException] = []

        def counted() -> Iterator[pa.RecordBatch]:
            nonlocal written
            try:
                for batch in batches:
                    written += batch.num_rows
                    yield batch
            except BaseException as exc:  # DuckDB would wrap it; keep the original
                producer_error.append(exc)
                raise

        reader = pa.RecordBatchReader.from_batches(schema, counted())
        names = ", ".join(quote(n) for n in schema.names)
        # One INSERT over a streaming reader: DuckDB pulls batches as it goes.
        self.con.register("__pmhub_batches", reader)
        try:
            self.con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM __pmhub_batches")
        except duckdb.Error:
            if producer_error:
                raise producer_error[0] from None
            raise
        finally:
            with contextlib.suppress(duckdb.Error):  # fails inside an aborted transaction
                self.con.unregister("__pmhub_batches")
        return written

    def copy_csv(self, table: str, source: CsvSource, progress: ByteProgress | None = None) -> int:
        spec = cdm_spec.table(table)
        types = ", ".join(
            f"{_literal(c)}: {_literal(self.dialect.column_type(spec.field(c)))}"
            for c in source.columns
        )
        names = ", ".join(quote(c) for c in source.columns)
        quote_char = '"' if source.quoted else ""
        statement = (
            f"INSERT INTO {table} ({names}) SELECT {names} FROM read_csv(?, delim = ?, "
            f"quote = ?, escape = ?, header = true, auto_detect = false, strict_mode = true, "
            f"dateformat = ?, columns = {{{types}}})"
        )
        params = [str(source.path), source.delimiter, quote_char, quote_char, source.date_format]
        size = source.path.stat().st_size
        with _polling(self.con, lambda pct: progress(int(size * pct / 100)) if progress else None):
            row = self.con.execute(statement, params).fetchone()
        if progress is not None:
            progress(size)
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.con.close()
