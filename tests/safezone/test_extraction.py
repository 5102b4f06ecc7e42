"""Extraction at a synthetic site, on DuckDB and PostgreSQL: the cohort's persons and the
approved variables only, pseudonymized inside the site, rerun without duplicating."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pmhub.cdm import schema
from pmhub.cdm.backends import Backend
from pmhub.cdm.backends.duckdb import DuckDBBackend
from pmhub.cdm.backends.postgres import PostgresBackend
from pmhub.privacy.errors import OutputExistsError
from pmhub.privacy.keys import KeyStore, ProjectKey
from pmhub.privacy.transforms import DATE_SHIFT
from pmhub.safezone import application as app
from pmhub.safezone import extraction
from pmhub.safezone.errors import StateTransitionError
from pmhub.settings import Settings
from pmhub.sites import Site
from pmhub.synth import load

from .application_flow import ADMIN, OFFICER, STEWARDS, Story, body_document

SITE = "chuncheon_univ"
SYNTH: dict[str, Any] = {"patients": 400, "years": 6, "seed": 5}
HBA1C = (3004410, 3034639)


def loaded_site(backend: Backend) -> None:
    schema.init_cdm(backend, source_name="Test site", abbreviation="test", holder="pmhub")
    load.load_sites({SITE: backend}, **SYNTH)


@pytest.fixture(scope="module")
def duck_site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """One DuckDB site for the module: extraction only reads a CDW."""
    path = tmp_path_factory.mktemp("site") / "site.duckdb"
    with DuckDBBackend(path) as backend:
        loaded_site(backend)
    return Site(name=SITE, cdw_url=f"duckdb:///{path}")


@pytest.fixture(params=["duckdb", "postgresql"])
def site(request: pytest.FixtureRequest) -> Site:
    if request.param == "duckdb":
        duck: Site = request.getfixturevalue("duck_site")
        return duck
    url, name = request.getfixturevalue("pg_schema")
    with PostgresBackend(url, name) as backend:
        loaded_site(backend)
    return Site(name=SITE, cdw_url=url, schema_name=name)


def approved(**changes: Any) -> Story:
    story = Story(sites=(SITE,), **changes).to(app.Status.SITES_APPROVED)
    story.do(ADMIN, "extraction_started", site=SITE)
    return story


@pytest.fixture
def key() -> ProjectKey:
    store = KeyStore(Settings())
    store.create("proj-2026-001")
    return store.get("proj-2026-001")


def rows(path: Path) -> dict[str, list[dict[str, Any]]]:
    return {f.stem: pq.read_table(f).to_pylist() for f in sorted(path.glob("*.parquet"))}


def truth(site: Site, sql: str) -> list[tuple[Any, ...]]:
    with site.connect() as backend:
        return backend.fetchall(sql)


@pytest.mark.postgres
def test_the_release_holds_the_cohorts_persons_under_project_pseudonyms(
    site: Site, key: ProjectKey, tmp_path: Path
) -> None:
    story = approved()
    steps: list[str] = []
    result = extraction.extract_site(
        story.now, site, tmp_path / "out" / SITE, lambda s, d, t: steps.append(s), key=key
    )
    from pmhub.cohorts import definition, service

    with site.connect() as backend:
        run = service.generate_on(
            definition.parse(story.now.body.cohort.model_dump(mode="json")), backend
        )
    cohort = truth(site, "SELECT subject_id, cohort_start_date FROM cohort ORDER BY 1")
    persons = {int(r[0]) for r in cohort}
    assert result.persons == run.persons == len(persons) > 0
    ids = ",".join(str(p) for p in persons)
    expected_hba1c = truth(
        site,
        f"SELECT count(*) FROM measurement WHERE person_id IN ({ids})"
        f" AND measurement_concept_id IN {HBA1C}",
    )[0][0]
    assert result.selected["measurement"] == result.released["measurement"] == expected_hba1c
    assert result.selected["person"] == len(persons)
    released = rows(result.out / extraction.DATA)
    pseudonyms = {key.pseudonym(f"{SITE}/person", str(p)) for p in persons}
    for table in ("cohort", "person", "measurement", "condition_occurrence"):
        assert {r["person_id"] for r in released[table]} <= pseudonyms, table
    assert {r["measurement_concept_id"] for r in released["measurement"]} <= {str(c) for c in HBA1C}
    first = min(cohort)
    shifted = next(
        r
        for r in released["cohort"]
        if r["person_id"] == key.pseudonym(f"{SITE}/person", str(first[0]))
    )
    offset = key.offset(DATE_SHIFT, str(first[0]), extraction.DATE_SHIFT_DAYS)
    assert dt.date.fromisoformat(shifted["cohort_start_date"]) == first[1] + dt.timedelta(
        days=offset
    )
    assert (result.report.is_file(), steps[0], steps[-1]) == (True, "cohort", "done")


@pytest.mark.postgres
def test_no_source_id_and_no_key_reaches_the_release(
    site: Site, key: ProjectKey, tmp_path: Path
) -> None:
    variables = body_document()["variables"]
    variables[0]["columns"] += ["person_source_value", "location_id"]
    variables.append({"table": "visit_occurrence", "columns": ["visit_source_value"]})
    result = extraction.extract_site(
        approved(variables=variables).now, site, tmp_path / SITE, key=key
    )
    sources = {
        str(r[0])
        for r in truth(
            site,
            "SELECT person_source_value FROM person"
            " UNION ALL SELECT visit_source_value FROM visit_occurrence",
        )
    }
    visits = {str(r[0]) for r in truth(site, "SELECT visit_occurrence_id FROM visit_occurrence")}
    released = rows(result.out / extraction.DATA)
    assert "person_source_value" not in released["person"][0]
    assert "visit_source_value" not in released["visit_occurrence"][0]
    values = {str(v) for table in released.values() for row in table for v in row.values()}
    assert not values & sources
    ids = {r["visit_occurrence_id"] for r in released["condition_occurrence"]} - {None}
    assert ids
    assert all(len(i) == 32 and i not in visits for i in ids)
    secret = (Settings().home_dir() / "privacy" / "keys" / "proj-2026-001.key").read_text()
    for path in result.out.rglob("*"):
        if path.is_file():
            assert secret.strip().encode() not in path.read_bytes(), path


def test_a_rerun_returns_the_finished_extraction_without_writing(
    duck_site: Site, key: ProjectKey, tmp_path: Path
) -> None:
    story = approved()
    out = tmp_path / "out" / SITE
    first = extraction.extract_site(story.now, duck_site, out, key=key)
    marker = first.out / extraction.MARKER
    written = marker.stat().st_mtime_ns
    again = extraction.extract_site(story.now, duck_site, out, key=key)
    assert (again.reused, first.reused) == (True, False)
    assert again == extraction.ExtractionResult(**{**first.__dict__, "reused": True})
    assert marker.stat().st_mtime_ns == written
    assert sorted(p.name for p in out.parent.iterdir()) == [f".{SITE}.lock", SITE]


class CrashError(Exception):
    pass


def test_a_crash_leaves_nothing_and_the_rerun_equals_a_clean_run(
    duck_site: Site, key: ProjectKey, tmp_path: Path
) -> None:
    story = approved()
    scratch = tmp_path / "scratch"

    def crash(step: str, done: int, total: int) -> None:
        if step == "pseudonymize measurement":
            raise CrashError

    out = tmp_path / "out" / SITE
    with pytest.raises(CrashError):
        extraction.extract_site(story.now, duck_site, out, crash, key=key, scratch=scratch)
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir()] == [f".{SITE}.lock"]
    assert list(scratch.iterdir()) == []  # the site's own ids are gone
    # what a kill -9 leaves: a staging folder and the raw rows
    (out.parent / f".{SITE}.staging-dead").mkdir()
    (out.parent / f".{SITE}.staging-dead" / "person.parquet").write_bytes(b"half")
    resumed = extraction.extract_site(story.now, duck_site, out, key=key, scratch=scratch)
    clean = extraction.extract_site(story.now, duck_site, tmp_path / "clean" / SITE, key=key)
    assert rows(resumed.out / extraction.DATA) == rows(clean.out / extraction.DATA)
    assert resumed.input_hash == clean.input_hash
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{SITE}.staging")] == []


def test_other_inputs_never_overwrite_an_extraction(
    duck_site: Site, key: ProjectKey, tmp_path: Path
) -> None:
    story = approved()
    extraction.extract_site(story.now, duck_site, tmp_path / SITE, key=key)
    before = rows(tmp_path / SITE / extraction.DATA)
    other_key = ProjectKey("proj-2026-001", b"another key of 32 bytes, really!")
    with pytest.raises(OutputExistsError, match="another extraction"):
        extraction.extract_site(story.now, duck_site, tmp_path / SITE, key=other_key)
    assert rows(tmp_path / SITE / extraction.DATA) == before


def test_only_a_site_its_steward_approved_is_extracted(
    duck_site: Site, key: ProjectKey, tmp_path: Path
) -> None:
    story = Story(sites=(SITE, "gangneung_general")).to(app.Status.DRB_APPROVED)
    story.do(STEWARDS["gangneung_general"], "site_approved", site="gangneung_general")
    with pytest.raises(StateTransitionError, match="only a site its steward approved"):
        extraction.extract_site(story.now, duck_site, tmp_path / SITE, key=key)
    story.do(STEWARDS[SITE], "site_refused", site=SITE, reason="not this year")
    with pytest.raises(StateTransitionError):
        extraction.extract_site(story.now, duck_site, tmp_path / SITE, key=key)
    assert not (tmp_path / SITE).exists()


def test_the_applications_privacy_rules_apply_over_the_defaults(
    duck_site: Site, key: ProjectKey, tmp_path: Path
) -> None:
    privacy = {
        "measurement": {"columns": {"value_as_number": {"action": "round", "base": 1}}},
        "person": {
            "columns": {
                "year_of_birth": {
                    "action": "generalize",
                    "hierarchy": {"type": "interval", "widths": [10, 20, 40]},
                }
            },
            "models": {"k": 3, "max_suppression": 0.5},
        },
    }
    result = extraction.extract_site(
        approved(privacy=privacy).now, duck_site, tmp_path / SITE, key=key
    )
    released = rows(result.out / extraction.DATA)
    values = [r["value_as_number"] for r in released["measurement"]]
    assert any(v is not None for v in values)
    assert all(float(v).is_integer() for v in values if v is not None)
    births = [r["year_of_birth"] for r in released["person"]]
    assert all(births.count(b) >= 3 for b in births)
    assert all(b == "*" or re.fullmatch(r"\d{4}-\d{4}", b) for b in births)  # e.g. 1960-1969


def test_a_signed_off_release_is_delivered_with_the_cdm_types(
    duck_site: Site, key: ProjectKey, tmp_path: Path
) -> None:
    story = approved()
    result = extraction.extract_site(story.now, duck_site, tmp_path / "release", key=key)
    with pytest.raises(StateTransitionError, match="signed off"):
        extraction.deliver_site(story.now, SITE, result.out, tmp_path / "workspace")
    story.do(ADMIN, "extraction_finished", site=SITE, details=result.details())
    story.do(ADMIN, "pseudonymized", site=SITE)
    story.do(OFFICER, "adequacy_signed_off", site=SITE)
    target = extraction.deliver_site(story.now, SITE, result.out, tmp_path / "workspace")
    assert target == tmp_path / "workspace" / SITE
    measurement = pq.read_table(target / "measurement.parquet")
    assert measurement.schema.field("measurement_date").type == pa.date32()
    assert measurement.schema.field("value_as_number").type == pa.float64()
    assert measurement.schema.field("person_id").type == pa.string()
    assert sorted(p.name for p in target.iterdir()) == [
        "cohort.parquet",
        "condition_occurrence.parquet",
        extraction.MARKER,
        "measurement.parquet",
        "person.parquet",
    ]
    assert extraction.deliver_site(story.now, SITE, result.out, tmp_path / "workspace") == target
    assert story.now.sites[SITE].details["persons"] == result.persons


WORKER = Path(__file__).with_name("extraction_worker.py")
KILL_AT = "pseudonymize measurement"  # raw rows written, the release half made


def test_a_job_killed_mid_release_resumes_to_what_a_clean_run_makes(
    duck_site: Site, tmp_path: Path
) -> None:
    story = approved()
    events = tmp_path / "events.jsonl"
    events.write_text("".join(e.to_json() + "\n" for e in story.events), encoding="utf-8")
    secret = bytes(range(32))
    out, scratch = tmp_path / "out" / SITE, tmp_path / "scratch"
    arguments = [str(events), duck_site.cdw_url, str(out), str(scratch), secret.hex(), KILL_AT]
    process = subprocess.Popen(
        [sys.executable, str(WORKER), *arguments],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    said = []
    for line in process.stdout:
        said.append(line.strip())
        if said[-1] == KILL_AT:
            os.kill(process.pid, signal.SIGKILL)
            break
    assert process.wait(timeout=60) == -signal.SIGKILL, said
    staged = [p for p in out.parent.iterdir() if ".staging-" in p.name]
    assert staged
    assert any(scratch.iterdir())  # the site's rows, left by the dead job
    assert not out.exists()
    key = ProjectKey(story.id, secret)
    resumed = extraction.extract_site(story.now, duck_site, out, key=key, scratch=scratch)
    clean = extraction.extract_site(story.now, duck_site, tmp_path / "clean" / SITE, key=key)
    assert rows(resumed.out / extraction.DATA) == rows(clean.out / extraction.DATA)
    assert not resumed.reused
    assert [p for p in out.parent.iterdir() if ".staging-" in p.name] == []
    assert list(scratch.iterdir()) == []


@pytest.mark.postgres
def test_duckdb_and_postgresql_sites_of_the_same_data_release_the_same_rows(
    duck_site: Site, key: ProjectKey, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url, name = request.getfixturevalue("pg_schema")
    with PostgresBackend(url, name) as backend:
        loaded_site(backend)
    pg_site = Site(name=SITE, cdw_url=url, schema_name=name)
    story = approved()
    on_duckdb = extraction.extract_site(story.now, duck_site, tmp_path / "duckdb", key=key)
    on_postgres = extraction.extract_site(story.now, pg_site, tmp_path / "postgresql", key=key)
    assert on_duckdb.selected == on_postgres.selected
    assert rows(on_duckdb.out / extraction.DATA) == rows(on_postgres.out / extraction.DATA)
