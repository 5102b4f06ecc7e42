"""A platform with people of every safe-zone role and an application the DRB approved,
built through the service functions (no HTTP): for the API tests that need real state."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pmhub.platform.core import Platform
from pmhub.platform.roles import Principal, operator
from tests.api.conftest import make_user
from tests.e2e.test_safezone_story import irb_pdf

PROJECT = "fuzz-own"


def principal(pf: Platform, username: str) -> Principal:
    from pmhub.platform.users import find_user, principal_of

    with pf.db.read() as session:
        return principal_of(session, find_user(session, username))


def people(pf: Platform, sites: list[str]) -> None:
    """admin, kim (applicant), irb, drb1..drb5 (the default quorum), a steward and an
    officer per site, and an output checker."""
    from pmhub.platform.users import grant_role

    make_user(pf, "admin", ("platform_admin", None))
    make_user(pf, "kim", ("applicant", None))
    make_user(pf, "irb", ("irb_reviewer", None))
    make_user(pf, "checker", ("output_checker", None))
    for site in sites:
        make_user(pf, f"steward_{site}", ("steward", site))
        make_user(pf, f"officer_{site}", ("pseudonymization_officer", site))
    for k in range(1, 6):
        make_user(pf, f"drb{k}")
        external, subjects = k >= 4, k == 5
        grant_role(
            pf,
            operator(),
            f"drb{k}",
            "drb_member",
            external=external,
            represents_data_subjects=subjects,
        )


def step(pf: Platform, app_id: int, who: str, kind: str, **fields: Any) -> Any:
    from pmhub.safezone import service

    return service.take_step(pf, principal(pf, who), app_id, kind, **fields)


def drb_approved(pf: Platform, sites: list[str]) -> int:
    """kim's project and application for ``sites``, through the IRB and the DRB."""
    from pmhub.api.shapes import out
    from pmhub.platform import projects
    from pmhub.safezone import service
    from tests.api.test_authorization_matrix import draft_body

    kim = principal(pf, "kim")
    projects.create_project(pf, kim, PROJECT, "Fuzzed")
    document = service.store_irb_document(pf, kim, irb_pdf(), "irb.pdf")
    today = dt.datetime.now(dt.UTC).date()
    body = {
        **draft_body(),
        "sites": sites,
        "variables": [{"table": "person", "columns": ["year_of_birth", "gender_concept_id"]}],
        "period": {"start": today.isoformat(), "end": (today + dt.timedelta(days=60)).isoformat()},
        "irb_document": out(document),
    }
    app_id = int(service.draft_application(pf, kim, PROJECT, body).id)
    step(pf, app_id, "kim", "submitted")
    step(pf, app_id, "irb", "irb_approved")
    for k in range(1, 6):
        step(pf, app_id, f"drb{k}", "drb_vote_cast", vote={"choice": "approve"})
    step(pf, app_id, "drb1", "drb_decided")
    return app_id


def delivered_project(pf: Platform, site: str) -> None:
    """A one-site request on to an active workspace, with a saved result and an output
    request pending review."""
    from pmhub.safezone import jobs, outputs

    app_id = drb_approved(pf, [site])
    step(pf, app_id, f"steward_{site}", "site_approved", site=site)
    for job in jobs.list_jobs(pf):  # no worker here: the job runs in this process
        assert jobs.run(pf, job.id) == jobs.DONE, jobs.get(pf, job.id)
    step(pf, app_id, f"officer_{site}", "adequacy_signed_off", site=site)
    kim = principal(pf, "kim")  # a member of the project now
    sql = "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY ALL ORDER BY ALL"
    outputs.query(pf, kim, PROJECT, sql, save_as="by-sex.csv")
    spec = {"dimensions": ["gender_concept_id"], "counts": ["n"]}
    outputs.request_output(pf, kim, PROJECT, "by-sex.csv", spec, "counts by sex")
