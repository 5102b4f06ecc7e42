"""Stored results: one JSON document per run under the platform home, and a run index.

Layout: ``PMHUB_HOME/quality/<site>/<run id>.json`` and ``PMHUB_HOME/quality/index.json``
(every run: site, id, time, file, pass/fail counts). Files are written to a temporary name
and renamed, so that a crash never leaves half a document or half an index; the index is
read, extended and replaced under an exclusive lock on ``index.lock`` (``flock``, released by
the kernel when a process dies), so that concurrent runs each add their entry and none is
lost. Readers need no lock: a rename replaces the whole file at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pmhub import outputs
from pmhub.quality.errors import NoQualityRunError, QualityOutputError, QualityResultsError

FORMAT = "pmhub-quality/1"
RUN_ID = re.compile(r"[0-9]{8}T[0-9]{12}Z")
INDEX = "index.json"
LOCK = "index.lock"
LOCK_TIMEOUT_S = 60.0


def quality_dir(home: Path) -> Path:
    return home / "quality"


def write_json(path: Path, document: Any, *, make_folder: bool = True) -> None:
    text = json.dumps(document, ensure_ascii=False, indent=1, sort_keys=False)
    write_atomic(path, text.encode("utf-8"), make_folder=make_folder)


def write_atomic(path: Path, data: bytes, *, make_folder: bool = True) -> None:
    """Write through :mod:`pmhub.outputs` (a temporary file of its own, renamed over
    ``path``): readers see the old file or the new one, and concurrent writers never
    share a temporary file. The store makes its own folders; a file the user names
    (``make_folder=False``) must be in a folder that exists."""
    if make_folder:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise QualityOutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    outputs.write_bytes(path, data, error=QualityOutputError)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise QualityResultsError(f"cannot read quality results {path}: {exc}") from exc


def save(home: Path, document: dict[str, Any]) -> Path:
    site, run_id = str(document["site"]), str(document["run_id"])
    path = quality_dir(home) / site / f"{run_id}.json"
    write_json(path, document)
    with index_lock(home):
        try:
            index = load_index(home)
        except QualityResultsError:  # a damaged index is rebuilt from the stored runs
            index = rebuild_index(home)
        index = [r for r in index if (r.get("site"), r.get("run_id")) != (site, run_id)]
        index.append(_entry(home, document, path))
        write_json(quality_dir(home) / INDEX, {"format": FORMAT, "runs": index})
    return path


def _entry(home: Path, document: dict[str, Any], path: Path) -> dict[str, Any]:
    return {
        "site": str(document["site"]),
        "run_id": str(document["run_id"]),
        "finished_at": document.get("finished_at"),
        "file": str(path.relative_to(quality_dir(home))),
        "summary": document.get("summary", {}),
    }


def rebuild_index(home: Path) -> list[dict[str, Any]]:
    """The index entries of every readable run stored under the home, oldest first."""
    entries = []
    for path in sorted(quality_dir(home).glob("*/*.json")):
        if not RUN_ID.fullmatch(path.stem):
            continue
        try:
            document = read_json(path)
        except QualityResultsError:
            continue
        ours = isinstance(document, dict) and document.get("format") == FORMAT
        if ours and (document.get("site"), document.get("run_id")) == (path.parent.name, path.stem):
            entries.append(_entry(home, document, path))
    return sorted(entries, key=lambda e: e["run_id"])


@contextmanager
def index_lock(home: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the exclusive lock on the run index (waiting up to ``timeout`` seconds)."""
    path = quality_dir(home) / LOCK
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise QualityOutputError(f"cannot open the lock {path}: {exc.strerror or exc}") from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise QualityOutputError(
                        f"another process has held {path} for over {timeout:.0f} s",
                        hint="Wait for the other quality run to finish, then try again.",
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def load_index(home: Path) -> list[dict[str, Any]]:
    path = quality_dir(home) / INDEX
    if not path.exists():
        return []
    document = read_json(path)
    runs = document.get("runs") if isinstance(document, dict) else None
    if not isinstance(runs, list):
        raise QualityResultsError(f"the run index {path} has no list of runs")
    return runs


def runs(home: Path, site: str) -> list[dict[str, Any]]:
    return [r for r in load_index(home) if r.get("site") == site]


def load_run(home: Path, site: str, run_id: str | None = None) -> dict[str, Any]:
    """The run with this id, or the site's latest run."""
    if run_id is not None and not RUN_ID.fullmatch(run_id):
        raise NoQualityRunError(
            f"{run_id[:40]!r} is not a run id (they look like 20261122T101500123456Z)",
            hint=f"List the runs with `pmhub quality runs --site {site}`.",
        )
    mine = runs(home, site)
    if run_id is not None:
        mine = [r for r in mine if r.get("run_id") == run_id]
    if not mine:
        which = f"run {run_id}" if run_id else "quality run"
        raise NoQualityRunError(f"site {site!r} has no {which}")
    entry = max(mine, key=lambda r: str(r.get("run_id")))
    path = quality_dir(home) / site / f"{entry['run_id']}.json"
    document = read_json(path)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise QualityResultsError(f"{path} is not a pmhub quality result ({FORMAT})")
    return document
