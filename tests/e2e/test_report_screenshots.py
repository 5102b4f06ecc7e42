"""Every HTML report in a real browser (Debian's headless chromium, driven by Playwright):
a full-page screenshot of each is kept as a test artifact, and the page is checked as a
reader sees it: titles, axis labels and legends present and inside their charts, and no
count below the small-cell threshold in any table, chart label or sentence. The terminal
output of the verbs that wrote them is scanned the same way.

Screenshots go to ``$PMHUB_TEST_ARTIFACTS/screenshots`` when that is set, else to the
test's temporary folder (its path is printed).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pmhub.cdm import schema
from pmhub.cohorts import benchdata
from pmhub.disclosure import MARK
from pmhub.settings import load_settings
from pmhub.sites import SiteRegistry
from tests.clirun import run_cli
from tests.e2e import scan

CHROMIUM = Path("/usr/bin/chromium")
THRESHOLD = 10
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is absent (Debian's chromium package); no "
    "browser is downloaded for these tests",
)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, str]]]:
    """Each report's file and the terminal output of the verb that wrote it, from two
    sites of generated data (one small, so that small cells occur)."""
    home = tmp_path_factory.mktemp("home")
    out = tmp_path_factory.mktemp("reports")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PMHUB_HOME", str(home))
        patch.setenv("PMHUB_CONFIG", str(home / "pmhub.toml"))
        registry = SiteRegistry(load_settings())
        for name, persons, seed in (("chuncheon_univ", 4000, 1), ("jeongseon_county", 900, 2)):
            with registry.add(name).connect() as backend:
                schema.init_cdm(backend, source_name=name, abbreviation=name, holder=name)
                benchdata.load(backend, persons, seed)
        verbs: dict[str, list[str]] = {
            "attrition": ["cohort", "run", "atrial_fibrillation", "--site", "chuncheon_univ"],
            "table1": [
                "cohort",
                "characterize",
                "type2_diabetes",
                "metformin_new_users",
                "--site",
                "jeongseon_county",
            ],
            "incidence": [
                "cohort",
                "incidence",
                "type2_diabetes",
                "stroke",
                "--site",
                "jeongseon_county",
            ],
            "survival": [
                "cohort",
                "survival",
                "type2_diabetes",
                "stroke",
                "--site",
                "chuncheon_univ",
            ],
            "network": [
                "cohort",
                "survival",
                "type2_diabetes",
                "stroke",
                "--all-sites",
                "--plot",
                str(out / "network.png"),
            ],
            "network-attrition": ["cohort", "run", "atrial_fibrillation", "--all-sites"],
            "quality": ["quality", "report", "--site", "jeongseon_county"],
            "quality-sites": ["quality", "compare", "--sites", "chuncheon_univ,jeongseon_county"],
        }
        runs = []
        for site in ("chuncheon_univ", "jeongseon_county"):
            code, stdout, err = run_cli("quality", "run", "--site", site)
            assert code == 0, err
            runs.append(stdout)
        made = {"quality-runs": (out, "\n".join(runs))}
        for name, args in verbs.items():
            path = out / f"{name}.html"
            code, stdout, err = run_cli(*args, "--html", str(path))
            assert code == 0, err
            made[name] = (path, stdout)
        yield made


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = os.environ.get("PMHUB_TEST_ARTIFACTS")
    folder = Path(root) / "screenshots" if root else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


# What a reader sees of the page: visible text of every element marked as a count, the
# SVG labels, and whether any chart text sticks out of its chart.
PAGE = """() => {
  const rect = (e) => e.getBoundingClientRect();
  const texts = [...document.querySelectorAll('svg text')];
  const outside = texts.filter((t) => {
    const svg = rect(t.ownerSVGElement), r = rect(t);
    return r.width > 0 && (r.left < svg.left - 1 || r.right > svg.right + 1 ||
                           r.top < svg.top - 1 || r.bottom > svg.bottom + 1);
  }).map((t) => t.textContent);
  return {
    title: document.title,
    h1: document.querySelector('h1') ? document.querySelector('h1').innerText : '',
    text: document.body.innerText,
    counts: [...document.querySelectorAll('.count')].map((e) => e.innerText ?? e.textContent),
    svgTexts: texts.map((t) => t.textContent),
    charts: document.querySelectorAll('svg').length,
    untitled: [...document.querySelectorAll('svg')].filter(
      (s) => !s.querySelector('title') && !s.getAttribute('aria-label') &&
             !s.querySelector('text')).length,
    outside: outside,
    legends: [...document.querySelectorAll('svg text.legend')].map((t) => t.textContent),
  };
}"""

NAMES = (
    "attrition",
    "table1",
    "incidence",
    "survival",
    "network",
    "network-attrition",
    "quality",
    "quality-sites",
)


@pytest.mark.parametrize("name", NAMES)
def test_a_report_reads_well_and_shows_no_small_count(
    name: str, reports: dict[str, tuple[Path, str]], browser: Any, artifacts: Path
) -> None:
    path, terminal = reports[name]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(path.as_uri())
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
        seen = page.evaluate(PAGE)
    finally:
        page.close()
    assert (artifacts / f"{name}.png").stat().st_size > 10_000
    assert seen["title"]
    assert seen["h1"]
    assert seen["untitled"] == 0  # every chart says what it shows
    assert seen["outside"] == []  # no label or legend clipped by its chart
    assert "fewer than 10" in seen["text"]  # the page says what was suppressed
    assert seen["counts"], "the page marks its counts"
    assert scan.in_cells(seen["counts"], THRESHOLD) == []
    assert scan.in_text(seen["text"], THRESHOLD) == []
    values = [t for t in seen["svgTexts"] if t.strip()]
    assert scan.in_text(" ".join(values), THRESHOLD) == []
    assert scan.terminal(terminal, THRESHOLD) == []


def test_the_survival_report_names_its_outcome_and_has_a_band_and_numbers_at_risk(
    reports: dict[str, tuple[Path, str]], browser: Any
) -> None:
    path, terminal = reports["survival"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(path.as_uri())
        seen = page.evaluate(PAGE)
    finally:
        page.close()
    svg_text = " ".join(seen["svgTexts"])
    assert "Stroke after Type 2 diabetes mellitus" in svg_text  # the title
    assert "survival free of Stroke" in svg_text  # the outcome on the axis
    assert "95 % CI" in svg_text  # the band is in the legend
    assert "Number at risk" in svg_text
    assert "Number at risk" in seen["text"]
    assert "subjects" in terminal
    assert " events" in terminal


def test_the_network_report_and_plot_are_written_with_all_sites(
    reports: dict[str, tuple[Path, str]],
) -> None:
    path, terminal = reports["network"]
    html = path.read_text(encoding="utf-8")
    assert "Persons by site" in html
    assert "Pooled survival (life table)" in html
    assert "pooled incidence" in html
    assert (path.parent / "network.png").read_bytes()[:4] == b"\x89PNG"
    assert "plot written to" in terminal
    assert "Persons by site" in reports["network-attrition"][0].read_text(encoding="utf-8")


def test_the_quality_runs_print_no_small_count(reports: dict[str, tuple[Path, str]]) -> None:
    terminal = reports["quality-runs"][1]
    assert "failed" in terminal  # the small site fails checks on a few rows
    assert scan.in_text(terminal, THRESHOLD) == []
    for line in terminal.splitlines():
        found = re.search(r"failed \S+: (\S+) of", line)
        if found and found.group(1) != MARK:
            assert (
                int(found.group(1).replace(",", "")) == 0
                or int(found.group(1).replace(",", "")) >= THRESHOLD
            ), line


def test_the_comparison_gives_each_site_one_colour(
    reports: dict[str, tuple[Path, str]],
) -> None:
    from pmhub import palette

    html = reports["quality-sites"][0].read_text()
    for site in ("chuncheon_univ", "jeongseon_county"):
        assert palette.colour(site) in html
    assert palette.colour("chuncheon_univ") != palette.colour("jeongseon_county")


def test_each_report_is_kept_beside_its_screenshot(
    artifacts: Path, reports: dict[str, tuple[Path, str]]
) -> None:
    for path, _ in reports.values():
        if path.is_dir():
            continue
        shutil.copy(path, artifacts / path.name)
        assert "fewer than 10" in (artifacts / path.name).read_text(encoding="utf-8")
