# mypy: disable-error-code="type-arg,no-any-return,arg-type,call-overload"
# (pyarrow-stubs 20 types neither compute results nor take() with masks; this is bench-only)
"""A fast, seeded writer of Synthea-format CSV (v3.0 columns) for ingest benchmarks.

Not a clinical simulator: patients, encounters and events are drawn with numpy in whole
columns and written with pyarrow, so that 100,000 patients take seconds. The layout is
Synthea's (UUIDs, ISO timestamps such as 2019-02-17T05:07:38Z, SNOMED / RxNorm / LOINC /
CVX codes from the vocabulary pmhub ships), so the importer does the work it does on a
real export. About 1% of event codes are codes no vocabulary knows.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

COLUMNS = {
    "patients": "Id,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,PREFIX,FIRST,LAST,SUFFIX,MAIDEN,"
    "MARITAL,RACE,ETHNICITY,GENDER,BIRTHPLACE,ADDRESS,CITY,STATE,COUNTY,ZIP,LAT,LON,"
    "HEALTHCARE_EXPENSES,HEALTHCARE_COVERAGE",
    "organizations": "Id,NAME,ADDRESS,CITY,STATE,ZIP,LAT,LON,PHONE,REVENUE,UTILIZATION",
    "providers": "Id,ORGANIZATION,NAME,GENDER,SPECIALITY,ADDRESS,CITY,STATE,ZIP,LAT,LON,"
    "UTILIZATION",
    "encounters": "Id,START,STOP,PATIENT,ORGANIZATION,PROVIDER,PAYER,ENCOUNTERCLASS,CODE,"
    "DESCRIPTION,BASE_ENCOUNTER_COST,TOTAL_CLAIM_COST,PAYER_COVERAGE,REASONCODE,"
    "REASONDESCRIPTION",
    "conditions": "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION",
    "medications": "START,STOP,PATIENT,PAYER,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,"
    "PAYER_COVERAGE,DISPENSES,TOTALCOST,REASONCODE,REASONDESCRIPTION",
    "immunizations": "DATE,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST",
    "procedures": "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,REASONCODE,"
    "REASONDESCRIPTION",
    "observations": "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE",
    "allergies": "START,STOP,PATIENT,ENCOUNTER,CODE,SYSTEM,DESCRIPTION,TYPE,CATEGORY,"
    "REACTION1,DESCRIPTION1,SEVERITY1,REACTION2,DESCRIPTION2,SEVERITY2",
    "devices": "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,UDI",
}
CLASSES = np.array(["wellness", "ambulatory", "outpatient", "emergency", "inpatient", "urgentcare"])
CLASS_P = [0.30, 0.45, 0.10, 0.08, 0.05, 0.02]
OBSERVATIONS = [  # LOINC code, description, units, mean, sd, category
    ("8302-2", "Body Height", "cm", 165.0, 12.0, "vital-signs"),
    ("29463-7", "Body Weight", "kg", 70.0, 15.0, "vital-signs"),
    ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 25.0, 4.0, "vital-signs"),
    ("8480-6", "Systolic Blood Pressure", "mm[Hg]", 125.0, 15.0, "vital-signs"),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 6.0, 1.0, "laboratory"),
    ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 100.0, 20.0, "laboratory"),
]
START = np.datetime64("1935-01-01T00:00:00", "s").astype(np.int64)
END = np.datetime64("2025-06-30T00:00:00", "s").astype(np.int64)
DAY = 86_400


@dataclass(frozen=True)
class Sizes:
    """Mean events per patient; chosen near Synthea's proportions, fewer observations."""

    encounters: float = 18.0
    conditions: float = 5.0
    medications: float = 8.0
    immunizations: float = 3.0
    procedures: float = 8.0
    observations: float = 50.0
    allergies: float = 0.4
    devices: float = 0.2


