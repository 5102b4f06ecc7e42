"""The pmhub HTTP service: one FastAPI app over the layers' service functions.

Routes live in one module per group (``pmhub.api.<group>``) and call the same functions the
CLI verbs call. The platform state is opened (and migrated) once per app; every request
gets it from ``request.app.state.platform``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from pmhub import __version__
from pmhub.api import limits, problems

if TYPE_CHECKING:
    from pmhub.platform.core import Platform

DESCRIPTION = """\
The data safe zone of a regional hospital network (데이터안심존): data-use applications,
IRB and DRB review, site approval, extraction and pseudonymization at each hospital,
closed project workspaces, output checking and a tamper-evident audit trail.

Every operation names its authorization rule (`x-pmhub-rule`); errors are
`application/problem+json` with the CLI's exit code in `code` and a `hint`.
Authenticate with `Authorization: Bearer <token>` (`POST /v1/session` or
`pmhub users token-create`).
"""


def create_app(platform: Platform | None = None) -> FastAPI:
    """The service; opens the platform state of PMHUB_HOME unless one is given (tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = platform is None
        if owned:
            from pmhub.platform.core import open_platform

            app.state.platform = open_platform()
        try:
            yield
        finally:
            if owned:
                app.state.platform.close()

    app = FastAPI(
        title="pmhub",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    if platform is not None:
        app.state.platform = platform
    problems.install(app)
    app.add_middleware(limits.BodyLimit)
    from pmhub.api import audit, people, safezone, system

    for module in (system, people, safezone, audit):
        app.include_router(module.routes.router)
    return app
