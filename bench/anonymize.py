"""Anonymization speed and information loss: pmhub against anjana on UCI Adult, and 1M persons.

1. UCI Adult (8 quasi-identifiers, the shipped hierarchies, k=5, suppression <= 1 %):
   pmhub's optimal search and anjana 1.2.3 in one run, on the same input; the loss of
   both releases measured with the same function (ARX's "Loss", BENCHMARKS.md). anjana
   pins packages that break pmhub's venv, so it runs from its own venv, created here
   under bench/.peers/anjana (gitignored) on first use.
2. A generated extract of 1,000,000 persons, released file to file under a policy with
   pseudonyms, per-person date shifts, rounding, micro-aggregation, top coding and a k=5,
   distinct 2-diverse generalization.

BENCH_SMALL=1 uses 5,000 Adult rows and 100,000 persons, and runs anjana only if its venv
already exists. The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pmhub.privacy import hierarchy, models, policy, qitable, search, service
from pmhub.privacy.keys import KeyStore
from pmhub.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
ADULT = ROOT.parent / "shared" / "data" / "adult"
PEER = ROOT / "bench" / ".peers" / "anjana"
DATA = ROOT / "bench" / ".data"
SMALL = os.environ.get("BENCH_SMALL") == "1"
QIS = [
    "sex",
    "age",
    "race",
    "marital-status",
    "education",
    "native-country",
    "workclass",
    "occupation",
]
K, SUPPRESSION = 5, 0.01


def adult_frame(rows: int) -> pd.DataFrame:
    return pd.read_csv(ADULT / "adult.csv", sep=";", dtype=str).head(rows)


def adult_trees() -> list[hierarchy.Hierarchy]:
    return [hierarchy.load_csv(ADULT / f"adult_hierarchy_{q}.csv") for q in QIS]


def pmhub_adult(rows: int) -> dict[str, Any]:
    """The whole in-memory anonymization: compact table, search, recoded records."""
    frame = adult_frame(rows)
    trees = adult_trees()
    started = time.perf_counter()
    table = qitable.from_frame(frame, QIS, trees, ["salary-class"])
    found = search.optimal(table, [models.KAnonymity(K)], SUPPRESSION)
    suppressed = found.check.suppressed[found.check.part.ids]
    released = {
        q: np.where(
            suppressed, "*", trees[i].labels(found.levels[i])[table.label_codes(i, found.levels[i])]
        )
        for i, q in enumerate(QIS)
    }
    seconds = time.perf_counter() - started
    assert len(released[QIS[0]]) == table.distinct
    return {
        "seconds": seconds,
        "search_seconds": found.seconds,
        "loss": found.utility.loss,
        "levels": found.levels_by_name(table),
        "suppressed": found.utility.suppressed_records,
        "k_achieved": int(found.check.part.sizes[~found.check.suppressed].min()),
        "checked": found.checked,
        "lattice": found.lattice_size,
    }


def pmhub_adult_release(rows: int, work: Path) -> float:
    """File to file through the policy engine, with verification and the review report."""
    source = work / "adult.csv"
    adult_frame(rows).to_csv(source, sep=";", index=False)
    columns: dict[str, Any] = {
        q: {"action": "generalize", "hierarchy": {"file": str(ADULT / f"adult_hierarchy_{q}.csv")}}
        for q in QIS
    }
    columns["salary-class"] = {"action": "keep", "sensitive": True}
    raw = {
        "name": "adult",
        "version": 1,
        "dataset": "adult",
        "columns": columns,
        "models": {"k": K, "max_suppression": SUPPRESSION},
    }
    started = time.perf_counter()
    service.anonymize(source, policy.parse(raw), work / "adult-release", None)
    return time.perf_counter() - started


def ensure_peer() -> Path | None:
    python = PEER / "bin" / "python"
    if python.exists():
        return python
    if SMALL:
        return None
    print("creating anjana's venv under bench/.peers/anjana (once) ...", file=sys.stderr)
    subprocess.run(["python3.11", "-m", "venv", str(PEER)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "anjana==1.2.3"], check=True)
    return python


def anjana_adult(rows: int, work: Path) -> dict[str, Any] | None:
    python = ensure_peer()
    if python is None:
        return None
    out = work / "anjana.csv"
    run = subprocess.run(
        [
            str(python),
            str(ROOT / "bench" / "peers" / "anjana_adult.py"),
            str(ADULT),
            str(K),
            str(SUPPRESSION * 100),
            str(rows),
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    released = pd.read_csv(out, sep=";", dtype=str)
    result["loss"] = release_loss(released, rows, result["levels"])
    result["k_achieved"] = int(released.groupby(QIS).size().min())
    return result


def release_loss(released: pd.DataFrame, rows: int, levels: dict[str, int]) -> float:
    """ARX's loss of a full-domain release from which suppressed records were removed."""
    trees = dict(zip(QIS, adult_trees(), strict=True))
    removed = rows - len(released)
    values = []
    for q in QIS:
        tree, level = trees[q], levels[q]
        cover = dict(zip(tree.labels(level), tree.cover(level), strict=True))
        covered = released[q].map(cover).to_numpy(dtype=float)
        cell = (covered - 1) / (tree.size - 1)
        values.append((cell.sum() + removed) / rows)
    return float(np.prod(1 + np.array(values)) ** (1 / len(values)) - 1)


