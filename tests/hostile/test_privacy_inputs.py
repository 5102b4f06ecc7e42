"""The privacy verbs given hostile input: notes cut short, in CP949 or with a BOM, bad
options, wrong kinds of path; tables in CP949; pmhub's own generated locations under the
region hierarchy. These verbs read files, not a CDW: they run once, on no backend.

A refused input writes nothing (no output folder); an accepted one writes every note."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml

from .conftest import Result, cli, refused

NOTES_FORMAT = 78
PRIVACY_INPUT = 76
PROJECT = "hostile"


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small network from pmhub's own generator (one site, 200 people, 2 years)."""
    from pmhub.synth.service import generate

    out = tmp_path_factory.mktemp("network") / "synth"
    generate(out, sites=1, patients=200, years=2, seed=7, fmt="omop", workers=1)
    [site] = [p for p in out.iterdir() if (p / "notes.csv").exists()]
    return site


@pytest.fixture
def key(capsys: pytest.CaptureFixture[str]) -> str:
    assert cli(capsys, "privacy", "key-create", "--project", PROJECT).code == 0
    return PROJECT


def deid(capsys: pytest.CaptureFixture[str], notes: Path, out: Path, *extra: str) -> Result:
    return cli(
        capsys,
        "privacy",
        "deid-text",
        "--input",
        str(notes),
        "--out",
        str(out),
        "--project",
        PROJECT,
        *extra,
    )


