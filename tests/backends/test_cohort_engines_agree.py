"""Hypothesis-generated definitions and data give the same cohort on every engine.

The reference engine defines the semantics; DuckDB and PostgreSQL must agree with it on
every example, Spark on a few (each Spark run costs seconds).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pmhub.cohorts.definition import Definition, parse
from tests.backends import harness
from tests.backends.conftest import SPARK, make_site
from tests.conftest import POSTGRES_ENV

CONCEPTS = {"t2dm": 201826, "t1dm": 201254, "hba1c": 3004410, "metformin": 1503297}
DOMAIN_OF = {"t2dm": "condition", "t1dm": "condition", "hba1c": "measurement", "metformin": "drug"}
ORIGIN = dt.date(2015, 1, 1)
PERSONS = range(1, 6)

days = st.integers(0, 720)
short = st.integers(0, 60)


def _date(offset: int) -> dt.date:
    return ORIGIN + dt.timedelta(days=offset)


@st.composite
def cdm_data(draw: st.DrawFn) -> harness.Rows:
    persons = [
        {
            "person_id": p,
            "year_of_birth": draw(st.integers(1940, 2010)),
            "gender_concept_id": draw(st.sampled_from([8507, 8532])),
            "race_concept_id": draw(st.sampled_from([8515, 0])),
            "ethnicity_concept_id": draw(st.sampled_from([38003563, 38003564, 0])),
        }
        for p in PERSONS
    ]
    periods = []
    for p in PERSONS:
        start = draw(st.integers(0, 300))
        first_end = start + draw(st.integers(0, 600))
        periods.append((p, start, first_end))
        if draw(st.booleans()):  # a second, later period
            second = first_end + draw(st.integers(1, 100))
            periods.append((p, second, second + draw(st.integers(0, 300))))
    tables: dict[str, list[dict[str, Any]]] = {
        "person": persons,
        "observation_period": [
            {
                "person_id": p,
                "observation_period_start_date": _date(s),
                "observation_period_end_date": _date(e),
            }
            for p, s, e in periods
        ],
        "condition_occurrence": [],
        "drug_exposure": [],
        "measurement": [],
        "death": [],
    }
    for _ in range(draw(st.integers(0, 30))):
        name = draw(st.sampled_from(sorted(CONCEPTS)))
        person, start, length = draw(st.sampled_from(PERSONS)), draw(days), draw(short)
        _add_event(tables, DOMAIN_OF[name], CONCEPTS[name], person, start, length, draw)
    for person in draw(st.sets(st.sampled_from(PERSONS), max_size=2)):
        tables["death"].append({"person_id": person, "death_date": _date(draw(days))})
    return {name: harness.complete(name, rows) for name, rows in tables.items()}


VISITS = st.sampled_from([None, 1, 2])  # visit_occurrence_id: same_visit compares them


def _add_event(
    tables: dict[str, list[dict[str, Any]]],
    domain: str,
    concept: int,
    person: int,
    start: int,
    length: int,
    draw: st.DrawFn,
) -> None:
    if domain == "condition":
        end = _date(start + length) if draw(st.booleans()) else None
        tables["condition_occurrence"].append(
            {
                "person_id": person,
                "condition_concept_id": concept,
                "condition_start_date": _date(start),
                "condition_end_date": end,
                "visit_occurrence_id": draw(VISITS),
            }
        )
    elif domain == "drug":
        tables["drug_exposure"].append(
            {
                "person_id": person,
                "drug_concept_id": concept,
                "drug_exposure_start_date": _date(start),
                "drug_exposure_end_date": _date(start + length),
                "days_supply": length + 1,
                "visit_occurrence_id": draw(VISITS),
            }
        )
    else:
        value = draw(st.one_of(st.none(), st.integers(40, 120).map(lambda v: v / 10)))
        tables["measurement"].append(
            {
                "person_id": person,
                "measurement_concept_id": concept,
                "measurement_date": _date(start),
                "value_as_number": value,
                "unit_concept_id": draw(st.sampled_from([8554, 8840])),
                "visit_occurrence_id": draw(VISITS),
            }
        )


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(CONCEPTS)))
    spec: dict[str, Any] = {
        "domain": DOMAIN_OF[name],
        "concept_set": name,
        "first_occurrence": draw(st.booleans()),
    }
    if DOMAIN_OF[name] == "measurement" and draw(st.booleans()):
        low = draw(st.integers(40, 100)) / 10
        spec["value"] = {"min": low, "max": low + draw(st.integers(0, 40)) / 10}
        if draw(st.booleans()):
            spec["unit_concept_ids"] = [8554]
    if draw(st.integers(0, 3)) == 0:
        spec["date_adjustment"] = {
            "start_with": draw(st.sampled_from(["start", "end"])),
            "start_offset": draw(st.integers(-30, 30)),
            "end_with": draw(st.sampled_from(["start", "end"])),
            "end_offset": draw(st.integers(-30, 30)),
        }
    return spec


def matches(size: int) -> st.SearchStrategy[Any]:
    """How many of ``size`` criteria must hold: all, any, or a count a group can reach
    (at most may ask for more than there are)."""
    return st.one_of(
        st.sampled_from(["all", "any"]),
        st.builds(
            lambda k, n: {k: n}, st.sampled_from(["at_least", "exactly"]), st.integers(0, size)
        ),
        st.builds(lambda n: {"at_most": n}, st.integers(0, size + 1)),
    )


@st.composite
def criterion(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    kinds = ["events", "events", "age", "sex", "race", "ethnicity"]
    kinds += ["group"] if depth < 2 else []
    kind = draw(st.sampled_from(kinds))
    if kind == "group":
        items = draw(st.lists(criterion(depth + 1), min_size=1, max_size=3))
        return {"group": {"match": draw(matches(len(items))), "criteria": items}}
    if kind == "age":
        low = draw(st.integers(0, 60))
        return {"age": {"min": low, "max": low + draw(st.integers(0, 60))}}
    if kind == "sex":
        return {"sex": [draw(st.sampled_from(["male", "female"]))]}
    if kind == "race":
        return {"race": draw(st.lists(st.sampled_from([8515, 0]), min_size=1, max_size=2))}
    if kind == "ethnicity":
        return {"ethnicity": [draw(st.sampled_from([38003563, 38003564, 0]))]}
    start = draw(st.one_of(st.none(), st.integers(-400, 100)))
    end = draw(st.one_of(st.none(), st.integers(start if start is not None else -400, 200)))
    count_kind = draw(st.sampled_from(["at_least", "at_most", "exactly"]))
    return {
        "events": draw(events()),
        "window": {
            "start": start,
            "end": end,
            "anchor": draw(st.sampled_from(["start", "end"])),
            "within_observation": draw(st.booleans()),
        },
        "count": {
            count_kind: draw(st.integers(0, 2)),
            "distinct": draw(st.sampled_from([None, "start_date", "visit", "concept"])),
        },
        "same_visit": draw(st.booleans()),
    }


@st.composite
def definitions(draw: st.DrawFn) -> Definition:
    exit_kind = draw(st.sampled_from(["end_of_observation", "fixed_offset", "era_end"]))
    exit_: dict[str, Any] = {"type": exit_kind}
    if exit_kind == "fixed_offset":
        exit_ |= {"anchor": draw(st.sampled_from(["start", "end"])), "days": draw(short)}
    elif exit_kind == "era_end":
        name = draw(st.sampled_from(sorted(CONCEPTS)))
        exit_ |= {
            "concept_set": name,
            "domain": DOMAIN_OF[name],
            "gap_days": draw(short),
            "offset_days": draw(st.integers(0, 10)),
        }
    rules = []
    for i in range(draw(st.integers(0, 2))):
        criteria = draw(st.lists(criterion(), min_size=1, max_size=2))
        rules.append(
            {"name": f"rule {i}", "match": draw(matches(len(criteria))), "criteria": criteria}
        )
    censoring = draw(st.lists(st.one_of(events(), st.just({"domain": "death"})), max_size=1))
    return parse(
        {
            "format_version": 1,
            "id": 9,
            "name": "generated",
            "concept_sets": [{"id": n, "items": [{"concept_id": c}]} for n, c in CONCEPTS.items()],
            "entry": {
                "criteria": draw(st.lists(events(), min_size=1, max_size=2)),
                "observation": {"prior_days": draw(short), "post_days": draw(short)},
                "limit": draw(st.sampled_from(["first", "all"])),
            },
            "inclusion_rules": rules,
            "limit": draw(st.sampled_from(["first", "all"])),
            "exit": exit_,
            "censoring": censoring,
            "era_pad_days": draw(st.integers(0, 30)),
        }
    )


def _agree(
    request: pytest.FixtureRequest,
    vocabulary: dict[str, pa.Table],
    kinds: tuple[str, ...],
    data: harness.Rows,
    definition: Definition,
) -> None:
    reference = make_site(request, "reference", vocabulary)
    reference.load_tables(data)
    expected = reference.run(definition)
    event(f"cohort rows: {min(len(expected), 3)}{'+' if len(expected) >= 3 else ''}")
    for kind in kinds:
        site = make_site(request, kind, vocabulary)
        site.load_tables(data)
        assert site.run(definition) == expected, kind


# PostgreSQL joins when a server is configured; DuckDB always runs
SQL_KINDS = ("duckdb", "postgresql") if os.environ.get(POSTGRES_ENV) else ("duckdb",)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=cdm_data(), definition=definitions())
def test_duckdb_and_postgresql_agree_with_the_reference(
    request: pytest.FixtureRequest,
    vocabulary: dict[str, pa.Table],
    data: harness.Rows,
    definition: Definition,
) -> None:
    _agree(request, vocabulary, SQL_KINDS, data, definition)


@pytest.mark.parametrize("kind", [SPARK])
@settings(
    max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=cdm_data(), definition=definitions())
def test_spark_agrees_with_the_reference(
    request: pytest.FixtureRequest,
    vocabulary: dict[str, pa.Table],
    kind: str,
    data: harness.Rows,
    definition: Definition,
) -> None:
    _agree(request, vocabulary, (kind,), data, definition)
