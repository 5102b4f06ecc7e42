"""Hostile input to a workspace query: each attack gets its typed error, and nothing changes.

Two projects' workspaces exist in every test; after each attack every file under the
workspaces folder (both projects, their saved files, the staging area) is as it was.
"""

# ruff: noqa: F811  # the fixtures imported below are taken again as parameters

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pmhub.safezone.errors import (
    QueryError,
    QueryLimitError,
    QueryTimeoutError,
    SqlRefusedError,
    WorkspaceError,
)
from pmhub.safezone.sandbox import QueryLimits, SandboxPool
from pmhub.safezone.workspace import Workspace, create_workspace
from tests.safezone.test_workspace_fixtures import (
    persons,
    pool,  # noqa: F401
    snapshot,
    staged,
    workspace,  # noqa: F401
)


@pytest.fixture
def other(pmhub_home: Path, pool: SandboxPool) -> Workspace:
    """Another project's workspace, with a saved file, that p1's queries must not reach."""
    ws = create_workspace("p2")
    ws.load_tables({"secret": persons(50)})
    ws.query("SELECT * FROM secret", save_as="secret.parquet", pool=pool)
    return ws


@pytest.fixture
def unchanged(workspace: Workspace, other: Workspace) -> Iterator[None]:
    root = workspace.root.parent
    before = snapshot(root)
    yield
    assert snapshot(root) == before
    assert staged(root) == []


def refused(ws: Workspace, pool: SandboxPool, sql: str | bytes, rule: str) -> SqlRefusedError:
    with pytest.raises(SqlRefusedError) as caught:
        ws.query(sql, pool=pool)
    assert caught.value.rule == rule, caught.value.message
    return caught.value


pytestmark = pytest.mark.usefixtures("unchanged")


def test_attach_another_database(workspace: Workspace, pool: SandboxPool, other: Workspace) -> None:
    refused(workspace, pool, f"ATTACH '{other.db_path}' AS p2", "statement:attach")


def test_detach_the_workspace(workspace: Workspace, pool: SandboxPool) -> None:
    refused(workspace, pool, "DETACH data", "statement:detach")


def test_copy_a_table_out_to_a_file(
    workspace: Workspace, pool: SandboxPool, tmp_path: Path
) -> None:
    refused(workspace, pool, f"COPY person TO '{tmp_path}/person.csv'", "statement:copy")
    refused(workspace, pool, f"COPY (SELECT 1) TO '{tmp_path}/x.parquet'", "statement:copy")
    assert not (tmp_path / "person.csv").exists()


def test_copy_a_host_file_in(workspace: Workspace, pool: SandboxPool) -> None:
    refused(workspace, pool, "COPY person FROM '/etc/passwd'", "statement:copy")


def test_export_the_database(workspace: Workspace, pool: SandboxPool, tmp_path: Path) -> None:
    refused(workspace, pool, f"EXPORT DATABASE '{tmp_path}/dump'", "statement:export")


@pytest.mark.parametrize("sql", ["INSTALL httpfs", "LOAD httpfs", "FORCE INSTALL spatial"])
def test_extension_loading(workspace: Workspace, pool: SandboxPool, sql: str) -> None:
    refused(workspace, pool, sql, "statement:load")


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("PRAGMA enable_profiling", "statement:pragma"),
        ("SET enable_external_access = true", "statement:set"),
        ("SET lock_configuration = false", "statement:set"),
        ("RESET memory_limit", "statement:set"),
        ("CALL enable_logging()", "statement:call"),
    ],
)
def test_changing_the_engine_settings(
    workspace: Workspace, pool: SandboxPool, sql: str, rule: str
) -> None:
    refused(workspace, pool, sql, rule)


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("CREATE TABLE copy AS SELECT * FROM person", "statement:create"),
        ("INSERT INTO person SELECT * FROM person", "statement:insert"),
        ("UPDATE person SET sex = NULL", "statement:update"),
        ("DELETE FROM person", "statement:delete"),
        ("DROP TABLE person", "statement:drop"),
        ("CREATE MACRO leak() AS TABLE SELECT 1", "statement:create"),
    ],
)
def test_writing_to_the_workspace(
    workspace: Workspace, pool: SandboxPool, sql: str, rule: str
) -> None:
    refused(workspace, pool, sql, rule)


@pytest.mark.parametrize(
    "function",
    [
        "read_csv('/etc/passwd')",
        "read_csv_auto('/etc/passwd')",
        "read_parquet('/etc/hostname')",
        "read_json('/etc/hostname')",
        "read_json_objects('/etc/hostname')",
        "read_text('/etc/passwd')",
        "read_blob('/etc/shadow')",
        "glob('/root/*')",
        "sniff_csv('/etc/passwd')",
        "parquet_schema('/etc/hostname')",
    ],
)
def test_table_functions_reading_the_host(
    workspace: Workspace, pool: SandboxPool, function: str
) -> None:
    name = function.split("(", 1)[0]
    refused(workspace, pool, f"SELECT * FROM {function}", f"table-function:{name}")


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("SELECT getenv('PMHUB_HOME')", "function:getenv"),
        ("SELECT current_setting('temp_directory')", "function:current_setting"),
        ("SELECT * FROM duckdb_settings()", "table-function:duckdb_settings"),
        ("SELECT path FROM duckdb_databases()", "table-function:duckdb_databases"),
        ("SELECT * FROM duckdb_settings", "system-table"),
        ("SELECT * FROM query('SELECT * FROM read_text(''/etc/passwd'')')", "table-function:query"),
        (
            "SELECT * FROM json_execute_serialized_sql('{}')",
            "table-function:json_execute_serialized_sql",
        ),
    ],
)
def test_reading_the_environment_and_settings(
    workspace: Workspace, pool: SandboxPool, sql: str, rule: str
) -> None:
    refused(workspace, pool, sql, rule)


