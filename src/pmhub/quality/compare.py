"""Sites side by side: what differs between their CDWs before anyone pools or federates.

The comparison reads only the stored aggregates of each site's latest run, made shareable
first (:func:`pmhub.quality.suppress.shareable`, the same as the ``--out`` export): counts
below the small-cell threshold (settings.small_cell_threshold) are shown as "<N" and left
out of shares and distributions, since this view leaves the sites' custody.

Rules for what is highlighted (each difference names the sites and numbers):
- a check fails at some sites and passes at others;
- a measurement concept's most common unit differs between sites;
- the most common source vocabulary of a table differs, or a vocabulary's share differs by
  more than SHARE_POINTS percentage points;
- a field's share of NULL differs by more than SHARE_POINTS points;
- the share of women differs by more than SEX_POINTS points;
- a measurement's median (same concept and unit) differs by more than MEDIAN_RATIO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from pmhub import palette
from pmhub.disclosure import MARK
from pmhub.quality import svg
from pmhub.quality.report import check_document, environment
from pmhub.quality.suppress import shareable

SHARE_POINTS = 20.0
SEX_POINTS = 10.0
MEDIAN_RATIO = 1.2
FEMALE = 8532


@dataclass(frozen=True)
class Difference:
    topic: str  # checks | units | coding | missingness | demographics | distributions
    what: str
    detail: str


class Comparison:
    def __init__(self, documents: Sequence[dict[str, Any]], min_cell: int) -> None:
        self.docs = [shareable(check_document(d), min_cell) for d in documents]
        self.sites = [d["site"] for d in self.docs]
        self.min_cell = min_cell
        self.differences: list[Difference] = []

    def cell(self, n: int | None) -> str:
        """A count as shown: the suppressed (None, or below the threshold) marked."""
        if n is None or 0 < n < self.min_cell:
            return MARK
        return f"{n:,}"

    def shown(self, n: int | None) -> int:
        """A count as shares and distributions may use it: small cells count as 0."""
        return n if n is not None and n >= self.min_cell else 0

    # --- checks ---------------------------------------------------------------------

    def checks(self) -> list[dict[str, Any]]:
        by_id: dict[str, dict[str, dict[str, Any]]] = {}
        for d in self.docs:
            for c in d["checks"]:
                by_id.setdefault(c["id"], {})[d["site"]] = c
        rows = []
        for check_id, per_site in sorted(by_id.items()):
            statuses = {s: per_site[s]["status"] for s in per_site}
            judged = {s: st for s, st in statuses.items() if st in ("pass", "fail")}
            if "fail" in judged.values() and "pass" in judged.values():
                failing = sorted(s for s, st in judged.items() if st == "fail")
                self.differences.append(
                    Difference("checks", check_id, f"fails at {', '.join(failing)} only")
                )
                rows.append({"id": check_id, "sites": per_site, "differs": True})
            elif "fail" in judged.values():
                rows.append({"id": check_id, "sites": per_site, "differs": False})
        return rows

    # --- units ----------------------------------------------------------------------

    def units(self) -> list[dict[str, Any]]:
        concepts: dict[int, dict[str, Any]] = {}
        for d in self.docs:
            for m in d["profiles"]["measurement_values"]:
                entry = concepts.setdefault(
                    m["concept_id"], {"name": m["concept_name"], "sites": {}}
                )
                units = entry["sites"].setdefault(d["site"], {})
                units[m["unit_code"] or m["unit_name"]] = m["count"]  # None: suppressed
        rows = []
        for concept_id, entry in sorted(concepts.items(), key=lambda kv: kv[1]["name"]):
            top = {
                s: max(u.items(), key=lambda kv: (self.shown(kv[1]), kv[0]))[0]
                for s, u in entry["sites"].items()
                if u
            }
            differs = len(set(top.values())) > 1
            if differs:
                said = ", ".join(f"{s}: {u}" for s, u in sorted(top.items()))
                self.differences.append(
                    Difference("units", f"{entry['name']} ({concept_id})", f"recorded in {said}")
                )
            rows.append({"concept_id": concept_id, **entry, "top": top, "differs": differs})
        return rows

    # --- coding ---------------------------------------------------------------------

    def _shares(self, counts: dict[str, int]) -> dict[str, float]:
        kept = {k: self.shown(n) for k, n in counts.items()}
        total = sum(kept.values())
        return {k: 100.0 * n / total for k, n in kept.items() if n} if total else {}

    def coding(self) -> list[dict[str, Any]]:
        tables = sorted({t for d in self.docs for t in d["profiles"]["source_vocabularies"]})
        rows = []
        for table in tables:
            per_site = {
                d["site"]: self._shares(
                    {v: n for v, n in d["profiles"]["source_vocabularies"].get(table, [])}
                )
                for d in self.docs
                if table in d["profiles"]["source_vocabularies"]
            }
            vocabularies = sorted({v for s in per_site.values() for v in s})
            differs = False
            tops = {s: max(sh, key=lambda v: sh[v]) for s, sh in per_site.items() if sh}
            if len(set(tops.values())) > 1:
                differs = True
                said = ", ".join(f"{s}: {v}" for s, v in sorted(tops.items()))
                self.differences.append(
                    Difference("coding", table, f"most source codes are {said}")
                )
            for v in vocabularies:
                values = [sh.get(v, 0.0) for sh in per_site.values()]
                if len(values) > 1 and max(values) - min(values) > SHARE_POINTS and not differs:
                    differs = True
                    self.differences.append(
                        Difference(
                            "coding",
                            f"{table}: {v}",
                            "share of source codes "
                            + ", ".join(f"{s}: {sh.get(v, 0):.0f} %" for s, sh in per_site.items()),
                        )
                    )
            rows.append(
                {
                    "table": table,
                    "vocabularies": vocabularies,
                    "sites": per_site,
                    "differs": differs,
                    "chart": svg.shares(
                        [(s, list(sh.items())) for s, sh in per_site.items()],
                        f"{table}: source codes by vocabulary",
                        colour=palette.vocabulary,
                    ),
                }
            )
        return rows

    # --- missingness ------------------------------------------------------------------

    def missingness(self) -> list[dict[str, Any]]:
        common = set.intersection(*(set(d["profiles"]["missingness"]) for d in self.docs))
        rows = []
        for table in sorted(common):
            fields = self.docs[0]["profiles"]["missingness"][table]
            for f in fields:
                values = {d["site"]: d["profiles"]["missingness"][table].get(f) for d in self.docs}
                known = [v for v in values.values() if v is not None]
                if len(known) > 1 and max(known) - min(known) > SHARE_POINTS:
                    self.differences.append(
                        Difference(
                            "missingness",
                            f"{table}.{f}",
                            "NULL in "
                            + ", ".join(
                                f"{s}: {v:.0f} %" for s, v in values.items() if v is not None
                            ),
                        )
                    )
                    rows.append({"field": f"{table}.{f}", "sites": values})
        return rows

    # --- demographics -------------------------------------------------------------------

    def demographics(self) -> list[dict[str, Any]]:
        rows = []
        for d in self.docs:
            persons = d["profiles"]["persons"]
            by_sex = {g: n for g, _, n in persons["by_gender"]}
            total, women = persons["total"], by_sex.get(FEMALE, 0)
            # a share of a hidden count is not computable: never a share of 0
            female = 100.0 * women / total if total and women is not None else None
            rows.append(
                {
                    "site": d["site"],
                    "persons": persons["total"],
                    "female_pct": female,
                    "median_age": _median(
                        persons["age_at_first_observation"],
                        d["profiles"].get("observation_periods", {}).get("persons"),
                    ),
                    "median_birth_year": _median(persons["by_year_of_birth"], total),
                    "sex": [(name, n) for _, name, n in persons["by_gender"]],
                }
            )
        shares = [r["female_pct"] for r in rows if r["female_pct"] is not None]
        if len(shares) > 1 and max(shares) - min(shares) > SEX_POINTS:
            self.differences.append(
                Difference(
                    "demographics",
                    "share of women",
                    ", ".join(
                        f"{r['site']}: {r['female_pct']:.0f} %"
                        for r in rows
                        if r["female_pct"] is not None
                    ),
                )
            )
        return rows

    # --- distributions ------------------------------------------------------------------

    def distributions(self) -> list[dict[str, Any]]:
        groups: dict[tuple[int, int | None], dict[str, Any]] = {}
        for d in self.docs:
            for m in d["profiles"]["measurement_values"]:
                if self.shown(m["count"]) == 0:
                    continue
                key = (m["concept_id"], m["unit_concept_id"])
                group = groups.setdefault(
                    key,
                    {
                        "name": m["concept_name"],
                        "unit": m["unit_code"] or m["unit_name"],
                        "sites": {},
                    },
                )
                group["sites"][d["site"]] = m
        rows = []
        for (concept_id, unit_id), g in sorted(groups.items(), key=lambda kv: kv[1]["name"]):
            if len(g["sites"]) < 2:
                continue
            medians = [abs(float(m["median"])) for m in g["sites"].values() if m["median"]]
            differs = (
                bool(medians) and min(medians) > 0 and max(medians) / min(medians) > MEDIAN_RATIO
            )
            if differs:
                self.differences.append(
                    Difference(
                        "distributions",
                        f"{g['name']} in {g['unit']}",
                        "median "
                        + ", ".join(f"{s}: {m['median']:g}" for s, m in g["sites"].items()),
                    )
                )
            rows.append(
                {
                    "concept_id": concept_id,
                    "unit_concept_id": unit_id,
                    **g,
                    "differs": differs,
                    "chart": svg.boxes(
                        [(s, m) for s, m in g["sites"].items()], f"{g['name']} ({g['unit']})"
                    ),
                }
            )
        return rows

    def months(self) -> Markup:
        series = []
        for d in self.docs:
            totals: dict[int, int | None] = {}
            for table, rows in d["profiles"]["records_per_month"].items():
                if table == "observation_period":
                    continue
                for month, n in rows:
                    before = totals.get(month, 0)
                    # a month with a hidden part has a hidden total, never a partial sum
                    totals[month] = None if n is None or before is None else before + n
            series.append(
                (
                    d["site"],
                    [(f"{m // 100}-{m % 100:02d}", n) for m, n in sorted(totals.items())],
                )
            )
        return svg.lines(series, "records per month by site")


def _median(histogram: list[list[Any]], total: int | None) -> int | None:
    """The median of a histogram whose hidden cells hold ``total`` less the shown ones
    between them: shown only when it is the same wherever that mass lies (all of it in
    the lowest hidden cell, or all in the highest), never as if hidden cells were 0."""
    hidden = [i for i, (_, n) in enumerate(histogram) if n is None]
    mass = None if total is None else total - sum(n or 0 for _, n in histogram)
    if hidden and (mass is None or mass < 0):
        return None
    ends = {_median_of(histogram, i, mass or 0) for i in (hidden[:1] + hidden[-1:])} or {
        _median_of(histogram, None, 0)
    }
    return ends.pop() if len(ends) == 1 else None


def _median_of(histogram: list[list[Any]], at: int | None, mass: int) -> int | None:
    counts = [
        (value, (n or 0) + (mass if i == at else 0)) for i, (value, n) in enumerate(histogram)
    ]
    total = sum(n for _, n in counts)
    if total == 0:
        return None
    seen = 0
    for value, n in counts:
        seen += n
        if value is not None and seen * 2 >= total:
            return int(value)
    return None


def render_comparison(documents: Sequence[dict[str, Any]], min_cell: int) -> str:
    c = Comparison(documents, min_cell)
    sections = {
        "checks": c.checks(),
        "demographics": c.demographics(),
        "units": c.units(),
        "coding": c.coding(),
        "missingness": c.missingness(),
        "distributions": c.distributions(),
    }
    sex_chart = svg.shares([(r["site"], r["sex"]) for r in sections["demographics"]], "sex")
    return (
        environment()
        .get_template("compare.html.j2")
        .render(
            c=c,
            docs=c.docs,
            s=sections,
            differences=c.differences,
            months=c.months(),
            sex_chart=sex_chart,
        )
    )
