"""Benchmark: one data-use request through the safe-zone service, then workspace queries.

A network of 3 sites holding 100,000 synthetic patients (BENCH_SMALL=1: 2,000) and the
service as it is deployed: a `pmhub serve` process and a `pmhub worker` process on one
platform home. Over HTTP, as its users would: an applicant submits a request for every
patient with a visit (person, conditions, HbA1c measurements) at the 3 sites; the IRB
approves, the DRB votes and decides, each site's steward approves; the worker extracts
and pseudonymizes each site's part; each site's pseudonymization officer reads the
adequacy report and signs off; the last sign-off delivers into the project's workspace.

1. Submission to delivery: the wall time from the submit call to the workspace being
   active, with its parts (the reviewers' calls, the extraction jobs, the delivery).
2. Extraction and pseudonymization at each site, as the worker's job records give them,
   against the same work done bare in this run on the same sites: the cohort run as
   `pmhub cohort run --site` does it, the rows of the requested tables for its persons,
   and `pmhub privacy anonymize` of those rows under the same policy and key (called
   in-process, as the worker calls them, so neither pays an interpreter's start).
3. Workspace queries from this process (the server is another): requests/s and p50/p99
   latency of a mix of five aggregate and preview queries at concurrency 1 and 16, over
   HTTP (token check, SQL check, sandbox, audit entry) and, on the same workspace, through
   the engine alone (SQL check and sandbox pool, as bench/safezone_query.py measures).

Run from the repository root: .venv/bin/python bench/safezone.py
Last line: one JSON object of the figures.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from safezone_query import percentile  # bench/ is on the path of a script run from it

SMALL = os.environ.get("BENCH_SMALL") == "1"
PATIENTS = 2_000 if SMALL else 100_000
YEARS = 2 if SMALL else 6
REQUESTS = {1: 40, 16: 96} if SMALL else {1: 200, 16: 480}
SEED = 20261123
PROJECT = "bench-2026"
PASSWORD = "bench password, long enough"
DRB = {  # name: (external, represents data subjects): the default quorum of 5
    "drb1": (False, False),
    "drb2": (False, False),
    "drb3": (False, False),
    "drb4": (True, False),
    "drb5": (True, True),
}
COHORT: dict[str, Any] = {
    "format_version": 1,
    "id": 9101,
    "name": "Every patient with a visit",
    "description": "Each person's first inpatient, outpatient or emergency visit.",
    "concept_sets": [
        {
            "id": "visit",
            "name": "Inpatient, outpatient or emergency visit",
            "items": [{"concept_id": 9201}, {"concept_id": 9202}, {"concept_id": 9203}],
        },
        {"id": "hba1c", "name": "Hemoglobin A1c", "items": [{"concept_id": 3004410}]},
    ],
    "entry": {
        "criteria": [{"domain": "visit", "concept_set": "visit", "first_occurrence": True}],
        "limit": "first",
    },
    "exit": {"type": "end_of_observation"},
}
VARIABLES = [
    {"table": "person", "columns": ["year_of_birth", "gender_concept_id"]},
    {"table": "condition_occurrence", "columns": ["condition_start_date", "condition_concept_id"]},
    {
        "table": "measurement",
        "columns": ["measurement_date", "measurement_concept_id", "value_as_number"],
        "concept_set": "hba1c",
    },
]
QUERIES = (
    "SELECT site, gender_concept_id, count(*) AS n FROM person GROUP BY ALL ORDER BY ALL",
    "SELECT year_of_birth // 10 * 10 AS decade, count(*) AS n FROM person GROUP BY 1 ORDER BY 1",
    "SELECT condition_concept_id, count(DISTINCT person_id) AS persons"
    " FROM condition_occurrence GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
    "SELECT p.gender_concept_id, round(avg(m.value_as_number), 2) AS mean"
    " FROM person p JOIN measurement m USING (site, person_id) GROUP BY 1 ORDER BY 1",
    "SELECT * FROM person WHERE year_of_birth = 1970",
)

console = Console(width=max(132, shutil.get_terminal_size().columns))


# --- the network and its people -----------------------------------------------------------


def build_network(home: Path) -> list[str]:
    """The demo's three sites, filled with one synthetic population; their names."""
    from pmhub import demo
    from pmhub.settings import load_settings
    from pmhub.sites import SiteRegistry
    from pmhub.synth.load import load_sites

    sites = demo.build_network(SiteRegistry(load_settings()))
    backends = {s.name: s.connect() for s in sites}
    try:
        load_sites(backends, patients=PATIENTS, years=YEARS, seed=SEED, truth_dir=home / "truth")
    finally:
        for backend in backends.values():
            backend.close()
    return [s.name for s in sites]