def test_a_host_path_as_a_table(workspace: Workspace, pool: SandboxPool) -> None:
    refused(workspace, pool, "SELECT * FROM '/etc/passwd'", "file")


def test_another_projects_workspace_by_path(
    workspace: Workspace, pool: SandboxPool, other: Workspace
) -> None:
    secret_file = other.files_dir / "secret.parquet"
    refused(workspace, pool, f"SELECT * FROM '{secret_file}'", "file")
    refused(
        workspace,
        pool,
        f"SELECT * FROM read_parquet('{secret_file}')",
        "table-function:read_parquet",
    )
    refused(workspace, pool, f"SELECT * FROM '{other.db_path}'", "file")
    refused(workspace, pool, "SELECT * FROM '../p2/files/secret.parquet'", "file")
    refused(workspace, pool, "SELECT * FROM p2.main.secret", "catalog")


def test_another_projects_table_by_name(
    workspace: Workspace, pool: SandboxPool, other: Workspace
) -> None:
    with pytest.raises(QueryError, match="no table named 'secret'"):
        workspace.query("SELECT * FROM secret", pool=pool)


def test_a_100_mb_result_is_neither_saved_nor_shown(
    workspace: Workspace, pool: SandboxPool
) -> None:
    sql = "SELECT repeat('x', 1000000) AS blob FROM range(100)"
    limits = QueryLimits(max_result_bytes=16 << 20)
    with pytest.raises(QueryLimitError, match="over 16,777,216 bytes") as caught:
        workspace.query(sql, limits, save_as="huge.parquet", pool=pool)
    assert caught.value.limit == "result_bytes"
    preview = workspace.query(sql, pool=pool)  # 100 MB shown as 100 cells of 1,000 characters
    assert (len(preview.rows), preview.cells_cut) == (100, 100)
    assert {len(row[0]) for row in preview.rows} == {limits.cell_chars + 1}


def test_a_cartesian_product_is_stopped_at_the_time_limit(
    workspace: Workspace, pool: SandboxPool
) -> None:
    sql = "SELECT count(*) FROM visit a, visit b, visit c, visit d, visit e"
    with pytest.raises(QueryTimeoutError, match="limit of 2 s"):
        workspace.query(sql, QueryLimits(timeout_s=2), pool=pool)
    assert workspace.query("SELECT count(*) FROM visit", pool=pool).rows == [[600]]


def test_a_recursive_cte_that_never_ends(workspace: Workspace, pool: SandboxPool) -> None:
    sql = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
    with pytest.raises((QueryTimeoutError, QueryLimitError)):
        workspace.query(sql, QueryLimits(timeout_s=2), pool=pool)
    assert workspace.query("SELECT 1", pool=pool).rows == [[1]]


def test_a_query_that_would_exhaust_memory(workspace: Workspace, pool: SandboxPool) -> None:
    sql = "SELECT string_agg(repeat(person_pid, 100000), ',') FROM person, range(100)"
    with pytest.raises(QueryLimitError, match="MB") as caught:
        workspace.query(sql, pool=pool)
    assert caught.value.limit == "memory"


@pytest.mark.parametrize(
    "sql", ["SELEC * FROM person", "SELECT (", "SELECT * FROM person WHERE", "'"]
)
def test_malformed_sql(workspace: Workspace, pool: SandboxPool, sql: str) -> None:
    with pytest.raises(QueryError, match="cannot parse"):
        workspace.query(sql, pool=pool)


def test_bytes_that_are_not_utf8(workspace: Workspace, pool: SandboxPool) -> None:
    refused(workspace, pool, b"SELECT '\xc3\x28' FROM person", "encoding")
    refused(workspace, pool, "SELECT '\udcff'", "encoding")


def test_a_nul_byte_hiding_a_second_statement(workspace: Workspace, pool: SandboxPool) -> None:
    refused(workspace, pool, "SELECT 1\x00; DROP TABLE person", "nul-byte")


def test_a_1_mb_sql_string(workspace: Workspace, pool: SandboxPool) -> None:
    sql = "SELECT 1 FROM person WHERE sex = '" + "x" * (1 << 20) + "'"
    error = refused(workspace, pool, sql, "size")
    assert "1,048,6" in error.message


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; DROP TABLE person",
        "SELECT 1 /* harmless */; ATTACH 'x' AS x",
        "SELECT 1;\n-- comment\nCOPY person TO 'x.csv'",
    ],
)
def test_a_second_statement_after_a_select(
    workspace: Workspace, pool: SandboxPool, sql: str
) -> None:
    refused(workspace, pool, sql, "statements")


def test_nesting_deep_enough_to_break_a_parser(workspace: Workspace, pool: SandboxPool) -> None:
    sql = "SELECT " + "(" * 5000 + "1" + ")" * 5000
    with pytest.raises((SqlRefusedError, QueryError)):
        workspace.query(sql, pool=pool)
    assert workspace.query("SELECT 2", pool=pool).rows == [[2]]


def test_a_saved_name_that_escapes_the_files_folder(
    workspace: Workspace, pool: SandboxPool
) -> None:
    for name in ("../../p2/files/secret.parquet", "/etc/cron.d/x.csv", "..parquet"):
        with pytest.raises(WorkspaceError, match="not a workspace file name"):
            workspace.query("SELECT 1", save_as=name, pool=pool)


def test_a_project_id_that_escapes_the_workspaces_folder(pmhub_home: Path) -> None:
    for project in ("../p2", "p2/../p1", "/tmp/x"):
        with pytest.raises(WorkspaceError, match="not a project id"):
            create_workspace(project)
