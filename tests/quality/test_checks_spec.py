"""The checks on both backends: planted defects are caught with their exact counts, and a
clean CDW passes every check."""

from __future__ import annotations

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
