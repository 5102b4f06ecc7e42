"""The parts of federated learning that need no Flower process: tables, updates, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from pmhub.federation import apps, logistic, run, table
from pmhub.federation import simulate as tables
from pmhub.federation.errors import FederationError, NotEnoughSitesError, SiteUpdateError
from pmhub.predict.errors import TaskDefinitionError


def test_local_updates_averaged_over_sites_reach_the_pooled_minimum(tmp_path: Path) -> None:
    paths = tables.write(tmp_path, n=2000)
    data = [table.load(s, p, "outcome") for s, p in paths.items()]
    x = np.vstack([d.x for d in data])
    mean, sd = x.mean(axis=0), x.std(axis=0)
    designs = [logistic.design(d.x, mean, sd) for d in data]
    pooled = logistic.fit_pooled(np.vstack(designs), np.concatenate([d.y for d in data]), 1e-3)
    weights = [len(t.y) for t in data]

    def rounds(n: int, steps: int, mu: float) -> np.ndarray:
        w = np.zeros(x.shape[1] + 1)
        for _ in range(n):
            updates = [
                logistic.local_update(w, d, t.y, steps=steps, lr=0.5, l2=1e-3, mu=mu)
                for d, t in zip(designs, data, strict=True)
            ]
            w = np.average(updates, axis=0, weights=weights)
        return w

    # one local step per round is gradient descent on the pooled loss: the same minimum
    assert np.allclose(rounds(400, 1, 0.0), pooled, atol=0.01)
    # many local steps drift towards each site's own minimum (the sites differ), a little
    drift = np.abs(rounds(40, 20, 0.0) - pooled).max()
    assert 0.01 < drift < 0.15


def csv(path: Path, **columns: list[object]) -> Path:
    pacsv.write_csv(pa.table(columns), path)
    return path


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        ({"x": [1.0, 2.0], "y": [0, 1]}, "no label column 'outcome'"),
        ({"x": [1.0, 2.0], "outcome": [0, 2]}, "other than 0 and 1"),
        ({"x": ["a", "b"], "outcome": [0, 1]}, "not a number"),
        ({"x": [1.0, float("inf")], "outcome": [0, 1]}, "infinite"),
        ({"outcome": [0, 1]}, "no feature column"),
        ({"x": [1.0, 2.0], "outcome": ["yes", "no"]}, "not 0/1"),
    ],
)
def test_bad_feature_tables_are_refused(
    tmp_path: Path, columns: dict[str, list[object]], match: str
) -> None:
    with pytest.raises(TaskDefinitionError, match=match):
        table.load("s", csv(tmp_path / "t.csv", **columns), "outcome")


def test_unreadable_tables_and_mismatched_sites_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TaskDefinitionError, match="cannot read"):
        table.load("s", tmp_path / "absent.csv", "outcome")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(TaskDefinitionError, match="not a readable"):
        table.load("s", tmp_path / "junk.parquet", "outcome")
    (tmp_path / "empty.csv").write_text("x,outcome\n")
    with pytest.raises(TaskDefinitionError, match="no rows"):
        table.load("s", tmp_path / "empty.csv", "outcome")
    a = csv(tmp_path / "a.csv", x=[1.0, 2.0], outcome=[0, 1])
    b = csv(tmp_path / "b.csv", z=[1.0, 2.0], outcome=[0, 1])
    with pytest.raises(TaskDefinitionError, match="other columns"):
        run.federate_tables({"a": a, "b": b}, "outcome", tmp_path / "out")
    with pytest.raises(NotEnoughSitesError):
        run.federate_tables({"a": a}, "outcome", tmp_path / "out")
    with pytest.raises(FederationError, match="unknown strategy"):
        run.federate_tables({"a": a, "b": a}, "outcome", tmp_path / "o", run.Settings(strategy="x"))
    assert not (tmp_path / "out").exists()


def test_the_hub_refuses_wrong_shaped_and_non_finite_updates() -> None:
    assert apps.refusal([np.zeros(3)], 10, 3) == ""
    assert "wrong shape" in apps.refusal([np.zeros(4)], 10, 3)
    assert "wrong shape" in apps.refusal([np.zeros(3), np.zeros(3)], 10, 3)
    assert "wrong shape" in apps.refusal([np.zeros((3, 1))], 10, 3)
    assert apps.refusal([np.array([0.0, np.nan, 1.0])], 10, 3) == "non-finite parameters"
    assert apps.refusal([np.array([0.0, np.inf, 1.0])], 10, 3) == "non-finite parameters"
    assert apps.refusal([np.zeros(3)], 0, 3) == "no training rows"
    assert apps.refusal([np.zeros(3)], True, 3) == "no training rows"
    assert apps.refusal([np.zeros(3)], "10", 3) == "no training rows"


def test_pooled_scaling_ignores_hidden_columns_and_needs_the_same_columns() -> None:
    one = (["a", "b"], np.array([10.0, -1]), np.array([20.0, 0]), np.array([50.0, 0]))
    two = (["a", "b"], np.array([30.0, 40]), np.array([90.0, 40]), np.array([300.0, 80]))
    columns, mean, sd = apps.pooled_scaling([one, two])  # b hidden at the first site
    assert columns == ["a", "b"]
    assert mean.tolist() == pytest.approx([110 / 40, 1.0])
    assert sd[0] == pytest.approx(np.sqrt(350 / 40 - (110 / 40) ** 2))
    other = (["a", "c"], *one[1:])
    with pytest.raises(SiteUpdateError, match="same columns"):
        apps.pooled_scaling([one, other])
