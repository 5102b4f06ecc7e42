"""The check file: which check types run, with which thresholds, exclusions and parameters.

The shipped file is ``data/checks.yaml``; a site may pass its own. Everything in it is
validated before a query runs: unknown check types, unknown tables or fields, thresholds
outside 0-100 and malformed parameters are refused with the entry that holds them, so that
nothing from the file reaches SQL unchecked.
"""

from __future__ import annotations

import csv
import datetime as dt
import string
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pmhub import documents
from pmhub.cdm import spec
from pmhub.quality.errors import CheckFileError, UnknownCheckTypeError

CATEGORIES = ("completeness", "conformance", "plausibility")
MAX_FILE_BYTES = 1 << 20  # a check file is a page of YAML; a larger one is not a check file
LIMITS = documents.Limits(max_bytes=MAX_FILE_BYTES)
MAX_DATA_ROWS = 100_000
DESCRIPTION_KEYS = frozenset(
    {
        "table",
        "field",
        "source_field",
        "end_field",
        "fk_table",
        "fk_field",
        "fk_domain",
        "datatype",
        "length",
        "low",
        "high",
        "concept",
        "unit",
        "units",
        "grace_days",
        "version",
    }
)

# Check types pmhub knows, with the parameters each takes. The SQL of each is in checks.py.
KNOWN_TYPES: dict[str, frozenset[str]] = {
    "is_required": frozenset(),
    "standard_concept_missing": frozenset(),
    "source_value_unmapped": frozenset(),
    "is_primary_key": frozenset(),
    "cdm_version": frozenset(),
    "cdm_datatype": frozenset(),
    "field_length": frozenset(),
    "is_foreign_key": frozenset(),
    "fk_domain": frozenset(),
    "standard_valid_concept": frozenset(),
    "date_range": frozenset({"low"}),
    "start_before_end": frozenset(),
    "field_range": frozenset({"ranges"}),
    "measurement_unit": frozenset({"ranges"}),
    "measurement_value_range": frozenset({"ranges"}),
    "after_birth": frozenset(),
    "before_death": frozenset({"grace_days"}),
    "plausible_gender": frozenset({"concepts"}),
}


@dataclass(frozen=True)
class PlausibleRange:
    concept_id: int
    concept_name: str
    unit_concept_id: int
    unit_name: str
    low: float
    high: float


@dataclass(frozen=True)
class GenderConcept:
    concept_id: int
    concept_name: str
    domain_id: str
    gender_concept_id: int  # the only sex that can have it


GENDERS = {"MALE": 8507, "FEMALE": 8532}
Bound = float | Literal["as_of_year"] | None


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    low: dt.date | None = None
    grace_days: int | None = Field(default=None, ge=0, le=3650)
    ranges: str | dict[str, tuple[Bound, Bound]] | None = None
    concepts: str | None = None


class CheckEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    category: Literal["completeness", "conformance", "plausibility"]
    subcategory: str = Field(min_length=1, max_length=40)
    description: str = Field(min_length=1, max_length=300)
    threshold: float = Field(ge=0, le=100)
    overrides: dict[str, float] = Field(default_factory=dict)
    exclude: list[str] = Field(default_factory=list)
    params: Params = Field(default_factory=Params)

    @field_validator("description")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        unknown = names - DESCRIPTION_KEYS
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {sorted(unknown)}; use {sorted(DESCRIPTION_KEYS)}"
            )
        return value

    @field_validator("overrides")
    @classmethod
    def _override_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        for target, threshold in value.items():
            if not 0 <= threshold <= 100:
                raise ValueError(f"threshold {threshold} for {target} is outside 0-100")
        return value


class CheckFileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    checks: list[CheckEntry] = Field(min_length=1, max_length=500)


@dataclass(frozen=True)
class CheckDefinitions:
    """A validated check file and the data files its entries name."""

    source: str
    entries: tuple[CheckEntry, ...]
    ranges: Mapping[str, tuple[PlausibleRange, ...]]  # by the file name an entry gives
    gender_concepts: Mapping[str, tuple[GenderConcept, ...]]

    def threshold(self, entry: CheckEntry, table: str, field: str | None) -> float:
        if field is not None and f"{table}.{field}" in entry.overrides:
            return entry.overrides[f"{table}.{field}"]
        return entry.overrides.get(table, entry.threshold)

    @staticmethod
    def excluded(entry: CheckEntry, table: str, field: str | None) -> bool:
        return table in entry.exclude or (field is not None and f"{table}.{field}" in entry.exclude)


