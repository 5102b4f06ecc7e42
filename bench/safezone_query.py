"""Benchmark: workspace queries through the sandbox, from a second process.

Builds a workspace of pseudonymized-looking tables for 100,000 persons (BENCH_SMALL=1:
2,000): person, condition_occurrence (about 5 a person) and measurement (about 3 a person),
with keyed-hash-like person ids. A second process (started with 'spawn', as a service
would be) opens the workspace and sends a mix of five typical aggregate and preview
queries through the engine (SQL check, then a pool of confined workers) at concurrency 1
and 16; each request's wall time is measured from the call to the returned preview.

BENCH_WORKERS sets the pool size (default 2: the machine has 2 cores).
Run from the repository root: .venv/bin/python bench/safezone_query.py
Last line: one JSON object of the figures.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

SMALL = os.environ.get("BENCH_SMALL") == "1"
PERSONS = 2_000 if SMALL else 100_000
REQUESTS = {1: 60, 16: 160} if SMALL else {1: 200, 16: 480}
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
SEED = 20261122
PROJECT = "bench"

QUERIES = (
    "SELECT gender, count(*) AS n FROM person GROUP BY gender ORDER BY gender",
    "SELECT year_of_birth // 10 * 10 AS decade, count(*) AS n FROM person GROUP BY 1 ORDER BY 1",
    "SELECT condition_concept_id, count(DISTINCT person_pid) AS persons"
    " FROM condition_occurrence GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
    "SELECT p.gender, round(avg(m.value_as_number), 2) AS mean"
    " FROM person p JOIN measurement m USING (person_pid) GROUP BY 1 ORDER BY 1",
    "SELECT * FROM person WHERE region = 'R07'",
)


def arrow(columns: dict[str, np.ndarray[Any, Any]]) -> pa.Table:
    return pa.table({name: pa.array(values) for name, values in columns.items()})


def tables(persons: int, seed: int) -> dict[str, pa.Table]:
    rng = np.random.default_rng(seed)
    pids = np.array([f"{x:016x}" for x in rng.integers(0, 2**63, persons)])
    person = arrow(
        {
            "person_pid": pids,
            "gender": rng.choice(["F", "M"], persons),
            "year_of_birth": rng.integers(1930, 2020, persons),
            "region": rng.choice([f"R{i:02d}" for i in range(17)], persons),
        }
    )
    conditions = rng.poisson(5, persons)
    owner = np.repeat(pids, conditions)
    start = np.datetime64("2015-01-01") + rng.integers(0, 3650, owner.size).astype("timedelta64[D]")
    condition = arrow(
        {
            "person_pid": owner,
            "condition_concept_id": rng.choice(np.arange(201826, 201826 + 400), owner.size),
            "condition_start_date": start,
        }
    )
    measures = rng.poisson(3, persons)
    measured = np.repeat(pids, measures)
    measurement = arrow(
        {
            "person_pid": measured,
            "measurement_concept_id": rng.choice([3004410, 3013682, 3027018], measured.size),
            "value_as_number": rng.normal(100, 15, measured.size).round(1),
        }
    )
    return {"person": person, "condition_occurrence": condition, "measurement": measurement}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def client(home: str, requests: dict[int, int], workers: int, out: Any) -> None:
    """The second process: the engine's caller, as the service will be."""
    os.environ["PMHUB_HOME"] = home
    from pmhub.safezone.sandbox import QueryLimits, SandboxLimits, SandboxPool
    from pmhub.safezone.workspace import open_workspace

    workspace = open_workspace(PROJECT)
    limits = QueryLimits(timeout_s=120)
    figures: dict[str, Any] = {}
    with SandboxPool(Path(home) / "tmp" / "sandbox", SandboxLimits(workers=workers)) as pool:
        for sql in QUERIES * workers:  # every worker started and every query seen once
            workspace.query(sql, limits, pool=pool)

        def one(i: int) -> float:
            started = time.perf_counter()
            workspace.query(QUERIES[i % len(QUERIES)], limits, pool=pool)
            return time.perf_counter() - started

        for concurrency, count in requests.items():
            started = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as threads:
                latencies = list(threads.map(one, range(count)))
            wall = time.perf_counter() - started
            figures[str(concurrency)] = {
                "requests": count,
                "rps": count / wall,
                "p50_ms": 1000 * statistics.median(latencies),
                "p99_ms": 1000 * percentile(latencies, 0.99),
            }
    out.send(figures)


def main() -> None:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="pmhub-bench-") as home:
        os.environ["PMHUB_HOME"] = home
        from pmhub.safezone.workspace import create_workspace

        started = time.perf_counter()
        data = tables(PERSONS, SEED)
        loaded = create_workspace(PROJECT).load_tables(data)
        load_s = time.perf_counter() - started
        context = multiprocessing.get_context("spawn")
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=client, args=(home, REQUESTS, WORKERS, send))
        process.start()
        figures = receive.recv()
        process.join()
        if process.exitcode:
            sys.exit(f"the client process failed with status {process.exitcode}")
    table = Table(title=f"workspace queries, {PERSONS:,} persons, {WORKERS} workers")
    for column in ("concurrency", "requests", "requests/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for concurrency, f in figures.items():
        table.add_row(
            concurrency,
            str(f["requests"]),
            f"{f['rps']:.1f}",
            f"{f['p50_ms']:.1f}",
            f"{f['p99_ms']:.1f}",
        )
    console.print(table)
    console.print(f"tables loaded in {load_s:.1f} s: {loaded}")
    result = {
        "bench": "safezone_query",
        "persons": PERSONS,
        "workers": WORKERS,
        "rows": loaded,
        "load_s": round(load_s, 3),
        **{
            f"c{c}_{k}": round(v, 2)
            for c, f in figures.items()
            for k, v in f.items()
            if k != "requests"
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
