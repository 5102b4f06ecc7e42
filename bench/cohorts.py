"""Benchmark: the example cohorts on a generated site, DuckDB and PostgreSQL.

Generates 100,000 and 1,000,000 persons (BENCH_SMALL=1: 20,000 and 100,000) with
pmhub.cohorts.benchdata, loads them into a fresh DuckDB CDW, and times each example
definition of the library (concept-set resolution, planning, SQL, writing the cohort
table). Growth is the time ratio between the two sizes (10 is linear). PostgreSQL runs
the large size when PMHUB_TEST_POSTGRES_URL names a server.

Run from the repository root: .venv/bin/python bench/cohorts.py
Last line: one JSON object of the figures.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pmhub.cdm import schema
from pmhub.cdm.backends import Backend
from pmhub.cdm.backends.duckdb import DuckDBBackend
from pmhub.cohorts import benchdata, library, service

SMALL = os.environ.get("BENCH_SMALL") == "1"
SIZES = (20_000, 100_000) if SMALL else (100_000, 1_000_000)
SEED = 20261122
console = Console()


def _prepare(backend: Backend, persons: int) -> float:
    schema.init_cdm(backend, source_name="bench", abbreviation="bench", holder="pmhub")
    started = time.perf_counter()
    benchdata.load(backend, persons, SEED)
    return time.perf_counter() - started


def _run_all(backend: Backend) -> dict[str, tuple[float, int]]:
    out = {}
    for name in library.names():
        result = service.generate_on(library.example(name), backend)
        out[name] = (result.seconds, result.rows)
    return out


def duckdb_run(folder: Path, persons: int) -> tuple[float, dict[str, tuple[float, int]]]:
    with DuckDBBackend(folder / f"bench_{persons}.duckdb") as backend:
        load = _prepare(backend, persons)
        return load, _run_all(backend)


def postgres_run(url: str, persons: int) -> tuple[float, dict[str, tuple[float, int]]] | None:
    import psycopg

    from pmhub.cdm.backends.postgres import PostgresBackend

    name = f"pmhub_bench_{uuid.uuid4().hex[:8]}"
    try:
        with PostgresBackend(url, name) as backend:
            load = _prepare(backend, persons)
            backend.execute("ANALYZE")
            return load, _run_all(backend)
    finally:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def main() -> None:
    figures: dict[str, object] = {"small": SMALL, "sizes": list(SIZES)}
    table = Table("engine", "persons", "cohort", "rows", "seconds", title="example cohorts")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for persons in SIZES:
            load, times = duckdb_run(Path(tmp), persons)
            runs[persons] = times
            figures[f"duckdb_load_s_{persons}"] = round(load, 2)
            for name, (seconds, rows) in times.items():
                table.add_row("duckdb", f"{persons:,}", name, f"{rows:,}", f"{seconds:.2f}")
                figures[f"duckdb_s_{name}_{persons}"] = round(seconds, 3)
    small, large = SIZES
    for name in library.names():
        figures[f"duckdb_growth_{name}"] = round(runs[large][name][0] / runs[small][name][0], 2)
    figures["duckdb_max_s_large"] = round(max(t for t, _ in runs[large].values()), 3)
    url = os.environ.get("PMHUB_TEST_POSTGRES_URL")
    if url:
        result = postgres_run(url, large)
        if result is not None:
            load, times = result
            figures[f"postgres_load_s_{large}"] = round(load, 2)
            for name, (seconds, rows) in times.items():
                table.add_row("postgresql", f"{large:,}", name, f"{rows:,}", f"{seconds:.2f}")
                figures[f"postgres_s_{name}_{large}"] = round(seconds, 3)
    console.print(table)
    growth = Table("cohort", f"growth {small:,} → {large:,} (10 = linear)")
    for name in library.names():
        growth.add_row(name, str(figures[f"duckdb_growth_{name}"]))
    console.print(growth)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
