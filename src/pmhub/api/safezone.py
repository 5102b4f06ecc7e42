"""Applications, reviews, site approvals, extraction jobs, workspaces and outputs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import File, Form, Request, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import Field

from pmhub.api.guard import guard, platform_of, principal
from pmhub.api.routing import SIGNED_IN, Routes
from pmhub.api.shapes import Reason, RowId, Strict, out

routes = Routes(guard, prefix="/v1", tags=["safe zone"])
Kind = Literal[
    "edited",
    "submitted",
    "resubmitted",
    "returned",
    "irb_approved",
    "irb_rejected",
    "drb_vote_cast",
    "drb_decided",
    "site_approved",
    "site_refused",
    "adequacy_signed_off",
    "closed",
    "revoked",
]


class NewApplication(Strict):
    project_id: Annotated[str, Field(min_length=1, max_length=40)]
    body: dict[str, Any]


class Step(Strict):
    kind: Kind
    reason: Reason | None = None
    site: Annotated[str, Field(max_length=40)] | None = None
    body: dict[str, Any] | None = None
    vote: dict[str, Any] | None = None


class Query(Strict):
    sql: Annotated[str, Field(min_length=1, max_length=100_000)]
    save_as: Annotated[str, Field(max_length=84)] | None = None


class NewOutput(Strict):
    file: Annotated[str, Field(min_length=1, max_length=84)]
    spec: dict[str, Any]
    description: Annotated[str, Field(min_length=1, max_length=5000)]
    kind: Literal["table", "figure", "model"] = "table"


class Review(Strict):
    decision: Literal["approve", "return", "reject"]
    reason: Reason


@routes.post("/irb-documents", rule="application.create", status_code=201, summary="IRB upload")
async def upload_irb(
    request: Request, file: Annotated[UploadFile, File()], filename: Annotated[str, Form()] = ""
) -> Any:
    from pmhub.safezone import service, upload

    data = upload.read_capped(file.file)
    name = filename or file.filename or "irb.pdf"
    return out(service.store_irb_document(platform_of(request), principal(request), data, name))


@routes.post("/applications", rule="application.create", status_code=201, summary="A draft")
def draft(request: Request, body: NewApplication) -> Any:
    from pmhub.safezone import service

    made = service.draft_application(
        platform_of(request), principal(request), body.project_id, body.body
    )
    return made.as_dict()


@routes.get("/applications", rule=SIGNED_IN, summary="The applications the caller may see")
def list_applications(request: Request) -> Any:
    from pmhub.safezone import service

    return [
        a.as_dict() for a in service.list_applications(platform_of(request), principal(request))
    ]


@routes.get("/applications/{application_id}", rule="application.read", summary="One application")
def get_application(request: Request, application_id: RowId) -> Any:
    from pmhub.safezone import service

    return service.get_application(
        platform_of(request), principal(request), application_id
    ).as_dict()


@routes.post(
    "/applications/{application_id}/steps",
    rule="application.read",
    summary="Take a step: submit, return, review, vote, approve a site, sign off, close",
)
def take_step(request: Request, application_id: RowId, step: Step) -> Any:
    from pmhub.safezone import service

    return service.take_step(
        platform_of(request),
        principal(request),
        application_id,
        step.kind,
        reason=step.reason,
        site=step.site,
        body=step.body,
        vote=step.vote,
    ).as_dict()


@routes.get(
    "/applications/{application_id}/sites/{site}/adequacy-report",
    rule="adequacy.signoff",
    summary="A site's pseudonymization adequacy report (HTML)",
)
def adequacy_report(request: Request, application_id: RowId, site: str) -> FileResponse:
    from pmhub.safezone import service

    path = service.adequacy_report(platform_of(request), principal(request), application_id, site)
    return FileResponse(path, media_type="text/html")


@routes.get("/jobs/{job_id}", rule="job.read", summary="A long job's state and progress")
def get_job(request: Request, job_id: RowId) -> Any:
    from pmhub.safezone import service

    return out(service.job(platform_of(request), principal(request), job_id))


@routes.get("/workspaces/{project_id}/tables", rule="workspace.files", summary="Tables")
def workspace_tables(request: Request, project_id: str) -> Any:
    from pmhub.safezone import outputs

    return outputs.tables(platform_of(request), principal(request), project_id)


@routes.get("/workspaces/{project_id}/files", rule="workspace.files", summary="Saved results")
def workspace_files(request: Request, project_id: str) -> Any:
    from pmhub.safezone import outputs

    return outputs.files(platform_of(request), principal(request), project_id)


@routes.post("/workspaces/{project_id}/query", rule="workspace.query", summary="Read-only SQL")
def workspace_query(request: Request, project_id: str, body: Query) -> Any:
    from pmhub.safezone import outputs

    return outputs.query(
        platform_of(request), principal(request), project_id, body.sql, save_as=body.save_as
    )


@routes.post(
    "/workspaces/{project_id}/outputs", rule="output.request", status_code=201, summary="Release?"
)
def request_output(request: Request, project_id: str, body: NewOutput) -> Any:
    from pmhub.safezone import outputs

    made = outputs.request_output(
        platform_of(request),
        principal(request),
        project_id,
        body.file,
        body.spec,
        body.description,
        kind=body.kind,
    )
    return made.as_dict()


@routes.get("/outputs", rule=SIGNED_IN, summary="Output requests the caller may see")
def list_outputs(request: Request, project_id: str | None = None) -> Any:
    from pmhub.safezone import outputs

    found = outputs.list_outputs(platform_of(request), principal(request), project_id=project_id)
    return [o.as_dict() for o in found]


@routes.get("/outputs/{output_id}", rule="output.request", summary="One output request")
def get_output(request: Request, output_id: RowId) -> Any:
    from pmhub.safezone import outputs

    return outputs.get_output(platform_of(request), principal(request), output_id).as_dict()


@routes.post("/outputs/{output_id}/reviews", rule="output.check", summary="A checker decides")
def review_output(request: Request, output_id: RowId, body: Review) -> Any:
    from pmhub.safezone import outputs

    return outputs.review_output(
        platform_of(request), principal(request), output_id, body.decision, body.reason
    ).as_dict()


@routes.get("/outputs/{output_id}/file", rule="output.download", summary="A released output")
def download_output(request: Request, output_id: RowId) -> Response:
    from pmhub.safezone import outputs

    name, data = outputs.download_output(platform_of(request), principal(request), output_id)
    media = "text/csv" if name.endswith(".csv") else "application/octet-stream"
    return Response(
        data, media_type=media, headers={"content-disposition": f'attachment; filename="{name}"'}
    )
