"""Table 1 of one or several generated cohorts, with standardized mean differences.

Features are read at each subject's first cohort entry: age and sex, conditions and
drugs recorded in the window before (default 365 days, index day included), the mean of
each measurement in that window, Charlson and CHA2DS2-VASc scores. Row-level features
stay in the site's process; what leaves is the table, suppressed by
:mod:`pmhub.disclosure`: counts below the small-cell threshold, and with them the counts
that would give them back from the cohort's size (a yes/no row's "no", the other age
groups).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pmhub.cohorts import concepts as concept_sets
from pmhub.cohorts import covariates as cv
from pmhub.cohorts import query_model as q
from pmhub.cohorts.engines import Engine
from pmhub.cohorts.errors import CohortNotGeneratedError
from pmhub.cohorts.planner import DOMAINS, PERSON, first_per_person
from pmhub.cohorts.query_model import Lit, col, eq, keep, lit_int
from pmhub.disclosure import Count, Line, Why, hidden, protect, shown, small

Key = tuple[str, str]

COHORT = q.Table(
    "cohort", ("cohort_definition_id", "subject_id", "cohort_start_date", "cohort_end_date")
)
AGE_GROUPS = (
    (0, 17, "<18"),
    (18, 39, "18-39"),
    (40, 64, "40-64"),
    (65, 74, "65-74"),
    (75, 200, "≥75"),
)


def first_entries(definition_id: int) -> q.Relation:
    """person_id, start_date, end_date of each subject's first entry in the cohort."""
    rows = q.Where(COHORT, eq(col("cohort_definition_id"), lit_int(definition_id)))
    renamed = q.Select(
        rows,
        (
            ("person_id", col("subject_id")),
            ("start_date", col("cohort_start_date")),
            ("end_date", col("cohort_end_date")),
        ),
    )
    return first_per_person(renamed, ("start_date", "end_date"))


def _demographics(entries: q.Relation) -> q.Relation:
    person = q.Select(
        PERSON,
        (
            ("p_person", col("person_id")),
            ("year_of_birth", col("year_of_birth")),
            ("gender", col("gender_concept_id")),
        ),
    )
    joined = q.Join(entries, person, eq(col("person_id"), col("p_person")))
    age = q.Sub(q.Year(col("start_date")), col("year_of_birth"))
    return q.Select(
        joined,
        (
            ("person_id", col("person_id")),
            ("start_date", col("start_date")),
            ("end_date", col("end_date")),
            ("age", age),
            ("gender", col("gender")),
        ),
    )


def _domain_features(
    entries: q.Relation, domain: str, groups: dict[str, tuple[int, ...]], window: int
) -> q.Relation:
    """Per subject: 1/0 for each condition or drug group; sum and count of each
    measurement group's values, in the window before the index."""
    table = DOMAINS[domain]
    columns = ["person_id", table.concept, table.start] + ([table.value] if table.value else [])
    wanted = tuple(sorted({c for ids in groups.values() for c in ids}))
    source = q.Where(q.Table(table.table, tuple(columns)), q.InValues(col(table.concept), wanted))
    renamed = q.Select(
        source,
        (
            ("e_person", col("person_id")),
            ("e_concept", col(table.concept)),
            ("e_date", col(table.start)),
            ("e_value", col(table.value) if table.value else Lit(None, "float")),
        ),
    )
    on = q.And(
        (
            eq(col("person_id"), col("e_person")),
            q.Cmp(">=", col("e_date"), q.AddDays(col("start_date"), lit_int(-window))),
            q.Cmp("<=", col("e_date"), col("start_date")),
        )
    )
    joined = q.Join(keep(entries, "person_id", "start_date"), renamed, on, how="left")
    aggs: list[tuple[str, q.Agg]] = []
    for key, ids in groups.items():
        hit = q.InValues(col("e_concept"), ids)
        if domain == "measurement":
            value = q.Case(hit, col("e_value"), Lit(None, "float"))
            aggs += [(f"{key}_sum", q.Agg("sum", value)), (f"{key}_n", q.Agg("count", value))]
        else:
            aggs.append((key, q.Agg("max", q.Case(hit, lit_int(1), lit_int(0)))))
    return q.Aggregate(joined, ("person_id",), tuple(aggs))


def _frame(engine: Engine, relation: q.Relation) -> pd.DataFrame:
    return pd.DataFrame(engine.rows(relation), columns=list(relation.columns))


def resolve_covariates(
    covariates: tuple[cv.Covariate, ...], engine: Engine
) -> dict[str, tuple[int, ...]]:
    """Each covariate's concepts: its ids and SNOMED codes with their descendants, less
    its exclusions (two queries for all of them). A group may resolve to nothing."""
    codes = {c for cov in covariates for c in (*cov.snomed, *cov.exclude_snomed)}
    by_code = concept_sets.snomed_ids(codes, engine)

    def coded(codes: tuple[str, ...]) -> set[int]:
        return set().union(*(by_code[c] for c in codes))

    roots = {
        cov.key: (set(cov.concepts) | coded(cov.snomed), coded(cov.exclude_snomed))
        for cov in covariates
    }
    tree = concept_sets.descendant_map(set().union(*(a | b for a, b in roots.values())), engine)

    def closure(concepts: set[int]) -> set[int]:
        return set().union(*(tree[c] for c in concepts))

    return {key: tuple(sorted(closure(inc) - closure(exc))) for key, (inc, exc) in roots.items()}


