"""A small hand-built CDW: clean rows, and the known defects the checks must catch.

Every concept below is in the shipped vocabulary (real OMOP ids); the dates are fixed so
that the checks' results do not depend on the day the tests run (AS_OF).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from pmhub.cdm import spec
from pmhub.cdm.backends import Backend

AS_OF = dt.date(2026, 1, 1)
MALE, FEMALE = 8507, 8532
ASIAN, NOT_HISPANIC = 8515, 38003564
EHR, EHR_ENCOUNTER, LAB, PRESCRIPTION, DEATH_CERT = 32817, 32827, 32856, 32838, 32815
OUTPATIENT, INPATIENT = 9202, 9201
HYPERTENSION, T2DM, PREGNANT, PROSTATE_NEOPLASM = 320128, 201826, 4299535, 4129902
METFORMIN, ECG, SMOKING_STATUS = 1503297, 4163951, 43054909
GLUCOSE, SBP, HBA1C, EGFR_NONSTANDARD = 3004501, 3004249, 3004410, 3030354
MG_DL, MM_HG, PERCENT, KG, ML_MIN_173 = 8840, 8876, 8554, 9529, 720870

DEATH = dt.date(2024, 6, 1)  # of the last clean person

Rows = dict[str, list[dict[str, Any]]]


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def clean_rows(persons: int = 10) -> Rows:
    rows: Rows = {
        t: []
        for t in (
            "person",
            "observation_period",
            "visit_occurrence",
            "condition_occurrence",
            "drug_exposure",
            "procedure_occurrence",
            "measurement",
            "observation",
            "death",
        )
    }
    for pid in range(1, persons + 1):
        male = pid % 2 == 1
        rows["person"].append(
            {
                "person_id": pid,
                "gender_concept_id": MALE if male else FEMALE,
                "year_of_birth": 1940 + pid * 5,
                "month_of_birth": pid,
                "day_of_birth": 10,
                "race_concept_id": ASIAN,
                "ethnicity_concept_id": NOT_HISPANIC,
                "person_source_value": f"P{pid:04d}",
                "gender_source_value": "M" if male else "F",
                "gender_source_concept_id": 0,
            }
        )
        rows["observation_period"].append(
            {
                "observation_period_id": pid,
                "person_id": pid,
                "observation_period_start_date": d("2015-01-01"),
                "observation_period_end_date": DEATH if pid == persons else d("2024-12-31"),
                "period_type_concept_id": EHR,
            }
        )
        for n, (kind, start, end) in enumerate(
            [
                (OUTPATIENT, "2020-03-02", "2020-03-02"),
                (INPATIENT, "2021-06-01", "2021-06-05"),
            ]
        ):
            vid = pid * 10 + n
            rows["visit_occurrence"].append(
                {
                    "visit_occurrence_id": vid,
                    "person_id": pid,
                    "visit_concept_id": kind,
                    "visit_start_date": d(start),
                    "visit_end_date": d(end),
                    "visit_type_concept_id": EHR_ENCOUNTER,
                    "visit_source_value": "OP" if kind == OUTPATIENT else "IP",
                }
            )
        visit = pid * 10
        conditions = [(HYPERTENSION, "I10")]
        if pid % 3 == 0:
            conditions.append((T2DM, "E11.9"))
        if not male and pid % 8 == 0:
            conditions.append((PREGNANT, "Z33"))
        if male and pid % 5 == 0:
            conditions.append((PROSTATE_NEOPLASM, "D40.0"))
        for k, (concept, code) in enumerate(conditions):
            rows["condition_occurrence"].append(
                {
                    "condition_occurrence_id": pid * 10 + k,
                    "person_id": pid,
                    "condition_concept_id": concept,
                    "condition_start_date": d("2020-03-02"),
                    "condition_type_concept_id": EHR,
                    "visit_occurrence_id": visit,
                    "condition_source_value": code,
                    "condition_source_concept_id": 0,
                }
            )
        rows["drug_exposure"].append(
            {
                "drug_exposure_id": pid,
                "person_id": pid,
                "drug_concept_id": METFORMIN,
                "drug_exposure_start_date": d("2020-03-02"),
                "drug_exposure_end_date": d("2020-04-01"),
                "drug_type_concept_id": PRESCRIPTION,
                "quantity": 60.0,
                "days_supply": 30,
                "refills": 0,
                "visit_occurrence_id": visit,
                "drug_source_value": "641600450",
            }
        )
        rows["procedure_occurrence"].append(
            {
                "procedure_occurrence_id": pid,
                "person_id": pid,
                "procedure_concept_id": ECG,
                "procedure_date": d("2020-03-02"),
                "procedure_type_concept_id": EHR,
                "visit_occurrence_id": visit,
                "procedure_source_value": "E6541",
            }
        )
        for k, (concept, unit, value, source, unit_source) in enumerate(
            [
                (GLUCOSE, MG_DL, 90.0 + pid, "2345-7", "mg/dL"),
                (SBP, MM_HG, 115.0 + pid, "8480-6", "mm[Hg]"),
                (HBA1C, PERCENT, 5.0 + pid / 10, "4548-4", "%"),
            ]
        ):
            rows["measurement"].append(
                {
                    "measurement_id": pid * 10 + k,
                    "person_id": pid,
                    "measurement_concept_id": concept,
                    "measurement_date": d("2020-03-02"),
                    "measurement_type_concept_id": LAB,
                    "value_as_number": value,
                    "unit_concept_id": unit,
                    "visit_occurrence_id": visit,
                    "measurement_source_value": source,
                    "unit_source_value": unit_source,
                }
            )
        rows["observation"].append(
            {
                "observation_id": pid,
                "person_id": pid,
                "observation_concept_id": SMOKING_STATUS,
                "observation_date": d("2020-03-02"),
                "observation_type_concept_id": EHR,
                "visit_occurrence_id": visit,
                "observation_source_value": "smoking",
            }
        )
    rows["death"].append(
        {
            "person_id": persons,
            "death_date": DEATH,
            "death_type_concept_id": DEATH_CERT,
        }
    )
    return rows


# Each planted defect: the rows it adds, and the failing check (id → violated rows) it
# must produce, and nothing else.
DEFECTS: dict[str, tuple[Rows, dict[str, int]]] = {
    "wrong unit": (
        {
            "measurement": [
                {
                    "measurement_id": 9001,
                    "person_id": 1,
                    "measurement_concept_id": GLUCOSE,
                    "measurement_date": d("2020-03-02"),
                    "measurement_type_concept_id": LAB,
                    "value_as_number": 95.0,
                    "unit_concept_id": KG,
                    "measurement_source_value": "2345-7",
                    "unit_source_value": "kg",
                }
            ]
        },
        {f"measurement_unit/measurement.unit_concept_id/{GLUCOSE}": 1},
    ),
    "orphan visit": (
        {
            "visit_occurrence": [
                {
                    "visit_occurrence_id": 9002,
                    "person_id": 999,
                    "visit_concept_id": OUTPATIENT,
                    "visit_start_date": d("2020-05-01"),
                    "visit_end_date": d("2020-05-01"),
                    "visit_type_concept_id": EHR_ENCOUNTER,
                    "visit_source_value": "OP",
                }
            ]
        },
        {"is_foreign_key/visit_occurrence.person_id": 1},
    ),
    "birth after death": (
        {
            "person": [
                {
                    "person_id": 9003,
                    "gender_concept_id": FEMALE,
                    "year_of_birth": 2000,
                    "race_concept_id": ASIAN,
                    "ethnicity_concept_id": NOT_HISPANIC,
                    "gender_source_value": "F",
                }
            ],
            "death": [
                {
                    "person_id": 9003,
                    "death_date": d("1990-05-01"),
                    "death_type_concept_id": DEATH_CERT,
                }
            ],
        },
        {"after_birth/death.death_date": 1},
    ),
    "non-standard concept in a standard field": (
        {
            "measurement": [
                {
                    "measurement_id": 9004,
                    "person_id": 2,
                    "measurement_concept_id": EGFR_NONSTANDARD,
                    "measurement_date": d("2020-03-02"),
                    "measurement_type_concept_id": LAB,
                    "value_as_number": 85.0,
                    "unit_concept_id": ML_MIN_173,
                    "measurement_source_value": "33914-3",
                    "unit_source_value": "mL/min/{1.73_m2}",
                }
            ]
        },
        {"standard_valid_concept/measurement.measurement_concept_id": 1},
    ),
    "implausible value": (
        {
            "measurement": [
                {
                    "measurement_id": 9005,
                    "person_id": 3,
                    "measurement_concept_id": SBP,
                    "measurement_date": d("2020-03-02"),
                    "measurement_type_concept_id": LAB,
                    "value_as_number": 800.0,
                    "unit_concept_id": MM_HG,
                    "measurement_source_value": "8480-6",
                    "unit_source_value": "mm[Hg]",
                }
            ]
        },
        {f"measurement_value_range/measurement.value_as_number/{SBP}/{MM_HG}": 1},
    ),
    "male with pregnancy": (
        {
            "condition_occurrence": [
                {
                    "condition_occurrence_id": 9006,
                    "person_id": 1,
                    "condition_concept_id": PREGNANT,
                    "condition_start_date": d("2020-03-02"),
                    "condition_type_concept_id": EHR,
                    "condition_source_value": "Z33",
                    "condition_source_concept_id": 0,
                }
            ]
        },
        {f"plausible_gender/condition_occurrence.condition_concept_id/{PREGNANT}": 1},
    ),
    "visit ends before it starts": (
        {
            "visit_occurrence": [
                {
                    "visit_occurrence_id": 9007,
                    "person_id": 4,
                    "visit_concept_id": INPATIENT,
                    "visit_start_date": d("2021-02-10"),
                    "visit_end_date": d("2021-02-01"),
                    "visit_type_concept_id": EHR_ENCOUNTER,
                    "visit_source_value": "IP",
                }
            ]
        },
        {"start_before_end/visit_occurrence.visit_start_date": 1},
    ),
    "event long after death": (
        {
            "procedure_occurrence": [
                {
                    "procedure_occurrence_id": 9008,
                    "person_id": 10,
                    "procedure_concept_id": ECG,
                    "procedure_date": d("2025-03-01"),
                    "procedure_type_concept_id": EHR,
                    "procedure_source_value": "E6541",
                }
            ]
        },
        {"before_death/procedure_occurrence.procedure_date": 1},
    ),
    "condition in the measurement domain": (
        {
            "condition_occurrence": [
                {
                    "condition_occurrence_id": 9009,
                    "person_id": 5,
                    "condition_concept_id": GLUCOSE,
                    "condition_start_date": d("2020-03-02"),
                    "condition_type_concept_id": EHR,
                    "condition_source_value": "R73.9",
                    "condition_source_concept_id": 0,
                }
            ]
        },
        {"fk_domain/condition_occurrence.condition_concept_id": 1},
    ),
    "date in the future": (
        {
            "observation": [
                {
                    "observation_id": 9010,
                    "person_id": 6,
                    "observation_concept_id": SMOKING_STATUS,
                    "observation_date": d("2031-01-01"),
                    "observation_type_concept_id": EHR,
                    "observation_source_value": "smoking",
                }
            ]
        },
        {"date_range/observation.observation_date": 1},
    ),
    "year of birth in the 1700s": (
        {
            "person": [
                {
                    "person_id": 9011,
                    "gender_concept_id": MALE,
                    "year_of_birth": 1750,
                    "race_concept_id": ASIAN,
                    "ethnicity_concept_id": NOT_HISPANIC,
                    "gender_source_value": "M",
                }
            ]
        },
        {"field_range/person.year_of_birth": 1},
    ),
    "unmapped drug codes": (
        {
            "drug_exposure": [
                {
                    "drug_exposure_id": 9012 + k,
                    "person_id": 7,
                    "drug_concept_id": 0,
                    "drug_exposure_start_date": d("2020-03-02"),
                    "drug_exposure_end_date": d("2020-03-02"),
                    "drug_type_concept_id": PRESCRIPTION,
                    "drug_source_value": "KD-UNMAPPED" if k < 2 else "KD-OTHER",
                }
                for k in range(3)
            ]
        },
        # 3 of 13 drug rows are 0 (23 % > 5 %); 2 of 3 distinct source codes unmapped
        {
            "standard_concept_missing/drug_exposure.drug_concept_id": 3,
            "source_value_unmapped/drug_exposure.drug_concept_id": 2,
        },
    ),
}


def merged(*parts: Rows) -> Rows:
    out: Rows = {}
    for part in parts:
        for table, rows in part.items():
            out.setdefault(table, []).extend(rows)
    return out


def with_defects(names: list[str] | None = None) -> Rows:
    chosen = names or list(DEFECTS)
    return merged(clean_rows(), *(DEFECTS[n][0] for n in chosen))


def expected_failures(names: list[str] | None = None) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in names or list(DEFECTS):
        out.update(DEFECTS[n][1])
    return out


def load(backend: Backend, rows: Rows) -> None:
    """Insert through the same Arrow path that ingest uses, typed by the spec."""
    for table, records in rows.items():
        if not records:
            continue
        full = spec.arrow_schema(spec.table(table))
        names = sorted({k for r in records for k in r})
        schema = pa.schema([full.field(n) for n in names])
        batch = pa.RecordBatch.from_pylist(
            [{n: r.get(n) for n in names} for r in records], schema=schema
        )
        backend.insert_batches(table, schema, [batch])
