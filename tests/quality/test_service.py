"""The quality service: a run profiles and checks a site, is stored with an index, and bad
sites, files and arguments are refused with clear errors that leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pmhub.cdm import schema
from pmhub.cdm.backends.duckdb import DuckDBBackend
from pmhub.errors import CdmVersionError, UnknownSiteError
from pmhub.quality import service, store
from pmhub.quality.errors import (
    CheckFileError,
    EmptyCdwError,
    NoQualityRunError,
    QualityError,
    QualityOutputError,
    QualityResultsError,
    SiteWithoutCdwError,
    UnknownCheckTypeError,
)
from pmhub.quality.suppress import shareable
from pmhub.settings import load_settings
from pmhub.sites import Site, SiteRegistry
from tests.quality import cdw
from tests.quality.conftest import build_duckdb, register


def test_a_run_is_stored_indexed_and_copied(defects_site: Site, tmp_path: Path, pmhub_home: Path):
    out = tmp_path / "out"
    run = service.run_quality("defects", as_of=cdw.AS_OF, out_dir=out)
    assert run.path.parent == pmhub_home / "quality" / "defects"
    assert run.copy is not None
    copied = json.loads(run.copy.read_text())  # the shareable copy: small cells suppressed
    assert copied == json.loads(json.dumps(shareable(run.document, 10)))
    assert json.loads(run.path.read_text()) == run.document
    assert {c["id"]: c["violated"] for c in run.failed} == cdw.expected_failures()
    index = store.load_index(pmhub_home)
    assert [(r["site"], r["run_id"]) for r in index] == [("defects", run.run_id)]
    assert service.load_run("defects") == run.document
    second = service.run_quality("defects", as_of=cdw.AS_OF)
    assert service.load_run("defects")["run_id"] == second.run_id
    assert service.load_run("defects", run_id=run.run_id)["run_id"] == run.run_id


def test_profiles_count_what_was_loaded(defects_site: Site):
    p: dict[str, Any] = service.run_quality("defects", as_of=cdw.AS_OF).document["profiles"]
    assert p["persons"]["total"] == 12
    assert p["persons"]["by_gender"] == [[8507, "MALE", 6], [8532, "FEMALE", 6]]
    assert [1750, 1] in p["persons"]["by_year_of_birth"]
    # first observation 2015; born 1945 … 1990 → ages 70 … 25
    assert p["persons"]["age_at_first_observation"] == [[a, 1] for a in range(25, 75, 5)]
    assert p["observation_periods"]["length_days"]["max"] == 3652
    sbp = next(m for m in p["measurement_values"] if m["concept_id"] == cdw.SBP)
    # 116 … 125 and the planted 800
    assert (sbp["count"], sbp["min"], sbp["median"], sbp["max"]) == (11, 116, 121, 800)
    assert sbp["p90"] == 125
    assert sbp["unit_code"] == "mm[Hg]"
    glucose_units = {
        m["unit_concept_id"]: m["count"]
        for m in p["measurement_values"]
        if m["concept_id"] == cdw.GLUCOSE
    }
    assert glucose_units == {cdw.MG_DL: 10, cdw.KG: 1}
    assert p["top_concepts"]["drug_exposure"][0] == [cdw.METFORMIN, "Metformin", 10, 10]
    # 10 stays of 4 days and the planted one ending 9 days before it starts
    assert p["visit_types"][0] == [cdw.INPATIENT, "Inpatient Visit", 11, 10, round(31 / 11, 6)]
    assert p["records_per_month"]["observation"] == [[202003, 10], [203101, 1]]
    assert p["records_per_person"]["measurement"]["max"] == 4  # 3 + one planted
    assert p["missingness"]["person"]["month_of_birth"] == pytest.approx(100 * 2 / 12, abs=1e-4)
    # I10, E11.9 and Z33 are in the shipped KCD-7 map; D40.0 and R73.9 are not
    vocabularies = {v: n for v, n in p["source_vocabularies"]["condition_occurrence"]}
    assert vocabularies == {"KCD7": 15, "(unknown)": 2}
    assert ["visit_occurrence", 22, 11] in p["records_per_domain"]


def test_unknown_site_and_site_without_cdw_are_refused(tmp_path: Path):
    with pytest.raises(UnknownSiteError):
        service.run_quality("nowhere")
    missing = tmp_path / "none" / "site.duckdb"
    register("ghost", missing)
    with pytest.raises(SiteWithoutCdwError, match="has no CDW") as err:
        service.run_quality("ghost")
    assert "pmhub cdm init --site ghost" in err.value.hint
    assert not missing.exists()  # checking did not create an empty database


def test_empty_cdw_and_other_cdm_version_are_refused(tmp_path: Path):
    register("empty", build_duckdb(tmp_path / "empty.duckdb", {}))
    with pytest.raises(EmptyCdwError, match="no persons"):
        service.run_quality("empty")
    old = build_duckdb(tmp_path / "old.duckdb", cdw.clean_rows())
    with DuckDBBackend(old) as backend:
        backend.execute("UPDATE cdm_source SET cdm_version = 'v5.3.1'")
    register("old", old)
    with pytest.raises(CdmVersionError, match=r"v5\.3\.1"):
        service.run_quality("old")
    # a CDW built by the v5.3 DDL: its cdm_source has no cdm_version_concept_id
    v53 = build_duckdb(tmp_path / "v53.duckdb", cdw.clean_rows())
    with DuckDBBackend(v53) as backend:
        backend.execute(
            "CREATE TABLE v53 AS SELECT * EXCLUDE (cdm_version_concept_id) FROM cdm_source"
        )
        backend.execute("DROP TABLE cdm_source")
        backend.execute("ALTER TABLE v53 RENAME TO cdm_source")
    register("v53", v53)
    with pytest.raises(CdmVersionError, match=r"v5\.3, not v5\.4"):
        service.run_quality("v53")
    assert store.load_index(load_settings().home_dir()) == []


def test_bad_check_file_stops_before_the_cdw_is_opened(tmp_path: Path):
    bad = tmp_path / "checks.yaml"
    bad.write_text(
        "version: 1\nchecks:\n- {type: dqd_magic, category: completeness, "
        "subcategory: x, description: x, threshold: 1}\n"
    )
    register("ghost", tmp_path / "absent.duckdb")
    with pytest.raises(UnknownCheckTypeError, match="dqd_magic"):
        service.run_quality("ghost", check_file=bad)


@pytest.mark.parametrize("top_n", [0, -1, 10**9])
def test_top_n_out_of_range_is_refused(defects_site: Site, top_n: int):
    with pytest.raises(QualityError, match="top_n"):
        service.run_quality("defects", top_n=top_n)


def test_unwritable_out_dir_loses_nothing(defects_site: Site, tmp_path: Path, pmhub_home: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(QualityOutputError, match="cannot write"):
        service.run_quality("defects", as_of=cdw.AS_OF, out_dir=blocker)
    assert len(store.load_index(pmhub_home)) == 1  # the run itself was stored first


@pytest.mark.parametrize("run_id", ["../../etc/passwd", "latest", "2026", "x" * 5000, ""])
def test_hostile_run_ids_are_refused(defects_site: Site, run_id: str):
    service.run_quality("defects", as_of=cdw.AS_OF)
    with pytest.raises(NoQualityRunError):
        service.load_run("defects", run_id=run_id)


def test_no_run_and_corrupt_results_are_reported(defects_site: Site, pmhub_home: Path):
    with pytest.raises(NoQualityRunError, match="has no quality run"):
        service.load_run("defects")
    run = service.run_quality("defects", as_of=cdw.AS_OF)
    run.path.write_text("{ not json")
    with pytest.raises(QualityResultsError):
        service.load_run("defects")
    (pmhub_home / "quality" / "index.json").write_text('{"runs": 5}')
    with pytest.raises(QualityResultsError, match="no list of runs"):
        service.load_run("defects")
    # the next run rebuilds the damaged index from the readable stored runs
    second = service.run_quality("defects", as_of=cdw.AS_OF)
    assert [r["run_id"] for r in store.load_index(pmhub_home)] == [second.run_id]
    run.path.write_text(json.dumps(run.document))  # the first run readable again
    (pmhub_home / "quality" / "index.json").write_text("{ broken")
    third = service.run_quality("defects", as_of=cdw.AS_OF)
    ids = [r["run_id"] for r in store.load_index(pmhub_home)]
    assert ids == [run.run_id, second.run_id, third.run_id]
    assert service.load_run("defects", run_id=run.run_id) == run.document


def _comparable(document: dict[str, Any]) -> dict[str, Any]:
    skip = {"run_id", "started_at", "finished_at", "seconds", "site", "cdm", "site_title"}
    return {k: v for k, v in document.items() if k not in skip}


def test_duckdb_and_postgresql_give_identical_results(
    defects_file: Path, pg_schema: tuple[str, str]
):
    from pmhub.cdm.backends.postgres import PostgresBackend

    url, name = pg_schema
    with PostgresBackend(url, name) as backend:
        schema.init_cdm(backend, source_name="Test", abbreviation="test", holder="pmhub")
        cdw.load(backend, cdw.with_defects())
    register("duck", defects_file)
    SiteRegistry(load_settings()).add("pg", f"{url}?schema={name}")
    duck = service.run_quality("duck", as_of=cdw.AS_OF).document
    pg = service.run_quality("pg", as_of=cdw.AS_OF).document
    assert pg["cdm"]["backend"] == "postgresql"
    assert _comparable(duck) == _comparable(pg)


def test_check_file_errors_are_check_file_errors():
    assert issubclass(UnknownCheckTypeError, CheckFileError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"site_name": 123}, "site_name must be a str"),
        ({"site_name": "defects", "top_n": "5"}, "top_n"),
        ({"site_name": "defects", "top_n": True}, "top_n"),
        ({"site_name": "defects", "as_of": "2026-01-01"}, "as_of must be a date"),
        ({"site_name": "defects", "out_dir": "/tmp"}, "out_dir must be a Path"),
        ({"site_name": "defects", "check_file": b"checks.yaml"}, "check_file must be a Path"),
    ],
)
def test_wrong_typed_arguments_are_refused(
    defects_site: Site, kwargs: dict[str, Any], message: str
):
    with pytest.raises(QualityError, match=message):
        service.run_quality(**kwargs)


def test_wrong_typed_report_and_compare_arguments_are_refused(defects_site: Site):
    with pytest.raises(QualityError, match="html must be a Path"):
        service.write_report("defects", "report.html")  # type: ignore[arg-type]
    with pytest.raises(QualityError, match="list of site names"):
        service.write_comparison("defects,clean", Path("c.html"))
    with pytest.raises(QualityError, match="run_id must be a str"):
        service.load_run("defects", run_id=5)  # type: ignore[arg-type]


def test_demo_step_reports_on_sites_with_data(
    defects_site: Site, clean_site: Site, tmp_path: Path, pmhub_home: Path
):
    from pmhub import demo

    register("empty", build_duckdb(tmp_path / "empty.duckdb", {}))
    sites = SiteRegistry(load_settings()).list()
    reports = demo.quality_step(sites, pmhub_home)
    assert sorted(p.name for p in reports) == [
        "quality-clean.html",
        "quality-defects.html",
        "quality-sites.html",
    ]
    assert all(p.exists() for p in reports)
    assert {r["site"] for r in store.load_index(pmhub_home)} == {"clean", "defects"}


def test_a_postgresql_schema_without_a_cdm_is_refused(pg_schema: tuple[str, str]):
    from pmhub.errors import CdwNotInitialisedError

    url, name = pg_schema
    SiteRegistry(load_settings()).add("bare", f"{url}?schema={name}")
    with pytest.raises(CdwNotInitialisedError, match="no OMOP CDM schema") as err:
        service.run_quality("bare")
    assert "pmhub cdm init" in err.value.hint


def test_postgresql_tables_without_statistics_are_analysed_first(pg_schema: tuple[str, str]):
    from pmhub.cdm.backends.postgres import PostgresBackend
    from pmhub.quality import tuning

    url, name = pg_schema
    with PostgresBackend(url, name) as backend:
        backend.execute("CREATE TABLE fresh (x integer)")
        backend.execute("INSERT INTO fresh SELECT generate_series(1, 1000)")
        assert "fresh" in tuning.never_analysed(backend)
        tuning.prepare(backend)
        assert "fresh" not in tuning.never_analysed(backend)
        assert backend.fetchall("SHOW work_mem")[0][0] == tuning.WORK_MEM
        assert backend.fetchall("SHOW jit")[0][0] == "off"


def test_a_failing_postgresql_run_stops_its_checks_at_once(
    pg_schema: tuple[str, str], monkeypatch: pytest.MonkeyPatch
):
    from pmhub.cdm.backends.postgres import PostgresBackend
    from pmhub.quality.profiles import Profiler

    url, name = pg_schema
    with PostgresBackend(url, name) as backend:
        schema.init_cdm(backend, source_name="Test", abbreviation="test", holder="pmhub")
        cdw.load(backend, cdw.clean_rows())
    SiteRegistry(load_settings()).add("pg", f"{url}?schema={name}")

    def broken(self: Profiler, progress: object = None) -> dict[str, Any]:
        raise RuntimeError("profiles broke")

    monkeypatch.setattr(Profiler, "run", broken)
    steps: list[tuple[str, int, int]] = []
    with pytest.raises(RuntimeError, match="profiles broke"):
        service.run_quality("pg", progress=lambda ph, d, t, w: steps.append((ph, d, t)))
    # the checks on the other connection were stopped before their end (if they started)
    assert [(d, t) for ph, d, t in steps if ph == "checks" and d == t] == []
    assert store.load_index(load_settings().home_dir()) == []


def test_a_cancelled_postgresql_query_is_told_from_a_bad_column(pg_schema: tuple[str, str]):
    import threading

    from pmhub.cdm.backends.postgres import PostgresBackend
    from pmhub.quality import engine, tuning

    url, name = pg_schema
    with PostgresBackend(url, name) as backend:
        with pytest.raises(Exception, match="column") as bad:
            backend.fetchall("SELECT no_such_column FROM (SELECT 1 AS x) t")
        assert not engine.cancelled(bad.value)
        stop = tuning.Stop()
        timer = threading.Timer(0.5, stop.now, [backend])
        timer.start()
        with pytest.raises(Exception) as cancelled:  # noqa: PT011  (psycopg's QueryCanceled)
            backend.fetchall("SELECT pg_sleep(20)")
        timer.join()
        assert engine.cancelled(cancelled.value)
        with pytest.raises(tuning.StoppedError):
            stop.guard(None)(0, 1, "next")
