"""The CDM schema on every backend matches the OMOP CDM v5.4 specification."""

from __future__ import annotations

from pmhub.cdm import schema, spec
from pmhub.cdm.backends import Backend


def test_spec_has_every_table_of_cdm_54():
    tables = spec.tables()
    assert len(tables) == 39
    assert {"person", "cost", "drug_era", "metadata", "concept_ancestor", "cohort"} <= set(tables)
    assert sum(len(t.fields) for t in tables.values()) == 432


def test_every_table_column_type_not_null_and_primary_key_matches_spec(cdm_backend: Backend):
    assert schema.verify(cdm_backend) == []


def test_verify_reports_missing_table_column_not_null_and_key(empty_backend: Backend):
    schema.init_cdm(empty_backend, source_name="x", abbreviation="x", holder="x")
    empty_backend.execute("DROP TABLE episode_event")
    empty_backend.execute("DROP TABLE metadata")
    empty_backend.execute(
        "CREATE TABLE metadata (metadata_id integer, metadata_concept_id integer NOT NULL, "
        "metadata_type_concept_id integer NOT NULL, name date NOT NULL)"
    )
    problems = {(p.table, p.column, p.problem) for p in schema.verify(empty_backend)}
    missing = {
        ("metadata", c, "column missing")
        for c in (
            "value_as_string",
            "value_as_concept_id",
            "value_as_number",
            "metadata_date",
            "metadata_datetime",
        )
    }
    assert problems == missing | {
        ("episode_event", None, "table missing"),
        ("metadata", "metadata_id", "required but nullable"),
        ("metadata", "metadata_id", "primary key missing"),
        ("metadata", "name", "type date for varchar"),
    }


def test_indexes_on_person_concept_and_date(cdm_backend: Backend):
    indexes = cdm_backend.indexes("condition_occurrence")
    assert {
        "idx_condition_occurrence_person_id",
        "idx_condition_occurrence_condition_concept_id",
        "idx_condition_occurrence_condition_start_date",
    } <= indexes
    assert "idx_concept_ancestor_ancestor_concept_id" in cdm_backend.indexes("concept_ancestor")
