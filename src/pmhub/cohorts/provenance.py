"""Which definition made a cohort's rows: the OMOP ``cohort_definition`` table.

Each generation records its definition in ``cohort_definition`` beside the rows it writes
to ``cohort`` (one transaction on DuckDB and PostgreSQL): the name and description in
their OMOP fields, and in ``cohort_definition_syntax`` a small JSON envelope with the
format version, the SHA-256 of the definition's canonical text and the definition itself.
``cohort_initiation_date`` is the day the definition first made rows there.

Before rows are replaced, :func:`admit` compares what is recorded under the id with the
definition being run: the same definition runs again (idempotent: the same rows for the
same data, the record untouched); another one, or rows that no recorded definition
made, are refused with :class:`CohortIdInUseError` unless replacing is asked for.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from pmhub.cohorts.definition import Definition, canonical, digest
from pmhub.cohorts.errors import CohortIdInUseError

SYNTAX_FORMAT = "pmhub-cohort"
NO_MATCHING_CONCEPT = 0  # OMOP has no standard concept for "a pmhub definition" or "person"
COLUMNS = (
    "cohort_definition_id",
    "cohort_definition_name",
    "cohort_definition_description",
    "definition_type_concept_id",
    "cohort_definition_syntax",
    "subject_concept_id",
    "cohort_initiation_date",
)


@dataclass(frozen=True)
class Recorded:
    """What ``cohort_definition`` says about an id: pmhub's envelope, if it is one."""

    name: str
    sha256: str | None  # None: not written by pmhub (another tool, or hand-made)
    format_version: int | None


@dataclass(frozen=True)
class Provenance:
    """The definition about to make rows, and whether it may replace another's."""

    definition_id: int
    name: str
    description: str
    sha256: str
    format_version: int
    syntax: str
    replace: bool = False

    def row(self, today: dt.date | None = None) -> tuple[Any, ...]:
        """The ``cohort_definition`` row, in :data:`COLUMNS` order."""
        return (
            self.definition_id,
            self.name,
            self.description,
            NO_MATCHING_CONCEPT,
            self.syntax,
            NO_MATCHING_CONCEPT,
            today or dt.date.today(),
        )


def of(definition: Definition, *, replace: bool = False) -> Provenance:
    sha = digest(definition)
    envelope = {
        "format": SYNTAX_FORMAT,
        "format_version": definition.format_version,
        "sha256": sha,
        "definition": json.loads(canonical(definition)),
    }
    return Provenance(
        definition.id,
        definition.name,
        definition.description,
        sha,
        definition.format_version,
        json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        replace,
    )


def read(name: object, syntax: object) -> Recorded:
    """A ``cohort_definition`` row's name and syntax as pmhub reads them."""
    shown = str(name or "")
    try:
        envelope = json.loads(syntax) if isinstance(syntax, str) else None
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict) or envelope.get("format") != SYNTAX_FORMAT:
        return Recorded(shown, None, None)
    sha, version = envelope.get("sha256"), envelope.get("format_version")
    return Recorded(
        shown,
        sha if isinstance(sha, str) else None,
        version if isinstance(version, int) else None,
    )


def admit(new: Provenance, recorded: Recorded | None, rows: int) -> bool:
    """Whether ``new`` may write its rows under its id; True when its record must be
    (re)written, False when the same definition is recorded already. Refuses another
    definition's id unless ``new.replace``."""
    if recorded is not None and recorded.sha256 == new.sha256:
        return False
    if new.replace or (recorded is None and rows == 0):
        return True
    raise CohortIdInUseError(_refusal(new, recorded, rows))


def _refusal(new: Provenance, recorded: Recorded | None, rows: int) -> str:
    ours = f"{new.name!r} (sha256 {new.sha256[:12]}…) would replace them"
    if recorded is None:
        return (
            f"cohort_definition_id {new.definition_id} holds {rows:,} rows that no recorded "
            f"definition made (written by another tool, or before pmhub recorded them); {ours}"
        )
    if recorded.sha256 is None:
        owner = f"{recorded.name!r}, a definition pmhub did not write"
    else:
        owner = f"another definition, {recorded.name!r} (sha256 {recorded.sha256[:12]}…)"
    return (
        f"cohort_definition_id {new.definition_id} belongs to {owner}, with {rows:,} "
        f"cohort rows; {ours}"
    )
