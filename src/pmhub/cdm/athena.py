"""Reading vocabulary files in Athena's layout, streaming, as Arrow record batches.

Athena ships tab-separated UTF-8 files without quoting, a header row, and dates as
YYYYMMDD. Files converted by other tools are often comma-separated and quoted, with
ISO dates; both are read. Anything else stops the load with the file, the line and what
is wrong with it. The fast path is pyarrow's streaming CSV reader; only when it fails is
the file scanned line by line, to name the line.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pmhub.cdm.spec import Table, arrow_schema
from pmhub.errors import VocabularyFormatError

BLOCK_SIZE = 8 << 20
DATE_FORMATS = ("%Y%m%d", "%Y-%m-%d")
Progress = Callable[[int], None]  # bytes read so far


@dataclass(frozen=True)
class FileLayout:
    path: Path
    delimiter: str
    quoted: bool
    columns: tuple[str, ...]  # as in the header, lower case
    header_bytes: int


def sniff(path: Path, table: Table) -> FileLayout:
    """Read the header; decide delimiter and quoting; check the columns are the table's."""
    with path.open("rb") as handle:
        raw = handle.readline()
    text = _decode(path, raw, 1).lstrip("\ufeff").rstrip("\r\n")
    expected = set(table.column_names)
    for delimiter, quoted in (("\t", False), (",", True)):
        names = [n.strip().strip('"').lower() for n in text.split(delimiter)]
        if len(names) > 1 and set(names) <= expected:
            missing = [f.name for f in table.fields if f.required and f.name not in names]
            if missing:
                raise VocabularyFormatError(
                    f"{path.name} line 1: required columns missing: {', '.join(missing)}"
                )
            return FileLayout(path, delimiter, quoted, tuple(names), len(raw))
    raise VocabularyFormatError(
        f"{path.name} line 1: the header is not {table.name.upper()}'s columns separated "
        f"by tabs (expected {', '.join(table.column_names)}; found {text[:120]!r})"
    )


def read_batches(
    layout: FileLayout, table: Table, progress: Progress | None = None
) -> Iterator[pa.RecordBatch]:
    """Yield the file's rows as batches of the table's Arrow schema (all its columns)."""
    target = arrow_schema(table)
    raw_types = {
        f.name: (pa.string() if pa.types.is_date(f.type) else f.type)
        for f in target
        if f.name in layout.columns
    }
    read = pacsv.ReadOptions(
        column_names=list(layout.columns), block_size=BLOCK_SIZE, use_threads=True
    )
    parse = pacsv.ParseOptions(
        delimiter=layout.delimiter,
        quote_char='"' if layout.quoted else False,
        newlines_in_values=False,
    )
    convert = pacsv.ConvertOptions(
        column_types=raw_types,
        strings_can_be_null=True,
        null_values=[""],
        quoted_strings_can_be_null=False,
    )
    rows_before = 0
    with layout.path.open("rb") as handle:
        handle.seek(layout.header_bytes)
        counting = _Counting(handle, progress)
        try:
            reader = pacsv.open_csv(cast(IO[Any], counting), read, parse, convert)
            for batch in reader:
                yield _conform(batch, target, layout, rows_before)
                rows_before += batch.num_rows
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise locate_error(layout, table, exc) from exc


class _Counting(io.RawIOBase):
    def __init__(self, handle: io.BufferedReader, progress: Progress | None) -> None:
        self.handle = handle
        self.progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self.handle.readinto(buffer)
        if self.progress is not None and n:
            self.progress(self.handle.tell())
        return n or 0


def _conform(
    batch: pa.RecordBatch, target: pa.Schema, layout: FileLayout, rows_before: int
) -> pa.RecordBatch:
    columns = []
    for field in target:
        if field.name not in layout.columns:
            columns.append(pa.nulls(batch.num_rows, field.type))
            continue
        column = batch.column(field.name)
        if pa.types.is_date(field.type):
            column = _parse_dates(column, layout, field.name, rows_before)
        if not field.nullable and column.null_count:
            index = pc.index(pc.is_null(column), True).as_py()
            line = _line(rows_before, index)
            raise VocabularyFormatError(f"{layout.path.name} line {line}: {field.name} is empty")
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=target)


