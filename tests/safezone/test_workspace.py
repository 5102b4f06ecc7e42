"""The workspace: creating and opening, loading delivered tables, queries, saved results."""

# ruff: noqa: F811  # the fixtures imported below are taken again as parameters

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pmhub.platform.errors import ConflictError, NotFoundError
from pmhub.safezone.errors import QueryError, QueryLimitError, WorkspaceError
from pmhub.safezone.sandbox import QueryLimits, SandboxPool
from pmhub.safezone.workspace import Workspace, create_workspace, open_workspace
from tests.safezone.test_workspace_fixtures import (
    persons,
    pool,  # noqa: F401
    snapshot,
    staged,
    visits,
    workspace,  # noqa: F401
)


def test_a_new_workspace_is_empty_and_opens_again(pmhub_home: Path) -> None:
    ws = create_workspace("proj-1")
    again = open_workspace("proj-1")
    assert (ws.tables(), ws.files(), again.root) == ([], [], pmhub_home / "workspaces" / "proj-1")
    assert sorted(p.name for p in ws.root.iterdir()) == ["data.duckdb", "files"]


def test_a_project_has_one_workspace(pmhub_home: Path) -> None:
    create_workspace("p1")
    with pytest.raises(ConflictError, match="already has a workspace"):
        create_workspace("p1")


def test_opening_a_missing_workspace_says_so(pmhub_home: Path) -> None:
    with pytest.raises(NotFoundError, match="no workspace"):
        open_workspace("nobody")


@pytest.mark.parametrize("bad", ["", "../p2", "a/b", "x" * 41, ".hidden", "é", "a b", None, 7])
def test_project_ids_are_checked_before_any_path_is_made(pmhub_home: Path, bad: object) -> None:
    with pytest.raises(WorkspaceError, match="not a project id"):
        create_workspace(bad)  # type: ignore[arg-type]
    assert not (pmhub_home / "workspaces").exists() or not any(
        p.name not in (".staging", ".locks") for p in (pmhub_home / "workspaces").iterdir()
    )


def test_loaded_tables_are_listed_with_rows_and_types(workspace: Workspace) -> None:
    info = {t.name: t for t in workspace.tables()}
    assert (info["person"].rows, info["visit"].rows) == (200, 600)
    assert info["person"].columns == (
        ("person_pid", "VARCHAR"),
        ("sex", "VARCHAR"),
        ("birth_year", "BIGINT"),
    )


def test_loading_a_table_twice_is_refused_unless_replacing(workspace: Workspace) -> None:
    before = snapshot(workspace.root)
    with pytest.raises(ConflictError, match="already has table"):
        workspace.load_tables({"person": persons(5)})
    assert snapshot(workspace.root) == before
    assert workspace.load_tables({"person": persons(5)}, replace=True) == {"person": 5}
    assert {t.name: t.rows for t in workspace.tables()} == {"person": 5, "visit": 600}


def test_parquet_files_and_folders_load(workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "delivery"
    folder.mkdir()
    pq.write_table(persons(30), folder / "cohort.parquet")
    pq.write_table(visits(9), folder / "cohort_visit.parquet")
    assert workspace.load_folder(folder) == {"cohort": 30, "cohort_visit": 9}
    assert workspace.load_folder(folder, prefix="wonju_") == {
        "wonju_cohort": 30,
        "wonju_cohort_visit": 9,
    }
    assert workspace.load_tables({"again": folder / "cohort.parquet"}) == {"again": 30}


@pytest.mark.parametrize(
    "name", ["Person", "1x", "select", "duckdb_settings", "a-b", "", "x" * 64, "pg_x"]
)
def test_table_names_are_checked(workspace: Workspace, name: str) -> None:
    before = snapshot(workspace.root)
    with pytest.raises(WorkspaceError):
        workspace.load_tables({name: persons(1)})
    assert snapshot(workspace.root) == before


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"a": [1], "A": [2]}), "appears twice"),
        (pa.table({" ": [1]}), "empty, too long or unprintable"),
        (pa.table({"a\nb": [1]}), "empty, too long or unprintable"),
    ],
)
def test_column_names_are_checked(workspace: Workspace, table: pa.Table, message: str) -> None:
    with pytest.raises(WorkspaceError, match=message):
        workspace.load_tables({"bad": table})


