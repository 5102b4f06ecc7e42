"""A fast, vectorised CDM generator for the cohort benchmark, tests and demo data.

Not a clinical simulator (that is the synthetic-data layer's job): it writes persons,
observation periods, conditions, drug exposures, measurements and deaths with real
concept ids, in proportions that make the example cohorts non-trivial — type 2 diabetes
with metformin fills and HbA1c values, atrial fibrillation followed by strokes,
pregnancies with complications. The same seed gives the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pmhub.cdm import spec as cdm_spec
from pmhub.cdm.backends import Backend

EPOCH = np.datetime64("2010-01-01", "D")
END = np.datetime64("2024-12-31", "D")
CHUNK = 250_000  # persons per batch: bounded memory at any size

# concept → share of persons with it (conditions drawn for everyone)
CONDITIONS = {
    201826: 0.10,  # type 2 diabetes
    201254: 0.01,  # type 1 diabetes
    320128: 0.25,  # essential hypertension
    432867: 0.15,  # hyperlipidemia
    313217: 0.04,  # atrial fibrillation
    443454: 0.01,  # cerebral infarction
    443597: 0.03,  # CKD stage 3
    316139: 0.03,  # heart failure
    312327: 0.02,  # acute myocardial infarction
    255573: 0.03,  # COPD
    4182210: 0.01,  # dementia
}
METFORMIN, HBA1C, PERCENT = 1503297, 3004410, 8554
AF, STROKE, T2DM, HYPOGLYCAEMIA = 313217, 443454, 201826, 24609
PREGNANT, PRE_ECLAMPSIA, GDM = 4299535, 439393, 4024659


@dataclass
class Batch:
    tables: dict[str, dict[str, np.ndarray]]

    def add(self, table: str, **columns: np.ndarray) -> None:
        current = self.tables.setdefault(table, {})
        for name, values in columns.items():
            current[name] = np.concatenate([current[name], values]) if name in current else values


def _within(rng: np.random.Generator, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    span = (end - start).astype(np.int64)
    result: np.ndarray = start + (rng.random(len(start)) * (span + 1)).astype(np.int64)
    return result


def _persons(
    rng: np.random.Generator, first_id: int, n: int, batch: Batch
) -> dict[str, np.ndarray]:
    ids = np.arange(first_id, first_id + n, dtype=np.int32)
    year = rng.integers(1930, 2006, n).astype(np.int32)
    female = rng.random(n) < 0.5
    start = EPOCH + rng.integers(0, 5 * 365, n)
    end = np.minimum(start + rng.integers(365, 12 * 365, n), END)
    batch.add(
        "person",
        person_id=ids,
        gender_concept_id=np.where(female, 8532, 8507).astype(np.int32),
        year_of_birth=year,
    )
    batch.add(
        "observation_period",
        observation_period_id=ids,
        person_id=ids,
        observation_period_start_date=start,
        observation_period_end_date=end,
    )
    return {"id": ids, "year": year, "female": female, "start": start, "end": end}


def _conditions(
    rng: np.random.Generator, p: dict[str, np.ndarray], batch: Batch
) -> dict[int, np.ndarray]:
    """Each condition's first date per person (NaT-free: -1 marks none), with repeats."""
    n = len(p["id"])
    first: dict[int, np.ndarray] = {}
    for concept, share in CONDITIONS.items():
        has = rng.random(n) < share
        dates = _within(rng, p["start"][has], p["end"][has])
        first[concept] = np.where(has, 0, -1)
        first[concept][has] = (dates - EPOCH).astype(np.int64)
        repeats = rng.poisson(1.5, has.sum())
        who = np.repeat(np.flatnonzero(has), repeats + 1)
        when = np.repeat(dates, repeats + 1)
        later = _within(rng, when, np.repeat(p["end"][has], repeats + 1))
        is_first = np.r_[True, who[1:] != who[:-1]]
        _add_conditions(batch, p["id"][who], concept, np.where(is_first, when, later))
    return first


def _add_conditions(batch: Batch, persons: np.ndarray, concept: int, dates: np.ndarray) -> None:
    batch.add(
        "condition_occurrence",
        person_id=persons,
        condition_concept_id=np.full(len(persons), concept, np.int32),
        condition_start_date=dates,
        condition_end_date=dates,
    )


