"""The `pmhub ingest` verb, the job entry point, and the date and line-number rules."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmhub.cli import main
from pmhub.ingest import ingest_job
from pmhub.ingest.engine import _macros
from pmhub.ingest.errors import IngestError, RowsQuarantinedError

from .conftest import append_line


def run_cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture
def site() -> str:
    assert run_cli(["sites", "add", "gangneung"]) == 0
    assert run_cli(["cdm", "init", "--site", "gangneung"]) == 0
    return "gangneung"


def test_cli_exit_codes_follow_quarantine(
    site: str, synthea_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    append_line(synthea_dir / "patients.csv", "x-1,2023-02-30" + "," * 23)
    code = run_cli(["ingest", "--site", site, "--format", "synthea-csv", str(synthea_dir)])
    out = capsys.readouterr()
    assert code == RowsQuarantinedError.exit_code
    assert "read 41 = loaded 40 + quarantined 1" in out.out
    assert "not a valid date" in out.out  # the commonest reasons are shown
    assert "quarantined" in out.err
    assert "hint" in out.err
    # the load was kept: importing it again changes nothing, and can be accepted
    code = run_cli(["ingest", "-s", site, "--allow-quarantine", str(synthea_dir)])
    assert code == 0
    assert "already loaded" in capsys.readouterr().out


def test_cli_reports_bad_arguments(site: str, tmp_path: Path) -> None:
    assert run_cli(["ingest", "--site", site, str(tmp_path / "missing")]) == 51
    assert run_cli(["ingest", "--site", site, "--format", "csv", str(tmp_path)]) == 53
    assert run_cli(["ingest", "--site", "nowhere", str(tmp_path)]) == 21


def test_job_returns_the_accounting(site: str, synthea_dir: Path) -> None:
    result = ingest_job({"site": site, "format": "synthea-csv", "path": str(synthea_dir)})
    assert result["read"] == result["loaded"] == 40
    assert result["tables"]["person"] == 3


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    _macros(connection)
    return connection


@settings(max_examples=60, deadline=None)
@given(day=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31)))
def test_every_date_form_parses_to_the_same_day(
    con: duckdb.DuckDBPyConnection, day: dt.date
) -> None:
    forms = [day.isoformat(), day.strftime("%Y%m%d"), f"{day.isoformat()}T05:07:38Z"]
    forms += [day.strftime("%Y%m%d") + " 05:07:38", day.strftime("%Y%m%d%H%M%S")]
    for form in forms:
        got = con.execute("SELECT CAST(pmhub_ts(?) AS DATE)", [form]).fetchone()
        assert got == (day,), form


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=12))
def test_impossible_dates_parse_to_null_never_raise(
    con: duckdb.DuckDBPyConnection, text: str
) -> None:
    got = con.execute("SELECT pmhub_ts(?)", [text]).fetchone()
    assert got is not None
    if got[0] is not None:
        assert isinstance(got[0], dt.datetime)


_PADDED = st.builds(
    lambda pad, core, tail: pad + core + tail,
    st.sampled_from(["", " ", "  ", "\t"]),
    st.one_of(
        st.dates(min_value=dt.date(1, 1, 1)).map(dt.date.isoformat),
        st.datetimes().map(lambda t: t.isoformat(sep=_separator(t))),
        st.floats(allow_nan=True).map(str),
        st.integers().map(str),
        st.text(alphabet="0123456789-:.TZ+ e", max_size=24),
    ),
    st.sampled_from(["", " ", "  ", "\t", "Z"]),
)


def _separator(t: dt.datetime) -> str:
    return "T" if t.microsecond % 2 else " "


@settings(max_examples=200, deadline=None)
@given(text=_PADDED)
def test_the_untrimmed_first_try_changes_no_value(
    con: duckdb.DuckDBPyConnection, text: str
) -> None:
    """pmhub_ts and pmhub_num try the raw text before trimming it (a copy saved per value):
    what they give must be what the trimmed-only rule gives."""
    got = con.execute("SELECT pmhub_ts(?), pmhub_num(?)", [text, text]).fetchone()
    rule = con.execute(
        "SELECT coalesce(try_cast(trim(?) AS TIMESTAMP), try_strptime(trim(?), ['%Y%m%d', "
        "'%Y%m%d%H%M%S', '%Y%m%d %H%M%S', '%Y%m%d %H:%M:%S', '%Y%m%d %H:%M', '%Y%m%d%H%M', "
        "'%Y.%m.%d', '%Y/%m/%d', '%Y/%m/%d %H:%M:%S'])), try_cast(trim(?) AS DOUBLE)",
        [text, text, text],
    ).fetchone()
    assert got is not None
    assert rule is not None
    assert got[0] == rule[0]
    assert got[1] == rule[1] or (got[1] != got[1] and rule[1] != rule[1])  # NaN is NaN


def test_february_30th_is_not_a_date(con: duckdb.DuckDBPyConnection) -> None:
    for text in ("2023-02-30", "20230230", "2023-13-01", "2023-02-29"):
        assert con.execute("SELECT pmhub_ts(?)", [text]).fetchone() == (None,)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"site": "gangneung", "format": "synthea-csv"},
        {"site": "", "format": "fhir", "path": "/x"},
    ],
)
def test_job_rejects_incomplete_parameters(params: dict[str, object]) -> None:
    with pytest.raises(IngestError, match="lack"):
        ingest_job(params)


def test_job_rejects_a_non_object() -> None:
    with pytest.raises(IngestError, match="object"):
        ingest_job(["site"])  # type: ignore[arg-type]


class _Unmappable:
    """A BLAKE3 hasher on a file system that cannot map files into memory."""

    def __init__(self) -> None:
        import blake3

        self._digest = blake3.blake3()

    def update_mmap(self, path: str) -> None:
        raise OSError("mmap is not supported here")

    def update(self, data: bytes) -> None:
        self._digest.update(data)

    def hexdigest(self) -> str:
        return str(self._digest.hexdigest())


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=3000), mappable=st.booleans())
def test_a_files_checksum_is_the_blake3_of_its_bytes(data: bytes, mappable: bool) -> None:
    """Mapped into memory or read in chunks (where it cannot be mapped), a file's
    checksum is the BLAKE3 of its bytes, and its size is its length."""
    import tempfile
    import types

    import blake3

    from pmhub.ingest import files

    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        path = Path(tmp) / "patients.csv"
        path.write_bytes(data)
        if not mappable:
            patch.setattr(files, "blake3", types.SimpleNamespace(blake3=_Unmappable))
        source = files.fingerprint(path, path.name)
    assert source.checksum == f"blake3:{blake3.blake3(data).hexdigest()}"
    assert source.size == len(data)
