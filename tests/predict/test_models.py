"""Models and metrics on data drawn from a known risk model: the truth is the limit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from pmhub.predict import evaluate, explain, models
from pmhub.predict.covariates import Feature, FeatureDictionary
from pmhub.predict.task import ModelSettings
from pmhub.synth.truth import auroc as truth_auroc

COEF = np.array([1.2, -0.8, 0.6, 0.0, 0.0, 0.9])


def draw(n: int, seed: int, shift: float = 0.0) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    dense = np.column_stack(
        [
            rng.normal(shift, 1, n),
            rng.normal(0, 1, n),
            rng.integers(0, 2, n),
            rng.integers(0, 2, n),
            rng.normal(0, 1, n),
            (rng.random(n) < 0.1).astype(float),
        ]
    )
    risk = models.expit(-2.5 + dense @ COEF)
    y = (rng.random(n) < risk).astype(int)
    return sp.csr_matrix(dense), y, risk


def dictionary() -> FeatureDictionary:
    return FeatureDictionary(
        [Feature(f"f{i}", f"feature {i}", "test", 0, 0, "value") for i in range(len(COEF))]
    )


@pytest.mark.parametrize("kind", ["lasso", "ridge", "lightgbm"])
def test_a_model_comes_close_to_the_true_risks_ranking(kind: str) -> None:
    x, y, _ = draw(6000, seed=1)
    xt, yt, truth = draw(4000, seed=2)
    model = models.fit(x, y, ModelSettings.model_validate({"kind": kind, "seed": 3}))
    p = model.predict(xt)
    limit = evaluate.auroc(yt, truth)
    assert limit is not None
    assert evaluate.auroc(yt, p) == pytest.approx(limit, abs=0.03)
    m = evaluate.evaluate(yt, p, bootstrap=0)
    # recalibrated on out-of-fold predictions: balanced weights do not inflate the risks
    assert m.mean_predicted == pytest.approx(m.observed_rate, abs=0.02)
    assert m.calibration_slope is not None
    assert 0.75 < m.calibration_slope < 1.3


def test_the_same_seed_gives_the_same_model_and_another_seed_another_split() -> None:
    x, y, _ = draw(3000, seed=4)
    one = models.fit(x, y, ModelSettings.model_validate({"kind": "lightgbm", "seed": 5}))
    two = models.fit(x, y, ModelSettings.model_validate({"kind": "lightgbm", "seed": 5}))
    assert models.dumps(one) == models.dumps(two)
    again = models.Fitted.from_json(one.to_json())
    assert np.array_equal(again.predict(x[:50]), one.predict(x[:50]))


def test_lasso_drops_the_features_without_effect() -> None:
    x, y, _ = draw(8000, seed=6)
    model = models.fit(x, y, ModelSettings.model_validate({"kind": "lasso", "seed": 1}))
    assert model.coef is not None
    strong = np.abs(model.coef[[0, 1, 5]])
    noise = np.abs(model.coef[[3, 4]])
    assert strong.min() > 5 * noise.max(initial=1e-3)


def test_true_risks_are_calibrated_and_shifted_risks_are_not() -> None:
    _, y, truth = draw(20000, seed=7)
    intercept, slope = evaluate.calibration(y, truth)
    assert intercept == pytest.approx(0, abs=0.1)
    assert slope == pytest.approx(1, abs=0.1)
    over = models.expit(models.logit(truth) + 1.0)  # every risk's odds times e
    intercept, _ = evaluate.calibration(y, over)
    assert intercept == pytest.approx(-1.0, abs=0.1)
    spread = models.expit(2 * models.logit(truth))  # too extreme: slope about 1/2
    _, slope = evaluate.calibration(y, spread)
    assert slope == pytest.approx(0.5, abs=0.07)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 1)), min_size=2, max_size=60))
def test_auroc_agrees_with_the_generators_rank_formula(pairs: list[tuple[float, int]]) -> None:
    p = np.array([a for a, _ in pairs])
    y = np.array([b for _, b in pairs])
    expected = truth_auroc(p, y)
    got = evaluate.auroc(y, p)
    assert (got is None) == (expected is None)
    if got is not None:
        assert got == pytest.approx(expected)


def test_bootstrap_interval_holds_the_estimate_and_is_repeatable() -> None:
    _, y, truth = draw(2000, seed=8)
    one = evaluate.evaluate(y, truth, bootstrap=100, seed=1)
    two = evaluate.evaluate(y, truth, bootstrap=100, seed=1)
    assert one.auroc_low is not None
    assert one.auroc_high is not None
    assert one.auroc is not None
    assert one.auroc_low < one.auroc < one.auroc_high
    assert (one.auroc_low, one.auroc_high) == (two.auroc_low, two.auroc_high)
    assert sum(b.persons for b in one.calibration) == 2000
    assert sum(b.observed for b in one.calibration) == int(y.sum())


def test_net_benefit_of_treating_everyone_is_prevalence_less_the_harm() -> None:
    y = np.array([1, 0, 0, 0])
    assert evaluate.net_benefit(y, np.ones(4), 0.2) == pytest.approx(0.25 - 0.75 * 0.25)
    assert evaluate.net_benefit(y, np.zeros(4), 0.2) == 0


def test_linear_shap_values_add_up_to_the_log_odds_and_are_named() -> None:
    x, y, _ = draw(3000, seed=9)
    model = models.fit(x, y, ModelSettings.model_validate({"kind": "ridge", "seed": 1}))
    values = explain.shap_values(model, x[:20], x)
    mean_score = model.shift + model.scale * model.score(x).mean()
    total = values.sum(axis=1) + mean_score
    assert np.allclose(total, models.logit(model.predict(x[:20])), atol=1e-6)
    top = explain.global_importance(explain.shap_values(model, x, x), dictionary())
    assert top[0].feature == "feature 0"
    assert {c.key for c in top} >= {"f0", "f1", "f5"}
    mine = explain.patient(values[0], dictionary(), top=3)
    assert len(mine) == 3
    assert all(c.feature.startswith("feature ") for c in mine)


def test_tree_shap_values_add_up_to_the_trees_log_odds() -> None:
    x, y, _ = draw(3000, seed=10)
    model = models.fit(x, y, ModelSettings.model_validate({"kind": "lightgbm", "seed": 1}))
    values = explain.shap_values(model, x[:30], x)
    shap = pytest.importorskip("shap")
    base = shap.TreeExplainer(model._load_booster()).expected_value
    base = float(np.ravel(base)[-1])
    total = values.sum(axis=1) + model.shift + model.scale * base
    assert np.allclose(total, models.logit(model.predict(x[:30])), atol=1e-4)
