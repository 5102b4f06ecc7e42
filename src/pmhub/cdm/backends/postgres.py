"""PostgreSQL: a CDW for larger sites, one schema per site in a shared database."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql as pgsql

from pmhub.cdm.backends.base import Backend, ByteProgress, ColumnInfo, CsvSource
from pmhub.cdm.ddl import POSTGRES
from pmhub.errors import CdwError, CdwUnreachableError, InvalidCdwUrlError

COPY_CHUNK = 1 << 20


def split_schema(url: str) -> tuple[str, str | None]:
    """Take pmhub's own ``schema=`` query parameter out of a PostgreSQL URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def redact(url: str) -> str:
    """The URL without its password, safe for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


RESERVED_PREFIX = "pg_"  # PostgreSQL's own schemas (pg_catalog, pg_toast, …)


class PostgresBackend(Backend):
    dialect = POSTGRES

    def __init__(self, url: str, schema: str) -> None:
        conninfo, _ = split_schema(url)
        self.schema = schema
        self.url = f"{redact(conninfo)}?schema={schema}" if "?" not in conninfo else redact(url)
        try:
            self.con = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
        except psycopg.ProgrammingError as exc:
            raise InvalidCdwUrlError(f"invalid PostgreSQL URL {redact(url)}: {exc}") from exc
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise CdwUnreachableError(
                f"cannot connect to PostgreSQL at {redact(url)}: {reason}"
            ) from exc
        try:
            self.con.execute(
                pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(schema))
            )
            self.con.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(schema)))
        except psycopg.Error as exc:
            self.con.close()
            raise CdwError(
                f"cannot use schema {schema!r} in {redact(url)}: {exc}",
                hint=_schema_hint(schema),
            ) from exc
        self._transaction: psycopg.Transaction | None = None
        self._conninfo = conninfo  # (kept, never shown: it may hold a password)

    def reopen(self) -> None:
        """A fresh connection in place of one an interruption left unusable: closed, or
        still inside a transaction block (a signal that lands while psycopg commits or
        rolls back leaves one open, and a later transaction would only be a savepoint
        in it, lost when the process ends), so that work can still record how it ended.
        The server rolls the old connection's open transaction back."""
        idle = psycopg.pq.TransactionStatus.IDLE
        if not self.con.closed and self.con.info.transaction_status == idle:
            return
        with contextlib.suppress(psycopg.Error):
            self.con.close()
        self.con = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10)
        self.con.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(self.schema)))
        self._transaction = None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.con.execute(_placeholders(sql), list(params) or None)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(_placeholders(sql), list(params) or None).fetchall()

    def fetch_arrow(self, sql: str) -> pa.Table:
        cur = self.con.execute(sql)
        names = [d.name for d in cur.description or []]
        rows = cur.fetchall()
        return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._transaction is not None:
            yield
            return
        with self.con.transaction() as tx:
            self._transaction = tx
            try:
                yield
            finally:
                self._transaction = None

    def tables(self) -> set[str]:
        rows = self.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
            [self.schema],
        )
        return {r[0].lower() for r in rows}

    def columns(self, table: str) -> dict[str, ColumnInfo]:
        rows = self.fetchall(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [self.schema, table],
        )
        return {r[0].lower(): ColumnInfo(r[0].lower(), r[1].lower(), r[2] == "YES") for r in rows}

    def primary_key(self, table: str) -> tuple[str, ...]:
        rows = self.fetchall(
            "SELECT k.column_name FROM information_schema.table_constraints c "
            "JOIN information_schema.key_column_usage k "
            "ON c.constraint_name = k.constraint_name AND c.table_schema = k.table_schema "
            "WHERE c.table_schema = ? AND c.table_name = ? AND c.constraint_type = 'PRIMARY KEY' "
            "ORDER BY k.ordinal_position",
            [self.schema, table],
        )
        return tuple(r[0].lower() for r in rows)

    def indexes(self, table: str) -> set[str]:
        rows = self.fetchall(
            "SELECT indexname FROM pg_indexes WHERE schemaname = ? AND tablename = ?",
            [self.schema, table],
        )
        return {r[0].lower() for r in rows}

    def insert_batches(
        self, table: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
    ) -> int:
        columns = pgsql.SQL(", ").join(pgsql.Identifier(n) for n in schema.names)
        statement = pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
            pgsql.Identifier(table), columns
        )
        options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
        written = 0
        with self.con.cursor() as cur, cur.copy(statement) as copy:
            for batch in batches:
                buffer = io.BytesIO()
                pacsv.write_csv(batch, buffer, options)  # strings quoted: '' stays '', null is NULL
                copy.write(buffer.getvalue())
                written += batch.num_rows
        return written

    def copy_csv(self, table: str, source: CsvSource, progress: ByteProgress | None = None) -> int:
        columns = pgsql.SQL(", ").join(pgsql.Identifier(n) for n in source.columns)
        # Unquoted files get a quote character that cannot occur in text, so '"' stays data.
        quote_char = '"' if source.quoted else "\x01"
        statement = pgsql.SQL(
            "COPY {} ({}) FROM STDIN (FORMAT csv, DELIMITER {}, QUOTE {}, NULL '')"
        ).format(
            pgsql.Identifier(table),
            columns,
            pgsql.Literal(source.delimiter),
            pgsql.Literal(quote_char),
        )
        with source.path.open("rb") as handle, self.con.cursor() as cur:
            handle.seek(source.header_bytes)
            with cur.copy(statement) as copy:
                while chunk := handle.read(COPY_CHUNK):
                    copy.write(chunk)
                    if progress is not None:
                        progress(handle.tell())
            return cur.rowcount

    def close(self) -> None:
        self.con.close()


def _placeholders(sql: str) -> str:
    """Service code writes ``?`` placeholders (DuckDB's); psycopg wants ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


def _schema_hint(schema: str) -> str:
    """What to do when PostgreSQL refuses a site's schema."""
    if schema.lower().startswith(RESERVED_PREFIX):
        return (
            f"PostgreSQL keeps schema names starting with {RESERVED_PREFIX} for itself, and a "
            "site's schema is its name: register the site again under a name without it "
            "(`pmhub sites remove NAME`, then `pmhub sites add NEWNAME --cdw URL`)."
        )
    return "The user needs CREATE on the database, or ask an administrator to create the schema."
