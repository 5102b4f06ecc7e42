"""Checks that only a CDW without the CDM's constraints can trip: NULL in a required field,
a repeated primary key, a value of the wrong type; and a column that is missing."""

from __future__ import annotations

from pmhub.cdm.backends import Backend
from pmhub.quality import definitions, engine
from tests.quality import cdw


def _results(backend: Backend) -> dict[str, engine.CheckResult]:
    run = engine.run_checks(backend, definitions.load(), as_of=cdw.AS_OF)
    return {r.check.id: r for r in run.results}


def _without_constraints(backend: Backend, table: str) -> None:
    """The table again, with the same columns but no key and no NOT NULL."""
    backend.execute(f"CREATE TABLE {table}_copy AS SELECT * FROM {table}")
    backend.execute(f"DROP TABLE {table}")
    backend.execute(f"ALTER TABLE {table}_copy RENAME TO {table}")


def test_required_null_repeated_key_and_wrong_type_are_counted(cdm_backend: Backend):
    cdw.load(cdm_backend, cdw.clean_rows())
    _without_constraints(cdm_backend, "procedure_occurrence")
    cdm_backend.execute(
        "INSERT INTO procedure_occurrence (procedure_occurrence_id, person_id, "
        "procedure_concept_id, procedure_date, procedure_type_concept_id) "
        "VALUES (1, 1, 4163951, DATE '2020-03-02', 32817), (2, 2, NULL, DATE '2020-03-02', 32817)"
    )
    _without_constraints(cdm_backend, "observation")
    cdm_backend.execute("ALTER TABLE observation ALTER COLUMN value_as_number TYPE VARCHAR")
    cdm_backend.execute(
        "INSERT INTO observation (observation_id, person_id, observation_concept_id, "
        "observation_date, observation_type_concept_id, value_as_number) VALUES "
        "(101, 1, 43054909, DATE '2020-03-02', 32817, '12.5'), "
        "(102, 1, 43054909, DATE '2020-03-02', 32817, 'twelve'), "
        "(103, 1, 43054909, DATE '2020-03-02', 32817, '1e3')"
    )
    results = _results(cdm_backend)
    failed = {k: r.violated for k, r in results.items() if r.status == engine.FAIL}
    assert failed == {
        "is_primary_key/procedure_occurrence.procedure_occurrence_id": 2,
        "is_required/procedure_occurrence.procedure_concept_id": 1,
        "cdm_datatype/observation.value_as_number": 1,
    }
    assert results["is_primary_key/procedure_occurrence.procedure_occurrence_id"].denominator == 12


def test_a_missing_column_fails_only_the_checks_that_read_it(cdm_backend: Backend):
    cdw.load(cdm_backend, cdw.clean_rows())
    _without_constraints(cdm_backend, "measurement")  # DuckDB alters no indexed table
    cdm_backend.execute("ALTER TABLE measurement DROP COLUMN unit_source_value")
    results = _results(cdm_backend)
    errors = {k: r.error for k, r in results.items() if r.status == engine.ERROR}
    assert errors == {
        "source_value_unmapped/measurement.unit_concept_id": (
            "measurement has no column unit_source_value"
        ),
        "field_length/measurement.unit_source_value": (
            "measurement has no column unit_source_value"
        ),
    }
    assert results["is_foreign_key/measurement.person_id"].status == engine.PASS