def shipped_file() -> Path:
    return Path(str(resources.files("pmhub.quality").joinpath("data", "checks.yaml")))


def load(path: Path | None = None) -> CheckDefinitions:
    """Read and validate a check file (the shipped one by default)."""
    path = path or shipped_file()
    entries = _parse(path)
    ranges: dict[str, tuple[PlausibleRange, ...]] = {}
    genders: dict[str, tuple[GenderConcept, ...]] = {}
    for entry in entries:
        _check_targets(entry)
        _check_params(entry)
        if isinstance(entry.params.ranges, str) and entry.params.ranges not in ranges:
            ranges[entry.params.ranges] = _read_ranges(_data_file(path, entry.params.ranges))
        if entry.params.concepts is not None and entry.params.concepts not in genders:
            genders[entry.params.concepts] = _read_genders(_data_file(path, entry.params.concepts))
    return CheckDefinitions(str(path), tuple(entries), ranges, genders)


def _parse(path: Path) -> list[CheckEntry]:
    raw: Any = documents.read(
        path, error=CheckFileError, limits=LIMITS, what="check file", kind="yaml"
    )
    if not isinstance(raw, dict):
        raise CheckFileError(f"check file {path} must be a mapping with 'version' and 'checks'")
    _refuse_unknown_types(path, raw.get("checks"))
    try:
        return list(CheckFileModel.model_validate(raw).checks)
    except ValidationError as exc:
        raise CheckFileError(f"check file {path}: {_problems(exc)}") from exc


def _refuse_unknown_types(path: Path, checks: object) -> None:
    if not isinstance(checks, list):
        return  # the model reports the shape
    for number, entry in enumerate(checks, start=1):
        kind = entry.get("type") if isinstance(entry, dict) else None
        if isinstance(kind, str) and kind not in KNOWN_TYPES:
            raise UnknownCheckTypeError(
                f"check file {path}, entry {number}: unknown check type {kind[:60]!r}; "
                f"known types: {', '.join(KNOWN_TYPES)}"
            )


def _problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _check_targets(entry: CheckEntry) -> None:
    for target in [*entry.overrides, *entry.exclude]:
        table_name, _, field_name = target.partition(".")
        table = spec.tables().get(table_name)
        if table is None or table.schema != "CDM":
            raise CheckFileError(
                f"check {entry.type}: {target[:80]!r} names no table of the OMOP CDM"
            )
        if field_name and field_name not in table.column_names:
            raise CheckFileError(f"check {entry.type}: {table_name} has no field {field_name!r}")


def _check_params(entry: CheckEntry) -> None:
    given = {k for k, v in entry.params.model_dump().items() if v is not None}
    allowed = KNOWN_TYPES[entry.type]
    if given - allowed:
        raise CheckFileError(
            f"check {entry.type}: unexpected params {sorted(given - allowed)} "
            f"(it takes {sorted(allowed) or 'none'})"
        )
    if allowed - given:
        raise CheckFileError(f"check {entry.type}: missing params {sorted(allowed - given)}")
    ranges = entry.params.ranges
    if entry.type == "field_range" and not isinstance(ranges, dict):
        raise CheckFileError("check field_range: params.ranges maps table.field to [low, high]")
    if entry.type != "field_range" and isinstance(ranges, dict):
        raise CheckFileError(f"check {entry.type}: params.ranges names a CSV file")
    if isinstance(ranges, dict):
        _check_field_ranges(ranges)


def _check_field_ranges(ranges: dict[str, tuple[Bound, Bound]]) -> None:
    for target, (low, high) in ranges.items():
        table_name, _, field_name = target.partition(".")
        table = spec.tables().get(table_name)
        if table is None or field_name not in table.column_names:
            raise CheckFileError(f"check field_range: {target[:80]!r} names no CDM field")
        if table.field(field_name).datatype not in ("integer", "float"):
            raise CheckFileError(f"check field_range: {target} is not numeric")
        if low == "as_of_year":
            raise CheckFileError(f"check field_range: {target}: as_of_year only as the high end")
        if isinstance(low, float) and isinstance(high, float) and low > high:
            raise CheckFileError(f"check field_range: {target}: low {low} above high {high}")


