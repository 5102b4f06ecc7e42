"""Synthea CSV → OMOP on both backends: mapping conventions, accounting, idempotency."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import blake3
import pytest

from pmhub.cdm.backends import Backend
from pmhub.ingest import ingest, synthea
from pmhub.ingest.ledger import PMHUB_TABLES

from .conftest import FIXTURES, account, balanced, counts

P1 = "b9c610cd-28a6-4636-ccb6-c7a0d2a4cb85"
P2 = "3b1e4b5f-2e6d-4c5e-9a0e-4d6b9c1f7a21"
CLINICAL = [
    "person",
    "location",
    "care_site",
    "provider",
    "visit_occurrence",
    "visit_detail",
    "condition_occurrence",
    "drug_exposure",
    "procedure_occurrence",
    "measurement",
    "observation",
    "device_exposure",
    "death",
    "observation_period",
    "condition_era",
    "drug_era",
]


def person_id(backend: Backend, source: str) -> int:
    rows = backend.fetchall("SELECT person_id FROM person WHERE person_source_value = ?", [source])
    return int(rows[0][0])


def test_every_row_is_accounted_for(cdm_backend: Backend, synthea_dir: Path) -> None:
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert balanced(report)
    assert report.quarantined == 0
    assert account(report, "encounters.csv") == (8, 8, 0)
    assert account(report, "conditions.csv") == (7, 7, 0)
    assert account(report, "payers.csv") == (1, 1, 0)
    assert account(report, "payer_transitions.csv") == (3, 3, 0)
    assert report.tables["person"] == 3
    assert counts(cdm_backend, ["person", "visit_occurrence", "visit_detail", "death"]) == {
        "person": 3,
        "visit_occurrence": 6,
        "visit_detail": 8,
        "death": 1,
    }
    stored = cdm_backend.fetchall(
        "SELECT file, rows_read, rows_loaded, rows_quarantined, checksum FROM pmhub_load_file "
        "WHERE file = 'patients.csv'"
    )
    assert stored[0][1:4] == (3, 3, 0)
    expected = blake3.blake3((synthea_dir / "patients.csv").read_bytes()).hexdigest()
    assert stored[0][4] == f"blake3:{expected}"
    # an unknown code, a retired one, CVX and an allergen (not in the shipped subset)
    assert report.unmapped == {"condition_occurrence": 2, "drug_exposure": 1, "observation": 1}
    etl = cdm_backend.fetchall("SELECT cdm_etl_reference, source_release_date FROM cdm_source")
    assert etl[0][0] == "pmhub ingest synthea-csv"
    assert etl[0][1] is not None


def test_person_follows_etl_synthea(cdm_backend: Backend, synthea_dir: Path) -> None:
    ingest(cdm_backend, "synthea-csv", synthea_dir)
    rows = cdm_backend.fetchall(
        "SELECT gender_concept_id, year_of_birth, month_of_birth, day_of_birth, "
        "race_concept_id, ethnicity_concept_id, gender_source_value FROM person "
        "WHERE person_source_value = ?",
        [P1],
    )
    assert rows == [(8507, 1958, 3, 14, 8527, 38003563, "M")]
    # every person concept the ETL writes is in the CDW's vocabulary (a foreign key)
    orphans = cdm_backend.fetchall(
        "SELECT p.race_concept_id FROM person p LEFT JOIN concept c "
        "ON c.concept_id = p.race_concept_id WHERE c.concept_id IS NULL"
    )
    assert orphans == []
    death = cdm_backend.fetchall("SELECT death_date FROM death")
    assert death == [(dt.date(2021, 6, 30),)]


def test_inpatient_stays_roll_up(cdm_backend: Backend, synthea_dir: Path) -> None:
    ingest(cdm_backend, "synthea-csv", synthea_dir)
    pid = person_id(cdm_backend, P1)
    visits = cdm_backend.fetchall(
        "SELECT visit_concept_id, visit_start_date, visit_end_date, visit_source_value "
        "FROM visit_occurrence WHERE person_id = ? ORDER BY visit_start_date",
        [pid],
    )
    # two inpatient encounters one day apart and an ambulatory one inside them: one stay
    assert [(v[0], v[1], v[2]) for v in visits] == [
        (9202, dt.date(2015, 4, 10), dt.date(2015, 4, 10)),
        (9201, dt.date(2019, 2, 17), dt.date(2019, 2, 23)),
        (9203, dt.date(2020, 6, 1), dt.date(2020, 6, 1)),
    ]
    details = cdm_backend.fetchall(
        "SELECT d.visit_detail_concept_id FROM visit_detail d JOIN visit_occurrence v "
        "ON v.visit_occurrence_id = d.visit_occurrence_id WHERE v.visit_concept_id = 9201 "
        "AND v.person_id = ? ORDER BY d.visit_detail_start_datetime",
        [pid],
    )
    assert [d[0] for d in details] == [9201, 9201, 9202]


def test_same_day_emergency_and_outpatient_encounters_are_one_visit(
    cdm_backend: Backend, synthea_dir: Path
) -> None:
    """ETL-Synthea's AllVisitTable: a patient's emergency (or outpatient) encounters of one
    class starting the same day are one visit; other classes and days stay apart."""
    org, prov = "ef58ea08-d883-3957-8300-150554edc8fb", "3421aa75-dec7-378d-a9e0-0bc764e4cb0d"
    payer = "b1c428d6-4f07-31e0-90f0-68ffa6ff8c76"
    added = [
        ("e1", "2020-06-01T18:00:00Z", "2020-06-01T19:30:00Z", "emergency"),  # same day: merged
        ("e2", "2020-06-01T08:00:00Z", "2020-06-01T08:30:00Z", "ambulatory"),  # other class
        ("e3", "2019-02-16T22:00:00Z", "2019-02-17T04:00:00Z", "emergency"),  # before the stay
        ("e4", "2015-04-10T15:00:00Z", "2015-04-10T15:40:00Z", "wellness"),  # merged
        ("e5", "2015-04-11T09:00:00Z", "2015-04-11T09:30:00Z", "wellness"),  # next day
    ]
    with (synthea_dir / "encounters.csv").open("a") as out:
        for key, start, stop, kind in added:
            out.write(
                f"00000000-0000-4000-8000-0000000000{key[1]}0,{start},{stop},{P1},{org},{prov},"
                f"{payer},{kind},185349003,Encounter,85.55,85.55,0.00,,\n"
            )
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert report.quarantined == 0
    pid = person_id(cdm_backend, P1)
    visits = cdm_backend.fetchall(
        "SELECT visit_concept_id, visit_start_datetime, visit_end_datetime FROM "
        "visit_occurrence WHERE person_id = ? ORDER BY visit_start_datetime",
        [pid],
    )
    at = dt.datetime
    assert visits == [
        (9202, at(2015, 4, 10, 9, 12), at(2015, 4, 10, 15, 40)),
        (9202, at(2015, 4, 11, 9, 0), at(2015, 4, 11, 9, 30)),
        (9203, at(2019, 2, 16, 22, 0), at(2019, 2, 17, 4, 0)),
        (9201, at(2019, 2, 17, 5, 7, 38), at(2019, 2, 23, 10, 0)),
        (9202, at(2020, 6, 1, 8, 0), at(2020, 6, 1, 8, 30)),
        (9203, at(2020, 6, 1, 10, 0), at(2020, 6, 1, 19, 30)),
    ]
    # every encounter keeps its visit_detail, under its merged visit
    details = cdm_backend.fetchall(
        "SELECT count(*), count(DISTINCT visit_occurrence_id) FROM visit_detail "
        "WHERE person_id = ?",
        [pid],
    )
    assert details == [(10, 6)]


def test_payer_transitions_become_payer_plan_periods(
    cdm_backend: Backend, synthea_dir: Path
) -> None:
    """ETL-Synthea's insert_payer_plan_period: one period per transition, the payer's id
    and name as source values; a bare year is its first or last day (Synthea 2.x), a
    timestamp in START_YEAR its date (Synthea 3.0), START_DATE/END_DATE (3.3) likewise."""
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert report.tables["payer_plan_period"] == 3
    rows = cdm_backend.fetchall(
        "SELECT p.person_source_value, payer_plan_period_start_date, "
        "payer_plan_period_end_date, payer_concept_id, payer_source_value, plan_source_value "
        "FROM payer_plan_period pp JOIN person p ON p.person_id = pp.person_id "
        "ORDER BY 1, 2"
    )
    medicare = "b1c428d6-4f07-31e0-90f0-68ffa6ff8c76"
    assert rows == [
        (P2, dt.date(2015, 3, 1), dt.date(2022, 2, 28), 0, medicare, "Medicare"),
        (P1, dt.date(2010, 1, 1), dt.date(2016, 12, 31), 0, medicare, "Medicare"),
        (P1, dt.date(2017, 1, 1), dt.date(2021, 12, 31), 0, medicare, "Medicare"),
    ]


def test_synthea_3_3_payer_columns_and_bad_transitions(
    cdm_backend: Backend, synthea_dir: Path
) -> None:
    medicare = "b1c428d6-4f07-31e0-90f0-68ffa6ff8c76"
    (synthea_dir / "payer_transitions.csv").write_text(
        "PATIENT,MEMBERID,START_DATE,END_DATE,PAYER,SECONDARY_PAYER,PLAN_OWNERSHIP,OWNER_NAME\n"
        f"{P1},m1,2012-05-01T00:00:00Z,2013-04-30T23:59:59Z,{medicare},,Self,A\n"
        f"{P1},m1,2014-01-01,2013-01-01,{medicare},,Self,A\n"
        f"{P1},m1,2014-01-01,2015-01-01,no-such-payer,,Self,A\n"
        f"no-such-patient,m2,2014-01-01,2015-01-01,{medicare},,Self,A\n"
        f"{P1},m1,2023-02-30,2024-01-01,{medicare},,Self,A\n"
        f"{P1},m1,,2024-01-01,{medicare},,Self,A\n"
    )
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert balanced(report)
    assert account(report, "payer_transitions.csv") == (6, 1, 5)
    reasons = cdm_backend.fetchall(
        "SELECT line, field, reason FROM pmhub_quarantine "
        "WHERE file = 'payer_transitions.csv' ORDER BY line"
    )
    assert [(r[0], r[1]) for r in reasons] == [
        (3, "END_YEAR"),
        (4, "PAYER"),
        (5, "PATIENT"),
        (6, "START_YEAR"),
        (7, "START_YEAR"),
    ]
    assert reasons[0][2] == "END before START"
    assert reasons[1][2] == "PAYER 'no-such-payer' not found in payers (or set aside there)"
    assert reasons[3][2] == "not a valid date or year: 2023-02-30"
    assert reasons[4][2] == "missing"
    rows = cdm_backend.fetchall(
        "SELECT payer_plan_period_start_date, payer_plan_period_end_date FROM payer_plan_period"
    )
    assert rows == [(dt.date(2012, 5, 1), dt.date(2013, 4, 30))]


def test_codes_map_through_maps_to_and_route_by_domain(
    cdm_backend: Backend, synthea_dir: Path
) -> None:
    ingest(cdm_backend, "synthea-csv", synthea_dir)
    conditions = dict(
        cdm_backend.fetchall(
            "SELECT condition_source_value, condition_concept_id FROM condition_occurrence"
        )
    )
    assert conditions["44054006"] == 201826  # type 2 diabetes
    assert conditions["999999999"] == 0  # unknown code: concept 0, source value kept
    # 'Body mass index 30+ - obesity' is an Observation-domain concept in SNOMED
    assert "162864005" not in conditions
    obs = cdm_backend.fetchall(
        "SELECT observation_concept_id, value_as_string FROM observation "
        "WHERE observation_source_value IN ('162864005', '72166-2') ORDER BY 1"
    )
    assert obs == [(4060985, None), (43054909, "Never smoked tobacco (finding)")]
    height = cdm_backend.fetchall(
        "SELECT measurement_concept_id, value_as_number, unit_concept_id, unit_source_value "
        "FROM measurement WHERE measurement_source_value = '8302-2'"
    )
    assert height == [(3036277, 175.2, 8582, "cm")]
    drugs = cdm_backend.fetchall(
        "SELECT drug_concept_id, drug_type_concept_id, days_supply FROM drug_exposure "
        "WHERE drug_source_value = '314076' ORDER BY drug_exposure_start_date"
    )
    assert drugs[0] == (19080128, 32838, 30)
    devices = cdm_backend.fetchall(
        "SELECT device_concept_id, unique_device_id FROM device_exposure"
    )
    assert devices[0][0] == 45767945
    assert devices[0][1].startswith("(01)")
    source_concept = cdm_backend.fetchall(
        "SELECT condition_source_concept_id FROM condition_occurrence "
        "WHERE condition_source_value = '15777000'"
    )
    assert source_concept == [(40316773,)]  # a non-standard source concept is kept


def test_a_code_with_two_targets_writes_a_row_in_each_targets_table(
    cdm_backend: Backend, synthea_dir: Path
) -> None:
    """OHDSI's rule for a code with several 'Maps to': one row per target, each in the table
    of its target's domain, with its own id; the source row is read (and counted) once."""
    cdm_backend.execute(
        "INSERT INTO concept_relationship (concept_id_1, concept_id_2, relationship_id, "
        "valid_start_date, valid_end_date) "
        "VALUES (201826, 4060985, 'Maps to', DATE '1970-01-01', DATE '2099-12-31')"
    )
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert balanced(report)
    assert account(report, "conditions.csv")[0] == account(report, "conditions.csv")[1]
    condition = cdm_backend.fetchall(
        "SELECT condition_occurrence_id, person_id, condition_start_date FROM "
        "condition_occurrence WHERE condition_source_value = '44054006'"
    )
    observation = cdm_backend.fetchall(
        "SELECT observation_id, person_id, observation_date, observation_concept_id FROM "
        "observation WHERE observation_source_value = '44054006'"
    )
    assert len(condition) == 1
    assert len(observation) == 1
    assert observation[0][1:3] == condition[0][1:3]
    assert observation[0][3] == 4060985
    ids = cdm_backend.fetchall("SELECT count(*), count(DISTINCT observation_id) FROM observation")
    assert ids[0][0] == ids[0][1]
    assert condition[0][0] != observation[0][0]


