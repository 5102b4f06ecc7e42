"""Check types: where each applies (expanded over the CDM specification and the data files)
and what a violating row is (an SQL aggregate over the checked table).

A row-level check compiles to two aggregates, violated and denominator, over ``{table} t``
and some many-to-one joins; the engine puts every row-level check of a table into one
query. Concept-level checks (units, value ranges, sex) compile to one grouped query per
table. The SQL is the same on every backend; :mod:`pmhub.cdm.ddl` quotes identifiers, and
every name in it comes from the specification, never from the check file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pmhub.cdm import spec
from pmhub.cdm.ddl import quote
from pmhub.cdm.schema import CDM_VERSION_CONCEPT_ID
from pmhub.quality.definitions import (
    GENDER_DOMAIN_TABLES,
    CheckDefinitions,
    CheckEntry,
    GenderConcept,
    PlausibleRange,
)


@dataclass(frozen=True)
class Check:
    type: str
    category: str
    subcategory: str
    level: str  # table | field | concept
    table: str
    field: str | None
    threshold: float
    description: str
    concept_id: int | None = None
    unit_concept_id: int | None = None
    columns: tuple[str, ...] = ()  # columns of ``table`` the check reads
    detail: tuple[tuple[str, Any], ...] = ()

    @property
    def id(self) -> str:
        where = self.table if self.field is None else f"{self.table}.{self.field}"
        parts = [self.type, where]
        if self.concept_id is not None:
            parts.append(str(self.concept_id))
        if self.unit_concept_id is not None:
            parts.append(str(self.unit_concept_id))
        return "/".join(parts)

    def param(self, key: str) -> Any:
        return dict(self.detail)[key]


@dataclass(frozen=True)
class Context:
    definitions: CheckDefinitions
    as_of: dt.date


def checked_tables() -> list[spec.Table]:
    """The CDM's clinical, health-system, cost, derived and metadata tables; the vocabulary
    is the reference the checks read, not data to check."""
    return [t for t in spec.tables().values() if t.schema == "CDM"]


def _fmt(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _make(
    entry: CheckEntry,
    defs: CheckDefinitions,
    table: str,
    field_name: str | None,
    *,
    level: str = "field",
    columns: tuple[str, ...] = (),
    concept_id: int | None = None,
    unit_concept_id: int | None = None,
    **detail: Any,
) -> Check:
    values = {"table": table, "field": field_name or "", **{k: _fmt(v) for k, v in detail.items()}}
    return Check(
        type=entry.type,
        category=entry.category,
        subcategory=entry.subcategory,
        level=level,
        table=table,
        field=field_name,
        threshold=defs.threshold(entry, table, field_name),
        description=entry.description.format_map(_Blank(values)),
        concept_id=concept_id,
        unit_concept_id=unit_concept_id,
        columns=columns or ((field_name,) if field_name else ()),
        detail=tuple(sorted(detail.items())),
    )


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


# --- expansion -------------------------------------------------------------------------

Expander = Callable[[CheckEntry, Context], Iterator[Check]]


def _fields(
    entry: CheckEntry, ctx: Context, keep: Callable[[spec.Field], bool]
) -> Iterator[tuple[spec.Table, spec.Field]]:
    for table in checked_tables():
        for f in table.fields:
            if keep(f) and not ctx.definitions.excluded(entry, table.name, f.name):
                yield table, f


def _is_source_concept(f: spec.Field) -> bool:
    return f.is_concept_id and f.name.endswith("source_concept_id")


def _standard_field(f: spec.Field) -> bool:
    return f.is_concept_id and not _is_source_concept(f)


def expand_is_required(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    for table, f in _fields(entry, ctx, lambda f: f.required):
        yield _make(entry, ctx.definitions, table.name, f.name)


def expand_standard_concept_missing(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    for table, f in _fields(entry, ctx, _standard_field):
        yield _make(entry, ctx.definitions, table.name, f.name)


def _source_field(table: spec.Table, f: spec.Field) -> str | None:
    if not _standard_field(f):
        return None
    candidate = f.name.removesuffix("_concept_id") + "_source_value"
    return candidate if candidate in table.column_names else None


def expand_source_value_unmapped(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    for table in checked_tables():
        for f in table.fields:
            source = _source_field(table, f)
            if source and not ctx.definitions.excluded(entry, table.name, f.name):
                yield _make(
                    entry,
                    ctx.definitions,
                    table.name,
                    f.name,
                    columns=(f.name, source),
                    source_field=source,
                )


def expand_is_primary_key(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    for table in checked_tables():
        pk = table.primary_key
        if pk is not None and not ctx.definitions.excluded(entry, table.name, pk.name):
            yield _make(entry, ctx.definitions, table.name, pk.name, level="table")


def expand_cdm_version(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    field_name = "cdm_version_concept_id"
    if not ctx.definitions.excluded(entry, "cdm_source", field_name):
        yield _make(
            entry,
            ctx.definitions,
            "cdm_source",
            field_name,
            level="table",
            concept_id=CDM_VERSION_CONCEPT_ID,
            concept=f"{CDM_VERSION_CONCEPT_ID} (OMOP CDM Version {spec.CDM_VERSION})",
            version=f"v{spec.CDM_VERSION}",
        )


def expand_cdm_datatype(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    for table, f in _fields(entry, ctx, lambda f: f.datatype != "varchar"):
        yield _make(entry, ctx.definitions, table.name, f.name, datatype=f.datatype)


def expand_field_length(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    for table, f in _fields(entry, ctx, lambda f: f.length is not None):
        yield _make(entry, ctx.definitions, table.name, f.name, length=f.length)


def expand_is_foreign_key(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    for table, f in _fields(entry, ctx, lambda f: f.fk_table is not None):
        yield _make(
            entry, ctx.definitions, table.name, f.name, fk_table=f.fk_table, fk_field=f.fk_field
        )


def expand_fk_domain(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    for table, f in _fields(entry, ctx, lambda f: f.is_concept_id and f.fk_domain is not None):
        yield _make(entry, ctx.definitions, table.name, f.name, fk_domain=f.fk_domain)


def expand_standard_valid_concept(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    for table, f in _fields(entry, ctx, _standard_field):
        yield _make(entry, ctx.definitions, table.name, f.name)


def expand_date_range(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    for table, f in _fields(entry, ctx, lambda f: f.datatype in ("date", "datetime")):
        yield _make(entry, ctx.definitions, table.name, f.name, low=entry.params.low)


def _end_field(table: spec.Table, f: spec.Field) -> str | None:
    if f.datatype not in ("date", "datetime"):
        return None
    if "_start_" in f.name:
        candidate = f.name.replace("_start_", "_end_", 1)
    elif f.name.endswith(("_date", "_datetime")) and "_end_" not in f.name:
        stem, _, kind = f.name.rpartition("_")
        candidate = f"{stem}_end_{kind}"  # procedure_date → procedure_end_date
    else:
        return None
    return candidate if candidate in table.column_names else None


def expand_start_before_end(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    for table in checked_tables():
        for f in table.fields:
            end = _end_field(table, f)
            if end and not ctx.definitions.excluded(entry, table.name, f.name):
                yield _make(
                    entry, ctx.definitions, table.name, f.name, columns=(f.name, end), end_field=end
                )


def expand_field_range(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    ranges = entry.params.ranges
    assert isinstance(ranges, dict)  # definitions.load checked it
    for target, (low, high) in ranges.items():
        table, _, field_name = target.partition(".")
        if ctx.definitions.excluded(entry, table, field_name):
            continue
        top = ctx.as_of.year if high == "as_of_year" else high
        yield _make(
            entry,
            ctx.definitions,
            table,
            field_name,
            low="-∞" if low is None else low,
            high="∞" if top is None else top,
        )


def _event_dates(entry: CheckEntry, ctx: Context, skip: str) -> Iterator[tuple[str, str]]:
    """Date fields of tables with events of a person (person itself and ``skip`` aside)."""
    for table in checked_tables():
        if table.name in ("person", skip) or "person_id" not in table.column_names:
            continue
        for f in table.fields:
            if f.datatype == "date" and not ctx.definitions.excluded(entry, table.name, f.name):
                yield table.name, f.name


def expand_after_birth(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    for table, field_name in _event_dates(entry, ctx, skip=""):
        yield _make(entry, ctx.definitions, table, field_name, columns=(field_name, "person_id"))


def expand_before_death(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    for table, field_name in _event_dates(entry, ctx, skip="death"):
        yield _make(
            entry,
            ctx.definitions,
            table,
            field_name,
            columns=(field_name, "person_id"),
            grace_days=entry.params.grace_days,
        )


def _ranges(entry: CheckEntry, ctx: Context) -> tuple[PlausibleRange, ...]:
    assert isinstance(entry.params.ranges, str)
    return ctx.definitions.ranges[entry.params.ranges]


def expand_measurement_unit(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    if ctx.definitions.excluded(entry, "measurement", "unit_concept_id"):
        return
    units: dict[int, list[PlausibleRange]] = {}
    for r in _ranges(entry, ctx):
        units.setdefault(r.concept_id, []).append(r)
    for concept_id, rows in units.items():
        yield _make(
            entry,
            ctx.definitions,
            "measurement",
            "unit_concept_id",
            level="concept",
            columns=MEASUREMENT_COLUMNS,
            concept_id=concept_id,
            concept=rows[0].concept_name,
            units=", ".join(r.unit_name for r in rows),
            unit_ids=tuple(r.unit_concept_id for r in rows),
        )


MEASUREMENT_COLUMNS = ("measurement_concept_id", "unit_concept_id", "value_as_number")


def expand_measurement_value_range(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    if ctx.definitions.excluded(entry, "measurement", "value_as_number"):
        return
    for r in _ranges(entry, ctx):
        yield _make(
            entry,
            ctx.definitions,
            "measurement",
            "value_as_number",
            level="concept",
            columns=MEASUREMENT_COLUMNS,
            concept_id=r.concept_id,
            unit_concept_id=r.unit_concept_id,
            concept=r.concept_name,
            unit=r.unit_name,
            low=r.low,
            high=r.high,
        )


def expand_plausible_gender(entry: CheckEntry, ctx: Context) -> Iterator[Check]:
    assert entry.params.concepts is not None
    for g in ctx.definitions.gender_concepts[entry.params.concepts]:
        table, field_name = GENDER_DOMAIN_TABLES[g.domain_id]
        if ctx.definitions.excluded(entry, table, field_name):
            continue
        yield _make(
            entry,
            ctx.definitions,
            table,
            field_name,
            level="concept",
            columns=(field_name, "person_id"),
            concept_id=g.concept_id,
            concept=g.concept_name,
            gender_concept_id=g.gender_concept_id,
        )


EXPANDERS: dict[str, Expander] = {
    "is_required": expand_is_required,
    "standard_concept_missing": expand_standard_concept_missing,
    "source_value_unmapped": expand_source_value_unmapped,
    "is_primary_key": expand_is_primary_key,
    "cdm_version": expand_cdm_version,
    "cdm_datatype": expand_cdm_datatype,
    "field_length": expand_field_length,
    "is_foreign_key": expand_is_foreign_key,
    "fk_domain": expand_fk_domain,
    "standard_valid_concept": expand_standard_valid_concept,
    "date_range": expand_date_range,
    "start_before_end": expand_start_before_end,
    "field_range": expand_field_range,
    "measurement_unit": expand_measurement_unit,
    "measurement_value_range": expand_measurement_value_range,
    "after_birth": expand_after_birth,
    "before_death": expand_before_death,
    "plausible_gender": expand_plausible_gender,
}


def expand(definitions: CheckDefinitions, as_of: dt.date) -> list[Check]:
    """Every check the definitions ask for, in file order; ids are unique."""
    ctx = Context(definitions, as_of)
    result: dict[str, Check] = {}
    for entry in definitions.entries:
        for check in EXPANDERS[entry.type](entry, ctx):
            result.setdefault(check.id, check)  # a repeated entry adds nothing new
    return list(result.values())


# --- SQL ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Join:
    alias: str
    sql: str


@dataclass(frozen=True)
class RowMeasure:
    """Two aggregates over ``{table} t``, and the joins they read."""

    violated: str
    denominator: str
    joins: tuple[Join, ...] = ()


@dataclass
class Joins:
    """Many-to-one joins from the checked table, so that no join repeats a row."""

    unique_keys: Callable[[str], tuple[str, ...]]  # the declared primary key of a table

    cache: dict[str, Join] = field(default_factory=dict)

    def reference(self, table: str, key: str, columns: tuple[str, ...]) -> str:
        if self.unique_keys(table) == (key,):
            return table
        # No declared key: group, so that a repeated key cannot multiply rows.
        extra = "".join(f", min({quote(c)}) AS {quote(c)}" for c in columns)
        return f"(SELECT {quote(key)}{extra} FROM {table} GROUP BY {quote(key)})"

    def foreign(self, column: str, table: str, key: str) -> Join:
        if (column, table, key) == ("person_id", "person", "person_id"):
            return self.birth()  # one row per person_id already: the same join serves both
        alias = f"fk__{column}"
        if alias not in self.cache:
            ref = self.reference(table, key, ())
            self.cache[alias] = Join(
                alias, f"LEFT JOIN {ref} {alias} ON {alias}.{quote(key)} = t.{quote(column)}"
            )
        return self.cache[alias]

    def birth(self) -> Join:
        if "pb" not in self.cache:
            self.cache["pb"] = Join(
                "pb",
                f"LEFT JOIN (SELECT person_id, min({BIRTH_DATE}) AS birth_date FROM person "
                "GROUP BY person_id) pb ON pb.person_id = t.person_id",
            )
        return self.cache["pb"]

    def death(self) -> Join:
        if "pd" not in self.cache:
            self.cache["pd"] = Join(
                "pd",
                "LEFT JOIN (SELECT person_id, min(death_date) AS death_date FROM death "
                "GROUP BY person_id) pd ON pd.person_id = t.person_id",
            )
        return self.cache["pd"]


# The earliest day a person can have been born: birth_datetime, else year, month and day
# where they make a date, else the first of the month or year. Never an invalid date, so
# that bad birth fields cannot make the query fail (date_range and field_range report them).
BIRTH_DATE = (
    "COALESCE(CAST(birth_datetime AS DATE), CASE "
    "WHEN year_of_birth NOT BETWEEN 1 AND 9999 THEN NULL "
    "WHEN month_of_birth BETWEEN 1 AND 12 AND day_of_birth BETWEEN 1 AND 28 "
    "THEN make_date(year_of_birth, month_of_birth, day_of_birth) "
    "WHEN month_of_birth BETWEEN 1 AND 12 THEN make_date(year_of_birth, month_of_birth, 1) "
    "ELSE make_date(year_of_birth, 1, 1) END)"
)

COUNT_ALL = "count(*)"


def _count_if(condition: str) -> str:
    return f"sum(CASE WHEN {condition} THEN 1 ELSE 0 END)"


def _col(name: str) -> str:
    return f"t.{quote(name)}"


def _date(literal: dt.date) -> str:
    return f"DATE '{literal.isoformat()}'"  # from a validated date object, never from text


def _as_date(check: Check, column: str) -> str:
    f = spec.table(check.table).field(column)
    return f"CAST({_col(column)} AS DATE)" if f.datatype == "datetime" else _col(column)


# Patterns a value's text must match to be of the CDM type (for columns the database holds
# as another type, e.g. text); the whole text must match. No '?': the PostgreSQL backend
# takes every '?' for a parameter placeholder.
TYPE_PATTERNS = {
    "integer": r"-{0,1}[0-9]+",
    "float": r"-{0,1}[0-9]+(\.[0-9]*){0,1}([eE][-+]{0,1}[0-9]+){0,1}",
    "date": r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
    "datetime": r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+){0,1}){0,1}){0,1}",
}


def regex_full_match(dialect: str, expr: str, pattern: str) -> str:
    if dialect == "postgresql":
        return f"({expr} ~ '^({pattern})$')"
    return f"regexp_full_match({expr}, '{pattern}')"


@dataclass(frozen=True)
class CompileContext:
    dialect: str
    as_of: dt.date
    incompatible: frozenset[tuple[str, str]]  # (table, column) of another type than the spec's
    joins: Joins


def compile_row(check: Check, cc: CompileContext) -> RowMeasure:
    return ROW_COMPILERS[check.type](check, cc)


def _is_required(check: Check, cc: CompileContext) -> RowMeasure:
    assert check.field is not None
    return RowMeasure(_count_if(f"{_col(check.field)} IS NULL"), COUNT_ALL)


def _is_primary_key(check: Check, cc: CompileContext) -> RowMeasure:
    assert check.field is not None
    if cc.joins.unique_keys(check.table) == (check.field,):
        return RowMeasure("0", COUNT_ALL)  # the database's own key constraint holds it
    key = _col(check.field)
    return RowMeasure(f"count({key}) - count(DISTINCT {key})", COUNT_ALL)


def _cdm_version(check: Check, cc: CompileContext) -> RowMeasure:
    """The CDM version's concept, whatever the vocabulary holds: the one value it may have."""
    wrong = f"{_col('cdm_version_concept_id')} IS DISTINCT FROM {int(check.concept_id or 0)}"
    return RowMeasure(_count_if(wrong), COUNT_ALL)


