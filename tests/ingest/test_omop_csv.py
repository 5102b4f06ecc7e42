"""OMOP CSV folders (CDM 5.3 and 5.4) into a CDW, on both backends."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from pmhub.cdm.backends import Backend
from pmhub.cdm.spec import table
from pmhub.ingest import ingest
from pmhub.ingest.errors import EmptyInputError, InputFormatError

from .conftest import FIXTURES, account, balanced, quarantine

EXPORTED = [
    "person",
    "visit_occurrence",
    "visit_detail",
    "condition_occurrence",
    "drug_exposure",
    "measurement",
    "observation",
    "death",
]


@pytest.fixture
def omop53(tmp_path: Path) -> Path:
    target = tmp_path / "omop53"
    shutil.copytree(FIXTURES / "omop53", target)
    return target


def export_csv(backend: Backend, folder: Path, tables: list[str]) -> None:
    """Write CDM tables as another CDM tool would: one CSV per table, a header row."""
    folder.mkdir()
    for name in tables:
        columns = list(table(name).column_names)
        data = backend.fetchall(f"SELECT {', '.join(columns)} FROM {name} ORDER BY 1")
        lines = [",".join(columns)]
        for row in data:
            lines.append(",".join(_cell(v) for v in row))
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = value.isoformat(sep=" ") if isinstance(value, dt.datetime) else str(value)
    return '"' + text.replace('"', '""') + '"' if "," in text or '"' in text else text


def snapshot(backend: Backend, tables: list[str]) -> dict[str, list[tuple[object, ...]]]:
    return {
        name: backend.fetchall(
            f"SELECT {', '.join(table(name).column_names)} FROM {name} ORDER BY 1, 2"
        )
        for name in tables
    }


def test_cdm54_export_round_trips(cdm_backend: Backend, synthea_dir: Path, tmp_path: Path) -> None:
    ingest(cdm_backend, "synthea-csv", synthea_dir)
    export_csv(cdm_backend, tmp_path / "export", EXPORTED)
    expected = snapshot(cdm_backend, EXPORTED)
    # the same backend kind, a fresh CDW: load the export and compare table by table
    for name in EXPORTED:
        cdm_backend.execute(f"DELETE FROM {name}")
    cdm_backend.execute("DELETE FROM pmhub_load_log")
    report = ingest(cdm_backend, "omop-csv", tmp_path / "export")
    assert balanced(report)
    assert report.quarantined == 0
    assert snapshot(cdm_backend, EXPORTED) == expected


def test_cdm53_tab_separated_mixed_case(cdm_backend: Backend, omop53: Path) -> None:
    report = ingest(cdm_backend, "omop-csv", omop53)
    assert report.quarantined == 0
    assert account(report, "PERSON.tsv") == (2, 2, 0)
    assert account(report, "Visit_Occurrence.csv") == (2, 2, 0)
    assert "cdm_source.csv" in report.ignored
    visits = cdm_backend.fetchall(
        "SELECT visit_occurrence_id, admitted_from_concept_id, admitted_from_source_value, "
        "discharged_to_concept_id, discharged_to_source_value, visit_start_date "
        "FROM visit_occurrence ORDER BY 1"
    )
    assert visits[0] == (5001, 8870, "ER", 8536, "home", dt.date(2020, 3, 1))
    assert visits[1][5] == dt.date(2021, 4, 12)  # YYYYMMDD
    # the source's ids are kept, and its person_source_value joins the person map
    assert cdm_backend.fetchall("SELECT person_id FROM pmhub_person_map ORDER BY 1") == [
        (101,),
        (102,),
    ]
    # no observation_period in the source: derived from the events
    assert cdm_backend.count("observation_period") == 2


def test_spec_violations_are_quarantined(cdm_backend: Backend, omop53: Path) -> None:
    path = omop53 / "condition_occurrence.csv"
    with path.open("a") as fh:
        fh.write("9001,101,201826,2020-03-02,,,,32817,0,,,5001,,E11.9,0,\n")  # duplicate id
        fh.write("9003,999,201826,2020-03-02,,,,32817,0,,,,,E11.9,0,\n")  # no such person
        fh.write("9004,101,abc,2020-03-02,,,,32817,0,,,,,E11.9,0,\n")  # not an integer
        fh.write("9005,101,201826,2020-02-30,,,,32817,0,,,,,E11.9,0,\n")  # no such date
        fh.write("9006,101,201826,2020-03-02,,,,,0,,,,,E11.9,0,\n")  # required type missing
        fh.write(f"9007,101,201826,2020-03-02,,,,32817,0,,,,,{'x' * 51},0,\n")  # too long
        fh.write("9008,101,201826,2020-03-02,,,,32817,0,,,7777,,E11.9,0,\n")  # no such visit
    report = ingest(cdm_backend, "omop-csv", omop53)
    assert account(report, "condition_occurrence.csv") == (9, 2, 7)
    got = [(q[1], q[2]) for q in quarantine(cdm_backend) if q[0] == "condition_occurrence.csv"]
    assert got == [
        (4, "condition_occurrence_id"),
        (5, "person_id"),
        (6, "condition_concept_id"),
        (7, "condition_start_date"),
        (8, "condition_type_concept_id"),
        (9, "condition_source_value"),
        (10, "visit_occurrence_id"),
    ]


def test_ids_already_in_the_cdw_are_quarantined(
    cdm_backend: Backend, omop53: Path, tmp_path: Path
) -> None:
    ingest(cdm_backend, "omop-csv", omop53)
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(omop53 / "PERSON.tsv", again / "person.tsv")
    path = again / "person.tsv"
    path.write_text(path.read_text().replace("KR-0002", "KR-0002b"))  # another file's bytes
    report = ingest(cdm_backend, "omop-csv", again)
    assert account(report, "person.tsv") == (2, 0, 2)
    reasons = [q[3] for q in quarantine(cdm_backend)]
    assert all("already in the CDW" in r for r in reasons)
    assert cdm_backend.count("person") == 2


def test_missing_required_column_and_empty_folder(
    cdm_backend: Backend, omop53: Path, tmp_path: Path
) -> None:
    path = omop53 / "condition_occurrence.csv"
    path.write_text(path.read_text().replace("condition_type_concept_id", "condition_typ"))
    with pytest.raises(InputFormatError, match="condition_type_concept_id"):
        ingest(cdm_backend, "omop-csv", omop53)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyInputError):
        ingest(cdm_backend, "omop-csv", tmp_path / "empty")
