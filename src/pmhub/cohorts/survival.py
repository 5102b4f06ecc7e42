"""Kaplan–Meier survival and cumulative incidence of an outcome after a target cohort's
start, plots as PNG or SVG, and small-cell-safe life tables for pooling across sites.

What is shown is computed by :mod:`pmhub.disclosure.km` from rounded counts (OpenSAFELY's
practice) and stops where fewer than the threshold remain at risk; the exact estimates
(lifelines) stay at the site, for comparison in tests.

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
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

from pmhub import palette
from pmhub.cohorts.errors import AggregateError
from pmhub.disclosure import km
from pmhub.disclosure.km import SafeCurve


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


YEAR = 365
TICKS = tuple(range(0, 11 * YEAR, YEAR))  # numbers at risk: at the start and every year


def safe_curves(frame: pd.DataFrame, label: str, threshold: int) -> tuple[SafeCurve, SafeCurve]:
    """The KM curve and the cumulative incidence with death competing, as they may be
    shown: from rounded counts, stopped where fewer than ``threshold`` are at risk."""
    durations = (frame["end"] - frame["start"]).dt.days.astype(float).tolist()
    events = frame["event"].astype(int).tolist()
    curve = km.kaplan_meier(label, durations, events, threshold, TICKS)
    competing = km.cumulative_incidence(
        f"{label} (death competing)",
        durations,
        events,
        frame["competing"].astype(int).tolist(),
        threshold,
        TICKS,
    )
    return curve, competing


def plot(
    curves: list[SafeCurve],
    kind: str = "survival",
    fmt: str = "svg",
    *,
    title: str = "",
    outcome: str = "the outcome",
) -> bytes:
    """A step plot of survival or cumulative incidence with 95 % bands, as SVG or PNG
    bytes: titled, the outcome named on the axis, the legend below the axes (never over
    the curves, never clipped), and a numbers-at-risk table under it."""
    if fmt not in ("svg", "png"):
        raise ValueError(f"plot format must be svg or png, not {fmt!r}")
    matplotlib.use("Agg")  # no display: files only
    matplotlib.rcParams["svg.hashsalt"] = "pmhub"  # same curve, same SVG bytes (no random ids)
    matplotlib.rcParams["svg.fonttype"] = "none"  # text as text: readable, searchable, selectable
    import matplotlib.pyplot as plt

    rows = max(len(curves), 1)
    figure, (axes, table_axes) = plt.subplots(
        2,
        1,
        figsize=(7.5, 4.6 + 0.5 * rows),
        gridspec_kw={"height_ratios": [4.2, 0.4 + 0.5 * rows]},
    )
    try:
        _draw_curves(axes, curves, kind, outcome)
        axes.set_title(
            title or ("Kaplan–Meier survival" if kind == "survival" else "Cumulative incidence")
        )
        _draw_at_risk(table_axes, axes, curves)
        buffer = io.BytesIO()
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        figure.tight_layout()
        figure.savefig(buffer, format=fmt, bbox_inches="tight", metadata=metadata)
    finally:
        plt.close(figure)
    return buffer.getvalue()


def _draw_curves(axes: Any, curves: list[SafeCurve], kind: str, outcome: str) -> None:
    for curve in curves:
        colour = palette.colour(curve.label)
        values = curve.survival if kind == "survival" else curve.cumulative_incidence()
        low, high = (
            (curve.lower, curve.upper)
            if kind == "survival"
            else ([1 - u for u in curve.upper], [1 - v for v in curve.lower])
        )
        xs, ys = [*curve.times, curve.end], [*values, values[-1]]
        axes.step(xs, ys, where="post", color=colour, label=curve.label)
        if low != high:
            axes.fill_between(
                xs,
                [*low, low[-1]],
                [*high, high[-1]],
                step="post",
                alpha=0.18,
                color=colour,
                label=f"{curve.label}: 95 % CI",
            )
    axes.set_xlabel("days since cohort start")
    axes.set_ylabel(
        f"survival free of {outcome}"
        if kind == "survival"
        else f"cumulative incidence of {outcome}"
    )
    axes.set_ylim(0, 1.02 if kind == "survival" else None)
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    axes.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False, fontsize="small"
    )


def _draw_at_risk(table_axes: Any, axes: Any, curves: list[SafeCurve]) -> None:
    """Numbers at risk (rounded) at each year under the plot: per curve its name on one
    line, in its colour, and its counts under the year ticks on the next."""
    table_axes.axis("off")
    table_axes.set_xlim(axes.get_xlim())
    table_axes.set_ylim(-2 * len(curves) - 0.2, 1)
    where = table_axes.get_yaxis_transform()
    table_axes.text(
        0,
        0.3,
        "Number at risk (rounded; stops below the threshold)",
        fontsize="small",
        fontweight="bold",
        transform=where,
    )
    for row, curve in enumerate(curves):
        y = -2 * row - 0.6
        table_axes.text(
            0,
            y,
            curve.label,
            fontsize="x-small",
            color=palette.colour(curve.label),
            transform=where,
        )
        for day, count in curve.at_risk:
            if day <= axes.get_xlim()[1]:
                table_axes.text(day, y - 1, f"{count:,}", ha="center", fontsize="x-small")


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


def exact_life_table(frame: pd.DataFrame, interval_days: int, horizon_days: int) -> LifeTable:
    """A site's exact life table: its contribution to a pooled one, never shown itself."""
    durations = (frame["end"] - frame["start"]).dt.days.to_numpy()
    events = frame["event"].to_numpy().astype(bool)
    bins = math.ceil(horizon_days / interval_days)
    index = np.minimum(durations // interval_days, bins)
    d = [int(((index == i) & events).sum()) for i in range(bins)]
    c = [int(((index == i) & ~events).sum()) for i in range(bins)]
    at_risk, n = [], len(frame)
    for i in range(bins):
        at_risk.append(n)
        n -= d[i] + c[i]
    return LifeTable(interval_days, at_risk, d, c)


def released_life_table(table: LifeTable, threshold: int) -> LifeTable:
    """An exact (pooled) life table as it may be shown: cumulative counts rounded to the
    midpoints of steps of the threshold, stopped where fewer remain at risk."""
    starts = [float(i * table.interval_days) for i in range(len(table.at_risk))]
    subjects = table.at_risk[0] if table.at_risk else 0
    steps = km.rounded_steps(starts, {"event": table.events}, table.censored, threshold, subjects)
    return LifeTable(table.interval_days, steps.at_risk, steps.events["event"], steps.censored)


def pooled_curve(table: LifeTable, label: str, threshold: int) -> SafeCurve:
    """A released (rounded, stopped) life table as a curve to plot: actuarial survival at
    each interval's end, a log-log band from Greenwood's variance of the same counts, and
    its numbers at risk at the year ticks."""
    xs, surv, low, high = [0.0], [1.0], [1.0], [1.0]
    s, greenwood = 1.0, 0.0
    for i, (n, d, c) in enumerate(zip(table.at_risk, table.events, table.censored, strict=True)):
        exposed = n - c / 2
        if d and exposed > d:
            s *= 1 - d / exposed
            greenwood += d / (exposed * (exposed - d))
            lo, hi = km.loglog(s, greenwood)
            xs.append(float((i + 1) * table.interval_days))
            surv.append(s)
            low.append(lo)
            high.append(hi)
    end = float(len(table.at_risk) * table.interval_days)
    at_risk = []
    for tick in TICKS:  # each year's count: at the start of the first interval from then
        i = math.ceil(tick / table.interval_days)
        if i < len(table.at_risk):
            at_risk.append((float(tick), table.at_risk[i]))
    return SafeCurve(label, xs, surv, low, high, end, True, at_risk, threshold)


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
