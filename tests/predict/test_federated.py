"""pmhub federate TASK --site …: Flower over the generated network's CDWs, each SuperNode
building the task's population and covariates on its own CDW."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clirun import run_cli
from tests.predict.test_cli import register

pytestmark = pytest.mark.xdist_group("predict-network")


def test_federated_training_over_cdws_with_a_federated_dictionary(
    cdws: dict[str, Path], tmp_path: Path
) -> None:
    sites = register(cdws)
    out = tmp_path / "fed"
    args = ["federate", "t2dm_death", *[f"--site={s}" for s in sites], "--rounds", "2"]
    code, printed, err = run_cli(*args, "--out", str(out))
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["dictionary"]["features"] > 20  # fixed at the hub from released counts
    assert report["dictionary"]["dropped"] > 0  # rarer than min_persons over all sites
    assert [r["sites"] for r in report["federated"]["rounds"]] == [sorted(sites)] * 2
    assert report["federated_auroc"] > 0.7
    assert report["pooled_auroc"] > 0.7
    assert set(report["sites"]) == set(sites)
    assert "federated AUROC" in printed


def test_federate_needs_one_kind_of_input(tmp_path: Path) -> None:
    code, _, err = run_cli("federate", "--out", str(tmp_path))
    assert code == 7
    assert "one of the two" in err
    code, _, err = run_cli("federate", "t2dm_death", "--site", "nowhere", "--out", str(tmp_path))
    assert code == 21
