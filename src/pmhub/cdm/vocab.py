"""The standard vocabulary of a site's CDW: the shipped subset, or a full Athena download.

A load replaces the vocabulary tables as one transaction: if any file is missing or any
row is bad, the CDW keeps the vocabulary it had. Indexes are dropped before and rebuilt
after the bulk insert, as a bulk load should.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pyarrow as pa

from pmhub.cdm import athena, ddl
from pmhub.cdm.backends import Backend
from pmhub.cdm.backends.base import CsvSource
from pmhub.cdm.spec import arrow_schema, table
from pmhub.errors import (
    CdwLoadError,
    PmhubError,
    VocabularyFileMissingError,
    VocabularyTooSmallError,
)

# Athena's file for each vocabulary table; the first group must be present.
REQUIRED_FILES = {
    "concept": "CONCEPT.csv",
    "concept_relationship": "CONCEPT_RELATIONSHIP.csv",
    "concept_ancestor": "CONCEPT_ANCESTOR.csv",
    "vocabulary": "VOCABULARY.csv",
    "domain": "DOMAIN.csv",
    "concept_class": "CONCEPT_CLASS.csv",
    "relationship": "RELATIONSHIP.csv",
}
OPTIONAL_FILES = {
    "concept_synonym": "CONCEPT_SYNONYM.csv",
    "drug_strength": "DRUG_STRENGTH.csv",
    "source_to_concept_map": "SOURCE_TO_CONCEPT_MAP.csv",
}
# Athena's download has no local maps: keep ours unless the folder brings its own.
KEEP_WHEN_ABSENT = {"source_to_concept_map"}

BUILTIN_VERSION = "pmhub-subset-2026.11"
VALID_START = dt.date(1970, 1, 1)
VALID_END = dt.date(2099, 12, 31)

TableProgress = Callable[[str, int, int], None]  # table, bytes done, bytes total


@dataclass(frozen=True)
class LoadResult:
    rows: dict[str, int]
    source: str


def _find(folder: Path, filename: str) -> Path | None:
    """Athena's names are upper case; other tools write them in any case."""
    exact = folder / filename
    if exact.is_file():
        return exact
    wanted = filename.lower()
    return next((p for p in folder.iterdir() if p.name.lower() == wanted and p.is_file()), None)


def athena_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise VocabularyFileMissingError(f"vocabulary folder {folder} does not exist")
    found: dict[str, Path] = {}
    missing = []
    for name, filename in REQUIRED_FILES.items():
        path = _find(folder, filename)
        if path is None:
            missing.append(filename)
        else:
            found[name] = path
    if missing:
        raise VocabularyFileMissingError(f"{folder} lacks {', '.join(missing)}")
    for name, filename in OPTIONAL_FILES.items():
        path = _find(folder, filename)
        if path is not None:
            found[name] = path
    return found


Step = Callable[[Backend], int]  # appends rows to one table; returns how many


def csv_step(table_name: str, source: CsvSource, progress: TableProgress | None = None) -> Step:
    """Let the database parse the file; if it refuses, name the file's bad line."""
    spec = table(table_name)
    total = source.path.stat().st_size

    def report(done: int) -> None:
        if progress is not None:
            progress(table_name, done, total)

    def run(backend: Backend) -> int:
        try:
            return backend.copy_csv(table_name, source, report)
        except PmhubError:
            raise
        except Exception as exc:
            raise athena.locate_error(source, spec, exc) from exc

    return run


def rows_step(table_name: str, rows: list[dict[str, object]]) -> Step:
    """Rows built in Python (a few hundred at most), inserted as one Arrow batch."""
    schema = arrow_schema(table(table_name))
    columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
    batches = pa.Table.from_pydict(columns, schema=schema).to_batches()
    return lambda backend: backend.insert_batches(table_name, schema, batches)


def load_athena(
    backend: Backend,
    folder: Path,
    progress: TableProgress | None = None,
    *,
    min_concepts: int = 1,
    force: bool = False,
) -> LoadResult:
    """Replace the CDW's vocabulary with the Athena download in ``folder``.

    Unless ``force``, a download that would leave fewer than ``min_concepts`` concepts,
    or any required table empty (a header-only file, a cut download), is refused and
    the vocabulary kept as it was."""
    if min_concepts < 0:
        raise VocabularyTooSmallError(
            f"the minimum number of concepts cannot be negative ({min_concepts:,})",
            hint="Give --min-concepts as 0 or more.",
        )
    files = athena_files(folder)
    steps: dict[str, list[Step]] = {
        name: [csv_step(name, athena.sniff(path, table(name)), progress)]
        for name, path in files.items()
    }
    for name in (*REQUIRED_FILES, *OPTIONAL_FILES):
        if name not in steps and name not in KEEP_WHEN_ABSENT:
            steps[name] = []  # emptied: no stale rows from an older vocabulary

    def enough(rows: dict[str, int]) -> None:
        if not force:
            _check_size(folder, files, rows, min_concepts)

    rows = replace_tables(backend, steps, check=enough)
    return LoadResult(rows=rows, source=f"{folder} ({_vocabulary_version(backend)})")