def _cdm_datatype(check: Check, cc: CompileContext) -> RowMeasure:
    assert check.field is not None
    if (check.table, check.field) not in cc.incompatible:
        return RowMeasure("0", COUNT_ALL)  # the database keeps the type: nothing to scan
    text = f"CAST({_col(check.field)} AS VARCHAR)"
    pattern = TYPE_PATTERNS[check.param("datatype")]
    bad = f"{_col(check.field)} IS NOT NULL AND NOT {regex_full_match(cc.dialect, text, pattern)}"
    return RowMeasure(_count_if(bad), COUNT_ALL)


def _field_length(check: Check, cc: CompileContext) -> RowMeasure:
    assert check.field is not None
    length = int(check.param("length"))
    return RowMeasure(
        _count_if(f"length({_col(check.field)}) > {length}"), f"count({_col(check.field)})"
    )


def _is_foreign_key(check: Check, cc: CompileContext) -> RowMeasure:
    assert check.field is not None
    fk_table, fk_field = check.param("fk_table"), check.param("fk_field")
    join = cc.joins.foreign(check.field, fk_table, fk_field)
    missing = f"{_col(check.field)} IS NOT NULL AND {join.alias}.{quote(fk_field)} IS NULL"
    return RowMeasure(_count_if(missing), COUNT_ALL, (join,))


