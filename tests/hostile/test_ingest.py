"""`pmhub ingest` given hostile input: oversized, malformed, wrong-typed, truncated, in the
wrong encoding, with odd names and links; every row loaded or quarantined, with the
reason, and exit codes and hints that say what to do."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Result, Site, accounted, cli, refused, unchanged, write

FIXTURES = Path(__file__).parents[1] / "ingest" / "fixtures"
P1 = "b9c610cd-28a6-4636-ccb6-c7a0d2a4cb85"
E1 = "0b9f3c52-7d1f-4f1e-a4a3-6a1e2f9c0001"
MB = 1024 * 1024
QUARANTINED = 56


def observation(value: str, code: str = "8302-2") -> str:
    return f"2015-04-10T09:12:00Z,{P1},{E1},vital-signs,{code},Body Height,{value},cm,numeric"


@pytest.fixture
def export(tmp_path: Path) -> Path:
    target = tmp_path / "synthea"
    shutil.copytree(FIXTURES / "synthea", target)
    return target


def ingest(capsys: pytest.CaptureFixture[str], site: Site, path: Path, *extra: str) -> Result:
    return cli(capsys, "ingest", "--site", site.name, str(path), *extra)


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def ingest_refused(
    capsys: pytest.CaptureFixture[str], site: Site, path: Path, code: int, *words: str
) -> None:
    """The import is refused with ``code`` and ``words``, and the CDW left as it was."""
    before = site.counts()
    refused(ingest(capsys, site, path), code, *words)
    unchanged(site, before)


def reasons(load: dict[str, object], file: str) -> list[tuple[int, str]]:
    rows = load["quarantine"]
    assert isinstance(rows, list)
    return [(int(r[1]), str(r[3])) for r in rows if r[0] == file]


# --- lines of any length --------------------------------------------------------------


def test_a_25_mb_field_is_quarantined_not_dropped(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path
) -> None:
    path = export / "observations.csv"
    lines = lines_of(path)
    lines.insert(3, observation("9" * (25 * MB)))
    path.write_text("\n".join(lines) + "\n")
    before = site.counts()
    result = ingest(capsys, site, export)
    refused(result, QUARANTINED, "line longer than 2,000,000 bytes")
    load = accounted(site, before)
    assert load["files"]["observations.csv"] == (len(lines) - 1, len(lines) - 2, 1)  # type: ignore[index]
    [(line, reason)] = reasons(load, "observations.csv")
    assert line == 4
    assert f"({len(lines[3]):,})" in reason
    raw = next(r[4] for r in load["quarantine"] if r[1] == 4)  # type: ignore[attr-defined]
    assert raw.startswith(lines[3][:100])


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_lines_of_many_sizes_keep_their_numbers(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path, newline: str
) -> None:
    """33 MB (which DuckDB's reader drops), two of 20 MB in a row (one of which it drops),
    3 MB (which it rejects itself), then a bad line whose number must still be right."""
    path = export / "observations.csv"
    lines = lines_of(path)
    for at, size in ((1, 33), (3, 20), (4, 20), (6, 3)):
        lines.insert(at, observation("7" * (size * MB)))
    lines.append("a,short,line")
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    before = site.counts()
    refused(ingest(capsys, site, export), QUARANTINED)
    load = accounted(site, before)
    found = reasons(load, "observations.csv")
    assert [n for n, _ in found] == [2, 4, 5, 7, len(lines)]
    assert all("line longer" in r for _, r in found[:4])
    assert "too few fields" in found[4][1]


def test_a_line_without_any_break_at_the_end(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path
) -> None:
    path = export / "conditions.csv"
    with path.open("a") as handle:
        handle.write(f"2020-01-01,,{P1},{E1},59621000," + "x" * (3 * MB))  # no line break
    before = site.counts()
    refused(ingest(capsys, site, export), QUARANTINED, "line longer")
    accounted(site, before)


# --- numbers that are not ------------------------------------------------------------


@pytest.mark.parametrize("value", ["NaN", "nan", "Infinity", "-inf", "1e999", " +Inf "])
def test_non_finite_measurements_are_quarantined(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path, value: str
) -> None:
    path = export / "observations.csv"
    with path.open("a") as handle:
        handle.write(observation(value) + "\n")
    before = site.counts()
    refused(ingest(capsys, site, export), QUARANTINED, "not a finite number")
    load = accounted(site, before)
    [(_, reason)] = reasons(load, "observations.csv")
    assert value.strip() in reason
    with site.connect() as backend:
        [(bad,)] = backend.fetchall(
            "SELECT count(*) FROM measurement WHERE value_as_number <> value_as_number "
            "OR value_as_number > 1e308 OR value_as_number < -1e308"
        )
    assert bad == 0


def test_non_finite_dispenses_are_quarantined(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path
) -> None:
    path = export / "medications.csv"
    lines = lines_of(path)
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("DISPENSES")] = "Infinity"
    path.write_text("\n".join([*lines, ",".join(row)]) + "\n")
    before = site.counts()
    refused(ingest(capsys, site, export), QUARANTINED, "DISPENSES")
    accounted(site, before)


# --- malformed and truncated ---------------------------------------------------------


def test_a_file_cut_mid_row(capsys: pytest.CaptureFixture[str], site: Site, export: Path) -> None:
    path = export / "encounters.csv"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 50])
    before = site.counts()
    refused(ingest(capsys, site, export), QUARANTINED, "too few fields")
    accounted(site, before)


def test_embedded_nul_bytes(capsys: pytest.CaptureFixture[str], site: Site, export: Path) -> None:
    path = export / "observations.csv"
    with path.open("a") as handle:
        handle.write(observation("1.0").replace("Body Height", "Body\x00Height") + "\n")
        handle.write(observation("\x00") + "\n")
    before = site.counts()
    result = ingest(capsys, site, export, "--allow-quarantine")
    assert result.code == 0, result.text
    assert "Traceback" not in result.text
    accounted(site, before)


def test_binary_garbage_as_a_csv(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path
) -> None:
    header = (export / "devices.csv").read_text().splitlines()[0]
    (export / "devices.csv").write_bytes(header.encode() + b"\n" + os.urandom(200_000))
    before = site.counts()
    result = ingest(capsys, site, export, "--allow-quarantine")
    assert "Traceback" not in result.text
    if result.code == 0:
        accounted(site, before)
    else:
        refused(result, 54, "devices.csv")
        unchanged(site, before)


def test_duplicate_header_is_refused(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path
) -> None:
    path = export / "patients.csv"
    lines = lines_of(path)
    lines[0] = lines[0].replace("GENDER", "BIRTHDATE")
    path.write_text("\n".join(lines) + "\n")
    ingest_refused(capsys, site, export, 54, "names a column twice")


def test_a_missing_required_column_is_refused(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path
) -> None:
    path = export / "conditions.csv"
    lines = [",".join(line.split(",")[:3]) for line in lines_of(path)]  # no ENCOUNTER, CODE
    path.write_text("\n".join(lines) + "\n")
    ingest_refused(capsys, site, export, 54, "conditions.csv", "CODE")


def test_an_empty_file_is_refused(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path
) -> None:
    (export / "allergies.csv").write_bytes(b"")
    ingest_refused(capsys, site, export, 54, "allergies.csv", "empty")


def test_bom_and_crlf_load_as_plain_utf8(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path
) -> None:
    for path in export.glob("*.csv"):
        text = path.read_text(encoding="utf-8")
        path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    before = site.counts()
    result = ingest(capsys, site, export)
    assert result.code == 0, result.text
    load = accounted(site, before)
    assert load["quarantine"] == []


# --- encodings and their hints --------------------------------------------------------


def test_utf8_given_as_cp949_is_refused_and_the_hint_works(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path
) -> None:
    path = export / "patients.csv"
    path.write_text(path.read_text().replace("Chicopee", "춘천시"), encoding="utf-8")
    before = site.counts()
    result = ingest(capsys, site, export, "--encoding", "cp949")
    refused(result, 55, "UTF-8", "--encoding auto")
    unchanged(site, before)
    # the hint: the same command with --encoding auto
    result = ingest(capsys, site, export, "--encoding", "auto")
    assert result.code == 0, result.text
    with site.connect() as backend:
        cities = {r[0] for r in backend.fetchall("SELECT city FROM location")}
    assert "춘천시" in cities


def test_bad_bytes_in_a_cp949_file_name_their_line_and_the_hint_works(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path
) -> None:
    path = export / "patients.csv"
    lines = path.read_text().replace("Chicopee", "춘천시").splitlines()
    data = [line.encode("cp949") for line in lines]
    data[2] = data[2].replace(b"Maria47", b"Maria\xff\xfe")  # neither CP949 nor UTF-8
    path.write_bytes(b"\n".join(data) + b"\n")
    before = site.counts()
    result = ingest(capsys, site, export, "--encoding", "cp949")
    refused(result, 55, "line 3", "Fix or remove")
    unchanged(site, before)
    data[2] = lines[2].encode("cp949")  # the hint: fix the bytes on that line
    path.write_bytes(b"\n".join(data) + b"\n")
    result = ingest(capsys, site, export, "--encoding", "cp949")
    assert result.code == 0, result.text
    assert accounted(site, before)["quarantine"] == []


def test_a_cp949_export_loads_as_utf8_would(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path
) -> None:
    for path in export.glob("*.csv"):
        text = path.read_text().replace("Boston", "원주시")
        path.write_bytes(text.encode("cp949"))
    before = site.counts()
    result = ingest(capsys, site, export)
    assert result.code == 0, result.text
    assert "cp949" in result.out
    accounted(site, before)


# --- paths: missing, wrong kind, links, names ------------------------------------------


def test_a_missing_path(capsys: pytest.CaptureFixture[str], site: Site, tmp_path: Path) -> None:
    ingest_refused(capsys, site, tmp_path / "nowhere", 51, "does not exist")


def test_a_file_where_a_folder_is_expected(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path
) -> None:
    ingest_refused(capsys, site, export / "patients.csv", 54, "is a file")


def test_a_folder_where_a_file_is_expected(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path
) -> None:
    (export / "devices.csv").unlink()
    (export / "devices.csv").mkdir()
    before = site.counts()
    result = ingest(capsys, site, export, "--allow-quarantine")
    assert result.code == 0, result.text
    assert "ignored devices.csv: a folder, not a file" in result.out
    accounted(site, before)


def test_links_followed_and_broken_ones_named(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(export / "procedures.csv", elsewhere / "procedures.csv")
    (export / "procedures.csv").symlink_to(elsewhere / "procedures.csv")
    (export / "supplies.csv").symlink_to(tmp_path / "gone.csv")
    before = site.counts()
    result = ingest(capsys, site, export)
    assert result.code == 0, result.text
    assert "ignored supplies.csv: a link to nothing" in result.out
    load = accounted(site, before)
    assert "procedures.csv" in load["files"]  # type: ignore[operator]


def test_hostile_folder_names(capsys: pytest.CaptureFixture[str], site: Site, export: Path) -> None:
    odd = export.parent / "-rf $(touch pwned) 'quoted' 한글 ; ls"
    shutil.move(export, odd)
    before = site.counts()
    result = ingest(capsys, site, odd)
    assert result.code == 0, result.text
    assert not (Path.cwd() / "pwned").exists()
    accounted(site, before)


def test_a_pg_prefixed_site_name_is_refused_with_a_hint_that_works(
    capsys: pytest.CaptureFixture[str], site: Site, export: Path
) -> None:
    if site.kind != "postgresql":
        pytest.skip("only PostgreSQL reserves schema names")
    from ..conftest import postgres_url

    result = cli(capsys, "sites", "add", "pg_wonju", "--cdw", postgres_url())
    refused(result, 23, "pg_")
    assert "does not start with pg_" in result.err
    # the hint: a name without the prefix (this test's own site is one)
    assert ingest(capsys, site, export).code == 0


# --- omop-csv: values out of their type's range ---------------------------------------

PERSON_HEADER = "person_id,gender_concept_id,year_of_birth,race_concept_id,ethnicity_concept_id"


@pytest.mark.parametrize(
    ("row", "field", "why"),
    [
        ("2,3000000000,1950,0,0", "gender_concept_id", "out of range"),
        ("2,8532,-2147483649,0,0", "year_of_birth", "out of range"),
        ("99999999999999999999,8532,1950,0,0", "person_id", "not an integer"),
        ("2,8532,1950.5,0,0", "year_of_birth", "not an integer"),
        ("2,8532,0x7B2,0,0", "year_of_birth", "not an integer"),
        ("2,8532,1_950,0,0", "year_of_birth", "not an integer"),
    ],
)
def test_omop_integers_out_of_range_or_not_integers(
    capsys: pytest.CaptureFixture[str], site: Site, tmp_path: Path, row: str, field: str, why: str
) -> None:
    folder = tmp_path / "omop"
    write(folder / "person.csv", f"{PERSON_HEADER}\n1,8532,1950,0,0\n{row}\n")
    before = site.counts()
    result = cli(capsys, "ingest", "--site", site.name, "--format", "omop-csv", str(folder))
    refused(result, QUARANTINED, field, why)
    load = accounted(site, before)
    assert load["files"] == {"person.csv": (2, 1, 1)}
    # and again: recognised as loaded, no crash, nothing new
    again = site.counts()
    result = cli(capsys, "ingest", "--site", site.name, "--format", "omop-csv", str(folder))
    refused(result, QUARANTINED, "already loaded")
    assert site.counts() == again


def test_omop_non_finite_floats(
    capsys: pytest.CaptureFixture[str], site: Site, tmp_path: Path
) -> None:
    folder = tmp_path / "omop"
    write(folder / "person.csv", f"{PERSON_HEADER}\n1,8532,1950,0,0\n")
    header = (
        "measurement_id,person_id,measurement_concept_id,measurement_date,"
        "measurement_type_concept_id,value_as_number"
    )
    rows = ["1,1,3036277,2020-01-01,32817,172.5"]
    rows += [f"{n},1,3036277,2020-01-01,32817,{v}" for n, v in enumerate(["NaN", "-Infinity"], 2)]
    write(folder / "measurement.csv", "\n".join([header, *rows]) + "\n")
    before = site.counts()
    result = cli(capsys, "ingest", "--site", site.name, "--format", "omop-csv", str(folder))
    refused(result, QUARANTINED, "not a finite number")
    load = accounted(site, before)
    assert load["files"]["measurement.csv"] == (3, 1, 2)  # type: ignore[index]


# --- FHIR: depth, non-finite numbers, broken JSON ------------------------------------


def deep(levels: int) -> str:
    """An extension nested ``levels`` deep, as JSON text (json.dumps itself would recurse)."""
    return '{"url": "x", "extension": [' * levels + '{"url": "x"}' + "]}" * levels


def patient(pid: str) -> dict[str, object]:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1970-01-01"}


def test_fhir_nested_thousands_deep(
    capsys: pytest.CaptureFixture[str], site: Site, tmp_path: Path
) -> None:
    folder = tmp_path / "fhir"
    folder.mkdir()
    hostile = json.dumps(patient("p2"))[:-1] + ', "extension": [' + deep(5000) + "]}"
    ndjson = json.dumps(patient("p1")) + "\n" + hostile + "\n"
    (folder / "Patient.ndjson").write_text(ndjson)
    bundle = '{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": '
    (folder / "bundle.json").write_text(bundle + hostile + "}]}")
    before = site.counts()
    result = cli(capsys, "ingest", "--site", site.name, "--format", "fhir", str(folder))
    refused(result, QUARANTINED, "nested too deeply")
    load = accounted(site, before)
    assert load["files"] == {"Patient.ndjson": (2, 1, 1), "bundle.json": (1, 0, 1)}


def test_fhir_nan_and_infinity_values(
    capsys: pytest.CaptureFixture[str], site: Site, tmp_path: Path
) -> None:
    folder = tmp_path / "fhir"
    folder.mkdir()
    resources = [patient("p1")]
    for n in range(4):
        resources.append(
            {
                "resourceType": "Observation",
                "id": f"o{n}",
                "status": "final",
                "subject": {"reference": "Patient/p1"},
                "effectiveDateTime": "2020-01-01T10:00:00Z",
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "valueQuantity": {"value": "@", "unit": "kg"},
            }
        )
    text = "\n".join(json.dumps(r) for r in resources) + "\n"
    for value in ["NaN", "Infinity", "-Infinity", "70.5"]:
        text = text.replace('"@"', value, 1)  # bare JSON literals, as Python writes them
    (folder / "data.ndjson").write_text(text)
    before = site.counts()
    result = cli(capsys, "ingest", "--site", site.name, "--format", "fhir", str(folder))
    refused(result, QUARANTINED, "not a finite number")
    load = accounted(site, before)
    assert load["files"] == {"data.ndjson": (5, 2, 3)}


def test_fhir_that_is_not_json(
    capsys: pytest.CaptureFixture[str], site: Site, tmp_path: Path
) -> None:
    path = write(tmp_path / "bundle.json", '{"resourceType": "Bundle", "entry": [')
    before = site.counts()
    result = cli(capsys, "ingest", "--site", site.name, "--format", "fhir", str(path))
    refused(result, 57, "not JSON")
    unchanged(site, before)


def test_fhir_ndjson_cut_in_its_last_line(
    capsys: pytest.CaptureFixture[str], site: Site, tmp_path: Path
) -> None:
    text = json.dumps(patient("p1")) + "\n" + json.dumps(patient("p2"))[:30]
    path = write(tmp_path / "Patient.ndjson", text)
    before = site.counts()
    result = cli(capsys, "ingest", "--site", site.name, "--format", "fhir", str(path))
    refused(result, QUARANTINED, "invalid JSON")
    assert accounted(site, before)["files"] == {"Patient.ndjson": (2, 1, 1)}


# --- Ctrl-C, SIGTERM and a crash: loads end cleanly and resume ---------------------------

STOP_AT = "writing measurement"  # several tables committed, the largest in flight


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ..ingest.test_kill import generator

    folder = tmp_path_factory.mktemp("generated")
    generator().generate(folder, patients=200, seed=11)
    return folder


def stopped_run(site: Site, export: Path, signum: int) -> tuple[int, str]:
    """`pmhub ingest` as a process, sent ``signum`` as it writes measurement."""
    process = subprocess.Popen(
        [sys.executable, "-c", "from pmhub.cli import main; main()", "ingest", "--site",
         site.name, str(export)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )  # fmt: skip
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith(STOP_AT):
            process.send_signal(signum)
            break
    err = "".join(seen) + process.stderr.read()
    return process.wait(timeout=120), err


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_load_cleanly_and_it_resumes(
    capsys: pytest.CaptureFixture[str], site: Site, generated: Path, signum: int, status: int
) -> None:
    before = site.counts()
    code, err = stopped_run(site, generated, signum)
    assert code == status, err
    assert "Traceback" not in err
    name = signal.Signals(signum).name
    assert f"interrupted ({name}) while {STOP_AT}" in err
    assert f"resume with `pmhub ingest --site {site.name} --format synthea-csv {generated}`" in err
    load = site.last_load()
    assert load["status"] == "interrupted"
    steps = load["steps"]
    assert isinstance(steps, dict)
    assert "table:person" in steps
    assert "derived:drug_era" not in steps  # (the signal may land as measurement commits)
    # the hint: the same command again
    result = ingest(capsys, site, generated)
    assert result.code == 0, result.text
    accounted(site, before)


def test_a_load_left_running_by_a_crash_is_named_and_resumed(
    capsys: pytest.CaptureFixture[str], site: Site, generated: Path, export: Path
) -> None:
    before = site.counts()
    code, _ = stopped_run(site, generated, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert site.last_load()["status"] == "running"
    # another input: loaded, and the unfinished load named with what to do
    result = ingest(capsys, site, export)
    assert result.code == 0, result.text
    assert "load 1 (synthea-csv from" in result.err
    assert "stopped unfinished (running)" in " ".join(result.err.split())
    assert "load the same input again" in result.err
    # the same input again: the crashed load resumes and finishes
    middle = site.counts()
    result = ingest(capsys, site, generated)
    assert result.code == 0, result.text
    assert "stopped unfinished" not in result.err
    with site.connect() as backend:
        statuses = backend.fetchall("SELECT load_id, status FROM pmhub_load_log ORDER BY 1")
    assert statuses == [(1, "done"), (2, "done")]
    after = site.counts()
    assert after["measurement"] > middle["measurement"] > before["measurement"]
    assert after["person"] == middle["person"]  # (committed before the crash, not twice)
