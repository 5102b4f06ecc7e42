"""The safe zone's service: applications kept as events in the platform state, each step
authorized by the platform's policy and recorded in the audit trail, and the work that
follows a step (a site's extraction job, delivery into the project's workspace).

The CLI verbs and the API routes call these functions; the rules of the lifecycle are the
pure state machine of :mod:`pmhub.safezone.application`, replayed from the stored events.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from pmhub.platform import audit
from pmhub.platform.core import Platform
from pmhub.platform.errors import ConflictError, NotFoundError
from pmhub.platform.models import Application as ApplicationRow
from pmhub.platform.models import ApplicationEvent, Project, RoleAssignment, User
from pmhub.platform.models import Workspace as WorkspaceRow
from pmhub.platform.policy import Context
from pmhub.platform.roles import Principal, Role
from pmhub.safezone import application as lifecycle
from pmhub.safezone import drb, jobs, upload
from pmhub.safezone.application import Application, ApplicationBody, Event, Status

SYSTEM_ID = "pmhub-system"  # the service itself, for the steps no person takes
# the platform rule that guards each step a person takes
STEP_RULES: dict[str, str] = {
    "edited": "application.edit",
    "submitted": "application.submit",
    "resubmitted": "application.submit",
    "irb_approved": "review.irb",
    "irb_rejected": "review.irb",
    "drb_vote_cast": "review.drb",
    "drb_decided": "review.drb",
    "site_approved": "site.approve",
    "site_refused": "site.approve",
    "adequacy_signed_off": "adequacy.signoff",
    "closed": "application.close",
    "revoked": "application.revoke",
}
GRACE = dt.timedelta(days=30)  # a locked workspace is destroyed this long after its period


class PrincipalActor:
    """A platform user as the state machine sees an actor: roles by name, stewards and
    pseudonymization officers for the sites their grants name."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    @property
    def id(self) -> str:
        return self.principal.username

    def has_role(self, role: str, site: str | None = None) -> bool:
        wanted = Role(role)
        if wanted in (Role.STEWARD, Role.PSEUDONYMIZATION_OFFICER):
            return site is not None and self.principal.has(wanted, site=site)
        return self.principal.has_any_scope(wanted)


SYSTEM = lifecycle.StaticActor(SYSTEM_ID, frozenset({"platform_admin"}))


@dataclass(frozen=True)
class ApplicationView:
    id: int
    project_id: str
    state: Application

    def as_dict(self) -> dict[str, Any]:
        s = self.state
        return {
            "id": self.id,
            "project_id": self.project_id,
            "status": s.status.value,
            "applicant": s.applicant,
            "title": s.body.title,
            "sites": {
                name: {"phase": p.phase.value, "steward": p.steward, "reason": p.reason}
                for name, p in s.sites.items()
            },
            "period": {
                "start": s.body.period.start.isoformat(),
                "end": s.body.period.end.isoformat(),
            },
            "members": sorted(s.team),
            "votes": len(s.votes),
            "decision": _decision(s.decision),
            "history": [
                {
                    "seq": r.seq,
                    "kind": r.kind,
                    "at": r.at.isoformat(),
                    "actor": r.actor,
                    "role": r.role,
                    "reason": r.reason,
                    "site": r.site,
                }
                for r in s.history
            ],
        }


