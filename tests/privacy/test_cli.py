"""The `pmhub privacy` verbs: thin, and their errors are one message with an exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pmhub.cli import main
from pmhub.privacy.text import synth
from tests.privacy.conftest import adult_dir, adult_policy, write_policy


def run(*argv: str) -> int:
    try:
        main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_anonymize_verb_writes_release_and_report(tmp_path, capsys):
    policy = write_policy(tmp_path, adult_policy())
    sample = tmp_path / "adult.csv"
    pd.read_csv(adult_dir() / "adult.csv", sep=";", dtype=str).head(3000).to_csv(
        sample, sep=";", index=False
    )
    code = run(
        "privacy",
        "anonymize",
        "--input",
        str(sample),
        "--policy",
        str(policy),
        "--out",
        str(tmp_path / "out"),
        "--format",
        "parquet",
    )
    assert code == 0
    assert "models hold: True" in capsys.readouterr().out
    assert len(pd.read_parquet(tmp_path / "out" / "adult.parquet")) == 3000
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["tables"]["adult"]["achieved"]["suppressed"] <= 30


def anonymize_ids(tmp_path: Path, project: str) -> int:
    """`pmhub privacy anonymize` of two records whose ids are pseudonymized."""
    frame = pd.DataFrame({"person_id": ["a", "b"], "x": ["1", "2"]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    raw = {
        "name": "p",
        "version": 1,
        "project": project,
        "columns": {"person_id": {"action": "pseudonym"}, "x": {"action": "keep"}},
    }
    return run(
        "privacy",
        "anonymize",
        "--input",
        str(tmp_path / "d.csv"),
        "--policy",
        str(write_policy(tmp_path, raw)),
        "--out",
        str(tmp_path / "out"),
    )


def test_anonymize_verb_with_too_little_memory_exits_79_and_writes_nothing(tmp_path, capsys):
    policy = write_policy(tmp_path, adult_policy())
    code = run(
        "privacy",
        "anonymize",
        "--input",
        str(adult_dir() / "adult.csv"),
        "--policy",
        str(policy),
        "--out",
        str(tmp_path / "out"),
        "--memory-limit",
        "1MB",
    )
    assert code == 79
    assert "--memory-limit" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_anonymize_verb_missing_key_exits_74_and_writes_nothing(tmp_path, capsys):
    assert anonymize_ids(tmp_path, "nokey") == 74
    err = capsys.readouterr().err
    assert "no pseudonymization key" in err
    assert "key-create" in err
    assert not (tmp_path / "out").exists()


def test_key_create_then_anonymize_pseudonymizes(tmp_path):
    assert run("privacy", "key-create", "--project", "proj1") == 0
    assert run("privacy", "key-create", "--project", "proj1") == 74  # never replaced
    assert anonymize_ids(tmp_path, "proj1") == 0
    out = pd.read_csv(tmp_path / "out" / "data.csv", dtype=str)
    assert not set(out["person_id"]) & {"a", "b"}


@pytest.mark.parametrize("project", ["../escape", "", "a b", "x" * 80])
def test_key_create_refuses_hostile_project_names(project, capsys):
    assert run("privacy", "key-create", "--project", project) == 74
    assert "not valid" in capsys.readouterr().err


def test_risk_verb(tmp_path, capsys):
    assert (
        run(
            "privacy",
            "risk",
            "--input",
            str(adult_dir() / "adult.csv"),
            "--qi",
            "sex,age,race",
            "--json",
        )
        == 0
    )
    risk = json.loads(capsys.readouterr().out)
    assert risk["records"] == 30162
    assert 0 < risk["prosecutor"]["average"] <= risk["prosecutor"]["highest"] <= 1


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--qi", "nope"], 76, "no column"),
        (["--qi", ","], 76, "at least one"),
        (["--qi", "sex", "--threshold", "2"], 76, "threshold"),
    ],
)
def test_risk_verb_bad_input(args, code, words, capsys):
    assert run("privacy", "risk", "--input", str(adult_dir() / "adult.csv"), *args) == code
    assert words in capsys.readouterr().err


def deid_text(tmp_path: Path, notes: Path, *extra: str) -> int:
    return run(
        "privacy",
        "deid-text",
        "--input",
        str(notes),
        "--out",
        str(tmp_path / "out"),
        "--project",
        "notes",
        *extra,
    )


def test_deid_text_and_evaluate_text_verbs(tmp_path, capsys):
    notes, spans = synth.write_notes(tmp_path / "in", 40, seed=2)
    assert run("privacy", "key-create", "--project", "notes") == 0
    assert deid_text(tmp_path, notes, "--mode", "surrogate") == 0
    assert "40 notes de-identified" in capsys.readouterr().out
    assert run("privacy", "evaluate-text", "--notes", str(notes), "--spans", str(spans)) == 0
    assert "NAME" in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "code"), [(["--mode", "shout"], 76), (["--max-days", "0"], 76)])
def test_deid_text_bad_options(tmp_path, extra, code):
    notes, _ = synth.write_notes(tmp_path / "in", 2, seed=2)
    run("privacy", "key-create", "--project", "notes")
    assert deid_text(tmp_path, notes, *extra) == code
    assert not (tmp_path / "out").exists()


def test_policy_in_yaml_with_a_bomb_is_refused(tmp_path, capsys):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    (tmp_path / "p.yaml").write_text(bomb, encoding="utf-8")
    code = run(
        "privacy",
        "anonymize",
        "--input",
        str(adult_dir() / "adult.csv"),
        "--policy",
        str(tmp_path / "p.yaml"),
        "--out",
        str(tmp_path / "out"),
    )
    assert code == 71
    assert not (tmp_path / "out").exists()
    assert yaml  # the policy loader uses yaml.safe_load: no object construction either
