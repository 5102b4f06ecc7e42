"""Privacy models, checked per equivalence class on the compact table.

A class that violates any model is suppressed; a generalization is acceptable when the
suppressed records stay within the suppression budget. The same code verifies a finished
release, so "the output satisfies the models" is checked by what also searched for it.

Definitions: k-anonymity (Sweeney); distinct, entropy and recursive-(c,l) diversity
(Machanavajjhala et al.); t-closeness with the equal and the hierarchical ground distance
(Li, Li and Venkatasubramanian, EMD); k-map (each class matches at least k people of a
population table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import pandas as pd

from pmhub.privacy.errors import PolicyError, UnsatisfiableError
from pmhub.privacy.hierarchy import Hierarchy
from pmhub.privacy.qitable import QiTable, combine_codes

EPS = 1e-12


@dataclass
class Partition:
    ids: np.ndarray  # (D,) class of each distinct row
    sizes: np.ndarray  # (C,) records per class
    levels: tuple[int, ...]

    @property
    def classes(self) -> int:
        return len(self.sizes)


def partition(table: QiTable, levels: tuple[int, ...]) -> Partition:
    ids = table.class_ids(levels)
    sizes = np.bincount(ids, weights=table.counts).astype(np.int64)
    return Partition(ids, sizes, levels)


class Model(Protocol):
    def violations(self, table: QiTable, part: Partition) -> np.ndarray:
        """One flag per class: True where the class breaks the model."""
        ...

    def describe(self) -> str: ...

    def achieved(self, table: QiTable, part: Partition) -> float:
        """The model's figure over all classes (smallest k, l; largest t), for the report."""
        ...

    def check_input(self, table: QiTable) -> None:
        """Raise when no release of this table can satisfy the model."""
        ...


@dataclass(frozen=True)
class KAnonymity:
    k: int

    def violations(self, table: QiTable, part: Partition) -> np.ndarray:
        return part.sizes < self.k

    def achieved(self, table: QiTable, part: Partition) -> float:
        return float(part.sizes.min())

    def describe(self) -> str:
        return f"{self.k}-anonymity"

    def check_input(self, table: QiTable) -> None:
        if self.k < 1:
            raise PolicyError(f"k must be at least 1, not {self.k}")
        if self.k > table.n:
            raise UnsatisfiableError(
                f"k={self.k} is larger than the data ({table.n} records): no release can be"
                f" {self.k}-anonymous"
            )


@dataclass
class ClassHistogram:
    """Sensitive-value counts per class, as (class, value, count) triples."""

    cls: np.ndarray
    value: np.ndarray
    count: np.ndarray


