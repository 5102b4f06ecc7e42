"""Honest evaluation of predicted risks against outcomes.

Discrimination (AUROC with a bootstrap confidence interval, AUPRC), accuracy (Brier
score), calibration (intercept in the large with the log-odds as offset, slope of the
logistic recalibration, and the calibration curve by deciles of predicted risk), net
benefit at a few thresholds, and the same by subgroup (sex, age band, site). Curves and
subgroup counts leave a site only through :mod:`pmhub.predict.release`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pmhub.extras import require
from pmhub.predict.models import logistic_fit, logit

THRESHOLDS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3)


@dataclass(frozen=True)
class CalibrationBin:
    persons: int
    observed: int  # outcomes in the bin
    mean_predicted: float


@dataclass
class Metrics:
    persons: int
    outcomes: int
    auroc: float | None
    auroc_low: float | None
    auroc_high: float | None
    auprc: float | None
    brier: float
    calibration_intercept: float | None
    calibration_slope: float | None
    mean_predicted: float
    observed_rate: float
    calibration: list[CalibrationBin] = field(default_factory=list)
    net_benefit: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def auroc(y: np.ndarray, p: np.ndarray) -> float | None:
    if len(np.unique(y)) < 2:
        return None
    return float(require("sklearn.metrics").roc_auc_score(y, p))


def bootstrap_auroc(
    y: np.ndarray, p: np.ndarray, replicates: int, seed: int
) -> tuple[float | None, float | None]:
    """Percentile 95 % interval of the AUROC over bootstrap resamples of persons."""
    if replicates == 0 or len(np.unique(y)) < 2:
        return None, None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(replicates):
        pick = rng.integers(0, len(y), len(y))
        value = auroc(y[pick], p[pick])
        if value is not None:
            values.append(value)
    if not values:
        return None, None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[CalibrationBin]:
    """Deciles (quantile bins) of predicted risk: persons, outcomes, mean predicted."""
    if len(y) == 0:
        return []
    order = np.argsort(p, kind="stable")
    out = []
    for part in np.array_split(order, min(bins, len(y))):
        out.append(CalibrationBin(len(part), int(y[part].sum()), float(p[part].mean())))
    return out


def calibration(y: np.ndarray, p: np.ndarray) -> tuple[float | None, float | None]:
    """(intercept with logit(p) as offset, slope of y on logit(p)); 0 and 1 are perfect."""
    if len(np.unique(y)) < 2:
        return None, None
    z = logit(p)
    intercept, _ = logistic_fit(np.zeros(len(y)), y, offset=z, slope=False)
    _, slope = logistic_fit(z, y)
    return intercept, slope


def net_benefit(y: np.ndarray, p: np.ndarray, threshold: float) -> float:
    """Decision-curve net benefit of treating those with risk ≥ threshold."""
    n = len(y)
    treated = p >= threshold
    tp = float(np.sum(treated & (y == 1)))
    fp = float(np.sum(treated & (y == 0)))
    return tp / n - fp / n * threshold / (1 - threshold)


def evaluate(y: np.ndarray, p: np.ndarray, *, bootstrap: int = 200, seed: int = 0) -> Metrics:
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    low, high = bootstrap_auroc(y, p, bootstrap, seed)
    intercept, slope = calibration(y, p)
    both = len(np.unique(y)) == 2
    return Metrics(
        persons=len(y),
        outcomes=int(y.sum()),
        auroc=auroc(y, p),
        auroc_low=low,
        auroc_high=high,
        auprc=float(require("sklearn.metrics").average_precision_score(y, p)) if both else None,
        brier=float(np.mean((p - y) ** 2)) if len(y) else float("nan"),
        calibration_intercept=intercept,
        calibration_slope=slope,
        mean_predicted=float(p.mean()) if len(p) else float("nan"),
        observed_rate=float(y.mean()) if len(y) else float("nan"),
        calibration=calibration_bins(y, p),
        net_benefit={f"{t:g}": net_benefit(y, p, t) for t in THRESHOLDS} if len(y) else {},
    )


def age_band(age: np.ndarray) -> np.ndarray:
    edges = np.array([18, 40, 65, 75])
    labels = np.array(["<18", "18-39", "40-64", "65-74", "75+"])
    return np.asarray(labels[np.searchsorted(edges, age, side="right")])


def by_group(
    y: np.ndarray, p: np.ndarray, groups: dict[str, np.ndarray], *, seed: int = 0
) -> dict[str, dict[str, Metrics]]:
    """Metrics per level of each grouping (sex, age band, site): the fairness table."""
    out: dict[str, dict[str, Metrics]] = {}
    for name, labels in groups.items():
        out[name] = {}
        for level in sorted(set(labels.tolist())):
            pick = labels == level
            out[name][str(level)] = evaluate(y[pick], p[pick], bootstrap=0, seed=seed)
    return out
