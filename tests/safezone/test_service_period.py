"""The end of a period of use: the workspace locks, queries are refused and recorded, and
after the grace period the workspace is destroyed with an audit entry. The CLI's safe-zone
verbs act only with a person's token."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from pmhub.platform import audit, projects
from pmhub.platform.core import Platform, open_platform
from pmhub.platform.models import Workspace as WorkspaceRow
from pmhub.platform.roles import operator
from pmhub.platform.tokens import create_token
from pmhub.platform.users import create_user, grant_role
from pmhub.safezone import outputs
from pmhub.safezone import workspace as ws
from pmhub.settings import load_settings
from tests.clirun import run_cli

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)  # the CLI reads the real clock


class Clock:
    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> dt.datetime:
        return self.at


@pytest.fixture
def world(pmhub_home: Path) -> Iterator[tuple[Platform, Clock]]:
    clock = Clock()
    pf = open_platform(load_settings(), clock=clock)
    op = operator()
    create_user(pf, op, "kim", password="a long demo password")
    grant_role(pf, op, "kim", "applicant")
    projects.create_project(pf, principal(pf, "kim"), "p1", "Project one")
    grant_role(pf, op, "kim", "project_member", scope="p1")
    space = ws.create_workspace("p1", pf.settings)
    import pyarrow as pa

    space.load_tables({"person": pa.table({"person_id": [1, 2, 3]})})
    with pf.db.write() as session:
        session.add(
            WorkspaceRow(
                project_id="p1",
                state="open",
                path=str(space.root),
                opens_at=NOW - dt.timedelta(days=30),
                closes_at=NOW + dt.timedelta(days=1),
                destroy_after=NOW + dt.timedelta(days=31),
                created_at=NOW - dt.timedelta(days=30),
            )
        )
    yield pf, clock
    pf.close()


def principal(pf: Platform, name: str):
    from pmhub.platform.users import find_user, principal_of

    with pf.db.read() as session:
        return principal_of(session, find_user(session, name))


def test_a_workspace_locks_at_the_end_of_its_period_and_is_destroyed_after_grace(
    world: tuple[Platform, Clock],
) -> None:
    pf, clock = world
    kim = principal(pf, "kim")
    assert outputs.query(pf, kim, "p1", "SELECT count(*) FROM person")["rows"] == [[3]]
    assert outputs.sweep(pf) == {"locked": [], "destroyed": []}

    clock.at = NOW + dt.timedelta(days=2)
    assert outputs.sweep(pf) == {"locked": ["p1"], "destroyed": []}
    with pytest.raises(outputs.WorkspaceClosedError, match="locked"):
        outputs.query(pf, kim, "p1", "SELECT count(*) FROM person")
    root = pf.home / "workspaces" / "p1"
    assert root.exists()

    clock.at = NOW + dt.timedelta(days=40)
    assert outputs.sweep(pf) == {"locked": [], "destroyed": ["p1"]}
    assert not root.exists()
    assert outputs.sweep(pf) == {"locked": [], "destroyed": []}  # once is enough
    trail = audit.entries(pf, operator(), limit=1000)
    actions = [(e.action, e.outcome) for e in trail]
    assert ("workspace.lock", "allowed") in actions
    assert ("workspace.query", "denied") in actions
    assert ("workspace.destroy", "allowed") in actions
    assert audit.verify(pf, operator()).ok


def test_a_workspace_is_closed_before_its_period_starts(world: tuple[Platform, Clock]) -> None:
    pf, clock = world
    clock.at = NOW - dt.timedelta(days=60)
    with pytest.raises(outputs.WorkspaceClosedError, match="period of use"):
        outputs.query(pf, principal(pf, "kim"), "p1", "SELECT 1")


def test_the_safe_zone_verbs_need_a_persons_token(world: tuple[Platform, Clock]) -> None:
    pf, _ = world
    code, out, err = run_cli("request", "list")
    assert code == 105
    assert "give your API token" in err
    assert "Traceback" not in out + err
    code, _, err = run_cli("request", "list", "--token", "pmh_not_a_real_token_at_all")
    assert code == 105
    assert "not valid" in err
    token = create_token(pf, operator(), "kim", "cli").secret
    code, out, err = run_cli("workspace", "tables", "p1", "--token", token)
    assert code == 0, err
    assert "person" in out
    code, out, err = run_cli(
        "workspace", "query", "p1", "COPY person TO '/tmp/x.csv'", "--token", token
    )
    assert code != 0
    assert "Traceback" not in out + err


def test_an_id_past_64_bits_is_a_usage_error(world: tuple[Platform, Clock]) -> None:
    code, out, err = run_cli("request", "show", str(2**70), "--token", "pmh_x")
    assert code == 2
    assert "Traceback" not in out + err


def test_a_download_to_an_unwritable_place_is_a_typed_error(
    world: tuple[Platform, Clock], tmp_path: Path
) -> None:
    pf, _ = world
    token = create_token(pf, operator(), "kim", "cli").secret
    code, out, err = run_cli(
        "output",
        "download",
        "1",
        "--out",
        str(tmp_path / "no" / "such" / "dir" / "x.csv"),
        "--token",
        token,
    )
    assert code != 0
    assert "Traceback" not in out + err
