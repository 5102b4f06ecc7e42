"""Benchmark of the synthetic network generator.

Target (issue 3): 100,000 patients with 10 years of history in at most 200 s on 2 cores
(Synthea, in Java, reports about 441 patients/s). The full run generates that network as
OMOP CSV with 2 worker processes, then smaller networks in the Synthea-CSV and FHIR
formats. ``BENCH_SMALL=1`` runs a small version in under a minute.

Prints a readable table; the last line is one JSON object of the figures.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pmhub.synth.service import generate

SMALL = os.environ.get("BENCH_SMALL") == "1"
WORKERS = 2
YEARS = 10
MAIN = 10_000 if SMALL else 100_000
OTHERS = 500 if SMALL else 10_000
SYNTHEA_JAVA_PATIENTS_PER_S = 441


def _cpu() -> float:
    """CPU seconds of this process and its finished worker processes."""
    return _parent_cpu() + _workers_cpu()


def _parent_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _workers_cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime


def run(fmt: str, patients: int, folder: Path) -> dict[str, object]:
    out = folder / fmt
    start = time.perf_counter()
    cpu_start = _cpu()
    parent_start = _parent_cpu()
    result = generate(
        out,
        fmt=fmt,
        sites=3,
        patients=patients,
        years=YEARS,
        seed=20261122,
        workers=WORKERS,
        force=True,
    )
    seconds = time.perf_counter() - start
    cpu = _cpu() - cpu_start
    parent = _parent_cpu() - parent_start
    tables: dict[str, int] = {}
    for rel, rows in result.rows.items():
        site, _, name = rel.partition("/")
        if site != "ground_truth":
            tables[name.removesuffix(".csv")] = tables.get(name.removesuffix(".csv"), 0) + rows
    files = sum(result.files.values())
    shutil.rmtree(out, ignore_errors=True)
    return {
        "format": fmt,
        "patients": patients,
        "years": YEARS,
        "seconds": round(seconds, 1),
        "patients_per_s": round(patients / seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "patients_per_cpu_s": round(patients / cpu, 1),
        "parent_cpu_seconds": round(parent, 1),
        # on two otherwise idle cores: the workers' share split over two, plus the parent's
        "idle_2core_estimate_s": round((cpu - parent) / WORKERS + parent, 1),
        "megabytes": round(files / 1e6, 1),
        "files": len(result.files),
        "rows": dict(sorted(tables.items())),
    }


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="pmhub-bench-synth-"))
    try:
        results = [
            run("omop", MAIN, folder),
            run("synthea-csv", OTHERS, folder),
            run("fhir", OTHERS, folder),
        ]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    size = "small" if SMALL else "full"
    print(f"pmhub synth benchmark ({size}; {WORKERS} workers, {YEARS} years, 3 sites)")
    print(
        f"{'format':<12} {'patients':>9} {'wall s':>7} {'patients/s':>11} {'CPU s':>7} "
        f"{'MB':>7} {'Synthea (Java) patients/s':>26}"
    )
    for r in results:
        cells = (r["format"], r["patients"], r["seconds"], r["patients_per_s"], r["cpu_seconds"])
        print(f"{cells[0]:<12} {cells[1]:>9,} {cells[2]:>7} {cells[3]:>11} {cells[4]:>7}", end="")
        print(f" {r['megabytes']:>7} {SYNTHEA_JAVA_PATIENTS_PER_S:>26}")
    load = os.getloadavg()[0]
    print(f"load average after the runs: {load:.1f} (other work on the machine slows wall time)")
    main_run = results[0]
    print(f"\nrows per table (OMOP, {MAIN:,} patients, all sites):")
    rows = main_run["rows"]
    assert isinstance(rows, dict)
    for name, count in rows.items():
        print(f"  {name:<24} {count:>12,}")
    target = 200.0
    seconds = float(main_run["seconds"])  # type: ignore[arg-type]
    if not SMALL:
        verdict = "met" if seconds <= target else "NOT met"
        print(
            f"\ntarget: 100,000 patients x 10 years in <= {target:.0f} s: {seconds} s ({verdict})"
        )
    print(f"Synthea (Java) reference: about {SYNTHEA_JAVA_PATIENTS_PER_S} patients/s")
    figures = {
        "small": SMALL,
        "workers": WORKERS,
        "cpu_count": os.cpu_count(),
        "runs": results,
        "target_seconds": target,
        "target_met": (seconds <= target) if not SMALL else None,
        "synthea_java_patients_per_s": SYNTHEA_JAVA_PATIENTS_PER_S,
    }
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
