"""Synthea-format CSV: exactly Synthea's files and columns, and Synthea's conventions."""

from __future__ import annotations

import csv
import os
import re
import uuid
from importlib import resources
from pathlib import Path

import pytest

from pmhub.synth import synthea
from pmhub.synth.service import SynthResult, generate

from .conftest import read_csv

# the shared reference folder sits next to the repository (../shared/reference), if at all
REFERENCE_DIR = Path(
    os.environ.get(
        "PMHUB_REFERENCE_DIR", Path(__file__).resolve().parents[3] / "shared" / "reference"
    )
)
REFERENCE = REFERENCE_DIR / "synthea" / "synthea_csv_columns.csv"
INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    out = tmp_path_factory.mktemp("synthea") / "net"
    return generate(out, fmt="synthea-csv", sites=3, patients=300, years=4, seed=5, workers=1)


def packaged_layout() -> list[tuple[str, str, str]]:
    path = resources.files("pmhub.synth").joinpath("data", "synthea_csv_columns.csv")
    with path.open(encoding="utf-8") as handle:
        return [(r["file"], r["position"], r["column"]) for r in csv.DictReader(handle)]


def test_the_packaged_layout_is_the_reference() -> None:
    if not REFERENCE.is_file():
        pytest.skip("the shared reference folder is not on this machine")
    with REFERENCE.open(encoding="utf-8") as handle:
        reference = [(r["file"], r["position"], r["column"]) for r in csv.DictReader(handle)]
    assert packaged_layout() == reference


def test_every_file_has_exactly_synthea_s_header(net: SynthResult) -> None:
    expected: dict[str, list[str]] = {}
    for file, _, column in packaged_layout():
        expected.setdefault(file, []).append(column)
    assert len(expected) == 18
    for site in ("chuncheon_univ", "gangneung_general", "jeongseon_county"):
        files = sorted(p.name for p in (net.folder / site).glob("*.csv"))
        assert files == sorted([*expected, "notes.csv", "note_spans.csv"])
        for file, names in expected.items():
            first = (net.folder / site / file).read_text(encoding="utf-8").split("\n", 1)[0]
            assert first == ",".join(names), file


def _rows(net: SynthResult, site: str, file: str) -> list[dict[str, str]]:
    return read_csv(net.folder / site / file)


def test_ids_are_uuids_and_references_resolve(net: SynthResult) -> None:
    for site in ("chuncheon_univ", "gangneung_general", "jeongseon_county"):
        patients = {r["Id"] for r in _rows(net, site, "patients.csv")}
        encounters = {r["Id"] for r in _rows(net, site, "encounters.csv")}
        organizations = {r["Id"] for r in _rows(net, site, "organizations.csv")}
        providers = {r["Id"] for r in _rows(net, site, "providers.csv")}
        payers = {r["Id"] for r in _rows(net, site, "payers.csv")}
        for value in patients | encounters | organizations | providers | payers:
            assert uuid.UUID(value).version == 4
        for row in _rows(net, site, "encounters.csv"):
            assert row["PATIENT"] in patients
            assert row["ORGANIZATION"] in organizations
            assert row["PROVIDER"] in providers
            assert row["PAYER"] in payers
        for file in ("conditions.csv", "medications.csv", "observations.csv", "procedures.csv"):
            for row in _rows(net, site, file):
                assert row["PATIENT"] in patients, file
                assert row["ENCOUNTER"] in encounters, file
        assert {r["PATIENT"] for r in _rows(net, site, "payer_transitions.csv")} == patients


def test_values_follow_synthea_conventions(net: SynthResult) -> None:
    site = "gangneung_general"
    for row in _rows(net, site, "encounters.csv"):
        assert INSTANT.fullmatch(row["START"])
        assert INSTANT.fullmatch(row["STOP"])
        assert row["START"] <= row["STOP"]
        assert row["ENCOUNTERCLASS"] in {"ambulatory", "wellness", "emergency", "inpatient"}
        assert row["CODE"].isdigit()
        float(row["TOTAL_CLAIM_COST"])
    for row in _rows(net, site, "patients.csv"):
        assert DATE.fullmatch(row["BIRTHDATE"])
        assert row["GENDER"] in {"M", "F"}
        assert "," not in row["ADDRESS"]
    for row in _rows(net, site, "conditions.csv"):
        assert DATE.fullmatch(row["START"])
        assert row["CODE"].isdigit()  # SNOMED CT
    for row in _rows(net, site, "medications.csv"):
        assert INSTANT.fullmatch(row["START"])
        assert row["CODE"].isdigit()  # RxNorm
    for row in _rows(net, site, "observations.csv"):
        assert INSTANT.fullmatch(row["DATE"])
        assert re.fullmatch(r"\d+-\d", row["CODE"])  # LOINC
        assert row["TYPE"] in {"numeric", "text"}
        if row["TYPE"] == "numeric":
            float(row["VALUE"])
    for row in _rows(net, site, "procedures.csv"):
        assert INSTANT.fullmatch(row["START"])
        assert row["CODE"].isdigit()