# --- 1M persons ---------------------------------------------------------------------------

SURNAMES = list("김이박최정강조윤장임한오서신권황안송류홍")
SYLLABLES = list("민서지현수영준우진호연은재성경미정훈희태")


def persons(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    regions = hierarchy.regions()
    units = sorted(
        k for k in regions.province_of if " " in k and k.split()[0] not in regions.short_names
    )
    kcd = [
        "E11.9",
        "I10",
        "J45.9",
        "K21.0",
        "M54.5",
        "N18.3",
        "F32.9",
        "C34.9",
        "I25.1",
        "E78.5",
        "J18.9",
        "K29.7",
        "G47.3",
        "L20.9",
        "H25.9",
        "R51",
        "Z00.0",
    ]
    born = pd.Timestamp("1930-01-01") + pd.to_timedelta(rng.integers(0, 90 * 365, n), unit="D")
    visits = pd.Timestamp("2018-01-01") + pd.to_timedelta(rng.integers(0, 7 * 365, n), unit="D")
    names = (
        np.array(SURNAMES)[rng.integers(0, len(SURNAMES), n)].astype(object)
        + np.array(SYLLABLES)[rng.integers(0, len(SYLLABLES), n)].astype(object)
        + np.array(SYLLABLES)[rng.integers(0, len(SYLLABLES), n)].astype(object)
    )
    return pd.DataFrame(
        {
            "person_id": "P" + pd.Series(np.arange(1, n + 1)).astype(str),
            "name": names,
            "phone": [f"010-{a:04d}-{b:04d}" for a, b in rng.integers(0, 10000, (n, 2))],
            "birth_date": born.strftime("%Y-%m-%d"),
            "sex": rng.choice(["M", "F"], n),
            "sigungu": np.array(units, dtype=object)[rng.integers(0, len(units), n)],
            "diagnosis": np.array(kcd, dtype=object)[rng.integers(0, len(kcd), n)],
            "visit_date": visits.strftime("%Y-%m-%d"),
            "weight_kg": np.round(rng.normal(65, 12, n), 1).astype(str),
            "hba1c": np.round(rng.normal(6.0, 1.0, n), 1).astype(str),
            "income": rng.integers(0, 300_000_000, n).astype(str),
        }
    )


PERSON_POLICY: dict[str, Any] = {
    "name": "bench-persons",
    "version": 1,
    "project": "bench",
    "dataset": "persons",
    "columns": {
        "person_id": {"action": "pseudonym"},
        "name": {"action": "drop"},
        "phone": {"action": "drop"},
        "birth_date": {"action": "generalize", "hierarchy": {"type": "date"}},
        "sex": {"action": "generalize", "hierarchy": {"type": "flat"}},
        "sigungu": {"action": "generalize", "hierarchy": {"type": "region"}},
        "diagnosis": {"action": "keep", "sensitive": True},
        "visit_date": {"action": "date_shift", "max_days": 30},
        "weight_kg": {"action": "round", "base": 5},
        "hba1c": {"action": "microaggregate", "k": 5},
        "income": {"action": "top_bottom", "top": 150_000_000},
    },
    "models": {
        "k": K,
        "max_suppression": SUPPRESSION,
        "l_diversity": [{"column": "diagnosis", "l": 2}],
    },
}


STREAM_LIMIT_MB = 64


def persons_file(n: int) -> Path:
    DATA.mkdir(parents=True, exist_ok=True)
    source = DATA / f"persons_{n}.csv"
    if not source.exists():
        persons(n, seed=20261122).to_csv(source, index=False)
    return source


def persons_release(n: int, work: Path) -> dict[str, Any]:
    source = persons_file(n)
    os.environ["PMHUB_HOME"] = str(work / "home")
    store = KeyStore(load_settings())
    store.create("bench")
    started, cpu = time.perf_counter(), time.process_time()
    release = service.anonymize(
        source,
        policy.parse(copy.deepcopy(PERSON_POLICY)),
        work / "persons-release",
        store.get("bench"),
        memory_limit="1GB",  # DuckDB spills beyond this: the table need not fit in memory
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    table = release.report["tables"]["persons"]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rows": n,
        "loss": table["utility"]["loss"],
        "levels": table["search"]["levels"],
        "suppressed": table["achieved"]["suppressed"],
        "min_class": table["achieved"]["min_class"],
    }


def streamed_release(n: int, work: Path) -> dict[str, Any]:
    """The same extract with birth dates cut to years (so few distinct QI rows), through a
    DuckDB limited to less memory than the input file: the records stream and spill."""
    source = persons_file(n)
    raw = copy.deepcopy(PERSON_POLICY)
    raw["columns"]["birth_date"] = {"action": "date_generalize", "to": "year"}
    started, cpu = time.perf_counter(), time.process_time()
    release = service.anonymize(
        source,
        policy.parse(raw),
        work / "persons-streamed",
        KeyStore(load_settings()).get("bench"),
        memory_limit=f"{STREAM_LIMIT_MB}MB",
    )
    table = release.report["tables"]["persons"]
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "input_mb": source.stat().st_size / 1e6,
        "rows_out": table["rows_out"],
        "models_hold": table["achieved"]["models_hold"],
    }


