"""Shared fixtures: a platform home per test, and CDW backends on DuckDB and PostgreSQL.

PostgreSQL tests read the server's URL from PMHUB_TEST_POSTGRES_URL (``.ci/run`` sets it)
and skip with the reason when it is unset. Each test gets its own schema, dropped after,
so that tests and parallel workers never see each other's tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from pmhub.cdm import schema
from pmhub.cdm.backends import Backend
from pmhub.cdm.backends.duckdb import DuckDBBackend

# A shared, loaded machine makes example generation and each example slow: that is not a
# failure of the property. Health checks of speed and deadlines are off; the others stay.
hypothesis_settings.register_profile(
    "pmhub", suppress_health_check=[HealthCheck.too_slow], deadline=None
)
hypothesis_settings.load_profile("pmhub")

POSTGRES_ENV = "PMHUB_TEST_POSTGRES_URL"
BACKENDS = ("duckdb", "postgresql")


@pytest.fixture(autouse=True)
def pmhub_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs with its own empty platform home and no stray pmhub.toml."""
    home = tmp_path / "pmhub-home"
    monkeypatch.setenv("PMHUB_HOME", str(home))
    monkeypatch.setenv("PMHUB_CONFIG", str(tmp_path / "pmhub.toml"))
    monkeypatch.delenv("PMHUB_DEBUG", raising=False)
    return home


def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL tests need a server (see .ci/run)")
    return url


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """(URL, schema) of a fresh PostgreSQL schema, dropped after the test."""
    import psycopg

    url = postgres_url()
    name = f"pmhub_test_{uuid.uuid4().hex[:12]}"
    yield url, name
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def open_backend(kind: str, tmp_path: Path, pg: tuple[str, str] | None) -> Backend:
    if kind == "duckdb":
        return DuckDBBackend(tmp_path / "cdw" / "site.duckdb")
    from pmhub.cdm.backends.postgres import PostgresBackend

    assert pg is not None
    return PostgresBackend(pg[0], pg[1])


@pytest.fixture(params=BACKENDS)
def empty_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A connection to an empty CDW, once per backend."""
    pg = request.getfixturevalue("pg_schema") if request.param == "postgresql" else None
    backend = open_backend(request.param, tmp_path, pg)
    yield backend
    backend.close()


@pytest.fixture
def cdm_backend(empty_backend: Backend) -> Backend:
    """A CDW with the CDM v5.4 schema and the shipped vocabulary, once per backend."""
    schema.init_cdm(empty_backend, source_name="Test site", abbreviation="test", holder="pmhub")
    return empty_backend
