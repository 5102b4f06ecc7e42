"""Vocabulary files in Athena's layout: recognising them, and naming the line that is wrong.

Athena ships tab-separated UTF-8 files without quoting, a header row, and dates as
YYYYMMDD. Files converted by other tools are often comma-separated and quoted, with ISO
dates; both are read. The database parses the rows itself (its fastest path); when it
refuses a file, the file is scanned line by line to say which line and why.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from pmhub.cdm.backends.base import CsvSource
from pmhub.cdm.spec import Field, Table
from pmhub.errors import VocabularyFormatError

DATE_FORMATS = ("%Y%m%d", "%Y-%m-%d")


def sniff(path: Path, table: Table) -> CsvSource:
    """Read the header and first row: delimiter, quoting, columns, date format."""
    with path.open("rb") as handle:
        header = handle.readline()
        first = handle.readline()
    text = _decode(path, header, 1).lstrip("\ufeff").rstrip("\r\n")
    expected = set(table.column_names)
    for delimiter, quoted in (("\t", False), (",", True)):
        names = [n.strip().strip('"').lower() for n in text.split(delimiter)]
        if len(names) > 1 and set(names) <= expected:
            missing = [f.name for f in table.fields if f.required and f.name not in names]
            if missing:
                raise VocabularyFormatError(
                    f"{path.name} line 1: required columns missing: {', '.join(missing)}"
                )
            return CsvSource(
                path=path,
                columns=tuple(names),
                delimiter=delimiter,
                quoted=quoted,
                date_format=_date_format(path, first, names, delimiter, table),
                header_bytes=len(header),
            )
    raise VocabularyFormatError(
        f"{path.name} line 1: the header is not {table.name.upper()}'s columns separated "
        f"by tabs (expected {', '.join(table.column_names)}; found {text[:120]!r})"
    )


def _date_format(path: Path, first: bytes, names: list[str], delimiter: str, table: Table) -> str:
    values = _decode(path, first, 2).rstrip("\r\n").split(delimiter)
    for name, value in zip(names, values, strict=False):
        if table.field(name).datatype == "date" and value.strip('"'):
            return "%Y-%m-%d" if "-" in value else "%Y%m%d"
    return DATE_FORMATS[0]


def _decode(path: Path, raw: bytes, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VocabularyFormatError(
            f"{path.name} line {line}: bytes that are not UTF-8 at column {exc.start + 1} "
            f"({raw[exc.start : exc.start + 4]!r}); Athena files are UTF-8"
        ) from exc


def locate_error(source: CsvSource, table: Table, cause: Exception) -> VocabularyFormatError:
    """Scan the file for the first row that breaks a rule, and name it."""
    fields = {f.name: f for f in table.fields}
    with source.path.open("rb") as handle:
        handle.seek(source.header_bytes)
        for line_no, raw in enumerate(handle, start=2):
            text = _decode(source.path, raw, line_no).rstrip("\r\n")
            if not text:
                continue
            problem = _row_problem(text, source, fields)
            if problem:
                return VocabularyFormatError(f"{source.path.name} line {line_no}: {problem}")
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return VocabularyFormatError(f"{source.path.name} cannot be loaded: {reason}")


def _row_problem(text: str, source: CsvSource, fields: dict[str, Field]) -> str | None:
    if source.quoted:
        values = next(csv.reader([text], delimiter=source.delimiter))
    else:
        values = text.split(source.delimiter)
    if len(values) != len(source.columns):
        return (
            f"{len(values)} fields where the header has {len(source.columns)} "
            "(a truncated row, or a delimiter inside a value)"
        )
    for name, value in zip(source.columns, values, strict=True):
        problem = _value_problem(value, fields[name], source.date_format)
        if problem:
            return f"{name} {problem}" if value == "" else f"{name} {value[:60]!r} {problem}"
    return None


def _value_problem(value: str, field: Field, date_format: str) -> str | None:
    if value == "":
        return "is empty" if field.required else None
    if field.datatype == "integer":
        try:
            number = int(value)
        except ValueError:
            return "is not an integer"
        bits = 63 if field.is_wide_id else 31
        return None if -(2**bits) <= number < 2**bits else "is out of range"
    if field.datatype == "float":
        try:
            float(value)
        except ValueError:
            return "is not a number"
    if field.datatype == "date":
        try:
            dt.datetime.strptime(value, date_format)
        except ValueError:
            shown = date_format.replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD")
            return f"is not a date ({shown}, as the file's first row)"
    if field.length is not None and len(value) > field.length:
        return f"is longer than {field.length} characters"
    return None