def _decision(decision: drb.Decision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {"outcome": decision.outcome, "rules": [str(r) for r in decision.rules]}


def domain_id(row_id: int) -> str:
    return f"app-{row_id}"


# --- reading ------------------------------------------------------------------------------


def _load(session: Any, application_id: int) -> tuple[ApplicationRow, Application]:
    row = session.get(ApplicationRow, application_id)
    if row is None:
        raise NotFoundError(f"no application {application_id}")
    events = session.scalars(
        select(ApplicationEvent)
        .where(ApplicationEvent.application_id == application_id)
        .order_by(ApplicationEvent.seq)
    )
    return row, lifecycle.replay(Event.model_validate(e.payload) for e in events)


def _ctx(row: ApplicationRow, state: Application, site: str | None = None) -> Context:
    return Context(
        project_id=row.project_id,
        site=site,
        owner_id=row.applicant_id,
        application_state=state.status.value,
    )


def get_application(pf: Platform, by: Principal, application_id: int) -> ApplicationView:
    with pf.db.read() as session:
        row, state = _load(session, application_id)
    audit.authorize(pf, "application.read", by, _ctx(row, state), target=_target(row.id))
    return ApplicationView(row.id, row.project_id, state)


def list_applications(pf: Platform, by: Principal) -> list[ApplicationView]:
    """The applications the caller may see."""
    from pmhub.platform import policy

    with pf.db.read() as session:
        ids = list(session.scalars(select(ApplicationRow.id).order_by(ApplicationRow.id)))
        found = [(_load(session, i)) for i in ids]
    return [
        ApplicationView(row.id, row.project_id, state)
        for row, state in found
        if policy.allows("application.read", by, _ctx(row, state))
    ]


def _target(application_id: int) -> str:
    return f"application:{application_id}"


# --- writing ------------------------------------------------------------------------------


def draft_application(
    pf: Platform, by: Principal, project_id: str, body: ApplicationBody | Mapping[str, Any]
) -> ApplicationView:
    """A new application of a project, as its applicant's draft."""
    parsed = body if isinstance(body, ApplicationBody) else lifecycle.parse_body(body)
    lifecycle.check_body(parsed)
    _check_sites(pf, parsed.sites)
    audit.authorize(
        pf,
        "application.create",
        by,
        Context(project_id=project_id, owner_id=by.user_id),
        target=f"project:{project_id}",
    )
    with pf.db.write() as session:
        if session.get(Project, project_id) is None:
            raise NotFoundError(
                f"no project {project_id!r}",
                hint="Create the project first (`pmhub request project-create`).",
            )
        now = pf.now()
        row = ApplicationRow(
            project_id=project_id,
            applicant_id=_user_id(by),
            state=Status.DRAFT.value,
            last_seq=0,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        event, state = lifecycle.act(
            None,
            PrincipalActor(by),
            "drafted",
            at=now,
            application_id=domain_id(row.id),
            body=parsed,
        )
        _store(pf, session, row, event, state, by)
        return ApplicationView(row.id, project_id, state)


def _user_id(by: Principal) -> int:
    if by.user_id is None:
        raise ConflictError(
            "an application is drafted by a user, not by the operator of the home",
            hint="Sign in as the applicant (a user with the applicant role).",
        )
    return by.user_id


def _check_sites(pf: Platform, sites: list[str]) -> None:
    from pmhub.sites import SiteRegistry

    known = {s.name for s in SiteRegistry(pf.settings).list()}
    unknown = sorted(set(sites) - known)
    if unknown:
        from pmhub.errors import UnknownSiteError

        raise UnknownSiteError(
            f"the application names site(s) the network does not have: {', '.join(unknown)}"
            f" (registered: {', '.join(sorted(known)) or 'none'})"
        )


def _store(
    pf: Platform,
    session: Any,
    row: ApplicationRow,
    event: Event,
    state: Application,
    by: Principal | None,
) -> None:
    session.add(
        ApplicationEvent(
            application_id=row.id,
            seq=event.seq,
            kind=event.kind,
            actor=event.actor,
            at=event.at,
            reason=event.reason,
            payload=json.loads(event.to_json()),
        )
    )
    row.state = state.status.value
    row.last_seq = event.seq
    row.updated_at = event.at
    try:
        session.flush()
    except IntegrityError as exc:  # another step was stored first: the caller saw old state
        raise ConflictError(
            f"application {row.id} changed while this step was taken",
            hint="Reload the application and take the step again if it still applies.",
        ) from exc
    details: dict[str, object] = {"application_id": row.id, "state": state.status.value}
    if event.site:
        details["site"] = event.site
    audit.append(
        pf,
        session,
        actor=by.actor if by is not None else f"system:{SYSTEM_ID}",
        action=f"application.{event.kind}",
        target=_target(row.id),
        details=details,
    )


def take_step(
    pf: Platform,
    by: Principal,
    application_id: int,
    kind: str,
    *,
    reason: str | None = None,
    site: str | None = None,
    body: ApplicationBody | Mapping[str, Any] | None = None,
    vote: Mapping[str, Any] | None = None,
) -> ApplicationView:
    """One step a person takes (submit, return, a review, a vote, a site's approval …)."""
    if kind not in STEP_RULES and kind != "returned":
        raise lifecycle_error(f"{kind!r} is not a step a person takes")
    parsed = None
    if body is not None:
        parsed = body if isinstance(body, ApplicationBody) else lifecycle.parse_body(body)
        lifecycle.check_body(parsed)
    with pf.db.read() as session:
        row, state = _load(session, application_id)
    rule = _rule_for(kind, by)
    audit.authorize(pf, rule, by, _ctx(row, state, site), target=_target(row.id))
    cast = _vote(pf, by, vote) if kind == "drb_vote_cast" else None
    with pf.db.write() as session:
        row, state = _load(session, application_id)
        event, new = lifecycle.act(
            state,
            PrincipalActor(by),
            kind,  # type: ignore[arg-type]  # checked against the step table above
            at=pf.now(),
            reason=reason,
            site=site,
            body=parsed,
            vote=cast,
            drb_policy=drb_policy(pf) if kind == "drb_decided" else None,
        )
        _store(pf, session, row, event, new, by)
    after = ApplicationView(row.id, row.project_id, new)
    _follow_up(pf, after, event)
    return get_application(pf, by, application_id) if kind != "closed" else after


def lifecycle_error(message: str) -> Exception:
    from pmhub.safezone.errors import StateTransitionError

    return StateTransitionError(message)


def _rule_for(kind: str, by: Principal) -> str:
    if kind == "returned":
        return "review.irb" if by.has_any_scope(Role.IRB_REVIEWER) else "review.drb"
    return STEP_RULES[kind]


def _vote(pf: Platform, by: Principal, vote: Mapping[str, Any] | None) -> drb.Vote:
    """The caller's vote, with their standing on the committee as the roster records it."""
    if not isinstance(vote, Mapping):
        from pmhub.safezone.errors import ApplicationInvalidError

        raise ApplicationInvalidError("a vote needs a choice (approve, reject, abstain)")
    grant = next((g for g in by.grants if g.role is Role.DRB_MEMBER), None)
    return drb.Vote.model_validate(
        {
            "member": by.username,
            "choice": vote.get("choice"),
            "external": bool(grant and grant.external),
            "represents_data_subjects": bool(grant and grant.represents_data_subjects),
            "conflict_of_interest": bool(vote.get("conflict_of_interest", False)),
            "comment": str(vote.get("comment", ""))[:5000],
        }
    )


def drb_policy(pf: Platform) -> drb.DrbPolicy:
    """The committee's composition and quorum rules (PMHUB_HOME/safezone/drb.json, or the
    guideline's default: 5 members, 2 external, one for the data subjects)."""
    path = pf.home / "safezone" / "drb.json"
    if not path.exists():
        return drb.DrbPolicy()
    return drb.DrbPolicy.model_validate_json(path.read_bytes())


def _system_step(
    pf: Platform,
    application_id: int,
    kind: str,
    *,
    site: str | None = None,
    reason: str | None = None,
    details: Mapping[str, str | int] | None = None,
) -> ApplicationView:
    with pf.db.write() as session:
        row, state = _load(session, application_id)
        event, new = lifecycle.act(
            state,
            SYSTEM,
            kind,  # type: ignore[arg-type]
            at=pf.now(),
            site=site,
            reason=reason,
            details=details,
        )
        _store(pf, session, row, event, new, None)
    return ApplicationView(row.id, row.project_id, new)


# --- what follows a step ------------------------------------------------------------------


def _follow_up(pf: Platform, view: ApplicationView, event: Event) -> None:
    # A site is extracted only once every requested site has decided (the lifecycle's
    # rule): the last decision queues every approved site. Queued at each approval, a
    # fast worker started a site while others were undecided; the job failed and the
    # application waited for ever.
    deciding = event.kind in ("site_approved", "site_refused")
    if deciding and view.state.status in lifecycle.SITE_WORK:
        for site in view.state.approved_sites:
            queue_extraction(pf, view.id, site)
    if event.kind == "adequacy_signed_off" and _all_signed_off(view.state):
        deliver(pf, view.id)


def _all_signed_off(state: Application) -> bool:
    approved = state.approved_sites
    return bool(approved) and all(
        state.sites[s].phase is lifecycle.Phase.SIGNED_OFF for s in approved
    )


def queue_extraction(pf: Platform, application_id: int, site: str) -> jobs.JobView:
    return jobs.enqueue(
        pf,
        jobs.make_queue(pf.settings),
        key=f"extract/{application_id}/{site}",
        kind="extract",
        application_id=application_id,
        site=site,
        payload={"application_id": application_id, "site": site},
    )


def delivery_dir(pf: Platform, application_id: int) -> Path:
    """Where signed-off releases wait to be loaded, beside (not in) the workspace."""
    return pf.home / "safezone" / "delivered" / str(application_id)


def extraction_dir(pf: Platform, application_id: int, site: str) -> Path:
    """Where a site's pseudonymized release waits for sign-off (the site's side)."""
    return pf.home / "safezone" / "extractions" / str(application_id) / site


@jobs.job_kind("extract")
def run_extraction(pf: Platform, job: Any, progress: jobs.Progress) -> dict[str, Any]:
    """Extract and pseudonymize one site's part; rerun after a crash, it finishes the same."""
    from pmhub.privacy.keys import KeyStore
    from pmhub.safezone import extraction
    from pmhub.sites import SiteRegistry

    started = time.perf_counter()
    application_id, site_name = int(job.payload["application_id"]), str(job.payload["site"])
    view = _system_step(pf, application_id, "extraction_started", site=site_name)
    site = SiteRegistry(pf.settings).get(site_name)
    # the pseudonyms are the application's own: its key, made when the first site extracts
    store = KeyStore(pf.settings)
    owner = view.state.id
    key = store.get(owner) if store.exists(owner) else store.get(_create_key(store, owner))

    pseudonymizing: list[float] = []

    def report(step: str, done: int, total: int) -> None:
        if step.startswith("pseudonymize") and not pseudonymizing:
            pseudonymizing.append(time.perf_counter())
        progress(done / total if total else 0.0, step)

    try:
        result = extraction.extract_site(
            view.state, site, extraction_dir(pf, application_id, site_name), report, key=key
        )
    except Exception as exc:
        _system_step(
            pf, application_id, "extraction_failed", site=site_name, reason=_first_line(exc)
        )
        raise
    details = result.details()
    _system_step(pf, application_id, "extraction_finished", site=site_name, details=details)
    _system_step(pf, application_id, "pseudonymized", site=site_name, details=details)
    # how long each part took, for operators (and bench/safezone.py); only on the job's
    # record, not in the events, which say what happened rather than how fast
    finished = time.perf_counter()
    split = pseudonymizing[0] if pseudonymizing else finished
    return {
        "site": site_name,
        **details,
        "seconds": round(finished - started, 3),
        "extract_seconds": round(split - started, 3),
        "pseudonymize_seconds": round(finished - split, 3),
    }


def _create_key(store: Any, project: str) -> str:
    store.create(project)
    return project


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:500]


def adequacy_report(pf: Platform, by: Principal, application_id: int, site: str) -> Path:
    """The adequacy report of a site's release, for the pseudonymization officer."""
    view = get_application(pf, by, application_id)
    audit.authorize(
        pf,
        "adequacy.signoff",
        by,
        Context(project_id=view.project_id, site=site, application_state=view.state.status.value),
        target=_target(application_id),
    )
    from pmhub.safezone.extraction import DATA

    report = extraction_dir(pf, application_id, site) / DATA / "report.html"
    if not report.exists():
        raise NotFoundError(f"site {site!r} of application {application_id} has no report yet")
    return report


def deliver(pf: Platform, application_id: int) -> ApplicationView:
    """Every signed-off release into the project's workspace; the members may then work.

    Each delivered table holds every site's rows with a ``site`` column: pseudonyms come
    from one project key, but persons at two sites are not linked, so a study tells them
    apart by site.
    """
    from pmhub.safezone import extraction

    with pf.db.read() as session:
        row, state = _load(session, application_id)
    space = _open_or_create(row.project_id, pf)
    parts: dict[str, list[pa.Table]] = {}
    for site in state.approved_sites:
        target = extraction.deliver_site(
            state, site, extraction_dir(pf, application_id, site), delivery_dir(pf, application_id)
        )
        for path in sorted(target.glob("*.parquet")):
            table = pq.read_table(path)
            column = pa.array([site] * table.num_rows, pa.string())
            parts.setdefault(path.stem, []).append(table.append_column("site", column))
    space.load_tables(
        {
            name: pa.concat_tables(tables, promote_options="permissive")
            for name, tables in parts.items()
        },
        replace=True,
    )
    view = _system_step(pf, application_id, "delivered")
    _open_workspace_row(pf, row.project_id, space.root, view.state)
    _grant_team(pf, view)
    return _system_step(pf, application_id, "activated")


def _open_or_create(project: str, pf: Platform) -> Any:
    from pmhub.platform.errors import NotFoundError as Missing
    from pmhub.safezone import workspace as ws

    try:
        return ws.open_workspace(project, pf.settings)
    except Missing:
        return ws.create_workspace(project, pf.settings)


def _open_workspace_row(pf: Platform, project: str, root: Path, state: Application) -> None:
    period = state.body.period
    with pf.db.write() as session:
        found = session.scalars(
            select(WorkspaceRow).where(WorkspaceRow.project_id == project)
        ).first()
        if found is not None:
            return
        session.add(
            WorkspaceRow(
                project_id=project,
                state="open",
                path=str(root),
                opens_at=period.starts_at,
                closes_at=period.ends_at,
                destroy_after=period.ends_at + GRACE,
                created_at=pf.now(),
            )
        )
        audit.append(
            pf,
            session,
            actor=f"system:{SYSTEM_ID}",
            action="workspace.open",
            target=f"project:{project}",
            details={"project_id": project},
        )


def _grant_team(pf: Platform, view: ApplicationView) -> None:
    """The applicant and the members become the project's members (workspace access)."""
    with pf.db.write() as session:
        for username in sorted(view.state.team):
            user = session.scalars(select(User).where(User.username == username)).first()
            if user is None:
                continue  # a member without an account gets access once one is made
            held = session.scalars(
                select(RoleAssignment).where(
                    RoleAssignment.user_id == user.id,
                    RoleAssignment.role == Role.PROJECT_MEMBER.value,
                    RoleAssignment.scope == view.project_id,
                    RoleAssignment.revoked_at.is_(None),
                )
            ).first()
            if held is not None:
                continue
            session.add(
                RoleAssignment(
                    user_id=user.id,
                    role=Role.PROJECT_MEMBER.value,
                    scope_kind="project",
                    scope=view.project_id,
                    external=False,
                    represents_data_subjects=False,
                    granted_by=f"system:{SYSTEM_ID}",
                    granted_at=pf.now(),
                )
            )
            audit.append(
                pf,
                session,
                actor=f"system:{SYSTEM_ID}",
                action="user.grant",
                target=f"user:{username}",
                details={"role": Role.PROJECT_MEMBER.value, "project_id": view.project_id},
            )


# --- the IRB document ---------------------------------------------------------------------


def store_irb_document(
    pf: Platform, by: Principal, data: bytes, filename: str
) -> upload.IrbDocument:
    """Check an IRB approval upload by its content and keep its bytes by hash."""
    document = upload.check_irb_document(data, filename)
    folder = pf.home / "safezone" / "irb"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{document.sha256}{upload.EXTENSIONS[document.media_type]}"
    if not path.exists():
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    audit.record(
        pf,
        actor=by.actor,
        action="irb.upload",
        target=f"irb:{document.sha256[:16]}",
        details={"sha256": document.sha256, "count": document.size},
    )
    assert hashlib.sha256(data).hexdigest() == document.sha256
    return document


def job(pf: Platform, by: Principal, job_id: int) -> jobs.JobView:
    """A job's progress, for the steward of its site, the project's members and admins."""
    found = jobs.get(pf, job_id)
    if found is None:
        raise NotFoundError(f"no job {job_id}")
    project = None
    if found.application_id is not None:
        with pf.db.read() as session:
            row = session.get(ApplicationRow, found.application_id)
            project = row.project_id if row is not None else None
    audit.authorize(
        pf, "job.read", by, Context(project_id=project, site=found.site), target=f"job:{job_id}"
    )
    return found
