"""`pmhub quality …`: thin verbs over the service, one-line errors with exit codes 60-69."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pmhub.quality.errors import (
    CheckFileError,
    NoQualityRunError,
    QualityError,
    SiteWithoutCdwError,
    UnknownCheckTypeError,
)
from pmhub.sites import Site
from tests.quality import cdw
from tests.quality.conftest import register
from tests.test_cli import run


def test_run_report_runs_and_compare(defects_site: Site, clean_site: Site, tmp_path: Path):
    code, out, err = run(
        "quality", "run", "--site", "defects", "--as-of", "2026-01-01", "--out", str(tmp_path)
    )
    assert code == 0, err
    assert "failed plausible_gender/condition_occurrence.condition_concept_id/4299535" in out
    assert "checks" in err  # the progress bars
    copies = list(tmp_path.glob("quality-defects-*.json"))
    assert len(copies) == 1
    assert {
        c["id"] for c in json.loads(copies[0].read_text())["checks"] if c["status"] == "fail"
    } == set(cdw.expected_failures())
    code, out, _ = run("quality", "runs", "--site", "defects")
    assert code == 0
    assert copies[0].name.split("-")[-1].removesuffix(".json") in out
    code, out, _ = run("quality", "report", "--site", "defects", "--html", str(tmp_path / "r.html"))
    assert code == 0
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>")
    assert run("quality", "run", "--site", "clean", "--as-of", "2026-01-01")[0] == 0
    code, out, _ = run(
        "quality", "compare", "--sites", "defects,clean", "--html", str(tmp_path / "c.html")
    )
    assert code == 0
    assert "fails at defects only" in (tmp_path / "c.html").read_text()


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (
            ["run", "--site", "defects", "--as-of", "yesterday"],
            QualityError.exit_code,
            "not a date",
        ),
        (["run", "--site", "defects", "--top", "0"], QualityError.exit_code, "top_n"),
        (["run", "--site", "ghost"], SiteWithoutCdwError.exit_code, "has no CDW"),
        (
            ["report", "--site", "defects", "--html", "r.html"],
            NoQualityRunError.exit_code,
            "no quality run",
        ),
        (
            ["report", "--site", "defects", "--html", "r.html", "--run", "../x"],
            NoQualityRunError.exit_code,
            "not a run id",
        ),
        (
            ["compare", "--sites", "defects", "--html", "c.html"],
            QualityError.exit_code,
            "compare needs",
        ),
        (["run", "--site", "nobody"], 21, "unknown site"),
    ],
)
def test_errors_are_one_line_with_hint_and_exit_code(
    defects_site: Site, tmp_path: Path, args: list[str], exit_code: int, message: str
):
    register("ghost", tmp_path / "absent.duckdb")
    code, _, err = run("quality", *args)
    assert code == exit_code
    assert message in err
    assert "hint:" in err
    assert "Traceback" not in err


def test_check_file_errors_from_the_cli(defects_site: Site, tmp_path: Path):
    bad = tmp_path / "checks.yaml"
    bad.write_text(
        "version: 1\nchecks:\n- {type: vibes, category: completeness, subcategory: x, "
        "description: x, threshold: 1}\n"
    )
    code, _, err = run("quality", "run", "--site", "defects", "--checks", str(bad))
    assert code == UnknownCheckTypeError.exit_code
    assert "unknown check type 'vibes'" in err
    bad.write_text("version: 1\nchecks: [")
    code, _, err = run("quality", "run", "--site", "defects", "--checks", str(bad))
    assert code == CheckFileError.exit_code


def test_exit_codes_are_in_the_quality_range_and_unique():
    from pmhub.errors import all_error_classes
    from pmhub.quality import errors

    mine = [c for c in all_error_classes() if c.__module__ == errors.__name__]
    assert len(mine) == 8
    assert all(60 <= c.exit_code <= 69 for c in mine)
    assert len({c.exit_code for c in mine}) == len(mine)
    assert all(c.hint for c in mine)