def main() -> None:
    rows = 5_000 if SMALL else 30_162
    people = 100_000 if SMALL else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ours = pmhub_adult(rows)
        release_seconds = pmhub_adult_release(rows, work)
        theirs = anjana_adult(rows, work)
        big = persons_release(people, work)
        streamed = streamed_release(people, work)
    print(f"UCI Adult, {rows:,} rows, 8 QIs, k={K}, suppression <= {SUPPRESSION:.0%}")
    print(f"{'tool':<10} {'seconds':>8} {'loss':>7} {'suppressed':>10} {'k':>4}  levels")
    print(
        f"{'pmhub':<10} {ours['seconds']:>8.3f} {ours['loss']:>7.4f} {ours['suppressed']:>10}"
        f" {ours['k_achieved']:>4}  {list(ours['levels'].values())}"
        f"  ({ours['checked']} of {ours['lattice']} nodes checked)"
    )
    if theirs:
        print(
            f"{'anjana':<10} {theirs['seconds']:>8.3f} {theirs['loss']:>7.4f}"
            f" {rows - theirs['rows_out']:>10} {theirs['k_achieved']:>4}"
            f"  {[theirs['levels'][q] for q in QIS]}"
        )
    else:
        print("anjana     skipped (BENCH_SMALL=1 and bench/.peers/anjana not built yet)")
    print(f"pmhub file-to-file release with verification and report: {release_seconds:.3f} s")
    print(
        f"{big['rows']:,} generated persons, file to file: {big['seconds']:.1f} s"
        f" ({big['cpu_seconds']:.1f} s of CPU),"
        f" loss {big['loss']:.4f}, levels {big['levels']}, suppressed {big['suppressed']},"
        f" smallest class {big['min_class']}"
    )
    print(
        f"the same with birth years, DuckDB limited to {STREAM_LIMIT_MB} MB for a"
        f" {streamed['input_mb']:.0f} MB input: {streamed['seconds']:.1f} s"
        f" ({streamed['cpu_seconds']:.1f} s of CPU), {streamed['rows_out']:,} rows,"
        f" models hold: {streamed['models_hold']}"
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of the benchmark process: {peak_mb:,.0f} MB")
    print(
        json.dumps(
            {
                "adult_rows": rows,
                "pmhub_seconds": round(ours["seconds"], 4),
                "pmhub_search_seconds": round(ours["search_seconds"], 4),
                "pmhub_release_seconds": round(release_seconds, 4),
                "anjana_seconds": round(theirs["seconds"], 4) if theirs else None,
                "pmhub_loss": round(ours["loss"], 4),
                "anjana_loss": round(theirs["loss"], 4) if theirs else None,
                "pmhub_suppressed": ours["suppressed"],
                "anjana_suppressed": rows - theirs["rows_out"] if theirs else None,
                "k_achieved": ours["k_achieved"],
                "anjana_k_achieved": theirs["k_achieved"] if theirs else None,
                "persons_rows": big["rows"],
                "persons_seconds": round(big["seconds"], 2),
                "persons_cpu_seconds": round(big["cpu_seconds"], 2),
                "persons_loss": round(big["loss"], 4),
                "streamed_seconds": round(streamed["seconds"], 2),
                "streamed_memory_limit_mb": STREAM_LIMIT_MB,
                "streamed_input_mb": round(streamed["input_mb"], 1),
                "peak_rss_mb": round(peak_mb),
            }
        )
    )


if __name__ == "__main__":
    main()
