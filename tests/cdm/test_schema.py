"""The CDM schema on every backend matches the OMOP CDM v5.4 specification."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmhub.cdm import schema, spec
from pmhub.cdm.backends import Backend
from pmhub.errors import CdmVersionError, CdwNotInitialisedError


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
    expected = missing | {
        ("episode_event", None, "table missing"),
        ("metadata", "metadata_id", "required but nullable"),
        ("metadata", "name", "type date for varchar"),
    }
    if empty_backend.dialect.clinical_primary_keys:  # PostgreSQL: a clinical key is expected
        expected.add(("metadata", "metadata_id", "primary key missing"))
    assert problems == expected


def test_primary_keys_on_postgres_clinical_and_every_vocabulary(cdm_backend: Backend):
    """PostgreSQL keeps every key of the spec; DuckDB keeps the vocabulary's and leaves
    the clinical tables' keys (an ART index each, costly to inserts) to ingest and quality,
    with the key column NOT NULL on both."""
    assert cdm_backend.primary_key("concept") == ("concept_id",)
    clinical = cdm_backend.primary_key("measurement")
    if cdm_backend.dialect.name == "duckdb":
        assert clinical == ()
        cdm_backend.execute(
            "INSERT INTO measurement (measurement_id, person_id, measurement_concept_id, "
            "measurement_date, measurement_type_concept_id) VALUES (1, 1, 0, DATE '2020-01-01', 0)"
        )
        with pytest.raises(Exception, match=r"(?i)null"):
            cdm_backend.execute(
                "INSERT INTO measurement (measurement_id, person_id, measurement_concept_id, "
                "measurement_date, measurement_type_concept_id) "
                "VALUES (NULL, 1, 0, DATE '2020-01-01', 0)"
            )
    else:
        assert clinical == ("measurement_id",)


def test_indexes_on_person_concept_and_date(cdm_backend: Backend):
    """PostgreSQL indexes the clinical tables; DuckDB keeps none there (its zone maps and
    hash joins do not use them, and each costs inserts). Both index the vocabulary."""
    indexes = cdm_backend.indexes("condition_occurrence")
    clinical = {
        "idx_condition_occurrence_person_id",
        "idx_condition_occurrence_condition_concept_id",
        "idx_condition_occurrence_condition_start_date",
    }
    if cdm_backend.dialect.clinical_indexes:
        assert clinical <= indexes
    else:
        assert not clinical & indexes
    assert cdm_backend.dialect.clinical_indexes == (cdm_backend.dialect.name == "postgresql")
    assert "idx_concept_ancestor_ancestor_concept_id" in cdm_backend.indexes("concept_ancestor")


def test_cdm_init_drops_the_clinical_indexes_an_older_duckdb_cdw_has(tmp_path: Path):
    from pmhub.cdm.backends.duckdb import DuckDBBackend

    backend = DuckDBBackend(tmp_path / "old.duckdb")
    schema.init_cdm(backend, source_name="s", abbreviation="s", holder="h")
    backend.execute("CREATE INDEX idx_measurement_person_id ON measurement (person_id)")
    assert "idx_measurement_person_id" in backend.indexes("measurement")
    schema.init_cdm(backend, source_name="s", abbreviation="s", holder="h")
    assert "idx_measurement_person_id" not in backend.indexes("measurement")
    backend.close()


def test_a_duckdb_cdw_stores_the_visits_encounter_ids_uncompressed(tmp_path: Path):
    """Random encounter ids cost a load more to compress than they save (ddl.DUCKDB); the
    CDW's other text keeps DuckDB's compression, and PostgreSQL's DDL is unchanged."""
    from pmhub.cdm import ddl
    from pmhub.cdm.backends.duckdb import DuckDBBackend

    backend = DuckDBBackend(tmp_path / "cdw.duckdb")
    schema.init_cdm(backend, source_name="s", abbreviation="s", holder="h")
    backend.execute(
        "INSERT INTO visit_occurrence (visit_occurrence_id, person_id, visit_concept_id, "
        "visit_start_date, visit_end_date, visit_type_concept_id, visit_source_value, "
        "admitted_from_source_value) SELECT i, i, 9202, DATE '2020-01-01', "
        "DATE '2020-01-01', 32817, uuid()::VARCHAR, 'home' FROM range(5000) r(i)"
    )
    backend.execute("CHECKPOINT")
    stored = dict(
        backend.fetchall(
            "SELECT column_name, string_agg(DISTINCT compression, ',') FROM "
            "pragma_storage_info('visit_occurrence') WHERE segment_type = 'VARCHAR' "
            "GROUP BY ALL"
        )
    )
    assert stored["visit_source_value"] == "Uncompressed"
    assert stored["admitted_from_source_value"] != "Uncompressed"
    rows = backend.fetchall("SELECT count(DISTINCT visit_source_value) FROM visit_occurrence")
    assert rows == [(5000,)]
    backend.close()
    visit_detail = spec.tables()["visit_detail"]
    assert 'visit_detail_source_value" VARCHAR USING COMPRESSION uncompressed' in (
        ddl.create_table(visit_detail, ddl.DUCKDB)
    )
    assert "COMPRESSION" not in ddl.create_table(visit_detail, ddl.POSTGRES)
    assert "COMPRESSION" not in ddl.create_table(spec.tables()["person"], ddl.DUCKDB)


def test_a_cdm_of_another_version_is_refused(empty_backend: Backend):
    # CDM 5.3's cdm_source has cdm_version but no cdm_version_concept_id
    empty_backend.execute(
        "CREATE TABLE cdm_source (cdm_source_name varchar(255), cdm_version varchar(10))"
    )
    empty_backend.execute("CREATE TABLE person (person_id integer)")
    with pytest.raises(CdmVersionError, match=r"v5\.3"):
        schema.init_cdm(empty_backend, source_name="x", abbreviation="x", holder="x")
    with pytest.raises(CdmVersionError, match=r"v5\.3"):
        schema.status(empty_backend)
    assert empty_backend.tables() == {"cdm_source", "person"}  # nothing was added


def test_status_of_an_empty_database_says_to_init(empty_backend: Backend):
    with pytest.raises(CdwNotInitialisedError, match="no OMOP CDM schema"):
        schema.status(empty_backend)


def test_a_cohort_holds_person_ids_past_two_to_the_31(cdm_backend: Backend):
    # synthetic sites number persons from 5,000,000,000 up: the cohort table must hold them
    cdm_backend.execute(
        "INSERT INTO cohort (cohort_definition_id, subject_id, cohort_start_date, "
        "cohort_end_date) VALUES (1, 5000001137, DATE '2020-01-01', DATE '2020-01-02')"
    )
    assert cdm_backend.count("cohort") == 1