def _check_size(folder: Path, files: dict[str, Path], rows: dict[str, int], minimum: int) -> None:
    """Refuse a vocabulary smaller than asked, or with a required table empty."""
    empty = [files[name].name for name in REQUIRED_FILES if rows.get(name, 0) == 0]
    if empty:
        raise VocabularyTooSmallError(
            f"{folder}: {', '.join(empty)} {'holds' if len(empty) == 1 else 'hold'} no rows "
            "(a header only?); the vocabulary was left as it was"
        )
    if rows["concept"] < minimum:
        raise VocabularyTooSmallError(
            f"{folder} holds {rows['concept']:,} concepts, fewer than the {minimum:,} asked "
            "for; the vocabulary was left as it was"
        )


def replace_tables(
    backend: Backend,
    steps: dict[str, list[Step]],
    check: Callable[[dict[str, int]], None] | None = None,
) -> dict[str, int]:
    """Recreate each table and fill it by its steps, indexes built after; all or none.
    ``check`` sees the rows of each table before the commit, and may refuse them."""
    rows: dict[str, int] = {}
    try:
        with backend.transaction():
            for name, table_steps in steps.items():
                spec = table(name)
                # a new, empty table loads fastest (DuckDB writes fresh row groups directly)
                backend.execute(f"DROP TABLE IF EXISTS {name}")
                backend.execute(ddl.create_table(spec, backend.dialect))
                rows[name] = sum(step(backend) for step in table_steps)
                for statement in ddl.create_indexes(spec):
                    backend.execute(statement)
            if check is not None:
                check(rows)
    except PmhubError:
        raise
    except Exception as exc:  # a database refusal: duplicate key, constraint, type
        raise CdwLoadError(
            f"vocabulary load failed and was rolled back: {_first_line(exc)}"
        ) from exc
    return rows


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _vocabulary_version(backend: Backend) -> str:
    rows = backend.fetchall(
        "SELECT vocabulary_version FROM vocabulary WHERE vocabulary_id = 'None'"
    )
    return str(rows[0][0]) if rows and rows[0][0] else "version unknown"


# --- the shipped subset ---------------------------------------------------------------


def _data(name: str) -> list[dict[str, str]]:
    text = (
        resources.files("pmhub.cdm")
        .joinpath("data", "vocabulary", name)
        .read_text(encoding="utf-8")
    )
    return list(csv.DictReader(text.splitlines(keepends=True)))


def _subset_file(table_name: str, filename: str) -> Step:
    path = Path(str(resources.files("pmhub.cdm").joinpath("data", "vocabulary", filename)))
    return csv_step(table_name, athena.sniff(path, table(table_name)))