def test_events_link_to_their_visits(cdm_backend: Backend, synthea_dir: Path) -> None:
    ingest(cdm_backend, "synthea-csv", synthea_dir)
    orphans = cdm_backend.fetchall(
        "SELECT count(*) FROM condition_occurrence c LEFT JOIN visit_occurrence v "
        "ON v.visit_occurrence_id = c.visit_occurrence_id "
        "WHERE c.visit_occurrence_id IS NOT NULL AND v.visit_occurrence_id IS NULL"
    )
    assert orphans == [(0,)]
    no_visit = cdm_backend.fetchall(
        "SELECT count(*) FROM condition_occurrence WHERE visit_occurrence_id IS NULL"
    )
    assert no_visit == [(1,)]  # the condition without ENCOUNTER


def test_eras_follow_ohdsi_gap_rules(cdm_backend: Backend, synthea_dir: Path) -> None:
    ingest(cdm_backend, "synthea-csv", synthea_dir)
    lisinopril = cdm_backend.fetchall(
        "SELECT drug_era_start_date, drug_era_end_date, drug_exposure_count, gap_days "
        "FROM drug_era WHERE drug_concept_id = 1308216 ORDER BY 1"
    )
    # exposures 04-10..05-10 and 05-25..06-24 are 15 days apart (one era); 09-01 is not
    assert lisinopril == [
        (dt.date(2015, 4, 10), dt.date(2015, 6, 24), 2, 15),
        (dt.date(2015, 9, 1), dt.date(2015, 10, 1), 1, 0),
    ]
    pharyngitis = cdm_backend.fetchall(
        "SELECT condition_era_start_date, condition_era_end_date, condition_occurrence_count "
        "FROM condition_era WHERE condition_concept_id = 4112343"
    )
    assert pharyngitis == [(dt.date(2018, 9, 3), dt.date(2018, 10, 8), 2)]
    periods = cdm_backend.fetchall(
        "SELECT observation_period_start_date, observation_period_end_date "
        "FROM observation_period WHERE person_id = ?",
        [person_id(cdm_backend, P1)],
    )
    assert periods == [(dt.date(2015, 4, 10), dt.date(2020, 6, 1))]