def _parse_dates(
    column: pa.Array[Any], layout: FileLayout, name: str, rows_before: int
) -> pa.Array[Any]:
    last_error: Exception | None = None
    for fmt in DATE_FORMATS:
        try:
            parsed = pc.strptime(column, format=fmt, unit="s", error_is_null=False)
        except pa.ArrowInvalid as exc:
            last_error = exc
            continue
        # strptime rolls 2023-02-30 over to March; a date is valid only if it formats back
        if pc.all(pc.equal(pc.strftime(parsed, format=fmt), column)).as_py() in (True, None):
            return pc.cast(parsed, pa.date32())
        break
    for index, value in enumerate(column.to_pylist()):
        if value is not None and _parse_date(value) is None:
            raise VocabularyFormatError(
                f"{layout.path.name} line {_line(rows_before, index)}: "
                f"{name} {value!r} is not a date (YYYYMMDD or YYYY-MM-DD)"
            )
    raise VocabularyFormatError(f"{layout.path.name}: {name}: mixed date formats ({last_error})")


def _line(rows_before: int, index: int) -> int:
    return 1 + rows_before + index + 1  # header is line 1


def _parse_date(value: str) -> dt.date | None:
    for fmt in DATE_FORMATS:
        try:
            return dt.datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    return None


def _decode(path: Path, raw: bytes, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VocabularyFormatError(
            f"{path.name} line {line}: bytes that are not UTF-8 at column {exc.start + 1} "
            f"({raw[exc.start : exc.start + 4]!r}); Athena files are UTF-8"
        ) from exc


def locate_error(layout: FileLayout, table: Table, cause: Exception) -> VocabularyFormatError:
    """Scan the file line by line for the first row that breaks a rule; name it."""
    if isinstance(cause, VocabularyFormatError):
        return cause
    target = arrow_schema(table)
    types = {f.name: f.type for f in target}
    with layout.path.open("rb") as handle:
        handle.seek(layout.header_bytes)
        for line_no, raw in enumerate(handle, start=2):
            text = _decode(layout.path, raw, line_no).rstrip("\r\n")
            if not text:
                continue
            problem = _row_problem(text, layout, types)
            if problem:
                return VocabularyFormatError(f"{layout.path.name} line {line_no}: {problem}")
    return VocabularyFormatError(f"{layout.path.name}: cannot be read: {cause}")


def _row_problem(text: str, layout: FileLayout, types: dict[str, pa.DataType]) -> str | None:
    if layout.quoted:
        values = next(csv.reader([text], delimiter=layout.delimiter))
    else:
        values = text.split(layout.delimiter)
    if len(values) != len(layout.columns):
        return (
            f"{len(values)} fields where the header has {len(layout.columns)} "
            "(a truncated row, or a delimiter inside a value)"
        )
    for name, value in zip(layout.columns, values, strict=True):
        problem = _value_problem(value, types[name])
        if problem:
            return f"{name} {value[:60]!r} {problem}"
    return None


def _value_problem(value: str, kind: pa.DataType) -> str | None:
    if value == "":
        return None
    if pa.types.is_integer(kind):
        try:
            number = int(value)
        except ValueError:
            return "is not an integer"
        bits = kind.bit_width - 1
        return None if -(2**bits) <= number < 2**bits else "is out of range"
    if pa.types.is_floating(kind):
        try:
            float(value)
        except ValueError:
            return "is not a number"
    if pa.types.is_date(kind) and _parse_date(value) is None:
        return "is not a date (YYYYMMDD or YYYY-MM-DD)"
    return None
