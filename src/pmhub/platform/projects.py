"""Projects: the unit a data-use application, a workspace and its members belong to."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from pmhub.platform import validate
from pmhub.platform.audit import append, authorize
from pmhub.platform.core import Platform
from pmhub.platform.errors import ConflictError, NotFoundError
from pmhub.platform.models import Organisation, Project
from pmhub.platform.policy import Context
from pmhub.platform.roles import Principal


@dataclasses.dataclass(frozen=True)
class ProjectInfo:
    id: str
    title: str
    organisation: str | None
    created_by: str
    created_at: dt.datetime


def create_project(
    pf: Platform, by: Principal, project_id: str, title: str, *, organisation: str | None = None
) -> ProjectInfo:
    project_id = validate.project_id(project_id)
    title = validate.text("project title", title, max_len=200)
    if organisation is not None:
        organisation = validate.text("organisation", organisation, max_len=80)
    authorize(
        pf, "project.create", by, Context(project_id=project_id), target=f"project:{project_id}"
    )
    try:
        with pf.db.write() as session:
            org = None
            if organisation is not None:
                org = session.scalar(select(Organisation).where(Organisation.name == organisation))
                if org is None:
                    raise NotFoundError(f"no organisation named {organisation!r}")
            project = Project(
                id=project_id,
                title=title,
                organisation_id=org.id if org else None,
                created_by=by.actor,
                created_at=pf.now(),
            )
            session.add(project)
            session.flush()
            append(
                pf,
                session,
                actor=by.actor,
                action="project.create",
                target=f"project:{project_id}",
                details={"project_id": project_id, "organisation": organisation},
            )
            return ProjectInfo(project_id, title, organisation, by.actor, project.created_at)
    except IntegrityError as exc:
        raise ConflictError(f"a project {project_id!r} exists") from exc


def get_project(pf: Platform, by: Principal, project_id: str) -> ProjectInfo:
    project_id = validate.project_id(project_id)
    authorize(
        pf, "project.read", by, Context(project_id=project_id), target=f"project:{project_id}"
    )
    with pf.db.read() as session:
        project = session.get(Project, project_id)
        if project is None:
            raise NotFoundError(f"no project {project_id!r}")
        org = (
            session.get(Organisation, project.organisation_id) if project.organisation_id else None
        )
        return ProjectInfo(
            project.id,
            project.title,
            org.name if org else None,
            project.created_by,
            project.created_at,
        )