def test_same_input_twice_changes_nothing(cdm_backend: Backend, synthea_dir: Path) -> None:
    first = ingest(cdm_backend, "synthea-csv", synthea_dir)
    before = counts(cdm_backend, [*CLINICAL, *PMHUB_TABLES])
    second = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert second.already_loaded
    assert not first.already_loaded
    assert second.load_id == first.load_id
    assert counts(cdm_backend, [*CLINICAL, *PMHUB_TABLES]) == before


def test_a_loaded_input_is_recognised_before_any_staging(
    cdm_backend: Backend, synthea_dir: Path
) -> None:
    ingest(cdm_backend, "synthea-csv", synthea_dir)
    steps: list[str] = []
    again = ingest(cdm_backend, "synthea-csv", synthea_dir, progress=steps.append)
    assert again.already_loaded
    assert "staging source files" not in steps


def test_same_names_and_sizes_but_other_bytes_are_a_new_load(
    cdm_backend: Backend, synthea_dir: Path
) -> None:
    """Names and sizes only say when to wait for the checksums; the checksums decide."""
    first = ingest(cdm_backend, "synthea-csv", synthea_dir)
    conditions = synthea_dir / "conditions.csv"
    data = conditions.read_bytes()
    assert b"\n2015-04-10," in data
    conditions.write_bytes(data.replace(b"\n2015-04-10,", b"\n2015-04-11,", 1))  # same size
    steps: list[str] = []
    second = ingest(cdm_backend, "synthea-csv", synthea_dir, progress=steps.append)
    assert not second.already_loaded
    assert second.load_id != first.load_id
    assert "staging source files" in steps
    sha = dict(
        cdm_backend.fetchall(
            "SELECT load_id, checksum FROM pmhub_load_file WHERE file = 'conditions.csv'"
        )
    )
    assert sha[first.load_id] != sha[second.load_id]


