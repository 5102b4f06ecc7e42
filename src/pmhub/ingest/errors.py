"""Ingest errors (exit codes 50-59): each says what was wrong with the input and what to do."""

from __future__ import annotations

from pmhub.errors import PmhubError


class IngestError(PmhubError):
    exit_code = 50
    hint = "Check the input named in the message; nothing was loaded from it."


class InputNotFoundError(IngestError):
    exit_code = 51
    hint = "Give the path of an existing file or folder."


class EmptyInputError(IngestError):
    exit_code = 52
    hint = "Point at a folder that holds the export's files (e.g. patients.csv, encounters.csv)."


class UnknownFormatError(IngestError):
    exit_code = 53
    hint = "Use --format synthea-csv, fhir or omop-csv."


class InputFormatError(IngestError):
    exit_code = 54
    hint = "Fix the file's header or layout (the message names the file), then run again."


class EncodingError(IngestError):
    exit_code = 55
    hint = "Save the file as UTF-8, or give --encoding cp949 for a Korean (EUC-KR) export."


class RowsQuarantinedError(IngestError):
    exit_code = 56
    hint = (
        "See the rows set aside in the site's pmhub_quarantine table (file, line, reason); "
        "fix the source and import again, or accept them with --allow-quarantine."
    )


class NotFhirError(InputFormatError):
    exit_code = 57
    hint = "Give FHIR R4 JSON: a Bundle, a single resource, or bulk-export NDJSON files."


class IngestTargetError(IngestError):
    exit_code = 58
    hint = "Create the site's CDM first with `pmhub cdm init --site NAME`, then import."


class LoadInterruptedError(IngestError):
    """A load stopped by Ctrl-C or SIGTERM: what had committed stays, and the same input
    again resumes it. The CLI exits as a shell expects of that signal (130, 143)."""

    exit_code = 59
    hint = (
        "Run the same command again: the load resumes where it stopped, with the same ids; "
        "the step that was running was rolled back, nothing of it was kept."
    )
    http_status = 503

    def __init__(self, message: str, *, load_id: int, signum: int) -> None:
        super().__init__(message)
        self.load_id = load_id
        self.signum = signum
