"""Errors of the data-quality layer (exit codes 60-69)."""

from __future__ import annotations

from pmhub.errors import PmhubError


class QualityError(PmhubError):
    exit_code = 60
    hint = "See `pmhub quality --help`."


class SiteWithoutCdwError(QualityError):
    exit_code = 61
    hint = "Create the site's CDW with `pmhub cdm init --site NAME` and load data into it."
    http_status = 409


class EmptyCdwError(QualityError):
    exit_code = 62
    hint = "Load data into the CDW first (`pmhub ingest …`); an empty CDW has nothing to check."
    http_status = 409


class CheckFileError(QualityError):
    exit_code = 63
    hint = (
        "Fix the check file named in the message; the shipped one is "
        "src/pmhub/quality/data/checks.yaml and shows every key."
    )


class UnknownCheckTypeError(CheckFileError):
    exit_code = 64
    hint = "Use one of the check types listed in the message, or remove the entry."


class NoQualityRunError(QualityError):
    exit_code = 65
    hint = "Run the checks first with `pmhub quality run --site NAME`."
    http_status = 404


class QualityResultsError(QualityError):
    exit_code = 66
    hint = "The stored results are unreadable; run `pmhub quality run --site NAME` again."


class QualityOutputError(QualityError):
    exit_code = 67
    hint = "Choose a file or directory you can write."
