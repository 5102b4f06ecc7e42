"""Liveness and version: what a load balancer and an operator ask first."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from pmhub import __version__
from pmhub.api.guard import guard, platform_of
from pmhub.api.routing import PUBLIC, Routes

routes = Routes(guard, tags=["system"])


@routes.get("/healthz", rule=PUBLIC, summary="Whether the service and its state answer")
def healthz(request: Request) -> dict[str, Any]:
    from sqlalchemy import text

    with platform_of(request).db.read() as session:
        session.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__}
