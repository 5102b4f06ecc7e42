"""Benchmark: the example cohorts on a generated site, DuckDB and PostgreSQL.

Generates 100,000, 250,000, 500,000 and 1,000,000 persons (BENCH_SMALL=1: 20,000,
50,000 and 100,000) with pmhub.cohorts.benchdata, loads each into a fresh DuckDB CDW, and
times each example definition of the library (concept-set resolution, planning, SQL,
writing the cohort table; the best of two runs) and its attrition report (one run). The
growth table shows each cohort's time at every size and the ratio of the largest to the
smallest (persons grow 10-fold: 10 is linear, less is better than linear). PostgreSQL
runs the smallest and the largest size when PMHUB_TEST_POSTGRES_URL names a server (its
schemas are dropped afterwards).

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
SIZES = (20_000, 50_000, 100_000) if SMALL else (100_000, 250_000, 500_000, 1_000_000)
REPEATS = 2  # each cohort runs twice; the faster run counts (the machine is shared)
SEED = 20261122
console = Console()


def _prepare(backend: Backend, persons: int) -> float:
    schema.init_cdm(backend, source_name="bench", abbreviation="bench", holder="pmhub")
    started = time.perf_counter()
    benchdata.load(backend, persons, SEED)
    return time.perf_counter() - started


Times = dict[str, tuple[float, int, float]]  # cohort → (seconds, rows, attrition seconds)


def _run_all(backend: Backend) -> Times:
    out = {}
    for name in library.names():
        definition = library.example(name)
        runs = [service.generate_on(definition, backend) for _ in range(REPEATS)]
        started = time.perf_counter()
        service.attrition(definition, service.as_engine(backend))  # the report `run` shows
        out[name] = (min(r.seconds for r in runs), runs[0].rows, time.perf_counter() - started)
    return out


def duckdb_run(folder: Path, persons: int) -> tuple[float, Times]:
    with DuckDBBackend(folder / f"bench_{persons}.duckdb") as backend:
        load = _prepare(backend, persons)
        return load, _run_all(backend)


def postgres_run(url: str, persons: int) -> tuple[float, Times]:
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


def _record(
    engine: str, persons: int, load: float, times: Times, table: Table, figures: dict[str, object]
) -> None:
    key = "postgres" if engine == "postgresql" else engine
    figures[f"{key}_load_s_{persons}"] = round(load, 2)
    for name, (seconds, rows, attrition) in times.items():
        table.add_row(
            engine, f"{persons:,}", name, f"{rows:,}", f"{seconds:.2f}", f"{attrition:.2f}"
        )
        figures[f"{key}_s_{name}_{persons}"] = round(seconds, 3)
        figures[f"{key}_attrition_s_{name}_{persons}"] = round(attrition, 3)


def _growth(engine: str, runs: dict[int, Times], figures: dict[str, object]) -> Table:
    """Each cohort's seconds at every size; largest / smallest against the persons' ratio."""
    sizes = sorted(runs)
    small, large = sizes[0], sizes[-1]
    key = "postgres" if engine == "postgresql" else engine
    table = Table(
        "cohort",
        *(f"{n:,}" for n in sizes),
        f"growth (persons ×{large // small})",
        title=f"{engine}: seconds by persons",
    )
    for name in library.names():
        seconds = [runs[n][name][0] for n in sizes]
        growth = round(seconds[-1] / max(seconds[0], 1e-9), 2)
        figures[f"{key}_growth_{name}"] = growth
        table.add_row(name, *(f"{s:.2f}" for s in seconds), str(growth))
    totals = [sum(t for t, _, _ in runs[n].values()) for n in sizes]
    figures[f"{key}_growth_all"] = round(totals[-1] / totals[0], 2)
    label = f"all {len(library.names())}"
    table.add_row(label, *(f"{t:.2f}" for t in totals), str(figures[f"{key}_growth_all"]))
    return table


def main() -> None:
    figures: dict[str, object] = {"small": SMALL, "sizes": list(SIZES), "repeats": REPEATS}
    table = Table(
        "engine", "persons", "cohort", "rows", "seconds", "attrition s", title="example cohorts"
    )
    duckdb_runs: dict[int, Times] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for persons in SIZES:
            load, times = duckdb_run(Path(tmp), persons)
            duckdb_runs[persons] = times
            _record("duckdb", persons, load, times, table, figures)
    large = SIZES[-1]
    figures["duckdb_max_s_large"] = round(max(t for t, _, _ in duckdb_runs[large].values()), 3)
    growth_tables = [_growth("duckdb", duckdb_runs, figures)]
    url = os.environ.get("PMHUB_TEST_POSTGRES_URL")
    if url:
        postgres_runs: dict[int, Times] = {}
        for persons in (SIZES[0], large):
            load, times = postgres_run(url, persons)
            postgres_runs[persons] = times
            _record("postgresql", persons, load, times, table, figures)
        figures["postgres_max_s_large"] = round(
            max(t for t, _, _ in postgres_runs[large].values()), 3
        )
        growth_tables.append(_growth("postgresql", postgres_runs, figures))
    console.print(table)
    for growth in growth_tables:
        console.print(growth)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
