"""DDL for the OMOP CDM, generated from the specification, one dialect at a time.

Dialect differences are flags and type maps on :class:`Dialect` (as sqlglot declares
them), so the statements for every backend come from the same few functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from pmhub.cdm.spec import Field, Table, tables

# Vocabulary look-ups that every ETL and cohort query makes. OHDSI's index DDL also
# indexes low-cardinality columns (vocabulary_id, domain_id, relationship_id); a filter on
# those reads much of the table either way, and each such index slows every load.
_VOCAB_INDEXES: dict[str, tuple[str, ...]] = {
    "concept": ("concept_code",),
    "concept_relationship": ("concept_id_1", "concept_id_2"),
    "concept_ancestor": ("ancestor_concept_id", "descendant_concept_id"),
    "concept_synonym": ("concept_id",),
    "source_to_concept_map": ("source_code", "source_vocabulary_id", "target_concept_id"),
    "drug_strength": ("drug_concept_id", "ingredient_concept_id"),
}


@dataclass(frozen=True)
class Dialect:
    name: str
    integer: str
    bigint: str
    float: str
    date: str
    datetime: str
    text: str
    varchar_has_length: bool
    has_schemas: bool
    # secondary indexes on the clinical tables (person, main concept, main date); the
    # vocabulary's look-up indexes are kept on every backend
    clinical_indexes: bool = True
    # primary-key constraints on the clinical (CDM-schema) tables; the vocabulary keeps its
    # keys on every backend, and every key column is NOT NULL either way
    clinical_primary_keys: bool = True
    # (table, column) pairs stored without compression: see DUCKDB
    uncompressed: frozenset[tuple[str, str]] = frozenset()

    def column_type(self, field: Field) -> str:
        if field.datatype == "integer":
            return self.bigint if field.is_wide_id else self.integer
        if field.datatype == "varchar":
            if field.length is not None and self.varchar_has_length:
                return f"varchar({field.length})"
            return self.text
        return {"float": self.float, "date": self.date, "datetime": self.datetime}[field.datatype]


DUCKDB = Dialect(
    name="duckdb",
    integer="INTEGER",
    bigint="BIGINT",
    float="DOUBLE",
    date="DATE",
    datetime="TIMESTAMP",
    text="VARCHAR",
    varchar_has_length=False,  # DuckDB ignores lengths; checks belong to ingest
    has_schemas=False,
    # DuckDB scans columns with min/max zone maps and joins by hash: an ART index on a
    # clinical table serves no analytical query here, yet costs about 0.9 s per million
    # inserted rows (measured on ingest), so a DuckDB CDW keeps none
    clinical_indexes=False,
    # DuckDB enforces a primary key with an ART index as well, which costs inserts as much
    # (measured: 5.2 s against 2.7 s for 5 M measurement rows) and is read by no query;
    # OHDSI ships the CDM's keys as a separate, optional DDL script. Ingest makes unique
    # ids by construction and refuses duplicate source ids; quality's is_primary_key
    # checks every key (tests/quality)
    clinical_primary_keys=False,
    # A visit's source value is its source's encounter id: a random 36-character UUID per
    # row, unique in the table. DuckDB's dictionary-FSST compression finds no repeats in
    # them and halves their bytes (39 against 74 MB per table at 100,000 patients, 1.9 M
    # encounters) for 0.9 s of CPU per table, the costliest column of a load
    # (bench/ingest.py, src/pmhub/ingest/README.md). Stored uncompressed, the two visit
    # tables write in a quarter less CPU and the CDW is 16 % larger; scans of the column
    # are faster (a LIKE over 1.9 M of them: 0.06 against 0.10 s).
    uncompressed=frozenset(
        {("visit_occurrence", "visit_source_value"), ("visit_detail", "visit_detail_source_value")}
    ),
)

POSTGRES = Dialect(
    name="postgresql",
    integer="integer",
    bigint="bigint",
    float="double precision",
    date="date",
    datetime="timestamp",
    text="text",
    varchar_has_length=True,
    has_schemas=True,
)


def quote(identifier: str) -> str:
    """Quote a column name: the spec has names that are SQL keywords (note_nlp.offset)."""
    return '"' + identifier.replace('"', '""') + '"'


def create_table(table: Table, dialect: Dialect) -> str:
    columns = []
    for f in table.fields:
        null = " NOT NULL" if f.required or f.primary_key else ""
        plain = (
            " USING COMPRESSION uncompressed"
            if (table.name, f.name) in dialect.uncompressed
            else ""
        )
        columns.append(f"    {quote(f.name)} {dialect.column_type(f)}{null}{plain}")
    pk = table.primary_key
    if pk is not None and keeps_primary_key(table, dialect):
        columns.append(f"    PRIMARY KEY ({pk.name})")
    body = ",\n".join(columns)
    return f"CREATE TABLE IF NOT EXISTS {table.name} (\n{body}\n)"


def index_columns(table: Table) -> tuple[str, ...]:
    """Columns worth an index: person, the table's main concept, its main date."""
    if table.name in _VOCAB_INDEXES:
        return _VOCAB_INDEXES[table.name]
    names = table.column_names
    wanted: list[str] = []
    if "person_id" in names and not (table.primary_key and table.primary_key.name == "person_id"):
        wanted.append("person_id")
    main_concept = next(
        (f.name for f in table.fields if f.is_concept_id and f.required and "type" not in f.name),
        None,
    )
    if main_concept:
        wanted.append(main_concept)
    main_date = next((f.name for f in table.fields if f.datatype == "date" and f.required), None)
    if main_date and "person_id" in names:
        wanted.append(main_date)
    return tuple(wanted)


def index_name(table: str, column: str) -> str:
    return f"idx_{table}_{column}"


def keeps_primary_key(table: Table, dialect: Dialect | None) -> bool:
    """Whether the table carries its primary-key constraint on this backend."""
    return dialect is None or dialect.clinical_primary_keys or table.schema != "CDM"


def keeps_indexes(table: Table, dialect: Dialect | None) -> bool:
    """Whether the table carries its secondary indexes on this backend."""
    return dialect is None or dialect.clinical_indexes or table.name in _VOCAB_INDEXES


def create_indexes(table: Table, dialect: Dialect | None = None) -> list[str]:
    if not keeps_indexes(table, dialect):
        return []
    return [
        f"CREATE INDEX IF NOT EXISTS {index_name(table.name, col)} ON {table.name} ({col})"
        for col in index_columns(table)
    ]


def drop_indexes(table: Table) -> list[str]:
    return [f"DROP INDEX IF EXISTS {index_name(table.name, col)}" for col in index_columns(table)]


def schema_statements(dialect: Dialect) -> list[str]:
    """Every CREATE TABLE and CREATE INDEX of the CDM, idempotent, in spec order."""
    statements: list[str] = []
    for table in tables().values():
        statements.append(create_table(table, dialect))
        if keeps_indexes(table, dialect):
            statements.extend(create_indexes(table))
        else:  # a CDW made before this backend dropped them loses them on `cdm init`
            statements.extend(drop_indexes(table))
    return statements
