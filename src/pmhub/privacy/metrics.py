"""Information loss of a full-domain generalization with record suppression.

- ``loss``: ARX's "Loss". Per quasi-identifier, a label covering c of the hierarchy's m
  leaves loses (c - 1) / (m - 1), a suppressed cell 1; the attribute's loss is the mean
  over records and the total the geometric combination prod(1 + v_i)^(1/q) - 1.
- ``precision``: Sweeney's Prec, the mean of level / (height - 1), suppressed cells 1.
- ``discernibility``: sum of squared class sizes, each suppressed record charged n.
- ``entropy``: non-uniform entropy in bits, sum of log2(freq(label) / freq(value)), a
  suppressed cell charged log2(n / freq(value)); also given relative to suppressing all.

Loss, precision and entropy are sums of per-attribute terms that suppression can only
raise, so each has a lower bound per lattice node that needs no pass over the data: the
search uses it to prune.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from pmhub.privacy.models import Check
from pmhub.privacy.qitable import QiTable

Metric = Literal["loss", "precision", "entropy"]
METRICS: tuple[Metric, ...] = ("loss", "precision", "entropy")


@dataclass
class Utility:
    loss: float
    attribute_loss: dict[str, float]
    precision: float | None
    discernibility: float
    entropy_bits: float | None
    entropy_relative: float | None
    classes: int
    suppressed_records: int
    records: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def value(self, metric: Metric) -> float:
        found = {"loss": self.loss, "precision": self.precision, "entropy": self.entropy_bits}
        value = found[metric]
        return float("inf") if value is None else value


def combine_loss(values: np.ndarray) -> np.ndarray:
    """ARX's geometric combination of per-attribute losses (last axis)."""
    q = values.shape[-1]
    if q == 0:
        return np.zeros(values.shape[:-1])
    return np.asarray(np.prod(1.0 + values, axis=-1) ** (1.0 / q) - 1.0)


def cell_terms(table: QiTable, q: int, level: int, metric: Metric) -> tuple[np.ndarray, float]:
    """Per distinct row, the metric's cost of attribute q at ``level``; and a suppressed cell's."""
    h = table.hierarchies[q]
    leaves = table.leaves[:, q]
    if metric == "loss":
        return h.leaf_loss(level)[leaves], 1.0
    if metric == "precision":
        return np.full(len(leaves), level / max(h.height - 1, 1)), 1.0
    raise ValueError(metric)


def entropy_terms(table: QiTable, q: int, level: int) -> tuple[np.ndarray, np.ndarray]:
    """log2(freq(label)/freq(value)) per distinct row, and log2(n/freq(value))."""
    h = table.hierarchies[q]
    leaves = table.leaves[:, q]
    leaf_freq = np.bincount(leaves, weights=table.counts, minlength=h.size)
    codes = h.codes(level)
    label_freq = np.bincount(codes, weights=leaf_freq, minlength=len(h.labels(level)))
    own = leaf_freq[leaves]
    return np.log2(label_freq[codes[leaves]] / own), np.log2(table.n / own)


def attribute_value(table: QiTable, q: int, level: int, kept: np.ndarray, metric: Metric) -> float:
    """One attribute's total: a mean for loss/precision, a bit sum for entropy."""
    if metric == "entropy":
        terms, suppressed = entropy_terms(table, q, level)
        return float(np.sum(np.where(kept, terms, suppressed) * table.counts))
    terms, cost = cell_terms(table, q, level, metric)
    return float(np.sum(np.where(kept, terms, cost) * table.counts) / max(table.n, 1))


def attribute_values(
    table: QiTable, levels: tuple[int, ...], kept: np.ndarray, metric: Metric
) -> np.ndarray:
    return np.array([attribute_value(table, q, lv, kept, metric) for q, lv in enumerate(levels)])


def total(values: np.ndarray, metric: Metric) -> float:
    if metric == "loss":
        return float(combine_loss(values))
    if metric == "precision":
        return float(values.mean()) if len(values) else 0.0
    return float(values.sum())


def measure(table: QiTable, result: Check) -> Utility:
    levels = result.part.levels
    kept = ~result.suppressed[result.part.ids]
    loss_values = attribute_values(table, levels, kept, "loss")
    entropy = total(attribute_values(table, levels, kept, "entropy"), "entropy")
    everything = total(attribute_values(table, levels, np.zeros_like(kept), "entropy"), "entropy")
    sizes = result.part.sizes[~result.suppressed]
    return Utility(
        loss=total(loss_values, "loss"),
        attribute_loss={q: float(v) for q, v in zip(table.qis, loss_values, strict=True)},
        precision=total(attribute_values(table, levels, kept, "precision"), "precision"),
        discernibility=float(np.sum(sizes.astype(float) ** 2))
        + result.suppressed_rows * float(table.n),
        entropy_bits=entropy,
        entropy_relative=entropy / everything if everything > 0 else 0.0,
        classes=len(sizes),
        suppressed_records=result.suppressed_rows,
        records=table.n,
    )


def lower_bounds(table: QiTable, nodes: np.ndarray, metric: Metric) -> np.ndarray:
    """The metric of every node (rows of ``nodes``) as if nothing were suppressed."""
    everything_kept = np.ones(table.distinct, dtype=bool)
    per_attr = np.zeros(nodes.shape, dtype=float)
    for q, h in enumerate(table.hierarchies):
        by_level = np.zeros(h.height)
        for level in np.unique(nodes[:, q]):
            by_level[level] = attribute_value(table, q, int(level), everything_kept, metric)
        per_attr[:, q] = by_level[nodes[:, q]]
    if metric == "loss":
        return combine_loss(per_attr)
    if metric == "precision":
        return np.asarray(per_attr.mean(axis=1)) if nodes.shape[1] else np.zeros(len(nodes))
    return np.asarray(per_attr.sum(axis=1))
