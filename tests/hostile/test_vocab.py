"""`pmhub vocab load` given hostile folders: too small, empty, cut, malformed, in another
encoding, or not files at all; the vocabulary is replaced whole or left as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import Result, Site, cli, refused

ATHENA = Path(__file__).parents[1] / "cdm" / "fixtures" / "athena"
CONCEPTS_IN_FIXTURE = 12
TOO_SMALL = 43


@pytest.fixture
def athena(tmp_path: Path) -> Path:
    target = tmp_path / "athena"
    shutil.copytree(ATHENA, target)
    return target


def vocabulary(site: Site) -> dict[str, int]:
    with site.connect() as backend:
        return {
            t: backend.count(t)
            for t in ("concept", "concept_relationship", "concept_ancestor", "vocabulary")
        }


def load(capsys: pytest.CaptureFixture[str], site: Site, folder: Path, *extra: str) -> Result:
    return cli(capsys, "vocab", "load", str(folder), "--site", site.name, *extra)


def load_refused(
    capsys: pytest.CaptureFixture[str], site: Site, folder: Path, code: int, *words: str
) -> None:
    """The load is refused with ``code`` and ``words``, and the vocabulary kept."""
    before = vocabulary(site)
    refused(load(capsys, site, folder), code, *words)
    assert vocabulary(site) == before


def header_only(path: Path) -> None:
    path.write_text(path.read_text().splitlines()[0] + "\n")


def test_a_header_only_concept_file_is_refused_and_force_loads_it(
    capsys: pytest.CaptureFixture[str], site: Site, athena: Path
) -> None:
    header_only(athena / "CONCEPT.csv")
    load_refused(capsys, site, athena, TOO_SMALL, "CONCEPT.csv holds no rows", "--force")
    # the hint: --force replaces the vocabulary all the same
    result = load(capsys, site, athena, "--force")
    assert result.code == 0, result.text
    assert vocabulary(site)["concept"] == 0


def test_an_empty_ancestry_is_refused(
    capsys: pytest.CaptureFixture[str], site: Site, athena: Path
) -> None:
    header_only(athena / "CONCEPT_ANCESTOR.csv")
    header_only(athena / "CONCEPT_RELATIONSHIP.csv")
    before = vocabulary(site)
    refused(
        load(capsys, site, athena), TOO_SMALL, "CONCEPT_ANCESTOR.csv", "CONCEPT_RELATIONSHIP.csv"
    )
    assert vocabulary(site) == before


def test_fewer_concepts_than_stated_is_refused(
    capsys: pytest.CaptureFixture[str], site: Site, athena: Path
) -> None:
    before = vocabulary(site)
    result = load(capsys, site, athena, "--min-concepts", str(CONCEPTS_IN_FIXTURE + 1))
    refused(result, TOO_SMALL, f"{CONCEPTS_IN_FIXTURE:,} concepts", f"{CONCEPTS_IN_FIXTURE + 1:,}")
    assert vocabulary(site) == before
    result = load(capsys, site, athena, "--min-concepts", str(CONCEPTS_IN_FIXTURE))
    assert result.code == 0, result.text
    assert vocabulary(site)["concept"] == CONCEPTS_IN_FIXTURE


def test_a_negative_minimum_is_refused(
    capsys: pytest.CaptureFixture[str], site: Site, athena: Path
) -> None:
    before = vocabulary(site)
    refused(load(capsys, site, athena, "--min-concepts", "-5"), TOO_SMALL, "negative")
    assert vocabulary(site) == before


def test_a_zero_byte_concept_file_is_refused(
    capsys: pytest.CaptureFixture[str], site: Site, athena: Path
) -> None:
    (athena / "CONCEPT.csv").write_bytes(b"")
    load_refused(capsys, site, athena, 42, "CONCEPT.csv")


def test_a_missing_required_file(
    capsys: pytest.CaptureFixture[str], site: Site, athena: Path
) -> None:
    (athena / "CONCEPT_ANCESTOR.csv").unlink()
    load_refused(capsys, site, athena, 41, "CONCEPT_ANCESTOR.csv")


def test_a_folder_where_the_concept_file_is_expected(
    capsys: pytest.CaptureFixture[str], site: Site, athena: Path
) -> None:
    (athena / "CONCEPT.csv").unlink()
    (athena / "CONCEPT.csv").mkdir()
    load_refused(capsys, site, athena, 41, "CONCEPT.csv")


def test_a_file_where_the_folder_is_expected(
    capsys: pytest.CaptureFixture[str], site: Site, athena: Path
) -> None:
    load_refused(capsys, site, athena / "CONCEPT.csv", 41, "does not exist")


def test_a_concept_file_cut_mid_row(
    capsys: pytest.CaptureFixture[str], site: Site, athena: Path
) -> None:
    path = athena / "CONCEPT.csv"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    load_refused(capsys, site, athena, 42, "CONCEPT.csv line")


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("concept_id", "is not an integer"),
        ("99999999999999999999", "out of range"),
        ("\x00", "not an integer"),
    ],
)
def test_a_wrong_typed_concept_id(
    capsys: pytest.CaptureFixture[str], site: Site, athena: Path, bad: str, why: str
) -> None:
    path = athena / "CONCEPT.csv"
    lines = path.read_text().splitlines()
    fields = lines[3].split("\t")
    fields[0] = bad
    lines[3] = "\t".join(fields)
    path.write_text("\n".join(lines) + "\n")
    load_refused(capsys, site, athena, 42, "line 4", why.split()[-1])


def test_duplicate_concept_ids_are_refused(
    capsys: pytest.CaptureFixture[str], site: Site, athena: Path
) -> None:
    path = athena / "CONCEPT.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1]]) + "\n")
    before = vocabulary(site)
    result = load(capsys, site, athena)
    assert result.code in (35, 42), result.text
    assert "Traceback" not in result.text
    assert vocabulary(site) == before


def test_cp949_bytes_are_named(
    capsys: pytest.CaptureFixture[str], site: Site, athena: Path
) -> None:
    path = athena / "CONCEPT.csv"
    lines = path.read_text().splitlines()
    data = [line.encode() for line in lines]
    data[2] = data[2].replace(b"Diabetes mellitus", "당뇨병".encode("cp949"))
    path.write_bytes(b"\n".join(data) + b"\n")
    load_refused(capsys, site, athena, 42, "line 3", "not UTF-8")


def test_a_bom_and_crlf_download_loads(
    capsys: pytest.CaptureFixture[str], site: Site, athena: Path
) -> None:
    for path in athena.glob("*.csv"):
        text = path.read_text()
        path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    result = load(capsys, site, athena)
    assert "Traceback" not in result.text
    if result.code == 0:
        assert vocabulary(site)["concept"] == CONCEPTS_IN_FIXTURE
    else:
        refused(result, 42)
