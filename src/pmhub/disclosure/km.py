"""Kaplan-Meier curves that can be shown, after OpenSAFELY's practice.

OpenSAFELY's ``kaplan-meier-function`` action rounds the *cumulative* counts of events
and of censorings to the midpoints of steps of ``min_count`` (a count x > 0 becomes
``ceil(x / m) * m - floor(m / 2)``), derives the numbers at risk from the rounded
cumulative counts, and recomputes the estimate, Greenwood's variance and a log-log
interval from them: every step of the curve is then at least ``m`` events, no step
tells a single event, and midpoints keep the estimate unbiased on average. Here
``m`` is the small-cell threshold, and the curve (and its numbers-at-risk table) stops
where fewer than the threshold remain at risk.

The same rounding serves life tables (counts per interval rather than per day), so the
hub releases a pooled life table by the same rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Z = 1.959963984540054  # the normal quantile of a 95 % interval


def roundmid(count: int, step: int) -> int:
    """OpenSAFELY's midpoint rounding: 1..m -> m - floor(m/2), m+1..2m -> 2m - floor(m/2)."""
    if count <= 0 or step <= 1:
        return max(int(count), 0)
    return math.ceil(count / step) * step - step // 2


@dataclass(frozen=True)
class Steps:
    """Rounded counts per time (or interval): at risk at its start, then events (one
    list per kind of event) and censorings during it. Stops before the first time with
    fewer than the threshold at risk."""

    times: list[float]
    at_risk: list[int]
    events: dict[str, list[int]]
    censored: list[int]
    truncated: bool  # True when later times were left out


def rounded_steps(
    times: Sequence[float],
    events: Mapping[str, Sequence[int]],
    censored: Sequence[int],
    threshold: int,
    subjects: int | None = None,
) -> Steps:
    """Round exact counts per time; ``subjects`` defaults to every event and censoring."""
    total = (
        subjects if subjects is not None else sum(censored) + sum(sum(e) for e in events.values())
    )
    start = roundmid(total, threshold)
    cumulative = {kind: _rounded_cumsum(counts, threshold) for kind, counts in events.items()}
    censor = _rounded_cumsum(censored, threshold)
    out_times: list[float] = []
    at_risk: list[int] = []
    out_events: dict[str, list[int]] = {kind: [] for kind in events}
    out_censored: list[int] = []
    gone = 0
    previous = dict.fromkeys(events, 0)
    previous_censor = 0
    for i, t in enumerate(times):
        n = start - gone
        if n < threshold:
            return Steps(out_times, at_risk, out_events, out_censored, True)
        out_times.append(float(t))
        at_risk.append(n)
        for kind in events:
            out_events[kind].append(cumulative[kind][i] - previous[kind])
            previous[kind] = cumulative[kind][i]
        out_censored.append(censor[i] - previous_censor)
        previous_censor = censor[i]
        gone = sum(previous.values()) + previous_censor
    return Steps(out_times, at_risk, out_events, out_censored, False)


def _rounded_cumsum(counts: Sequence[int], step: int) -> list[int]:
    return [roundmid(int(c), step) for c in np.cumsum(np.asarray(counts, dtype=np.int64))]


@dataclass(frozen=True)
class SafeCurve:
    """What a plot, a legend and a numbers-at-risk table may show of one KM curve."""

    label: str
    times: list[float]  # days; starts at 0
    survival: list[float]
    lower: list[float]
    upper: list[float]
    end: float  # the curve stops here (the last time with enough at risk)
    truncated: bool
    at_risk: list[tuple[float, int]]  # (time, rounded number at risk) at each tick
    step: int  # the rounding step (the threshold)

    def cumulative_incidence(self) -> list[float]:
        return [1 - s for s in self.survival]

    def survival_at(self, day: float) -> float | None:
        """The estimate at ``day``; None beyond where the curve stops."""
        if day > self.end:
            return None
        before = [s for t, s in zip(self.times, self.survival, strict=True) if t <= day]
        return before[-1] if before else 1.0


