"""`pmhub synth`: generate a synthetic hospital network into a folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmhub.synth import refdata
from pmhub.synth.config import SynthConfig, check_format, make_config
from pmhub.synth.errors import InvalidSynthArgumentError
from pmhub.synth.output import Format, Progress, Written, write


@dataclass(frozen=True)
class SynthResult:
    config: SynthConfig
    format: str
    folder: Path
    files: dict[str, int]
    rows: dict[str, int]


def formatter(fmt: str, config: SynthConfig) -> Format:
    if fmt == "omop":
        from pmhub.synth.omop import OmopFormat

        return OmopFormat(config)
    if fmt == "synthea-csv":
        from pmhub.synth.synthea import SyntheaFormat

        return SyntheaFormat(config)
    from pmhub.synth.fhir import FhirFormat

    return FhirFormat(config)


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def generate(
    out: Path | str,
    *,
    sites: Any = 3,
    patients: Any = 1_000,
    years: Any = 10,
    seed: Any = 20261122,
    fmt: Any = "omop",
    end_year: Any = 2025,
    overwrite: bool = False,
    force: bool = False,
    workers: Any = None,
    progress: Progress | None = None,
) -> SynthResult:
    """Generate a network of ``sites`` hospitals and ``patients`` people over ``years``
    years into the folder ``out``; the same arguments give the same bytes."""
    fmt = check_format(fmt)
    config = make_config(
        sites=sites,
        patients=patients,
        years=years,
        seed=seed,
        end_year=end_year,
        force=force,
        max_sites=len(refdata.sites()),
    )
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidSynthArgumentError(
            f"workers must be a whole number of at least 1, not {workers!r}"
        )
    if not isinstance(out, (str, Path)) or str(out).strip() == "":
        raise InvalidSynthArgumentError(f"the output folder must be a path, not {out!r}")
    manifest = {
        "generator": "pmhub synth",
        "format": fmt,
        "sites": [s.name for s in refdata.sites()[: config.sites]],
        "patients": config.patients,
        "years": config.years,
        "seed": config.seed,
        "start_date": config.start_date.isoformat(),
        "end_date": config.end_date.isoformat(),
    }
    written: Written = write(
        config,
        formatter(fmt, config),
        Path(out),
        overwrite=overwrite,
        workers=workers,
        progress=progress,
        manifest=manifest,
    )
    return SynthResult(config, fmt, written.folder, written.files, written.rows)
