"""The hostile-input suite: every verb that reads input, given what an attacker or a bad
export would give it, through the real CLI entry (``pmhub.cli.main``), on DuckDB and
PostgreSQL.

Each case asserts the exit code, a message without a traceback, and the accounting: for a
load, every file's read = loaded + quarantined and the CDW changed by exactly the rows the
load reports; for a refused input, nothing changed at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pmhub.cdm.backends import Backend
from pmhub.cdm.spec import tables
from pmhub.cli import main
from pmhub.settings import load_settings
from pmhub.sites import SiteRegistry

from ..conftest import BACKENDS, postgres_url
from .cohortkit import cdw_url, duckdb_url, postgresql_url, ward  # noqa: F401 (fixtures)

CDM_TABLES = [n for n, t in tables().items() if t.schema == "CDM"]
PMHUB_TABLES = ["pmhub_load_log", "pmhub_load_step", "pmhub_load_file", "pmhub_quarantine"]


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    """Run ``pmhub ARGS`` in this process; its exit code and output."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def refused(result: Result, code: int, *words: str) -> None:
    """The command failed with ``code``, an error line and a hint, and no traceback."""
    assert result.code == code, result.text
    assert "Traceback" not in result.text
    assert "error:" in result.err
    assert "hint:" in result.err
    for word in words:
        assert word in result.text, (word, result.text)


@dataclass
class Site:
    name: str
    kind: str

    def connect(self) -> Backend:
        return SiteRegistry(load_settings()).get(self.name).connect()

    def counts(self) -> dict[str, int]:
        """Rows of every CDM table and of pmhub's load tables (absent ones: 0)."""
        with self.connect() as backend:
            present = backend.tables()
            return {t: backend.count(t) if t in present else 0 for t in CDM_TABLES + PMHUB_TABLES}

    def last_load(self) -> dict[str, object]:
        with self.connect() as backend:
            [(load_id, status)] = backend.fetchall(
                "SELECT load_id, status FROM pmhub_load_log ORDER BY load_id DESC LIMIT 1"
            )
            files = backend.fetchall(
                "SELECT file, rows_read, rows_loaded, rows_quarantined FROM pmhub_load_file "
                "WHERE load_id = ? ORDER BY file",
                [load_id],
            )
            quarantined = backend.fetchall(
                "SELECT file, line, field, reason, raw FROM pmhub_quarantine WHERE load_id = ? "
                "ORDER BY file, line",
                [load_id],
            )
            steps = dict(
                backend.fetchall(
                    "SELECT step, rows_written FROM pmhub_load_step WHERE load_id = ?", [load_id]
                )
            )
        return {
            "id": int(load_id),
            "status": str(status),
            "files": {str(f): (int(r), int(lo), int(q)) for f, r, lo, q in files},
            "quarantine": quarantined,
            "steps": steps,
        }


def accounted(site: Site, before: dict[str, int]) -> dict[str, object]:
    """The last load balanced: each file read = loaded + quarantined, the quarantine holds
    exactly the rows counted, and every table grew by the rows its step wrote, no more."""
    load = site.last_load()
    assert load["status"] == "done"
    files = load["files"]
    assert isinstance(files, dict)
    for name, (read, loaded, quarantined) in files.items():
        assert read == loaded + quarantined, name
    quarantine = load["quarantine"]
    assert isinstance(quarantine, list)
    assert len(quarantine) == sum(q for _, _, q in files.values())
    after = site.counts()
    steps = load["steps"]
    assert isinstance(steps, dict)
    for table in CDM_TABLES:
        written = steps.get(f"table:{table}", 0) + steps.get(f"derived:{table}", 0)
        assert after[table] - before[table] == written, table
    assert after["pmhub_quarantine"] - before["pmhub_quarantine"] == len(quarantine)
    return load


def unchanged(site: Site, before: dict[str, int]) -> None:
    """A refused input left the CDW as it was (a failed load's log row aside)."""
    after = site.counts()
    for table in [*CDM_TABLES, "pmhub_quarantine", "pmhub_load_step", "pmhub_load_file"]:
        assert after[table] == before[table], table


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Iterator[Site]:
    """A registered site with an initialised CDM, once per backend (a PostgreSQL site's
    schema, named after it, is dropped after the test)."""
    name = f"h{uuid.uuid4().hex[:12]}"
    args = ["sites", "add", name]
    if request.param == "postgresql":
        args += ["--cdw", postgres_url()]
    assert cli(capsys, *args).code == 0
    result = cli(capsys, "cdm", "init", "--site", name)
    assert result.code == 0, result.text
    yield Site(name, request.param)
    if request.param == "postgresql":
        import psycopg

        with psycopg.connect(postgres_url(), autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path