def _date_range(check: Check, cc: CompileContext) -> RowMeasure:
    assert check.field is not None
    value = _as_date(check, check.field)
    low = check.param("low")
    outside = f"({value} < {_date(low)} OR {value} > {_date(cc.as_of)})"
    return RowMeasure(_count_if(outside), f"count({_col(check.field)})")


def _start_before_end(check: Check, cc: CompileContext) -> RowMeasure:
    assert check.field is not None
    start, end = _col(check.field), _col(check.param("end_field"))
    both = f"{start} IS NOT NULL AND {end} IS NOT NULL"
    # By day, as DQD compares: a datetime without a time is midnight by convention, so a
    # same-day visit from 14:30 "to" 00:00 is correct OMOP data.
    early = f"{_as_date(check, str(check.param('end_field')))} < {_as_date(check, check.field)}"
    return RowMeasure(_count_if(early), _count_if(both))


def _number(value: object) -> str | None:
    if isinstance(value, int | float):
        return f"CAST({float(value)!r} AS FLOAT8)"
    return None  # an open end


def _field_range(check: Check, cc: CompileContext) -> RowMeasure:
    assert check.field is not None
    value = _col(check.field)
    tests = []
    low, high = _number(check.param("low")), _number(check.param("high"))
    if low is not None:
        tests.append(f"{value} < {low}")
    if high is not None:
        tests.append(f"{value} > {high}")
    outside = " OR ".join(tests) if tests else "FALSE"
    return RowMeasure(_count_if(f"({outside})"), f"count({value})")


