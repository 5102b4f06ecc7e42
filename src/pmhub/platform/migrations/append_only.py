"""Triggers that refuse UPDATE and DELETE (and PostgreSQL's TRUNCATE) on history tables.

They stop mistakes and ordinary users, not an attacker who owns the database (who can
drop them); against that attacker the audit trail's hash chain and signed checkpoints
are the defence, and its tamper tests drop these triggers first.
"""

from __future__ import annotations

from sqlalchemy import Connection

PG_FUNCTION = "pmhub_append_only"


def forbid_changes(connection: Connection, tables: tuple[str, ...]) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            f"CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION '%% is append-only', TG_TABLE_NAME; END $$"
        )
        for table in tables:
            connection.exec_driver_sql(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}"
                f" FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()"
            )
            connection.exec_driver_sql(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}"
                f" FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()"
            )
        return
    for table in tables:
        for verb in ("UPDATE", "DELETE"):
            connection.exec_driver_sql(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table}"
                f" BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def allow_changes(connection: Connection, tables: tuple[str, ...]) -> None:
    """Drop the triggers again (downgrades, and the tamper tests' attacker)."""
    postgres = connection.dialect.name == "postgresql"
    for table in tables:
        if postgres:
            for name in (f"{table}_append_only", f"{table}_no_truncate"):
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        else:
            for verb in ("update", "delete"):
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
