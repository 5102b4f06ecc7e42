"""The second wall of a workspace: the process that runs its queries, and how it is confined.

Started by :mod:`pmhub.safezone.sandbox` as ``python -m pmhub.safezone.sandbox_worker``
with an emptied environment; it talks length-prefixed JSON over its stdin and stdout (JSON,
not pickle, so that a worker subverted by its input still cannot make the parent run code).
The first message sets its limits; every later one is a query, answered by one reply.

Confinement that does not depend on the SQL check: the process's address space, file sizes
and open files are capped by the kernel (``setrlimit``); DuckDB opens the workspace
read-only with external access disabled (no files, no ATTACH, no COPY, no extensions), no
Python replacement scans, memory, threads and spill space capped, and its configuration
locked so that no SET can undo any of it. Results are written by this module's own code
(pyarrow), never by DuckDB, to the one staging path the parent names.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import os
import resource
import signal
import struct
import sys
from pathlib import Path
from typing import IO, Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FRAME = struct.Struct(">I")
MAX_REQUEST_BYTES = 16 << 20
BATCH_ROWS = 8192
INT64_RANGE = (-(1 << 63), (1 << 63) - 1)
ORPHAN_GRACE_S = 30


def read_frame(stream: IO[bytes], limit: int) -> bytes | None:
    """One message, or None at end of stream."""
    head = stream.read(FRAME.size)
    if len(head) < FRAME.size:
        return None
    (size,) = FRAME.unpack(head)
    if size > limit:
        raise ValueError(f"message of {size} bytes is over the limit of {limit}")
    body = stream.read(size)
    if len(body) < size:
        return None
    return body


def write_frame(stream: IO[bytes], payload: dict[str, Any]) -> None:
    body = orjson.dumps(payload, default=_json_default)
    stream.write(FRAME.pack(len(body)) + body)
    stream.flush()


def apply_limits(limits: dict[str, Any]) -> None:
    """Kernel limits first: they hold even if DuckDB's own limits were wrong or bypassed."""
    mb = 1 << 20
    caps = {
        resource.RLIMIT_AS: int(limits["address_space_mb"]) * mb,
        resource.RLIMIT_FSIZE: int(limits["file_size_mb"]) * mb,
        resource.RLIMIT_NOFILE: 256,
        resource.RLIMIT_CORE: 0,
    }
    for which, cap in caps.items():
        _, hard = resource.getrlimit(which)
        resource.setrlimit(which, (cap, cap if hard == resource.RLIM_INFINITY else min(cap, hard)))
    # past RLIMIT_FSIZE a write fails with EFBIG instead of the signal killing the worker
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def duckdb_config(limits: dict[str, Any]) -> dict[str, Any]:
    return {
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
        "allow_community_extensions": False,
        "allow_unsigned_extensions": False,
        "allow_extension_repositories": "forbidden",
        "allow_persistent_secrets": False,
        "python_enable_replacements": False,
        "memory_limit": f"{int(limits['memory_limit_mb'])}MB",
        "threads": int(limits["threads"]),
        "max_temp_directory_size": f"{int(limits['max_temp_mb'])}MB",
        "temp_directory": str(limits["temp_dir"]),
        "extension_directory": str(Path(str(limits["home_dir"])) / "no-extensions"),
    }


