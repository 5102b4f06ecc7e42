"""pmhub's own tables in a site's CDW: load log, steps, files, quarantine, person map.

A load is identified by its *key*: the format and the checksum of every input file. Its
row in ``pmhub_load_log`` holds the id bases (the largest id of each CDM table when the
load began), so a load that was killed and started again assigns the very same ids.
Each step (a CDM table, the quarantine, the eras) commits in one transaction together
with its row in ``pmhub_load_step``; a rerun skips the steps that committed.

``pmhub_person_map`` (source patient id → person_id) stays inside the site's CDW: it is
how the same patient keeps one person_id across loads, and nothing exports it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pmhub.cdm.backends import Backend
from pmhub.cdm.spec import tables

PMHUB_TABLES = (
    "pmhub_load_log",
    "pmhub_load_step",
    "pmhub_load_file",
    "pmhub_quarantine",
    "pmhub_person_map",
    "pmhub_derived_period",
)


def ddl(backend: Backend) -> list[str]:
    double = backend.dialect.float
    return [
        "CREATE TABLE IF NOT EXISTS pmhub_load_log (load_id BIGINT PRIMARY KEY, "
        "load_key VARCHAR(64) NOT NULL, format VARCHAR(20) NOT NULL, source TEXT, "
        "status VARCHAR(20) NOT NULL, started_at TIMESTAMP, finished_at TIMESTAMP, "
        "id_bases TEXT, report TEXT)",
        "CREATE TABLE IF NOT EXISTS pmhub_load_step (load_id BIGINT NOT NULL, "
        "step VARCHAR(100) NOT NULL, rows_written BIGINT, seconds "
        f"{double}, finished_at TIMESTAMP, PRIMARY KEY (load_id, step))",
        "CREATE TABLE IF NOT EXISTS pmhub_load_file (load_id BIGINT NOT NULL, "
        "file TEXT NOT NULL, checksum VARCHAR(80), bytes BIGINT, encoding VARCHAR(20), "
        f"rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, seconds {double})",
        "CREATE TABLE IF NOT EXISTS pmhub_quarantine (load_id BIGINT NOT NULL, file TEXT, "
        "line BIGINT, field TEXT, reason TEXT, raw TEXT)",
        "CREATE TABLE IF NOT EXISTS pmhub_person_map (source_id TEXT PRIMARY KEY, "
        "person_id BIGINT NOT NULL, load_id BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS pmhub_derived_period (person_id BIGINT PRIMARY KEY)",
    ]


def ensure_tables(backend: Backend) -> None:
    with backend.transaction():
        for statement in ddl(backend):
            backend.execute(statement)
        if "sha256" in backend.columns("pmhub_load_file"):
            # a CDW from before BLAKE3: its files' checksums say which hash they are
            backend.execute("ALTER TABLE pmhub_load_file RENAME COLUMN sha256 TO checksum")
            backend.execute("ALTER TABLE pmhub_load_file ALTER COLUMN checksum TYPE VARCHAR(80)")
            backend.execute(
                "UPDATE pmhub_load_file SET checksum = 'sha256:' || checksum "
                "WHERE checksum IS NOT NULL"
            )


def legacy_loads(backend: Backend) -> bool:
    """Whether a load here may be keyed on SHA-256 (recorded before BLAKE3): one whose
    files say so, or one that never finished."""
    rows = backend.fetchall(
        "SELECT (SELECT count(*) FROM pmhub_load_file WHERE checksum LIKE 'sha256:%') "
        "+ (SELECT count(*) FROM pmhub_load_log WHERE status <> 'done')"
    )
    return bool(rows[0][0])


@dataclass
class Load:
    load_id: int
    key: str
    status: str
    bases: dict[str, int]
    report: dict[str, Any] | None


def id_bases(backend: Backend) -> dict[str, int]:
    """The largest id of every CDM table with a single-column primary key."""
    bases: dict[str, int] = {}
    for spec in tables().values():
        pk = spec.primary_key
        if spec.schema != "CDM" or pk is None or pk.datatype != "integer":
            continue
        rows = backend.fetchall(f"SELECT max({pk.name}) FROM {spec.name}")
        bases[spec.name] = int(rows[0][0] or 0)
    rows = backend.fetchall("SELECT max(person_id) FROM pmhub_person_map")
    bases["person"] = max(bases["person"], int(rows[0][0] or 0))
    return bases


def find(backend: Backend, key: str) -> Load | None:
    rows = backend.fetchall(
        "SELECT load_id, status, id_bases, report FROM pmhub_load_log WHERE load_key = ? "
        "ORDER BY load_id DESC",
        [key],
    )
    if not rows:
        return None
    load_id, status, bases, report = rows[0]
    return Load(int(load_id), key, str(status), json.loads(bases), _json(report))


def _json(text: str | None) -> dict[str, Any] | None:
    return json.loads(text) if text else None


def begin(backend: Backend, key: str, fmt: str, source: str) -> Load:
    """A new load, or the unfinished one with the same key (resumed with its id bases):
    one that runs, was interrupted, failed, or was left 'running' by a process that died."""
    with backend.transaction():
        existing = find(backend, key)
        if existing is not None and existing.status == "done":
            return existing
        if existing is not None:
            backend.execute(
                "UPDATE pmhub_load_log SET status = 'running', report = NULL WHERE load_id = ?",
                [existing.load_id],
            )
            return Load(existing.load_id, key, "running", existing.bases, None)
        # steps outlive a log row someone deleted: never reuse their load id
        rows = backend.fetchall(
            "SELECT coalesce(max(load_id), 0) + 1 FROM (SELECT load_id FROM pmhub_load_log "
            "UNION ALL SELECT load_id FROM pmhub_load_step) ids"
        )
        load_id = int(rows[0][0])
        bases = id_bases(backend)
        backend.execute(
            "INSERT INTO pmhub_load_log (load_id, load_key, format, source, status, "
            "started_at, id_bases) VALUES (?, ?, ?, ?, 'running', ?, ?)",
            [load_id, key, fmt, source, _now(), json.dumps(bases)],
        )
    return Load(load_id, key, "running", bases, None)


def stop(backend: Backend, load_id: int, status: str, why: str, at: str) -> None:
    """Mark a load that ended before its accounting: ``interrupted`` or ``failed``, with
    the reason and the phase it was in (its committed steps stay, and resume)."""
    with backend.transaction():
        backend.execute(
            "UPDATE pmhub_load_log SET status = ?, finished_at = ?, report = ? WHERE load_id = ?",
            [status, _now(), json.dumps({"stopped": why, "at": at}), load_id],
        )


@dataclass(frozen=True)
class Unfinished:
    load_id: int
    format: str
    source: str
    status: str  # running (its process died, or it still runs), interrupted, failed
    steps: int  # steps committed: rows of it are in the CDW


def unfinished(backend: Backend, but: int) -> list[Unfinished]:
    """Loads other than ``but`` that never finished yet committed steps: their rows are
    in the CDW without their accounting, until the same input is loaded again."""
    rows = backend.fetchall(
        "SELECT l.load_id, l.format, l.source, l.status, count(s.step) FROM pmhub_load_log l "
        "JOIN pmhub_load_step s ON s.load_id = l.load_id WHERE l.status <> 'done' "
        "AND l.load_id <> ? GROUP BY l.load_id, l.format, l.source, l.status ORDER BY 1",
        [but],
    )
    return [Unfinished(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4])) for r in rows]


def done_steps(backend: Backend, load_id: int) -> dict[str, int]:
    rows = backend.fetchall(
        "SELECT step, rows_written FROM pmhub_load_step WHERE load_id = ?", [load_id]
    )
    return {str(r[0]): int(r[1] or 0) for r in rows}


@contextmanager
def step(backend: Backend, load_id: int, name: str) -> Iterator[list[int]]:
    """One committed step: the caller's writes and the step's log row, all or nothing.

    The caller appends the rows it wrote to the yielded list.
    """
    started = dt.datetime.now()
    written: list[int] = []
    with backend.transaction():
        yield written
        backend.execute(
            "INSERT INTO pmhub_load_step (load_id, step, rows_written, seconds, finished_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [load_id, name, sum(written), (dt.datetime.now() - started).total_seconds(), _now()],
        )


def finish(backend: Backend, load_id: int, report: dict[str, Any]) -> None:
    with backend.transaction():
        backend.execute("DELETE FROM pmhub_load_file WHERE load_id = ?", [load_id])
        for f in report["files"]:
            backend.execute(
                "INSERT INTO pmhub_load_file (load_id, file, checksum, bytes, encoding, "
                "rows_read, rows_loaded, rows_quarantined, seconds) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    load_id,
                    f["file"],
                    f["checksum"],
                    f["bytes"],
                    f["encoding"],
                    f["read"],
                    f["loaded"],
                    f["quarantined"],
                    f["seconds"],
                ],
            )
        backend.execute(
            "UPDATE pmhub_load_log SET status = 'done', finished_at = ?, report = ? "
            "WHERE load_id = ?",
            [_now(), json.dumps(report), load_id],
        )


def _now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)