def test_a_load_recorded_before_blake3_is_recognised(
    cdm_backend: Backend, synthea_dir: Path
) -> None:
    """A CDW whose log keyed loads on SHA-256: its table is brought up to date, and the
    same input again is still the same load."""
    first = ingest(cdm_backend, "synthea-csv", synthea_dir)
    counted = counts(cdm_backend, ["person", "condition_occurrence", "measurement"])
    plan = synthea.discover(synthea_dir, "auto")
    report = first.to_dict()
    for account_ in report["files"]:
        digest = hashlib.sha256((synthea_dir / account_["file"]).read_bytes()).hexdigest()
        account_["sha256"] = digest
        del account_["checksum"]
    with cdm_backend.transaction():  # as an earlier pmhub wrote them
        cdm_backend.execute(
            "UPDATE pmhub_load_log SET load_key = ?, report = ? WHERE load_id = ?",
            [plan.legacy_key(), json.dumps(report), first.load_id],
        )
        cdm_backend.execute("ALTER TABLE pmhub_load_file RENAME COLUMN checksum TO sha256")
        for source in plan.sources.values():
            cdm_backend.execute(
                "UPDATE pmhub_load_file SET sha256 = ? WHERE file = ?",
                [hashlib.sha256(source.path.read_bytes()).hexdigest(), source.name],
            )
    again = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert again.already_loaded
    assert again.load_id == first.load_id
    assert counts(cdm_backend, ["person", "condition_occurrence", "measurement"]) == counted
    stored = cdm_backend.fetchall("SELECT checksum FROM pmhub_load_file")
    assert stored
    assert all(str(c).startswith("sha256:") and len(c) == 71 for (c,) in stored)
    assert all(f.checksum.startswith("sha256:") for f in again.files)


