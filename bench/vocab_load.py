"""Vocabulary load speed: a generated Athena CONCEPT file into a DuckDB CDW.

Prints rows/s for `pmhub vocab load` (streaming, validated, all-or-nothing, indexes rebuilt)
and for DuckDB's own `read_csv` of the same file into a bare table, in the same run, and
their ratio (target >= 0.5). Full: 5,000,000 rows; BENCH_SMALL=1: 500,000 rows.
Last line: one JSON object of the figures.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from pmhub.cdm import schema
from pmhub.cdm.backends.duckdb import DuckDBBackend

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "cdm" / "fixtures" / "athena"
SMALL = os.environ.get("BENCH_SMALL") == "1"
ROWS = 500_000 if SMALL else 5_000_000
SEED = 20261122
REPEATS = 3
DOMAINS = np.array(["Condition", "Drug", "Measurement", "Procedure", "Observation", "Device"])
VOCABS = np.array(["SNOMED", "RxNorm", "LOINC", "ICD10CM", "KCD7", "ATC"])
CLASSES = np.array(["Clinical Finding", "Clinical Drug", "Lab Test", "Procedure", "Ingredient"])


def generate_concept_file(path: Path, rows: int, seed: int) -> None:
    """Athena's layout: tab-separated, header, no quoting, YYYYMMDD dates."""
    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    options = pacsv.WriteOptions(delimiter="\t", quoting_style="none", include_header=False)
    header = (
        "concept_id\tconcept_name\tdomain_id\tvocabulary_id\tconcept_class_id\t"
        "standard_concept\tconcept_code\tvalid_start_date\tvalid_end_date\tinvalid_reason\n"
    )
    with path.open("wb") as out:
        out.write(header.encode())
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            ids = np.arange(start + 1, start + n + 1)
            words = rng.integers(0, 100_000, size=(n, 3))
            names = [f"finding {a} of {b} with {c}" for a, b, c in words.tolist()]
            standard = np.where(rng.random(n) < 0.6, "S", np.where(rng.random(n) < 0.5, "C", ""))
            years = rng.integers(1970, 2024, size=n)
            table = pa.table(
                {
                    "concept_id": pa.array(ids),
                    "concept_name": names,
                    "domain_id": pa.array(DOMAINS[rng.integers(0, len(DOMAINS), n)]),
                    "vocabulary_id": pa.array(VOCABS[rng.integers(0, len(VOCABS), n)]),
                    "concept_class_id": pa.array(CLASSES[rng.integers(0, len(CLASSES), n)]),
                    "standard_concept": pa.array(standard),
                    "concept_code": [f"C{i:09d}" for i in ids.tolist()],
                    "valid_start_date": [f"{y}0101" for y in years.tolist()],
                    "valid_end_date": pa.array(np.full(n, "20991231")),
                    "invalid_reason": pa.array(np.where(standard == "", "U", "")),
                }
            )
            pacsv.write_csv(table, out, options)


def time_pmhub(folder: Path, db: Path) -> tuple[float, int]:
    backend = DuckDBBackend(db)
    schema.init_cdm(backend, source_name="bench", abbreviation="bench", holder="bench")
    start = time.perf_counter()
    result = schema.load_vocabulary(backend, folder)
    elapsed = time.perf_counter() - start
    backend.close()
    return elapsed, result.rows["concept"]


def time_duckdb_read_csv(path: Path, db: Path) -> tuple[float, int]:
    con = duckdb.connect(str(db))
    start = time.perf_counter()
    con.execute(
        "CREATE TABLE concept AS SELECT * FROM read_csv(?, delim='\t', header=true, quote='', "
        "escape='', dateformat='%Y%m%d', columns={'concept_id': 'INTEGER', "
        "'concept_name': 'VARCHAR', 'domain_id': 'VARCHAR', 'vocabulary_id': 'VARCHAR', "
        "'concept_class_id': 'VARCHAR', 'standard_concept': 'VARCHAR', "
        "'concept_code': 'VARCHAR', 'valid_start_date': 'DATE', 'valid_end_date': 'DATE', "
        "'invalid_reason': 'VARCHAR'})",
        [str(path)],
    )
    elapsed = time.perf_counter() - start
    rows = con.execute("SELECT count(*) FROM concept").fetchone()
    con.close()
    return elapsed, int(rows[0]) if rows else 0


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="pmhub-bench-vocab-"))
    try:
        folder = work / "athena"
        shutil.copytree(FIXTURE, folder)
        concept_file = folder / "CONCEPT.csv"
        t0 = time.perf_counter()
        generate_concept_file(concept_file, ROWS, SEED)
        generated = time.perf_counter() - t0
        size_mb = concept_file.stat().st_size / 1e6
        # alternate the two, REPEATS times each, and keep medians: other work on a
        # 2-core machine moves single timings by tens of percent
        duck_runs, pmhub_runs = [], []
        for i in range(REPEATS):
            duck_runs.append(time_duckdb_read_csv(concept_file, work / f"bare{i}.duckdb"))
            pmhub_runs.append(time_pmhub(folder, work / f"cdw{i}.duckdb"))
            for db in work.glob("*.duckdb*"):
                db.unlink()
        duck_s, duck_rows = sorted(duck_runs)[REPEATS // 2]
        pmhub_s, pmhub_rows = sorted(pmhub_runs)[REPEATS // 2]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert duck_rows == pmhub_rows == ROWS, (duck_rows, pmhub_rows)
    figures = {
        "rows": ROWS,
        "file_mb": round(size_mb, 1),
        "pmhub_seconds": round(pmhub_s, 2),
        "pmhub_rows_per_s": round(ROWS / pmhub_s),
        "duckdb_read_csv_seconds": round(duck_s, 2),
        "duckdb_read_csv_rows_per_s": round(ROWS / duck_s),
        "ratio": round(duck_s / pmhub_s, 3),
        "target_ratio": 0.5,
        "repeats": REPEATS,
        "generate_seconds": round(generated, 1),
    }
    print(f"vocabulary load: {ROWS:,}-row Athena CONCEPT file ({size_mb:.0f} MB), 2 cores,")
    print(f"median of {REPEATS} alternating runs")
    print(f"{'loader':<34}{'seconds':>10}{'rows/s':>14}")
    print(f"{'pmhub vocab load (DuckDB CDW)':<34}{pmhub_s:>10.2f}{ROWS / pmhub_s:>14,.0f}")
    print(f"{'DuckDB read_csv, bare table':<34}{duck_s:>10.2f}{ROWS / duck_s:>14,.0f}")
    print(f"ratio pmhub/read_csv: {figures['ratio']:.2f} (target >= 0.5)")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
