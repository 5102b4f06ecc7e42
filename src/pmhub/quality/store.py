"""Stored results: one JSON document per run under the platform home, and a run index.

Layout: ``PMHUB_HOME/quality/<site>/<run id>.json`` and ``PMHUB_HOME/quality/index.json``
(every run: site, id, time, file, pass/fail counts). Files are written to a temporary name
and renamed, so that a crash never leaves half a document or half an index.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from pmhub.quality.errors import NoQualityRunError, QualityOutputError, QualityResultsError

FORMAT = "pmhub-quality/1"
RUN_ID = re.compile(r"[0-9]{8}T[0-9]{12}Z")
INDEX = "index.json"


def quality_dir(home: Path) -> Path:
    return home / "quality"


def write_json(path: Path, document: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, ensure_ascii=False, indent=1, sort_keys=False)
        os.replace(tmp, path)
    except OSError as exc:
        raise QualityOutputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise QualityResultsError(f"cannot read quality results {path}: {exc}") from exc


def save(home: Path, document: dict[str, Any]) -> Path:
    site, run_id = str(document["site"]), str(document["run_id"])
    path = quality_dir(home) / site / f"{run_id}.json"
    write_json(path, document)
    index = load_index(home)
    index.append(
        {
            "site": site,
            "run_id": run_id,
            "finished_at": document["finished_at"],
            "file": str(path.relative_to(quality_dir(home))),
            "summary": document["summary"],
        }
    )
    write_json(quality_dir(home) / INDEX, {"format": FORMAT, "runs": index})
    return path


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