def test_person_id_is_stable_across_loads(
    cdm_backend: Backend, synthea_dir: Path, tmp_path: Path
) -> None:
    ingest(cdm_backend, "synthea-csv", synthea_dir)
    first = person_id(cdm_backend, P2)
    # a later export: the same patient, a new encounter, no patients.csv row needed
    later = tmp_path / "later"
    later.mkdir()
    header = (FIXTURES / "synthea" / "encounters.csv").read_text().splitlines()[0]
    (later / "encounters.csv").write_text(
        header + "\n"
        f"9e9e9e9e-0000-4000-8000-000000000001,2023-03-01T10:00:00Z,2023-03-01T10:30:00Z,{P2},"
        ",,,ambulatory,185349003,Encounter for check up (procedure),85.55,85.55,0.00,,\n"
    )
    report = ingest(cdm_backend, "synthea-csv", later)
    assert report.quarantined == 0
    rows = cdm_backend.fetchall(
        "SELECT person_id FROM visit_occurrence WHERE visit_source_value = "
        "'9e9e9e9e-0000-4000-8000-000000000001'"
    )
    assert rows == [(first,)]
    assert cdm_backend.count("person") == 3


def test_semicolon_export_and_bom_are_read(cdm_backend: Backend, synthea_dir: Path) -> None:
    patients = synthea_dir / "patients.csv"
    text = patients.read_text()
    patients.write_bytes(b"\xef\xbb\xbf" + text.replace(",", ";").encode())
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert account(report, "patients.csv") == (3, 3, 0)
    assert next(f for f in report.files if f.file == "patients.csv").encoding == "utf-8-sig"