def _data_file(check_file: Path, name: str) -> Path:
    if Path(name).name != name or not name.endswith(".csv"):
        raise CheckFileError(
            f"data file {name[:80]!r} must be a plain .csv file name next to the check file"
        )
    beside = check_file.parent / name
    if beside.exists():
        return beside
    shipped = Path(str(resources.files("pmhub.quality").joinpath("data", name)))
    if shipped.exists():
        return shipped
    raise CheckFileError(f"data file {name} is neither next to {check_file} nor shipped")


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        if path.stat().st_size > MAX_FILE_BYTES * 8:
            raise CheckFileError(f"data file {path} is larger than 8 MiB")
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != columns:
                raise CheckFileError(
                    f"data file {path} must have the columns {', '.join(columns)} "
                    f"(it has {', '.join(reader.fieldnames or ())})"
                )
            rows = []
            for row in reader:
                rows.append(row)
                if len(rows) > MAX_DATA_ROWS:
                    raise CheckFileError(f"data file {path} has more than {MAX_DATA_ROWS} rows")
            return rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CheckFileError(f"cannot read data file {path}: {exc}") from exc


RANGE_COLUMNS = ("concept_id", "concept_name", "unit_concept_id", "unit_name", "low", "high")
GENDER_COLUMNS = ("concept_id", "concept_name", "domain_id", "plausible_gender")


def _read_ranges(path: Path) -> tuple[PlausibleRange, ...]:
    result: dict[tuple[int, int], PlausibleRange] = {}
    for line, row in enumerate(_read_csv(path, RANGE_COLUMNS), start=2):
        try:
            item = PlausibleRange(
                concept_id=int(row["concept_id"]),
                concept_name=row["concept_name"][:255],
                unit_concept_id=int(row["unit_concept_id"]),
                unit_name=row["unit_name"][:50],
                low=float(row["low"]),
                high=float(row["high"]),
            )
        except (TypeError, ValueError) as exc:
            raise CheckFileError(f"{path}, line {line}: {exc}") from exc
        if not item.low <= item.high or item.low != item.low or abs(item.high) == float("inf"):
            raise CheckFileError(f"{path}, line {line}: low must be a number at most high")
        key = (item.concept_id, item.unit_concept_id)
        if key in result:
            raise CheckFileError(f"{path}, line {line}: concept {key[0]} unit {key[1]} repeats")
        result[key] = item
    return tuple(result.values())


def _read_genders(path: Path) -> tuple[GenderConcept, ...]:
    result: dict[int, GenderConcept] = {}
    for line, row in enumerate(_read_csv(path, GENDER_COLUMNS), start=2):
        gender = GENDERS.get(row["plausible_gender"].strip().upper())
        if gender is None:
            raise CheckFileError(f"{path}, line {line}: plausible_gender must be MALE or FEMALE")
        if row["domain_id"] not in GENDER_DOMAIN_TABLES:
            raise CheckFileError(
                f"{path}, line {line}: domain_id must be one of {', '.join(GENDER_DOMAIN_TABLES)}"
            )
        try:
            concept_id = int(row["concept_id"])
        except ValueError as exc:
            raise CheckFileError(f"{path}, line {line}: {exc}") from exc
        if concept_id in result:
            raise CheckFileError(f"{path}, line {line}: concept {concept_id} repeats")
        result[concept_id] = GenderConcept(
            concept_id, row["concept_name"][:255], row["domain_id"], gender
        )
    return tuple(result.values())


# The table and concept field where records of each domain live.
GENDER_DOMAIN_TABLES: dict[str, tuple[str, str]] = {
    "Condition": ("condition_occurrence", "condition_concept_id"),
    "Procedure": ("procedure_occurrence", "procedure_concept_id"),
    "Measurement": ("measurement", "measurement_concept_id"),
    "Observation": ("observation", "observation_concept_id"),
    "Drug": ("drug_exposure", "drug_concept_id"),
    "Device": ("device_exposure", "device_concept_id"),
}
