"""The `pmhub` command: verbs, one-line errors with hints and stable exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pmhub.errors import InvalidCdwUrlError, InvalidSiteNameError, SiteExistsError, UnknownSiteError
from tests.clirun import run_cli


def run(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    return run_cli(*args)


def test_help_lists_the_verbs():
    code, out, _ = run("--help")
    assert code == 0
    for verb in ("sites", "cdm", "vocab"):
        assert verb in out


def test_sites_add_list_remove_round_trip(pmhub_home: Path):
    assert run("sites", "add", "wonju", "--title-ko", "원주병원", "--title-en", "Wonju")[0] == 0
    code, out, _ = run("sites", "list")
    assert code == 0
    assert "wonju" in out
    assert "원주병원" in out
    assert str((pmhub_home / "cdw" / "wonju.duckdb").resolve()) in out
    assert run("sites", "remove", "wonju")[0] == 0
    assert "no sites yet" in run("sites", "list")[1]


def test_cdm_init_then_status_shows_version_and_counts():
    run("sites", "add", "wonju")
    code, out, _ = run("cdm", "init", "--site", "wonju")
    assert code == 0, out
    assert "39 tables created" in out
    code, out, _ = run("cdm", "init", "--site", "wonju")
    assert "0 tables created" in out
    code, out, _ = run("cdm", "status", "--site", "wonju")
    assert code == 0
    assert "OMOP CDM v5.4" in out
    assert "concept_ancestor" in out


def test_vocab_load_from_the_cli(pmhub_home: Path):
    run("sites", "add", "wonju")
    run("cdm", "init", "--site", "wonju")
    athena = Path(__file__).parent / "cdm" / "fixtures" / "athena"
    code, out, err = run("vocab", "load", str(athena), "--site", "wonju")
    assert code == 0, err
    assert "concept: 12 rows" in out


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (
            ("cdm", "status", "--site", "nowhere"),
            UnknownSiteError.exit_code,
            "unknown site 'nowhere'",
        ),
        (("sites", "add", "Bad-Name"), InvalidSiteNameError.exit_code, "invalid site name"),
        (("sites", "add", "x" * 5000), InvalidSiteNameError.exit_code, "invalid site name"),
        (("sites", "add", "'; DROP TABLE person; --"), InvalidSiteNameError.exit_code, "invalid"),
        (("sites", "add", "a", "--cdw", "mysql://h/db"), InvalidCdwUrlError.exit_code, "scheme"),
        (
            ("sites", "add", "a", "--cdw", "duckdb://"),
            InvalidCdwUrlError.exit_code,
            "names no file",
        ),
        (
            ("sites", "add", "a", "--cdw", "postgresql:///db"),
            InvalidCdwUrlError.exit_code,
            "no host",
        ),
        (("sites", "remove", "ghost"), UnknownSiteError.exit_code, "unknown site"),
        (("vocab", "load", "/nonexistent", "--site", "ghost"), UnknownSiteError.exit_code, "ghost"),
    ],
)
def test_bad_input_is_one_message_with_a_hint_and_an_exit_code(args, exit_code, message):
    code, _, err = run(*args)
    assert code == exit_code
    assert message in err
    assert "hint:" in err
    assert "Traceback" not in err


def test_adding_a_site_twice_is_refused_and_keeps_the_first():
    run("sites", "add", "wonju", "--title-en", "first")
    code, _, err = run("sites", "add", "wonju", "--title-en", "second")
    assert "already registered" in err
    assert code == SiteExistsError.exit_code
    assert "first" in run("sites", "list")[1]


def test_cdm_status_before_init_says_to_run_init():
    run("sites", "add", "wonju")
    code, _, err = run("cdm", "status", "--site", "wonju")
    assert code == 33
    assert "pmhub cdm init --site NAME" in err


def test_unknown_option_is_a_usage_error():
    code, out, err = run("sites", "add")
    assert code == 2
    assert "Missing argument" in out + err


def test_real_entry_point_hides_the_traceback_unless_debug(tmp_path: Path):
    env = {**os.environ, "PMHUB_HOME": str(tmp_path / "home")}
    pmhub = [sys.executable, "-c", "from pmhub.cli import main; main()"]
    plain = subprocess.run(
        [*pmhub, "cdm", "status", "--site", "x"], env=env, capture_output=True, text=True
    )
    assert plain.returncode == UnknownSiteError.exit_code
    assert "Traceback" not in plain.stderr
    debug = subprocess.run(
        [*pmhub, "--debug", "cdm", "status", "--site", "x"], env=env, capture_output=True, text=True
    )
    assert debug.returncode == UnknownSiteError.exit_code
    assert "Traceback" in debug.stderr
