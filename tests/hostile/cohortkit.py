"""What the cohort and file cases of the hostile suite share: CDWs with data on DuckDB
and PostgreSQL, the real CLI (in this process, or in one of its own), and a snapshot of
everything a refused command must leave as it was.

The CDWs are built once per module (a small benchdata network) and registered in each
test's own platform home; tests that generate cohorts use ids of their own. The fixtures
are made visible to the suite by ``conftest.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pmhub.cdm import schema
from pmhub.cdm.backends.duckdb import DuckDBBackend
from pmhub.cohorts import benchdata, library
from pmhub.cohorts.definition import dumps
from pmhub.settings import load_settings
from pmhub.sites import Site, SiteRegistry
from tests.clirun import run_cli
from tests.conftest import POSTGRES_ENV

PERSONS = 1500
CLOSED_PORT_URL = "postgresql://postgres@127.0.0.1:1/postgres"  # nothing listens on port 1


@pytest.fixture(scope="module")
def duckdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("hostile-duckdb") / "ward.duckdb"
    with DuckDBBackend(path) as backend:
        schema.init_cdm(backend, source_name="ward", abbreviation="ward", holder="ward")
        benchdata.load(backend, PERSONS, 5)
    return f"duckdb:///{path.resolve()}"


@pytest.fixture(scope="module")
def postgresql_url() -> Iterator[str]:
    import psycopg

    from pmhub.cdm.backends.postgres import PostgresBackend

    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL tests need a server (see .ci/run)")
    name = f"pmhub_hostile_{uuid.uuid4().hex[:10]}"
    with PostgresBackend(url, name) as backend:
        schema.init_cdm(backend, source_name="ward", abbreviation="ward", holder="ward")
        benchdata.load(backend, PERSONS, 5)
    yield f"{url}?schema={name}"
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(params=["duckdb", "postgresql"])
def cdw_url(request: pytest.FixtureRequest) -> str:
    """The URL of a CDW with data, once per backend."""
    return str(request.getfixturevalue(f"{request.param}_url"))


def register(name: str, url: str) -> Site:
    return SiteRegistry(load_settings()).add(name, url)


@pytest.fixture
def ward(cdw_url: str) -> Site:
    """The site 'ward' in this test's home, on each backend."""
    return register("ward", cdw_url)


# --- running the CLI -------------------------------------------------------------------


def refused(expected: int, *args: str) -> str:
    """Run ``pmhub ARGS``; assert the exit code and one message with a hint, no traceback.
    The output comes back with its whitespace (and the console's wrapping) collapsed."""
    code, out, err = run_cli(*args)
    text = out + err
    assert code == expected, text
    assert "error:" in err, text
    assert "hint:" in err, text
    assert "Traceback" not in text, text
    return " ".join(text.split())


def succeeds(*args: str) -> str:
    code, out, err = run_cli(*args)
    assert code == 0, out + err
    return " ".join((out + err).split())


def subprocess_cli(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``pmhub ARGS`` in a process of its own (``prefix`` runs it under setpriv, unshare…)."""
    code = "import sys; from pmhub.cli import main; main(sys.argv[1:])"
    return subprocess.run(
        [*prefix, sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


# --- what must not change --------------------------------------------------------------

DATABASE_FILES = (".duckdb", ".wal")  # compared by their tables: opening one touches it


def _tables(site: Site) -> dict[str, list[tuple[Any, ...]]]:
    with site.connect() as backend:
        return {
            "cohort": backend.fetchall("SELECT * FROM cohort ORDER BY 1, 2, 3, 4"),
            "cohort_definition": backend.fetchall("SELECT * FROM cohort_definition ORDER BY 1"),
        }


def _files(folder: Path) -> dict[str, tuple[int, int] | None]:
    found: dict[str, tuple[int, int] | None] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_file() and path.suffix not in DATABASE_FILES:
            found[name] = (path.stat().st_size, path.stat().st_mtime_ns)
        else:
            found[name] = None  # folders and databases: that they exist
    return found


def snapshot(sites: list[Site], *folders: Path) -> dict[str, Any]:
    """The cohort tables of each site and every file below the folders."""
    return {
        "tables": {s.name: _tables(s) for s in sites},
        "files": {str(f): _files(f) for f in folders},
    }


# --- definitions -----------------------------------------------------------------------


def example(which: str = "type2_diabetes", **changes: Any) -> dict[str, Any]:
    """A library definition as plain data, with top-level fields changed."""
    data: dict[str, Any] = json.loads(dumps(library.example(which)))
    data.update(changes)
    return data


def write_definition(folder: Path, data: object, name: str = "def.json") -> Path:
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path
