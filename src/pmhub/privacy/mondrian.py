"""Mondrian local recoding (LeFevre, DeWitt and Ramakrishnan 2006) for large tables.

Top-down: a partition of records is split at the weighted median of the quasi-identifier
with the widest (normalized) span, if both halves still satisfy every model; partitions
that cannot be split are released. Each QI of a partition is released as the lowest label
of its hierarchy that covers all the partition's values, so the output stays in the
hierarchy's vocabulary and ARX's loss applies. Leaves are ordered as the hierarchy lists
them (numeric hierarchies list them in order; ARX files group siblings).

Unlike the full-domain search this is not optimal, but it needs no lattice and adapts the
granularity to the data: dense regions stay fine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from pmhub.privacy.errors import UnsatisfiableError
from pmhub.privacy.metrics import Utility, combine_loss
from pmhub.privacy.models import Model, Partition, TCloseness
from pmhub.privacy.qitable import QiTable, Sensitive


@dataclass
class MondrianResult:
    labels: np.ndarray  # (D, q) released label per distinct row
    suppressed: np.ndarray  # (D,) always False: Mondrian generalizes instead
    utility: Utility
    partitions: int
    seconds: float


def subset(table: QiTable, rows: np.ndarray) -> QiTable:
    sens = {n: Sensitive(s.codes[rows], s.values) for n, s in table.sensitive.items()}
    return QiTable(table.qis, table.hierarchies, table.leaves[rows], table.counts[rows], sens)


def with_reference(models: list[Model], table: QiTable) -> list[Model]:
    """t-closeness of a part is measured against the whole table's distribution."""
    out: list[Model] = []
    for model in models:
        if isinstance(model, TCloseness) and model.reference is None:
            sens = table.sensitive[model.column]
            counts = np.bincount(sens.codes, weights=table.counts, minlength=len(sens.values))
            shares = counts / table.n
            ref = tuple((str(v), float(s)) for v, s in zip(sens.values, shares, strict=True))
            model = TCloseness(model.column, model.t, model.distance, model.hierarchy, ref)
        out.append(model)
    return out


def allowed(table: QiTable, rows: np.ndarray, left: np.ndarray, models: list[Model]) -> bool:
    part_table = subset(table, rows)
    ids = np.where(left, 0, 1).astype(np.int64)
    sizes = np.bincount(ids, weights=part_table.counts, minlength=2).astype(np.int64)
    part = Partition(ids, sizes, ())
    return not any(model.violations(part_table, part).any() for model in models)


def split(
    table: QiTable, rows: np.ndarray, models: list[Model]
) -> tuple[np.ndarray, np.ndarray] | None:
    spans = []
    for q, h in enumerate(table.hierarchies):
        leaves = table.leaves[rows, q]
        spans.append((leaves.max() - leaves.min()) / max(h.size - 1, 1))
    for q in np.argsort(spans)[::-1]:
        if spans[q] == 0:
            break
        leaves = table.leaves[rows, q]
        order = np.argsort(leaves, kind="stable")
        cumulative = np.cumsum(table.counts[rows][order])
        median = leaves[order][np.searchsorted(cumulative, cumulative[-1] / 2)]
        for left in (leaves <= median, leaves < median):
            if left.any() and not left.all() and allowed(table, rows, left, models):
                return rows[left], rows[~left]
    return None


def lowest_common_label(table: QiTable, q: int, rows: np.ndarray) -> tuple[int, int]:
    """(level, code) of the lowest label covering all the rows' values of QI q."""
    h = table.hierarchies[q]
    for level in range(h.height):
        codes = h.codes(level)[table.leaves[rows, q]]
        if np.all(codes == codes[0]):
            return level, int(codes[0])
    return h.height - 1, 0


def anonymize(table: QiTable, models: list[Model], max_suppression: float = 0.0) -> MondrianResult:
    started = time.perf_counter()
    for model in models:
        model.check_input(table)
    models = with_reference(models, table)
    everything = np.arange(table.distinct)
    whole = Partition(np.zeros(table.distinct, dtype=np.int64), np.array([table.n]), ())
    if any(m.violations(table, whole).any() for m in models):
        raise UnsatisfiableError("the whole table does not satisfy the models; nothing to split")
    finished: list[np.ndarray] = []
    stack = [everything]
    while stack:
        rows = stack.pop()
        halves = split(table, rows, models)
        if halves is None:
            finished.append(rows)
        else:
            stack.extend(halves)
    labels, loss = release_labels(table, finished)
    return MondrianResult(
        labels=labels,
        suppressed=np.zeros(table.distinct, dtype=bool),
        utility=utility(table, loss, finished),
        partitions=len(finished),
        seconds=time.perf_counter() - started,
    )


def release_labels(table: QiTable, parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.empty((table.distinct, len(table.qis)), dtype=object)
    loss = np.zeros((table.distinct, len(table.qis)))
    for rows in parts:
        for q, h in enumerate(table.hierarchies):
            level, code = lowest_common_label(table, q, rows)
            labels[rows, q] = h.labels(level)[code]
            covered = h.cover(level)[code]
            loss[rows, q] = (covered - 1) / max(h.size - 1, 1)
    return labels, loss


def utility(table: QiTable, loss: np.ndarray, parts: list[np.ndarray]) -> Utility:
    weights = table.counts[:, None]
    attribute = (loss * weights).sum(axis=0) / table.n
    sizes = np.array([table.counts[rows].sum() for rows in parts], dtype=float)
    return Utility(
        loss=float(combine_loss(attribute)),
        attribute_loss={q: float(v) for q, v in zip(table.qis, attribute, strict=True)},
        precision=None,
        discernibility=float(np.sum(sizes**2)),
        entropy_bits=None,
        entropy_relative=None,
        classes=len(parts),
        suppressed_records=0,
        records=table.n,
    )
