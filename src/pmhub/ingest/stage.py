"""Staging: a source CSV file becomes a table of text columns with its line numbers.

DuckDB's ``read_csv`` does the parsing (in parallel, at disk speed). Lines it cannot
parse (too few or too many fields, an unterminated quote, bytes that are not UTF-8, a
line past the size limit) are not lost: the reader's rejects become quarantine rows with
the line, the reason and the raw text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pmhub.ingest.engine import STAGE, Engine
from pmhub.ingest.errors import InputFormatError
from pmhub.ingest.files import Header, SourceFile, readable_utf8

MAX_LINE_BYTES = 2_000_000
RAW_LIMIT = 10_000  # characters of a raw row kept in quarantine

QUARANTINE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {STAGE}.quarantine (file VARCHAR, line BIGINT, "
    "field VARCHAR, reason VARCHAR, raw VARCHAR)"
)

_REJECT_REASONS = {
    "MISSING COLUMNS": "too few fields (a wrong delimiter or a truncated line)",
    "TOO MANY COLUMNS": "too many fields (a wrong delimiter or an unquoted delimiter)",
    "UNQUOTED VALUE": "unterminated or misplaced quote (a truncated file?)",
    "LINE SIZE OVER MAXIMUM": f"line longer than {MAX_LINE_BYTES:,} bytes",
    "INVALID ENCODING": "bytes that are not UTF-8 (a CP949 file? try --encoding cp949)",
    "INVALID UNICODE": "bytes that are not UTF-8 (a CP949 file? try --encoding cp949)",
}


@dataclass(frozen=True)
class Staged:
    source: SourceFile
    table: str  # in the stage schema
    columns: tuple[str, ...]
    good: int
    rejected: int
    seconds: float = 0.0

    @property
    def read(self) -> int:
        return self.good + self.rejected


def stage_csv(engine: Engine, source: SourceFile, header: Header, name: str) -> Staged:
    """Read ``source`` into ``pmhub_stage.<name>``; its unparseable lines into quarantine."""
    started = time.perf_counter()
    engine.run(QUARANTINE_DDL)
    path = readable_utf8(source, engine.workdir / "transcoded")
    columns = ", ".join(f"'{c.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for c in header.columns)
    delimiter = header.delimiter.replace("'", "''")
    target = f"{STAGE}.{name}"
    try:
        _read(engine, path, target, columns, delimiter, strict=True)
    except duckdb.Error:
        # Bytes that derail the reader's state machine (binary data, stray carriage
        # returns inside fields): read again leniently, so bad lines are rejected one by
        # one; if even that fails, the file as a whole is refused with the reason.
        try:
            _read(engine, path, target, columns, delimiter, strict=False)
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0]
            raise InputFormatError(
                f"{source.name} cannot be read as CSV: {first}",
                hint="Check that the file is a CSV export (not binary or truncated); "
                "nothing was loaded.",
            ) from exc
    rejected = int(engine.scalar("SELECT count(DISTINCT line) FROM temp.main.pmhub_rej"))
    if rejected:
        _shift_lines(engine, target)
        _quarantine_rejects(engine, source.name)
    good = int(engine.scalar(f"SELECT count(*) FROM {target}"))
    return Staged(source, name, header.columns, good, rejected, time.perf_counter() - started)


def _read(
    engine: Engine, path: Path, target: str, columns: str, delimiter: str, *, strict: bool
) -> None:
    engine.run("DROP TABLE IF EXISTS temp.main.pmhub_rej")
    engine.run("DROP TABLE IF EXISTS temp.main.pmhub_scan")
    reader = (
        f"read_csv(?, header = true, auto_detect = false, delim = '{delimiter}', "
        f"quote = '\"', escape = '\"', columns = {{{columns}}}, "
        f"max_line_size = {MAX_LINE_BYTES}, strict_mode = {str(strict).lower()}, "
        "store_rejects = true, rejects_table = 'pmhub_rej', rejects_scan = 'pmhub_scan')"
    )
    # Rows land in file order (insertion order is preserved), so a row's line is its
    # rowid + 2 (after the header): set after the parallel read, which a row_number()
    # window in the read would serialise (measured: half the read's time)
    engine.run(
        f"CREATE OR REPLACE TABLE {target} AS SELECT *, CAST(0 AS BIGINT) AS _line FROM {reader}",
        [str(path)],
    )
    engine.run(f"UPDATE {target} SET _line = rowid + 2")


def _shift_lines(engine: Engine, target: str) -> None:
    """Good rows were numbered as if no line was rejected; move each past the rejected
    lines before it (a rejected line j-th in order has ``line - 2 - j`` good rows before)."""
    engine.run(
        "CREATE OR REPLACE TEMP TABLE pmhub_rej_pos AS SELECT line - 2 - "
        "(row_number() OVER (ORDER BY line) - 1) AS before "
        "FROM (SELECT DISTINCT line FROM temp.main.pmhub_rej)"
    )
    engine.run(
        f"UPDATE {target} SET _line = _line + "
        "(SELECT count(*) FROM pmhub_rej_pos p WHERE p.before < "
        f"{target}._line - 1)"
    )


def _quarantine_rejects(engine: Engine, file: str) -> None:
    cases = " ".join(
        f"WHEN error_type = '{kind}' THEN '{text}'" for kind, text in _REJECT_REASONS.items()
    )
    first = "coalesce(column_idx, 0)"  # a line-level error names no column
    # One quarantine row per rejected line, even when the reader reports several errors.
    engine.run(
        f"INSERT INTO {STAGE}.quarantine "
        f"SELECT ?, line, arg_min(column_name, {first}), "
        f"arg_min(CASE {cases} ELSE lower(error_type) END || ': ' || error_message, {first}), "
        f"left(arg_min(csv_line, {first}), {RAW_LIMIT}) "
        "FROM temp.main.pmhub_rej GROUP BY line",
        [file],
    )


def empty_stage(engine: Engine, name: str, columns: tuple[str, ...]) -> None:
    """A stage table with no rows, for an optional file that is absent."""
    body = ", ".join(f'"{c}" VARCHAR' for c in columns)
    engine.run(f"CREATE OR REPLACE TABLE {STAGE}.{name} ({body}, _line BIGINT)")


def add_missing_columns(engine: Engine, name: str, wanted: tuple[str, ...]) -> None:
    """Older or newer exporters omit columns we read: add them as NULL."""
    present = {c.lower() for c in engine.columns(name)}
    for column in wanted:
        if column not in present:
            engine.run(f'ALTER TABLE {STAGE}.{name} ADD COLUMN "{column}" VARCHAR')
