"""The second wall on its own: the worker's DuckDB with the SQL check bypassed.

Every attack here is sent straight to a worker, as if the first wall had a hole; the
worker's configuration (read-only, external access off, configuration locked) must still
refuse it, and the workspace must stay as it was.
"""

# ruff: noqa: F811  # the fixtures imported below are taken again as parameters

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pmhub.safezone.errors import QueryError, QueryLimitError, QueryTimeoutError, SqlRefusedError
from pmhub.safezone.sandbox import QueryLimits, SandboxPool, query_request
from pmhub.safezone.sandbox_sql import check_sql
from pmhub.safezone.workspace import Workspace
from tests.safezone.test_workspace_fixtures import (
    pool,  # noqa: F401
    snapshot,
    workspace,  # noqa: F401
)


def unchecked(pool: SandboxPool, ws: Workspace, sql: str, **limits: float) -> dict[str, object]:
    return pool.run(query_request(ws.db_path, sql, QueryLimits(**limits)), QueryLimits(**limits))  # type: ignore[arg-type]


ENGINE_REFUSES = [
    ("SELECT * FROM read_csv('/etc/passwd')", "engine:external-access"),
    ("SELECT * FROM read_text('/etc/hostname')", "engine:external-access"),
    ("SELECT * FROM read_blob('/etc/hostname')", "engine:external-access"),
    ("SELECT * FROM glob('/*')", "engine:external-access"),
    ("SELECT * FROM sniff_csv('/etc/passwd')", "engine:external-access"),
    ("SELECT * FROM parquet_metadata('/etc/hostname')", "engine:external-access"),
    ("SELECT * FROM duckdb_extensions()", "engine:external-access"),
    ("ATTACH '{out}/other.duckdb' AS other", "engine:external-access"),
    ("COPY person TO '{out}/person.csv'", "engine:external-access"),
    ("COPY (SELECT 1) TO '{out}/one.parquet' (FORMAT parquet)", "engine:external-access"),
    ("EXPORT DATABASE '{out}/export'", "engine:external-access"),
    ("INSTALL httpfs", "engine:external-access"),
    ("LOAD httpfs", "engine:external-access"),
    ("SET enable_external_access = true", "engine:locked-configuration"),
    ("SET lock_configuration = false", "engine:locked-configuration"),
    ("SET memory_limit = '64GB'", "engine:locked-configuration"),
    ("RESET threads", "engine:locked-configuration"),
    ("SET temp_directory = '{out}'", "engine:locked-configuration"),
    ("PRAGMA enable_profiling", "engine:locked-configuration"),
    ("SET profiling_output = '{out}/profile'", "engine:locked-configuration"),
    ("CREATE TABLE stolen AS SELECT * FROM person", "engine:read-only"),
    ("INSERT INTO person VALUES ('x', 'F', 1999)", "engine:read-only"),
    ("UPDATE person SET sex = 'X'", "engine:read-only"),
    ("DELETE FROM visit", "engine:read-only"),
    ("DROP TABLE person", "engine:read-only"),
]


@pytest.mark.parametrize(("sql", "rule"), ENGINE_REFUSES)
def test_the_engine_refuses_what_the_check_would(
    workspace: Workspace, pool: SandboxPool, tmp_path: Path, sql: str, rule: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    sql = sql.format(out=out)
    with pytest.raises(SqlRefusedError):
        check_sql(sql, workspace.table_names(), max_bytes=100_000)  # the first wall
    before = snapshot(workspace.root.parent)
    with pytest.raises(SqlRefusedError) as caught:
        unchecked(pool, workspace, sql)  # the second wall, alone
    assert caught.value.rule == rule
    assert snapshot(workspace.root.parent) == before
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    "sql", ["SELECT * FROM '/etc/passwd'", "SELECT * FROM workspace", "SELECT * FROM os"]
)
def test_files_and_python_objects_are_not_tables_to_the_engine(
    workspace: Workspace, pool: SandboxPool, sql: str
) -> None:
    with pytest.raises(QueryError, match="does not exist"):
        unchecked(pool, workspace, sql)


def test_what_only_the_first_wall_stops(workspace: Workspace, pool: SandboxPool) -> None:
    """Reading the engine's own settings is harmless to the data but shows machine paths."""
    for sql in (
        "SELECT current_setting('temp_directory')",
        "SELECT path FROM duckdb_databases()",
    ):
        assert unchecked(pool, workspace, sql)["ok"] is True
        with pytest.raises(SqlRefusedError):
            check_sql(sql, workspace.table_names(), max_bytes=100_000)


