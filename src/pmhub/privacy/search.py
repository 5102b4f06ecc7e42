"""Globally optimal full-domain generalization: branch and bound over the lattice.

The lattice has one node per combination of hierarchy levels. Two facts prune it, as in
ARX's Flash:

- k-anonymity, distinct l-diversity and k-map with a suppression budget are monotone: if
  a node needs too much suppression so does every node below it (each of its levels lower
  or equal), which is then skipped without a pass over the data ("predictive tagging");
  equally, every node above a passing node passes. Entropy and recursive l-diversity and
  t-closeness are not (a class that satisfies them, merged with one that does not, may
  not), so with any of them every node under the bound is checked;
- the metric has a lower bound per node that needs no data pass (its value with nothing
  suppressed, see :mod:`pmhub.privacy.metrics`), and suppression only adds to it.

Nodes are visited in order of their lower bound; once the bound reaches the best loss
found, no unvisited node can beat it, so the result is the global optimum. Ties go to the
node with the fewest generalization steps, then the lexicographically smallest levels.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pmhub.privacy.errors import PolicyError, UnsatisfiableError
from pmhub.privacy.metrics import Metric, Utility, lower_bounds, measure
from pmhub.privacy.models import Check, DistinctLDiversity, KAnonymity, KMap, Model, check
from pmhub.privacy.qitable import QiTable, key_sizes

TIE = 1e-9
MONOTONE = (KAnonymity, DistinctLDiversity, KMap)  # exactly these: not their subclasses


def monotone(models: Sequence[Model]) -> bool:
    return all(type(m) in MONOTONE for m in models)


@dataclass
class SearchResult:
    levels: tuple[int, ...]
    check: Check
    utility: Utility
    lattice_size: int
    checked: int
    tagged: int
    seconds: float

    def levels_by_name(self, table: QiTable) -> dict[str, int]:
        return dict(zip(table.qis, self.levels, strict=True))


def lattice(table: QiTable, bounds: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
    """Every node as a row of levels, within optional (min, max) level bounds per QI."""
    ranges = []
    for q, h in enumerate(table.hierarchies):
        low, high = bounds[q] if bounds else (0, h.height - 1)
        if not 0 <= low <= high <= h.height - 1:
            raise PolicyError(
                f"levels {low}..{high} of {table.qis[q]!r} are outside its hierarchy"
                f" (levels 0..{h.height - 1})"
            )
        ranges.append(range(low, high + 1))
    return np.array(list(itertools.product(*ranges)), dtype=np.int64).reshape(-1, len(ranges))


def suppression_budget(table: QiTable, max_suppression: float) -> int:
    if not 0 <= max_suppression <= 1:
        raise PolicyError(f"max_suppression must be a share between 0 and 1, not {max_suppression}")
    return int(np.floor(max_suppression * table.n + TIE))


def optimal(
    table: QiTable,
    models: list[Model],
    max_suppression: float,
    metric: Metric = "loss",
    bounds: Sequence[tuple[int, int]] | None = None,
) -> SearchResult:
    started = time.perf_counter()
    for model in models:
        model.check_input(table)
    budget = suppression_budget(table, max_suppression)
    nodes = lattice(table, bounds)
    bound = lower_bounds(table, nodes, metric)
    order = np.lexsort((*nodes.T[::-1], nodes.sum(axis=1), np.round(bound / TIE)))
    best: tuple[float, Check] | None = None
    failed = np.zeros((0, nodes.shape[1]), dtype=np.int64)
    ceiling = nodes.max(axis=0)
    checker = Checker(table, models, budget, monotone(models))
    tagged = 0
    for index in order:
        if best is not None and bound[index] >= best[0] - TIE:
            break
        node = nodes[index]
        if _dominated(node, failed):
            tagged += 1
            continue
        key = tuple(int(v) for v in node)
        if checker.monotone and key not in checker.known:  # climbing tells if the node fails
            top = _climb(checker, node, ceiling, failed)
            if top is not None:  # the node fails: it lies below the top it climbed to
                failed = _keep_maximal(failed, top)
                continue
        if not checker.ok(key):
            continue
        result = checker.check(key)  # the full partition, for the node's loss
        value = measure(table, result).value(metric)
        if best is None or value < best[0] - TIE:
            best = (value, result)
    if best is None:
        raise UnsatisfiableError(
            f"no generalization within the hierarchies satisfies {describe(models)} with at"
            f" most {max_suppression:.2%} of {table.n:,} records suppressed"
        )
    result = best[1]
    return SearchResult(
        levels=result.part.levels,
        check=result,
        utility=measure(table, result),
        lattice_size=len(nodes),
        checked=checker.checks,
        tagged=tagged + checker.tagged,
        seconds=time.perf_counter() - started,
    )


@dataclass
class Checker:
    """Checks nodes, remembering each outcome: climbs revisit nodes the main loop will see."""

    table: QiTable
    models: list[Model]
    budget: int
    monotone: bool = True
    known: dict[tuple[int, ...], bool] = field(default_factory=dict)
    results: dict[tuple[int, ...], Check] = field(default_factory=dict)
    checked: set[tuple[int, ...]] = field(default_factory=set)  # nodes with a pass over data
    # Passing nodes with nothing passing below them: every node above one passes too.
    passed: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    tagged: int = 0

    @property
    def k_only(self) -> int | None:
        """The k when k-anonymity is the only model: then a plain count decides a node."""
        if self.models and all(isinstance(m, KAnonymity) for m in self.models):
            return max(m.k for m in self.models if isinstance(m, KAnonymity))
        return None

    @property
    def checks(self) -> int:
        return len(self.checked)

    def check(self, node: tuple[int, ...]) -> Check:
        found = self.results.get(node)
        if found is not None:
            return found
        self.checked.add(node)
        result = check(self.table, node, self.models, self.budget)
        self._remember(node, result.ok)
        if result.ok:
            self.results[node] = result  # a passing node is measured after its check
        return result

    def ok(self, node: tuple[int, ...]) -> bool:
        found = self.known.get(node)
        if found is not None:
            return found
        if self.monotone and self._above_a_pass(node):  # predictive tagging upward
            self.tagged += 1
            self.known[node] = True
            return True
        k = self.k_only
        if k is None:
            return self.check(node).ok
        self.checked.add(node)
        sizes = key_sizes(self.table, node)
        found = bool(sizes[(sizes > 0) & (sizes < k)].sum() <= self.budget)
        self._remember(node, found)
        return found

    def _remember(self, node: tuple[int, ...], ok: bool) -> None:
        self.known[node] = ok
        if ok:
            point = np.array(node, dtype=np.int64)
            if len(self.passed) == 0:
                self.passed = point[None, :]
            elif not self._above_a_pass(node):
                above = np.all(self.passed >= point, axis=1)
                self.passed = np.vstack([self.passed[~above], point[None, :]])

    def _above_a_pass(self, node: tuple[int, ...]) -> bool:
        if len(self.passed) == 0:
            return False
        return bool(np.any(np.all(np.array(node) >= self.passed, axis=1)))


def _climb(
    checker: Checker, node: np.ndarray, ceiling: np.ndarray, failed: np.ndarray
) -> np.ndarray | None:
    """Raise a failing node's levels while it still fails: first along one path by binary
    search, as Flash does, then one QI at a time by bisection (so the node is maximal).

    The failing node found this way dominates many more nodes, so one climb of a few
    checks tags a large part of the lattice as failing without visiting it.
    """
    order = np.argsort(-(ceiling - node), kind="stable")  # most headroom first
    top = _along_a_path(checker, node, ceiling, failed, order)
    if top is None:
        return None  # the node itself passes
    for q in order:
        column = []
        for level in range(int(top[q]), int(ceiling[q]) + 1):
            trial = top.copy()
            trial[q] = level
            column.append(trial)
        top = _last_failing(checker, column, failed, known=True)
        assert top is not None
    return top


def _along_a_path(
    checker: Checker,
    node: np.ndarray,
    ceiling: np.ndarray,
    failed: np.ndarray,
    order: np.ndarray,
) -> np.ndarray | None:
    """The highest failing node on the path from ``node`` to the ceiling that raises the
    QIs one level each in turn; along a path the models are monotone, so bisect it."""
    path = [node.copy()]
    while np.any(path[-1] < ceiling):
        for q in order:
            if path[-1][q] < ceiling[q]:
                step = path[-1].copy()
                step[q] += 1
                path.append(step)
    return _last_failing(checker, path, failed, known=False)


def _last_failing(
    checker: Checker, chain: list[np.ndarray], failed: np.ndarray, *, known: bool
) -> np.ndarray | None:
    """Bisect a chain of ever more general nodes: its last failing one, or None when even
    the first passes. With ``known`` the first is known to fail; otherwise a failing node
    further up settles it too, without a check of its own."""
    low, high = (0 if known else -1), len(chain) - 1
    while low < high:
        mid = (low + high + 1) // 2
        trial = chain[mid]
        if _dominated(trial, failed) or not checker.ok(tuple(int(v) for v in trial)):
            low = mid
        else:
            high = mid - 1
    return None if low < 0 else chain[low].copy()


def _dominated(node: np.ndarray, failed: np.ndarray) -> bool:
    return bool(len(failed)) and bool(np.any(np.all(node <= failed, axis=1)))


def _keep_maximal(failed: np.ndarray, node: np.ndarray) -> np.ndarray:
    """Add a failed node, dropping the failed nodes it dominates (they prune nothing more)."""
    dominated = np.all(failed <= node, axis=1)
    return np.vstack([failed[~dominated], node[None, :]])


def describe(models: list[Model]) -> str:
    return ", ".join(m.describe() for m in models) or "no model"