def test_a_copy_under_another_folder_is_the_same_load(
    cdm_backend: Backend, synthea_dir: Path, tmp_path: Path
) -> None:
    ingest(cdm_backend, "synthea-csv", synthea_dir)
    copy = tmp_path / "copy"
    shutil.copytree(synthea_dir, copy)
    assert ingest(cdm_backend, "synthea-csv", copy).already_loaded


def test_kcd7_codes_map_with_or_without_the_dot(cdm_backend: Backend, synthea_dir: Path) -> None:
    enc = "0b9f3c52-7d1f-4f1e-a4a3-6a1e2f9c0001"
    with (synthea_dir / "conditions.csv").open("a") as fh:
        fh.write(f"2016-01-01,,{P1},{enc},E11.9,2형 당뇨병\n")
        fh.write(f"2016-02-01,,{P1},{enc},E119,2형 당뇨병\n")
        fh.write(f"2016-03-01,,{P1},{enc},Z99.9,not in the map\n")
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert report.quarantined == 0
    rows = cdm_backend.fetchall(
        "SELECT condition_source_value, condition_concept_id FROM condition_occurrence "
        "WHERE condition_start_date >= DATE '2016-01-01' AND condition_start_date < "
        "DATE '2016-04-01' ORDER BY condition_start_date"
    )
    assert rows == [("E11.9", 201826), ("E119", 201826), ("Z99.9", 0)]


def test_a_duckdb_cdw_keeps_no_ingest_helpers(tmp_path: Path, synthea_dir: Path) -> None:
    """The parsing macros live in the load's session, not in the site's CDW file."""
    import duckdb

    from pmhub.cdm import schema
    from pmhub.cdm.backends import connect

    path = tmp_path / "site.duckdb"
    backend = connect(f"duckdb:///{path}")
    schema.init_cdm(backend, source_name="s", abbreviation="s", holder="h")
    ingest(backend, "synthea-csv", synthea_dir)
    backend.close()
    con = duckdb.connect(str(path), read_only=True)
    left = con.execute(
        "SELECT function_name FROM duckdb_functions() WHERE function_name LIKE 'pmhub%'"
    ).fetchall()
    con.close()
    assert left == []


def test_a_larger_block_pool_set_before_is_kept(tmp_path: Path, synthea_dir: Path) -> None:
    """The engine asks DuckDB for a block pool as large as its memory limit; a pool that is
    larger already cannot shrink, and the load goes on with it."""
    from pmhub.cdm import schema
    from pmhub.cdm.backends import connect
    from pmhub.cdm.backends.duckdb import DuckDBBackend

    backend = connect(f"duckdb:///{tmp_path / 'site.duckdb'}")
    assert isinstance(backend, DuckDBBackend)
    schema.init_cdm(backend, source_name="s", abbreviation="s", holder="h")
    backend.con.execute("SET block_allocator_memory = '5GB'")
    report = ingest(backend, "synthea-csv", synthea_dir)
    pool = backend.con.execute("SELECT current_setting('block_allocator_memory')").fetchone()
    backend.close()
    assert report.read == report.loaded > 0
    assert pool == (backend_memory(5_000_000_000),)


