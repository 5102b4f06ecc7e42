"""Spec-suite data as little ASCII tables, loaded into every engine alike.

    person
      person_id | year_of_birth | gender_concept_id
      1         | 1960          | 8507

Blocks are separated by blank lines; the first line names an OMOP CDM table, the second
its columns. Values take the CDM field's type; an empty cell is NULL. Required columns a
test leaves out get a neutral default (ids numbered, type concepts 32817 'EHR', other
concepts 0, a missing end date = the start date).
"""

from __future__ import annotations

import datetime as dt
import itertools
import textwrap
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from pmhub.cdm import spec as cdm_spec

Rows = dict[str, list[dict[str, Any]]]

# the clinical tables a spec test may fill; each test empties them all first
CLINICAL = (
    "person",
    "observation_period",
    "visit_occurrence",
    "condition_occurrence",
    "drug_exposure",
    "procedure_occurrence",
    "device_exposure",
    "measurement",
    "observation",
    "death",
    "visit_detail",
    "specimen",
    "condition_era",
    "drug_era",
    "cohort",
)
END_OF = {
    "visit_end_date": "visit_start_date",
    "drug_exposure_end_date": "drug_exposure_start_date",
    "device_exposure_end_date": "device_exposure_start_date",
    "visit_detail_end_date": "visit_detail_start_date",
}


def _value(text: str, datatype: str) -> Any:
    if text == "":
        return None
    if datatype == "integer":
        return int(text)
    if datatype == "float":
        return float(text)
    if datatype == "date":
        return dt.date.fromisoformat(text)
    if datatype == "datetime":
        return dt.datetime.fromisoformat(text)
    return text


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().split("|")]


def parse(text: str) -> Rows:
    tables: Rows = {}
    blocks = [b for b in textwrap.dedent(text).strip().split("\n\n") if b.strip()]
    for block in blocks:
        lines = [ln for ln in block.strip().splitlines() if ln.strip()]
        name, header = lines[0].strip(), _cells(lines[1])
        table = cdm_spec.table(name)
        types = {f.name: f.datatype for f in table.fields}
        # "type" abbreviates the table's record-type column (condition_type_concept_id, …)
        record_type = next((f for f in types if f.endswith("_type_concept_id")), "type")
        header = [record_type if c == "type" else c for c in header]
        unknown = set(header) - set(types)
        assert not unknown, f"{name} has no columns {unknown}"
        rows = [
            {c: _value(v, types[c]) for c, v in zip(header, _cells(ln), strict=True)}
            for ln in lines[2:]
        ]
        tables.setdefault(name, []).extend(rows)
    return {name: complete(name, rows) for name, rows in tables.items()}


def complete(name: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every column of the table, required ones filled with neutral defaults."""
    table = cdm_spec.table(name)
    numbers = itertools.count(1)
    out = []
    for row in rows:
        full = {f.name: row.get(f.name) for f in table.fields}
        for f in table.fields:
            if full[f.name] is not None or not f.required:
                continue
            full[f.name] = _default(f, full, numbers)
        out.append(full)
    return out


def _default(f: cdm_spec.Field, row: dict[str, Any], numbers: Iterator[int]) -> Any:
    if f.primary_key:
        return next(numbers)
    if f.name in END_OF:
        return row[END_OF[f.name]]
    if f.datatype == "integer":
        return 32817 if f.name.endswith("type_concept_id") else 0
    if f.datatype == "float":
        return 0.0
    if f.datatype == "date":
        return dt.date(1970, 1, 1)
    if f.datatype == "datetime":
        return dt.datetime(1970, 1, 1)
    return ""


def arrow(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    schema = cdm_spec.arrow_schema(cdm_spec.table(name))
    return pa.Table.from_pylist(rows, schema=schema)


def cohort(text: str) -> list[tuple[int, dt.date, dt.date]]:
    """Expected cohort rows as an ASCII table: subject_id | start | end (id given apart)."""
    lines = [ln for ln in textwrap.dedent(text).strip().splitlines() if ln.strip()]
    out = []
    for line in lines[1:]:
        subject, start, end = _cells(line)
        out.append((int(subject), dt.date.fromisoformat(start), dt.date.fromisoformat(end)))
    return sorted(out)
