"""The audit trail for auditors: pages of entries, verification, signed checkpoints."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request

from pmhub.api.guard import guard, platform_of, principal
from pmhub.api.routing import Routes
from pmhub.api.shapes import out

routes = Routes(guard, prefix="/v1/audit", tags=["audit"])


@routes.get("/entries", rule="audit.read", summary="A page of the hash-chained trail")
def entries(
    request: Request,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    from pmhub.platform import audit

    found = audit.entries(platform_of(request), principal(request), after=after, limit=limit)
    return [e.as_json() for e in found]


@routes.post("/verify", rule="audit.read", summary="Check the chain, checkpoints and head")
def verify(request: Request) -> Any:
    from pmhub.platform import audit

    result = audit.verify(platform_of(request), principal(request))
    return {**out(result), "ok": result.ok}


@routes.post("/checkpoints", rule="audit.checkpoint", status_code=201, summary="Sign the head")
def checkpoint(request: Request) -> Any:
    from pmhub.platform import audit

    return out(audit.checkpoint(platform_of(request), principal(request)))
