"""`pmhub synth`: a thin front door with clear errors and stable exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmhub.cli import main


def run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_generates_a_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "net"
    code = run(
        [
            "synth",
            "--sites",
            "2",
            "--patients",
            "40",
            "--years",
            "2",
            "--seed",
            "4",
            "--out",
            str(out),
            "--workers",
            "1",
        ]
    )
    assert code == 0
    assert (out / "chuncheon_univ" / "person.csv").is_file()
    assert "person.csv" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--patients", "0"], 91, "at least 1"),
        (["--years", "-3"], 91, "at least 1"),
        (["--format", "xml"], 92, "unknown output format"),
        (["--patients", "300000"], 94, "--force"),
        (["--sites", "40"], 94, "sites"),
    ],
)
def test_bad_input_exits_with_the_synth_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, text: str
) -> None:
    assert run(["synth", "--out", str(tmp_path / "o"), *args]) == code
    err = capsys.readouterr().err
    assert text in err
    assert "hint:" in err
    assert "Traceback" not in err


def test_non_empty_folder_needs_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x.txt").write_text("keep")
    assert run(["synth", "--out", str(tmp_path), "--patients", "5", "--years", "1"]) == 93
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "x.txt").read_text() == "keep"


def test_wrong_types_are_usage_errors(tmp_path: Path) -> None:
    assert run(["synth", "--out", str(tmp_path / "o"), "--patients", "many"]) == 2
