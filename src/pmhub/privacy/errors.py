"""Errors of the privacy layer (exit codes 70-79).

Every one of them is raised before any output is written: the engine checks the policy,
the hierarchies, the key and the column types first, and writes into a staging directory
that is renamed into place only when the whole release succeeded.
"""

from __future__ import annotations

from pmhub.errors import PmhubError


class PrivacyError(PmhubError):
    exit_code = 70
    hint = "Nothing was written; fix the input named in the message and run again."


class PolicyError(PrivacyError):
    exit_code = 71
    hint = "Fix the policy YAML: every column it names must exist and use a known action."


class HierarchyError(PrivacyError):
    exit_code = 72
    hint = "Add the missing values to the hierarchy file, or pick a generated hierarchy."


class UnsatisfiableError(PrivacyError):
    exit_code = 73
    hint = (
        "Lower k (or l, or raise t), allow more suppression, or add coarser hierarchy levels;"
        " nothing was released."
    )


class KeyStoreError(PrivacyError):
    exit_code = 74
    hint = "Create the project's key with `pmhub privacy key-create --project NAME`."


class ColumnTypeError(PrivacyError):
    exit_code = 75
    hint = "Fix the values named in the message, or change the column's action in the policy."


class PrivacyInputError(PrivacyError):
    exit_code = 76
    hint = "Give a readable CSV, Parquet or DuckDB file (or a folder of them)."


class OutputExistsError(PrivacyError):
    exit_code = 77
    hint = "Choose a new --out directory, or remove the old release first."
    http_status = 409


class NotesFormatError(PrivacyError):
    exit_code = 78
    hint = (
        "Notes are CSV with columns note_id,person_id,note_date,note_title,note_text"
        " (UTF-8 or CP949)."
    )


class EngineMemoryError(PrivacyError):
    exit_code = 79
    hint = (
        "The query engine ran out of memory; nothing was written. Give it more with"
        " --memory-limit (e.g. 2GB): beyond the limit it spills to a temporary folder."
    )
