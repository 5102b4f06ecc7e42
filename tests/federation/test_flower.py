"""Federated learning with Flower: a SuperLink and three SuperNodes as real processes on
127.0.0.1, each reading only its own feature table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pmhub.federation import run
from pmhub.federation import simulate as tables
from pmhub.predict import evaluate
from tests.clirun import run_cli

pytestmark = pytest.mark.xdist_group("flower")


def truth_auroc(paths: dict[str, Path], settings: run.Settings) -> float:
    from pmhub.federation import table

    ys, risks = [], []
    for site, path in paths.items():
        data = table.load(site, path, "outcome")
        test = table.held_out(data.y, settings.test_share, settings.seed, site)
        ys.append(data.y[test])
        risks.append(np.load(path.with_suffix(".truth.npy"))[test])
    value = evaluate.auroc(np.concatenate(ys), np.concatenate(risks))
    assert value is not None
    return value


def test_federated_reaches_the_pooled_model_which_reaches_the_truth(tmp_path: Path) -> None:
    paths = tables.write(tmp_path)
    settings = run.Settings(rounds=3)  # what `pmhub federate --rounds 3` uses
    tabled = [f"--table={site}={path}" for site, path in paths.items()]
    out = tmp_path / "out"
    code, printed, err = run_cli(
        *["federate", *tabled], "--label", "outcome", "--rounds", "3", "--out", str(out)
    )
    assert code == 0, err
    assert "federated AUROC" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["pooled_auroc"] == pytest.approx(truth_auroc(paths, settings), abs=0.03)
    assert report["federated_auroc"] >= 0.99 * report["pooled_auroc"]
    assert set(report["sites"]) == set(paths)
    for site in paths:
        assert set(report["sites"][site]) == {"local", "federated", "pooled"}
        assert report["local_auroc"][site] > 0.6
    fed = report["federated"]
    assert [r["sites"] for r in fed["rounds"]] == [sorted(paths)] * 3
    assert fed["dropped"] == []
    assert set(fed["evaluation"]) == set(paths)  # metrics only, from each site
    assert all(
        set(m) <= {"num-examples", "auroc", "brier", "calibration_slope", "calibration_intercept"}
        for m in fed["evaluation"].values()
    )
    assert fed["bytes_per_round"] > 0
    assert (out / "flower" / "superlink.log").exists()  # each process's log in the run folder


def test_a_poisoned_site_is_refused_and_a_killed_site_does_not_hang_the_run(
    tmp_path: Path,
) -> None:
    paths = tables.write(tmp_path, seed=12)
    settings = run.Settings(
        rounds=3,
        local_steps=60,
        round_timeout=45,
        faults={"east": "nan"},
        kill_site=("south", "[ROUND 2/"),
    )
    report = run.federate_tables(paths, "outcome", tmp_path / "out", settings)
    rounds = report["federated"]["rounds"]
    assert all(r["refused"].get("east") == "non-finite parameters" for r in rounds)
    assert "south" in rounds[0]["sites"]
    assert report["federated"]["dropped"] == ["east", "south"]
    assert rounds[-1]["sites"] == ["north"]
    assert report["federated_auroc"] > 0.7  # north's updates alone still make a model
    assert "south" not in report["federated"]["evaluation"]
