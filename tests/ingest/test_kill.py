"""A real kill: the import runs as a process, gets SIGKILL mid-run, and is started again;
the CDW ends as one clean run leaves it."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pmhub.cdm import schema
from pmhub.cdm.backends import Backend, connect
from pmhub.cdm.spec import tables
from pmhub.ingest import ingest

from ..conftest import postgres_url

WORKER = Path(__file__).with_name("kill_worker.py")
KILL_AT = "writing measurement"  # several tables committed, the largest one in flight
COMPARED = [n for n, t in tables().items() if t.schema == "CDM" and n != "cdm_source"]


def generator() -> ModuleType:
    path = Path(__file__).parents[2] / "bench" / "synthea_csv.py"
    spec = importlib.util.spec_from_file_location("synthea_csv", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    generator().generate(folder, patients=200, seed=11)
    return folder


def target(kind: str, tmp_path: Path, name: str, pg: tuple[str, str] | None) -> tuple[str, str]:
    if kind == "duckdb":
        return f"duckdb:///{tmp_path / name}.duckdb", "main"
    assert pg is not None
    return pg[0], f"{pg[1]}_{name}"


def initialised(url: str, schema_name: str) -> Backend:
    backend = connect(url, schema=schema_name)
    schema.init_cdm(backend, source_name="kill", abbreviation="kill", holder="pmhub")
    return backend


def snapshot(backend: Backend) -> dict[str, list[tuple[object, ...]]]:
    result = {}
    for name in [*COMPARED, "pmhub_quarantine", "pmhub_person_map"]:
        rows = backend.fetchall(f"SELECT * FROM {name}")
        result[name] = sorted(rows, key=repr)
    return result


def kill_mid_run(url: str, schema_name: str, export: Path) -> str:
    process = subprocess.Popen(
        [sys.executable, str(WORKER), url, schema_name, "synthea-csv", str(export)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line.strip())
        if line.startswith(KILL_AT):
            os.kill(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=120)
    assert process.returncode == -signal.SIGKILL, seen
    return seen[-1]


@pytest.mark.parametrize("kind", ["duckdb", "postgresql"])
def test_killed_import_resumes_to_the_clean_result(
    kind: str, tmp_path: Path, export: Path, request: pytest.FixtureRequest
) -> None:
    pg = None
    if kind == "postgresql":
        postgres_url()
        pg = request.getfixturevalue("pg_schema")
    clean_url, clean_schema = target(kind, tmp_path, "clean", pg)
    killed_url, killed_schema = target(kind, tmp_path, "killed", pg)
    with initialised(clean_url, clean_schema) as clean:
        ingest(clean, "synthea-csv", export)
        expected = snapshot(clean)
    initialised(killed_url, killed_schema).close()
    assert kill_mid_run(killed_url, killed_schema, export) == KILL_AT
    with connect(killed_url, schema=killed_schema) as backend:
        steps = backend.count("pmhub_load_step")
        assert 0 < steps < 20  # killed with part of the load committed
        report = ingest(backend, "synthea-csv", export)
        assert report.resumed
        assert snapshot(backend) == expected
        assert ingest(backend, "synthea-csv", export).already_loaded
    if pg is not None:
        import psycopg

        with psycopg.connect(pg[0], autocommit=True) as con:
            for name in (clean_schema, killed_schema):
                con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
