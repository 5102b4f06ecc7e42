"""Alembic's entry point, for programmatic use: :func:`pmhub.platform.db.migrate` hands
over an open connection in ``config.attributes["connection"]`` (no alembic.ini)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from pmhub.platform.models import Base


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite rebuilds a table for ALTERs it lacks
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


# Alembic executes this file itself (as module "env_py"); imported as a module of the
# package (a test imports every module) it only defines run().
if not __name__.startswith("pmhub."):
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through pmhub.platform.db.migrate(url)")
    run(connection)
