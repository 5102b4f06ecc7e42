"""Benchmark: federated logistic regression with Flower against local-only, pooled and the
true risks, on feature tables drawn from a known risk model (pmhub.federation.simulate).

Five sites × 50,000 persons (BENCH_SMALL=1: 5 × 5,000), each a SuperNode process on
127.0.0.1 beside one SuperLink; FedAvg, 10 rounds. Prints the comparison table (AUROC and
calibration slope on each site's held-out part), the wall time per round and in total
beside the pooled fit of the same model, and the bytes sent per round.

Run from the repository root: .venv/bin/python bench/federated.py
Last line: one JSON object of the figures.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from pmhub.federation import run, simulate, table
from pmhub.predict import evaluate

SMALL = os.environ.get("BENCH_SMALL") == "1"
SITES = 5
PERSONS = 5_000 if SMALL else 50_000
ROUNDS = 3 if SMALL else 10
console = Console()


def truth(paths: dict[str, Path], settings: run.Settings) -> tuple[float, dict[str, float]]:
    ys, risks, per_site = [], [], {}
    for site, path in paths.items():
        data = table.load(site, path, "outcome")
        test = table.held_out(data.y, settings.test_share, settings.seed, site)
        risk = np.load(path.with_suffix(".truth.npy"))[test]
        per_site[site] = evaluate.auroc(data.y[test], risk) or 0.0
        ys.append(data.y[test])
        risks.append(risk)
    return evaluate.auroc(np.concatenate(ys), np.concatenate(risks)) or 0.0, per_site


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="pmhub-bench-federated-") as tmp:
        folder = Path(tmp)
        paths = simulate.write(folder, n=PERSONS, seed=2026, sites=SITES)
        settings = run.Settings(rounds=ROUNDS)
        started = time.perf_counter()
        report = run.federate_tables(paths, "outcome", folder / "out", settings)
        wall = time.perf_counter() - started
        truth_all, truth_site = truth(paths, settings)
    shown = Table(title=f"{SITES} sites × {PERSONS:,} persons, FedAvg, {ROUNDS} rounds")
    for column in ("site", "local", "federated", "pooled", "truth", "slope fed.", "slope pooled"):
        shown.add_column(column)
    for site, m in report["sites"].items():
        shown.add_row(
            site,
            f"{m['local']['auroc']:.4f}",
            f"{m['federated']['auroc']:.4f}",
            f"{m['pooled']['auroc']:.4f}",
            f"{truth_site[site]:.4f}",
            f"{m['federated']['calibration_slope']:.3f}",
            f"{m['pooled']['calibration_slope']:.3f}",
        )
    console.print(shown)
    seconds = report["seconds"]
    figures = {
        "sites": SITES,
        "persons_per_site": PERSONS,
        "rounds": ROUNDS,
        "pooled_auroc": round(report["pooled_auroc"], 4),
        "federated_auroc": round(report["federated_auroc"], 4),
        "local_auroc": {s: round(v, 4) for s, v in report["local_auroc"].items()},
        "truth_auroc": round(truth_all, 4),
        "federated_over_pooled": round(report["federated_auroc"] / report["pooled_auroc"], 4),
        "federated_calibration_slope": round(report["federated_calibration_slope"], 3),
        "pooled_calibration_slope": round(report["pooled_calibration_slope"], 3),
        "seconds": seconds,
        "seconds_per_round": round(seconds / ROUNDS, 2),
        "wall_seconds": round(wall, 1),
        "pooled_seconds": report["pooled_seconds"],
        "bytes_per_round": report["federated"]["bytes_per_round"],
    }
    console.print(
        f"federated run {seconds:.1f} s ({figures['seconds_per_round']} s a round, the hub's "
        f"clock), pooled fit {report['pooled_seconds']:.3f} s; "
        f"{figures['bytes_per_round']:,} bytes a round"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
