"""The engine's counts equal a plain-Python reference on generated rows (hypothesis)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmhub.cdm.backends.duckdb import DuckDBBackend
from pmhub.quality import definitions, engine
from tests.quality import cdw
from tests.quality.conftest import build_duckdb

RANGES = {
    (r.concept_id, r.unit_concept_id): (r.low, r.high)
    for r in definitions.load().ranges["plausible_ranges.csv"]
}
ALLOWED: dict[int, set[int]] = {}
for concept, unit in RANGES:
    ALLOWED.setdefault(concept, set()).add(unit)
CONCEPTS = [cdw.GLUCOSE, cdw.SBP, cdw.HBA1C]
UNITS = [cdw.MG_DL, cdw.MM_HG, cdw.PERCENT, cdw.KG, 8753]


def _entry(kind: str, category: str, params: dict[str, object] | None = None) -> dict[str, object]:
    entry: dict[str, object] = {
        "type": kind,
        "category": category,
        "subcategory": "x",
        "description": "x",
        "threshold": 0,
    }
    if params:
        entry["params"] = params
    return entry


@pytest.fixture(scope="module")
def cdw_and_checks(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, definitions.CheckDefinitions]:
    folder = tmp_path_factory.mktemp("props")
    path = build_duckdb(folder / "props.duckdb", {"person": cdw.clean_rows()["person"]})
    checks = folder / "checks.yaml"
    checks.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "checks": [
                    _entry(
                        "measurement_value_range",
                        "plausibility",
                        {"ranges": "plausible_ranges.csv"},
                    ),
                    _entry("measurement_unit", "plausibility", {"ranges": "plausible_ranges.csv"}),
                    _entry("start_before_end", "conformance"),
                ],
            }
        )
    )
    return path, definitions.load(checks)


measurement = st.tuples(
    st.sampled_from(CONCEPTS),
    st.sampled_from(UNITS),
    st.one_of(st.none(), st.floats(-50, 2500, allow_nan=False).map(lambda v: round(v, 2))),
)
visit = st.tuples(st.integers(0, 400), st.integers(-30, 30))


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(measurement, max_size=40), st.lists(visit, max_size=20))
def test_counts_match_a_python_reference(
    cdw_and_checks: tuple[Path, definitions.CheckDefinitions],
    measurements: list[tuple[int, int, float | None]],
    visits: list[tuple[int, int]],
):
    path, defs = cdw_and_checks
    rows: cdw.Rows = {
        "measurement": [
            {
                "measurement_id": i,
                "person_id": 1,
                "measurement_concept_id": c,
                "measurement_date": dt.date(2020, 1, 1),
                "measurement_type_concept_id": cdw.LAB,
                "value_as_number": v,
                "unit_concept_id": u,
            }
            for i, (c, u, v) in enumerate(measurements)
        ],
        "visit_occurrence": [
            {
                "visit_occurrence_id": i,
                "person_id": 1,
                "visit_concept_id": cdw.OUTPATIENT,
                "visit_start_date": dt.date(2020, 1, 1) + dt.timedelta(days=start),
                "visit_end_date": dt.date(2020, 1, 1) + dt.timedelta(days=start + length),
                "visit_type_concept_id": cdw.EHR_ENCOUNTER,
            }
            for i, (start, length) in enumerate(visits)
        ],
    }
    with DuckDBBackend(path) as backend:
        backend.execute("DELETE FROM measurement")
        backend.execute("DELETE FROM visit_occurrence")
        cdw.load(backend, rows)
        results = {
            r.check.id: (r.violated, r.denominator)
            for r in engine.run_checks(backend, defs, as_of=cdw.AS_OF).results
        }
    numeric = [(c, u, v) for c, u, v in measurements if v is not None]
    for (concept, unit), (low, high) in RANGES.items():
        mine = [v for c, u, v in numeric if (c, u) == (concept, unit)]
        outside = sum(1 for v in mine if v < low or v > high)
        key = f"measurement_value_range/measurement.value_as_number/{concept}/{unit}"
        assert results[key] == ((outside, len(mine)) if mine else (0, 0))
    for concept in ALLOWED:
        mine_units = [u for c, u, _ in numeric if c == concept]
        wrong = sum(1 for u in mine_units if u not in ALLOWED[concept])
        key = f"measurement_unit/measurement.unit_concept_id/{concept}"
        assert results[key] == ((wrong, len(mine_units)) if mine_units else (0, 0))
    backwards = sum(1 for _, length in visits if length < 0)
    key = "start_before_end/visit_occurrence.visit_start_date"
    assert results[key] == ((backwards, len(visits)) if visits else (0, 0))


def test_sex_specific_checks_follow_the_concept_ancestry(tmp_path: Path):
    """A record of a descendant of a female-only concept counts against that concept."""
    hypoglycemia = 24609  # stands in for a descendant of 'Pregnant' in this test only
    rows = cdw.clean_rows()
    rows["condition_occurrence"] = [
        {
            "condition_occurrence_id": 1,
            "person_id": 1,  # male
            "condition_concept_id": hypoglycemia,
            "condition_start_date": dt.date(2020, 1, 1),
            "condition_type_concept_id": cdw.EHR,
        }
    ]
    path = build_duckdb(tmp_path / "ancestry.duckdb", rows)
    checks = tmp_path / "checks.yaml"
    entry = _entry("plausible_gender", "plausibility", {"concepts": "gender_specific_concepts.csv"})
    checks.write_text(yaml.safe_dump({"version": 1, "checks": [entry]}))
    defs = definitions.load(checks)
    key = f"plausible_gender/condition_occurrence.condition_concept_id/{cdw.PREGNANT}"
    with DuckDBBackend(path) as backend:
        before = {r.check.id: r for r in engine.run_checks(backend, defs, as_of=cdw.AS_OF).results}
        backend.execute(
            "INSERT INTO concept_ancestor VALUES (?, ?, 1, 1)", [cdw.PREGNANT, hypoglycemia]
        )
        after = {r.check.id: r for r in engine.run_checks(backend, defs, as_of=cdw.AS_OF).results}
    assert before[key].status == engine.NOT_APPLICABLE
    assert (after[key].violated, after[key].denominator, after[key].status) == (1, 1, engine.FAIL)
