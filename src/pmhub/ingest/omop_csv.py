"""A folder of OMOP CDM tables written by another tool (CDM 5.3 or 5.4) → the site's CDW.

File and column names are matched without regard to case; comma, tab, semicolon and bar
separators are recognised from the header; quoting is optional. CDM 5.3 column names are
renamed to their 5.4 names, columns that 5.4 added are left empty. Each row is checked
against the v5.4 specification (types, required fields, text lengths, primary keys,
person and visit references); a row that fails goes to quarantine with its reason. The
source's ids are kept; a row whose id the CDW already holds is quarantined, not merged.
Vocabulary tables are not loaded here (`pmhub vocab load` replaces the vocabulary whole).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from pmhub.cdm.ddl import quote
from pmhub.cdm.spec import VOCABULARY_TABLES, Field, Table, tables
from pmhub.ingest.engine import STAGE, Engine
from pmhub.ingest.errors import EmptyInputError, InputFormatError, InputNotFoundError
from pmhub.ingest.files import Header, fingerprint, folder_files, read_header
from pmhub.ingest.plan import Plan
from pmhub.ingest.sqlgen import (
    Rule,
    blank,
    cdm_select,
    literal,
    longer,
    quarantine_invalid,
    quote_value,
    rule_column,
)
from pmhub.ingest.stage import add_missing_columns, stage_csv

S = STAGE
EXTENSIONS = {".csv", ".tsv", ".txt"}

# CDM 5.3 → 5.4 column renames (OHDSI CommonDataModel, "Changes from CDM v5.3").
RENAMES: dict[str, dict[str, str]] = {
    "visit_occurrence": {
        "admitting_source_concept_id": "admitted_from_concept_id",
        "admitting_source_value": "admitted_from_source_value",
        "discharge_to_concept_id": "discharged_to_concept_id",
        "discharge_to_source_value": "discharged_to_source_value",
    },
    "visit_detail": {
        "admitting_source_concept_id": "admitted_from_concept_id",
        "admitting_source_value": "admitted_from_source_value",
        "discharge_to_concept_id": "discharged_to_concept_id",
        "discharge_to_source_value": "discharged_to_source_value",
        "visit_detail_parent_id": "parent_visit_detail_id",
    },
}
# Loaded elsewhere or describing the CDW itself: reported, not read.
SKIPPED = {
    **{name: "vocabulary tables are loaded with `pmhub vocab load`" for name in VOCABULARY_TABLES},
    "cdm_source": "the CDW keeps its own cdm_source (pmhub fills it)",
    "attribute_definition": "CDM 5.3 table dropped in 5.4",
}
# References checked row by row: (column, referenced table).
REFERENCES = (("person_id", "person"), ("visit_occurrence_id", "visit_occurrence"))


def _cdm_tables() -> dict[str, Table]:
    return {n: t for n, t in tables().items() if t.schema == "CDM" and n not in SKIPPED}


def discover(path: Path, encoding: str) -> Plan:
    if not path.exists():
        raise InputNotFoundError(f"{path} does not exist")
    if not path.is_dir():
        raise InputFormatError(
            f"{path} is a file; an OMOP CSV export is a folder of table files",
            hint="Give the folder that holds person.csv, visit_occurrence.csv, …",
        )
    plan = Plan(fmt="omop-csv", root=path)
    known = _cdm_tables()
    for file in folder_files(path, plan.ignored):
        stem = file.stem.lower()
        if file.suffix.lower() not in EXTENSIONS:
            plan.ignored[file.name] = "not a CSV or TSV file"
        elif stem in SKIPPED:
            plan.ignored[file.name] = SKIPPED[stem]
        elif stem not in known:
            plan.ignored[file.name] = "not a table of OMOP CDM v5.4"
        elif stem in plan.sources:
            raise InputFormatError(f"{path} holds two files for table {stem}")
        else:
            plan.sources[stem] = fingerprint(file, file.name, encoding)
    if not plan.sources:
        raise EmptyInputError(
            f"{path} holds no OMOP CDM table files (person.csv, visit_occurrence.csv, …)",
            hint="Point at the folder of CDM table files (CSV or TSV, one per table).",
        )
    return plan


def stage(engine: Engine, plan: Plan) -> None:
    known = _cdm_tables()
    for name, source in plan.sources.items():
        spec = known[name]
        renames = RENAMES.get(name, {})
        expected = set(spec.column_names) | set(renames)
        header = read_header(source, expected)
        columns = tuple(renames.get(c, c) for c in header.columns)
        unknown = [c for c in columns if c not in spec.column_names]
        for column in unknown:
            plan.ignored[f"{source.name}:{column}"] = "column not in OMOP CDM v5.4; not loaded"
        missing = [f.name for f in spec.fields if f.required and f.name not in columns]
        if missing:
            raise InputFormatError(
                f"{source.name} lacks the required column(s) {', '.join(missing)} of {name}"
            )
        plan.staged[name] = stage_csv(engine, source, Header(columns, header.delimiter), name)
        plan.delimiters[name] = header.delimiter
        add_missing_columns(engine, name, spec.column_names)


def transform(engine: Engine, plan: Plan, bases: dict[str, int], now: str) -> None:
    known = _cdm_tables()
    order = [n for n in known if n in plan.sources]
    _existing_keys(engine, order, known)
    for name in order:
        spec = known[name]
        rules = _rules(spec, now, set(plan.sources))
        engine.run(
            f"CREATE OR REPLACE TABLE {S}.v_{name} AS SELECT t.*, "
            f"{rule_column(rules)} FROM {S}.{name} t"
        )
        source = plan.sources[name]
        raw = list(plan.staged[name].columns)
        quarantine_invalid(engine, f"v_{name}", source.name, raw, rules, plan.delimiters[name])
        select = cdm_select(name, {f.name: _typed(f) for f in spec.fields})
        engine.run(
            f"CREATE OR REPLACE VIEW {S}.out_{name} AS SELECT {select} "
            f"FROM {S}.v_{name} WHERE _rule IS NULL"
        )
        if name == "person":
            engine.run(
                f"CREATE OR REPLACE TABLE {S}.out_person_map AS SELECT DISTINCT ON "
                "(person_source_value) person_source_value AS source_id, person_id, "
                f"CAST({plan.load_id} AS BIGINT) AS load_id "
                f"FROM {S}.out_person WHERE person_source_value IS NOT NULL "
                f"AND person_source_value NOT IN (SELECT source_id FROM {S}.known_source) "
                "ORDER BY person_source_value, person_id"
            )


# The checks read the CDW (ids it holds): a load resumed after some tables committed
# would see its own rows as "already there". So all tables commit in one step.
ONE_STEP = True


def publish_order(engine: Engine) -> list[str]:
    return [n for n in _cdm_tables() if engine.has(f"out_{n}")]


def derived(plan: Plan) -> list[str]:
    """Eras and periods the source did not bring."""
    return [n for n in ("observation_period", "condition_era", "drug_era") if n not in plan.sources]


# --- checks ---------------------------------------------------------------------------


def _typed(f: Field) -> str:
    column = quote(f.name)
    if f.datatype == "integer":
        return f"try_cast(trim({column}) AS BIGINT)"
    if f.datatype == "float":
        return f"try_cast(trim({column}) AS DOUBLE)"
    if f.datatype == "date":
        return f"CAST(pmhub_ts({column}) AS DATE)"
    if f.datatype == "datetime":
        return f"pmhub_ts({column})"
    return column


def _rules(spec: Table, now: str, present: set[str]) -> list[Rule]:
    rules: list[Rule] = []
    for f in spec.fields:
        column = quote(f.name)
        label = f.name
        if f.required or f.primary_key:
            rules.append(Rule(label, blank(column), "'missing'"))
        typed = _typed(f)
        if f.datatype in ("integer", "float"):
            rules.extend(_number_rules(f, column, typed))
        elif f.datatype in ("date", "datetime"):
            rules.append(
                Rule(
                    label,
                    f"{column} IS NOT NULL AND {typed} IS NULL",
                    f"'not a valid date: ' || {quote_value(column)}",
                )
            )
            rules.append(
                Rule(
                    label,
                    f"{typed} > TIMESTAMP {literal(now)}",
                    f"'date in the future: ' || {quote_value(column)}",
                )
            )
        elif f.length is not None:
            rules.append(
                Rule(
                    label,
                    longer(column, f.length),
                    f"'longer than the {f.length} characters of {spec.name}.{f.name}'",
                )
            )
    pk = spec.primary_key
    if pk is not None and pk.datatype == "integer":
        rules.extend(_key_rules(spec.name, pk))
    for column, referenced in REFERENCES:
        if column in spec.column_names and not (pk is not None and pk.name == column):
            rules.append(_reference_rule(column, referenced, present))
    return rules


# Digits only: DuckDB's cast to an integer also takes 1.5 (as 2), 1e3, 0x10 and 1_000.
_INTEGER_TEXT = r"^\s*[+-]?[0-9]+\s*$"
_INT32 = (-(2**31), 2**31 - 1)


def _number_rules(f: Field, column: str, typed: str) -> list[Rule]:
    """A number column holds a number, an integer column digits that fit its type (32
    bits but for row and person ids), a float column a finite number."""
    if f.datatype == "float":
        return [
            Rule(f.name, f"{column} IS NOT NULL AND {typed} IS NULL",
                 f"'not a number: ' || {quote_value(column)}"),
            Rule(f.name, f"NOT isfinite({typed})",
                 f"'not a finite number: ' || {quote_value(column)}"),
        ]  # fmt: skip
    rules = [
        Rule(
            f.name,
            f"{column} IS NOT NULL AND ({typed} IS NULL OR NOT "
            f"regexp_matches({column}, {literal(_INTEGER_TEXT)}))",
            f"'not an integer: ' || {quote_value(column)}",
        )
    ]
    if not f.is_wide_id:
        low, high = _INT32
        rules.append(
            Rule(
                f.name,
                f"{typed} NOT BETWEEN {low} AND {high}",
                f"'out of range for {f.name} (a 32-bit integer): ' || {quote_value(column)}",
            )
        )
    return rules


def _key_rules(name: str, pk: Field) -> list[Rule]:
    column = quote(pk.name)
    return [
        Rule(
            pk.name,
            f"_line <> min(_line) OVER (PARTITION BY {column})",
            f"'duplicate {pk.name} ' || {quote_value(column)} || ' (first on line ' || "
            f"min(_line) OVER (PARTITION BY {column}) || ')'",
        ),
        Rule(
            pk.name,
            f"try_cast(trim({column}) AS BIGINT) IN (SELECT id FROM {S}.existing_{name})",
            f"'{pk.name} ' || {quote_value(column)} || ' is already in the CDW'",
        ),
    ]


def _reference_rule(column: str, referenced: str, present: set[str]) -> Rule:
    staged = (
        f"SELECT try_cast(trim({referenced}_id) AS BIGINT) FROM {S}.v_{referenced} "
        "WHERE _rule IS NULL"
        if referenced in present
        else "SELECT NULL"
    )
    return Rule(
        column,
        f"{column} IS NOT NULL AND try_cast(trim({column}) AS BIGINT) NOT IN "
        f"(SELECT id FROM {S}.existing_{referenced} UNION ALL {staged})",
        f"'{column} ' || {quote_value(column)} || ' is neither in {referenced} nor in the CDW'",
    )


def _existing_keys(engine: Engine, order: list[str], known: dict[str, Table]) -> None:
    """``existing_<table>`` (id): the primary keys the CDW holds that this load also uses,
    and for person and visit_occurrence those that rows of this load point to."""
    wanted = set(order) | {ref for _, ref in REFERENCES}
    for name in sorted(wanted):
        pk = known[name].primary_key
        if pk is None or pk.datatype != "integer":  # fact_relationship, death: no key
            continue
        sources = []
        if name in order:
            sources.append(f"SELECT try_cast(trim({pk.name}) AS BIGINT) AS id FROM {S}.{name}")
        for other in order:
            if name != other and pk.name in known[other].column_names:
                # (named: the first source may be another table's, when this one is absent)
                sources.append(f"SELECT try_cast(trim({pk.name}) AS BIGINT) AS id FROM {S}.{other}")
        nothing = "SELECT CAST(NULL AS BIGINT) AS id"
        keys = _keys(engine, " UNION ".join(sources) if sources else nothing)
        found = engine.target_lookup(
            "pmhub_keys",
            keys,
            f"SELECT k.id FROM pmhub_keys k JOIN {name} t ON t.{pk.name} = k.id",
        )
        engine.put(f"existing_{name}", _ids(found))
    if "person" in order:
        values = engine.work.sql(
            f"SELECT DISTINCT person_source_value AS source_id FROM {S}.person "
            "WHERE person_source_value IS NOT NULL"
        ).to_arrow_table()
        found = engine.target_lookup(
            "pmhub_patient_keys",
            values,
            "SELECT m.source_id FROM pmhub_person_map m "
            "JOIN pmhub_patient_keys k ON k.source_id = m.source_id",
        )
        engine.put("known_source", _text(found, "source_id"))


def _keys(engine: Engine, sql: str) -> pa.Table:
    keys: pa.Table = engine.work.sql(
        f"SELECT DISTINCT id FROM ({sql}) WHERE id IS NOT NULL"
    ).to_arrow_table()
    return keys


def _ids(found: pa.Table) -> pa.Table:
    values = found.column("id").to_pylist() if found.num_rows else []
    return pa.table({"id": pa.array(values, pa.int64())})


def _text(found: pa.Table, name: str) -> pa.Table:
    values = found.column(name).to_pylist() if found.num_rows else []
    return pa.table({name: pa.array(values, pa.string())})
