"""Spark as a site users register: ``spark:///folder`` of Parquet OMOP tables.

The folder is exported from a DuckDB CDW once per module (a Spark session is slow to
start); the cohort verbs then run on the Spark site through the CLI and must give the
rows DuckDB gives on the same data.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pmhub import extras
from pmhub.cdm import schema
from pmhub.cdm.backends.duckdb import DuckDBBackend
from pmhub.cohorts import benchdata, library, service
from pmhub.cohorts.engines import SqlEngine
from pmhub.cohorts.errors import UnsupportedFeatureError
from pmhub.settings import load_settings
from pmhub.sites import SiteRegistry
from tests.cohorts.test_cli import run

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.xdist_group("spark")]
Rows = list[tuple[int, int, dt.date, dt.date]]


@pytest.fixture(scope="module")
def cdw(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Rows]:
    """A DuckDB CDW, its Parquet export, and DuckDB's type 2 diabetes cohort on it."""
    if not extras.available("pyspark"):
        pytest.skip("PySpark is not installed: pip install 'pmhub[spark]'")
    from pmhub.cohorts.spark import export_parquet

    folder = tmp_path_factory.mktemp("spark-site")
    path = folder / "cdw.duckdb"
    with DuckDBBackend(path) as backend:
        schema.init_cdm(backend, source_name="s", abbreviation="s", holder="s")
        benchdata.load(backend, 1500, 3)
        export_parquet(backend, folder / "parquet")
        definition = library.example("type2_diabetes")
        service.generate_on(definition, backend)
        expected = SqlEngine(backend).cohort_rows(definition.id)
    return path, folder / "parquet", expected


def _cohort_file(folder: Path, definition_id: int) -> Rows:
    table = pq.read_table(folder / "cohort.parquet").to_pylist()
    return sorted(
        (
            r["cohort_definition_id"],
            r["subject_id"],
            r["cohort_start_date"],
            r["cohort_end_date"],
        )
        for r in table
        if r["cohort_definition_id"] == definition_id
    )


def test_cohort_run_on_a_spark_site_matches_duckdb_and_persists(
    capsys: pytest.CaptureFixture[str], cdw: tuple[Path, Path, Rows]
) -> None:
    path, folder, expected = cdw
    registry = SiteRegistry(load_settings())
    registry.add("lake", f"spark:///{folder.resolve()}")
    registry.add("ward", f"duckdb:///{path.resolve()}")
    assert expected, "the generated site has type 2 diabetes patients"

    code, out = run(capsys, "cohort", "run", "type2_diabetes", "--site", "lake")
    assert code == 0, out
    persons = len({r[1] for r in expected})
    assert f"site lake (spark): Type 2 diabetes mellitus: {len(expected):,} cohort rows" in out
    assert f"{persons:,} persons" in out
    assert "Attrition" in out
    assert _cohort_file(folder, 1001) == expected  # written where the site keeps it

    # run again (the table is replaced, not appended), and beside a DuckDB site
    code, out = run(capsys, "cohort", "run", "type2_diabetes", "--all-sites")
    assert code == 0, out
    assert f"cohort 1001 at lake, ward: {2 * persons:,} persons in all" in out
    assert _cohort_file(folder, 1001) == expected


def test_a_spark_site_records_definitions_and_refuses_another_under_one_id(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cdw: tuple[Path, Path, Rows]
) -> None:
    import json

    from pmhub.cohorts.definition import digest, dumps

    _, folder, expected = cdw
    SiteRegistry(load_settings()).add("lake", f"spark:///{folder.resolve()}")
    original = library.example("type2_diabetes")
    data = json.loads(dumps(original))
    data["era_pad_days"] = 30
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))

    code, out = run(capsys, "cohort", "run", "type2_diabetes", "--site", "lake")
    assert code == 0, out
    code, out = run(capsys, "cohort", "run", str(edited), "--site", "lake")
    assert code == 37, out
    assert "belongs to another definition" in out
    assert _cohort_file(folder, 1001) == expected  # the refused run wrote nothing

    code, out = run(capsys, "cohort", "run", str(edited), "--site", "lake", "--replace")
    assert code == 0, out
    records = pq.read_table(folder / "cohort_definition.parquet").to_pylist()
    [record] = [r for r in records if r["cohort_definition_id"] == 1001]
    assert json.loads(record["cohort_definition_syntax"])["sha256"] != digest(original)
    code, out = run(capsys, "cohort", "run", "type2_diabetes", "--site", "lake", "--replace")
    assert code == 0, out  # the original is back for the other tests of the module
    assert _cohort_file(folder, 1001) == expected


def test_characterize_and_incidence_on_a_spark_site_match_duckdb(
    cdw: tuple[Path, Path, Rows],
) -> None:
    path, folder, _ = cdw
    registry = SiteRegistry(load_settings())
    af, stroke = library.example("atrial_fibrillation"), library.example("stroke")
    with service.open_engine(registry.add("lake", f"spark:///{folder.resolve()}")) as engine:
        assert engine.name == "spark"
        on_spark = service.outcome_at(engine, af, stroke, threshold=1)
        table_spark = service.characterize_at(engine, [af], threshold=1)
    with DuckDBBackend(path) as backend:
        on_duckdb = service.outcome_at(backend, af, stroke, threshold=1)
        table_duckdb = service.characterize_at(backend, [af], threshold=1)
    assert on_spark.rates == on_duckdb.rates
    assert on_spark.life_table == on_duckdb.life_table
    assert table_spark == table_duckdb


def test_a_legacy_mode_spark_session_is_refused_not_trusted() -> None:
    """A real Spark session in legacy (non-ANSI) mode silently wraps overflows: refused."""
    if not extras.available("pyspark"):
        pytest.skip("PySpark is not installed: pip install 'pmhub[spark]'")
    from pmhub.cohorts.spark import SparkEngine, local_session

    legacy = local_session().newSession()
    legacy.conf.set("spark.sql.ansi.enabled", "false")
    # what the refusal guards against: the same sum wraps in legacy mode
    assert legacy.sql("SELECT 2147483647 + 1 AS n").collect()[0]["n"] == -2147483648
    with pytest.raises(UnsupportedFeatureError, match="without ANSI mode is unsupported on spark"):
        SparkEngine(legacy)
    legacy.conf.set("spark.sql.ansi.enabled", "true")
    assert SparkEngine(legacy).name == "spark"
