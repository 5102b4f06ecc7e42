"""Staging: a source CSV file becomes a table of text columns with its line numbers.

DuckDB's ``read_csv`` does the parsing (in parallel, at disk speed). Lines it cannot
parse (too few or too many fields, an unterminated quote, bytes that are not UTF-8, a
line past the size limit) are not lost: the reader's rejects become quarantine rows with
the line, the reason and the raw text.

An importer that reads only some of a file's columns stages only those (``keep``): the
reader then skips storing the rest (Synthea's descriptions, costs and reasons; at 100,000
patients a tenth of the staging time). A file the reader rejects any line of is read
again whole, and the rows that validation sets aside get their whole raw line back from
one more read (:func:`restore_raw`): both only for files with such rows. A file whose
encoding check (its first 16 MB) found bytes that are not UTF-8 is read whole from the
start; bytes that are not UTF-8 further on, in a column not read, are not looked at.

Columns only ever joined on (ids of other rows, such as an event's PATIENT) may be staged
as their 64-bit hash (``hashed``: ``<column>_h``, NULL for NULL), which is cheaper to
store and to join than a 36-character text. The texts are then gone from the stage: a
transform that needs them (to quote them in a reason) stages the file again without.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pmhub.cdm.ddl import quote
from pmhub.ingest.engine import STAGE, Engine
from pmhub.ingest.errors import InputFormatError
from pmhub.ingest.files import Header, SourceFile, readable_utf8
from pmhub.ingest.lines import Fitted, fit
from pmhub.ingest.sqlgen import RAW_LIMIT, literal

MAX_LINE_BYTES = 2_000_000

QUARANTINE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {STAGE}.quarantine (file VARCHAR, line BIGINT, "
    "field VARCHAR, reason VARCHAR, raw VARCHAR)"
)

_REJECT_REASONS = {
    "MISSING COLUMNS": "too few fields (a wrong delimiter or a truncated line)",
    "TOO MANY COLUMNS": "too many fields (a wrong delimiter or an unquoted delimiter)",
    "UNQUOTED VALUE": "unterminated or misplaced quote (a truncated file?)",
    "LINE SIZE OVER MAXIMUM": f"line longer than {MAX_LINE_BYTES:,} bytes",  # (a stub's: its size)
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
    header: Header | None = None  # the file's own columns, when only some were staged

    @property
    def projected(self) -> bool:
        return self.header is not None and self.header.columns != self.columns

    @property
    def read(self) -> int:
        return self.good + self.rejected


def stage_csv(
    engine: Engine,
    source: SourceFile,
    header: Header,
    name: str,
    keep: Collection[str] | None = None,
    hashed: Collection[str] = (),
) -> Staged:
    """Read ``source`` into ``pmhub_stage.<name>``; its unparseable lines into quarantine.
    With ``keep``, only those of its columns are staged, and those of them in ``hashed``
    as their hash, unless a line is rejected."""
    started = time.perf_counter()
    engine.run(QUARANTINE_DDL)
    fitted = readable(engine, source)
    path = fitted.path
    target = f"{STAGE}.{name}"
    staged, done = header.columns, False
    # (a file seen to hold bytes that are not UTF-8 is read whole, so that the reader
    # rejects each such line, whichever column the bytes are in)
    if keep is not None and source.encoding != "utf-8-invalid":
        kept = tuple(c for c in header.columns if c in keep)
        wanted = tuple(c for c in kept if c in hashed)
        # A rejected line sends the file to a whole read: DuckDB's reader loads a line
        # whose bad bytes sit in a column it does not store, yet lists it as rejected
        if (kept != header.columns or wanted) and not _stage(
            engine, source, path, target, header, kept, wanted
        ):
            staged, done = kept, True
    if not done:
        _stage(engine, source, path, target, header, staged)
    rejected = int(engine.scalar("SELECT count(DISTINCT line) FROM temp.main.pmhub_rej"))
    if rejected:
        _shift_lines(engine, target)
        _quarantine_rejects(engine, source.name)
        _explain_stubs(engine, source.name, fitted)
    good = int(engine.scalar(f"SELECT count(*) FROM {target}"))
    seconds = time.perf_counter() - started
    return Staged(source, name, staged, good, rejected, seconds, header)


def readable(engine: Engine, source: SourceFile) -> Fitted:
    """What the reader reads for ``source``: UTF-8 (transcoded once if need be), its
    lines past the size limit replaced by stubs (:mod:`pmhub.ingest.lines`)."""
    path = readable_utf8(source, engine.workdir / "transcoded")
    name = source.checksum.partition(":")[2][:16]
    return fit(path, engine.workdir / "fitted", name, limit=MAX_LINE_BYTES, raw_chars=RAW_LIMIT)


def _explain_stubs(engine: Engine, file: str, fitted: Fitted) -> None:
    """A stub's reject says the line it stands for: its length and first characters."""
    for key, line in fitted.stubs.items():
        engine.run(
            f"UPDATE {STAGE}.quarantine SET field = NULL, reason = ?, raw = ? "
            "WHERE file = ? AND position(? IN left(raw, 100)) > 0",
            [f"{_REJECT_REASONS['LINE SIZE OVER MAXIMUM']} ({line.size:,})", line.raw, file, key],
        )


