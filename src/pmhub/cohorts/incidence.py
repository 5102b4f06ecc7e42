"""Incidence rates per 1,000 person-years with exact Poisson (Garwood) intervals.

Strata: overall, age group at the target start (10-year bands), sex, and calendar year —
person-time is split across the calendar years it spans, and each event counts in the
year it happened. Counts below the small-cell threshold are suppressed (0 is shown).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2

DAYS_PER_YEAR = 365.25
PER = 1000.0


@dataclass(frozen=True)
class Rate:
    stratum: str  # overall | age | sex | year
    level: str
    persons: int | None
    events: int | None
    person_years: float | None
    rate: float | None  # per 1,000 person-years
    lower: float | None
    upper: float | None


def garwood(events: int, person_years: float, confidence: float = 0.95) -> tuple[float, float]:
    """Exact Poisson interval of a rate per 1,000 person-years (Garwood 1936)."""
    alpha = 1 - confidence
    low = 0.0 if events == 0 else chi2.ppf(alpha / 2, 2 * events) / 2
    high = chi2.ppf(1 - alpha / 2, 2 * events + 2) / 2
    return float(low / person_years * PER), float(high / person_years * PER)


def small(count: int, threshold: int) -> bool:
    return 0 < count < threshold


def make_rate(
    stratum: str, level: str, persons: int, events: int, person_years: float, threshold: int
) -> Rate:
    person_years = float(person_years)
    if small(persons, threshold) or small(events, threshold):
        return Rate(stratum, level, None, None, None, None, None, None)
    if person_years <= 0:
        return Rate(stratum, level, persons, events, 0.0, None, None, None)
    low, high = garwood(events, person_years)
    return Rate(
        stratum, level, persons, events, person_years, events / person_years * PER, low, high
    )


def _age_band(age: float) -> str:
    low = int(age // 10 * 10)
    return f"{low}-{low + 9}"


def _by_year(frame: pd.DataFrame) -> list[tuple[str, int, int, float]]:
    """Person-time and events per calendar year (vectorised over subjects)."""
    start = frame["start"].to_numpy("datetime64[D]")
    end = frame["end"].to_numpy("datetime64[D]") + np.timedelta64(1, "D")  # exclusive
    years = range(int(frame["start"].dt.year.min()), int(frame["end"].dt.year.max()) + 1)
    rows = []
    for year in years:
        lo = np.datetime64(dt.date(year, 1, 1), "D")
        hi = np.datetime64(dt.date(year + 1, 1, 1), "D")
        overlap = (np.minimum(end, hi) - np.maximum(start, lo)).astype(int)
        days = np.clip(overlap, 0, None)
        events = int(((frame["event"] == 1) & (frame["end"].dt.year == year)).sum())
        rows.append((str(year), int((days > 0).sum()), events, float(days.sum()) / DAYS_PER_YEAR))
    return rows


def incidence(frame: pd.DataFrame, threshold: int) -> list[Rate]:
    """Rates of a time-at-risk frame (see :mod:`pmhub.cohorts.outcomes`)."""
    frame = frame.assign(
        py=frame["days"] / DAYS_PER_YEAR,
        age_band=frame["age"].map(_age_band),
        sex=np.where(frame["female"] == 1, "female", "male"),
    )
    rates = [
        make_rate(
            "overall", "all", len(frame), int(frame["event"].sum()), frame["py"].sum(), threshold
        )
    ]
    for stratum, column in (("age", "age_band"), ("sex", "sex")):
        for level, group in sorted(frame.groupby(column), key=lambda g: str(g[0])):
            rates.append(
                make_rate(
                    stratum,
                    str(level),
                    len(group),
                    int(group["event"].sum()),
                    group["py"].sum(),
                    threshold,
                )
            )
    for level, persons, events, person_years in _by_year(frame):
        rates.append(make_rate("year", level, persons, events, person_years, threshold))
    return rates