def backend_memory(size: int) -> str:
    """A byte count as DuckDB prints it."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{size}B'")
    shown = con.execute("SELECT current_setting('memory_limit')").fetchone()
    con.close()
    assert shown is not None
    return str(shown[0])


def test_memory_is_at_most_half_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from pmhub.ingest import engine

    monkeypatch.setattr(os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096}.get(name, 500_000))
    assert engine.memory_limit(beside_postgres=False) == 4096 * 500_000 // 2  # a 2 GB machine
    monkeypatch.setattr(os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096}.get(name, 10**7))
    assert engine.memory_limit(beside_postgres=False) == engine.MEMORY_LIMIT
    assert engine.memory_limit(beside_postgres=True) == engine.MEMORY_LIMIT_BESIDE_POSTGRES


def test_the_engine_asks_for_a_block_pool(tmp_path: Path, synthea_dir: Path) -> None:
    from pmhub.cdm import schema
    from pmhub.cdm.backends import connect
    from pmhub.cdm.backends.duckdb import DuckDBBackend
    from pmhub.ingest.engine import memory_limit

    backend = connect(f"duckdb:///{tmp_path / 'site.duckdb'}")
    assert isinstance(backend, DuckDBBackend)
    schema.init_cdm(backend, source_name="s", abbreviation="s", holder="h")
    before = backend.con.execute("SELECT current_setting('block_allocator_memory')").fetchone()
    ingest(backend, "synthea-csv", synthea_dir)
    after = backend.con.execute("SELECT current_setting('block_allocator_memory')").fetchone()
    backend.close()
    expected = backend_memory(memory_limit(beside_postgres=False))
    assert before == ("0 bytes",)
    assert after == (expected,)


def test_each_visit_names_the_persons_visit_before_it(
    cdm_backend: Backend, synthea_dir: Path
) -> None:
    ingest(cdm_backend, "synthea-csv", synthea_dir)
    for table, key in (("visit_occurrence", "visit"), ("visit_detail", "visit_detail")):
        rows = cdm_backend.fetchall(
            f"SELECT {table}_id, person_id, {key}_start_datetime, preceding_{table}_id FROM {table}"
        )
        assert len(rows) > 3
        expected: dict[int, int | None] = {}
        last: dict[int, int] = {}
        for vid, person, _start, _ in sorted(rows, key=lambda r: (r[1], r[2], r[0])):
            expected[vid] = last.get(person)
            last[person] = vid
        assert {r[0]: r[3] for r in rows} == expected
        assert any(r[3] is not None for r in rows)


@pytest.mark.parametrize("before", [True, False])
def test_an_ordered_read_restores_the_setting_before(tmp_path: Path, before: bool) -> None:
    from pmhub.cdm.backends import connect
    from pmhub.ingest.engine import Engine

    backend = connect(f"duckdb:///{tmp_path / 'site.duckdb'}")
    engine = Engine(backend, workdir=tmp_path / "work")
    if not before:
        engine.unordered()
    setting = "SELECT current_setting('preserve_insertion_order')"
    with engine.ordered():
        assert engine.scalar(setting) is True
    assert engine.scalar(setting) is before
    engine.close()
    backend.close()


def test_events_join_encounters_by_id_when_their_hashes_repeat(
    tmp_path: Path, synthea_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events find their encounter by a hash of its id (staged hashed: not staged again);
    were two encounters' hashes equal, by the ids themselves, each event file staged
    again with its ids' texts: both ways load the same rows."""
    from pmhub.cdm import schema
    from pmhub.cdm.backends import connect
    from pmhub.ingest import clinical

    asked: list[bool] = []
    hashes_repeat = clinical.Transform._encounter_hashes_repeat

    def spy(self: clinical.Transform) -> bool:
        asked.append(hashes_repeat(self))
        return asked[-1]

    def load(name: str) -> dict[str, list[tuple[object, ...]]]:
        backend = connect(f"duckdb:///{tmp_path / name}")
        schema.init_cdm(backend, source_name="s", abbreviation="s", holder="h")
        report = ingest(backend, "synthea-csv", synthea_dir)
        assert report.read == report.loaded
        rows = {t: backend.fetchall(f"SELECT * FROM {t} ORDER BY ALL") for t in CLINICAL}
        backend.close()
        return rows

    restaged: list[str] = []
    restage = clinical.Transform._restage

    def spy_restage(self: clinical.Transform, name: str) -> None:
        restaged.append(name)
        restage(self, name)

    monkeypatch.setattr(clinical.Transform, "_restage", spy_restage)
    monkeypatch.setattr(clinical.Transform, "_encounter_hashes_repeat", spy)
    by_hash = load("hash.duckdb")
    assert asked
    assert not any(asked)
    assert restaged == []
    monkeypatch.setattr(clinical.Transform, "_encounter_hashes_repeat", lambda self: True)
    by_id = load("id.duckdb")
    assert "observations" in restaged
    assert "conditions" in restaged
    assert by_hash == by_id
    assert by_hash["measurement"]
    assert all(row[14] is not None for row in by_hash["measurement"])  # each has its visit


