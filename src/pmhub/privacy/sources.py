"""Where tables come from and go to: CSV, Parquet, DuckDB files, or data frames.

Everything is read through DuckDB, so a table larger than memory is grouped and streamed
by DuckDB rather than loaded. CSV is read as text (``all_varchar``): identifiers with
leading zeros, postcodes and codes stay exactly as written.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pmhub import textcodec
from pmhub.privacy.errors import OutputExistsError, PrivacyInputError

SUFFIXES = (".csv", ".tsv", ".txt", ".parquet")
CSV_BUFFER = 8 << 20


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass
class Source:
    name: str
    sql: str  # a FROM-able expression
    columns: list[str]
    rows: int
    kind: str  # csv, parquet, duckdb, frame
    types: dict[str, str] = field(default_factory=dict)

    def text(self, column: str, *, blank: bool = True) -> str:
        """SQL for a column as the text hierarchies list: 40 not 40.0, and '' when missing
        (NULL when not ``blank``)."""
        name = quote(column)
        kind = self.types.get(column, "VARCHAR").upper()
        if kind in ("DOUBLE", "FLOAT", "REAL") or kind.startswith("DECIMAL"):
            text = (
                f"CASE WHEN {name} = trunc({name}) AND abs({name}) < 1e15"
                f" THEN CAST(CAST({name} AS BIGINT) AS VARCHAR) ELSE CAST({name} AS VARCHAR) END"
            )
        else:
            text = f"CAST({name} AS VARCHAR)"
        return f"coalesce({text}, '')" if blank else text


def connect(memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that spills to a private temporary folder beyond ``memory_limit``."""
    spill = Path(tempfile.gettempdir()) / f"pmhub-privacy-{os.getpid()}"
    config: dict[str, str | bool | int | float | list[str]] = {
        "temp_directory": str(spill),
        "preserve_insertion_order": "true",
    }
    if memory_limit:
        config["memory_limit"] = memory_limit
    try:
        return duckdb.connect(config=config)
    except duckdb.Error as exc:
        raise PrivacyInputError(
            f"cannot start the query engine: {exc}",
            hint="Give --memory-limit as a size such as 2GB.",
        ) from exc


def describe(con: duckdb.DuckDBPyConnection, name: str, sql: str, kind: str) -> Source:
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {sql}").fetchall()
        columns = [row[0] for row in described]
        rows = con.execute(f"SELECT count(*) FROM {sql}").fetchall()[0]
    except duckdb.Error as exc:
        raise PrivacyInputError(f"cannot read table {name!r}: {str(exc).splitlines()[0]}") from exc
    if len(set(columns)) != len(columns):
        raise PrivacyInputError(f"table {name!r} has duplicate column names")
    types = {row[0]: str(row[1]) for row in described}
    return Source(name, sql, columns, int(rows[0]) if rows else 0, kind, types)


def file_source(
    con: duckdb.DuckDBPyConnection, name: str, path: Path, *, materialize: bool = True
) -> Source:
    """A CSV or Parquet file; a CSV read once or twice may stay unmaterialized."""
    if not path.is_file():
        raise PrivacyInputError(f"input {path} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return describe(con, name, f"read_parquet({literal(str(path))})", "parquet")
    if suffix in (".csv", ".tsv", ".txt"):
        # 8 MiB read buffers (DuckDB's default is 16 lines of 2 MiB, 32 MiB per thread)
        # so a small --memory-limit still reads a large file; lines may still be 2 MiB.
        reader = (
            f"read_csv({literal(str(utf8(path)))}, header = true, all_varchar = true,"
            f" buffer_size = {CSV_BUFFER})"
        )
        if not materialize:
            return describe(con, name, reader, "csv")
        # Scanned several times (hierarchies, counts, batches): parse the text once.
        # DuckDB spills a temporary table larger than memory to disk.
        table = f"csv_{len(con.execute('SHOW TABLES').fetchall())}"
        try:
            con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM {reader}")
        except duckdb.OutOfMemoryException:
            raise  # not the file's fault: the caller says how to give the engine more memory
        except duckdb.Error as exc:
            message = str(exc).splitlines()[0]
            raise PrivacyInputError(f"cannot read {path} as CSV: {message}") from exc
        return describe(con, name, table, "csv")
    raise PrivacyInputError(f"input {path} is neither CSV nor Parquet nor DuckDB")


_TRANSCODED: dict[tuple[str, int, int], Path] = {}


def utf8(path: Path) -> Path:
    """A path DuckDB's CSV reader can read: the file, or for a CP949 file (as Korean
    exports often are) a UTF-8 copy made once per process in a private folder."""
    if textcodec.sniff(path) != "cp949":
        return path
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _TRANSCODED:
        folder = Path(tempfile.mkdtemp(prefix="pmhub-privacy-cp949-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        target = folder / f"{path.stem}.csv"
        try:
            with (
                path.open(encoding="cp949", newline="") as source,
                target.open("w", encoding="utf-8", newline="") as copy,
            ):
                shutil.copyfileobj(source, copy, CSV_BUFFER)
        except UnicodeDecodeError as exc:
            raise PrivacyInputError(
                f"input {path} starts as CP949 text but holds bytes that are neither CP949 "
                f"nor UTF-8 ({exc.reason})",
                hint="Save the file again as UTF-8 or CP949, then run again.",
            ) from exc
        _TRANSCODED[key] = target
    return _TRANSCODED[key]


def open_sources(
    con: duckdb.DuckDBPyConnection, path: Path, tables: list[str]
) -> dict[str, Source]:
    """The policy's tables from a file (one table), a folder of files, or a DuckDB file."""
    if path.is_dir():
        return {t: file_source(con, t, _find(path, t)) for t in tables}
    if path.suffix.lower() in (".duckdb", ".db"):
        if not path.is_file():
            raise PrivacyInputError(f"input {path} does not exist")
        try:
            con.execute(f"ATTACH {literal(str(path))} AS src (READ_ONLY)")
        except duckdb.Error as exc:
            raise PrivacyInputError(f"cannot open DuckDB file {path}: {exc}") from exc
        return {t: describe(con, t, f"src.{quote(t)}", "duckdb") for t in tables}
    if len(tables) != 1:
        raise PrivacyInputError(
            f"the policy has {len(tables)} tables but the input {path} is one file",
            hint="Give a folder with one file per table (person.csv, ...), or a DuckDB file.",
        )
    return {tables[0]: file_source(con, tables[0], path)}


def _find(folder: Path, table: str) -> Path:
    for suffix in SUFFIXES:
        candidate = folder / f"{table}{suffix}"
        if candidate.is_file():
            return candidate
    raise PrivacyInputError(f"folder {folder} has no file for table {table!r} (.csv or .parquet)")


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out``, renamed to it only if the block succeeds."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputExistsError(f"output {out} already exists and is not empty")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise OutputExistsError(
            f"cannot write beside {out}: {exc.strerror}",
            hint="Choose an --out directory in a folder you can write.",
        ) from exc
    try:
        yield stage
        if out.exists():
            out.rmdir()
        os.replace(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