def _after(
    rng: np.random.Generator,
    p: dict[str, np.ndarray],
    source: np.ndarray,
    share: float,
    low: int,
    high: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Persons with the source condition who get a follow-on event low-high days later."""
    has = (source >= 0) & (rng.random(len(source)) < share)
    dates = EPOCH + source[has] + rng.integers(low, high, has.sum())
    inside = dates <= p["end"][has]
    return np.flatnonzero(has)[inside], dates[inside]


def _complications(
    rng: np.random.Generator, p: dict[str, np.ndarray], first: dict[int, np.ndarray], batch: Batch
) -> None:
    who, when = _after(rng, p, first[AF], 0.15, 1, 2000)  # strokes after AF
    _add_conditions(batch, p["id"][who], STROKE, when)
    who, when = _after(rng, p, first[T2DM], 0.05, 30, 1500)
    _add_conditions(batch, p["id"][who], HYPOGLYCAEMIA, when)
    age = 2015 - p["year"]
    fertile = p["female"] & (age >= 18) & (age <= 45) & (rng.random(len(age)) < 0.08)
    pregnant = np.where(fertile, 0, -1)
    dates = _within(
        rng, p["start"][fertile] + 180, np.maximum(p["end"][fertile], p["start"][fertile] + 180)
    )
    pregnant[fertile] = (dates - EPOCH).astype(np.int64)
    inside = dates <= p["end"][fertile]
    _add_conditions(batch, p["id"][fertile][inside], PREGNANT, dates[inside])
    for concept, share in ((PRE_ECLAMPSIA, 0.2), (GDM, 0.12)):
        who, when = _after(rng, p, pregnant, share, 60, 250)
        _add_conditions(batch, p["id"][who], concept, when)


def _metformin(
    rng: np.random.Generator, p: dict[str, np.ndarray], first: dict[int, np.ndarray], batch: Batch
) -> None:
    who, start = _after(rng, p, first[T2DM], 0.7, 0, 60)
    fills = rng.geometric(0.15, len(who))
    person = np.repeat(who, fills)
    gaps = rng.integers(25, 75, len(person))  # 30-day supplies, refilled 0-45 days late
    is_first = np.r_[True, person[1:] != person[:-1]]
    steps = np.where(is_first, 0, gaps)
    group_start = np.repeat(np.cumsum(np.r_[0, fills[:-1]]), fills)
    offset = np.cumsum(steps) - np.cumsum(steps)[group_start]
    dates = np.repeat(start, fills) + offset
    keep = dates <= p["end"][person]
    person, dates = person[keep], dates[keep]
    batch.add(
        "drug_exposure",
        person_id=p["id"][person],
        drug_concept_id=np.full(len(person), METFORMIN, np.int32),
        drug_exposure_start_date=dates,
        drug_exposure_end_date=dates + 29,
        days_supply=np.full(len(person), 30, np.int32),
    )


def _hba1c(
    rng: np.random.Generator, p: dict[str, np.ndarray], first: dict[int, np.ndarray], batch: Batch
) -> None:
    diabetic = first[T2DM] >= 0
    tested = diabetic | (rng.random(len(diabetic)) < 0.2)
    dates = _within(rng, p["start"][tested], p["end"][tested])
    mean = np.where(diabetic[tested], 7.4, 5.6)
    values = np.round(rng.normal(mean, np.where(diabetic[tested], 1.1, 0.4)), 1)
    batch.add(
        "measurement",
        person_id=p["id"][tested],
        measurement_concept_id=np.full(tested.sum(), HBA1C, np.int32),
        measurement_date=dates,
        value_as_number=values,
        unit_concept_id=np.full(tested.sum(), PERCENT, np.int32),
    )


def _deaths(rng: np.random.Generator, p: dict[str, np.ndarray], batch: Batch) -> None:
    dead = rng.random(len(p["id"])) < 0.03
    batch.add("death", person_id=p["id"][dead], death_date=p["end"][dead])


def batches(persons: int, seed: int) -> list[Batch]:
    rng = np.random.default_rng(seed)
    out = []
    for first_id in range(1, persons + 1, CHUNK):
        batch = Batch({})
        p = _persons(rng, first_id, min(CHUNK, persons - first_id + 1), batch)
        first = _conditions(rng, p, batch)
        _complications(rng, p, first, batch)
        _metformin(rng, p, first, batch)
        _hba1c(rng, p, first, batch)
        _deaths(rng, p, batch)
        out.append(batch)
    return out


def _arrow(table: str, columns: dict[str, np.ndarray], next_id: int) -> pa.Table:
    """Columns as the CDM's Arrow schema, required columns filled (ids numbered)."""
    spec = cdm_spec.table(table)
    schema = cdm_spec.arrow_schema(spec)
    rows = len(next(iter(columns.values())))
    arrays = []
    for f in spec.fields:
        if f.name in columns:
            values = columns[f.name]
            if values.dtype.kind == "M" or f.datatype == "date":
                values = values.astype("datetime64[D]")
            arrays.append(pa.array(values, type=schema.field(f.name).type))
        elif f.primary_key:
            arrays.append(
                pa.array(np.arange(next_id, next_id + rows), type=schema.field(f.name).type)
            )
        elif f.required:
            arrays.append(pa.array(_filler(f, rows), type=schema.field(f.name).type))
        else:
            arrays.append(pa.nulls(rows, type=schema.field(f.name).type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _filler(f: cdm_spec.Field, rows: int) -> np.ndarray:
    if f.datatype == "integer":
        return np.full(rows, 32817 if f.name.endswith("type_concept_id") else 0, np.int64)
    if f.datatype == "date":
        return np.full(rows, EPOCH, "datetime64[D]")
    if f.datatype == "datetime":
        return np.full(rows, EPOCH, "datetime64[us]")
    if f.datatype == "float":
        return np.zeros(rows)
    return np.full(rows, "", object)


Progress = Callable[[int], None]


def load(
    backend: Backend, persons: int, seed: int, progress: Progress | None = None
) -> dict[str, int]:
    """Append a generated population to the CDW's clinical tables; rows written per table."""
    written: dict[str, int] = {}
    with backend.transaction():
        for batch in batches(persons, seed):
            for table, columns in batch.tables.items():
                data = _arrow(table, columns, written.get(table, 0) + 1)
                written[table] = written.get(table, 0) + backend.insert_batches(
                    table, data.schema, data.to_batches()
                )
            if progress is not None:
                progress(written.get("person", 0))
    return written


__all__ = ["batches", "load"]