def make_people(sites: list[str]) -> None:
    from pmhub.platform import users
    from pmhub.platform.core import open_platform
    from pmhub.platform.roles import operator

    pf = open_platform()
    op = operator()

    def user(name: str, *grants: tuple[str, str | None], **flags: bool) -> None:
        users.create_user(pf, op, name, display_name=name, password=PASSWORD)
        for role, scope in grants:
            users.grant_role(pf, op, name, role, scope=scope, **flags)

    try:
        user("admin", ("platform_admin", None))
        user("kim", ("applicant", None))
        user("irb", ("irb_reviewer", None))
        for name, (external, subjects) in DRB.items():
            user(name, ("drb_member", None), external=external, represents_data_subjects=subjects)
        for site in sites:
            user(f"steward_{site}", ("steward", site))
            user(f"officer_{site}", ("pseudonymization_officer", site))
    finally:
        pf.close()


def irb_pdf() -> bytes:
    """A real PDF, as a scanned approval letter would be (the upload checks content)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, 2))
    figure.text(0.1, 0.5, "IRB approval 2026-201")
    out = io.BytesIO()
    figure.savefig(out, format="pdf")
    return out.getvalue()


# --- the service ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pmhub_process(*argv: str, log: Path) -> subprocess.Popen[bytes]:
    code = f"from pmhub.cli import main; main({list(argv)!r})"
    with open(log, "ab") as err:
        return subprocess.Popen([sys.executable, "-c", code], stderr=err, env=dict(os.environ))


@contextmanager
def service(home: Path) -> Iterator[str]:
    """`pmhub serve` and `pmhub worker` on the home; the service's URL while both run."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = pmhub_process("serve", "--port", str(port), log=home / "serve.log")
    worker = pmhub_process("worker", log=home / "worker.log")
    try:
        deadline = time.monotonic() + 300
        while not (answers(url) and "pmhub worker:" in (home / "worker.log").read_text()):
            for name, process in (("serve", server), ("worker", worker)):
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (home / f"{name}.log").read_text(errors="replace")[-2000:]
                    sys.exit(f"pmhub {name} did not start: {log}")
            time.sleep(0.2)
        yield url
    finally:
        for process in (worker, server):
            process.terminate()
        for process in (worker, server):
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def signed_in(url: str, name: str) -> httpx.Client:
    reply = httpx.post(f"{url}/v1/session", json={"username": name, "password": PASSWORD})
    reply.raise_for_status()
    token = reply.json()["token"]
    # delivery runs inside the last sign-off's request: give it the time it needs
    return httpx.Client(
        base_url=url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=3600,
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
    )


def ok(reply: httpx.Response, status: int = 200) -> Any:
    if reply.status_code != status:
        sys.exit(f"{reply.request.method} {reply.request.url}: {reply.status_code} {reply.text}")
    return reply.json() if reply.headers["content-type"].endswith("json") else reply.text


def step(client: httpx.Client, app_id: int, kind: str, **fields: Any) -> Any:
    return ok(client.post(f"/v1/applications/{app_id}/steps", json={"kind": kind, **fields}))


def application_body(sites: list[str], irb_document: dict[str, Any]) -> dict[str, Any]:
    today = dt.datetime.now(dt.UTC).date()
    return {
        "title": "Every patient in Gangwon, benchmarked",
        "purpose": "Measure the safe zone: one request for every patient of three hospitals.",
        "research_plan": "Counts of conditions and HbA1c by sex and birth decade.",
        "sites": sites,
        "cohort": COHORT,
        "variables": VARIABLES,
        "period": {
            "start": today.isoformat(),
            "end": (today + dt.timedelta(days=90)).isoformat(),
        },
        "members": [],
        "irb_document": irb_document,
    }


