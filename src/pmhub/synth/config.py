"""What to generate, and the limits that keep a typo from filling a disk."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pmhub.synth.errors import InvalidSynthArgumentError, SizeLimitError, UnknownFormatError

FORMATS = ("omop", "synthea-csv", "fhir")

# Soft limits: refused unless forced. Beyond the hard limits nothing is generated at all,
# because identifiers (record numbers, ids per chunk) would no longer be unique.
SOFT_MAX_PATIENTS = 200_000
SOFT_MAX_YEARS = 30
SOFT_MAX_PERSON_YEARS = 2_000_000
HARD_MAX_PATIENTS = 10_000_000
HARD_MAX_YEARS = 100
MAX_SEED = 2**63 - 1
DEFAULT_END_YEAR = 2025
MIN_END_YEAR = 1950

# People are simulated in chunks of this size; the chunk (not the number of workers)
# fixes every random stream, so the output does not depend on how many cores ran it.
CHUNK_SIZE = 5_000


@dataclass(frozen=True)
class SynthConfig:
    sites: int = 3
    patients: int = 1_000
    years: int = 10
    seed: int = 20261122
    end_year: int = DEFAULT_END_YEAR

    @property
    def start_year(self) -> int:
        return self.end_year - self.years + 1

    @property
    def start_date(self) -> dt.date:
        return dt.date(self.start_year, 1, 1)

    @property
    def end_date(self) -> dt.date:
        return dt.date(self.end_year, 12, 31)

    @property
    def chunks(self) -> int:
        return (self.patients + CHUNK_SIZE - 1) // CHUNK_SIZE

    def chunk_bounds(self, chunk: int) -> tuple[int, int]:
        start = chunk * CHUNK_SIZE
        return start, min(start + CHUNK_SIZE, self.patients)


def _whole(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSynthArgumentError(
            f"{name} must be a whole number, not {type(value).__name__} {value!r}"
        )
    if value < minimum:
        raise InvalidSynthArgumentError(f"{name} must be at least {minimum}, not {value}")
    return value


def make_config(
    *,
    sites: Any = 3,
    patients: Any = 1_000,
    years: Any = 10,
    seed: Any = 20261122,
    end_year: Any = DEFAULT_END_YEAR,
    force: bool = False,
    max_sites: int,
) -> SynthConfig:
    """Validate the arguments (types, ranges, limits) and build the configuration."""
    config = SynthConfig(
        sites=_whole("sites", sites, 1),
        patients=_whole("patients", patients, 1),
        years=_whole("years", years, 1),
        seed=_whole("seed", seed, 0),
        end_year=_whole("end_year", end_year, MIN_END_YEAR),
    )
    if config.seed > MAX_SEED:
        raise InvalidSynthArgumentError(f"seed must be below 2**63, not {config.seed}")
    if config.end_year > dt.date.today().year + 50:
        raise InvalidSynthArgumentError(f"end_year {config.end_year} is too far in the future")
    if config.sites > max_sites:
        raise SizeLimitError(
            f"at most {max_sites} sites can be generated (the site catalogue), not {config.sites}",
            hint=f"Ask for {max_sites} sites or fewer.",
        )
    _check_size(config, force)
    return config


def _check_size(config: SynthConfig, force: bool) -> None:
    if config.patients > HARD_MAX_PATIENTS or config.years > HARD_MAX_YEARS:
        raise SizeLimitError(
            f"{config.patients:,} patients over {config.years} years is beyond the hard limit "
            f"({HARD_MAX_PATIENTS:,} patients, {HARD_MAX_YEARS} years), even with --force",
            hint="Generate several smaller networks with different seeds instead.",
        )
    if config.start_year < 1900:
        raise InvalidSynthArgumentError(
            f"{config.years} years before {config.end_year} starts before 1900"
        )
    if force:
        return
    person_years = config.patients * config.years
    if (
        config.patients > SOFT_MAX_PATIENTS
        or config.years > SOFT_MAX_YEARS
        or person_years > SOFT_MAX_PERSON_YEARS
    ):
        raise SizeLimitError(
            f"{config.patients:,} patients x {config.years} years = {person_years:,} "
            f"person-years is above the limit without --force ({SOFT_MAX_PATIENTS:,} patients, "
            f"{SOFT_MAX_YEARS} years, {SOFT_MAX_PERSON_YEARS:,} person-years)"
        )


def check_format(fmt: Any) -> str:
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise UnknownFormatError(
            f"unknown output format {fmt!r}; known formats: {', '.join(FORMATS)}"
        )
    return fmt
