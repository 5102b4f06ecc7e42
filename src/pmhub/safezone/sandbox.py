"""A pool of confined query workers: start them, send each one query, kill what overruns.

Each worker is a separate process (``sandbox_worker.py``) with an emptied environment, its
own spill directory, kernel resource limits and a locked, read-only DuckDB. The parent
waits for each reply against a wall-clock deadline; a worker that overruns it, dies, or
hits a resource limit is killed and replaced before the error is raised, so the next
query finds a fresh process. Workers never write into a workspace: a saved result goes to
the one staging path the caller names, and the caller moves it into place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

import pmhub
from pmhub.safezone.errors import (
    QueryError,
    QueryLimitError,
    QueryTimeoutError,
    SqlRefusedError,
    WorkspaceError,
)
from pmhub.safezone.sandbox_worker import FRAME

MAX_REPLY_BYTES = 64 << 20
START_TIMEOUT_S = 30.0
MB = 1 << 20


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    """Limits of every worker process of a pool (fixed when a worker starts)."""

    workers: int = 2
    memory_limit_mb: int = 1024
    threads: int = 1
    max_temp_mb: int = 2048
    # the kernel cap on the worker's whole address space, beyond DuckDB's buffer manager
    address_space_mb: int = 0  # 0: memory_limit_mb + 3072
    # the kernel cap on any one file a worker writes (spill files, a saved result)
    max_file_mb: int = 4096
    max_queries_per_worker: int = 1000

    def __post_init__(self) -> None:
        _in_range("workers", self.workers, 1, 64)
        _in_range("memory_limit_mb", self.memory_limit_mb, 64, 1 << 20)
        _in_range("threads", self.threads, 1, 256)
        _in_range("max_temp_mb", self.max_temp_mb, 0, 1 << 24)
        _in_range("address_space_mb", self.address_space_mb, 0, 1 << 24)
        _in_range("max_file_mb", self.max_file_mb, 1, 1 << 24)
        _in_range("max_queries_per_worker", self.max_queries_per_worker, 1, 1 << 30)

    def address_space(self) -> int:
        return self.address_space_mb or self.memory_limit_mb + 3072

    def file_size(self) -> int:
        return max(self.max_temp_mb, self.max_file_mb) + 64


@dataclasses.dataclass(frozen=True)
class QueryLimits:
    """Limits of one query: its time, its preview, and what may be saved of its result."""

    timeout_s: float = 60.0
    preview_rows: int = 100
    preview_bytes: int = 2 * MB
    cell_chars: int = 1000
    max_result_rows: int = 5_000_000
    max_result_bytes: int = 512 * MB
    max_sql_bytes: int = 100_000

    def __post_init__(self) -> None:
        _in_range("timeout_s", self.timeout_s, 0.1, 3600.0)
        _in_range("preview_rows", self.preview_rows, 0, 10_000)
        _in_range("preview_bytes", self.preview_bytes, 1024, 64 * MB)
        _in_range("cell_chars", self.cell_chars, 16, 1_000_000)
        _in_range("max_result_rows", self.max_result_rows, 1, 1_000_000_000)
        _in_range("max_result_bytes", self.max_result_bytes, 1024, 64 << 30)
        _in_range("max_sql_bytes", self.max_sql_bytes, 16, 1 << 20)


def _in_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise WorkspaceError(f"limit {name}={value!r} is outside {low}..{high}")


def query_request(
    db: Path, sql: str, limits: QueryLimits, save: tuple[Path, str] | None = None
) -> dict[str, Any]:
    """The message a worker runs: the database, the (already checked) SQL and the limits."""
    return {
        "db": str(db),
        "sql": sql,
        "timeout_s": limits.timeout_s,
        "preview_rows": limits.preview_rows,
        "preview_bytes": limits.preview_bytes,
        "cell_chars": limits.cell_chars,
        "max_rows": limits.max_result_rows,
        "max_bytes": limits.max_result_bytes,
        "save": {"path": str(save[0]), "format": save[1]} if save else None,
    }


class WorkerDiedError(Exception):
    """The worker's pipe closed: it crashed, was killed by the kernel, or hit a limit."""


class WorkerTimeoutError(Exception):
    pass


