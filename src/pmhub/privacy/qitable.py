"""The compact form every search and check runs on: distinct quasi-identifier rows.

A table of n records is reduced to its D distinct combinations of quasi-identifier leaves
(and sensitive values) with a count each. Generalizing to a lattice node maps each leaf to
its label code at the node's level, so equivalence classes are a factorization of D
integer keys: no string work, and the full data never needs to be in memory (the counts
can come from a DuckDB ``GROUP BY`` over a table larger than memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pmhub.privacy.errors import PrivacyInputError
from pmhub.privacy.hierarchy import Hierarchy

COUNT = "__count__"
MAX_KEY = 2**62


@dataclass
class Sensitive:
    codes: np.ndarray  # (D,) code of each distinct row's sensitive value
    values: np.ndarray  # code → value


@dataclass
class QiTable:
    qis: list[str]
    hierarchies: list[Hierarchy]
    leaves: np.ndarray  # (D, q) leaf index per quasi-identifier
    counts: np.ndarray  # (D,) records per distinct row
    sensitive: dict[str, Sensitive] = field(default_factory=dict)
    _codes: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def distinct(self) -> int:
        return len(self.counts)

    def label_codes(self, q: int, level: int) -> np.ndarray:
        """Each distinct row's label code of QI q at ``level`` (cached: the search asks often)."""
        cached = self._codes.get((q, level))
        if cached is None:
            cached = self.hierarchies[q].codes(level)[self.leaves[:, q]]
            self._codes[q, level] = cached
        return cached

    def class_ids(self, levels: Sequence[int]) -> np.ndarray:
        """Equivalence class of every distinct row at a lattice node (0-based, dense)."""
        columns = [self.label_codes(q, lv) for q, lv in enumerate(levels)]
        cards = [len(self.hierarchies[q].labels(lv)) for q, lv in enumerate(levels)]
        if int(np.prod(np.array(cards, dtype=float))) <= max(4 * self.distinct, 1 << 16):
            return dense_codes(columns, cards)
        return combine_codes(columns, cards)


def key_sizes(table: QiTable, levels: Sequence[int]) -> np.ndarray:
    """Records per class at a node, in no particular order and with empty slots: the cheap
    count that k-anonymity alone needs (no dense class numbering)."""
    columns = [table.label_codes(q, lv) for q, lv in enumerate(levels)]
    cards = [len(table.hierarchies[q].labels(lv)) for q, lv in enumerate(levels)]
    space = capped_product(cards)
    if space > max(4 * table.distinct, 1 << 16):
        return np.bincount(combine_codes(columns, cards), weights=table.counts)
    key = np.zeros(table.distinct, dtype=np.int64)
    for codes, card in zip(columns, cards, strict=True):
        key *= card
        key += codes
    return np.bincount(key, weights=table.counts, minlength=space)


def dense_codes(columns: Sequence[np.ndarray], cardinalities: Sequence[int]) -> np.ndarray:
    """As :func:`combine_codes` for a small key space: count keys instead of hashing them."""
    key = np.zeros(len(columns[0]) if columns else 0, dtype=np.int64)
    for codes, card in zip(columns, cardinalities, strict=True):
        key = key * card + codes
    space = int(np.prod(np.array(cardinalities, dtype=np.int64))) if cardinalities else 1
    present = np.bincount(key, minlength=space) > 0
    return (np.cumsum(present) - 1)[key]


def combine_codes(columns: Sequence[np.ndarray], cardinalities: Sequence[int]) -> np.ndarray:
    """Dense ids of the distinct tuples of several code columns (mixed-radix keys)."""
    key = np.zeros(len(columns[0]) if columns else 0, dtype=np.int64)
    span = 1
    for codes, card in zip(columns, cardinalities, strict=True):
        if span * card >= MAX_KEY:  # re-densify before the key could overflow
            key = pd.factorize(key)[0].astype(np.int64)
            span = int(key.max()) + 1 if len(key) else 1
        key = key * card + codes
        span *= card
    return pd.factorize(key)[0].astype(np.int64)


def from_frame(
    frame: pd.DataFrame,
    qis: Sequence[str],
    hierarchies: Sequence[Hierarchy],
    sensitive: Sequence[str] = (),
    count_column: str | None = None,
    *,
    grouped: bool = False,
) -> QiTable:
    """Build the table from records (or from pre-counted rows with ``count_column``;
    ``grouped`` when those rows are distinct already, as a GROUP BY makes them)."""
    columns = list(qis) + [s for s in sensitive if s not in qis]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PrivacyInputError(f"the data has no column(s) {missing}")
    counted = frame if grouped and count_column == COUNT else _count(frame, columns, count_column)
    leaves = (
        np.column_stack(
            [
                h.leaf_index(as_text(counted[q]).to_numpy(dtype=object), q)
                for q, h in zip(qis, hierarchies, strict=True)
            ]
        )
        if qis
        else np.zeros((len(counted), 0), dtype=np.int64)
    )
    table = QiTable(list(qis), list(hierarchies), leaves, counted[COUNT].to_numpy(np.int64))
    for name in sensitive:
        codes, values = pd.factorize(as_text(counted[name]), sort=True)
        table.sensitive[name] = Sensitive(codes.astype(np.int64), np.asarray(values, dtype=object))
    return table


def _count(frame: pd.DataFrame, columns: list[str], count_column: str | None) -> pd.DataFrame:
    if count_column is not None:
        sub = frame[[*columns, count_column]].rename(columns={count_column: COUNT})
        summed: pd.DataFrame = sub.groupby(columns, dropna=False, sort=False, as_index=False)[
            [COUNT]
        ].sum()
        return summed
    if not columns:
        return pd.DataFrame({COUNT: [len(frame)]})
    return frame.groupby(columns, dropna=False, sort=False).size().reset_index(name=COUNT)


def as_text(values: pd.Series) -> pd.Series:
    """Values as the strings hierarchies list: integers without '.0', missing as ''."""
    if pd.api.types.is_float_dtype(values) and values.dropna().mod(1).eq(0).all():
        values = values.astype("Int64")
    missing = values.isna().to_numpy()
    array = values.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(array, skipna=True) not in ("string", "empty"):
        array = np.array([str(v) for v in array], dtype=object)
    else:
        array = array.copy()
    array[missing] = ""
    # Plain object arrays: pandas' Arrow-backed strings are slow to iterate and map.
    return pd.Series(array, index=values.index, dtype=object)


def capped_product(sizes: Sequence[int], cap: int = MAX_KEY) -> int:
    """The product of sizes (e.g. the number of possible cells), capped to stay an int64."""
    product = 1
    for size in sizes:
        product = min(product * max(int(size), 1), cap)
    return product
