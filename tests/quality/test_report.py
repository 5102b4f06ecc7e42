"""HTML reports: self-contained (no script, no network), escaped, and showing what the
checks and profiles found; the comparison highlights what differs between sites."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pmhub.quality import service
from pmhub.quality.errors import NoQualityRunError, QualityError, QualityOutputError
from pmhub.settings import load_settings
from pmhub.sites import Site, SiteRegistry
from tests.quality import cdw
from tests.quality.conftest import register

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _offline(html: str) -> None:
    assert "<script" not in html.lower()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html, re.I)
    assert "<svg" in html


def test_site_report_shows_failed_checks_and_profiles(defects_site: Site, tmp_path: Path):
    run = service.run_quality("defects", as_of=cdw.AS_OF)
    path = service.write_report("defects", tmp_path / "report.html")
    html = path.read_text(encoding="utf-8")
    _offline(html)
    for check_id in cdw.expected_failures():
        assert check_id in html
    assert f"Failed checks ({len(cdw.expected_failures())})" in html
    assert "Defects Hospital" in html
    assert "결함병원" in html
    assert run.run_id in html
    assert "Systolic blood pressure" in html


def test_hostile_titles_are_escaped(defects_file: Path, tmp_path: Path):
    registry = SiteRegistry(load_settings())
    registry.add("evil", f"duckdb:///{defects_file}", title_en=HOSTILE, title_ko=HOSTILE)
    service.run_quality("evil", as_of=cdw.AS_OF)
    html = service.write_report("evil", tmp_path / "evil.html").read_text(encoding="utf-8")
    _offline(html)
    assert "&lt;script&gt;" in html
    assert "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")


def test_report_of_a_named_run_and_bad_paths(defects_site: Site, tmp_path: Path):
    first = service.run_quality("defects", as_of=cdw.AS_OF)
    service.run_quality("defects", as_of=cdw.AS_OF)
    html = service.write_report("defects", tmp_path / "a.html", run_id=first.run_id).read_text()
    assert first.run_id in html
    with pytest.raises(QualityOutputError, match=r"\.html"):
        service.write_report("defects", tmp_path / "report.txt")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(QualityOutputError, match="cannot write"):
        service.write_report("defects", blocker / "report.html")
    with pytest.raises(NoQualityRunError):
        service.write_report("defects", tmp_path / "b.html", run_id="20990101T000000000000Z")


def _mmol_rows() -> cdw.Rows:
    """The clean rows as a laboratory that reports glucose in mmol/L would."""
    rows = cdw.clean_rows()
    for m in rows["measurement"]:
        if m["measurement_concept_id"] == cdw.GLUCOSE:
            m["unit_concept_id"] = 8753
            m["unit_source_value"] = "mmol/L"
            m["value_as_number"] = round(m["value_as_number"] / 18.0, 2)
    return rows


def test_compare_highlights_units_checks_and_suppresses_small_cells(
    defects_site: Site, clean_site: Site, tmp_path: Path
):
    from tests.quality.conftest import build_duckdb

    register("mmol", build_duckdb(tmp_path / "mmol.duckdb", _mmol_rows()))
    for name in ("defects", "clean", "mmol"):
        service.run_quality(name, as_of=cdw.AS_OF)
    html = service.write_comparison(["defects", "clean", "mmol"], tmp_path / "c.html").read_text()
    _offline(html)
    glucose = "Glucose [Mass/volume] in Serum or Plasma (3004501)"
    assert glucose in html
    assert "recorded in clean: mg/dL, defects: mg/dL, mmol: mmol/L" in html
    assert "fails at defects only" in html
    # one result of glucose in kg at the defects site: a small cell
    assert 'kg: <span class="count">(s)</span>' in html
    assert 'kg: <span class="count">1<' not in html


def test_compare_from_documents_lists_each_difference():
    from pmhub.quality.compare import Comparison

    def doc(site: str, unit: str, median: float, women: int, null_pct: float) -> dict[str, object]:
        m = {
            "concept_id": 1,
            "concept_name": "Glucose",
            "unit_concept_id": 2,
            "unit_name": unit,
            "unit_code": unit,
            "count": 100,
            "median": median,
            "p10": median,
            "p25": median,
            "p75": median,
            "p90": median,
            "mean": median,
            "sd": 0.0,
        }
        return {
            "format": "pmhub-quality/1",
            "site": site,
            "run_id": "x",
            "summary": {},
            "cdm": {},
            "checks": [],
            "profiles": {
                "measurement_values": [m],
                "source_vocabularies": {},
                "missingness": {"person": {"race_source_value": null_pct}},
                "persons": {
                    "total": 100,
                    "by_gender": [[8532, "FEMALE", women], [8507, "MALE", 100 - women]],
                    "age_at_first_observation": [[40, 100]],
                    "by_year_of_birth": [[1980, 100]],
                },
                "records_per_month": {},
            },
        }

    c = Comparison([doc("a", "mg/dL", 100, 50, 0), doc("b", "mg/dL", 150, 20, 90)], min_cell=10)
    c.units()
    c.distributions()
    c.missingness()
    c.demographics()
    topics = sorted(d.topic for d in c.differences)
    assert topics == ["demographics", "distributions", "missingness"]
    same = Comparison([doc("a", "mg/dL", 100, 50, 0), doc("b", "mg/dL", 110, 55, 15)], min_cell=10)
    same.units()
    same.distributions()
    same.missingness()
    same.demographics()
    assert same.differences == []


@pytest.mark.parametrize("sites", [[], ["defects"], ["defects", "defects", " "], ["x"] * 21])
def test_compare_needs_two_to_twenty_sites(defects_site: Site, tmp_path: Path, sites: list[str]):
    with pytest.raises(QualityError, match="compare needs"):
        service.write_comparison(sites, tmp_path / "c.html")


def test_compare_of_a_site_without_a_run_is_refused(
    defects_site: Site, clean_site: Site, tmp_path: Path
):
    service.run_quality("defects", as_of=cdw.AS_OF)
    with pytest.raises(NoQualityRunError, match="'clean'"):
        service.write_comparison(["defects", "clean"], tmp_path / "c.html")
