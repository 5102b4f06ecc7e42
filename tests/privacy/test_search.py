"""The optimal search finds ARX's optimum on UCI Adult (BENCHMARKS.md), with its figures."""

from __future__ import annotations

import pandas as pd
import pytest

from pmhub.privacy import hierarchy, metrics, models, qitable, search
from pmhub.privacy.errors import PolicyError, UnsatisfiableError
from tests.privacy.conftest import ADULT_QIS, ARX_OPTIMUM, adult_dir


@pytest.fixture(scope="module")
def adult_table() -> qitable.QiTable:
    folder = adult_dir()
    frame = pd.read_csv(folder / "adult.csv", sep=";", dtype=str)
    trees = [hierarchy.load_csv(folder / f"adult_hierarchy_{q}.csv") for q in ADULT_QIS]
    return qitable.from_frame(frame, ADULT_QIS, trees, ["salary-class"])


def test_k5_finds_the_arx_optimum(adult_table):
    found = search.optimal(adult_table, [models.KAnonymity(5)], 0.01)
    assert found.levels == ARX_OPTIMUM
    assert round(found.utility.loss, 3) == 0.359
    assert found.utility.suppressed_records == 273
    assert found.utility.classes == 147
    assert found.lattice_size == 6480
    # Tagging up from passing nodes and down from failing ones spares most of the lattice
    # (ARX's Flash checks 660 nodes here; pmhub 641, each node counted once).
    assert found.checked <= 641


def test_k5_with_distinct_2_diversity_finds_the_arx_optimum(adult_table):
    chosen: list[models.Model] = [
        models.KAnonymity(5),
        models.DistinctLDiversity("salary-class", 2),
    ]
    found = search.optimal(adult_table, chosen, 0.01)
    assert found.levels == (0, 4, 0, 2, 3, 1, 1, 1)
    assert round(found.utility.loss, 3) == 0.429
    assert found.checked <= 215
    assert found.utility.suppressed_records == 276


def test_the_optimum_is_no_worse_than_every_acceptable_node_of_a_small_lattice(adult_table):
    # Exhaustive check on a sub-lattice (four QIs fixed at their top level).
    bounds = [(0, 1), (0, 4), (0, 1), (0, 2), (3, 3), (2, 2), (2, 2), (2, 2)]
    found = search.optimal(adult_table, [models.KAnonymity(10)], 0.02, bounds=bounds)
    budget = search.suppression_budget(adult_table, 0.02)
    best = min(
        metrics.measure(adult_table, result).loss
        for node in search.lattice(adult_table, bounds)
        if (
            result := models.check(
                adult_table, tuple(int(v) for v in node), [models.KAnonymity(10)], budget
            )
        ).ok
    )
    assert found.utility.loss == pytest.approx(best)


def test_k_larger_than_the_data_is_unsatisfiable(adult_table):
    with pytest.raises(UnsatisfiableError, match="larger than the data"):
        search.optimal(adult_table, [models.KAnonymity(adult_table.n + 1)], 0.0)


def test_bounds_outside_the_hierarchy_are_refused(adult_table):
    bounds = [(0, 9)] + [(0, 0)] * 7
    with pytest.raises(PolicyError, match="outside its hierarchy"):
        search.optimal(adult_table, [models.KAnonymity(2)], 0.0, bounds=bounds)


def test_suppression_share_must_be_a_share(adult_table):
    with pytest.raises(PolicyError, match="between 0 and 1"):
        search.optimal(adult_table, [models.KAnonymity(2)], 1.5)
