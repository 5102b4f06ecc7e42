"""Data-quality speed: every profile and check on one site's CDW (target: 100,000 patients
in under 2 minutes on 2 cores).

The CDW is generated here, vectorised with numpy and loaded through Backend.insert_batches:
a plausible 100,000-person DuckDB CDW (visits, conditions, drugs, measurements, procedures,
observations, deaths) in which no check should fail. Prints seconds per phase and the
totals; BENCH_SMALL=1 runs 5,000 persons; BENCH_BACKEND=postgresql runs on the PostgreSQL
server that PMHUB_TEST_POSTGRES_URL names (schema BENCH_PG_SCHEMA, default
pmhub_bench_quality, dropped afterwards). Last line: one JSON object of the figures.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pmhub.cdm import ddl, schema, spec
from pmhub.cdm.backends import Backend
from pmhub.settings import load_settings
from pmhub.sites import SiteRegistry

SMALL = os.environ.get("BENCH_SMALL") == "1"
PERSONS = 5_000 if SMALL else 100_000
SEED = 20261122
Arr = np.ndarray[Any, Any]
Columns = dict[str, "pa.Array[Any]"]
AS_OF = dt.date(2026, 1, 1)

MALE, FEMALE, ASIAN, NOT_HISPANIC = 8507, 8532, 8515, 38003564
EHR, EHR_ENCOUNTER, LAB, PRESCRIPTION, DEATH_CERT = 32817, 32827, 32856, 32838, 32815
VISITS = np.array([9202, 9201, 9203])  # outpatient, inpatient, emergency
VISIT_CODES = np.array(["OP", "IP", "ER"])
DRUGS = np.array([1503297, 1332418, 1545958, 1367500, 1112807, 1125315, 1322184, 974166])
PROCEDURES = np.array([4163951, 4230911, 4249893, 4125350])
OBSERVATIONS = np.array([43054909])
PREGNANT = 4299535
# typical mean and sd of the results in their first listed unit; others: mid-range
TYPICAL = {
    3004249: (125, 15),
    3012888: (78, 10),
    3027018: (75, 12),
    3024171: (16, 3),
    3020891: (36.6, 0.4),
    40762499: (97, 2),
    3025315: (65, 12),
    3036277: (165, 9),
    3038553: (24, 3.5),
    3004410: (6.0, 0.9),
    3004501: (105, 25),
    3027114: (190, 35),
    3009966: (115, 30),
    3007070: (52, 12),
    3022192: (140, 60),
    3016723: (0.9, 0.25),
    3000963: (13.8, 1.5),
    3019550: (140, 3),
    3023103: (4.2, 0.4),
    3006923: (25, 10),
    3013721: (25, 10),
    3022217: (1.1, 0.2),
}


def _data(package: str, *parts: str) -> list[dict[str, str]]:
    text = resources.files(package).joinpath(*parts).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _conditions() -> tuple[Arr, Arr]:
    """Standard condition concepts and the KCD-7 code each is recorded with."""
    seen: dict[int, str] = {}
    for row in _data("pmhub.cdm", "data", "vocabulary", "KCD7_TO_SNOMED.csv"):
        if row["kcd7_code"].startswith(("O", "Z3", "N4")):
            continue  # pregnancy (female only) is generated on its own; prostate left out
        seen.setdefault(int(row["target_concept_id"]), row["kcd7_code"])
    return np.array(list(seen)), np.array(list(seen.values()))


NON_STANDARD = {3030354}  # eGFR (MDRD) is not a standard concept: a CDW maps it elsewhere


def _measurements() -> list[tuple[int, int, str, float, float, float, float]]:
    first: dict[int, tuple[int, str, float, float]] = {}
    for row in _data("pmhub.quality", "data", "plausible_ranges.csv"):
        first.setdefault(
            int(row["concept_id"]),
            (int(row["unit_concept_id"]), row["unit_name"], float(row["low"]), float(row["high"])),
        )
    out = []
    for concept, (unit, name, low, high) in first.items():
        if concept in NON_STANDARD:
            continue
        mean, sd = TYPICAL.get(concept, (low + (high - low) * 0.05, (high - low) * 0.01))
        out.append((concept, unit, name, float(mean), float(sd), low, high))
    return out


def _days(dates: Arr) -> pa.Array[Any]:
    return pa.array(dates.astype("datetime64[D]"), type=pa.date32())


class Generator:
    def __init__(self, persons: int, seed: int) -> None:
        self.n = persons
        self.rng = np.random.default_rng(seed)

    def person(self) -> Columns:
        rng, n = self.rng, self.n
        self.pid = np.arange(1, n + 1, dtype=np.int64)
        self.female = rng.random(n) < 0.5
        self.birth_year = rng.integers(1930, 2015, n)
        month, day = rng.integers(1, 13, n), rng.integers(1, 29, n)
        months = ((self.birth_year - 1970) * 12 + month - 1).astype("datetime64[M]")
        self.birth = months.astype("datetime64[D]") + (day - 1)
        return {
            "person_id": pa.array(self.pid),
            "gender_concept_id": pa.array(np.where(self.female, FEMALE, MALE).astype(np.int32)),
            "year_of_birth": pa.array(self.birth_year.astype(np.int32)),
            "month_of_birth": pa.array(month.astype(np.int32)),
            "day_of_birth": pa.array(day.astype(np.int32)),
            "race_concept_id": pa.array(np.full(n, ASIAN, np.int32)),
            "ethnicity_concept_id": pa.array(np.full(n, NOT_HISPANIC, np.int32)),
            "person_source_value": pa.array([f"P{i:07d}" for i in self.pid]),
            "gender_source_value": pa.array(np.where(self.female, "F", "M")),
        }

    def observation_period(self) -> Columns:
        rng, n = self.rng, self.n
        start = np.maximum(
            np.datetime64("2010-01-01") + rng.integers(0, 3000, n), self.birth + 1
        ).astype("datetime64[D]")
        end = np.minimum(start + rng.integers(365, 5000, n), np.datetime64("2025-12-31"))
        self.start, self.end = start, np.maximum(end, start).astype("datetime64[D]")
        return {
            "observation_period_id": pa.array(self.pid),
            "person_id": pa.array(self.pid),
            "observation_period_start_date": _days(self.start),
            "observation_period_end_date": _days(self.end),
            "period_type_concept_id": pa.array(np.full(n, EHR, np.int32)),
        }

    def death(self) -> Columns:
        dead = self.rng.random(self.n) < 0.05
        return {
            "person_id": pa.array(self.pid[dead]),
            "death_date": _days(self.end[dead]),  # the record ends with death
            "death_type_concept_id": pa.array(np.full(int(dead.sum()), DEATH_CERT, np.int32)),
        }

    def visit_occurrence(self) -> Columns:
        rng = self.rng
        per = rng.poisson(20, self.n)
        owner = np.repeat(np.arange(self.n), per)
        m = len(owner)
        span = (self.end - self.start).astype(np.int64)[owner]
        start = self.start[owner] + (rng.random(m) * (span + 1)).astype(np.int64)
        kind = rng.choice(3, m, p=[0.85, 0.08, 0.07])
        stay = np.where(kind == 1, rng.integers(1, 10, m), 0)
        end = np.minimum(start + stay, self.end[owner])
        self.visit_id = np.arange(1, m + 1, dtype=np.int64)
        self.visit_owner, self.visit_start = owner, start.astype("datetime64[D]")
        return {
            "visit_occurrence_id": pa.array(self.visit_id),
            "person_id": pa.array(self.pid[owner]),
            "visit_concept_id": pa.array(VISITS[kind].astype(np.int32)),
            "visit_start_date": _days(start),
            "visit_end_date": _days(end),
            "visit_type_concept_id": pa.array(np.full(m, EHR_ENCOUNTER, np.int32)),
            "visit_source_value": pa.array(VISIT_CODES[kind]),
        }

    def _events(self, rate: float) -> Arr:
        """Indexes of visits, each repeated for as many events as it has."""
        return np.repeat(np.arange(len(self.visit_id)), self.rng.poisson(rate, len(self.visit_id)))

    def _common(self, visits: Arr, id_name: str, date_name: str) -> Columns:
        return {
            id_name: pa.array(np.arange(1, len(visits) + 1, dtype=np.int64)),
            "person_id": pa.array(self.pid[self.visit_owner[visits]]),
            date_name: _days(self.visit_start[visits]),
            "visit_occurrence_id": pa.array(self.visit_id[visits]),
        }

    def condition_occurrence(self) -> Columns:
        concepts, codes = _conditions()
        v = self._events(0.5)
        pick = self.rng.integers(0, len(concepts), len(v))
        concept, code = concepts[pick].astype(np.int32), codes[pick]
        owner = self.visit_owner[v]
        year = self.visit_start[v].astype("datetime64[Y]").astype(int) + 1970
        age = year - self.birth_year[owner]
        pregnant = self.female[owner] & (age >= 20) & (age <= 45) & (self.rng.random(len(v)) < 0.01)
        concept = np.where(pregnant, PREGNANT, concept).astype(np.int32)
        code = np.where(pregnant, "Z33", code)
        return {
            **self._common(v, "condition_occurrence_id", "condition_start_date"),
            "condition_concept_id": pa.array(concept),
            "condition_type_concept_id": pa.array(np.full(len(v), EHR, np.int32)),
            "condition_source_value": pa.array(code),
            "condition_source_concept_id": pa.array(np.zeros(len(v), np.int32)),
        }

    def drug_exposure(self) -> Columns:
        v = self._events(0.8)
        n = len(v)
        supply = self.rng.choice(np.array([7, 14, 30, 90]), n)
        start = self.visit_start[v]
        end = np.minimum(start + supply, self.end[self.visit_owner[v]])
        return {
            **self._common(v, "drug_exposure_id", "drug_exposure_start_date"),
            "drug_exposure_end_date": _days(np.maximum(end, start)),
            "drug_concept_id": pa.array(
                DRUGS[self.rng.integers(0, len(DRUGS), n)].astype(np.int32)
            ),
            "drug_type_concept_id": pa.array(np.full(n, PRESCRIPTION, np.int32)),
            "quantity": pa.array(supply.astype(np.float64)),
            "days_supply": pa.array(supply.astype(np.int32)),
            "refills": pa.array(np.zeros(n, np.int32)),
            "drug_source_value": pa.array(np.char.add("EDI", supply.astype(str))),
        }

    def measurement(self) -> Columns:
        table = _measurements()
        v = self._events(3.0)
        n = len(v)
        pick = self.rng.integers(0, len(table), n)
        concept = np.array([t[0] for t in table], np.int32)[pick]
        unit = np.array([t[1] for t in table], np.int32)[pick]
        names = np.array([t[2] for t in table])[pick]
        mean = np.array([t[3] for t in table])[pick]
        sd = np.array([t[4] for t in table])[pick]
        low = np.array([t[5] for t in table])[pick]
        high = np.array([t[6] for t in table])[pick]
        value = np.clip(np.round(self.rng.normal(mean, sd), 2), low, high)
        return {
            **self._common(v, "measurement_id", "measurement_date"),
            "measurement_concept_id": pa.array(concept),
            "measurement_type_concept_id": pa.array(np.full(n, LAB, np.int32)),
            "value_as_number": pa.array(value),
            "unit_concept_id": pa.array(unit),
            "unit_source_value": pa.array(names),
            "measurement_source_value": pa.array(concept.astype(str)),
        }

    def procedure_occurrence(self) -> Columns:
        v = self._events(0.2)
        n = len(v)
        return {
            **self._common(v, "procedure_occurrence_id", "procedure_date"),
            "procedure_concept_id": pa.array(
                PROCEDURES[self.rng.integers(0, len(PROCEDURES), n)].astype(np.int32)
            ),
            "procedure_type_concept_id": pa.array(np.full(n, EHR, np.int32)),
        }

    def observation(self) -> Columns:
        v = self._events(0.2)
        n = len(v)
        return {
            **self._common(v, "observation_id", "observation_date"),
            "observation_concept_id": pa.array(np.full(n, OBSERVATIONS[0], np.int32)),
            "observation_type_concept_id": pa.array(np.full(n, EHR, np.int32)),
        }


TABLES = (
    "person",
    "observation_period",
    "death",
    "visit_occurrence",
    "condition_occurrence",
    "drug_exposure",
    "measurement",
    "procedure_occurrence",
    "observation",
)


def load(backend: Backend, gen: Generator) -> dict[str, int]:
    rows = {}
    for name in TABLES:
        columns = getattr(gen, name)()
        full = spec.arrow_schema(spec.table(name))
        arrow_schema = pa.schema([full.field(c) for c in columns])
        table = pa.table(columns).cast(arrow_schema)
        for statement in ddl.drop_indexes(spec.table(name)):
            backend.execute(statement)
        rows[name] = backend.insert_batches(name, arrow_schema, table.to_batches(1_000_000))
        for statement in ddl.create_indexes(spec.table(name), backend.dialect):
            backend.execute(statement)
        backend.execute(f"ANALYZE {name}")  # statistics for the planner, as after any load
    return rows


BACKEND = os.environ.get("BENCH_BACKEND", "duckdb")
PG_SCHEMA = os.environ.get("BENCH_PG_SCHEMA", "pmhub_bench_quality")


def _cdw_url() -> str | None:
    """DuckDB in the temporary home, or BENCH_BACKEND=postgresql: a schema of the server
    PMHUB_TEST_POSTGRES_URL names, dropped afterwards."""
    if BACKEND == "duckdb":
        return None
    url = os.environ.get("PMHUB_TEST_POSTGRES_URL")
    if BACKEND != "postgresql" or not url:
        raise SystemExit("BENCH_BACKEND is duckdb or postgresql (with PMHUB_TEST_POSTGRES_URL)")
    _drop_pg_schema()
    return f"{url}?schema={PG_SCHEMA}"


def _drop_pg_schema() -> None:
    import psycopg

    with psycopg.connect(os.environ["PMHUB_TEST_POSTGRES_URL"], autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")


def main() -> int:
    from pmhub.quality import service

    work = Path(tempfile.mkdtemp(prefix="pmhub-bench-quality-"))
    os.environ["PMHUB_HOME"] = str(work / "home")
    try:
        settings = load_settings()
        site = SiteRegistry(settings).add("bench", _cdw_url(), title_en="Bench Hospital")
        figures: dict[str, float | str] = {}
        with site.connect() as backend:
            clock = time.perf_counter()
            schema.init_cdm(backend, source_name="Bench", abbreviation="bench", holder="pmhub")
            figures["init_s"] = time.perf_counter() - clock
            clock = time.perf_counter()
            rows = load(backend, Generator(PERSONS, SEED))
            figures["generate_and_load_s"] = time.perf_counter() - clock
        clock = time.perf_counter()
        run = service.run_quality("bench", settings=settings, as_of=AS_OF)
        total = time.perf_counter() - clock
        seconds = run.document["seconds"]
        profiles = sum(v for k, v in seconds.items() if k.startswith("profile "))
        checks = sum(v for k, v in seconds.items() if k.startswith("checks "))
        statuses: dict[str, int] = {}
        for c in run.document["checks"]:
            statuses[c["status"]] = statuses.get(c["status"], 0) + 1
        print(f"pmhub quality on {PERSONS:,} persons ({sum(rows.values()):,} rows), {BACKEND}")
        for name, count in rows.items():
            print(f"  {name:<24}{count:>12,} rows")
        print(f"{'phase':<40}{'seconds':>10}")
        for name, value in seconds.items():
            print(f"  {name:<38}{value:>10.2f}")
        print(f"{'profiles (all)':<40}{profiles:>10.2f}")
        print(f"{'checks (all, ' + str(len(run.document['checks'])) + ')':<40}{checks:>10.2f}")
        if BACKEND == "postgresql":
            print("  (on PostgreSQL profiles and checks run at once, on two connections)")
        print(f"{'total quality run':<40}{total:>10.2f}  (target < 120)")
        print(f"check results: {statuses}")
        for c in run.failed:
            print(f"  FAILED {c['id']}: {c['violated']} of {c['denominator']}")
        figures.update(
            {
                "backend": BACKEND,
                "persons": PERSONS,
                "rows": sum(rows.values()),
                "profiles_s": round(profiles, 2),
                "checks_s": round(checks, 2),
                "total_s": round(total, 2),
                "checks": len(run.document["checks"]),
                "failed": len(run.failed),
                "errors": statuses.get("error", 0),
            }
        )
        figures["init_s"] = round(float(figures["init_s"]), 2)
        figures["generate_and_load_s"] = round(float(figures["generate_and_load_s"]), 2)
        print(json.dumps(figures))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if BACKEND == "postgresql":
            _drop_pg_schema()


if __name__ == "__main__":
    sys.exit(main())