def wait_until(client: httpx.Client, app_id: int, done: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + 6 * 3600
    while time.monotonic() < deadline:
        found = ok(client.get(f"/v1/applications/{app_id}"))
        if done(found):
            return found
        phases = {s["phase"] for s in found["sites"].values()}
        if "failed" in phases:
            sys.exit(f"an extraction failed: {found['sites']}")
        time.sleep(0.2)
    sys.exit(f"application {app_id} did not finish in 6 hours")


def request_to_delivery(url: str, sites: list[str]) -> tuple[int, dict[str, float]]:
    """The whole request over HTTP; its id and the seconds of each part."""
    kim = signed_in(url, "kim")
    ok(kim.post("/v1/projects", json={"id": PROJECT, "title": "Safe-zone benchmark"}), 201)
    pdf = ("irb-approval.pdf", irb_pdf(), "application/pdf")
    irb_document = ok(kim.post("/v1/irb-documents", files={"file": pdf}), 201)
    body = application_body(sites, irb_document)
    made = ok(kim.post("/v1/applications", json={"project_id": PROJECT, "body": body}), 201)
    app_id = int(made["id"])
    reviewers = {name: signed_in(url, name) for name in ("irb", *DRB)}
    stewards = {s: signed_in(url, f"steward_{s}") for s in sites}
    officers = {s: signed_in(url, f"officer_{s}") for s in sites}

    started = time.perf_counter()
    step(kim, app_id, "submitted")
    step(reviewers["irb"], app_id, "irb_approved")
    for name in DRB:
        step(reviewers[name], app_id, "drb_vote_cast", vote={"choice": "approve"})
    step(reviewers["drb1"], app_id, "drb_decided")
    for site in sites:
        step(stewards[site], app_id, "site_approved", site=site)
    approved = time.perf_counter()
    wait_until(
        kim,
        app_id,
        lambda found: {s["phase"] for s in found["sites"].values()} == {"pseudonymized"},
    )
    pseudonymized = time.perf_counter()
    for site in sites:
        ok(officers[site].get(f"/v1/applications/{app_id}/sites/{site}/adequacy-report"))
    read = time.perf_counter()
    for site in sites[:-1]:
        step(officers[site], app_id, "adequacy_signed_off", site=site)
    signing = time.perf_counter()
    step(officers[sites[-1]], app_id, "adequacy_signed_off", site=sites[-1])  # delivers
    active = wait_until(kim, app_id, lambda found: found["status"] == "active")
    delivered = time.perf_counter()
    return app_id, {
        "submit_to_delivery_s": delivered - started,
        "reviews_s": approved - started,
        "extraction_wall_s": pseudonymized - approved,
        "queue_wait_s": queue_wait(active["history"]),
        "reports_s": read - pseudonymized,
        "signoffs_s": signing - read,
        "delivery_s": delivered - signing,
    }


def queue_wait(history: list[dict[str, Any]]) -> float:
    """How long the first approved site waited for the idle worker to start its job."""
    at: dict[tuple[str, str], dt.datetime] = {
        (h["kind"], h["site"]): dt.datetime.fromisoformat(h["at"]) for h in history if h["site"]
    }
    waits = [
        (at[("extraction_started", site)] - at[("site_approved", site)]).total_seconds()
        for kind, site in at
        if kind == "site_approved"
    ]
    return min(waits)


def job_records(app_id: int) -> dict[str, dict[str, Any]]:
    """Each site's extraction job as the worker recorded it."""
    from pmhub.platform.core import open_platform
    from pmhub.safezone import jobs

    pf = open_platform(migrate=False)
    try:
        found = [j for j in jobs.list_jobs(pf) if j.kind == "extract"]
    finally:
        pf.close()
    return {
        str(j.site): {**(j.result or {}), "attempts": j.attempts, "state": j.state}
        for j in found
        if j.application_id == app_id
    }


# --- the same work without the service ------------------------------------------------------


def bare_run(app_id: int, sites: list[str], work: Path) -> dict[str, dict[str, float]]:
    """At each site: the cohort run, the rows of its persons, anonymize; seconds of each."""
    from pmhub.cohorts import definition as cohort_format
    from pmhub.cohorts import service as cohorts
    from pmhub.cohorts.engines import SqlEngine
    from pmhub.platform.core import open_platform
    from pmhub.platform.users import find_user, principal_of
    from pmhub.privacy import service as privacy
    from pmhub.privacy.keys import KeyStore
    from pmhub.safezone import extraction
    from pmhub.safezone import service as safezone
    from pmhub.sites import SiteRegistry

    pf = open_platform(migrate=False)
    try:
        with pf.db.read() as session:
            admin = principal_of(session, find_user(session, "admin"))
        state = safezone.get_application(pf, admin, app_id).state
        key = KeyStore(pf.settings).get(state.id)
        registry = SiteRegistry(pf.settings)
    finally:
        pf.close()
    definition = cohort_format.parse(COHORT)
    figures: dict[str, dict[str, float]] = {}
    for site in sites:
        raw, out = work / site / "raw", work / site / "release"
        raw.mkdir(parents=True)
        with cohorts.open_engine(registry.get(site)) as engine:
            assert isinstance(engine, SqlEngine)
            started = time.perf_counter()
            cohorts.generate(definition, engine)
            cohort_s = time.perf_counter() - started
            started = time.perf_counter()
            extraction.select_rows(state, engine, raw, lambda *_: None)
            rows_s = time.perf_counter() - started
        started = time.perf_counter()
        privacy.anonymize(
            raw, extraction.site_policy(state, site), out, key, output_format="parquet"
        )
        anonymize_s = time.perf_counter() - started
        figures[site] = {"cohort_s": cohort_s, "rows_s": rows_s, "anonymize_s": anonymize_s}
        shutil.rmtree(work / site)
    return figures


# --- workspace queries ------------------------------------------------------------------------


def load(one: Callable[[str], None]) -> dict[str, dict[str, float]]:
    """Each query once per sandbox worker first, then the timed requests at each concurrency."""
    for sql in QUERIES * 2:
        one(sql)

    def timed(i: int) -> float:
        started = time.perf_counter()
        one(QUERIES[i % len(QUERIES)])
        return time.perf_counter() - started

    figures: dict[str, dict[str, float]] = {}
    for concurrency, count in REQUESTS.items():
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as threads:
            latencies = list(threads.map(timed, range(count)))
        wall = time.perf_counter() - started
        figures[str(concurrency)] = {
            "rps": count / wall,
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * percentile(latencies, 0.99),
        }
    return figures


def http_queries(url: str) -> dict[str, dict[str, float]]:
    client = signed_in(url, "kim")
    path = f"/v1/workspaces/{PROJECT}/query"

    def one(sql: str) -> None:
        reply = client.post(path, json={"sql": sql})
        if reply.status_code != 200:
            raise RuntimeError(f"{reply.status_code}: {reply.text[:500]}")

    try:
        return load(one)
    finally:
        client.close()


def engine_queries() -> dict[str, dict[str, float]]:
    from pmhub.safezone.sandbox import QueryLimits, SandboxLimits, SandboxPool
    from pmhub.safezone.workspace import open_workspace

    space = open_workspace(PROJECT)
    limits = QueryLimits()  # the service's own defaults, as are the pool's
    scratch = Path(os.environ["PMHUB_HOME"]) / "tmp" / "bench-sandbox"
    scratch.mkdir(parents=True)
    with SandboxPool(scratch, SandboxLimits()) as pool:

        def one(sql: str) -> None:
            space.query(sql, limits, pool=pool)

        return load(one)


# --- the report -------------------------------------------------------------------------------


def show(
    parts: dict[str, float],
    jobs: dict[str, dict[str, Any]],
    bare: dict[str, dict[str, float]],
    http: dict[str, dict[str, float]],
    engine: dict[str, dict[str, float]],
) -> None:
    table = Table(title=f"one request, {PATIENTS:,} patients at {len(jobs)} sites: submit → active")
    table.add_column("part")
    table.add_column("s", justify="right")
    for name, seconds in parts.items():
        table.add_row(name.removesuffix("_s").replace("_", " "), f"{seconds:.1f}")
    console.print(table)

    table = Table(title="each site: the worker's job against the same work bare")
    for column in (
        "site",
        "persons",
        "rows out",
        "job s",
        "extract s",
        "pseudonymize s",
        "cohort s",
        "rows s",
        "anonymize s",
        "job / (cohort + anonymize)",
        "job / bare",
    ):
        table.add_column(column, justify="left" if column == "site" else "right")
    for site, job in jobs.items():
        b = bare[site]
        table.add_row(
            site,
            f"{job['persons']:,}",
            f"{job['rows_released']:,}",
            f"{job['seconds']:.1f}",
            f"{job['extract_seconds']:.1f}",
            f"{job['pseudonymize_seconds']:.1f}",
            f"{b['cohort_s']:.1f}",
            f"{b['rows_s']:.1f}",
            f"{b['anonymize_s']:.1f}",
            f"{job['seconds'] / (b['cohort_s'] + b['anonymize_s']):.2f}",
            f"{job['seconds'] / sum(b.values()):.2f}",
        )
    console.print(table)

    table = Table(title=f"workspace queries from a second process ({len(QUERIES)} kinds)")
    for column in ("path", "concurrency", "requests", "requests/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for path, figures in (("HTTP", http), ("engine", engine)):
        for concurrency, f in figures.items():
            table.add_row(
                path,
                concurrency,
                str(REQUESTS[int(concurrency)]),
                f"{f['rps']:.1f}",
                f"{f['p50_ms']:.1f}",
                f"{f['p99_ms']:.1f}",
            )
    console.print(table)


def main() -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pmhub-bench-safezone-") as tmp:
        home = Path(tmp) / "home"
        os.environ["PMHUB_HOME"] = str(home)
        os.environ["PMHUB_CONFIG"] = str(Path(tmp) / "pmhub.toml")  # none: the defaults
        started = time.perf_counter()
        sites = build_network(home)
        make_people(sites)
        setup_s = time.perf_counter() - started
        console.print(f"{PATIENTS:,} patients at {len(sites)} sites made in {setup_s:.0f} s")
        with service(home) as url:
            app_id, parts = request_to_delivery(url, sites)
            jobs = job_records(app_id)
            http = http_queries(url)
        engine = engine_queries()
        bare = bare_run(app_id, sites, Path(tmp) / "bare")
    load_after = os.getloadavg()[0]
    show(parts, jobs, bare, http, engine)
    console.print(f"load average (1 min): {load_before:.1f} at start, {load_after:.1f} at end")
    job_s = sum(j["seconds"] for j in jobs.values())
    bare_s = {k: sum(b[k] for b in bare.values()) for k in ("cohort_s", "rows_s", "anonymize_s")}
    result: dict[str, Any] = {
        "bench": "safezone",
        "patients": PATIENTS,
        "sites": len(sites),
        "persons": sum(j["persons"] for j in jobs.values()),
        "rows_released": sum(j["rows_released"] for j in jobs.values()),
        **{k: round(v, 2) for k, v in parts.items()},
        "jobs_s": round(job_s, 2),
        **{f"site_{site}_job_s": round(j["seconds"], 2) for site, j in jobs.items()},
        **{f"bare_{k}": round(v, 2) for k, v in bare_s.items()},
        "job_vs_cohort_anonymize": round(job_s / (bare_s["cohort_s"] + bare_s["anonymize_s"]), 2),
        "job_vs_bare": round(job_s / sum(bare_s.values()), 2),
        **{f"http_c{c}_{k}": round(v, 1) for c, f in http.items() for k, v in f.items()},
        **{f"engine_c{c}_{k}": round(v, 1) for c, f in engine.items() for k, v in f.items()},
        "load_avg_start": round(load_before, 1),
        "load_avg_end": round(load_after, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
