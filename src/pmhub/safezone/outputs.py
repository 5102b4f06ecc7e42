"""Working in a project's workspace, and getting results out of it.

Members query the workspace and save results as files; a result leaves only as an
output request that the statistical disclosure checks have seen and two independent
output checkers have approved, each with a reason. Only a released output can be
downloaded; every query, request, review and download is on the audit record (the SQL
by its hash and size, never its text: literals in it can be values from the data).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pmhub.errors import PmhubError
from pmhub.platform import audit
from pmhub.platform.core import Platform
from pmhub.platform.errors import ConflictError, NotFoundError, PlatformInputError
from pmhub.platform.models import OutputRequest, OutputReview
from pmhub.platform.models import Workspace as WorkspaceRow
from pmhub.platform.policy import Context
from pmhub.platform.roles import Principal


class WorkspaceClosedError(PmhubError):
    """A workspace used outside its period of use, or after it was locked."""

    exit_code = 123
    hint = "A workspace is usable only during the approved period of use."
    http_status = 403


APPROVALS_NEEDED = 2
DECISIONS = ("approve", "return", "reject")
PENDING, RELEASED, RETURNED, REJECTED = "pending", "released", "returned", "rejected"
OPEN, LOCKED, DESTROYED = "open", "locked", "destroyed"


@dataclass(frozen=True)
class OutputView:
    id: int
    project_id: str
    file: str
    kind: str
    sha256: str
    state: str
    description: str
    report: dict[str, Any]
    reviews: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project_id": self.project_id,
            "file": self.file,
            "kind": self.kind,
            "sha256": self.sha256,
            "state": self.state,
            "description": self.description,
            "verdict": self.report.get("verdict"),
            "report": self.report,
            "reviews": self.reviews,
        }


# --- the workspace ------------------------------------------------------------------------


def _workspace(pf: Platform, by: Principal, project_id: str, rule: str) -> tuple[int, Any]:
    """The project's open workspace, if the caller may use it now."""
    from pmhub.safezone import workspace as ws

    audit.authorize(pf, rule, by, Context(project_id=project_id), target=f"workspace:{project_id}")
    now = pf.now()
    with pf.db.read() as session:
        row = session.scalars(
            select(WorkspaceRow).where(WorkspaceRow.project_id == project_id)
        ).first()
        if row is None:
            raise NotFoundError(
                f"project {project_id!r} has no workspace",
                hint="A workspace opens when the project's data has been delivered.",
            )
        state, opens, closes, row_id = row.state, row.opens_at, row.closes_at, row.id
    if state != OPEN or now < opens or now >= closes:
        audit.record(
            pf,
            actor=by.actor,
            action=rule,
            target=f"workspace:{project_id}",
            outcome="denied",
            details={"reason": "outside the period of use" if state == OPEN else state},
        )
        raise WorkspaceClosedError(
            f"the workspace of project {project_id!r} is {state if state != OPEN else 'closed'}"
            f" (period of use {opens:%Y-%m-%d} to {closes - dt.timedelta(seconds=1):%Y-%m-%d})",
            hint="A workspace is usable only during the approved period of use.",
        )
    return row_id, ws.open_workspace(project_id, pf.settings)


def tables(pf: Platform, by: Principal, project_id: str) -> list[dict[str, Any]]:
    _, space = _workspace(pf, by, project_id, "workspace.files")
    return [t.to_dict() for t in space.tables()]


def files(pf: Platform, by: Principal, project_id: str) -> list[dict[str, Any]]:
    _, space = _workspace(pf, by, project_id, "workspace.files")
    return [f.to_dict() for f in space.files()]


def query(
    pf: Platform,
    by: Principal,
    project_id: str,
    sql: str,
    *,
    save_as: str | None = None,
) -> dict[str, Any]:
    """Run one read-only SELECT in the workspace; a preview back, the whole result saved
    as a workspace file when ``save_as`` names one."""
    _, space = _workspace(pf, by, project_id, "workspace.query")
    digest = hashlib.sha256(sql.encode("utf-8", "surrogatepass")).hexdigest()
    details: dict[str, object] = {"sql_sha256": digest}
    try:
        result = space.query(sql, save_as=save_as)
    except Exception as exc:
        audit.record(
            pf,
            actor=by.actor,
            action="workspace.query",
            target=f"workspace:{project_id}",
            outcome="denied",
            details={**details, "kind": type(exc).__name__},
        )
        raise
    if save_as:
        details["file"] = save_as
    audit.record(
        pf,
        actor=by.actor,
        action="workspace.query",
        target=f"workspace:{project_id}",
        details=details,
    )
    reply: dict[str, Any] = result.to_dict()
    return reply


# --- output requests ----------------------------------------------------------------------


def _releases(pf: Platform, project_id: str) -> Path:
    return pf.home / "safezone" / "releases" / project_id


