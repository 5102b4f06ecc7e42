"""The OMOP CDM v5.4 specification, read from OHDSI's field- and table-level CSV.

The CSV files in ``data/`` are copied unchanged from the OHDSI CommonDataModel project
(``inst/csv``, Apache-2.0). Everything schema-shaped in pmhub (DDL, validation, status)
derives from them; no table definition is written by hand.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import pyarrow as pa

CDM_VERSION = "5.4"
FIELD_FILE = "OMOP_CDMv5.4_Field_Level.csv"
TABLE_FILE = "OMOP_CDMv5.4_Table_Level.csv"

_VARCHAR = re.compile(r"varchar\((\d+|MAX)\)", re.IGNORECASE)


@dataclass(frozen=True)
class Field:
    table: str
    name: str
    datatype: str  # normalised: integer, float, date, datetime, varchar
    length: int | None  # varchar length; None for varchar(MAX) and non-text types
    required: bool
    primary_key: bool
    fk_table: str | None
    fk_field: str | None
    fk_domain: str | None

    @property
    def is_concept_id(self) -> bool:
        return self.fk_table == "concept"

    @property
    def is_wide_id(self) -> bool:
        """Row and person ids may pass 2**31 in a large CDW; concept ids never do."""
        if self.is_concept_id or not self.name.endswith("_id"):
            return False
        if self.name == "subject_id":  # the cohort table's person_id, without a declared key
            return True
        return self.primary_key or self.fk_table not in (None, "concept")


@dataclass(frozen=True)
class Table:
    name: str
    schema: str  # CDM, VOCAB or RESULTS
    required: bool
    description: str
    fields: tuple[Field, ...]

    @property
    def primary_key(self) -> Field | None:
        return next((f for f in self.fields if f.primary_key), None)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


def _na(value: str) -> str | None:
    value = value.strip()
    return None if value in ("", "NA") else value


def _datatype(raw: str) -> tuple[str, int | None]:
    raw = raw.strip()
    match = _VARCHAR.fullmatch(raw)
    if match:
        size = match.group(1)
        return "varchar", None if size.upper() == "MAX" else int(size)
    lowered = raw.lower()
    if lowered not in ("integer", "float", "date", "datetime"):
        raise ValueError(f"unknown CDM datatype {raw!r}")
    return lowered, None


def _read(name: str) -> list[dict[str, str]]:
    text = resources.files("pmhub.cdm").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines(keepends=True)))


def _field(row: dict[str, str]) -> Field:
    datatype, length = _datatype(row["cdmDatatype"])
    fk_table = _na(row["fkTableName"])
    fk_field = _na(row["fkFieldName"])
    return Field(
        table=row["cdmTableName"].lower(),
        name=row["cdmFieldName"].strip().strip('"').lower(),  # the spec quotes "offset"
        datatype=datatype,
        length=length,
        required=row["isRequired"].strip().lower() == "yes",
        primary_key=row["isPrimaryKey"].strip().lower() == "yes",
        fk_table=fk_table.lower() if fk_table else None,
        fk_field=fk_field.lower() if fk_field else None,
        fk_domain=_na(row["fkDomain"]),
    )


@cache
def tables() -> dict[str, Table]:
    """Every table of the specification, in the specification's order."""
    fields: dict[str, list[Field]] = {}
    for row in _read(FIELD_FILE):
        f = _field(row)
        fields.setdefault(f.table, []).append(f)
    result: dict[str, Table] = {}
    for row in _read(TABLE_FILE):
        name = row["cdmTableName"].lower()
        result[name] = Table(
            name=name,
            schema=row["schema"].strip().upper(),
            required=row["isRequired"].strip().lower() == "yes",
            description=row["tableDescription"],
            fields=tuple(fields.pop(name)),
        )
    if fields:
        raise ValueError(f"fields for tables missing from {TABLE_FILE}: {sorted(fields)}")
    return result


def table(name: str) -> Table:
    try:
        return tables()[name.lower()]
    except KeyError:
        raise KeyError(f"OMOP CDM v{CDM_VERSION} has no table {name!r}") from None


VOCABULARY_TABLES = (
    "concept",
    "vocabulary",
    "domain",
    "concept_class",
    "concept_relationship",
    "relationship",
    "concept_synonym",
    "concept_ancestor",
    "source_to_concept_map",
    "drug_strength",
)


def arrow_type(field: Field) -> pa.DataType:
    if field.datatype == "integer":
        return pa.int64() if field.is_wide_id else pa.int32()
    types: dict[str, pa.DataType] = {
        "float": pa.float64(),
        "date": pa.date32(),
        "datetime": pa.timestamp("us"),
        "varchar": pa.string(),
    }
    return types[field.datatype]


def arrow_schema(table: Table) -> pa.Schema:
    return pa.schema(
        [pa.field(f.name, arrow_type(f), nullable=not f.required) for f in table.fields]
    )