def test_temporary_tables_die_with_their_query(workspace: Workspace, pool: SandboxPool) -> None:
    before = snapshot(workspace.root.parent)
    unchecked(pool, workspace, "CREATE TEMP TABLE t AS SELECT * FROM person")
    with pytest.raises(QueryError, match="does not exist"):
        unchecked(pool, workspace, "SELECT * FROM t")
    assert snapshot(workspace.root.parent) == before


def test_the_worker_has_no_platform_environment_and_kernel_limits(
    workspace: Workspace, pool: SandboxPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    unchecked(pool, workspace, "SELECT 1")
    (pid,) = pool.pids()
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    names = {item.split(b"=", 1)[0].decode() for item in environ if item}
    assert names <= {
        "PATH",
        "PYTHONPATH",
        "PYTHONNOUSERSITE",
        "PYTHONDONTWRITEBYTECODE",
        "HOME",
        "TMPDIR",
        "LANG",
    }
    limits = Path(f"/proc/{pid}/limits").read_text()
    address = next(line for line in limits.splitlines() if line.startswith("Max address space"))
    assert str((256 + 3072) << 20) in address


def test_an_endless_query_is_killed_and_its_worker_replaced(
    workspace: Workspace, pool: SandboxPool
) -> None:
    unchecked(pool, workspace, "SELECT 1")
    old = pool.pids()
    before = snapshot(workspace.root.parent)
    with pytest.raises(QueryTimeoutError, match="limit of 1 s"):
        unchecked(
            pool,
            workspace,
            "SELECT count(*) FROM range(100000) a, range(100000) b, range(100000) c",
            timeout_s=1,
        )
    assert not set(old) & set(pool.pids())
    assert unchecked(pool, workspace, "SELECT 42")["rows"] == [[42]]
    assert pool.pids()
    assert not set(old) & set(pool.pids())
    assert snapshot(workspace.root.parent) == before


def test_a_query_out_of_memory_ends_with_a_limit_error(
    workspace: Workspace, pool: SandboxPool
) -> None:
    unchecked(pool, workspace, "SELECT 1")
    old = pool.pids()
    with pytest.raises(QueryLimitError, match="MB") as caught:
        unchecked(pool, workspace, "SELECT string_agg(repeat('x', 1000000), ',') FROM range(3000)")
    assert caught.value.limit == "memory"
    assert unchecked(pool, workspace, "SELECT 1")["ok"] is True
    assert not set(old) & set(pool.pids())


def dead(pid: int) -> bool:
    """Killed: a zombie not yet reaped, or gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_worker_killed_while_idle_is_restarted(workspace: Workspace, pool: SandboxPool) -> None:
    unchecked(pool, workspace, "SELECT 1")
    (pid,) = pool.pids()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not dead(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert unchecked(pool, workspace, "SELECT 7")["rows"] == [[7]]
    assert pid not in pool.pids()


def test_queries_from_many_threads_each_get_their_own_answer(
    workspace: Workspace, pool: SandboxPool
) -> None:
    def ask(i: int) -> object:
        return unchecked(pool, workspace, f"SELECT {i} AS i, count(*) FROM person")["rows"]

    with ThreadPoolExecutor(8) as threads:
        answers = list(threads.map(ask, range(40)))
    assert answers == [[[i, 200]] for i in range(40)]


def test_a_query_waits_for_a_busy_worker_no_longer_than_its_timeout(
    workspace: Workspace, pool: SandboxPool
) -> None:
    endless = "SELECT count(*) FROM range(100000) a, range(100000) b, range(100000) c"
    with ThreadPoolExecutor(1) as thread:
        running = thread.submit(unchecked, pool, workspace, endless, timeout_s=3)
        while pool.idle():  # the one worker is taken
            time.sleep(0.01)
        with pytest.raises(QueryTimeoutError, match=r"stayed busy for 0\.5 s"):
            unchecked(pool, workspace, "SELECT 1", timeout_s=0.5)
        with pytest.raises(QueryTimeoutError):
            running.result()
    assert unchecked(pool, workspace, "SELECT 1")["rows"] == [[1]]


def test_a_workspace_destroyed_under_a_query_is_a_query_error(
    workspace: Workspace, pool: SandboxPool
) -> None:
    request = query_request(workspace.db_path, "SELECT 1", QueryLimits())
    workspace.destroy()
    with pytest.raises(QueryError, match="database is gone"):
        pool.run(request, QueryLimits())