def request_output(
    pf: Platform,
    by: Principal,
    project_id: str,
    file: str,
    spec: dict[str, Any],
    description: str,
    *,
    kind: str = "table",
) -> OutputView:
    """Ask for a workspace file to be released; the disclosure checks run at once."""
    from pmhub.safezone import sdc

    if not isinstance(description, str) or not description.strip() or len(description) > 5000:
        raise PlatformInputError("an output request says what the output is (1-5000 characters)")
    workspace_id, space = _workspace(pf, by, project_id, "output.request")
    info = space.file_info(file)
    table = space.read_file(file)
    report = sdc.check_table(
        file,
        table,
        sdc.TableSpec.from_dict(spec),
        earlier=_released_tables(pf, project_id),
        appetite=sdc.RiskAppetite.from_settings(pf.settings),
        kind=kind,  # type: ignore[arg-type]  # sdc refuses other kinds
    )
    with pf.db.write() as session:
        row = OutputRequest(
            project_id=project_id,
            workspace_id=workspace_id,
            requested_by=_user(by),
            file=file,
            kind=kind,
            sha256=info.sha256,
            description=description.strip(),
            state=PENDING,
            flags=report.to_dict(),
            created_at=pf.now(),
            decided_at=None,
        )
        session.add(row)
        session.flush()
        audit.append(
            pf,
            session,
            actor=by.actor,
            action="output.request",
            target=f"output:{row.id}",
            details={
                "project_id": project_id,
                "file": file,
                "decision": report.verdict,
                "count": len(report.flags),
            },
        )
        return _view(session, row)


def _user(by: Principal) -> int:
    if by.user_id is None:
        raise ConflictError("outputs are requested by a project member, not the operator")
    return by.user_id


def _released_tables(pf: Platform, project_id: str) -> list[Any]:
    from pmhub.safezone import sdc

    with pf.db.read() as session:
        rows = list(
            session.scalars(
                select(OutputRequest).where(
                    OutputRequest.project_id == project_id, OutputRequest.state == RELEASED
                )
            )
        )
    earlier = []
    for row in rows:
        path = _releases(pf, project_id) / f"{row.id}-{row.file}"
        if path.exists() and row.kind == "table":
            spec = sdc.TableSpec.from_dict(row.flags["spec"])
            earlier.append(sdc.ReleasedTable(row.file, sdc.read_output_table(path), spec))
    return earlier


def _view(session: Any, row: OutputRequest) -> OutputView:
    reviews = session.scalars(
        select(OutputReview)
        .where(OutputReview.output_request_id == row.id)
        .order_by(OutputReview.id)
    )
    return OutputView(
        row.id,
        row.project_id,
        row.file,
        row.kind,
        row.sha256,
        row.state,
        row.description,
        dict(row.flags),
        [
            {
                "reviewer_id": r.reviewer_id,
                "decision": r.decision,
                "reason": r.reason,
                "at": r.at.isoformat(),
            }
            for r in reviews
        ],
    )


def _load_output(session: Any, output_id: int) -> OutputRequest:
    row: OutputRequest | None = session.get(OutputRequest, output_id)
    if row is None:
        raise NotFoundError(f"no output request {output_id}")
    return row


def get_output(pf: Platform, by: Principal, output_id: int) -> OutputView:
    with pf.db.read() as session:
        row = _load_output(session, output_id)
        project, owner = row.project_id, row.requested_by
    if not (_may(by, "output.request", project) or _may(by, "output.check", project, owner)):
        audit.authorize(
            pf, "output.request", by, Context(project_id=project), target=f"output:{output_id}"
        )
    with pf.db.read() as session:
        return _view(session, _load_output(session, output_id))


def _may(by: Principal, rule: str, project: str, owner: int | None = None) -> bool:
    from pmhub.platform import policy

    return policy.allows(rule, by, Context(project_id=project, owner_id=owner))


def list_outputs(pf: Platform, by: Principal, *, project_id: str | None = None) -> list[OutputView]:
    """The output requests the caller may see: their projects', or a checker's queue."""
    with pf.db.read() as session:
        query = select(OutputRequest).order_by(OutputRequest.id)
        if project_id is not None:
            query = query.where(OutputRequest.project_id == project_id)
        rows = list(session.scalars(query))
        return [
            _view(session, r)
            for r in rows
            if _may(by, "output.request", r.project_id)
            or _may(by, "output.check", r.project_id, r.requested_by)
        ]