def test_codes_are_those_of_the_shipped_vocabulary(net: SynthResult) -> None:
    folder = resources.files("pmhub.cdm").joinpath("data", "vocabulary")
    codes: dict[str, set[str]] = {}
    for name in ("CONCEPT.csv", "EXTRA_CONCEPTS.csv"):
        with folder.joinpath(name).open(encoding="utf-8") as handle:
            for r in csv.DictReader(handle):
                codes.setdefault(r["vocabulary_id"], set()).add(r["concept_code"])
    for site in ("chuncheon_univ", "jeongseon_county"):
        assert {r["CODE"] for r in _rows(net, site, "conditions.csv")} <= codes["SNOMED"]
        assert {r["CODE"] for r in _rows(net, site, "medications.csv")} <= codes["RxNorm"]
        assert {r["CODE"] for r in _rows(net, site, "procedures.csv")} <= codes["SNOMED"]
        loinc = {r["CODE"] for r in _rows(net, site, "observations.csv")}
        assert loinc <= codes["LOINC"]


def test_the_column_layout_reader_matches_the_writer() -> None:
    layout = synthea.columns()
    assert layout["patients.csv"][:3] == ["Id", "BIRTHDATE", "DEATHDATE"]
    assert layout["encounters.csv"][-1] == "REASONDESCRIPTION"


SITES = ("chuncheon_univ", "gangneung_general", "jeongseon_county")


def test_the_secondary_files_hold_rows_that_reference_the_record(net: SynthResult) -> None:
    counts: dict[str, int] = {}
    for site in SITES:
        patients = {r["Id"]: r for r in _rows(net, site, "patients.csv")}
        encounters = {r["Id"]: r for r in _rows(net, site, "encounters.csv")}
        for file in (
            "immunizations.csv",
            "allergies.csv",
            "careplans.csv",
            "imaging_studies.csv",
            "devices.csv",
            "supplies.csv",
        ):
            rows = _rows(net, site, file)
            counts[file] = counts.get(file, 0) + len(rows)
            for row in rows:
                assert row["PATIENT"] in patients, file
                assert encounters[row["ENCOUNTER"]]["PATIENT"] == row["PATIENT"], file
        claims = {r["Id"]: r for r in _rows(net, site, "claims.csv")}
        assert {r["APPOINTMENTID"] for r in claims.values()} == set(encounters)
        for row in claims.values():
            assert encounters[row["APPOINTMENTID"]]["PATIENT"] == row["PATIENTID"]
        paid: dict[str, float] = {}
        charged: dict[str, float] = {}
        for row in _rows(net, site, "claims_transactions.csv"):
            assert row["CLAIMID"] in claims
            target = charged if row["TYPE"] == "CHARGE" else paid
            target[row["CLAIMID"]] = target.get(row["CLAIMID"], 0.0) + float(row["AMOUNT"])
        assert set(charged) == set(claims)
        for claim, amount in charged.items():
            assert paid[claim] == pytest.approx(amount, abs=0.02)
            cost = float(encounters[claims[claim]["APPOINTMENTID"]]["TOTAL_CLAIM_COST"])
            assert amount == pytest.approx(cost, abs=0.01)
    for file in ("immunizations.csv", "allergies.csv", "careplans.csv", "imaging_studies.csv"):
        assert counts[file] > 0, file


def test_vaccines_follow_the_national_immunization_program(net: SynthResult) -> None:
    seen = 0
    for site in SITES:
        birth = {r["Id"]: r["BIRTHDATE"] for r in _rows(net, site, "patients.csv")}
        flu_seasons: set[tuple[str, str]] = set()
        pneumo: set[str] = set()
        for row in _rows(net, site, "immunizations.csv"):
            seen += 1
            assert INSTANT.fullmatch(row["DATE"])
            born = birth[row["PATIENT"]]
            age = int(row["DATE"][:4]) - int(born[:4]) - (row["DATE"][5:10] < born[5:10])
            assert age >= 65
            assert row["CODE"] in {"140", "33"}
            if row["CODE"] == "140":
                assert row["DATE"][5:7] in {"10", "11", "12"}
                season = (row["PATIENT"], row["DATE"][:4])
                assert season not in flu_seasons  # once a season
                flu_seasons.add(season)
            else:
                assert row["PATIENT"] not in pneumo  # once in a life
                pneumo.add(row["PATIENT"])
    assert seen > 0


def test_secondary_codes_follow_synthea(net: SynthResult) -> None:
    for site in SITES:
        conditions = {r["CODE"] for r in _rows(net, site, "conditions.csv")}
        for row in _rows(net, site, "careplans.csv"):
            assert row["CODE"].isdigit()
            assert row["REASONCODE"] in conditions
            assert row["STOP"] == "" or row["STOP"] >= row["START"]
        for row in _rows(net, site, "allergies.csv"):
            assert DATE.fullmatch(row["START"])
            assert row["SYSTEM"] in {"RxNorm", "SNOMED-CT"}
            assert row["CATEGORY"] in {"medication", "food", "environment"}
            assert row["SEVERITY1"] in {"MILD", "MODERATE", "SEVERE"}
        procedures = {r["CODE"] for r in _rows(net, site, "procedures.csv")}
        for row in _rows(net, site, "imaging_studies.csv"):
            assert row["MODALITY_CODE"] in {"DX", "CT", "MG", "US"}
            assert row["SOP_CODE"].startswith("1.2.840.10008.5.1.4.1.1.")
            assert row["PROCEDURE_CODE"] in procedures
            assert row["INSTANCE_UID"].startswith(row["SERIES_UID"] + ".")
        for row in _rows(net, site, "devices.csv"):
            assert re.fullmatch(r"\(01\)\d{14}\(11\)\d{6}\(17\)\d{6}\(10\)\d+\(21\)\d+", row["UDI"])
