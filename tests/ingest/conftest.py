"""Fixtures for ingest tests: a writable copy of the Synthea fixture export, and helpers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pmhub.cdm.backends import Backend
from pmhub.ingest.service import IngestReport

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def synthea_dir(tmp_path: Path) -> Path:
    """A copy of the small Synthea v3.0 export, free to edit."""
    target = tmp_path / "synthea"
    shutil.copytree(FIXTURES / "synthea", target)
    return target


def counts(backend: Backend, tables: list[str]) -> dict[str, int]:
    return {t: backend.count(t) for t in tables}


def quarantine(backend: Backend) -> list[tuple[str, int, str, str, str]]:
    rows = backend.fetchall(
        "SELECT file, line, field, reason, raw FROM pmhub_quarantine ORDER BY file, line"
    )
    return [(str(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]


def balanced(report: IngestReport) -> bool:
    """Every file: read = loaded + quarantined."""
    return all(f.read == f.loaded + f.quarantined for f in report.files)


def account(report: IngestReport, file: str) -> tuple[int, int, int]:
    f = next(f for f in report.files if f.file == file)
    return f.read, f.loaded, f.quarantined


def append_line(path: Path, line: str, encoding: str = "utf-8") -> None:
    with path.open("a", encoding=encoding, newline="") as fh:
        fh.write(line + "\n")
