"""One site's stored quality run as a single self-contained HTML file."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from pmhub import __version__, palette
from pmhub.disclosure import MARK, note
from pmhub.quality import svg
from pmhub.quality.errors import QualityOutputError, QualityResultsError
from pmhub.quality.profiles import QUANTILE_KEYS
from pmhub.quality.store import FORMAT, write_atomic
from pmhub.quality.suppress import shareable

MAX_FAILED_IN_CHART = 25


def num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return f"{int(value):,}"


def pct(value: Any) -> str:
    if value is None:
        return "–"
    v = float(value)
    return f"{v:.0f}" if v.is_integer() else f"{v:.3g}" if v < 0.01 else f"{v:.2f}"


@cache
def environment(mark: str = "–") -> Environment:
    """The templates; ``mark`` is what a missing number shows: "–" in the site-internal
    report, the suppression mark in a shareable one (None there is a hidden cell)."""
    env = Environment(
        loader=PackageLoader("pmhub.quality", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda value: mark if value is None else num(value)
    env.filters["pct"] = lambda value: mark if value is None else pct(value)
    env.globals["version"] = __version__
    env.globals["quantile_keys"] = QUANTILE_KEYS
    return env


def _month(ym: int) -> str:
    return f"{ym // 100:04d}-{ym % 100:02d}"


def site_charts(p: dict[str, Any]) -> dict[str, Markup]:
    persons, periods = p["persons"], p["observation_periods"]
    return {
        "sex": svg.shares(
            [("persons", [(name, n) for _, name, n in persons["by_gender"]])], "persons by sex"
        ),
        "birth": svg.columns(
            [(str(y), n) for y, n in persons["by_year_of_birth"]], "persons by year of birth"
        ),
        "age": svg.columns(
            [(str(a), n) for a, n in persons["age_at_first_observation"]],
            "persons by age at first observation",
        ),
        "period": svg.columns(
            [(f"{y} y", n) for y, n in periods["length_years"]], "observation period length"
        ),
        "domains": svg.hbars([(t, n) for t, n, _ in p["records_per_domain"]], "records per table"),
        "months": svg.lines(
            [
                (t, [(_month(m), n) for m, n in rows])
                for t, rows in p["records_per_month"].items()
                if t != "observation_period"
            ],
            "records per month",
        ),
        "vocabularies": svg.shares(
            [(t, [(v, n) for v, n in rows]) for t, rows in p["source_vocabularies"].items()],
            "source codes by vocabulary",
            colour=palette.vocabulary,
        ),
    }


def check_document(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise QualityResultsError(f"not a pmhub quality result ({FORMAT})")
    for key in ("site", "run_id", "summary", "checks", "profiles", "cdm"):
        if key not in document:
            raise QualityResultsError(f"the quality result has no {key!r}")
    return document


def render_site(document: dict[str, Any], min_cell: int, *, exact: bool = False) -> str:
    """The site's report, suppressed as everything shown is (:func:`shareable`); with
    ``exact``, the site-internal report of exact counts (it says so, and names the
    threshold)."""
    d = check_document(document)
    if not exact:
        d = shareable(d, min_cell)
    failed = sorted(
        (c for c in d["checks"] if c["status"] == "fail"),
        key=lambda c: (
            c["category"],
            c["pct_violated"] is None,
            -(c["pct_violated"] or 0),
            c["id"],
        ),
    )
    by_category: dict[str, list[dict[str, Any]]] = {}
    for c in d["checks"]:
        if c["status"] in ("pass", "fail"):
            by_category.setdefault(c["category"], []).append(c)
    shown = failed[:MAX_FAILED_IN_CHART]
    chart = svg.hbars(
        [(c["id"].split("/", 1)[1], c["pct_violated"]) for c in shown],
        "percent of rows violating, failed checks",
        tips=[f"{c['id']}: {c['description']}" for c in shown],
        unit=" %",
    )
    return (
        environment("–" if exact else MARK)
        .get_template("report.html.j2")
        .render(
            d=d,
            p=d["profiles"],
            failed=failed,
            errors=[c for c in d["checks"] if c["status"] == "error"],
            by_category=by_category,
            failed_chart=chart,
            charts=site_charts(d["profiles"]),
            min_cell=min_cell,
            suppression_note=note(min_cell),
        )
    )


def write_html(path: Path, html: str) -> Path:
    if path.suffix.lower() not in (".html", ".htm"):
        raise QualityOutputError(f"{path} does not end in .html")
    write_atomic(path, html.encode("utf-8", "replace"), make_folder=False)  # lone surrogate → ?
    return path