def review_output(
    pf: Platform, by: Principal, output_id: int, decision: str, reason: str
) -> OutputView:
    """One output checker's decision, with a reason. Two approvals release the output;
    a return sends it back to the members to fix and ask again; a rejection ends it."""
    if decision not in DECISIONS:
        raise PlatformInputError(f"a decision is one of {', '.join(DECISIONS)}, not {decision!r}")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 5000:
        raise PlatformInputError("every output decision gives a reason (1-5000 characters)")
    with pf.db.read() as session:
        row = _load_output(session, output_id)
        project, owner, state = row.project_id, row.requested_by, row.state
    audit.authorize(
        pf,
        "output.check",
        by,
        Context(project_id=project, owner_id=owner),
        target=f"output:{output_id}",
    )
    if state != PENDING:
        raise ConflictError(f"output {output_id} is {state}: only a pending output is reviewed")
    with pf.db.write() as session:
        row = _load_output(session, output_id)
        earlier = session.scalars(
            select(OutputReview).where(
                OutputReview.output_request_id == output_id, OutputReview.reviewer_id == _user(by)
            )
        ).first()
        if earlier is not None:
            raise ConflictError(
                f"you reviewed output {output_id} already",
                hint="A second, independent output checker gives the other decision.",
            )
        session.add(
            OutputReview(
                output_request_id=output_id,
                reviewer_id=_user(by),
                decision=decision,
                reason=reason.strip(),
                at=pf.now(),
            )
        )
        session.flush()
        approvals = session.scalars(
            select(OutputReview).where(
                OutputReview.output_request_id == output_id, OutputReview.decision == "approve"
            )
        ).all()
        if decision == "reject":
            row.state, row.decided_at = REJECTED, pf.now()
        elif decision == "return":
            row.state, row.decided_at = RETURNED, pf.now()
        elif len(approvals) >= APPROVALS_NEEDED:
            _copy_release(pf, row)
            row.state, row.decided_at = RELEASED, pf.now()
        audit.append(
            pf,
            session,
            actor=by.actor,
            action=f"output.{decision}",
            target=f"output:{output_id}",
            details={"project_id": project, "state": row.state},
        )
        return _view(session, row)


def _copy_release(pf: Platform, row: OutputRequest) -> None:
    """The released bytes, fixed: the file checked is the file that leaves."""
    from pmhub.safezone import workspace as ws

    space = ws.open_workspace(row.project_id, pf.settings)
    source = space.file_path(row.file)
    data = source.read_bytes()
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise ConflictError(
            f"{row.file} changed after its output request; ask for it to be released again"
        )
    folder = _releases(pf, row.project_id)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{row.id}-{row.file}"
    tmp = final.with_suffix(final.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(final)


def download_output(pf: Platform, by: Principal, output_id: int) -> tuple[str, bytes]:
    """A released output's file name and bytes; nothing else ever leaves a workspace."""
    with pf.db.read() as session:
        row = _load_output(session, output_id)
        project, state, name = row.project_id, row.state, row.file
    audit.authorize(
        pf, "output.download", by, Context(project_id=project), target=f"output:{output_id}"
    )
    if state != RELEASED:
        audit.record(
            pf,
            actor=by.actor,
            action="output.download",
            target=f"output:{output_id}",
            outcome="denied",
            details={"state": state},
        )
        raise ConflictError(
            f"output {output_id} is {state}: only a released output can be downloaded",
            hint="Two output checkers must approve it first.",
        )
    data = (_releases(pf, project) / f"{output_id}-{name}").read_bytes()
    audit.record(
        pf,
        actor=by.actor,
        action="output.download",
        target=f"output:{output_id}",
        details={"project_id": project, "file": name},
    )
    return name, data


# --- the end of the period ----------------------------------------------------------------


def sweep(pf: Platform) -> dict[str, list[str]]:
    """Lock workspaces whose period has ended; destroy those past their grace period."""
    from pmhub.safezone import workspace as ws

    now = pf.now()
    locked: list[str] = []
    destroyed: list[str] = []
    with pf.db.write() as session:
        for row in session.scalars(select(WorkspaceRow).where(WorkspaceRow.state != DESTROYED)):
            if row.state == OPEN and now >= row.closes_at:
                row.state, row.locked_at = LOCKED, now
                locked.append(row.project_id)
                audit.append(
                    pf,
                    session,
                    actor="system:pmhub-system",
                    action="workspace.lock",
                    target=f"workspace:{row.project_id}",
                    details={"project_id": row.project_id},
                )
            if row.state == LOCKED and now >= row.destroy_after:
                with contextlib.suppress(NotFoundError):  # gone from disk: record it all the same
                    ws.open_workspace(row.project_id, pf.settings).destroy()
                shutil.rmtree(Path(row.path), ignore_errors=True)
                row.state, row.destroyed_at = DESTROYED, now
                destroyed.append(row.project_id)
                audit.append(
                    pf,
                    session,
                    actor="system:pmhub-system",
                    action="workspace.destroy",
                    target=f"workspace:{row.project_id}",
                    details={"project_id": row.project_id},
                )
    return {"locked": locked, "destroyed": destroyed}