def _after_birth(check: Check, cc: CompileContext) -> RowMeasure:
    assert check.field is not None
    join = cc.joins.birth()
    return RowMeasure(
        _count_if(f"{_col(check.field)} < pb.birth_date"), f"count({_col(check.field)})", (join,)
    )


def _before_death(check: Check, cc: CompileContext) -> RowMeasure:
    assert check.field is not None
    join = cc.joins.death()
    grace = int(check.param("grace_days"))
    late = f"{_col(check.field)} > pd.death_date + {grace}"
    # DQD's denominator: the rows of persons who died, not every row of the table
    of_the_dead = f"{_col(check.field)} IS NOT NULL AND pd.death_date IS NOT NULL"
    return RowMeasure(_count_if(late), _count_if(of_the_dead), (join,))


ROW_COMPILERS: dict[str, Callable[[Check, CompileContext], RowMeasure]] = {
    "is_required": _is_required,
    "is_primary_key": _is_primary_key,
    "cdm_version": _cdm_version,
    "cdm_datatype": _cdm_datatype,
    "field_length": _field_length,
    "is_foreign_key": _is_foreign_key,
    "date_range": _date_range,
    "start_before_end": _start_before_end,
    "field_range": _field_range,
    "after_birth": _after_birth,
    "before_death": _before_death,
}