def _codes(domain: str, vocabulary: str) -> list[tuple[str, str]]:
    text = (
        resources.files("pmhub.cdm")
        .joinpath("data", "vocabulary", "CONCEPT.csv")
        .read_text(encoding="utf-8")
    )
    found = [
        (r["concept_code"], r["concept_name"])
        for r in csv.DictReader(text.splitlines())
        if r["domain_id"] == domain and r["vocabulary_id"] == vocabulary
    ]
    return sorted(found)[:200]


def _uuids(rng: np.random.Generator, n: int) -> pa.Array:
    a = rng.integers(0, 2**63, size=n, dtype=np.int64)
    b = rng.integers(0, 2**63, size=n, dtype=np.int64)
    return pa.array(
        [
            f"{x >> 31 & 0xFFFFFFFF:08x}-{x >> 15 & 0xFFFF:04x}-4{x & 0xFFF:03x}-"
            f"{8 | (y >> 60 & 3):x}{y >> 48 & 0xFFF:03x}-{y & 0xFFFFFFFFFFFF:012x}"
            for x, y in zip(a.tolist(), b.tolist(), strict=True)
        ]
    )


def _iso(seconds: np.ndarray) -> pa.Array:
    ts = pa.array(seconds.astype("datetime64[s]"))
    return pc.strftime(ts, format="%Y-%m-%dT%H:%M:%SZ")


def _date(seconds: np.ndarray) -> pa.Array:
    return pc.strftime(pa.array(seconds.astype("datetime64[s]")), format="%Y-%m-%d")


def _pick(
    rng: np.random.Generator, options: list[tuple[str, str]], n: int
) -> tuple[pa.Array, pa.Array]:
    index = rng.integers(0, len(options), size=n)
    codes = np.array([o[0] for o in options], dtype=object)[index]
    names = np.array([o[1] for o in options], dtype=object)[index]
    unknown = rng.random(n) < 0.01
    codes[unknown] = "999999999"
    return pa.array(codes, pa.string()), pa.array(names, pa.string())


def _write(folder: Path, name: str, columns: dict[str, pa.Array | str | None], n: int) -> int:
    header = COLUMNS[name].split(",")
    arrays = []
    for column in header:
        value = columns.get(column)
        if isinstance(value, (pa.Array, pa.ChunkedArray)):
            arrays.append(value)
        else:
            arrays.append(
                pa.array(
                    np.full(n, value if value is not None else None, dtype=object), pa.string()
                )
            )
    table = pa.table(dict(zip(header, arrays, strict=True)))
    pacsv.write_csv(
        table,
        folder / f"{name}.csv",
        pacsv.WriteOptions(include_header=True, quoting_style="needed"),
    )
    return n