def open_workspace_db(path: str, limits: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(path, read_only=True, config=duckdb_config(limits))
    # set after opening: DuckDB 2.0 refuses a start-up configuration that names both the
    # spill and the extension folders with external access already off
    con.execute("SET enable_external_access = false")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET lock_configuration = true")  # last: nothing can be SET after this
    return con


class Worker:
    """Holds at most one open workspace database, so memory_limit bounds the whole process."""

    def __init__(self, limits: dict[str, Any]) -> None:
        self.limits = limits
        self.con: duckdb.DuckDBPyConnection | None = None
        self.opened: tuple[str, int, int, int] | None = None

    def connection(self, path: str) -> duckdb.DuckDBPyConnection:
        st = os.stat(path)
        # a load replaces the file (new inode); reopen to see the new tables
        key = (path, st.st_ino, st.st_mtime_ns, st.st_size)
        if self.con is None or self.opened != key:
            if self.con is not None:
                self.con.close()
                self.con = None
            self.con = open_workspace_db(path, self.limits)
            self.opened = key
        return self.con

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"ok": True, **self.run(request)}
        except ResultLimitError as exc:
            return {"ok": False, "kind": "limit", "limit": exc.limit, "message": str(exc)}
        except duckdb.Error as exc:
            return {"ok": False, **classify(exc)}
        except FileNotFoundError:  # destroyed (at expiry) between the check and the query
            return {"ok": False, "kind": "query", "message": "the workspace's database is gone"}
        except MemoryError:
            return {"ok": False, "kind": "limit", "limit": "memory", "message": "out of memory"}
        except OSError as exc:
            return {"ok": False, "kind": "limit", "limit": "file", "message": str(exc)}
        except (pa.ArrowException, ValueError, TypeError) as exc:
            return {"ok": False, "kind": "query", "message": f"the result cannot be kept: {exc}"}

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        # the parent kills an overrunning worker; the alarm ends one whose parent is gone
        signal.alarm(int(float(request.get("timeout_s", 3600))) + ORPHAN_GRACE_S)
        cursor = self.connection(str(request["db"])).cursor()
        try:
            relation = cursor.sql(str(request["sql"]))
            if relation is None:  # only reachable when the SQL check was bypassed
                return {"columns": [], "rows": [], "truncated": False, "row_count": 0}
            columns = [
                [str(n), str(t)] for n, t in zip(relation.columns, relation.types, strict=True)
            ]
            reader = relation.to_arrow_reader(BATCH_ROWS)
            return {"columns": columns, **collect(reader, request)}
        finally:
            cursor.close()  # its temporary objects, if any, die with it
            signal.alarm(0)


class ResultLimitError(Exception):
    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


def collect(reader: pa.RecordBatchReader, request: dict[str, Any]) -> dict[str, Any]:
    preview = Preview(
        int(request["preview_rows"]), int(request["preview_bytes"]), int(request["cell_chars"])
    )
    save = request.get("save")
    sink = ResultFile(reader.schema, save, request) if save else None
    rows = 0
    complete = True
    try:
        for batch in reader:
            rows += batch.num_rows
            preview.add(batch)
            if sink is not None:
                sink.write(batch, rows)
            elif preview.full:
                complete = False
                break
    except BaseException:
        if sink is not None:
            sink.discard()
        raise
    saved = sink.close(rows) if sink is not None else None
    return {
        "rows": preview.rows,
        "truncated": preview.full or not complete,
        "row_count": rows if complete else None,
        "cells_cut": preview.cells_cut,
        "saved": saved,
    }


