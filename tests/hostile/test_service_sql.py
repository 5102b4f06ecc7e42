"""SQL that tries to write, leave the workspace, or exhaust it, sent through the HTTP API:
a 4xx problem+json every time, an audit entry for each refusal, the workspace unchanged."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from pmhub.api.app import create_app
from pmhub.platform import projects
from pmhub.platform.core import open_platform
from pmhub.platform.models import Workspace as WorkspaceRow
from pmhub.platform.roles import operator
from pmhub.platform.tokens import create_token
from pmhub.platform.users import create_user, find_user, grant_role, principal_of
from pmhub.safezone import workspace as ws
from pmhub.settings import load_settings

ATTACKS = [
    "ATTACH '/tmp/other.duckdb' AS o",
    "COPY person TO '/tmp/leak.csv'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_parquet('/work/anything.parquet')",
    "INSTALL httpfs",
    "LOAD httpfs",
    "PRAGMA database_list",
    "SET memory_limit = '100GB'",
    "CREATE TABLE x AS SELECT 1",
    "DELETE FROM person",
    "DROP TABLE person",
    "SELECT getenv('HOME')",
    "SELECT * FROM glob('/*')",
    "SELECT 1; SELECT 2",
    "SELECT * FROM duckdb_settings()",
    "SELECT current_setting('home_directory')",
    "SELECT * FROM '/etc/passwd'",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t",
    "SELEC nonsense",
    "SELECT '\x00'",
]


@pytest.fixture
def client(pmhub_home: Path) -> Iterator[tuple[TestClient, str, Path]]:
    pf = open_platform(load_settings())
    op = operator()
    create_user(pf, op, "kim", password="a long demo password")
    grant_role(pf, op, "kim", "applicant")
    with pf.db.read() as session:
        kim = principal_of(session, find_user(session, "kim"))
    projects.create_project(pf, kim, "p1", "Project one")
    grant_role(pf, op, "kim", "project_member", scope="p1")
    space = ws.create_workspace("p1", pf.settings)
    space.load_tables({"person": pa.table({"person_id": list(range(100))})})
    now = dt.datetime.now(dt.UTC)
    with pf.db.write() as session:
        session.add(
            WorkspaceRow(
                project_id="p1",
                state="open",
                path=str(space.root),
                opens_at=now - dt.timedelta(days=1),
                closes_at=now + dt.timedelta(days=30),
                destroy_after=now + dt.timedelta(days=60),
                created_at=now,
            )
        )
    token = create_token(pf, op, "kim", "t").secret
    yield TestClient(create_app(pf)), token, space.root
    pf.close()


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".lock" not in p.name
    }


@pytest.mark.parametrize("sql", ATTACKS)
def test_hostile_sql_over_http_is_a_4xx_and_changes_nothing(
    client: tuple[TestClient, str, Path], sql: str
) -> None:
    http, token, root = client
    before = snapshot(root)
    headers = {"Authorization": f"Bearer {token}"}
    reply = http.post("/v1/workspaces/p1/query", json={"sql": sql}, headers=headers)
    assert 400 <= reply.status_code < 500, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert "Traceback" not in reply.text
    assert snapshot(root) == before
    admin_view = http.app.state.platform  # type: ignore[attr-defined]
    from pmhub.platform import audit

    trail = audit.entries(admin_view, operator(), limit=1000)
    assert any(e.action == "workspace.query" and e.outcome == "denied" for e in trail)