def histogram(table: QiTable, part: Partition, column: str) -> ClassHistogram:
    sens = table.sensitive[column]
    width = max(len(sens.values), 1)
    pair = part.ids * width + sens.codes
    ids, uniques = pd.factorize(pair)
    counts = np.bincount(ids, weights=table.counts).astype(np.int64)
    uniques = np.asarray(uniques, dtype=np.int64)
    return ClassHistogram(uniques // width, uniques % width, counts)


def _sensitive(table: QiTable, column: str) -> None:
    if column not in table.sensitive:
        raise PolicyError(f"the model's sensitive column {column!r} is not in the data")


@dataclass(frozen=True)
class DistinctLDiversity:
    column: str
    l: int  # noqa: E741  # the model's own name for it

    def values(self, table: QiTable, part: Partition) -> np.ndarray:
        """Distinct sensitive values per class."""
        return np.bincount(histogram(table, part, self.column).cls, minlength=part.classes)

    def violations(self, table: QiTable, part: Partition) -> np.ndarray:
        return np.asarray(self.values(table, part) < self.l - EPS)

    def achieved(self, table: QiTable, part: Partition) -> float:
        return float(self.values(table, part).min())

    def describe(self) -> str:
        return f"distinct {self.l}-diversity of {self.column}"

    def check_input(self, table: QiTable) -> None:
        _sensitive(table, self.column)
        if self.l < 1:
            raise PolicyError(f"l must be at least 1, not {self.l}")
        if len(table.sensitive[self.column].values) < self.l:
            raise UnsatisfiableError(
                f"{self.column!r} has only {len(table.sensitive[self.column].values)} distinct"
                f" values; no class can hold {self.l}"
            )


@dataclass(frozen=True)
class EntropyLDiversity(DistinctLDiversity):
    def values(self, table: QiTable, part: Partition) -> np.ndarray:
        """The effective l of each class: exp of its sensitive-value entropy."""
        hist = histogram(table, part, self.column)
        share = hist.count / part.sizes[hist.cls]
        entropy = np.bincount(hist.cls, weights=-share * np.log(share), minlength=part.classes)
        return np.asarray(np.exp(entropy))

    def violations(self, table: QiTable, part: Partition) -> np.ndarray:
        return np.asarray(np.log(self.values(table, part)) < math.log(self.l) - EPS)

    def describe(self) -> str:
        return f"entropy {self.l}-diversity of {self.column}"


@dataclass(frozen=True)
class RecursiveCLDiversity(DistinctLDiversity):
    c: float = 3.0

    def ratios(self, table: QiTable, part: Partition) -> np.ndarray:
        """r1 / (r_l + ... + r_m) per class; the model holds when it is below c."""
        hist = histogram(table, part, self.column)
        order = np.lexsort((-hist.count, hist.cls))
        cls, count = hist.cls[order], hist.count[order]
        starts = np.searchsorted(cls, cls, side="left")
        rank = np.arange(len(cls)) - starts  # 0 = most frequent value of the class
        top = np.bincount(cls[rank == 0], weights=count[rank == 0], minlength=part.classes)
        tail_mask = rank >= self.l - 1
        tail = np.bincount(cls[tail_mask], weights=count[tail_mask], minlength=part.classes)
        with np.errstate(divide="ignore"):
            return np.where(tail > 0, top / np.maximum(tail, 1e-300), np.inf)

    def violations(self, table: QiTable, part: Partition) -> np.ndarray:
        return np.asarray(~(self.ratios(table, part) < self.c))

    def achieved(self, table: QiTable, part: Partition) -> float:
        return float(self.ratios(table, part).max())

    def describe(self) -> str:
        return f"recursive ({self.c:g},{self.l})-diversity of {self.column}"

    def check_input(self, table: QiTable) -> None:
        super().check_input(table)
        if self.c <= 0:
            raise PolicyError(f"c must be positive, not {self.c}")


@dataclass(frozen=True)
class TCloseness:
    column: str
    t: float
    distance: Literal["equal", "hierarchical"] = "equal"
    hierarchy: Hierarchy | None = None
    # The whole input's distribution (value → share), when checking a release from which
    # suppressed records were removed: closeness is to the original table.
    reference: tuple[tuple[str, float], ...] | None = None

    def distances(self, table: QiTable, part: Partition) -> np.ndarray:
        hist = histogram(table, part, self.column)
        names = table.sensitive[self.column].values
        dense = np.zeros((part.classes, len(names)))
        dense[hist.cls, hist.value] = hist.count
        dist = dense / part.sizes[:, None]
        overall = dense.sum(axis=0) / table.n
        if self.reference is not None:
            shares = dict(self.reference)
            overall = np.array([shares.get(str(v), 0.0) for v in names])
        if self.distance == "equal":
            absent = max(0.0, 1.0 - float(overall.sum()))  # reference values not released
            return np.asarray((np.abs(dist - overall).sum(axis=1) + absent) / 2)
        return self._hierarchical(table, dist - overall)

    def _hierarchical(self, table: QiTable, extra: np.ndarray) -> np.ndarray:
        """EMD over the hierarchy: each inner node moves min(surplus, deficit) of its children."""
        assert self.hierarchy is not None
        h = self.hierarchy
        leaves = h.leaf_index(table.sensitive[self.column].values, self.column)
        cost = np.zeros(extra.shape[0])
        current = np.zeros((extra.shape[0], len(h.labels(0))))
        current[:, h.codes(0)[leaves]] = extra
        for level in range(1, h.height):
            parent = np.zeros(len(h.labels(level - 1)), dtype=np.int64)
            parent[h.codes(level - 1)] = h.codes(level)
            onehot = np.zeros((len(parent), len(h.labels(level))))
            onehot[np.arange(len(parent)), parent] = 1.0
            surplus = np.clip(current, 0, None) @ onehot
            deficit = np.clip(-current, 0, None) @ onehot
            cost += level / (h.height - 1) * np.minimum(surplus, deficit).sum(axis=1)
            current = current @ onehot
        return cost

    def violations(self, table: QiTable, part: Partition) -> np.ndarray:
        return self.distances(table, part) > self.t + EPS

    def achieved(self, table: QiTable, part: Partition) -> float:
        return float(self.distances(table, part).max())

    def describe(self) -> str:
        return f"{self.t:g}-closeness of {self.column} ({self.distance} distance)"

    def check_input(self, table: QiTable) -> None:
        _sensitive(table, self.column)
        if not 0 <= self.t <= 1:
            raise PolicyError(f"t must be between 0 and 1, not {self.t}")
        if self.distance == "hierarchical" and (
            self.hierarchy is None or self.hierarchy.height < 2
        ):
            raise PolicyError(
                f"hierarchical t-closeness of {self.column!r} needs a hierarchy for that column"
            )
        if self.hierarchy is not None:
            self.hierarchy.leaf_index(table.sensitive[self.column].values, self.column)


@dataclass(frozen=True)
class KMap:
    """Each class matches at least k people of a population table (same columns)."""

    k: int
    population: QiTable

    def population_counts(self, table: QiTable, part: Partition) -> np.ndarray:
        columns, cards = [], []
        for q, level in enumerate(part.levels):
            h = table.hierarchies[q]
            sample = table.label_codes(q, level)
            people = self.population.label_codes(q, level)
            columns.append(np.concatenate([sample, people]))
            cards.append(len(h.labels(level)))
        # Sample rows come first, so their ids are the sample's own class numbering.
        ids = combine_codes(columns, cards)
        sample_ids, people_ids = ids[: table.distinct], ids[table.distinct :]
        per_id = np.bincount(people_ids, weights=self.population.counts, minlength=ids.max() + 1)
        first = np.zeros(part.classes, dtype=np.int64)
        first[part.ids] = sample_ids
        return per_id[first]

    def violations(self, table: QiTable, part: Partition) -> np.ndarray:
        return self.population_counts(table, part) < self.k

    def achieved(self, table: QiTable, part: Partition) -> float:
        return float(self.population_counts(table, part).min())

    def describe(self) -> str:
        return f"{self.k}-map against a population of {self.population.n:,}"

    def check_input(self, table: QiTable) -> None:
        if self.k < 1:
            raise PolicyError(f"k-map needs k of at least 1, not {self.k}")
        if self.k > self.population.n:
            raise UnsatisfiableError(
                f"k-map k={self.k} is larger than the population table ({self.population.n})"
            )


@dataclass
class Check:
    part: Partition
    suppressed: np.ndarray  # (C,) classes suppressed
    suppressed_rows: int
    ok: bool


def check(table: QiTable, levels: tuple[int, ...], models: list[Model], budget: int) -> Check:
    part = partition(table, levels)
    bad = np.zeros(part.classes, dtype=bool)
    for model in models:
        bad |= model.violations(table, part)
        if part.sizes[bad].sum() > budget:  # cheap models first; stop once over budget
            return Check(part, bad, int(part.sizes[bad].sum()), False)
    rows = int(part.sizes[bad].sum())
    return Check(part, bad, rows, rows <= budget)
