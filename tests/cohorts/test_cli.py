"""The `pmhub cohort` verbs, through the real entry point (exit codes and messages)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from pmhub.cdm import schema
from pmhub.cli import common, main
from pmhub.cohorts import benchdata
from pmhub.settings import load_settings
from pmhub.sites import SiteRegistry


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The real entry point, its consoles writing to a buffer (other tests swap them)."""
    out = io.StringIO()
    saved = common.console, common.err_console
    common.console = common.err_console = Console(file=out, width=200)
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        common.console, common.err_console = saved
    captured = capsys.readouterr()  # typer writes usage errors to the real streams
    return code, out.getvalue() + captured.out + captured.err


@pytest.fixture
def site() -> str:
    registry = SiteRegistry(load_settings())
    for name, seed in (("alpha", 1), ("beta", 2)):
        with registry.add(name).connect() as backend:
            schema.init_cdm(backend, source_name=name, abbreviation=name, holder=name)
            benchdata.load(backend, 2500, seed)
    return "alpha"


def test_list_and_validate_library_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "cohort", "list")
    assert code == 0
    assert "type2_diabetes" in out
    code, out = run(capsys, "cohort", "validate", "type2_diabetes")
    assert code == 0
    assert "valid" in out
    assert "concept set t2dm" in out


@pytest.mark.parametrize(
    ("text", "code", "expected"),
    [
        ("format_version: 1\nid: 1\n", 81, "entry: Field required"),
        ("format_version: 9\n", 82, "newer than this pmhub reads"),
        ("!!python/object/apply:os.system ['echo pwned']\n", 81, "neither valid JSON nor YAML"),
        ("- a\n- b\n", 81, "a mapping, not list"),
        (
            "format_version: 1\nid: 1\nname: x\nconcept_sets:\n"
            "  - {id: c, items: [{concept_id: 999999999}]}\n"
            "entry: {criteria: [{domain: condition, concept_set: c}]}\n",
            83,
            "concept_sets[0].items[0].concept_id: unknown concept id 999999999",
        ),
    ],
)
def test_validate_refuses_bad_definitions_with_a_hint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, code: int, expected: str
) -> None:
    path = tmp_path / "def.yaml"
    path.write_text(text)
    got, out = run(capsys, "cohort", "validate", str(path))
    assert got == code, out
    assert expected in out
    assert "hint:" in out
    assert "Traceback" not in out
    assert "pwned" not in out


def test_validate_a_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "cohort", "validate", "no/such/definition.yaml")
    assert code == 81
    assert "cannot read cohort definition" in out


def test_validate_against_a_site_vocabulary(capsys: pytest.CaptureFixture[str], site: str) -> None:
    code, out = run(capsys, "cohort", "validate", "atrial_fibrillation", "--site", site)
    assert code == 0, out
    assert "concept set af: 1 concepts" in out


def test_run_at_a_site_and_at_all_sites(
    capsys: pytest.CaptureFixture[str], site: str, tmp_path: Path
) -> None:
    html = tmp_path / "attrition.html"
    code, out = run(capsys, "cohort", "run", "type2_diabetes", "--site", site, "--html", str(html))
    assert code == 0, out
    assert "site alpha (duckdb): Type 2 diabetes mellitus:" in out
    lines = [ln for ln in out.splitlines() if "│" in ln]
    steps = [ln.split("│")[1].strip() for ln in lines]
    assert steps[:3] == ["entry events", "adult at diagnosis", "no type 1 diabetes before"]
    page = html.read_text()
    assert "<h2>Attrition</h2>" in page
    assert "no type 1 diabetes before" in page
    code, out = run(capsys, "cohort", "run", "type2_diabetes", "--all-sites")
    assert code == 0, out
    assert "alpha, beta" in out
    assert "persons in all" in out


@pytest.mark.parametrize(
    "args",
    [
        ("cohort", "run", "stroke"),
        ("cohort", "run", "stroke", "--site", "alpha", "--all-sites"),
        ("cohort", "incidence", "atrial_fibrillation", "stroke"),
        ("cohort", "survival", "atrial_fibrillation", "stroke", "-s", "a", "--plot", "k.pdf"),
        ("cohort", "characterize", "stroke", "--site", "a", "--window", "-5"),
        ("cohort", "characterize", "--site", "a"),
    ],
)
def test_usage_errors(capsys: pytest.CaptureFixture[str], args: tuple[str, ...]) -> None:
    code, out = run(capsys, *args)
    assert code == 2
    assert "Traceback" not in out


def test_unknown_site(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "cohort", "run", "stroke", "--site", "nowhere")
    assert code == 21
    assert "unknown site 'nowhere'" in out


def test_characterize_with_an_html_report(
    capsys: pytest.CaptureFixture[str], site: str, tmp_path: Path
) -> None:
    html = tmp_path / "t1.html"
    code, out = run(
        capsys,
        "cohort",
        "characterize",
        "type2_diabetes",
        "metformin_new_users",
        "--site",
        site,
        "--html",
        str(html),
    )
    assert code == 0, out
    assert "CHA2DS2-VASc" in out
    text = html.read_text()
    assert "<h2>Table 1</h2>" in text
    assert "New users of metformin" in text


def test_incidence_and_survival_with_plots(
    capsys: pytest.CaptureFixture[str], site: str, tmp_path: Path
) -> None:
    code, out = run(capsys, "cohort", "incidence", "atrial_fibrillation", "stroke", "--site", site)
    assert code == 0, out
    assert "overall" in out
    png, html = tmp_path / "km.png", tmp_path / "km.html"
    code, out = run(
        capsys,
        "cohort",
        "survival",
        "atrial_fibrillation",
        "stroke",
        "--site",
        site,
        "--plot",
        str(png),
        "--html",
        str(html),
    )
    assert code == 0, out
    assert "survival at 365 days" in out
    assert png.read_bytes().startswith(b"\x89PNG")
    assert html.read_text().count("<svg") == 2
    code, out = run(capsys, "cohort", "survival", "atrial_fibrillation", "stroke", "--all-sites")
    assert code == 0, out
    assert "pooled" in out


def test_a_spark_site_is_registered_and_refused_where_only_sql_cdws_serve(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "person.parquet").write_bytes(b"")  # the other tables are missing
    code, out = run(capsys, "sites", "add", "lake", "--cdw", f"spark:///{lake}")
    assert code == 0, out
    code, out = run(capsys, "cdm", "status", "--site", "lake")
    assert code == 36, out
    assert "is a Spark site" in out
    assert "hint:" in out
    code, out = run(capsys, "cohort", "run", "type2_diabetes", "--site", "lake")
    assert code == 33, out  # refused before any Spark session starts
    assert "lacks observation_period.parquet, concept.parquet, concept_ancestor.parquet" in out
    code, out = run(capsys, "sites", "add", "bad", "--cdw", "spark://")
    assert code == 31, out


def test_export_parquet_writes_a_folder_a_spark_site_registers(
    capsys: pytest.CaptureFixture[str], site: str, tmp_path: Path
) -> None:
    folder = tmp_path / "lake"
    code, out = run(capsys, "cohort", "export-parquet", str(folder), "--site", site)
    assert code == 0, out
    said = " ".join(out.split())  # the console wraps long lines
    assert f"register it: `pmhub sites add NAME --cdw spark:///{folder}`" in said
    assert (folder / "person.parquet").is_file()
    assert (folder / "concept_ancestor.parquet").is_file()
    code, out = run(capsys, "sites", "add", "lake", "--cdw", f"spark:///{folder}")
    assert code == 0, out