def generate(
    folder: Path, patients: int, seed: int = 7, sizes: Sizes | None = None
) -> dict[str, int]:
    """Write a Synthea-format CSV export of ``patients`` patients; return rows per file."""
    sizes = sizes or Sizes()
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    n_org = max(2, patients // 500)
    org_ids = _uuids(rng, n_org)
    counts["organizations"] = _write(
        folder,
        "organizations",
        {
            "Id": org_ids,
            "NAME": pa.array([f"HOSPITAL {i}" for i in range(n_org)]),
            "CITY": "Chuncheon",
            "STATE": "Gangwon",
            "REVENUE": "0.0",
            "UTILIZATION": "0",
        },
        n_org,
    )
    n_prov = n_org * 4
    prov_ids = _uuids(rng, n_prov)
    counts["providers"] = _write(
        folder,
        "providers",
        {
            "Id": prov_ids,
            "ORGANIZATION": org_ids.take(pa.array(np.arange(n_prov) // 4)),
            "NAME": pa.array([f"Doctor{i} Kim{i}" for i in range(n_prov)]),
            "GENDER": pa.array(rng.choice(["M", "F"], n_prov)),
            "SPECIALITY": "GENERAL PRACTICE",
        },
        n_prov,
    )
    pat_ids = _uuids(rng, patients)
    birth = rng.integers(START, END - 5 * 365 * DAY, size=patients)
    dies = rng.random(patients) < 0.08
    death = np.where(dies, END - rng.integers(0, 365 * DAY, size=patients), 0)
    counts["patients"] = _write(
        folder,
        "patients",
        {
            "Id": pat_ids,
            "BIRTHDATE": _date(birth),
            "DEATHDATE": pa.array(
                [
                    d if m else None
                    for d, m in zip(_date(death).to_pylist(), dies.tolist(), strict=True)
                ]
            ),
            "FIRST": "Minjun",
            "LAST": "Kim",
            "RACE": pa.array(
                rng.choice(["asian", "white", "black"], patients, p=[0.9, 0.07, 0.03])
            ),
            "ETHNICITY": "nonhispanic",
            "GENDER": pa.array(rng.choice(["M", "F"], patients)),
            "ADDRESS": pa.array([f"{i % 997} Jungang-ro" for i in range(patients)]),
            "CITY": pa.array(
                rng.choice(["Chuncheon", "Gangneung", "Jeongseon", "Wonju"], patients)
            ),
            "STATE": "Gangwon",
            "COUNTY": "Gangwon",
            "ZIP": pa.array([f"{24000 + i % 900}" for i in range(patients)]),
            "LAT": "37.88",
            "LON": "127.73",
            "HEALTHCARE_EXPENSES": "0",
            "HEALTHCARE_COVERAGE": "0",
        },
        patients,
    )
    # encounters: each patient's spread between birth and the end of data (or death)
    per = rng.poisson(sizes.encounters, size=patients) + 1
    n_enc = int(per.sum())
    enc_patient = np.repeat(np.arange(patients), per)
    last = np.where(dies, death, END)[enc_patient]
    first = birth[enc_patient]
    enc_start = first + (rng.random(n_enc) * (last - first - 10 * DAY)).astype(np.int64)
    enc_class_index = rng.choice(len(CLASSES), n_enc, p=CLASS_P)
    enc_class = CLASSES[enc_class_index]
    length = np.where(
        enc_class == "inpatient", rng.integers(DAY, 7 * DAY, n_enc), rng.integers(900, 7200, n_enc)
    )
    enc_stop = np.minimum(enc_start + length, last)
    enc_ids = _uuids(rng, n_enc)
    org = rng.integers(0, n_org, n_enc)
    counts["encounters"] = _write(
        folder,
        "encounters",
        {
            "Id": enc_ids,
            "START": _iso(enc_start),
            "STOP": _iso(enc_stop),
            "PATIENT": pat_ids.take(pa.array(enc_patient)),
            "ORGANIZATION": org_ids.take(pa.array(org)),
            "PROVIDER": prov_ids.take(pa.array(org * 4 + rng.integers(0, 4, n_enc))),
            "ENCOUNTERCLASS": pa.array(enc_class),
            "CODE": "185349003",
            "DESCRIPTION": "Encounter for check up (procedure)",
            "BASE_ENCOUNTER_COST": "85.55",
            "TOTAL_CLAIM_COST": "85.55",
            "PAYER_COVERAGE": "0.00",
        },
        n_enc,
    )

    def events(mean: float) -> tuple[int, pa.Array, pa.Array, np.ndarray]:
        n = int(rng.poisson(mean * patients))
        enc = rng.integers(0, n_enc, n)
        return (
            n,
            pat_ids.take(pa.array(enc_patient[enc])),
            enc_ids.take(pa.array(enc)),
            enc_start[enc],
        )

    n, pat, encs, start = events(sizes.conditions)
    code, name = _pick(rng, _codes("Condition", "SNOMED"), n)
    ends = rng.random(n) < 0.5
    stop = start + rng.integers(5, 60, n) * DAY
    counts["conditions"] = _write(
        folder,
        "conditions",
        {
            "START": _date(start),
            "STOP": pa.array(np.where(ends, _date(stop).to_numpy(zero_copy_only=False), None)),
            "PATIENT": pat,
            "ENCOUNTER": encs,
            "CODE": code,
            "DESCRIPTION": name,
        },
        n,
    )
    n, pat, encs, start = events(sizes.medications)
    code, name = _pick(rng, _codes("Drug", "RxNorm"), n)
    counts["medications"] = _write(
        folder,
        "medications",
        {
            "START": _iso(start),
            "STOP": _iso(start + rng.integers(7, 90, n) * DAY),
            "PATIENT": pat,
            "ENCOUNTER": encs,
            "CODE": code,
            "DESCRIPTION": name,
            "BASE_COST": "10.0",
            "PAYER_COVERAGE": "0.0",
            "DISPENSES": "1",
            "TOTALCOST": "10.0",
        },
        n,
    )
    n, pat, encs, start = events(sizes.immunizations)
    counts["immunizations"] = _write(
        folder,
        "immunizations",
        {
            "DATE": _iso(start),
            "PATIENT": pat,
            "ENCOUNTER": encs,
            "CODE": "140",
            "DESCRIPTION": "Influenza  seasonal  injectable  preservative free",
            "BASE_COST": "140.52",
        },
        n,
    )
    n, pat, encs, start = events(sizes.procedures)
    code, name = _pick(rng, _codes("Procedure", "SNOMED"), n)
    counts["procedures"] = _write(
        folder,
        "procedures",
        {
            "START": _iso(start),
            "STOP": _iso(start + 1800),
            "PATIENT": pat,
            "ENCOUNTER": encs,
            "CODE": code,
            "DESCRIPTION": name,
            "BASE_COST": "500.0",
        },
        n,
    )
    n, pat, encs, start = events(sizes.observations)
    kind = rng.integers(0, len(OBSERVATIONS), n)
    spec = OBSERVATIONS
    value = (
        np.array([s[3] for s in spec])[kind]
        + rng.standard_normal(n) * np.array([s[4] for s in spec])[kind]
    )
    counts["observations"] = _write(
        folder,
        "observations",
        {
            "DATE": _iso(start),
            "PATIENT": pat,
            "ENCOUNTER": encs,
            "CATEGORY": pa.array(np.array([s[5] for s in spec], dtype=object)[kind]),
            "CODE": pa.array(np.array([s[0] for s in spec], dtype=object)[kind]),
            "DESCRIPTION": pa.array(np.array([s[1] for s in spec], dtype=object)[kind]),
            "VALUE": pc.round(pa.array(value), 1).cast(pa.string()),
            "UNITS": pa.array(np.array([s[2] for s in spec], dtype=object)[kind]),
            "TYPE": "numeric",
        },
        n,
    )
    n, pat, encs, start = events(sizes.allergies)
    counts["allergies"] = _write(
        folder,
        "allergies",
        {
            "START": _date(start),
            "PATIENT": pat,
            "ENCOUNTER": encs,
            "CODE": "7980",
            "SYSTEM": "RxNorm",
            "DESCRIPTION": "Penicillin V",
            "TYPE": "allergy",
            "CATEGORY": "medication",
        },
        n,
    )
    n, pat, encs, start = events(sizes.devices)
    counts["devices"] = _write(
        folder,
        "devices",
        {
            "START": _iso(start),
            "PATIENT": pat,
            "ENCOUNTER": encs,
            "CODE": "705643001",
            "DESCRIPTION": "Coronary artery stent (physical object)",
            "UDI": "(01)83240012981234(21)8745",
        },
        n,
    )
    return counts


if __name__ == "__main__":
    # Run alone, it times itself: rows written per second.
    import json
    import os
    import tempfile
    import time

    patients = 1_000 if os.environ.get("BENCH_SMALL") == "1" else 20_000
    with tempfile.TemporaryDirectory(prefix="pmhub-synthea-csv-") as tmp:
        started = time.perf_counter()
        written = generate(Path(tmp), patients)
        seconds = time.perf_counter() - started
    rows = sum(written.values())
    print(f"Synthea-format CSV writer: {patients:,} patients, {rows:,} rows in {seconds:.1f} s")
    print(json.dumps({"patients": patients, "rows": rows, "seconds": round(seconds, 2)}))