def test_a_load_is_all_or_nothing(workspace: Workspace, tmp_path: Path) -> None:
    def failing() -> Iterator[pa.RecordBatch]:
        yield persons(3).to_batches()[0]
        raise OSError("the delivery was cut off")

    broken = pa.RecordBatchReader.from_batches(persons(1).schema, failing())
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_bytes(b"PAR1 but not really")
    before = snapshot(workspace.root)
    for sources in (
        {"fine": persons(3), "broken": broken},
        {"fine": persons(3), "garbled": not_parquet},
        {"fine": persons(3), "missing": tmp_path / "missing.parquet"},
        {"wrong": [1, 2, 3]},
    ):
        with pytest.raises(WorkspaceError):
            workspace.load_tables(sources)  # type: ignore[arg-type]
    assert snapshot(workspace.root) == before
    assert staged(workspace.root.parent) == []


def test_a_query_gives_a_capped_preview_with_duckdb_types(
    workspace: Workspace, pool: SandboxPool
) -> None:
    result = workspace.query(
        "SELECT sex, count(*) AS n FROM person GROUP BY sex ORDER BY sex", pool=pool
    )
    assert (result.columns, result.rows) == (
        (("sex", "VARCHAR"), ("n", "BIGINT")),
        [["F", 100], ["M", 100]],
    )
    assert (result.truncated, result.row_count, result.saved) == (False, 2, None)
    capped = workspace.query("SELECT * FROM visit", QueryLimits(preview_rows=7), pool=pool)
    assert (len(capped.rows), capped.truncated, capped.row_count) == (7, True, None)


def test_exactly_the_preview_size_is_not_truncated(workspace: Workspace, pool: SandboxPool) -> None:
    result = workspace.query("SELECT * FROM range(5)", QueryLimits(preview_rows=5), pool=pool)
    assert (len(result.rows), result.truncated, result.row_count) == (5, False, 5)


def test_the_preview_is_capped_in_bytes_and_cells(workspace: Workspace, pool: SandboxPool) -> None:
    limits = QueryLimits(preview_rows=1000, preview_bytes=4096, cell_chars=50)
    result = workspace.query("SELECT repeat('x', 200) AS s FROM range(1000)", limits, pool=pool)
    assert result.truncated
    assert 0 < len(result.rows) < 1000
    assert all(row[0] == "x" * 50 + "…" for row in result.rows)
    assert result.cells_cut == len(result.rows)
    assert sum(len(orjson.dumps(row)) for row in result.rows) <= 4096


def test_every_value_type_comes_back_as_json(workspace: Workspace, pool: SandboxPool) -> None:
    sql = (
        "SELECT DATE '2024-02-29' AS d, TIMESTAMP '2024-01-01 10:00:00' AS ts,"
        " 1.25::DECIMAL(5,2) AS dec,"
        " 170141183460469231731687303715884105727::HUGEINT AS huge, '\\x01\\x02'::BLOB AS b,"
        " [1, 2] AS l, {'a': 1} AS s, MAP {'k': 'v'} AS m, INTERVAL 3 DAY AS i, 'nan'::DOUBLE AS f,"
        " NULL AS n, 1 AS dup, 2 AS dup"
    )
    result = workspace.query(sql, pool=pool)
    row = dict(zip((c[0] for c in result.columns), result.rows[0], strict=False))
    assert row["d"] == "2024-02-29"
    assert row["ts"].startswith("2024-01-01T10:00:00")
    assert row["dec"] == str(decimal.Decimal("1.25"))
    assert row["huge"] == str(2**127 - 1)
    assert row["b"].startswith("base64:")
    assert row["l"] == [1, 2]
    assert row["s"] == {"a": 1}
    assert result.rows[0][-2:] == [1, 2]  # a repeated column name keeps both values
    json.dumps(result.to_dict())
    assert dt.date.fromisoformat(row["d"]).year == 2024


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_whole_result_is_saved_as_a_workspace_file(
    workspace: Workspace, pool: SandboxPool, fmt: str
) -> None:
    sql = "SELECT visit_type, count(*) AS n, sum(cost) AS cost FROM visit GROUP BY 1 ORDER BY 1"
    result = workspace.query(sql, QueryLimits(preview_rows=1), save_as=f"by_type.{fmt}", pool=pool)
    assert result.saved is not None
    assert result.truncated
    assert (result.saved.rows, result.saved.format, result.saved.sql) == (3, fmt, sql)
    saved = workspace.read_file(f"by_type.{fmt}")
    assert saved.column("n").to_pylist() == [200, 200, 200]
    assert [f.name for f in workspace.files()] == [f"by_type.{fmt}"]
    assert workspace.file_info(f"by_type.{fmt}") == result.saved


