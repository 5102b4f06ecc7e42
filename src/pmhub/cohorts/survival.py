"""Kaplan–Meier survival and cumulative incidence of an outcome after a target cohort's
start (lifelines), plots as PNG or SVG, and small-cell-safe life tables for pooling
across sites.

A site's life table has fixed intervals. Events and censorings are never reported in
counts below the threshold: a small count is carried into the next interval until the
carried total reaches the threshold (so events may appear later than they happened, never
earlier), and the table stops where fewer than the threshold remain at risk. The hub sums
the sites' tables and computes the actuarial (life-table) survival of the pool.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd

from pmhub.cohorts.errors import AggregateError


@dataclass(frozen=True)
class Curve:
    label: str
    times: list[float]  # days
    survival: list[float]
    lower: list[float]
    upper: list[float]
    subjects: int
    events: int

    def cumulative_incidence(self) -> list[float]:
        return [1 - s for s in self.survival]


def kaplan_meier(frame: pd.DataFrame, label: str) -> Curve:
    """The KM estimate of a time-at-risk frame (days from start; event 0/1)."""
    from lifelines import KaplanMeierFitter  # heavy: imported where it is needed

    fitter = KaplanMeierFitter(label=label)
    durations = (frame["end"] - frame["start"]).dt.days.astype(float)
    fitter.fit(durations, event_observed=frame["event"].astype(int))
    bounds = fitter.confidence_interval_survival_function_
    return Curve(
        label=label,
        times=[float(t) for t in fitter.survival_function_.index],
        survival=[float(s) for s in fitter.survival_function_.iloc[:, 0]],
        lower=[float(v) for v in bounds.iloc[:, 0]],
        upper=[float(v) for v in bounds.iloc[:, 1]],
        subjects=len(frame),
        events=int(frame["event"].sum()),
    )


def competing_cumulative_incidence(frame: pd.DataFrame, label: str) -> Curve:
    """Aalen–Johansen cumulative incidence of the outcome with death as a competing event
    (``competing`` 1 where the subject died, without the outcome, at the end of follow-up).

    At each distinct time, CIF(t) grows by S(t−) · d/n: S the all-cause KM survival just
    before t, d the outcomes at t, n those at risk. Computed directly (lifelines' fitter
    jitters tied times at random). Returned as a Curve whose ``survival`` is 1 − CIF, so
    that it plots like the others; no confidence band.
    """
    durations = (frame["end"] - frame["start"]).dt.days.to_numpy()
    outcome = frame["event"].to_numpy().astype(bool)
    died = frame["competing"].to_numpy().astype(bool) & ~outcome
    times = np.unique(durations)
    all_cause, cif = 1.0, 0.0
    values = []
    for t in times:
        at_t = durations == t
        at_risk = int((durations >= t).sum())
        d_outcome, d_death = int((at_t & outcome).sum()), int((at_t & died).sum())
        cif += all_cause * d_outcome / at_risk
        all_cause *= 1 - (d_outcome + d_death) / at_risk
        values.append(1 - cif)
    return Curve(
        label=f"{label} (death competing)",
        times=[0.0, *(float(t) for t in times)],
        survival=[1.0, *values],
        lower=[1.0, *values],
        upper=[1.0, *values],
        subjects=len(frame),
        events=int(outcome.sum()),
    )


def plot(curves: list[Curve], kind: str = "survival", fmt: str = "svg") -> bytes:
    """A step plot of survival or cumulative incidence, as SVG or PNG bytes."""
    if fmt not in ("svg", "png"):
        raise ValueError(f"plot format must be svg or png, not {fmt!r}")
    matplotlib.use("Agg")  # no display: files only
    matplotlib.rcParams["svg.hashsalt"] = "pmhub"  # same curve, same SVG bytes (no random ids)
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    try:
        for curve in curves:
            values = curve.survival if kind == "survival" else curve.cumulative_incidence()
            low, high = (
                (curve.lower, curve.upper)
                if kind == "survival"
                else ([1 - u for u in curve.upper], [1 - v for v in curve.lower])
            )
            axes.step(
                curve.times, values, where="post", label=f"{curve.label} (n={curve.subjects})"
            )
            axes.fill_between(curve.times, low, high, step="post", alpha=0.2)
        axes.set_xlabel("days since cohort start")
        axes.set_ylabel("survival" if kind == "survival" else "cumulative incidence")
        axes.set_ylim(0, 1.0 if kind == "survival" else None)
        axes.legend(loc="best")
        axes.grid(alpha=0.3)
        buffer = io.BytesIO()
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        figure.savefig(buffer, format=fmt, bbox_inches="tight", metadata=metadata)
    finally:
        plt.close(figure)
    return buffer.getvalue()


# --- life tables for federation ------------------------------------------------------------


@dataclass(frozen=True)
class LifeTable:
    interval_days: int
    at_risk: list[int]  # at the start of each interval
    events: list[int]
    censored: list[int]

    def survival(self) -> list[float]:
        """Actuarial survival at the end of each interval."""
        out, s = [], 1.0
        for n, d, c in zip(self.at_risk, self.events, self.censored, strict=True):
            exposed = n - c / 2
            s *= 1 - d / exposed if exposed > 0 else 1.0
            out.append(s)
        return out


def _carry(counts: list[int], threshold: int) -> list[int]:
    """Report a count only once the carried total reaches the threshold."""
    out, pending = [], 0
    for c in counts:
        pending += c
        if pending >= threshold:
            out.append(pending)
            pending = 0
        else:
            out.append(0)
    return out


def life_table(
    frame: pd.DataFrame, interval_days: int, horizon_days: int, threshold: int
) -> LifeTable:
    """A suppressed life table of a time-at-risk frame."""
    durations = (frame["end"] - frame["start"]).dt.days.to_numpy()
    events = frame["event"].to_numpy().astype(bool)
    bins = math.ceil(horizon_days / interval_days)
    index = np.minimum(durations // interval_days, bins)  # bins: beyond the horizon
    d = [int(((index == i) & events).sum()) for i in range(bins)]
    c = [int(((index == i) & ~events).sum()) for i in range(bins)]
    d, c = _carry(d, threshold), _carry(c, threshold)
    at_risk, n = [], len(frame)
    for i in range(bins):
        if n < threshold:
            break
        at_risk.append(n)
        n -= d[i] + c[i]
    k = len(at_risk)
    return LifeTable(interval_days, at_risk, d[:k], c[:k])


def pool(tables: list[LifeTable]) -> LifeTable:
    """The sum of the sites' life tables. Where a site's table stops (fewer than the
    threshold left at risk), its remaining subjects count as censored there."""
    if not tables:
        raise AggregateError("no life tables to pool")
    if len({t.interval_days for t in tables}) != 1:
        raise AggregateError("life tables of different intervals cannot be pooled")
    length = max(len(t.at_risk) for t in tables)

    def total(name: str, i: int) -> int:
        return sum(getattr(t, name)[i] for t in tables if len(t.at_risk) > i)

    return LifeTable(
        tables[0].interval_days,
        [total("at_risk", i) for i in range(length)],
        [total("events", i) for i in range(length)],
        [total("censored", i) for i in range(length)],
    )