def person_features(engine: Engine, definition_id: int, window_days: int = 365) -> pd.DataFrame:
    """One row per subject: age, female, covariate flags, measurement means, scores."""
    entries = first_entries(definition_id)
    frame = _frame(engine, _demographics(entries))
    if frame.empty:
        raise CohortNotGeneratedError(f"cohort {definition_id} has no rows in this CDW")
    resolved_all = resolve_covariates(cv.ALL + cv.INDEX_CONDITIONS, engine)
    for domain in ("condition", "drug", "measurement"):
        resolved = {
            c.key: resolved_all[c.key]
            for c in cv.ALL + cv.INDEX_CONDITIONS
            if c.domain == domain and resolved_all[c.key]
        }
        features = _frame(engine, _domain_features(entries, domain, resolved, window_days))
        frame = frame.merge(features, on="person_id", how="left")
    for c in cv.ALL + cv.INDEX_CONDITIONS:  # groups without a concept at this site
        if c.key not in frame and c.domain != "measurement":
            frame[c.key] = 0
        elif c.domain == "measurement" and f"{c.key}_n" not in frame:
            frame[f"{c.key}_sum"], frame[f"{c.key}_n"] = np.nan, 0
    for c in cv.MEASUREMENTS:
        total, n = frame[f"{c.key}_sum"].astype(float), frame[f"{c.key}_n"].astype(float)
        frame[c.key] = np.where(n > 0, total / n.where(n > 0, 1), np.nan)
    frame["female"] = (frame["gender"] == 8532).astype(int)
    frame["age"] = frame["age"].astype(float)
    frame["charlson"] = charlson(frame)
    frame["chads_vasc"] = chads_vasc(frame)
    # engines return rows in any order; means of floats must not depend on it
    return frame.sort_values("person_id", kind="stable").reset_index(drop=True)


def _flag(frame: pd.DataFrame, *keys: str) -> pd.Series:
    present = [frame[k].fillna(0).astype(int) for k in keys]
    return pd.concat(present, axis=1).max(axis=1)


def charlson(frame: pd.DataFrame) -> pd.Series:
    """Deyo/Quan Charlson index: Charlson's weights over Quan's 17 conditions; a mild
    form does not count beside its severe form (see covariates.py)."""
    flags = {key: _flag(frame, key) for key in cv.CHARLSON_WEIGHTS}
    for severe, mild in cv.CHARLSON_HIERARCHY:
        flags[mild] = flags[mild] * (1 - flags[severe])
    score = pd.Series(0, index=frame.index)
    for key, weight in cv.CHARLSON_WEIGHTS.items():
        score += weight * flags[key]
    return score


def chads_vasc(frame: pd.DataFrame) -> pd.Series:
    """CHA2DS2-VASc: CHF 1, hypertension 1, age ≥75 2, diabetes 1, stroke/TIA/
    thromboembolism 2, vascular disease (MI or peripheral vascular disease) 1, age 65-74 1,
    female 1."""
    age = frame["age"]
    return (
        _flag(frame, "heart_failure")
        + _flag(frame, "hypertension")
        + 2 * (age >= 75).astype(int)
        + _flag(frame, "cci_diabetes", "cci_diabetes_complicated")  # not gestational
        + 2 * _flag(frame, "chads_stroke")
        + _flag(frame, "cci_mi", "cci_pvd")
        + ((age >= 65) & (age < 75)).astype(int)
        + frame["female"]
    )


