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

Lists that split a total (persons by sex, year of birth and age at first observation;
periods by length; a table's records by month, by source vocabulary and its top concepts)
are suppressed with the total as tables with a margin by :mod:`pmhub.disclosure`: a
small cell is hidden with a partner, so that the total less the shown cells does not
give it back (what a list leaves out of its total counts as one more cell, never shown).

The CDW's URL and the check file's path, which name machines and folders, are left out.
"""

from __future__ import annotations

import copy
from pathlib import PurePath
from typing import Any

from pmhub.disclosure import Line, protect
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
    for check in d.get("checks", []):
        _check(s, check)
    p = d.get("profiles", {})
    if p:
        _profiles(s, p, totals)
    released = {row[0]: row[1] for row in p.get("records_per_domain", [])} if p else {}
    d["row_counts"] = {t: released.get(t, s.cut(n)) for t, n in totals.items()}
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


Part = tuple[list[list[Any]], int]  # rows of a list, and the position of its count


def _split(
    s: _Suppressor,
    totals: dict[str, Any],
    parts: dict[str, list[Part]],
    links: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    """Suppress totals and the lists that split them together; write the lists back and
    return the totals as released. ``links`` are (total, part-of-it) pairs between totals
    (the persons with an observation period are some of the persons)."""
    values: dict[Any, int] = {}
    lines: list[Line[Any]] = []
    never: list[Any] = []
    for name, total in totals.items():
        if not isinstance(total, int):
            continue
        values[("total", name)] = total
    for name, lists in parts.items():
        if ("total", name) not in values:
            continue
        for li, (rows, pos) in enumerate(lists):
            keys = [(name, li, ri) for ri in range(len(rows))]
            for key, row in zip(keys, rows, strict=True):
                values[key] = int(row[pos] or 0)
            other = values[("total", name)] - sum(values[k] for k in keys)
            if other < 0:  # not a split of this total after all: the cells stand alone
                continue
            if other == 0:  # the list is the whole total (a reader may know it is)
                lines.append(Line(("total", name), tuple(keys)))
                continue
            values[(name, li, "other")] = other
            never.append((name, li, "other"))
            lines.append(Line(("total", name), (*keys, (name, li, "other"))))
    for whole, part in links:
        if ("total", whole) in values and ("total", part) in values:
            rest = values[("total", whole)] - values[("total", part)]
            if rest >= 0:
                values[("link", whole, part)] = rest
                never.append(("link", whole, part))
                lines.append(Line(("total", whole), (("total", part), ("link", whole, part))))
    cells = protect(values, lines, s.threshold, unreleased=never).cells
    s.cells += sum(1 for c in cells.values() if c.hidden)
    for name, lists in parts.items():
        for li, (rows, pos) in enumerate(lists):
            for ri, row in enumerate(rows):
                if (name, li, ri) in cells:
                    row[pos] = cells[(name, li, ri)].value
    return {
        name: cells[("total", name)].value if ("total", name) in cells else value
        for name, value in totals.items()
    }


def _profiles(s: _Suppressor, p: dict[str, Any], totals: dict[str, int]) -> None:
    persons = p.get("persons", {})
    periods = p.get("observation_periods", {})
    shown_persons = _split(
        s,
        {
            "persons": persons.get("total"),
            "observed": periods.get("persons"),
            "periods": periods.get("periods"),
        },
        {
            "persons": [
                (persons.get("by_year_of_birth", []), 1),
                (persons.get("by_gender", []), 2),
            ],
            "observed": [(persons.get("age_at_first_observation", []), 1)],
            "periods": [(periods.get("length_years", []), 1)],
        },
        [("persons", "observed")],
    )
    if persons:
        persons["total"] = shown_persons["persons"]
    for key, name in (("persons", "observed"), ("periods", "periods")):
        if key in periods:
            periods[key] = shown_persons[name]
    if "length_days" in periods:
        s.stats(periods["length_days"])
    for stats in p.get("records_per_person", {}).values():
        s.stats(stats)
    tables = set(totals) | set(p.get("top_concepts", {})) | set(p.get("records_per_month", {}))
    shown_rows: dict[str, Any] = {}
    for table in sorted(tables | set(p.get("source_vocabularies", {}))):
        top = p.get("top_concepts", {}).get(table, [])
        shown_rows.update(
            _split(
                s,
                {table: totals.get(table)},
                {
                    table: [
                        (top, 2),
                        (p.get("records_per_month", {}).get(table, []), 1),
                        (p.get("source_vocabularies", {}).get(table, []), 1),
                    ]
                },
            )
        )
        s.column(top, 3)  # persons per concept: no list of them adds up to anything shown
    for row in p.get("records_per_domain", []):
        row[1] = shown_rows.get(row[0], s.cut(row[1]))  # the table's rows, as released
        row[2] = s.cut(row[2])
    for row in p.get("visit_types", []):
        if s.small(row[3]):
            row[4] = None  # the mean length of a few persons' visits
        row[2], row[3] = s.cut(row[2]), s.cut(row[3])
    for stats in p.get("measurement_values", []):
        s.stats(stats)
    for table, fields in p.get("missingness", {}).items():
        total = totals.get(table, 0)
        for name, pct in fields.items():
            nulls = round(pct * total / 100) if isinstance(pct, int | float) else None
            if nulls is not None and (s.small(total) or s.small(nulls) or s.small(total - nulls)):
                s.cells += 1
                fields[name] = None
