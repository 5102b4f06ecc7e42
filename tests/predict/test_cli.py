"""pmhub predict train|evaluate and pmhub federate from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clirun import run_cli

pytestmark = pytest.mark.xdist_group("predict-network")


def register(cdws: dict[str, Path]) -> list[str]:
    for name, path in cdws.items():
        code, _, err = run_cli("sites", "add", name, "--cdw", f"duckdb:///{path}")
        assert code == 0, err
    return list(cdws)


def test_train_then_evaluate_at_another_site(cdws: dict[str, Path], tmp_path: Path) -> None:
    sites = register(cdws)
    out = tmp_path / "model"
    code, printed, err = run_cli(
        "predict", "train", "t2dm_death", "--site", sites[0], "--site", sites[1], "--out", str(out)
    )
    assert code == 0, err
    assert "AUROC" in printed
    assert "held out" in printed
    assert "age at the index" in printed  # the explanations, in words
    assert json.loads((out / "manifest.json").read_text())["files"]
    code, printed, err = run_cli("predict", "evaluate", str(out), "--site", sites[2])
    assert code == 0, err
    assert sites[2] in printed
    assert "AUROC" not in err


def test_bad_input_is_one_message_and_an_exit_code(cdws: dict[str, Path], tmp_path: Path) -> None:
    sites = register(cdws)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: 1 bad\n")
    code, _, err = run_cli("predict", "train", str(bad), "--site", sites[0], "--out", "x")
    assert (code, "Traceback" in err) == (4, False)
    assert "not a valid prediction task" in err
    code, _, err = run_cli("predict", "train", "t2dm_death", "--site", "nowhere", "--out", "x")
    assert code == 21
    code, _, err = run_cli("predict", "train", "af_stroke", "--site", sites[1], "--out", "x")
    assert code == 5
    assert "too few to train" in err
    assert not Path("x").exists()
    code, _, err = run_cli("predict", "evaluate", str(tmp_path / "absent"), "--site", sites[0])
    assert code == 6
    code, _, err = run_cli("federate", "--table", "a", "--label", "y", "--out", str(tmp_path))
    assert code == 7
    assert "SITE=FILE" in err
    table = tmp_path / "t.csv"
    table.write_text("x,y\n1,0\n2,1\n")
    code, _, err = run_cli(
        "federate",
        "--table",
        f"a={table}",
        "--table",
        f"b={table}",
        "--label",
        "z",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 4
    assert "no label column 'z'" in err
