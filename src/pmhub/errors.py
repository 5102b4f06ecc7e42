"""Errors a user can act on.

Every error pmhub raises on purpose is a :class:`PmhubError`. Each subclass has a stable
exit code (grouped by component, as Flower groups its exit codes) and a hint that says
what to do next. The CLI prints ``message`` and ``hint`` without a traceback and exits
with ``exit_code``; the API turns the same error into problem+json with a 4xx status.

Exit-code ranges (stable; never reuse a retired number):

======= ==========================================================
3-9     prediction and federated learning
10-19   settings, configuration and the files pmhub writes
20-23   sites
24-29   clinical decision support
30-39   CDW backends and schema (37: a cohort id holding another
        definition's rows, the cohort range being full)
40-49   vocabulary
50-59   ingest
60-69   data quality
70-79   privacy
80-89   cohorts
90-99   synthetic data
100-109 platform: state, users, tokens, roles, audit
110-116 safe zone: applications, DRB, uploads, extraction
117-122 safe zone: workspaces and output checking
123-125 the HTTP service and jobs
======= ==========================================================

Codes stop at 125: 126 and above mean things to a shell (not executable, not found,
killed by a signal: 130 is Ctrl-C, 143 SIGTERM).
"""

from __future__ import annotations

from typing import ClassVar


class PmhubError(Exception):
    """Base of every error a user should see as one clear message."""

    exit_code: ClassVar[int] = 1
    hint: ClassVar[str] = "Run the command again with --debug to see where it failed."
    http_status: ClassVar[int] = 400

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint  # type: ignore[misc]  # per-instance hint overrides the class's

    def __str__(self) -> str:
        return self.message


# --- 10-19 settings --------------------------------------------------------------------


class SettingsError(PmhubError):
    exit_code = 10
    hint = "Check the PMHUB_* environment variables and pmhub.toml."


class HomeNotWritableError(SettingsError):
    exit_code = 11
    hint = "Set PMHUB_HOME to a directory you can write, or fix its permissions."


class MissingExtraError(PmhubError):
    exit_code = 12
    hint = "Install the optional dependency named in the message."


class FileWriteError(PmhubError):
    """A report, plot or export could not be written (see :mod:`pmhub.outputs`)."""

    exit_code = 13
    hint = "Choose a path in a folder you can write, on a disk with free space."


# --- 20-29 sites -----------------------------------------------------------------------


class SiteError(PmhubError):
    exit_code = 20
    hint = "List the registered sites with `pmhub sites list`."


class UnknownSiteError(SiteError):
    exit_code = 21
    hint = "Register it with `pmhub sites add NAME`, or see `pmhub sites list`."
    http_status = 404


class SiteExistsError(SiteError):
    exit_code = 22
    hint = "Pick another name, or remove the old site with `pmhub sites remove NAME`."
    http_status = 409


class InvalidSiteNameError(SiteError):
    exit_code = 23
    hint = "Use 1-40 lowercase letters, digits and underscores, starting with a letter."


# --- 30-39 CDW backends and schema ----------------------------------------------------


class CdwError(PmhubError):
    exit_code = 30
    hint = "Check the site's CDW URL with `pmhub sites list`."


class InvalidCdwUrlError(CdwError):
    exit_code = 31
    hint = (
        "Use duckdb:///path/to/site.duckdb, postgresql://user@host:port/database or "
        "spark:///path/to/parquet-folder."
    )


class CdwUnreachableError(CdwError):
    exit_code = 32
    hint = "Check that the database server runs, and the host, port, user and password."
    http_status = 503


class CdwNotInitialisedError(CdwError):
    exit_code = 33
    hint = "Create the CDM schema with `pmhub cdm init --site NAME`."
    http_status = 409


class CdmVersionError(CdwError):
    exit_code = 34
    hint = "pmhub works on OMOP CDM v5.4; migrate the CDW or initialise a new one."
    http_status = 409


class CdwLoadError(CdwError):
    exit_code = 35
    hint = "Nothing was written; fix the input named in the message and run again."


class SparkSiteError(CdwError):
    """A Spark site (a folder of Parquet OMOP tables) asked for what only SQL CDWs do."""

    exit_code = 36
    hint = (
        "Spark sites (spark:///folder) serve the cohort verbs; load, check and initialise "
        "the CDW where it is written (a DuckDB or PostgreSQL site), then export it."
    )


# --- 40-49 vocabulary ----------------------------------------------------------------


class VocabularyError(PmhubError):
    exit_code = 40
    hint = "Download the vocabulary again from Athena and load the unzipped folder."


class VocabularyFileMissingError(VocabularyError):
    exit_code = 41
    hint = "An Athena folder holds CONCEPT.csv, CONCEPT_RELATIONSHIP.csv, CONCEPT_ANCESTOR.csv, …"


class VocabularyFormatError(VocabularyError):
    exit_code = 42
    hint = (
        "Athena files are tab-separated UTF-8 with a header row; the vocabulary was left as it was."
    )


class VocabularyTooSmallError(VocabularyError):
    exit_code = 43
    hint = (
        "Check that the folder is the whole unzipped Athena download; to replace the "
        "vocabulary with it all the same, give --force."
    )


def all_error_classes() -> list[type[PmhubError]]:
    """Every error class, depth first, for the exit-code registry and its test."""
    found: list[type[PmhubError]] = [PmhubError]
    stack: list[type[PmhubError]] = [PmhubError]
    while stack:
        for sub in stack.pop().__subclasses__():
            found.append(sub)
            stack.append(sub)
    return found