# --- Table 1 ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """A count with its share, or a mean with its SD (``n`` the values it is of); the
    share or mean is None where ``n`` is hidden."""

    n: Count
    value: float | None  # share (0-1) of a binary row, mean of a continuous one
    sd: float | None = None


@dataclass
class Row:
    section: str
    label: str
    kind: str  # binary | continuous
    cells: list[Cell]
    smd: list[float | None] = field(default_factory=list)  # each cohort against the first


@dataclass
class Table1:
    cohorts: list[tuple[int, str, Count]]  # id, name, subjects
    rows: list[Row]
    threshold: int
    window_days: int


def _continuous(values: pd.Series, threshold: int, column_hidden: bool) -> Cell:
    present = values.dropna().astype(float)
    if column_hidden and len(present):
        return Cell(hidden(Why.COMPLEMENT), None, None)
    if small(len(present), threshold):
        return Cell(hidden(Why.SMALL), None, None)
    if not len(present):
        return Cell(shown(0), None, None)
    sd = float(present.std(ddof=1)) if len(present) > 1 else 0.0
    return Cell(shown(len(present)), float(present.mean()), sd)


def _binary_counts(
    frame: pd.DataFrame, specs: list[tuple[str, str, str, str]]
) -> tuple[dict[Key, int], list[Line[Key]]]:
    """Each yes/no row's counts, and the lines that tie them to the cohort's size: the
    "no" of a row is never shown, but the size minus the "yes" gives it, and the age
    groups add up to the size (with ages outside every group as one more cell)."""
    total = len(frame)
    values: dict[Key, int] = {("n", ""): total}
    lines: list[Line[Key]] = []
    for _, _, kind, column in specs:
        if kind == "binary":
            yes = int(frame[column].sum())
            values[("yes", column)], values[("no", column)] = yes, total - yes
            lines.append(Line(("n", ""), (("yes", column), ("no", column))))
    groups = tuple(("yes", f"age_{label}") for _, _, label in AGE_GROUPS)
    outside = total - sum(values[g] for g in groups)
    if outside:  # else the groups are the whole cohort, as a reader may know
        values[("no", "age group")] = outside
        groups = (*groups, ("no", "age group"))
    lines.append(Line(("n", ""), groups))
    return values, lines


def _column(
    frame: pd.DataFrame, specs: list[tuple[str, str, str, str]], threshold: int
) -> tuple[Count, list[Cell]]:
    """One cohort's column of Table 1, suppressed together with its margins."""
    values, lines = _binary_counts(frame, specs)
    never = [k for k in values if k[0] == "no"]
    released = protect(values, lines, threshold, unreleased=never).cells
    size = released[("n", "")]
    cells = []
    for _, _, kind, column in specs:
        if kind == "continuous":
            cells.append(_continuous(frame[column], threshold, size.hidden))
            continue
        count = released[("yes", column)]
        if size.hidden and not count.hidden and count.value:
            count = hidden(Why.COMPLEMENT)  # a share of a hidden size gives it back
        share = None if count.value is None or size.value is None else count.value / size.value
        cells.append(Cell(count, share if size.value else None))
    return size, cells


def smd(first: Cell, other: Cell, kind: str) -> float | None:
    """Standardized mean difference (other − first) with the pooled SD of the two."""
    if first.value is None or other.value is None:
        return None
    if kind == "binary":
        p1, p2 = first.value, other.value
        pooled = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 2)
    else:
        pooled = math.sqrt(((first.sd or 0.0) ** 2 + (other.sd or 0.0) ** 2) / 2)
    if pooled == 0:
        return 0.0 if first.value == other.value else None
    return (other.value - first.value) / pooled


def _row_specs() -> list[tuple[str, str, str, str]]:
    """(section, label, kind, column) of every Table 1 row."""
    specs = [("Demographics", "Age (years)", "continuous", "age")]
    specs.append(("Demographics", "Female", "binary", "female"))
    specs += [("Age group", label, "binary", f"age_{label}") for _, _, label in AGE_GROUPS]
    specs += [("Conditions (prior year)", c.label, "binary", c.key) for c in cv.CONDITIONS]
    specs += [("Drugs (prior year)", c.label, "binary", c.key) for c in cv.DRUGS]
    specs += [
        ("Measurements (prior-year mean)", c.label, "continuous", c.key) for c in cv.MEASUREMENTS
    ]
    specs += [
        ("Comorbidity", "Charlson comorbidity index", "continuous", "charlson"),
        ("Comorbidity", "CHA2DS2-VASc", "continuous", "chads_vasc"),
        ("Comorbidity", "CHA2DS2-VASc ≥ 2", "binary", "chads_vasc_2"),
    ]
    specs += [
        ("Charlson conditions (prior year)", f"CCI: {c.label}", "binary", c.key)
        for c in cv.CHARLSON_CONDITIONS
    ]
    return specs


def _derived(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for low, high, label in AGE_GROUPS:
        frame[f"age_{label}"] = frame["age"].between(low, high).astype(int)
    frame["chads_vasc_2"] = (frame["chads_vasc"] >= 2).astype(int)
    for c in cv.CONDITIONS + cv.DRUGS + cv.CHARLSON_CONDITIONS:
        frame[c.key] = frame[c.key].fillna(0).astype(int)
    return frame


def table1(
    frames: list[tuple[int, str, pd.DataFrame]], threshold: int, window_days: int = 365
) -> Table1:
    """Table 1 of the cohorts' feature frames; the first cohort is the SMD reference."""
    specs = _row_specs()
    columns = [(i, name, _column(_derived(f), specs, threshold)) for i, name, f in frames]
    rows = []
    for k, (section, label, kind, _) in enumerate(specs):
        cells = [column[1][k] for _, _, column in columns]
        rows.append(Row(section, label, kind, cells, [smd(cells[0], c, kind) for c in cells[1:]]))
    cohorts = [(i, name, column[0]) for i, name, column in columns]
    return Table1(cohorts, rows, threshold, window_days)


def characterize(
    engine: Engine, cohorts: list[tuple[int, str]], threshold: int, window_days: int = 365
) -> Table1:
    frames = [(i, name, person_features(engine, i, window_days)) for i, name in cohorts]
    return table1(frames, threshold, window_days)