class SandboxWorker:
    """The parent's handle on one worker process."""

    def __init__(self, limits: SandboxLimits, scratch_root: Path) -> None:
        self.limits = limits
        # DuckDB may touch its spill folder even with external access off; HOME (where it
        # would look for extensions to install) is kept out of that folder, so that no
        # INSTALL finds a writable place to download to
        self.temp_dir = scratch_root / f"worker-{uuid.uuid4().hex}"
        home = self.temp_dir / "home"
        spill = self.temp_dir / "spill"
        home.mkdir(parents=True)
        spill.mkdir()
        self.queries = 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pmhub.safezone.sandbox_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_worker_env(home),
            cwd=home,
            close_fds=True,
            start_new_session=True,  # a Ctrl-C to the server's group is the pool's to pass on
        )
        self._buffer = b""
        self._ids = itertools.count(1)
        try:
            self._send(
                {
                    "memory_limit_mb": limits.memory_limit_mb,
                    "threads": limits.threads,
                    "max_temp_mb": limits.max_temp_mb,
                    "address_space_mb": limits.address_space(),
                    "file_size_mb": limits.file_size(),
                    "temp_dir": str(spill),
                    "home_dir": str(home),
                }
            )
            self._receive(time.monotonic() + START_TIMEOUT_S)
        except (WorkerDiedError, WorkerTimeoutError, OSError) as exc:
            self.kill()
            raise WorkspaceError(
                f"the query worker could not start: {exc}",
                hint="Check that this Python can import duckdb, pyarrow and orjson.",
                status=503,
            ) from exc

    def request(self, payload: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        self.queries += 1
        request_id = next(self._ids)
        self._send({**payload, "id": request_id})
        reply = self._receive(time.monotonic() + timeout_s)
        if reply.get("id") != request_id:
            raise WorkerDiedError(
                f"reply to request {reply.get('id')} while waiting for {request_id}"
            )
        return reply

    def _send(self, payload: dict[str, Any]) -> None:
        body = orjson.dumps(payload)
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(FRAME.pack(len(body)) + body)
            stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise WorkerDiedError("the worker's input is closed") from exc

    def _receive(self, deadline: float) -> dict[str, Any]:
        head = self._read_exactly(FRAME.size, deadline)
        (size,) = FRAME.unpack(head)
        if size > MAX_REPLY_BYTES:
            raise WorkerDiedError(f"a reply of {size} bytes is over the limit")
        reply: dict[str, Any] = orjson.loads(self._read_exactly(size, deadline))
        return reply

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        stdout = self.proc.stdout
        assert stdout is not None
        fd = stdout.fileno()
        while len(self._buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerTimeoutError()
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                raise WorkerTimeoutError()
            chunk = os.read(fd, max(size - len(self._buffer), 1 << 16))
            if not chunk:
                raise WorkerDiedError(self._death())
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the worker closed its output"
        if code < 0:
            return f"the worker was killed by {signal.Signals(-code).name}"
        return f"the worker exited with status {code}"

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    @property
    def pid(self) -> int:
        return self.proc.pid


def _worker_env(home: Path) -> dict[str, str]:
    """Only what Python needs: no PMHUB_* settings, tokens or keys reach a worker."""
    package_root = Path(pmhub.__file__).resolve().parents[1]
    return {
        "PATH": os.defpath,
        "PYTHONPATH": str(package_root),
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": str(home),
        "TMPDIR": str(home),
        "LANG": "C.UTF-8",
    }


class SandboxPool:
    """Up to ``limits.workers`` workers, each running one query at a time; thread-safe."""

    def __init__(self, scratch_root: Path, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self.scratch_root = scratch_root
        self._idle: queue.Queue[SandboxWorker | None] = queue.Queue()
        self._lock = threading.Lock()
        self._all: set[SandboxWorker] = set()
        self._closed = False
        for _ in range(self.limits.workers):
            self._idle.put(None)  # a worker is started when first needed

    def run(self, payload: dict[str, Any], limits: QueryLimits) -> dict[str, Any]:
        """Send one query; return the worker's reply, or raise the typed error it means."""
        worker = self._acquire(limits.timeout_s)
        try:
            reply = worker.request(payload, limits.timeout_s)
        except WorkerTimeoutError:
            self._release(worker, keep=False)
            raise QueryTimeoutError(
                f"the query ran past its limit of {limits.timeout_s:g} s and was stopped"
            ) from None
        except WorkerDiedError as exc:
            self._release(worker, keep=False)
            raise QueryLimitError(
                f"the query worker died while running the query ({exc}); the query most "
                f"likely needed more than the {self.limits.address_space():,} MB a worker "
                "may use",
                limit="memory",
            ) from None
        except BaseException:
            self._release(worker, keep=False)
            raise
        # a worker that hit a limit may hold half-freed memory or spill files: replace it
        self._release(worker, keep=reply.get("ok") or reply.get("kind") != "limit")
        return self._result(reply)

    def _result(self, reply: dict[str, Any]) -> dict[str, Any]:
        if reply.get("ok"):
            return reply
        kind, message = reply.get("kind"), str(reply.get("message", ""))
        if kind == "refused":
            raise SqlRefusedError(
                f"the workspace's engine refused the query: {_first_line(message)}",
                rule=str(reply.get("rule", "engine")),
            )
        if kind == "limit":
            raise QueryLimitError(self._limit_message(reply), limit=str(reply.get("limit")))
        raise QueryError(f"the query failed: {_first_line(message)}")

    def _limit_message(self, reply: dict[str, Any]) -> str:
        limit = reply.get("limit")
        if limit == "memory":
            return (
                f"the query needed more than the {self.limits.memory_limit_mb:,} MB of memory "
                "a workspace query may use"
            )
        if limit == "temp":
            return (
                f"the query needed more than the {self.limits.max_temp_mb:,} MB of spill "
                "space a workspace query may use"
            )
        return str(reply.get("message", "the query hit a limit"))

    def _acquire(self, wait_s: float) -> SandboxWorker:
        if self._closed:
            raise WorkspaceError("the query pool is closed", status=503)
        try:
            slot = self._idle.get(timeout=wait_s)
        except queue.Empty:
            raise QueryTimeoutError(
                f"all {self.limits.workers} query workers stayed busy for {wait_s:g} s"
            ) from None
        if slot is not None and slot.proc.poll() is None:
            return slot
        if slot is not None:
            self._forget(slot)
        try:
            return self._start()
        except BaseException:
            self._idle.put(None)
            raise

    def _start(self) -> SandboxWorker:
        worker = SandboxWorker(self.limits, self.scratch_root)
        with self._lock:
            self._all.add(worker)
        return worker

    def _release(self, worker: SandboxWorker, keep: bool) -> None:
        if keep and not self._closed and worker.queries < self.limits.max_queries_per_worker:
            self._idle.put(worker)
            return
        self._forget(worker)
        if not self._closed:
            self._idle.put(None)

    def _forget(self, worker: SandboxWorker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.kill()

    def idle(self) -> int:
        """How many workers (started or not) are free for a query now."""
        return self._idle.qsize()

    def pids(self) -> list[int]:
        """Process ids of the running workers (for tests and operators)."""
        with self._lock:
            return [w.pid for w in self._all if w.proc.poll() is None]

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_line(message: str) -> str:
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else "no message"
