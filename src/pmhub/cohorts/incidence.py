"""Incidence rates per 1,000 person-years with exact Poisson (Garwood) intervals.

Strata: overall, age group at the target start (10-year bands), sex, and calendar year —
person-time is split across the calendar years it spans, and each event counts in the
year it happened.

Disclosure control (:mod:`pmhub.disclosure`): the strata of each kind add up to the
overall row (events by age, sex and year; persons by age and sex; person-time by all
three), so they are suppressed as tables with a total. A stratum stays shown when only
its events are small: its events are hidden with whatever would give them back, its
persons and person-time shown; its person-time is hidden only when its persons are
small. A rate (and its interval) is shown only beside shown events and person-time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2

from pmhub.disclosure import Count, Line, protect, small
from pmhub.disclosure.tables import hide

DAYS_PER_YEAR = 365.25
PER = 1000.0


@dataclass(frozen=True)
class Rate:
    stratum: str  # overall | age | sex | year
    level: str
    persons: Count
    events: Count
    person_years: float | None  # None: hidden
    rate: float | None  # per 1,000 person-years
    lower: float | None
    upper: float | None
    reason: str | None = None  # why the rate is not shown


def garwood(events: int, person_years: float, confidence: float = 0.95) -> tuple[float, float]:
    """Exact Poisson interval of a rate per 1,000 person-years (Garwood 1936)."""
    alpha = 1 - confidence
    low = 0.0 if events == 0 else chi2.ppf(alpha / 2, 2 * events) / 2
    high = chi2.ppf(1 - alpha / 2, 2 * events + 2) / 2
    return float(low / person_years * PER), float(high / person_years * PER)


def rate_of(
    stratum: str, level: str, persons: Count, events: Count, person_years: float | None
) -> Rate:
    """The rate of released counts: not computable, with the reason, when they hide it."""
    reason = None
    if events.value is None:
        reason = "events suppressed"
    elif person_years is None:
        reason = "person-time suppressed"
    elif person_years <= 0:
        reason = "no person-time"
    if reason is not None or events.value is None or person_years is None:
        return Rate(stratum, level, persons, events, person_years, None, None, None, reason)
    low, high = garwood(events.value, person_years)
    rate = events.value / person_years * PER
    return Rate(stratum, level, persons, events, person_years, rate, low, high)


Stratum = tuple[str, str]  # (stratum, level)


def suppressed(strata: list[tuple[str, str, int, int, float]], threshold: int) -> list[Rate]:
    """Rates of exact (stratum, level, persons, events, person-years) rows, suppressed as
    linked tables: each kind of stratum adds up to the overall row."""
    persons = {(s, lv): p for s, lv, p, _, _ in strata}
    events = {(s, lv): e for s, lv, _, e, _ in strata}
    years = {(s, lv): py for s, lv, _, _, py in strata}
    overall = ("overall", "all")

    def lines(*kinds: str) -> list[Line[Stratum]]:
        return [
            Line(overall, tuple(k for k in persons if k[0] == kind))
            for kind in kinds
            if any(k[0] == kind for k in persons)
        ]

    shown_events = protect(events, lines("age", "sex", "year"), threshold).cells
    shown_persons = protect(persons, lines("age", "sex"), threshold).cells
    few = [k for k, n in persons.items() if small(n, threshold)]
    hidden_time = hide(years, lines("age", "sex", "year"), threshold, sensitive=few, floor=0.0)
    return [
        rate_of(
            s,
            lv,
            shown_persons[(s, lv)],
            shown_events[(s, lv)],
            None if (s, lv) in hidden_time else float(years[(s, lv)]),
        )
        for s, lv, _, _, _ in strata
    ]


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


def strata(frame: pd.DataFrame) -> list[tuple[str, str, int, int, float]]:
    """Exact persons, events and person-years of a time-at-risk frame per stratum: what
    stays at the site (and what a pooled figure is computed from)."""
    frame = frame.assign(
        py=frame["days"] / DAYS_PER_YEAR,
        age_band=frame["age"].map(_age_band),
        sex=np.where(frame["female"] == 1, "female", "male"),
    )
    rows = [("overall", "all", len(frame), int(frame["event"].sum()), float(frame["py"].sum()))]
    for stratum, column in (("age", "age_band"), ("sex", "sex")):
        for level, group in sorted(frame.groupby(column), key=lambda g: str(g[0])):
            rows.append(
                (
                    stratum,
                    str(level),
                    len(group),
                    int(group["event"].sum()),
                    float(group["py"].sum()),
                )
            )
    rows += [("year", *row) for row in _by_year(frame)]
    return rows


def incidence(frame: pd.DataFrame, threshold: int) -> list[Rate]:
    """Suppressed rates of a time-at-risk frame (see :mod:`pmhub.cohorts.outcomes`)."""
    return suppressed(strata(frame), threshold)
