"""The demo's safe zone: a person for every role, and one project taken from application to
a released output, through the same service functions the API and the CLI call.

Idempotent: people who exist are kept (their passwords too), and a finished demo project
is left as it is. Extraction runs here, in this process, as the worker would run it.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pmhub.platform.core import Platform
from pmhub.platform.roles import Principal

PROJECT = "demo-t2dm"
PASSWORD_PREFIX = "pmhub-demo-"  # demo accounts only: printed for whoever runs the demo


@dataclass(frozen=True)
class DemoPerson:
    username: str
    role: str
    scope: str | None = None
    external: bool = False
    represents_data_subjects: bool = False

    @property
    def password(self) -> str:
        return f"{PASSWORD_PREFIX}{self.username}"


def people(sites: list[str]) -> list[DemoPerson]:
    found = [
        DemoPerson("admin", "platform_admin"),
        DemoPerson("kim.applicant", "applicant"),
        DemoPerson("park.member", "applicant"),
        DemoPerson("choi.irb", "irb_reviewer"),
        DemoPerson("drb.lee", "drb_member"),
        DemoPerson("drb.jung", "drb_member"),
        DemoPerson("drb.kang", "drb_member"),
        DemoPerson("drb.yoon", "drb_member", external=True),
        DemoPerson("drb.han", "drb_member", external=True, represents_data_subjects=True),
        DemoPerson("checker.oh", "output_checker"),
        DemoPerson("checker.seo", "output_checker"),
        DemoPerson("auditor.shin", "auditor"),
    ]
    for site in sites:
        found.append(DemoPerson(f"steward.{site}", "steward", site))
        found.append(DemoPerson(f"officer.{site}", "pseudonymization_officer", site))
    return found


def ensure_people(pf: Platform, everyone: list[DemoPerson]) -> list[DemoPerson]:
    """Create the demo people who are missing; the ones made now."""
    from pmhub.platform import users
    from pmhub.platform.errors import ConflictError
    from pmhub.platform.roles import operator

    op = operator("demo")
    made = []
    for person in everyone:
        try:
            users.create_user(
                pf, op, person.username, display_name=person.username, password=person.password
            )
        except ConflictError:
            continue
        users.grant_role(
            pf,
            op,
            person.username,
            person.role,
            scope=person.scope,
            external=person.external,
            represents_data_subjects=person.represents_data_subjects,
        )
        made.append(person)
    return made


def principal(pf: Platform, username: str) -> Principal:
    from pmhub.platform.users import find_user, principal_of

    with pf.db.read() as session:
        return principal_of(session, find_user(session, username))


def application_body(sites: list[str], irb: dict[str, Any]) -> dict[str, Any]:
    from pmhub.cohorts import definition

    library = Path(definition.__file__).parent / "library"
    cohort = yaml.safe_load((library / "type2_diabetes.yaml").read_text(encoding="utf-8"))
    today = dt.datetime.now(dt.UTC).date()
    return {
        "title": "제2형 당뇨병 환자의 성별·연령 분포 (demo)",
        "purpose": "Describe first type 2 diabetes diagnoses in the Gangwon network by sex.",
        "research_plan": "Cohort of first T2DM diagnoses at three hospitals; counts by sex.",
        "sites": sites,
        "cohort": cohort,
        "variables": [{"table": "person", "columns": ["year_of_birth", "gender_concept_id"]}],
        "period": {
            "start": today.isoformat(),
            "end": (today + dt.timedelta(days=365)).isoformat(),
        },
        "members": ["park.member"],
        "irb_document": irb,
    }


def irb_letter() -> bytes:
    """A real PDF for the demo's IRB approval."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 2))
    figure.text(0.05, 0.5, "IRB approval (demo): type 2 diabetes in the Gangwon network")
    out = io.BytesIO()
    figure.savefig(out, format="pdf")
    return out.getvalue()


def finished_project(pf: Platform, sites: list[str]) -> dict[str, Any]:
    """The demo project from application to one released output (skipped when done)."""
    from sqlalchemy import select

    from pmhub.platform import projects
    from pmhub.platform.models import Application as ApplicationRow
    from pmhub.safezone import jobs, outputs, service

    with pf.db.read() as session:
        existing = session.scalars(
            select(ApplicationRow.id).where(ApplicationRow.project_id == PROJECT)
        ).first()
    if existing is not None:
        return {"application_id": existing, "created": False}
    kim = principal(pf, "kim.applicant")
    projects.create_project(pf, kim, PROJECT, "Type 2 diabetes in Gangwon (demo)")
    irb = service.store_irb_document(pf, kim, irb_letter(), "irb-approval.pdf")
    made = service.draft_application(pf, kim, PROJECT, application_body(sites, irb.model_dump()))
    app_id = made.id
    service.take_step(pf, kim, app_id, "submitted")
    service.take_step(pf, principal(pf, "choi.irb"), app_id, "irb_approved")
    for member in ("drb.lee", "drb.jung", "drb.kang", "drb.yoon", "drb.han"):
        service.take_step(
            pf, principal(pf, member), app_id, "drb_vote_cast", vote={"choice": "approve"}
        )
    service.take_step(pf, principal(pf, "drb.lee"), app_id, "drb_decided")
    for site in sites:
        service.take_step(pf, principal(pf, f"steward.{site}"), app_id, "site_approved", site=site)
    for job in jobs.list_jobs(pf):
        if job.application_id == app_id and job.state != jobs.DONE:
            jobs.run(pf, job.id)  # as the worker would
    for site in sites:
        officer = principal(pf, f"officer.{site}")
        service.take_step(pf, officer, app_id, "adequacy_signed_off", site=site)
    park = principal(pf, "park.member")
    sql = (
        "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY ALL"
        " HAVING count(*) >= 10 ORDER BY ALL"
    )
    outputs.query(pf, park, PROJECT, sql, save_as="t2dm-by-sex.csv")
    spec = {"dimensions": ["gender_concept_id"], "counts": ["n"]}
    request = outputs.request_output(
        pf, park, PROJECT, "t2dm-by-sex.csv", spec, "T2DM persons by sex, three hospitals"
    )
    for checker in ("checker.oh", "checker.seo"):
        outputs.review_output(
            pf, principal(pf, checker), request.id, "approve", "counts of 10 or more"
        )
    return {"application_id": app_id, "created": True, "output_id": request.id}