def _per_time(
    durations: np.ndarray, flags: dict[str, np.ndarray]
) -> tuple[np.ndarray, dict[str, list[int]], list[int]]:
    times = np.unique(durations)
    index = np.searchsorted(times, durations)
    any_event = np.zeros(len(durations), dtype=bool)
    counts = {}
    for kind, flag in flags.items():
        counts[kind] = np.bincount(index[flag], minlength=len(times)).tolist()
        any_event |= flag
    censored = np.bincount(index[~any_event], minlength=len(times)).tolist()
    return times, counts, censored


def kaplan_meier(
    label: str,
    durations: Sequence[float],
    events: Sequence[int],
    threshold: int,
    ticks: Sequence[float],
) -> SafeCurve:
    """The KM estimate, a 95 % log-log band and numbers at risk, from rounded counts."""
    days = np.asarray(durations, dtype=float)
    times, counts, censored = _per_time(days, {"event": np.asarray(events, dtype=bool)})
    steps = rounded_steps(times.tolist(), counts, censored, threshold, len(days))
    xs, surv, low, high = [0.0], [1.0], [1.0], [1.0]
    s, greenwood = 1.0, 0.0
    for t, n, d in zip(steps.times, steps.at_risk, steps.events["event"], strict=True):
        if d == 0:
            continue
        s *= 1 - d / n
        greenwood += d / (n * (n - d)) if n > d else math.inf
        lo, hi = loglog(s, greenwood)
        xs.append(t)
        surv.append(s)
        low.append(lo)
        high.append(hi)
    end = steps.times[-1] if steps.times else 0.0
    return SafeCurve(
        label, xs, surv, low, high, end, steps.truncated, _at_risk(steps, ticks, end), threshold
    )


def cumulative_incidence(
    label: str,
    durations: Sequence[float],
    outcome: Sequence[int],
    competing: Sequence[int],
    threshold: int,
    ticks: Sequence[float],
) -> SafeCurve:
    """Aalen-Johansen cumulative incidence with a competing event, from rounded counts;
    returned as 1 - CIF in ``survival`` so that it plots like a KM curve (no band)."""
    days = np.asarray(durations, dtype=float)
    hit = np.asarray(outcome, dtype=bool)
    other = np.asarray(competing, dtype=bool) & ~hit
    times, counts, censored = _per_time(days, {"outcome": hit, "competing": other})
    steps = rounded_steps(times.tolist(), counts, censored, threshold, len(days))
    xs, values = [0.0], [1.0]
    all_cause, cif = 1.0, 0.0
    for i, (t, n) in enumerate(zip(steps.times, steps.at_risk, strict=True)):
        d_outcome, d_other = steps.events["outcome"][i], steps.events["competing"][i]
        if d_outcome == 0 and d_other == 0:
            continue
        cif += all_cause * d_outcome / n
        all_cause *= 1 - (d_outcome + d_other) / n
        xs.append(t)
        values.append(1 - cif)
    end = steps.times[-1] if steps.times else 0.0
    return SafeCurve(
        label,
        xs,
        values,
        values,
        values,
        end,
        steps.truncated,
        _at_risk(steps, ticks, end),
        threshold,
    )


def loglog(s: float, greenwood: float) -> tuple[float, float]:
    """The log-log 95 % interval of a survival estimate (as OpenSAFELY's action)."""
    if s <= 0 or s >= 1 or not math.isfinite(greenwood):
        return (0.0, 1.0) if s <= 0 or not math.isfinite(greenwood) else (1.0, 1.0)
    cll = math.log(-math.log(s))
    se = math.sqrt(greenwood) / abs(math.log(s))
    return math.exp(-math.exp(cll + Z * se)), math.exp(-math.exp(cll - Z * se))


def _at_risk(steps: Steps, ticks: Sequence[float], end: float) -> list[tuple[float, int]]:
    """The rounded number at risk at each tick up to where the curve stops."""
    out = []
    for tick in ticks:
        if tick > end or not steps.times:
            break
        later = [n for t, n in zip(steps.times, steps.at_risk, strict=True) if t >= tick]
        if later:
            out.append((float(tick), later[0]))
    return out
