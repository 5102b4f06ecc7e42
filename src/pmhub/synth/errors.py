"""Errors of the synthetic-data layer (exit codes 90-99)."""

from __future__ import annotations

from pmhub.errors import PmhubError


class SynthError(PmhubError):
    exit_code = 90
    hint = "Check the arguments of `pmhub synth` (see `pmhub synth --help`)."


class InvalidSynthArgumentError(SynthError):
    exit_code = 91
    hint = "Give --sites, --patients and --years as whole numbers of at least 1, and --seed >= 0."


class UnknownFormatError(SynthError):
    exit_code = 92
    hint = "Choose one of --format omop, --format synthea-csv or --format fhir."


class OutputNotEmptyError(SynthError):
    exit_code = 93
    hint = "Choose an empty or new folder, or pass --overwrite to replace its contents."


class SizeLimitError(SynthError):
    exit_code = 94
    hint = "Ask for less, or pass --force if you really mean it (see the limits in the message)."


class OutputNotWritableError(SynthError):
    exit_code = 95
    hint = "Choose an output folder you can write, on a disk with free space."


class SynthLoadError(SynthError):
    exit_code = 96
    hint = "Run `pmhub cdm init --site NAME` first; nothing was written to the site."


class ReferenceDataError(SynthError):
    exit_code = 97
    hint = "The synth layer's reference data is damaged; reinstall pmhub."
