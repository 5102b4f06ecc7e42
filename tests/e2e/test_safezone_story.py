"""The safe zone's whole story over HTTP, against a real `pmhub serve` process and a real
`pmhub worker` process, with the platform state in SQLite and in PostgreSQL:

application → IRB approval → DRB votes and decision → stewards' approvals at 3 sites →
extraction and pseudonymization at each site (worker jobs) → adequacy sign-off →
workspace query → output request → a small cell flagged → fixed → released by two
checkers → downloaded; and the audit trail verifies at the end.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.csv as pacsv
import pytest
import yaml

from pmhub.cohorts import definition as cohort_format
from pmhub.platform import users
from pmhub.platform.core import open_platform
from pmhub.platform.roles import operator
from pmhub.safezone import jobs
from pmhub.settings import load_settings
from tests.api.conftest import PASSWORD, TIMEOUT, Server, start_server

SITES = ("chuncheon_univ", "gangneung_general", "jeongseon_county")
LIBRARY = Path(cohort_format.__file__).parent / "library"
DRB = {  # name: (external, represents data subjects)
    "drb1": (False, False),
    "drb2": (False, False),
    "drb3": (False, False),
    "drb4": (True, False),
    "drb5": (True, True),
}


def irb_pdf() -> bytes:
    """A real PDF (matplotlib writes one), as a scanned approval letter would be."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, 2))
    figure.text(0.1, 0.5, "IRB approval 2026-117")
    out = io.BytesIO()
    figure.savefig(out, format="pdf")
    return out.getvalue()


def build_network(home: Path) -> None:
    """Three demo sites with a small synthetic population."""
    from pmhub import demo
    from pmhub.sites import SiteRegistry
    from pmhub.synth.load import load_sites

    registry = SiteRegistry(load_settings())
    sites = demo.build_network(registry)
    backends = {s.name: s.connect() for s in sites}
    try:
        load_sites(backends, patients=1500, years=6, seed=11, truth_dir=home / "truth")
    finally:
        for backend in backends.values():
            backend.close()


def people() -> None:
    pf = open_platform(load_settings())
    op = operator()

    def user(name: str, *grants: tuple[str, str | None], **flags: bool) -> None:
        users.create_user(pf, op, name, display_name=name, password=PASSWORD)
        for role, scope in grants:
            users.grant_role(pf, op, name, role, scope=scope, **flags)

    user("admin", ("platform_admin", None))
    user("kim", ("applicant", None))
    user("park")  # a project member named in the application
    user("irb", ("irb_reviewer", None))
    for name, (external, subjects) in DRB.items():
        user(name, ("drb_member", None), external=external, represents_data_subjects=subjects)
    for site in SITES:
        user(f"steward_{site}", ("steward", site))
        user(f"officer_{site}", ("pseudonymization_officer", site))
    user("checker1", ("output_checker", None))
    user("checker2", ("output_checker", None))
    user("auditor", ("auditor", None))
    pf.close()


def application_body() -> dict[str, Any]:
    cohort = yaml.safe_load((LIBRARY / "type2_diabetes.yaml").read_text(encoding="utf-8"))
    today = dt.datetime.now(dt.UTC).date()
    return {
        "title": "Type 2 diabetes in Gangwon",
        "purpose": "Count first type 2 diabetes diagnoses by sex and birth decade.",
        "research_plan": "Cohort of first T2DM diagnoses; counts by sex and decade of birth.",
        "sites": list(SITES),
        "cohort": cohort,
        "variables": [{"table": "person", "columns": ["year_of_birth", "gender_concept_id"]}],
        "period": {
            "start": today.isoformat(),
            "end": (today + dt.timedelta(days=180)).isoformat(),
        },
        "members": ["park"],
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def network(
    request: pytest.FixtureRequest, pmhub_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Server, subprocess.Popen[bytes]]]:
    if request.param == "postgresql":
        url = os.environ.get("PMHUB_TEST_POSTGRES_URL", "")
        if not url:
            pytest.skip("PMHUB_TEST_POSTGRES_URL is not set; PostgreSQL tests need a server")
        import psycopg

        database = f"pmhub_state_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{database}"')
        base = url.rsplit("/", 1)[0]
        monkeypatch.setenv("PMHUB_PLATFORM_URL", f"{base}/{database}")
    build_network(pmhub_home)
    people()
    server = start_server()
    worker = subprocess.Popen(
        [sys.executable, "-c", "from pmhub.cli import main; main(['worker'])"],
        env=dict(os.environ),
        stderr=subprocess.DEVNULL,
    )
    try:
        yield server, worker
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        server.stop()
        if request.param == "postgresql":
            with psycopg.connect(url, autocommit=True) as con:
                con.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


