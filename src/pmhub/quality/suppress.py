"""Small-cell suppression of a stored run, for everything that leaves the site.

A run as stored under the platform home holds exact counts: it stays at the site, and the
site's own report shows them (and says so). What leaves the site — the ``--out`` export for
the hub and the cross-site comparison — goes through :func:`shareable` first, so that both
suppress the same cells the same way, as the cohorts layer does: a count from 1 to
``threshold - 1`` becomes ``null`` (0 stays 0: an empty cell is not a small one), together
with every figure that would give it back:

- a check's violating rows and percent when the violating or the non-violating rows are a
  small cell (the denominator is shown unless it is small itself);
- every statistic of a distribution (min, percentiles, max, mean, sd) whose count is small;
- a visit type's mean length when its persons are a small cell;
- a field's percent NULL when its NULL or non-NULL rows are a small cell, or the table's.

The CDW's URL and the check file's path, which name machines and folders, are left out.
Known limit: no complementary suppression — a suppressed cell can sometimes be recovered
by subtracting the shown cells of a list from a shown total.
"""

from __future__ import annotations

import copy
from pathlib import PurePath
from typing import Any

from pmhub.quality.profiles import QUANTILE_KEYS

STAT_KEYS = ("count", "min", *QUANTILE_KEYS, "max", "mean", "sd")
KEY = "small_cells"  # {"threshold": T, "suppressed": cells}: present only in shareable copies


class _Suppressor:
    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.cells = 0

    def small(self, n: Any) -> bool:
        return isinstance(n, int) and 0 < n < self.threshold

    def cut(self, n: Any) -> Any:
        if self.small(n):
            self.cells += 1
            return None
        return n

    def column(self, rows: list[list[Any]], *positions: int) -> None:
        for row in rows:
            for i in positions:
                row[i] = self.cut(row[i])

    def stats(self, stats: dict[str, Any]) -> None:
        if self.small(stats.get("count")):
            self.cells += 1
            for key in STAT_KEYS:
                if key in stats:
                    stats[key] = None


def shareable(document: dict[str, Any], threshold: int) -> dict[str, Any]:
    """A copy of a run in which no count below ``threshold`` (nor what gives it back) is left."""
    done = document.get(KEY)
    if isinstance(done, dict) and int(done.get("threshold", 0)) >= threshold:
        return copy.deepcopy(document)  # already suppressed at least as far
    d = copy.deepcopy(document)
    s = _Suppressor(threshold)
    totals = dict(d.get("row_counts", {}))
    d["row_counts"] = {t: s.cut(n) for t, n in totals.items()}
    for check in d.get("checks", []):
        _check(s, check)
    p = d.get("profiles", {})
    if p:
        _profiles(s, p, totals)
    if isinstance(d.get("cdm"), dict):
        d["cdm"].pop("url", None)
    if d.get("check_file"):
        d["check_file"] = PurePath(str(d["check_file"])).name
    d[KEY] = {"threshold": threshold, "suppressed": s.cells}
    return d


def _check(s: _Suppressor, c: dict[str, Any]) -> None:
    violated, denominator = c.get("violated"), c.get("denominator")
    rest = (
        denominator - violated
        if isinstance(violated, int) and isinstance(denominator, int)
        else None
    )
    if s.small(violated) or s.small(rest):
        s.cells += 1
        c["violated"] = c["pct_violated"] = None
    c["denominator"] = s.cut(denominator)


def _profiles(s: _Suppressor, p: dict[str, Any], totals: dict[str, int]) -> None:
    persons = p.get("persons", {})
    persons["total"] = s.cut(persons.get("total"))
    s.column(persons.get("by_year_of_birth", []), 1)
    s.column(persons.get("by_gender", []), 2)
    s.column(persons.get("age_at_first_observation", []), 1)
    periods = p.get("observation_periods", {})
    for key in ("periods", "persons"):
        periods[key] = s.cut(periods.get(key))
    if "length_days" in periods:
        s.stats(periods["length_days"])
    s.column(periods.get("length_years", []), 1)
    for stats in p.get("records_per_person", {}).values():
        s.stats(stats)
    s.column(p.get("records_per_domain", []), 1, 2)
    for rows in p.get("top_concepts", {}).values():
        s.column(rows, 2, 3)
    for row in p.get("visit_types", []):
        if s.small(row[3]):
            row[4] = None  # the mean length of a few persons' visits
        row[2], row[3] = s.cut(row[2]), s.cut(row[3])
    for rows in p.get("records_per_month", {}).values():
        s.column(rows, 1)
    for stats in p.get("measurement_values", []):
        s.stats(stats)
    for rows in p.get("source_vocabularies", {}).values():
        s.column(rows, 1)
    for table, fields in p.get("missingness", {}).items():
        total = totals.get(table, 0)
        for name, pct in fields.items():
            nulls = round(pct * total / 100) if isinstance(pct, int | float) else None
            if nulls is not None and (s.small(total) or s.small(nulls) or s.small(total - nulls)):
                s.cells += 1
                fields[name] = None