def test_a_duckdb_cdw_is_written_without_rle_and_gets_its_setting_back(
    tmp_path: Path, synthea_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CDM tables are written with run-length encoding disabled (as cheap to store,
    cheaper to write); the methods the connection had disabled before stay disabled
    during the load and are all that is disabled after it."""
    from pmhub.cdm import schema
    from pmhub.cdm.backends import connect
    from pmhub.cdm.backends.duckdb import DuckDBBackend
    from pmhub.ingest.engine import Engine

    seen: list[str] = []
    publish = Engine.publish

    def spy(self: Engine, stage_table: str, cdm_table: str) -> int:
        seen.append(str(self.scalar("SELECT current_setting('disabled_compression_methods')")))
        return publish(self, stage_table, cdm_table)

    monkeypatch.setattr(Engine, "publish", spy)
    backend = connect(f"duckdb:///{tmp_path / 'site.duckdb'}")
    assert isinstance(backend, DuckDBBackend)
    schema.init_cdm(backend, source_name="s", abbreviation="s", holder="h")
    backend.con.execute("SET disabled_compression_methods = 'patas'")
    ingest(backend, "synthea-csv", synthea_dir)
    after = backend.con.execute("SELECT current_setting('disabled_compression_methods')")
    assert after.fetchall() == [("Patas",)]
    backend.close()
    assert seen
    assert {frozenset(s.lower().split(",")) for s in seen} == {frozenset({"patas", "rle"})}


@pytest.mark.parametrize(
    ("keys", "repeats", "expected"),
    [
        ([1, 2, 3], [], False),  # no hash repeats among the file's ids
        ([1, 2, 3], [1], False),  # a repeat among ids set aside (a duplicate), not valid ones
        ([1, 1, 3], [1], True),  # two valid encounters with one hash: ids are joined
    ],
)
def test_repeated_encounter_hashes_are_told(
    tmp_path: Path, keys: list[int], repeats: list[int], expected: bool
) -> None:
    from pmhub.cdm.backends import connect
    from pmhub.ingest import clinical
    from pmhub.ingest.engine import STAGE, Engine

    backend = connect(f"duckdb:///{tmp_path / 'site.duckdb'}")
    engine = Engine(backend)
    try:
        engine.run(f"CREATE TABLE {STAGE}.enc_visit (id_key UBIGINT)")
        engine.run(f"INSERT INTO {STAGE}.enc_visit SELECT unnest(?::UBIGINT[])", [keys])
        engine.run(f"CREATE TABLE {STAGE}.rep_encounters (h UBIGINT)")
        engine.run(f"INSERT INTO {STAGE}.rep_encounters SELECT unnest(?::UBIGINT[])", [repeats])
        transform = clinical.Transform(engine, {}, "2026-01-01", set())
        assert transform._encounter_hashes_repeat() is expected
        transform._encounters_by_hash = not transform._encounter_hashes_repeat()  # (_events)
        assert transform._encounter_join() == (
            "ev.id = t.encounter" if expected else "ev.id_key = hash(t.encounter)"
        )
        assert transform._encounter_join(hashed=True) == (
            "ev.id = t.encounter" if expected else "ev.id_key = t.encounter_h"
        )
    finally:
        engine.close()
        backend.close()