def signed_in(server: Server, name: str) -> httpx.Client:
    reply = httpx.post(
        timeout=TIMEOUT,
        url=f"{server.url}/v1/session",
        json={"username": name, "password": PASSWORD},
    )
    assert reply.status_code == 200, reply.text
    return server.client(reply.json()["token"])


def ok(reply: httpx.Response, status: int = 200) -> Any:
    assert reply.status_code == status, f"{reply.request.method} {reply.request.url}: {reply.text}"
    return reply.json()


def step(client: httpx.Client, app_id: int, kind: str, **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = ok(
        client.post(f"/v1/applications/{app_id}/steps", json={"kind": kind, **fields})
    )
    return result


def wait_status(client: httpx.Client, app_id: int, wanted: str, seconds: float = 900) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = ok(client.get(f"/v1/applications/{app_id}"))
        phases = {s["phase"] for s in found["sites"].values()}
        if found["status"] == wanted or (wanted == "pseudonymized" and phases == {wanted}):
            return found
        assert "failed" not in phases, found["sites"]
        time.sleep(0.5)
    raise AssertionError(f"application {app_id} never reached {wanted}: {found}")


def approved_by_every_site(server: Server) -> tuple[httpx.Client, int]:
    """An application through IRB, DRB and the three stewards: extraction starts."""
    kim = signed_in(server, "kim")
    ok(kim.post("/v1/projects", json={"id": "t2dm-2026", "title": "T2DM in Gangwon"}), 201)
    irb_doc = ok(
        kim.post(
            "/v1/irb-documents",
            files={"file": ("irb-approval.pdf", irb_pdf(), "application/pdf")},
        ),
        201,
    )
    body = {**application_body(), "irb_document": irb_doc}
    made = ok(kim.post("/v1/applications", json={"project_id": "t2dm-2026", "body": body}), 201)
    app_id = int(made["id"])
    assert made["status"] == "draft"
    assert step(kim, app_id, "submitted")["status"] == "submitted"

    irb = signed_in(server, "irb")
    assert step(irb, app_id, "irb_approved")["status"] == "irb_approved"
    for name in DRB:
        step(signed_in(server, name), app_id, "drb_vote_cast", vote={"choice": "approve"})
    decided = step(signed_in(server, "drb1"), app_id, "drb_decided")
    assert decided["status"] == "drb_approved"
    assert decided["decision"]["outcome"] == "approved"

    for site in SITES:
        step(signed_in(server, f"steward_{site}"), app_id, "site_approved", site=site)
    return kim, app_id


@pytest.mark.slow
def test_the_whole_story_over_http(network: tuple[Server, subprocess.Popen[bytes]]) -> None:
    server, _ = network
    kim, app_id = approved_by_every_site(server)
    done = wait_status(kim, app_id, "pseudonymized")
    assert set(done["sites"]) == set(SITES)
    pf = open_platform(load_settings())
    try:  # each job's record says how long its parts took
        timed = [j.result or {} for j in jobs.list_jobs(pf) if j.kind == "extract"]
    finally:
        pf.close()
    assert len(timed) == len(SITES)
    for r in timed:
        assert r["seconds"] >= r["extract_seconds"] > 0
        assert r["pseudonymize_seconds"] > 0

    for site in SITES:
        officer = signed_in(server, f"officer_{site}")
        report = officer.get(f"/v1/applications/{app_id}/sites/{site}/adequacy-report")
        assert report.status_code == 200
        assert "<html" in report.text.lower()
        step(officer, app_id, "adequacy_signed_off", site=site)
    active = wait_status(kim, app_id, "active", seconds=300)
    assert "park" in active["members"]

    park = signed_in(server, "park")
    tables = {t["name"] for t in ok(park.get("/v1/workspaces/t2dm-2026/tables"))}
    assert {"person", "cohort"} <= tables
    raw = "SELECT site, gender_concept_id, count(*) AS n FROM person GROUP BY ALL ORDER BY ALL"
    first = ok(
        park.post("/v1/workspaces/t2dm-2026/query", json={"sql": raw, "save_as": "by-sex.csv"})
    )
    assert first["saved"]["name"] == "by-sex.csv"
    spec = {"dimensions": ["site", "gender_concept_id"], "counts": ["n"]}
    flagged = ok(
        park.post(
            "/v1/workspaces/t2dm-2026/outputs",
            json={"file": "by-sex.csv", "spec": spec, "description": "T2DM by site and sex"},
        ),
        201,
    )
    counts = [row[2] for row in first["rows"]]
    if min(counts) < 10:  # the county hospital's small cells are what the checks are for
        assert flagged["verdict"] == "review"
        assert any(f["rule"] for f in flagged["report"]["flags"])
    fixed_sql = (
        "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY ALL HAVING count(*) >= 10"
        " ORDER BY ALL"
    )
    ok(park.post("/v1/workspaces/t2dm-2026/query", json={"sql": fixed_sql, "save_as": "sex.csv"}))
    fixed = ok(
        park.post(
            "/v1/workspaces/t2dm-2026/outputs",
            json={
                "file": "sex.csv",
                "spec": {"dimensions": ["gender_concept_id"], "counts": ["n"]},
                "description": "T2DM by sex, network",
            },
        ),
        201,
    )
    assert fixed["verdict"] == "pass", fixed["report"]
    refused = park.get(f"/v1/outputs/{fixed['id']}/file")
    assert refused.status_code == 409  # not released yet

    for name in ("checker1", "checker2"):
        checker = signed_in(server, name)
        reviewed = ok(
            checker.post(
                f"/v1/outputs/{fixed['id']}/reviews",
                json={"decision": "approve", "reason": "counts of 10 or more, no dominance"},
            )
        )
    assert reviewed["state"] == "released"
    download = park.get(f"/v1/outputs/{fixed['id']}/file")
    assert download.status_code == 200
    released = pacsv.read_csv(io.BytesIO(download.content)).to_pylist()
    assert sum(r["n"] for r in released) > 0
    assert all(r["n"] >= 10 for r in released)

    auditor = signed_in(server, "auditor")
    verified = ok(auditor.post("/v1/audit/verify"))
    assert verified["ok"] is True
    trail = ok(auditor.get("/v1/audit/entries", params={"limit": 1000}))
    actions = {e["action"] for e in trail}
    assert {
        "application.submitted",
        "application.drb_decided",
        "application.pseudonymized",
        "workspace.query",
        "output.approve",
        "output.download",
    } <= actions
    assert not any("SELECT" in str(e.get("details")) for e in trail)  # SQL only by its hash


def start_worker() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "from pmhub.cli import main; main(['worker'])"],
        env=dict(os.environ),
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_a_server_and_worker_killed_mid_extraction_end_as_a_clean_run(
    pmhub_home: Path,
) -> None:
    """SIGKILL to the service and the worker while a site extracts; after a restart the
    job runs again, and every site's release is what a clean extraction of the same
    application gives, byte for byte."""
    import signal

    from pmhub.platform.core import open_platform
    from pmhub.privacy.keys import KeyStore
    from pmhub.safezone import extraction
    from pmhub.safezone import service as safezone
    from pmhub.sites import SiteRegistry

    build_network(pmhub_home)
    people()
    server, worker = start_server(), start_worker()
    try:
        kim, app_id = approved_by_every_site(server)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = ok(kim.get(f"/v1/applications/{app_id}"))
            if any(s["phase"] == "extracting" for s in found["sites"].values()):
                break
            time.sleep(0.05)
        for process in (worker, server.process):
            process.send_signal(signal.SIGKILL)
            process.wait()
        server, worker = start_server(), start_worker()
        kim = signed_in(server, "kim")
        done = wait_status(kim, app_id, "pseudonymized")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        server.stop()
    history = [(h["kind"], h["site"]) for h in done["history"]]
    for site in SITES:  # finished once per site, whatever was started twice
        assert history.count(("extraction_finished", site)) == 1
        assert history.count(("pseudonymized", site)) == 1
    pf = open_platform(load_settings())
    try:
        states = {j.site: j for j in jobs.list_jobs(pf) if j.kind == "extract"}
        assert {j.state for j in states.values()} == {jobs.DONE}
        assert max(j.attempts for j in states.values()) >= 2  # one was run again
        view = safezone.get_application(pf, operator_admin(pf), app_id)
        key = KeyStore(pf.settings).get(view.state.id)
        for site in SITES:
            clean = pmhub_home / "clean" / site
            extraction.extract_site(view.state, SiteRegistry(pf.settings).get(site), clean, key=key)
            recovered = safezone.extraction_dir(pf, app_id, site) / extraction.DATA
            for table in sorted((clean / extraction.DATA).glob("*.parquet")):
                assert table.read_bytes() == (recovered / table.name).read_bytes(), table.name
    finally:
        pf.close()


def operator_admin(pf: Any) -> Any:
    from pmhub.platform.users import find_user, principal_of

    with pf.db.read() as session:
        return principal_of(session, find_user(session, "admin"))