CONCEPT_TYPES = frozenset({"measurement_unit", "measurement_value_range", "plausible_gender"})

# Checks of a concept field answered from the field's value counts joined to the concept
# table: one cheap GROUP BY per field instead of a join of every row with the vocabulary.
HISTOGRAM_TYPES = frozenset({"standard_concept_missing", "fk_domain", "standard_valid_concept"})


def _by_set(columns: list[str], then: list[str]) -> str:
    """In a GROUP BY GROUPING SETS ((a), (b), …) query: ``then[i]`` in the rows of set i."""
    whens = " ".join(
        f"WHEN GROUPING({quote(c)}) = 0 THEN {t}" for c, t in zip(columns, then, strict=True)
    )
    return f"CASE {whens} END"


def source_value_query(table: str, checks: list[Check]) -> str:
    """Per checked field: distinct source values, and how many of them some row maps to 0.
    One scan with a grouping set per source field (hash aggregates) rather than
    count(DISTINCT …) per field, which PostgreSQL answers by sorting every row."""
    sources = [str(c.param("source_field")) for c in checks]
    assert len(set(sources)) == len(sources), "one check per source field"
    sets = ", ".join(f"({quote(s)})" for s in sources)
    unmapped = [f"max(CASE WHEN {quote(str(c.field))} = 0 THEN 1 ELSE 0 END)" for c in checks]
    names = [f"'{c.field}'" for c in checks]
    return (
        "SELECT x.field, count(*), sum(x.u) FROM (SELECT "
        f"{_by_set(sources, names)} AS field, "
        f"{_by_set(sources, [quote(s) for s in sources])} AS v, "
        f"{_by_set(sources, unmapped)} AS u "
        f"FROM {table} GROUP BY GROUPING SETS ({sets})) x "
        "WHERE x.v IS NOT NULL GROUP BY x.field"
    )


