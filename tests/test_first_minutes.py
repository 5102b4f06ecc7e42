"""A new user's first verbs: read-only verbs leave nothing behind, output off a terminal is
not cut at 80 columns, and `--help` does not load the analysis stack."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pmhub.cli.common import UNWRAPPED_WIDTH, make_console
from tests.clirun import run_cli

READ_ONLY = [
    ["--help"],
    ["--version"],
    ["sites", "list"],
    ["cohort", "list"],
    ["cohort", "validate", "type2_diabetes"],
    ["quality", "runs", "--site", "nowhere"],
    ["cdm", "status", "--site", "nowhere"],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a))
def test_read_only_verbs_create_no_platform_home(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "not-yet"
    monkeypatch.setenv("PMHUB_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(*args)
    assert "Traceback" not in err
    assert code in (0, 21), err  # 21: the unknown site, said plainly
    assert not home.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_adding_a_site_creates_the_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "new-home"
    monkeypatch.setenv("PMHUB_HOME", str(home))
    code, _, err = run_cli("sites", "add", "wonju")
    assert code == 0, err
    assert (home / "sites.json").exists()


def test_output_off_a_terminal_is_not_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # set by some shells and tools; off a terminal, ignored
    buffer = io.StringIO()
    console = make_console(buffer)
    long_path = "/srv/pmhub/" + "a" * 150 + "/춘천대학교병원-품질보고서.html"
    console.print(f"data quality: {long_path}")
    assert console.width == UNWRAPPED_WIDTH
    assert long_path in buffer.getvalue()


def test_help_does_not_import_the_analysis_stack() -> None:
    code = (
        "import sys\n"
        "from pmhub.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('scipy', 'pandas', 'duckdb', 'lifelines', 'matplotlib', "
        "'numpy', 'pyarrow', 'sqlglot') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    env = {**os.environ, "PMHUB_HOME": "/nonexistent/pmhub-home"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert "HEAVY []" in out, out