def _stage(
    engine: Engine,
    source: SourceFile,
    path: Path,
    target: str,
    header: Header,
    staged: tuple[str, ...],
    hashed: tuple[str, ...] = (),
) -> int:
    """Read the file's ``staged`` columns (``hashed`` ones as their hash) into ``target``;
    the number of rejected lines."""
    try:
        _read(engine, path, target, header, staged, hashed, strict=True)
    except duckdb.Error:
        # Bytes that derail the reader's state machine (binary data, stray carriage
        # returns inside fields): read again leniently, so bad lines are rejected one by
        # one; if even that fails, the file as a whole is refused with the reason.
        try:
            _read(engine, path, target, header, staged, hashed, strict=False)
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0]
            raise InputFormatError(
                f"{source.name} cannot be read as CSV: {first}",
                hint="Check that the file is a CSV export (not binary or truncated); "
                "nothing was loaded.",
            ) from exc
    return int(engine.scalar("SELECT count(*) FROM temp.main.pmhub_rej"))


def _read(
    engine: Engine,
    path: Path,
    target: str,
    header: Header,
    staged: tuple[str, ...],
    hashed: tuple[str, ...] = (),
    *,
    strict: bool,
) -> None:
    engine.run("DROP TABLE IF EXISTS temp.main.pmhub_rej")
    engine.run("DROP TABLE IF EXISTS temp.main.pmhub_scan")
    columns = ", ".join(f"{literal(c)}: 'VARCHAR'" for c in header.columns)
    chosen = (
        "*"
        if staged == header.columns and not hashed
        else ", ".join(
            f"CASE WHEN {quote(c)} IS NOT NULL THEN hash({quote(c)}) END AS {quote(c + '_h')}"
            if c in hashed
            else quote(c)
            for c in staged
        )
    )
    reader = (
        f"read_csv(?, header = true, auto_detect = false, delim = {literal(header.delimiter)}, "
        f"quote = '\"', escape = '\"', columns = {{{columns}}}, "
        f"max_line_size = {MAX_LINE_BYTES}, strict_mode = {str(strict).lower()}, "
        "store_rejects = true, rejects_table = 'pmhub_rej', rejects_scan = 'pmhub_scan')"
    )
    # Rows land in file order (insertion order is preserved), so a row's line is its
    # rowid + 2 (after the header): set after the parallel read, which a row_number()
    # window in the read would serialise (measured: half the read's time)
    engine.run(
        f"CREATE OR REPLACE TABLE {target} AS SELECT {chosen}, CAST(0 AS BIGINT) AS _line "
        f"FROM {reader}",
        [str(path)],
    )
    engine.run(f"UPDATE {target} SET _line = rowid + 2")


def restore_raw(engine: Engine, staged: Staged, file: str) -> None:
    """Give the quarantined rows of a file staged in part (``projected``) their whole
    raw line: one more read of the file, only when validation set rows of it aside."""
    header = staged.header
    if header is None or not staged.projected:
        return
    if not engine.scalar(f"SELECT count(*) FROM {STAGE}.quarantine WHERE file = ?", [file]):
        return
    target = f"{STAGE}.pmhub_whole"
    path = readable(engine, staged.source).path
    with engine.ordered():
        rejected = _stage(engine, staged.source, path, target, header, header.columns)
    if rejected:
        _shift_lines(engine, target)
    fields = ", ".join(f"coalesce({quote(c)}, '')" for c in header.columns)
    engine.run(
        f"UPDATE {STAGE}.quarantine q SET raw = left(concat_ws({literal(header.delimiter)}, "
        f"{fields}), {RAW_LIMIT}) FROM {target} w WHERE q.file = ? AND q.line = w._line",
        [file],
    )
    engine.run(f"DROP TABLE {target}")


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
        if column not in present and f"{column}_h" not in present:  # (hashed: is there)
            engine.run(f'ALTER TABLE {STAGE}.{name} ADD COLUMN "{column}" VARCHAR')