def uses_histogram(check: Check) -> bool:
    return check.type in HISTOGRAM_TYPES or (
        check.type == "is_foreign_key" and check.param("fk_table") == "concept"
    )


@dataclass(frozen=True)
class ConceptCount:
    """How many rows hold one value of a concept field, and what the vocabulary says of it."""

    field: str
    value: int
    rows: int
    found: bool
    domain_id: str | None
    standard_concept: str | None
    invalid_reason: str | None


def histogram_query(table: str, fields: list[str], concept: str) -> str:
    """Value counts of each field (one scan, a grouping set per field), joined to ``concept``
    (the table or a keyed subquery)."""
    sets = ", ".join(f"({quote(f)})" for f in fields)
    names = [f"'{f}'" for f in fields]
    return (
        "SELECT h.field, h.v, h.n, c.concept_id, c.domain_id, c.standard_concept, "
        f"c.invalid_reason FROM (SELECT {_by_set(fields, names)} AS field, "
        f"{_by_set(fields, [quote(f) for f in fields])} AS v, count(*) AS n "
        f"FROM {table} GROUP BY GROUPING SETS ({sets})) h "
        f"LEFT JOIN {concept} c ON c.concept_id = h.v WHERE h.v IS NOT NULL"
    )


def _violates(check: Check, c: ConceptCount) -> bool:
    if check.type == "is_foreign_key":
        return not c.found
    if check.type == "standard_concept_missing":
        return c.value == 0
    if c.value == 0 or not c.found:
        return False  # 0 is 'no matching concept'; an unknown id is is_foreign_key's
    if check.type == "fk_domain":
        domains = {d.strip() for d in str(check.param("fk_domain")).split(",")}
        return c.domain_id not in domains
    return c.standard_concept != "S" or c.invalid_reason is not None  # standard_valid_concept


