"""How a quality run uses a PostgreSQL CDW well: statistics, session memory, two connections.

A run is a few dozen aggregate scans of the largest tables. On PostgreSQL three things make
them cheaper, without changing a single result:

- tables that were never analysed (no statistics: the planner guesses, and often spills or
  sorts) are analysed first — the statistics ANALYZE keeps are what autovacuum would keep;
- the session gets ``work_mem`` for in-memory hash aggregates (grouping 6 M measurements by
  concept and person needs some 300 MB; the server default of 4 MB spills to disk) and no
  JIT (it compiles each of the wide aggregate queries for up to a second and a half, more
  than it saves on queries of a few seconds);
- profiles and checks run at once on two connections, since each query uses one core for
  most of its time (grouping sets, ordered-set aggregates and finalize steps do not run in
  parallel workers).

DuckDB already uses every core for each query and needs none of this.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from pmhub.cdm.backends import Backend
from pmhub.sites import Site

WORK_MEM = "256MB"
SESSION = (f"SET work_mem = '{WORK_MEM}'", "SET jit = off")


def _postgres(backend: Backend) -> bool:
    return backend.dialect.name == "postgresql"


def tune_session(backend: Backend) -> None:
    """Session settings for aggregate scans (they end with the connection)."""
    if not _postgres(backend):
        return
    for statement in SESSION:
        with suppress(Exception):  # a server that refuses a setting runs slower, not wrong
            backend.execute(statement)


def never_analysed(backend: Backend) -> list[str]:
    """Tables of the site's schema with no statistics at all: PostgreSQL 14 and later keep
    reltuples -1 until a table is first analysed or vacuumed."""
    if not _postgres(backend):
        return []
    rows = backend.fetchall(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.reltuples < 0 "
        "ORDER BY c.relname"
    )
    return [str(r[0]) for r in rows]


def prepare(backend: Backend) -> None:
    """Analyse what was never analysed, then tune the session."""
    for table in never_analysed(backend):
        with suppress(Exception):  # not the owner: the run goes on with the planner's guesses
            backend.execute(f'ANALYZE "{table}"')
    tune_session(backend)


@contextmanager
def second_connection(site: Site, backend: Backend) -> Iterator[Backend | None]:
    """Another tuned connection to a PostgreSQL CDW, or None (DuckDB, or no connection)."""
    if not _postgres(backend):
        yield None
        return
    try:
        other = site.connect()
    except Exception:  # e.g. the server's connection limit: run on one connection
        yield None
        return
    try:
        tune_session(other)
        yield other
    finally:
        other.close()


class StoppedError(Exception):
    """The checks were stopped because the profiles of the same run failed."""


class Stop:
    """Stops the checks running on the other connection: their next step raises, and the
    query in flight is cancelled on the server."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def guard(
        self, progress: Callable[[int, int, str], None] | None
    ) -> Callable[[int, int, str], None]:
        def step(done: int, total: int, what: str) -> None:
            if self._event.is_set():
                raise StoppedError("stopped: the profiles of this run failed")
            if progress is not None:
                progress(done, total, what)

        return step

    def now(self, backend: Backend) -> None:
        self._event.set()
        connection = getattr(backend, "con", None)  # psycopg's: cancel() is thread-safe
        if connection is not None:
            with suppress(Exception):
                connection.cancel()
