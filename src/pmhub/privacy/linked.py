"""Persons linked across the tables of an extract: suppressing a record removes its person.

In an OMOP extract the person table carries the quasi-identifiers and the other tables
carry the person's events under the same (pseudonymized) ``person_id``. A record the
models suppress must not leave its person behind in the other tables: the events and the
pseudonym would still single the person out. So every person with a suppressed record in
any table is removed from every table of the extract, its own included (a masked row
would still carry the pseudonym).

Removing a person's other rows from a table that has models of its own can shrink its
classes, so such a table is checked again at the levels it was given (the search is not
repeated): classes that now break a model are suppressed too, their persons join the
removed ones, and this repeats until no table suppresses anyone new. The set only grows,
so it ends.
"""

from __future__ import annotations

import itertools

import duckdb

from pmhub.privacy import engine
from pmhub.privacy.errors import PolicyError
from pmhub.privacy.policy import Policy
from pmhub.privacy.sources import Source, quote

TABLE = "__pmhub_suppressed_persons"


def person_text(source: Source, policy: Policy) -> str | None:
    column = policy.person_column
    return source.text(column) if column in source.columns else None


def suppressed_persons(
    con: duckdb.DuckDBPyConnection, plan: engine.TablePlan, policy: Policy
) -> set[str]:
    """The persons of the records a table's recoding suppresses (one narrow pass)."""
    person = person_text(plan.source, policy)
    recoding = plan.recoding
    if person is None or recoding is None or recoding.utility.suppressed_records == 0:
        return set()
    texts = "".join(f", {plan.source.text(q)} AS {quote('__qi__' + q)}" for q in plan.hierarchies)
    found: set[str] = set()
    for frame in engine.batches(
        con, f"SELECT {person} AS __person{texts} FROM {plan.source.sql}", {}
    ):
        recoded = engine.apply_recoding(frame, plan)
        hidden = recoded["__suppressed__"].to_numpy(dtype=bool)
        found.update(recoded.loc[hidden, "__person"].tolist())
    return found


def cascade(
    con: duckdb.DuckDBPyConnection, plans: dict[str, engine.TablePlan], policy: Policy
) -> int:
    """Remove every suppressed person from every linked table; the number of persons."""
    linked = [p for p in plans.values() if person_text(p.source, policy) is not None]
    if len(linked) < 2:
        return 0
    removed: set[str] = set()
    table = ""
    for round_ in itertools.count():
        found = set().union(*(suppressed_persons(con, p, policy) for p in linked))
        if found <= removed:
            break
        removed |= found
        # One table per round: a plan made again stays filtered by the set it was made for.
        table = f"{TABLE}_{round_}"
        con.execute(f"CREATE TEMP TABLE {table} (person VARCHAR PRIMARY KEY)")
        con.executemany(f"INSERT INTO {table} VALUES (?)", [[p] for p in sorted(removed)])
        for plan in linked:
            if plan.recoding is not None and _loses_unsuppressed_rows(con, plan, policy, table):
                _plan_again(con, plan, policy, table)
    if removed:
        for plan in linked:
            _filter(con, plan, policy, table)
    return len(removed)


def _outside(source: Source, policy: Policy, table: str) -> str:
    person = person_text(source, policy)
    return f"WHERE {person} NOT IN (SELECT person FROM {table})"


def _rows(con: duckdb.DuckDBPyConnection, source: Source, where: str) -> int:
    found = con.execute(f"SELECT count(*) FROM {source.sql} {where}").fetchall()
    return int(found[0][0])


def _own_suppressed(plan: engine.TablePlan) -> int:
    return plan.recoding.utility.suppressed_records if plan.recoding is not None else 0


def _loses_unsuppressed_rows(
    con: duckdb.DuckDBPyConnection, plan: engine.TablePlan, policy: Policy, table: str
) -> bool:
    person = person_text(plan.source, policy)
    inside = f"WHERE {person} IN (SELECT person FROM {table})"
    return _rows(con, plan.source, inside) > _own_suppressed(plan)


def _plan_again(
    con: duckdb.DuckDBPyConnection, plan: engine.TablePlan, policy: Policy, table: str
) -> None:
    """Check a table with models again without the removed persons, at its levels."""
    assert plan.recoding is not None
    levels = plan.recoding.levels
    if levels is None:
        raise PolicyError(
            f"table {plan.name!r} is recoded locally (Mondrian) and shares persons with"
            " another table that suppresses records",
            hint="Use `search: {method: optimal}` for tables linked by person.",
        )
    plan.original = plan.original or plan.source
    original = plan.original
    outside = _outside(original, policy, table)
    sql = f"(SELECT * FROM {original.sql} {outside})"
    rows = _rows(con, original, outside)
    plan.source = Source(plan.name, sql, original.columns, rows, original.kind, original.types)
    engine.search_plan(con, plan, levels)


def _filter(
    con: duckdb.DuckDBPyConnection, plan: engine.TablePlan, policy: Policy, table: str
) -> None:
    """Stream the table without the removed persons and count what that removes."""
    plan.where = _outside(plan.source, policy, table)
    kept = _rows(con, plan.source, plan.where)
    already = plan.rows_in - plan.source.rows  # removed when the plan was made again
    plan.cascaded = already + plan.source.rows - kept - _own_suppressed(plan)
    plan.rare = engine.rare_values(con, _filtered(plan), plan.rules)


def _filtered(plan: engine.TablePlan) -> Source:
    source = plan.source
    sql = f"(SELECT * FROM {source.sql} {plan.where})"
    return Source(source.name, sql, source.columns, source.rows, source.kind, source.types)
