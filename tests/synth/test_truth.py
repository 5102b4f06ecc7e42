"""Ground truth: true hazards and risks of the standard tasks, best achievable AUROC,
and events that depend on risk factors and treatment exactly as documented."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmhub.synth import params as pm
from pmhub.synth import truth
from pmhub.synth.service import SynthResult
from pmhub.synth.step import event_hazard

from .conftest import read_csv


def brute_auroc(score: list[float], outcome: list[int]) -> float:
    pairs = [
        (i, j)
        for i, j in itertools.product(range(len(score)), repeat=2)
        if outcome[i] == 1 and outcome[j] == 0
    ]
    wins = sum(
        1.0 if score[i] > score[j] else 0.5 if score[i] == score[j] else 0.0 for i, j in pairs
    )
    return wins / len(pairs)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1)), min_size=2, max_size=30).filter(
        lambda rows: 0 < sum(o for _, o in rows) < len(rows)
    )
)
def test_auroc_matches_the_pairwise_definition(rows: list[tuple[int, int]]) -> None:
    score = [float(s) for s, _ in rows]
    outcome = [o for _, o in rows]
    got = truth.auroc(np.array(score), np.array(outcome))
    assert got == pytest.approx(brute_auroc(score, outcome))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.05, 0.1, 0.3, 0.5, 0.9, 1.0]), min_size=2, max_size=12))
def test_expected_auroc_matches_its_definition(risks: list[float]) -> None:
    p = np.array(risks)
    num = den = 0.0
    for i, j in itertools.permutations(range(len(p)), 2):
        weight = p[i] * (1 - p[j])
        den += weight
        num += weight * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    got = truth.expected_auroc(p)
    if den == 0:
        assert got is None
    else:
        assert got == pytest.approx(num / den)


def test_task_files_hold_cohorts_with_true_risks(omop_net: SynthResult) -> None:
    folder = omop_net.folder / "ground_truth"
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    patients = {r["patient_key"]: r for r in read_csv(folder / "patients.csv")}
    for task in truth.TASKS:
        rows = read_csv(folder / f"task_{task.name}.csv")
        assert list(rows[0]) == list(truth.TASK_COLUMNS)
        assert summary[task.name]["cohort"] == len(rows)
        assert summary[task.name]["events"] == sum(int(r["outcome"]) for r in rows)
        for row in rows:
            risk = float(row["true_risk"])
            assert 0.0 <= risk <= 1.0
            assert float(row["true_annual_hazard"]) > 0
            assert row["patient_key"] in patients
            assert patients[row["patient_key"]]["birth_date"] < row["index_date"]
            if row["outcome"] == "1":
                assert row["index_date"] <= row["outcome_date"]
            else:
                assert row["outcome_date"] == ""
    t2dm = read_csv(folder / "task_t2dm_mi_1y.csv")
    assert all(r["t2dm"] == "1" for r in t2dm)
    assert len(t2dm) > 20


def test_risk_models_are_shipped_with_the_output(omop_net: SynthResult) -> None:
    models = json.loads(
        (omop_net.folder / "ground_truth" / "risk_models.json").read_text(encoding="utf-8")
    )
    assert models["events"]["isch_stroke"]["log_hr"]["anticoag_warfarin"] == pytest.approx(-1.02)
    assert set(models["chronic"]) == set(pm.CHRONIC)


def _covariates(n: int, **values: float) -> dict[str, Any]:
    x = {name: np.zeros(n) for name in pm.COVARIATES}
    for name, value in values.items():
        x[name] = np.full(n, value)
    return x


@pytest.mark.parametrize(
    ("event", "covariate", "value"),
    [
        ("isch_stroke", "anticoag_warfarin", 1.0),
        ("isch_stroke", "anticoag_doac", 1.0),
        ("isch_stroke", "af", 1.0),
        ("mi", "current_smoker", 1.0),
        ("mi", "ldl_per_mmol", -1.5),  # what a statin does to LDL-C
        ("mi", "sbp_per_10", -1.3),  # what an antihypertensive does to systolic BP
        ("haem_stroke", "anticoag_warfarin", 1.0),
    ],
)
def test_event_hazards_move_by_the_documented_hazard_ratio(
    event: str, covariate: str, value: float
) -> None:
    age = np.array([55.0, 70.0, 85.0])
    female = np.array([False, True, False])
    base = event_hazard(event, age, female, _covariates(3))
    changed = event_hazard(event, age, female, _covariates(3, **{covariate: value}))
    beta = pm.load().events[event].log_hr[covariate]
    assert changed == pytest.approx(base * np.exp(beta * value))
