"""Bad input: a clear error, or quarantine with the reason; never a crash or a lost row."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmhub.cdm.backends import Backend
from pmhub.errors import CdwNotInitialisedError
from pmhub.ingest import ingest
from pmhub.ingest.errors import (
    EmptyInputError,
    EncodingError,
    InputFormatError,
    InputNotFoundError,
    UnknownFormatError,
)

from .conftest import account, append_line, balanced, quarantine

P1 = "b9c610cd-28a6-4636-ccb6-c7a0d2a4cb85"
E1 = "0b9f3c52-7d1f-4f1e-a4a3-6a1e2f9c0001"
PATIENT_TAIL = (
    ",,,,,,,,,M,white,nonhispanic,M,,1 Main St,Boston,Massachusetts,,02101,42.3,-71.0,0,0"
)


def patient_row(pid: str, birth: str, death: str = "") -> str:
    return f"{pid},{birth},{death}{PATIENT_TAIL}"


def reasons(backend: Backend, file: str) -> list[tuple[int, str, str]]:
    return [(line, field, reason) for f, line, field, reason, _ in quarantine(backend) if f == file]


def test_truncated_file_quarantines_the_cut_line(cdm_backend: Backend, synthea_dir: Path) -> None:
    encounters = synthea_dir / "encounters.csv"
    data = encounters.read_bytes()
    encounters.write_bytes(data[: len(data) - 60])  # cut inside the last row
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert balanced(report)
    assert account(report, "encounters.csv") == (8, 7, 1)
    [(line, _field, reason)] = reasons(cdm_backend, "encounters.csv")
    assert line == 9
    assert "too few fields" in reason
    # the condition of the lost encounter is set aside too, saying why
    orphans = reasons(cdm_backend, "conditions.csv")
    assert [(f, "not found in encounters" in r) for _, f, r in orphans] == [("ENCOUNTER", True)]


def test_wrong_delimiter_on_a_line(cdm_backend: Backend, synthea_dir: Path) -> None:
    append_line(synthea_dir / "conditions.csv", f"2020-01-01;;{P1};{E1};59621000;Hypertension")
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert account(report, "conditions.csv") == (8, 7, 1)
    [(line, _, reason)] = reasons(cdm_backend, "conditions.csv")
    assert line == 9
    assert "delimiter" in reason
    raw = [q[4] for q in quarantine(cdm_backend)]
    assert any("59621000;Hypertension" in r for r in raw)


def test_header_in_no_known_delimiter_is_an_error(cdm_backend: Backend, synthea_dir: Path) -> None:
    path = synthea_dir / "conditions.csv"
    path.write_text(path.read_text().replace(",", "#"))
    with pytest.raises(InputFormatError, match=r"conditions\.csv"):
        ingest(cdm_backend, "synthea-csv", synthea_dir)


def test_cp949_bytes_in_a_file_declared_utf8(cdm_backend: Backend, synthea_dir: Path) -> None:
    row = patient_row("a0000000-0000-4000-8000-00000000c949", "1980-01-01")
    row = row.replace("Boston", "춘천시")
    append_line(synthea_dir / "patients.csv", row, encoding="cp949")
    report = ingest(cdm_backend, "synthea-csv", synthea_dir, encoding="utf-8")
    assert account(report, "patients.csv") == (4, 3, 1)
    [(line, _, reason)] = reasons(cdm_backend, "patients.csv")
    assert line == 5
    assert "not UTF-8" in reason


def test_cp949_file_is_detected_and_transcoded(cdm_backend: Backend, synthea_dir: Path) -> None:
    path = synthea_dir / "patients.csv"
    text = path.read_text() + patient_row("a0000000-0000-4000-8000-00000000c949", "19800101")
    path.write_bytes(text.replace("Boston", "춘천시").encode("cp949"))
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert account(report, "patients.csv") == (4, 4, 0)
    assert next(f for f in report.files if f.file == "patients.csv").encoding == "cp949"
    # declared EUC-KR (CP949's subset) reads the same bytes the same way
    assert ingest(cdm_backend, "synthea-csv", synthea_dir, encoding="EUC-KR").read == 41
    cities = {r[0] for r in cdm_backend.fetchall("SELECT city FROM location")}
    assert "춘천시" in cities


def test_unknown_encoding_is_an_error(cdm_backend: Backend, synthea_dir: Path) -> None:
    with pytest.raises(EncodingError):
        ingest(cdm_backend, "synthea-csv", synthea_dir, encoding="latin-9")


@pytest.mark.parametrize(
    ("birth", "death", "field", "reason"),
    [
        ("2023-02-30", "", "BIRTHDATE", "not a valid date: '2023-02-30'"),
        ("2999-01-01", "", "BIRTHDATE", "date in the future"),
        ("1990-05-05", "1980-01-01", "DEATHDATE", "before birth"),
        ("", "", "BIRTHDATE", "missing"),
    ],
)
def test_bad_patient_dates(
    cdm_backend: Backend, synthea_dir: Path, birth: str, death: str, field: str, reason: str
) -> None:
    append_line(synthea_dir / "patients.csv", patient_row("bad-1", birth, death))
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert account(report, "patients.csv") == (4, 3, 1)
    [(line, got_field, got_reason)] = reasons(cdm_backend, "patients.csv")
    assert (line, got_field) == (5, field)
    assert reason in got_reason


def test_korean_date_forms_are_read(cdm_backend: Backend, synthea_dir: Path) -> None:
    append_line(synthea_dir / "patients.csv", patient_row("kr-1", "19800102", "20200304 10:11:12"))
    append_line(synthea_dir / "patients.csv", patient_row("kr-2", "1981-02-03 04:05", ""))
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert report.quarantined == 0
    rows = cdm_backend.fetchall(
        "SELECT person_source_value, year_of_birth, month_of_birth, day_of_birth FROM person "
        "WHERE person_source_value LIKE 'kr-%' ORDER BY 1"
    )
    assert rows == [("kr-1", 1980, 1, 2), ("kr-2", 1981, 2, 3)]


def test_duplicate_ids_keep_the_first(cdm_backend: Backend, synthea_dir: Path) -> None:
    append_line(synthea_dir / "patients.csv", patient_row(P1, "1958-03-14"))
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert account(report, "patients.csv") == (4, 3, 1)
    [(line, field, reason)] = reasons(cdm_backend, "patients.csv")
    assert (line, field) == (5, "Id")
    assert "duplicate id" in reason
    assert "line 2" in reason


def test_orphan_foreign_keys(cdm_backend: Backend, synthea_dir: Path) -> None:
    ghost = "deadbeef-0000-4000-8000-000000000000"
    append_line(synthea_dir / "conditions.csv", f"2020-01-01,,{ghost},,59621000,Hypertension")
    append_line(synthea_dir / "conditions.csv", f"2020-01-01,,{P1},{ghost},59621000,Hypertension")
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert account(report, "conditions.csv") == (9, 7, 2)
    got = reasons(cdm_backend, "conditions.csv")
    assert [(line, field) for line, field, _ in got] == [(9, "PATIENT"), (10, "ENCOUNTER")]
    assert all(ghost in reason for _, _, reason in got)
    # (staged first with the ids hashed, then again with their texts: the reasons quote
    # them, and each set-aside row keeps its whole line)
    raw = {line: text for f, line, _, _, text in quarantine(cdm_backend) if f == "conditions.csv"}
    assert raw[10] == f"2020-01-01,,{P1},{ghost},59621000,Hypertension"


def test_an_event_of_another_patients_encounter(cdm_backend: Backend, synthea_dir: Path) -> None:
    # E1 is P1's encounter; an event of another known patient in it is set aside, and an
    # unknown patient in it as well
    other = "3b1e4b5f-2e6d-4c5e-9a0e-4d6b9c1f7a21"
    ghost = "deadbeef-0000-4000-8000-000000000000"
    append_line(synthea_dir / "conditions.csv", f"2020-01-01,,{other},{E1},59621000,x")
    append_line(synthea_dir / "conditions.csv", f"2020-01-01,,{ghost},{E1},59621000,x")
    append_line(synthea_dir / "conditions.csv", f"2020-01-01,,{P1},{E1},59621000,x")
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert balanced(report)
    assert account(report, "conditions.csv") == (10, 8, 2)
    got = reasons(cdm_backend, "conditions.csv")
    assert [(line, field) for line, field, _ in got] == [(9, "PATIENT"), (10, "PATIENT")]
    assert all("is not the patient of ENCOUNTER" in reason for _, _, reason in got)
    assert other in got[0][2]
    assert ghost in got[1][2]


def test_unknown_codes_load_as_concept_zero(cdm_backend: Backend, synthea_dir: Path) -> None:
    append_line(synthea_dir / "procedures.csv", f"2020-01-01,,{P1},{E1},12345,Made up,1,,")
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert report.quarantined == 0
    rows = cdm_backend.fetchall(
        "SELECT procedure_concept_id, procedure_source_concept_id FROM procedure_occurrence "
        "WHERE procedure_source_value = '12345'"
    )
    assert rows == [(0, 0)]


def test_ten_megabyte_field(cdm_backend: Backend, synthea_dir: Path) -> None:
    append_line(synthea_dir / "conditions.csv", f"2020-01-01,,{P1},{E1},59621000," + "x" * 10**7)
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert account(report, "conditions.csv") == (8, 7, 1)
    [(line, _, reason)] = reasons(cdm_backend, "conditions.csv")
    assert line == 9
    assert "line longer than" in reason
    raw = next(q[4] for q in quarantine(cdm_backend) if q[0] == "conditions.csv")
    assert 0 < len(raw) <= 10_000


def test_stop_before_start_and_overlong_code(cdm_backend: Backend, synthea_dir: Path) -> None:
    append_line(synthea_dir / "conditions.csv", f"2020-01-02,2020-01-01,{P1},{E1},59621000,x")
    append_line(synthea_dir / "conditions.csv", f"2020-01-02,,{P1},{E1},{'9' * 60},x")
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert account(report, "conditions.csv") == (9, 7, 2)
    assert [r for _, _, r in reasons(cdm_backend, "conditions.csv")] == [
        "STOP before START",
        "code longer than 50 characters",
    ]


def test_missing_required_column(cdm_backend: Backend, synthea_dir: Path) -> None:
    path = synthea_dir / "conditions.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line.rsplit(",", 2)[0] for line in lines) + "\n")
    with pytest.raises(InputFormatError, match="CODE"):
        ingest(cdm_backend, "synthea-csv", synthea_dir)


def test_empty_file_is_an_error(cdm_backend: Backend, synthea_dir: Path) -> None:
    (synthea_dir / "devices.csv").write_bytes(b"")
    with pytest.raises(InputFormatError, match="empty"):
        ingest(cdm_backend, "synthea-csv", synthea_dir)


def test_header_only_file_loads_nothing(cdm_backend: Backend, synthea_dir: Path) -> None:
    path = synthea_dir / "devices.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert account(report, "devices.csv") == (0, 0, 0)


def test_empty_folder(cdm_backend: Backend, tmp_path: Path) -> None:
    with pytest.raises(EmptyInputError):
        ingest(cdm_backend, "synthea-csv", tmp_path)


def test_missing_path_and_a_file_for_a_folder(cdm_backend: Backend, synthea_dir: Path) -> None:
    with pytest.raises(InputNotFoundError):
        ingest(cdm_backend, "synthea-csv", synthea_dir / "nope")
    with pytest.raises(InputFormatError, match="folder"):
        ingest(cdm_backend, "synthea-csv", synthea_dir / "patients.csv")


def test_unknown_format(cdm_backend: Backend, synthea_dir: Path) -> None:
    with pytest.raises(UnknownFormatError):
        ingest(cdm_backend, "hl7v2", synthea_dir)


def test_uninitialised_cdw(empty_backend: Backend, synthea_dir: Path) -> None:
    with pytest.raises(CdwNotInitialisedError):
        ingest(empty_backend, "synthea-csv", synthea_dir)


@pytest.mark.parametrize("fmt", [None, 3, ["synthea-csv"], "SYNTHEA"])
def test_wrong_typed_format(cdm_backend: Backend, synthea_dir: Path, fmt: object) -> None:
    with pytest.raises(UnknownFormatError):
        ingest(cdm_backend, fmt, synthea_dir)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", [None, 42, "", "a\x00b"])
def test_wrong_typed_path(cdm_backend: Backend, path: object) -> None:
    with pytest.raises(InputNotFoundError):
        ingest(cdm_backend, "synthea-csv", path)  # type: ignore[arg-type]


def test_a_string_path_works(cdm_backend: Backend, synthea_dir: Path) -> None:
    assert ingest(cdm_backend, "synthea-csv", str(synthea_dir)).read == 40


def test_binary_garbage_is_quarantined_line_by_line(
    cdm_backend: Backend, synthea_dir: Path
) -> None:
    header = (synthea_dir / "devices.csv").read_text().splitlines()[0]
    garbage = bytes(range(256)) * 40 + b"\n" + b"\x00\xff\xfe,,,\n"
    (synthea_dir / "devices.csv").write_bytes(header.encode() + b"\n" + garbage)
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert balanced(report)
    read, loaded, quarantined = account(report, "devices.csv")
    assert loaded == 0
    assert quarantined == read > 0


def test_a_folder_named_like_a_file_is_not_read(cdm_backend: Backend, synthea_dir: Path) -> None:
    (synthea_dir / "careplans.csv").mkdir()
    (synthea_dir / "notes.txt").write_text("hello")
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert report.quarantined == 0
    assert report.ignored["notes.txt"] == "not a CSV file"


def test_a_set_aside_row_keeps_its_whole_line(cdm_backend: Backend, synthea_dir: Path) -> None:
    # Only the columns the transform reads are staged; a row set aside still shows the
    # whole line, the columns not read (DESCRIPTION, costs, reasons) included.
    line = (
        "0b9f3c52-7d1f-4f1e-a4a3-6a1e2f9c0999,2015-05-10T09:12:00Z,2015-05-09T09:42:00Z,"
        f"{P1},,,,wellness,162673000,An unread description,1.50,2.50,0.00,,Unread reason"
    )
    append_line(synthea_dir / "encounters.csv", line)
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert balanced(report)
    [(file, _, field, reason, raw)] = [q for q in quarantine(cdm_backend) if "STOP" in q[2]]
    assert (file, field) == ("encounters.csv", "STOP")
    assert "STOP before START" in reason
    assert raw == line


def test_bad_bytes_in_a_column_not_read(cdm_backend: Backend, synthea_dir: Path) -> None:
    # BIRTHPLACE is not read, but a file with such bytes is read whole: the reader
    # refuses the line, and it is counted once
    row = patient_row("a0000000-0000-4000-8000-00000000c949", "1980-01-01")
    row = row.replace(",M,,1 Main St", ",M,춘천시,1 Main St")
    assert "춘천시" in row
    append_line(synthea_dir / "patients.csv", row, encoding="cp949")
    report = ingest(cdm_backend, "synthea-csv", synthea_dir, encoding="utf-8")
    assert balanced(report)
    assert account(report, "patients.csv") == (4, 3, 1)
    [(line, _, reason)] = reasons(cdm_backend, "patients.csv")
    assert line == 5
    assert "not UTF-8" in reason


def test_encounters_of_unknown_patients_providers_and_organizations(
    cdm_backend: Backend, synthea_dir: Path
) -> None:
    """Encounters are joined to persons, providers and organizations by the hashes of
    their ids; one set aside gets the same reasons, quoting the ids as written, and its
    whole line, as if they had been joined by the texts."""
    ghost = "deadbeef-0000-4000-8000-000000000000"
    org = "d78e84ec-30aa-3bba-a33a-f29a3a454662"
    provider = "c7b6b8a4-2c61-3a66-b0b4-9b0e1c6c6a11"
    rest = ",,wellness,162673000,General examination,1.00,1.00,0.00,,"
    lines = [
        f"0b9f3c52-7d1f-4f1e-a4a3-6a1e2f9c0901,2016-01-01T09:00:00Z,,{ghost},{org},{provider}",
        f"0b9f3c52-7d1f-4f1e-a4a3-6a1e2f9c0902,2016-01-01T09:00:00Z,,{P1},{ghost},{provider}",
        f"0b9f3c52-7d1f-4f1e-a4a3-6a1e2f9c0903,2016-01-01T09:00:00Z,,{P1},{org},{ghost}",
    ]
    for line in lines:
        append_line(synthea_dir / "encounters.csv", line + rest)
    report = ingest(cdm_backend, "synthea-csv", synthea_dir)
    assert balanced(report)
    assert account(report, "encounters.csv") == (11, 8, 3)
    got = reasons(cdm_backend, "encounters.csv")
    assert [(line, field) for line, field, _ in got] == [
        (10, "PATIENT"),
        (11, "ORGANIZATION"),
        (12, "PROVIDER"),
    ]
    assert all(ghost in reason for _, _, reason in got)
    raw = {line: text for f, line, _, _, text in quarantine(cdm_backend) if f == "encounters.csv"}
    assert [raw[n] for n in (10, 11, 12)] == [line + rest for line in lines]
