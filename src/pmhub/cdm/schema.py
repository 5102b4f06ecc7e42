"""Creating, checking and describing a site's OMOP CDM schema."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from pmhub.cdm import ddl, spec, vocab
from pmhub.cdm.backends import Backend
from pmhub.errors import CdmVersionError, CdwNotInitialisedError

CDM_VERSION_LABEL = f"v{spec.CDM_VERSION}"
CDM_VERSION_CONCEPT_ID = 756265  # OMOP CDM Version 5.4


@dataclass
class InitResult:
    created_tables: list[str]
    vocabulary_rows: dict[str, int] = field(default_factory=dict)


@dataclass
class Status:
    url: str
    cdm_version: str
    vocabulary_version: str
    rows: dict[str, int]


def init_cdm(backend: Backend, *, source_name: str, abbreviation: str, holder: str) -> InitResult:
    """Create every table and index of the spec that is missing; load the vocabulary subset
    into an empty vocabulary; record the CDW in cdm_source. Safe to run again."""
    before = backend.tables()
    version = _existing_version(backend, before)
    if version is not None and version != CDM_VERSION_LABEL:
        raise CdmVersionError(f"{backend.url} holds OMOP CDM {version}, not {CDM_VERSION_LABEL}")
    with backend.transaction():
        for statement in ddl.schema_statements(backend.dialect):
            backend.execute(statement)
        _record_source(backend, source_name, abbreviation, holder)
    result = InitResult(created_tables=sorted(set(spec.tables()) - before))
    if backend.count("concept") == 0:
        result.vocabulary_rows = vocab.load_builtin(backend).rows
        _refresh_vocabulary_version(backend)
    return result


def _existing_version(backend: Backend, tables: set[str]) -> str | None:
    if "cdm_source" not in tables:
        return None
    columns = backend.columns("cdm_source")
    if "cdm_version" not in columns:
        return "v5.3 or older"  # 5.3's cdm_source lacks cdm_version_concept_id, not cdm_version
    if "cdm_version_concept_id" not in columns:
        return "v5.3"
    rows = backend.fetchall("SELECT cdm_version FROM cdm_source")
    return str(rows[0][0]) if rows and rows[0][0] else None


def _record_source(backend: Backend, name: str, abbreviation: str, holder: str) -> None:
    if backend.count("cdm_source") > 0:
        return
    today = dt.date.today()
    backend.execute(
        "INSERT INTO cdm_source (cdm_source_name, cdm_source_abbreviation, cdm_holder, "
        "source_description, source_release_date, cdm_release_date, cdm_version, "
        "cdm_version_concept_id, vocabulary_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            name,
            abbreviation[:25],
            holder,
            "Clinical data warehouse managed by pmhub",
            today,
            today,
            CDM_VERSION_LABEL,
            CDM_VERSION_CONCEPT_ID,
            vocab.BUILTIN_VERSION,
        ],
    )


def _refresh_vocabulary_version(backend: Backend) -> None:
    rows = backend.fetchall(
        "SELECT vocabulary_version FROM vocabulary WHERE vocabulary_id = 'None'"
    )
    version = str(rows[0][0])[:20] if rows and rows[0][0] else vocab.BUILTIN_VERSION
    backend.execute("UPDATE cdm_source SET vocabulary_version = ?", [version])


def load_vocabulary(
    backend: Backend,
    folder: Path,
    progress: vocab.TableProgress | None = None,
    *,
    min_concepts: int = 1,
    force: bool = False,
) -> vocab.LoadResult:
    """Replace the vocabulary with an Athena download; all tables or none (and none
    when it is smaller than ``min_concepts`` or a required table is empty, unless
    ``force``)."""
    require_cdm(backend)
    result = vocab.load_athena(backend, folder, progress, min_concepts=min_concepts, force=force)
    _refresh_vocabulary_version(backend)
    return result


def require_cdm(backend: Backend) -> None:
    """Stop with a hint when the CDW has no CDM schema, or one of another version."""
    present = backend.tables()
    missing = sorted(set(spec.tables()) - present)
    if "person" in missing or "cdm_source" in missing:
        raise CdwNotInitialisedError(f"{backend.url} has no OMOP CDM schema")
    version = _existing_version(backend, present)
    if version not in (None, CDM_VERSION_LABEL):
        raise CdmVersionError(f"{backend.url} holds OMOP CDM {version}, not {CDM_VERSION_LABEL}")
    if missing:
        raise CdwNotInitialisedError(
            f"{backend.url} lacks {len(missing)} CDM tables: {', '.join(missing[:5])}"
        )


def status(backend: Backend) -> Status:
    require_cdm(backend)
    rows = {name: backend.count(name) for name in spec.tables()}
    source = backend.fetchall("SELECT cdm_version, vocabulary_version FROM cdm_source")
    cdm_version, vocabulary_version = source[0] if source else (None, None)
    return Status(
        url=backend.url,
        cdm_version=str(cdm_version or "unknown"),
        vocabulary_version=str(vocabulary_version or "unknown"),
        rows=rows,
    )


@dataclass(frozen=True)
class SchemaProblem:
    table: str
    column: str | None
    problem: str


def verify(backend: Backend) -> list[SchemaProblem]:
    """Compare the CDW with the spec: tables, columns, types, NOT NULL, primary keys."""
    problems: list[SchemaProblem] = []
    present = backend.tables()
    for table in spec.tables().values():
        if table.name not in present:
            problems.append(SchemaProblem(table.name, None, "table missing"))
            continue
        columns = backend.columns(table.name)
        for f in table.fields:
            info = columns.get(f.name)
            if info is None:
                problems.append(SchemaProblem(table.name, f.name, "column missing"))
                continue
            if not _compatible(f, info.type):
                problems.append(
                    SchemaProblem(table.name, f.name, f"type {info.type} for {f.datatype}")
                )
            if f.required and info.nullable:
                problems.append(SchemaProblem(table.name, f.name, "required but nullable"))
        pk = table.primary_key
        keeps = ddl.keeps_primary_key(table, backend.dialect)
        if pk is not None and keeps and backend.primary_key(table.name) != (pk.name,):
            problems.append(SchemaProblem(table.name, pk.name, "primary key missing"))
    return problems


_COMPATIBLE = {
    "integer": ("integer", "bigint", "int"),
    "float": ("double", "double precision", "float", "numeric", "real"),
    "date": ("date",),
    "datetime": ("timestamp", "timestamp without time zone", "datetime"),
    "varchar": ("varchar", "character varying", "text"),
}


def _compatible(f: spec.Field, actual: str) -> bool:
    base = actual.split("(")[0].strip()
    return base in _COMPATIBLE[f.datatype]