def test_a_saved_name_is_never_overwritten(workspace: Workspace, pool: SandboxPool) -> None:
    workspace.query("SELECT 1 AS a", save_as="one.parquet", pool=pool)
    before = snapshot(workspace.root)
    with pytest.raises(ConflictError, match="already has a file"):
        workspace.query("SELECT 2 AS a", save_as="one.parquet", pool=pool)
    assert snapshot(workspace.root) == before


@pytest.mark.parametrize("name", ["x", "x.txt", "../x.parquet", ".x.csv", "a b.csv", "x.parquet/"])
def test_file_names_are_checked(workspace: Workspace, pool: SandboxPool, name: str) -> None:
    with pytest.raises(WorkspaceError, match="not a workspace file name"):
        workspace.query("SELECT 1", save_as=name, pool=pool)
    with pytest.raises(WorkspaceError, match="not a workspace file name"):
        workspace.file_path(name)


def test_a_result_over_the_row_cap_is_not_saved(workspace: Workspace, pool: SandboxPool) -> None:
    before = snapshot(workspace.root)
    with pytest.raises(QueryLimitError, match="more than 100 rows") as caught:
        workspace.query(
            "SELECT * FROM range(1000)",
            QueryLimits(max_result_rows=100),
            save_as="big.csv",
            pool=pool,
        )
    assert caught.value.limit == "result_rows"
    assert snapshot(workspace.root) == before
    assert staged(workspace.root.parent) == []


def test_csv_cannot_hold_nested_values(workspace: Workspace, pool: SandboxPool) -> None:
    with pytest.raises(QueryError, match="save as Parquet"):
        workspace.query("SELECT [1, 2] AS l", save_as="nested.csv", pool=pool)
    assert workspace.files() == []


def test_a_worker_sees_a_new_delivery(workspace: Workspace, pool: SandboxPool) -> None:
    assert workspace.query("SELECT count(*) FROM person", pool=pool).rows == [[200]]
    workspace.load_tables({"person": persons(11)}, replace=True)
    assert workspace.query("SELECT count(*) FROM person", pool=pool).rows == [[11]]


def test_a_missing_file_is_not_found(workspace: Workspace) -> None:
    with pytest.raises(NotFoundError, match=r"no file 'gone\.csv'"):
        workspace.read_file("gone.csv")


def test_destroy_removes_the_workspace(workspace: Workspace) -> None:
    workspace.destroy()
    assert not workspace.root.exists()
    with pytest.raises(NotFoundError):
        open_workspace("p1")


@pytest.mark.parametrize(
    "limits",
    [
        {"timeout_s": 0},
        {"timeout_s": 1e9},
        {"preview_rows": -1},
        {"preview_rows": 10**6},
        {"max_sql_bytes": 2 << 20},
        {"timeout_s": True},
        {"preview_rows": "10"},
    ],
)
def test_limits_are_checked(limits: dict[str, object]) -> None:
    with pytest.raises(WorkspaceError, match="outside"):
        QueryLimits(**limits)  # type: ignore[arg-type]