def histogram_violations(check: Check, counts: list[ConceptCount]) -> int:
    return sum(c.rows for c in counts if c.field == check.field and _violates(check, c))


def _values(rows: list[tuple[object, ...]]) -> str:
    def literal(v: object) -> str:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TypeError(f"only numbers go into VALUES, not {v!r}")
        return str(v) if isinstance(v, int) else f"CAST({v!r} AS FLOAT8)"

    return ", ".join("(" + ", ".join(literal(v) for v in row) + ")" for row in rows)


def measurement_query(ranges: list[tuple[int, int, float, float]]) -> str:
    """Per measurement concept of the ranges and unit: numeric results, and how many fall
    outside the concept-unit range (NULL where the unit is not listed for the concept)."""
    return (
        f"WITH r (concept_id, unit_concept_id, low, high) AS (VALUES {_values(list(ranges))}) "
        "SELECT t.measurement_concept_id, t.unit_concept_id, count(*), "
        "sum(CASE WHEN r.concept_id IS NULL THEN NULL "
        "WHEN t.value_as_number < r.low OR t.value_as_number > r.high THEN 1 ELSE 0 END) "
        "FROM measurement t "
        "JOIN (SELECT DISTINCT concept_id FROM r) rc ON rc.concept_id = t.measurement_concept_id "
        "LEFT JOIN r ON r.concept_id = t.measurement_concept_id "
        "AND r.unit_concept_id = t.unit_concept_id "
        "WHERE t.value_as_number IS NOT NULL "
        "GROUP BY t.measurement_concept_id, t.unit_concept_id"
    )


def gender_query(table: str, column: str, concepts: list[GenderConcept], person: str) -> str:
    """Per gender-specific concept: records of it or a descendant, and how many belong to a
    person of the other sex (persons of unknown sex are not counted as violating)."""
    values = _values([(g.concept_id, g.gender_concept_id) for g in concepts])
    return (
        f"WITH g (check_concept_id, gender_concept_id) AS (VALUES {values}), "
        "gd AS (SELECT g.check_concept_id, g.gender_concept_id, "
        "ca.descendant_concept_id AS concept_id FROM g "
        "JOIN concept_ancestor ca ON ca.ancestor_concept_id = g.check_concept_id "
        "UNION SELECT check_concept_id, gender_concept_id, check_concept_id FROM g) "
        "SELECT gd.check_concept_id, count(*), "
        "sum(CASE WHEN p.gender_concept_id IN (8507, 8532) "
        "AND p.gender_concept_id <> gd.gender_concept_id THEN 1 ELSE 0 END) "
        f"FROM {table} t JOIN gd ON gd.concept_id = t.{quote(column)} "
        f"LEFT JOIN {person} p ON p.person_id = t.person_id "
        "GROUP BY gd.check_concept_id"
    )