def notes_of(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def a_name(network: Path) -> str:
    """A patient's name as the generator wrote it in the first note."""
    first = notes_of(network / "notes.csv")[0]["note_text"]
    return first.splitlines()[1].split()[0]


# --- deid-text: cut short ---------------------------------------------------------------


def test_notes_cut_mid_note_are_refused_and_the_whole_file_works(
    capsys: pytest.CaptureFixture[str], key: str, network: Path, tmp_path: Path
) -> None:
    whole = (network / "notes.csv").read_text(encoding="utf-8")
    name = a_name(network)
    cut = whole.index(name) + 1  # inside the first patient's name
    truncated = tmp_path / "cut.csv"
    truncated.write_text(whole[:cut], encoding="utf-8")
    result = deid(capsys, truncated, tmp_path / "out")
    refused(result, NOTES_FORMAT, "without a line break", "copy the whole file again")
    assert not (tmp_path / "out").exists()
    # the hint: the whole file
    result = deid(capsys, network / "notes.csv", tmp_path / "out")
    assert result.code == 0, result.text
    released = (tmp_path / "out" / "notes.csv").read_text(encoding="utf-8")
    assert name not in released


def test_notes_cut_inside_a_quoted_note_after_a_line_break(
    capsys: pytest.CaptureFixture[str], key: str, network: Path, tmp_path: Path
) -> None:
    whole = (network / "notes.csv").read_text(encoding="utf-8")
    second = whole.index("\n2,")  # the second note's first line …
    cut = whole.index("\n", second + 40) + 1  # … and one line of its text
    truncated = tmp_path / "cut.csv"
    truncated.write_text(whole[:cut], encoding="utf-8")
    result = deid(capsys, truncated, tmp_path / "out")
    refused(result, NOTES_FORMAT, "not valid CSV", "copy the whole file again")
    assert not (tmp_path / "out").exists()


def test_a_complete_file_without_a_final_line_break_and_the_hint(
    capsys: pytest.CaptureFixture[str], key: str, tmp_path: Path
) -> None:
    path = tmp_path / "notes.csv"
    path.write_text(
        "note_id,person_id,note_date,note_title,note_text\n1,7,2024-01-02,t,김철수 환자"
    )
    refused(deid(capsys, path, tmp_path / "out"), NOTES_FORMAT, "line break")
    with path.open("a", encoding="utf-8") as handle:  # the hint: end it with a line break
        handle.write("\n")
    result = deid(capsys, path, tmp_path / "out", "--names", str(names(tmp_path, "김철수")))
    assert result.code == 0, result.text
    assert "김철수" not in (tmp_path / "out" / "notes.csv").read_text(encoding="utf-8")


def names(tmp_path: Path, name: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / f"names-{encoding}.csv"
    path.write_bytes(f"person_id,name\n,{name}\n".encode(encoding))
    return path


# --- deid-text: encodings, BOM, CRLF ---------------------------------------------------------


@pytest.mark.parametrize("encoding", ["cp949", "utf-8-sig"])
def test_notes_in_cp949_or_with_a_bom_are_read(
    capsys: pytest.CaptureFixture[str], key: str, network: Path, tmp_path: Path, encoding: str
) -> None:
    text = (network / "notes.csv").read_text(encoding="utf-8")
    path = tmp_path / "notes.csv"
    path.write_bytes(text.replace("\n", "\r\n").encode(encoding, errors="replace"))
    name = a_name(network)
    result = deid(capsys, path, tmp_path / "out", "--names", str(names(tmp_path, name, "cp949")))
    assert result.code == 0, result.text
    released = notes_of(tmp_path / "out" / "notes.csv")
    assert len(released) == len(notes_of(network / "notes.csv"))
    assert all(name not in note["note_text"] for note in released)


def test_notes_neither_utf8_nor_cp949(
    capsys: pytest.CaptureFixture[str], key: str, tmp_path: Path
) -> None:
    path = tmp_path / "notes.csv"
    path.write_bytes(
        b"note_id,person_id,note_date,note_title,note_text\n1,7,2024-01-02,t,\xff\xfe\n"
    )
    refused(deid(capsys, path, tmp_path / "out"), NOTES_FORMAT, "neither UTF-8 nor CP949")
    assert not (tmp_path / "out").exists()


# --- deid-text: options and paths ----------------------------------------------------------


def test_a_bad_mode_and_the_hint(
    capsys: pytest.CaptureFixture[str], key: str, network: Path, tmp_path: Path
) -> None:
    result = deid(capsys, network / "notes.csv", tmp_path / "out", "--mode", "redact")
    refused(result, PRIVACY_INPUT, "tag or surrogate", "--mode tag")
    assert "readable CSV" not in result.err
    # the hint: --mode surrogate (or tag)
    result = deid(capsys, network / "notes.csv", tmp_path / "out", "--mode", "surrogate")
    assert result.code == 0, result.text


@pytest.mark.parametrize("days", ["0", "-3", "3651"])
def test_a_bad_max_days_and_the_hint(
    capsys: pytest.CaptureFixture[str], key: str, network: Path, tmp_path: Path, days: str
) -> None:
    result = deid(capsys, network / "notes.csv", tmp_path / "out", "--max-days", days)
    refused(result, PRIVACY_INPUT, "1 to 3,650", "--max-days between 1 and 3,650")
    result = deid(capsys, network / "notes.csv", tmp_path / "out", "--max-days", "3650")
    assert result.code == 0, result.text


def test_a_folder_where_the_notes_file_is_expected(
    capsys: pytest.CaptureFixture[str], key: str, tmp_path: Path
) -> None:
    (tmp_path / "notes.csv").mkdir()
    refused(deid(capsys, tmp_path / "notes.csv", tmp_path / "out"), NOTES_FORMAT, "folder")


def test_notes_without_their_columns(
    capsys: pytest.CaptureFixture[str], key: str, tmp_path: Path
) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("id,text\n1,김철수\n")
    refused(deid(capsys, path, tmp_path / "out"), NOTES_FORMAT, "note_text")


def test_an_empty_notes_file(capsys: pytest.CaptureFixture[str], key: str, tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_bytes(b"")
    refused(deid(capsys, path, tmp_path / "out"), NOTES_FORMAT, "empty")


def test_a_stray_quote_is_refused(
    capsys: pytest.CaptureFixture[str], key: str, tmp_path: Path
) -> None:
    path = tmp_path / "notes.csv"
    path.write_text('note_id,person_id,note_date,note_title,note_text\n1,7,2024-01-02,t,"a"b\n')
    refused(deid(capsys, path, tmp_path / "out"), NOTES_FORMAT, "not valid CSV")


# --- anonymize and risk: CP949 tables, generated locations -----------------------------


def anonymize(
    capsys: pytest.CaptureFixture[str], table: Path, policy: Path, out: Path, *extra: str
) -> Result:
    return cli(
        capsys,
        "privacy",
        "anonymize",
        "--input",
        str(table),
        "--policy",
        str(policy),
        "--out",
        str(out),
        *extra,
    )


def location_policy(tmp_path: Path, column: str) -> Path:
    raw = {
        "name": "locations",
        "dataset": "location",
        "version": 1,
        "project": PROJECT,
        "unlisted": "drop",
        "models": {"k": 5},
        "columns": {
            "location_id": {"action": "pseudonym"},
            column: {"action": "generalize", "hierarchy": {"type": "region"}},
        },
    }
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("column", ["city", "county", "state", "location_source_value"])
def test_the_region_hierarchy_takes_generated_locations(
    capsys: pytest.CaptureFixture[str], key: str, network: Path, tmp_path: Path, column: str
) -> None:
    result = anonymize(
        capsys,
        network / "location.csv",
        location_policy(tmp_path, column),
        tmp_path / "out",
        "--format",
        "csv",
    )
    assert result.code == 0, result.text
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["tables"]["location"]["achieved"]["models_hold"] is True


def test_an_ambiguous_region_among_several_provinces_is_named(
    capsys: pytest.CaptureFixture[str], key: str, tmp_path: Path
) -> None:
    rows = ["location_id,city", *(f"{n},{c}" for n, c in enumerate(["고성군", "춘천시", "창원시"]))]
    (tmp_path / "location.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = anonymize(
        capsys, tmp_path / "location.csv", location_policy(tmp_path, "city"), tmp_path / "out"
    )
    refused(result, 72, "강원특별자치도 고성군", "경상남도 고성군")
    assert not (tmp_path / "out").exists()


def test_anonymize_reads_a_cp949_table(
    capsys: pytest.CaptureFixture[str], key: str, network: Path, tmp_path: Path
) -> None:
    text = (network / "location.csv").read_text(encoding="utf-8")
    (tmp_path / "location.csv").write_bytes(text.encode("cp949"))
    result = anonymize(
        capsys,
        tmp_path / "location.csv",
        location_policy(tmp_path, "city"),
        tmp_path / "out",
        "--format",
        "csv",
    )
    assert result.code == 0, result.text
    released = (tmp_path / "out" / "location.csv").read_text(encoding="utf-8")
    assert "강원특별자치도" in released


def test_risk_reads_a_cp949_table(
    capsys: pytest.CaptureFixture[str], network: Path, tmp_path: Path
) -> None:
    text = (network / "location.csv").read_text(encoding="utf-8")
    (tmp_path / "location.csv").write_bytes(text.encode("cp949"))
    result = cli(
        capsys,
        "privacy",
        "risk",
        "--input",
        str(tmp_path / "location.csv"),
        "--qi",
        "city",
        "--json",
    )
    assert result.code == 0, result.text
    assert json.loads(result.out)["records"] == len(text.splitlines()) - 1


def test_anonymize_of_binary_garbage(
    capsys: pytest.CaptureFixture[str], key: str, tmp_path: Path
) -> None:
    (tmp_path / "location.csv").write_bytes(bytes(range(256)) * 64)
    result = anonymize(
        capsys, tmp_path / "location.csv", location_policy(tmp_path, "city"), tmp_path / "out"
    )
    assert result.code in (PRIVACY_INPUT, 71), result.text
    assert "Traceback" not in result.text
    assert not (tmp_path / "out").exists()


def test_anonymize_of_a_folder_without_the_table(
    capsys: pytest.CaptureFixture[str], key: str, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    result = anonymize(capsys, tmp_path / "in", location_policy(tmp_path, "city"), tmp_path / "out")
    refused(result, PRIVACY_INPUT, "no file for table 'location'")
    assert not (tmp_path / "out").exists()
