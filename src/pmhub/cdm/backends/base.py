"""The interface every CDW backend implements.

A backend is one connection to one site's CDW. Service code speaks SQL that all
backends accept (the dialect differences live in :mod:`pmhub.cdm.ddl`) and moves bulk
data as Arrow record batches, never row by row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from pmhub.cdm.ddl import Dialect


@dataclass(frozen=True)
class CsvSource:
    """A delimited file the database parses itself: its fastest bulk path."""

    path: Path
    columns: tuple[str, ...]  # the file's columns in order; each is a column of the table
    delimiter: str
    quoted: bool  # '"' quotes values; otherwise no character quotes (Athena's layout)
    date_format: str  # strptime format of DATE columns: %Y%m%d or %Y-%m-%d
    header_bytes: int  # length of the header line, skipped


ByteProgress = Callable[[int], None]  # bytes of the file consumed so far


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # as the database reports it, lower case
    nullable: bool


class Backend(ABC):
    dialect: Dialect
    url: str  # safe to print: never holds a password

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def fetch_arrow(self, sql: str) -> pa.Table: ...

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""

    @abstractmethod
    def tables(self) -> set[str]: ...

    @abstractmethod
    def columns(self, table: str) -> dict[str, ColumnInfo]: ...

    @abstractmethod
    def primary_key(self, table: str) -> tuple[str, ...]: ...

    @abstractmethod
    def indexes(self, table: str) -> set[str]: ...

    @abstractmethod
    def insert_batches(
        self, table: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
    ) -> int:
        """Append the batches (columns named as in ``schema``); return the rows written."""

    @abstractmethod
    def copy_csv(self, table: str, source: CsvSource, progress: ByteProgress | None = None) -> int:
        """Append the file's rows, parsed by the database; return the rows written.
        Raises the database's own error on a bad row; callers name the line."""

    @abstractmethod
    def close(self) -> None: ...

    def count(self, table: str) -> int:
        rows = self.fetchall(f"SELECT count(*) FROM {table}")
        return int(rows[0][0])

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
