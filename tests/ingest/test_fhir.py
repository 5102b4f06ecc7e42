"""FHIR R4 Bundles and NDJSON into a CDW; the same data as Synthea CSV gives the same rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pmhub.cdm import schema
from pmhub.cdm.backends import Backend
from pmhub.cdm.backends.duckdb import DuckDBBackend
from pmhub.ingest import ingest
from pmhub.ingest.errors import NotFhirError

from .conftest import FIXTURES, account, balanced, quarantine
from .fhir_writer import bundle, write_bundle, write_ndjson

P1 = "b9c610cd-28a6-4636-ccb6-c7a0d2a4cb85"

# Natural columns per table (no surrogate ids), person named by its source value.
COMPARED = {
    "person": "p.person_source_value, t.gender_concept_id, t.year_of_birth, t.month_of_birth, "
    "t.day_of_birth, t.race_concept_id, t.ethnicity_concept_id",
    "visit_occurrence": "p.person_source_value, t.visit_concept_id, t.visit_start_datetime, "
    "t.visit_end_datetime, t.visit_source_value",
    "visit_detail": "p.person_source_value, t.visit_detail_concept_id, "
    "t.visit_detail_start_datetime, t.visit_detail_source_value",
    "condition_occurrence": "p.person_source_value, t.condition_concept_id, "
    "t.condition_start_date, t.condition_end_date, t.condition_source_value, "
    "t.condition_source_concept_id, t.visit_occurrence_id IS NULL",
    "drug_exposure": "p.person_source_value, t.drug_concept_id, t.drug_exposure_start_date, "
    "t.drug_exposure_end_date, t.drug_source_value, t.quantity, t.days_supply",
    "procedure_occurrence": "p.person_source_value, t.procedure_concept_id, "
    "t.procedure_datetime, t.procedure_end_datetime",
    "measurement": "p.person_source_value, t.measurement_concept_id, t.measurement_datetime, "
    "t.value_as_number, t.unit_concept_id",
    "observation": "p.person_source_value, t.observation_concept_id, t.observation_date, "
    "t.value_as_string",
    # FHIR R4 Device has no encounter: the visit is not compared (a documented convention)
    "device_exposure": "p.person_source_value, t.device_concept_id, "
    "t.device_exposure_start_date, t.unique_device_id",
    "death": "p.person_source_value, t.death_date",
    "condition_era": "p.person_source_value, t.condition_concept_id, "
    "t.condition_era_start_date, t.condition_era_end_date",
    "drug_era": "p.person_source_value, t.drug_concept_id, t.drug_era_start_date, "
    "t.drug_era_end_date",
    "observation_period": "p.person_source_value, t.observation_period_start_date, "
    "t.observation_period_end_date",
    # Coverage ↔ payer_transitions.csv (payor by conditional reference, name by display)
    "payer_plan_period": "p.person_source_value, t.payer_plan_period_start_date, "
    "t.payer_plan_period_end_date, t.payer_source_value, t.plan_source_value",
}


def natural_rows(backend: Backend) -> dict[str, list[tuple[object, ...]]]:
    return {
        name: sorted(
            backend.fetchall(
                f"SELECT {columns} FROM {name} t JOIN person p ON p.person_id = t.person_id"
            ),
            key=repr,
        )
        for name, columns in COMPARED.items()
    }


@pytest.fixture(scope="module")
def from_csv(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[object, ...]]]:
    """The fixture export ingested from Synthea CSV into a DuckDB CDW: the reference."""
    backend = DuckDBBackend(tmp_path_factory.mktemp("ref") / "ref.duckdb")
    schema.init_cdm(backend, source_name="ref", abbreviation="ref", holder="ref")
    ingest(backend, "synthea-csv", FIXTURES / "synthea")
    rows = natural_rows(backend)
    backend.close()
    return rows


def test_written_bundle_is_valid_fhir() -> None:
    from fhir.resources.R4B.bundle import Bundle

    parsed = Bundle.model_validate(bundle(FIXTURES / "synthea"))
    assert len(parsed.entry or []) == 39


def test_bundle_ingests_to_the_same_rows_as_csv(
    cdm_backend: Backend, tmp_path: Path, from_csv: dict[str, list[tuple[object, ...]]]
) -> None:
    path = write_bundle(FIXTURES / "synthea", tmp_path / "bundle.json")
    report = ingest(cdm_backend, "fhir", path)
    assert balanced(report)
    assert report.quarantined == 0
    got = natural_rows(cdm_backend)
    for name in COMPARED:
        assert got[name] == from_csv[name], name


def test_ndjson_bulk_export_ingests_to_the_same_rows(
    cdm_backend: Backend, tmp_path: Path, from_csv: dict[str, list[tuple[object, ...]]]
) -> None:
    folder = write_ndjson(FIXTURES / "synthea", tmp_path / "bulk")
    report = ingest(cdm_backend, "fhir", folder)
    assert report.quarantined == 0
    assert account(report, "Observation.ndjson") == (5, 5, 0)
    assert natural_rows(cdm_backend) == from_csv


def test_missing_references_are_quarantined(cdm_backend: Backend, tmp_path: Path) -> None:
    data = bundle(FIXTURES / "synthea")
    # drop one patient: every resource that points to it must be set aside, with the reason
    data["entry"] = [e for e in data["entry"] if e["resource"].get("id") != P1]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data))
    report = ingest(cdm_backend, "fhir", path)
    assert balanced(report)
    assert report.quarantined > 0
    rows = quarantine(cdm_backend)
    assert all(q[0] == "b.json" for q in rows)
    assert {q[2] for q in rows} == {"PATIENT"}
    assert all(P1 in q[3] for q in rows)
    assert all(json.loads(q[4])["resourceType"] for q in rows)
    assert cdm_backend.count("person") == 2


def test_json_that_is_not_fhir(cdm_backend: Backend, tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"patients": [{"name": "x"}]}))
    with pytest.raises(NotFhirError, match="no resourceType"):
        ingest(cdm_backend, "fhir", path)
    path.write_text("{not json")
    with pytest.raises(NotFhirError, match="not JSON"):
        ingest(cdm_backend, "fhir", path)


def test_bad_ndjson_lines_and_entries_are_quarantined(cdm_backend: Backend, tmp_path: Path) -> None:
    folder = write_ndjson(FIXTURES / "synthea", tmp_path / "bulk")
    with (folder / "Condition.ndjson").open("a") as fh:
        fh.write("{truncated\n")
        fh.write(json.dumps({"hello": "world"}) + "\n")
        fh.write(json.dumps({"resourceType": "Claim", "id": "c1"}) + "\n")
        bad = {"resourceType": "Condition", "id": "bad", "code": {"coding": "oops"}}
        fh.write(json.dumps(bad) + "\n")
    report = ingest(cdm_backend, "fhir", folder)
    assert balanced(report)
    assert account(report, "Condition.ndjson") == (10, 7, 3)
    reasons = [q[3] for q in quarantine(cdm_backend) if q[0] == "Condition.ndjson"]
    assert reasons[0].startswith("invalid JSON")
    assert reasons[1] == "not a FHIR resource (no resourceType)"
    assert "missing patient" in reasons[2] or "malformed" in reasons[2]
    assert "Claim resources" in report.ignored


def test_diagnostic_report_and_medication_statement(cdm_backend: Backend, tmp_path: Path) -> None:
    data = bundle(FIXTURES / "synthea")
    extra = [
        {
            "resourceType": "DiagnosticReport",
            "id": "dr-1",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
            "subject": {"reference": f"urn:uuid:{P1}"},
            "effectiveDateTime": "2019-02-17T06:00:00Z",
        },
        {
            "resourceType": "MedicationStatement",
            "id": "ms-1",
            "status": "active",
            "medicationCodeableConcept": {
                "coding": [
                    {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "308136"}
                ]
            },
            "subject": {"reference": f"Patient/{P1}"},
            "effectivePeriod": {"start": "2020-01-01", "end": "2020-02-01"},
        },
    ]
    data["entry"] += [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in extra]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data))
    report = ingest(cdm_backend, "fhir", path)
    assert report.quarantined == 0
    assert cdm_backend.count("measurement") == 5
    rows = cdm_backend.fetchall(
        "SELECT drug_concept_id, drug_exposure_end_date FROM drug_exposure "
        "WHERE drug_source_value = '308136'"
    )
    assert rows[0][0] == 19073094


def test_coverage_payor_names_and_bad_coverages(cdm_backend: Backend, tmp_path: Path) -> None:
    data = bundle(FIXTURES / "synthea")
    payer = {"resourceType": "Organization", "id": "nhis", "name": "National Health Insurance"}
    good = {
        "resourceType": "Coverage",
        "id": "cov-nhis",
        "status": "active",
        "beneficiary": {"reference": f"urn:uuid:{P1}"},
        "period": {"start": "2022-01-01", "end": "2022-12-31"},
        "payor": [{"reference": "urn:uuid:nhis"}],
    }
    undated = {**good, "id": "cov-undated", "period": {"end": "2022-12-31"}}
    inverted = {**good, "id": "cov-inverted", "period": {"start": "2022-01-01", "end": "2021"}}
    for resource in (payer, good, undated, inverted):
        data["entry"].append({"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource})
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data))
    report = ingest(cdm_backend, "fhir", path)
    assert balanced(report)
    reasons = {(q[2], q[3]) for q in quarantine(cdm_backend)}
    assert reasons == {("START_YEAR", "missing"), ("END_YEAR", "END before START")}
    rows = cdm_backend.fetchall(
        "SELECT payer_source_value, plan_source_value, payer_plan_period_start_date "
        "FROM payer_plan_period WHERE payer_source_value = 'nhis'"
    )
    assert [(r[0], r[1], str(r[2])) for r in rows] == [
        ("nhis", "National Health Insurance", "2022-01-01")
    ]