def _extra_concepts(existing: set[int]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for raw in _data("EXTRA_CONCEPTS.csv"):
        concept_id = int(raw["concept_id"])
        if concept_id in existing:
            continue
        existing.add(concept_id)
        code = raw["concept_code"]
        standard = raw["standard_concept"] or None
        concept_class = raw["concept_class_id"]
        rows.append(
            {
                "concept_id": concept_id,
                "concept_name": raw["concept_name"],
                "domain_id": raw["domain_id"],
                "vocabulary_id": raw["vocabulary_id"],
                "concept_class_id": raw["domain_id"]
                if concept_class == "not-shown-in-source"
                else concept_class,
                # where no public source showed a field, the documented fallback (data/README)
                "standard_concept": "S" if standard == "not-shown-in-source" else standard,
                "concept_code": str(concept_id) if code == "not-shown-in-source" else code,
                "valid_start_date": VALID_START,
                "valid_end_date": VALID_END,
            }
        )
    return rows


def _ancestry(concepts: list[dict[str, object]]) -> list[dict[str, object]]:
    """Self rows for the extra standard concepts and the closure of the documented is-a edges."""
    parents: dict[int, set[int]] = {}
    for edge in _data("ISA_EDGES.csv"):
        parents.setdefault(int(edge["child_concept_id"]), set()).add(int(edge["parent_concept_id"]))
    rows: dict[tuple[int, int], dict[str, object]] = {}
    for concept in concepts:
        if concept["standard_concept"] != "S":
            continue
        start = int(str(concept["concept_id"]))
        frontier, level = {start}, 0
        while frontier:
            for node in frontier:
                key = (node, start)
                if key not in rows:
                    rows[key] = {
                        "ancestor_concept_id": node,
                        "descendant_concept_id": start,
                        "min_levels_of_separation": level,
                        "max_levels_of_separation": level,
                    }
                else:
                    rows[key]["max_levels_of_separation"] = level
            frontier = {p for node in frontier for p in parents.get(node, ())}
            level += 1
    return list(rows.values())


def _kcd7_map() -> list[dict[str, object]]:
    return [
        {
            "source_code": row["kcd7_code"],
            "source_concept_id": 0,
            "source_vocabulary_id": "KCD7",
            "source_code_description": row["kcd7_name_en"],
            "target_concept_id": int(row["target_concept_id"]),
            "target_vocabulary_id": "SNOMED",
            "valid_start_date": VALID_START,
            "valid_end_date": VALID_END,
        }
        for row in _data("KCD7_TO_SNOMED.csv")
    ]


def builtin_steps() -> dict[str, list[Step]]:
    """The shipped subset, merged with the extra concepts and the KCD-7 map."""
    subset_ids = {int(r["concept_id"]) for r in _data("CONCEPT.csv")}
    extras = _extra_concepts(set(subset_ids))
    existing_ancestry = {
        (int(r["ancestor_concept_id"]), int(r["descendant_concept_id"]))
        for r in _data("CONCEPT_ANCESTOR.csv")
    }
    ancestry = [
        r
        for r in _ancestry(extras + _subset_standard_rows())
        if (r["ancestor_concept_id"], r["descendant_concept_id"]) not in existing_ancestry
    ]
    vocabularies = [
        {
            "vocabulary_id": "KCD7",
            "vocabulary_name": "Korean Classification of Diseases, 7th",
            "vocabulary_reference": "pmhub demo map (see data/vocabulary/README.md)",
            "vocabulary_version": "pmhub-demo",
            "vocabulary_concept_id": 0,
        },
        {
            "vocabulary_id": "None",
            "vocabulary_name": "OMOP Standardized Vocabularies",
            "vocabulary_reference": "pmhub",
            "vocabulary_version": BUILTIN_VERSION,
            "vocabulary_concept_id": 44819096,
        },
    ]
    known_vocabularies = {r["vocabulary_id"] for r in _data("VOCABULARY.csv")}
    new_vocabularies = [v for v in vocabularies if v["vocabulary_id"] not in known_vocabularies]
    steps: dict[str, list[Step]] = {
        "concept": [_subset_file("concept", "CONCEPT.csv"), rows_step("concept", extras)],
        "concept_relationship": [_subset_file("concept_relationship", "CONCEPT_RELATIONSHIP.csv")],
        "concept_ancestor": [
            _subset_file("concept_ancestor", "CONCEPT_ANCESTOR.csv"),
            rows_step("concept_ancestor", ancestry),
        ],
        "vocabulary": [
            _subset_file("vocabulary", "VOCABULARY.csv"),
            rows_step("vocabulary", new_vocabularies),
        ],
        "domain": [_subset_file("domain", "DOMAIN.csv")],
        "concept_class": [_subset_file("concept_class", "CONCEPT_CLASS.csv")],
        "relationship": [_subset_file("relationship", "RELATIONSHIP.csv")],
        "concept_synonym": [],
        "drug_strength": [],
        "source_to_concept_map": [rows_step("source_to_concept_map", _kcd7_map())],
    }
    return steps


def _subset_standard_rows() -> list[dict[str, object]]:
    """Subset concepts that the is-a edges touch (their ancestry rows may be missing)."""
    touched = {
        int(e[k]) for e in _data("ISA_EDGES.csv") for k in ("child_concept_id", "parent_concept_id")
    }
    return [
        {"concept_id": int(r["concept_id"]), "standard_concept": r["standard_concept"] or None}
        for r in _data("CONCEPT.csv")
        if int(r["concept_id"]) in touched
    ]


def load_builtin(backend: Backend) -> LoadResult:
    rows = replace_tables(backend, builtin_steps())
    return LoadResult(rows=rows, source=BUILTIN_VERSION)
