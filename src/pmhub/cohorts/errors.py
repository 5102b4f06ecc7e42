"""Errors of the cohorts layer (exit codes 80-89, and 37: see pmhub.errors)."""

from __future__ import annotations

from pmhub.errors import PmhubError


class CohortError(PmhubError):
    exit_code = 80
    hint = "Check the cohort definition with `pmhub cohort validate DEF`."


class CohortDefinitionError(CohortError):
    """The definition is malformed: each problem names its field and path."""

    exit_code = 81
    hint = "Fix the fields named above; `pmhub cohort validate DEF` checks a definition."

    def __init__(self, message: str, problems: list[str] | None = None, **kw: str) -> None:
        self.problems = problems or [message]
        super().__init__(message, **kw)


class DefinitionVersionError(CohortDefinitionError):
    exit_code = 82
    hint = "Upgrade pmhub to read this definition, or write it in a format version it knows."


class UnknownConceptError(CohortDefinitionError):
    exit_code = 83
    hint = "Use concept ids of the site's vocabulary (OMOP CONCEPT table); load Athena's if needed."


class EmptyConceptSetError(CohortDefinitionError):
    exit_code = 84
    hint = "Give the concept set at least one included concept that the vocabulary knows."


class UnsupportedFeatureError(CohortError):
    """A backend lacks what the definition needs: refuse rather than differ silently."""

    exit_code = 85
    hint = "Run this definition on a backend that supports the feature (DuckDB or PostgreSQL)."


class CohortNotGeneratedError(CohortError):
    exit_code = 86
    hint = "Generate the cohort first with `pmhub cohort run DEF --site S`."
    http_status = 409


class QueryModelError(CohortError):
    """A query-model node was built wrongly: a bug in pmhub, not in the user's input."""

    exit_code = 87
    hint = "This is a bug in pmhub; report it with the definition that caused it."


class AggregateError(CohortError):
    """Site aggregates that cannot be combined (other definitions, other thresholds)."""

    exit_code = 88
    hint = "Combine aggregates of one definition, computed with the same settings at every site."


class PartialNetworkError(CohortError):
    """A network verb finished with the sites it reached; the others are named. The
    figures printed and written come from the reachable sites only."""

    exit_code = 89
    hint = (
        "Fix the sites named above (`pmhub sites list` shows their CDW URLs) and run again "
        "for the whole network."
    )
    http_status = 502


class CohortIdInUseError(CohortError):
    """The cohort id holds the rows of another definition (or of none pmhub recorded)."""

    exit_code = 37  # the cohort range (80-89) is full; 37 is free in the CDW range
    hint = (
        "Run it again with --replace to replace that cohort's rows, or give the edited "
        "definition another id."
    )
    http_status = 409
