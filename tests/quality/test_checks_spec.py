"""The checks on both backends: planted defects are caught with their exact counts, and a
clean CDW passes every check."""

from __future__ import annotations

import datetime as dt

from pmhub.cdm.backends import Backend
from pmhub.quality import definitions, engine
from tests.quality import cdw


def _run(backend: Backend) -> engine.CheckRun:
    return engine.run_checks(backend, definitions.load(), as_of=cdw.AS_OF)


def test_clean_cdw_passes_every_check(cdm_backend: Backend):
    cdw.load(cdm_backend, cdw.clean_rows())
    run = _run(cdm_backend)
    bad = [r.to_json() for r in run.results if r.status in (engine.FAIL, engine.ERROR)]
    assert bad == []
    passed = {r.check.id for r in run.results if r.status == engine.PASS}
    # the checks that the planted defects trip do run (and pass) on clean data
    assert set(cdw.expected_failures()) <= passed


def test_each_planted_defect_is_caught_with_its_exact_count(cdm_backend: Backend):
    cdw.load(cdm_backend, cdw.with_defects())
    run = _run(cdm_backend)
    failed = {r.check.id: r.violated for r in run.results if r.status == engine.FAIL}
    errors = [r.to_json() for r in run.results if r.status == engine.ERROR]
    assert errors == []
    assert failed == cdw.expected_failures()


def test_correct_omop_data_the_conventions_allow_is_not_flagged(cdm_backend: Backend):
    """A 90-day prescription written a month before the as-of date ends after it, one
    dispensed shortly before a death ends long after it, the health plan of the person who
    died runs to the end of its term, and a same-day visit's end without a time is midnight:
    all correct OMOP data (an exposure's end is inferred from its supply; a missing time is
    00:00), so no check may fail on them."""
    rows = cdw.clean_rows()
    last = len(rows["person"])
    rows["drug_exposure"].append(
        {
            "drug_exposure_id": 500,
            "person_id": 1,
            "drug_concept_id": cdw.METFORMIN,
            "drug_exposure_start_date": cdw.d("2025-12-01"),
            "drug_exposure_end_date": cdw.d("2026-02-28"),
            "drug_type_concept_id": cdw.PRESCRIPTION,
            "quantity": 180.0,
            "days_supply": 90,
            "refills": 0,
            "drug_source_value": "641600450",
        }
    )
    rows["drug_exposure"].append(  # 90 days dispensed 12 days before death
        {
            "drug_exposure_id": 501,
            "person_id": last,
            "drug_concept_id": cdw.METFORMIN,
            "drug_exposure_start_date": cdw.d("2024-05-20"),
            "drug_exposure_end_date": cdw.d("2024-08-18"),
            "drug_type_concept_id": cdw.PRESCRIPTION,
            "quantity": 180.0,
            "days_supply": 90,
            "refills": 0,
            "drug_source_value": "641600450",
        }
    )
    visit = rows["visit_occurrence"][0]  # a same-day visit whose end has no time: midnight
    visit["visit_start_datetime"] = dt.datetime.combine(visit["visit_start_date"], dt.time(14, 30))
    visit["visit_end_datetime"] = dt.datetime.combine(visit["visit_end_date"], dt.time(0, 0))
    assert visit["visit_start_date"] == visit["visit_end_date"]
    rows["payer_plan_period"] = [
        {
            "payer_plan_period_id": 1,
            "person_id": last,
            "payer_plan_period_start_date": cdw.d("2024-01-01"),
            "payer_plan_period_end_date": cdw.d("2024-12-31"),  # the death was 2024-06-01
        }
    ]
    cdw.load(cdm_backend, rows)
    run = _run(cdm_backend)
    bad = [r.to_json() for r in run.results if r.status in (engine.FAIL, engine.ERROR)]
    assert bad == []


def test_events_after_death_are_a_share_of_the_rows_of_persons_who_died(cdm_backend: Backend):
    """DQD's denominator: of the rows of the persons with a death record, not of all rows."""
    cdw.load(cdm_backend, cdw.with_defects(["event long after death"]))
    run = _run(cdm_backend)
    result = next(
        r for r in run.results if r.check.id == "before_death/procedure_occurrence.procedure_date"
    )
    # person 10 died: their clean procedure and the planted one, 4 years after death
    assert (result.violated, result.denominator, result.status) == (1, 2, engine.FAIL)


def test_a_cdm_source_of_another_version_concept_is_caught(cdm_backend: Backend):
    cdw.load(cdm_backend, cdw.clean_rows())
    check_id = "cdm_version/cdm_source.cdm_version_concept_id/756265"
    ok = {r.check.id: r for r in _run(cdm_backend).results}[check_id]
    assert (ok.violated, ok.denominator, ok.status) == (0, 1, engine.PASS)
    cdm_backend.execute("UPDATE cdm_source SET cdm_version_concept_id = 756266")
    bad = {r.check.id: r for r in _run(cdm_backend).results}[check_id]
    assert (bad.violated, bad.denominator, bad.status) == (1, 1, engine.FAIL)