class Preview:
    """The first rows, as JSON-ready values, within a row count and a byte budget."""

    def __init__(self, max_rows: int, max_bytes: int, cell_chars: int) -> None:
        self.max_rows, self.max_bytes, self.cell_chars = max_rows, max_bytes, cell_chars
        self.rows: list[list[Any]] = []
        self.bytes = 0
        self.full = False
        self.cells_cut = 0

    def add(self, batch: pa.RecordBatch) -> None:
        if self.full:
            return
        wanted = self.max_rows - len(self.rows)
        # by position, not by name: a result may repeat a column name (SELECT 1 a, 2 a)
        columns = [column.to_pylist() for column in batch.slice(0, wanted + 1).columns]
        for record in zip(*columns, strict=True):
            if len(self.rows) >= self.max_rows:
                self.full = True
                return
            cut_before = self.cells_cut
            row = [self.cell(v) for v in record]
            size = len(orjson.dumps(row, default=_json_default))
            if self.bytes + size > self.max_bytes:
                self.cells_cut = cut_before  # the row is not shown, nor counted
                self.full = True
                return
            self.rows.append(row)
            self.bytes += size

    def cell(self, value: Any) -> Any:
        if isinstance(value, str) and len(value) > self.cell_chars:
            self.cells_cut += 1
            return value[: self.cell_chars] + "…"
        if isinstance(value, bytes):
            shown = value[: self.cell_chars // 2]
            if len(shown) < len(value):
                self.cells_cut += 1
            return "base64:" + base64.b64encode(shown).decode("ascii")
        if isinstance(value, int) and not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
            return str(value)  # HUGEINT: JSON numbers past 64 bits lose digits
        if isinstance(value, list):
            return [self.cell(v) for v in value]
        if isinstance(value, dict):
            return {str(k): self.cell(v) for k, v in value.items()}
        return value


class ResultFile:
    """The whole result written to the staging path, within row and byte caps."""

    def __init__(self, schema: pa.Schema, save: dict[str, Any], request: dict[str, Any]) -> None:
        self.path = Path(str(save["path"]))
        self.max_rows = int(request["max_rows"])
        self.max_bytes = int(request["max_bytes"])
        self.bytes = 0
        fmt = str(save["format"])
        self.writer: pq.ParquetWriter | pacsv.CSVWriter
        if fmt == "csv":
            nested = [f.name for f in schema if pa.types.is_nested(f.type)]
            if nested:
                raise ValueError(f"CSV cannot hold the nested column(s) {nested}; save as Parquet")
            self.writer = pacsv.CSVWriter(str(self.path), schema)
        else:
            self.writer = pq.ParquetWriter(str(self.path), schema, compression="zstd")

    def write(self, batch: pa.RecordBatch, rows: int) -> None:
        self.bytes += batch.nbytes
        if rows > self.max_rows:
            raise ResultLimitError(
                f"the result has more than {self.max_rows:,} rows, the most a workspace saves",
                "result_rows",
            )
        if self.bytes > self.max_bytes:
            raise ResultLimitError(
                f"the result is over {self.max_bytes:,} bytes, the most a workspace saves",
                "result_bytes",
            )
        self.writer.write_batch(batch)

    def close(self, rows: int) -> dict[str, Any]:
        self.writer.close()
        return {"rows": rows, "bytes": self.path.stat().st_size}

    def discard(self) -> None:
        with contextlib.suppress(OSError, pa.ArrowException):
            self.writer.close()
        self.path.unlink(missing_ok=True)


def classify(exc: duckdb.Error) -> dict[str, Any]:
    """DuckDB's error as the parent needs it: refused by the configuration, a limit, or a bug."""
    message = str(exc).strip()
    if isinstance(exc, duckdb.OutOfMemoryException):
        # DuckDB names the setting when spill space, not memory, ran out
        limit = "temp" if "max_temp_directory_size" in message else "memory"
        return {"kind": "limit", "limit": limit, "message": message}
    if isinstance(exc, duckdb.PermissionException):
        return {"kind": "refused", "rule": "engine:external-access", "message": message}
    if "configuration has been locked" in message:
        return {"kind": "refused", "rule": "engine:locked-configuration", "message": message}
    if "read-only mode" in message:
        return {"kind": "refused", "rule": "engine:read-only", "message": message}
    if isinstance(exc, duckdb.InterruptException):
        return {"kind": "limit", "limit": "interrupted", "message": message}
    return {"kind": "query", "message": message}


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, bytes):
        return "base64:" + base64.b64encode(value).decode("ascii")
    if isinstance(value, int):
        return str(value)
    return str(value)


def main() -> int:
    # the protocol keeps the original stdout; anything else printed goes to stderr
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    proto_in = sys.stdin.buffer
    first = read_frame(proto_in, MAX_REQUEST_BYTES)
    if first is None:
        return 1
    limits = orjson.loads(first)
    apply_limits(limits)
    os.chdir(str(limits["home_dir"]))
    worker = Worker(limits)
    write_frame(proto_out, {"ok": True, "ready": os.getpid()})
    while (frame := read_frame(proto_in, MAX_REQUEST_BYTES)) is not None:
        request = orjson.loads(frame)
        reply = worker.handle(request)
        reply["id"] = request.get("id")
        write_frame(proto_out, reply)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
