"""`pmhub serve`: the HTTP service (API and, later, the portal) on one port."""

from __future__ import annotations

from typing import Annotated

import typer

from pmhub.cli import common


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8765,
) -> None:
    """Serve the safe-zone API; the platform state is created or upgraded first."""
    import uvicorn

    from pmhub.api.app import create_app
    from pmhub.platform.core import open_platform

    platform = open_platform(common.settings())
    common.err_console.print(
        f"pmhub service on http://{host}:{port} (API docs at /docs); state {platform.db.engine.url}"
    )
    try:
        uvicorn.run(create_app(platform), host=host, port=port, log_level="warning")
    finally:
        platform.close()
