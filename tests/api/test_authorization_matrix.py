"""Every endpoint of the OpenAPI schema × every role × the caller's own project and another
project's: never a 5xx, 401 without a token, 403 where the policy refuses (with a denied
entry on the audit record), and a project's resources closed to members of another.

The endpoints are read from the schema, so a new endpoint is in the matrix at once; one
whose rule the platform's policy does not know fails ``test_every_endpoint_is_in_the_matrix``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pmhub.api.app import create_app
from pmhub.api.routing import GATE_RULES, PUBLIC, RULE_KEY
from pmhub.platform import policy, projects
from pmhub.platform.core import Platform
from pmhub.platform.roles import Role
from pmhub.platform.tokens import create_token
from pmhub.platform.users import grant_role
from pmhub.safezone import service
from tests.api.conftest import make_user

ROLES = [r.value for r in Role]
SITE = "chuncheon_univ"
OWN, OTHER = "own-project", "other-project"
# a body that passes validation for each operation that takes one (the service decides)
BODIES: dict[tuple[str, str], Any] = {
    ("post", "/v1/session"): {"username": "nobody", "password": "wrong password"},
    ("post", "/v1/users"): {"username": "newcomer", "password": "a long enough password"},
    ("put", "/v1/users/{username}/password"): {"password": "another long password"},
    ("post", "/v1/users/{username}/roles"): {"role": "auditor"},
    ("post", "/v1/users/{username}/roles/revoke"): {"role": "auditor"},
    ("post", "/v1/users/{username}/tokens"): {"name": "matrix"},
    ("post", "/v1/organisations"): {"name": "Matrix Univ", "kind": "university"},
    ("post", "/v1/projects"): {"id": "matrix-new", "title": "A new project"},
    ("post", "/v1/applications"): {"project_id": "{project}", "body": {"title": "x"}},
    ("post", "/v1/applications/{application_id}/steps"): {"kind": "submitted"},
    ("post", "/v1/workspaces/{project_id}/query"): {"sql": "SELECT 1"},
    ("post", "/v1/workspaces/{project_id}/outputs"): {
        "file": "none.csv",
        "spec": {"dimensions": [], "counts": ["n"]},
        "description": "matrix",
    },
    ("post", "/v1/outputs/{output_id}/reviews"): {"decision": "approve", "reason": "matrix"},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One user per role (a steward and an officer of one site, a member of OWN), two
    projects with a draft application each, and a token per user."""
    import os

    from pmhub import demo
    from pmhub.platform.core import open_platform
    from pmhub.platform.roles import operator
    from pmhub.settings import load_settings
    from pmhub.sites import SiteRegistry

    home = tmp_path_factory.mktemp("matrix") / "home"
    saved = os.environ.get("PMHUB_HOME")
    os.environ["PMHUB_HOME"] = str(home)
    try:
        registry = SiteRegistry(load_settings())
        registry.add(SITE)
        pf = open_platform(load_settings())
        op = operator()
        tokens: dict[str, str] = {}
        for role in ROLES:
            scope = SITE if role in ("steward", "pseudonymization_officer") else None
            make_user(pf, f"u_{role}", *([] if role == "project_member" else [(role, scope)]))
            tokens[role] = create_token(pf, op, f"u_{role}", "matrix").secret
        make_user(pf, "u_other", ("applicant", None))
        tokens["other_applicant"] = create_token(pf, op, "u_other", "matrix").secret
        projects.create_project(pf, pf_principal(pf, "u_applicant"), OWN, "Own")
        projects.create_project(pf, pf_principal(pf, "u_other"), OTHER, "Other")
        grant_role(pf, op, "u_project_member", "project_member", scope=OWN)
        grant_role(pf, op, "u_applicant", "project_member", scope=OWN)
        applicant = pf_principal(pf, "u_applicant")
        other = pf_principal(pf, "u_other")
        apps = {
            OWN: service.draft_application(pf, applicant, OWN, draft_body()).id,
            OTHER: service.draft_application(pf, other, OTHER, draft_body()).id,
        }
        client = TestClient(create_app(pf), raise_server_exceptions=False)
        yield {"pf": pf, "client": client, "tokens": tokens, "apps": apps}
        pf.close()
        del demo
    finally:
        if saved is None:
            os.environ.pop("PMHUB_HOME", None)
        else:
            os.environ["PMHUB_HOME"] = saved


def pf_principal(pf: Platform, username: str) -> Any:
    from pmhub.platform.users import find_user, principal_of

    with pf.db.read() as session:
        return principal_of(session, find_user(session, username))


def draft_body() -> dict[str, Any]:
    import datetime as dt

    import yaml

    from pmhub.cohorts import definition

    library = Path(definition.__file__).parent / "library"
    today = dt.datetime.now(dt.UTC).date()
    return {
        "title": "Matrix",
        "purpose": "The authorization matrix.",
        "research_plan": "None: a test.",
        "sites": [SITE],
        "cohort": yaml.safe_load((library / "type2_diabetes.yaml").read_text(encoding="utf-8")),
        "variables": [{"table": "person", "columns": ["year_of_birth"]}],
        "period": {"start": today.isoformat(), "end": (today + dt.timedelta(days=30)).isoformat()},
        "members": [],
    }


def operations(client: TestClient) -> list[tuple[str, str, str]]:
    schema = client.get("/openapi.json").json()
    return sorted(
        (method, path, op.get(RULE_KEY, ""))
        for path, item in schema["paths"].items()
        for method, op in item.items()
    )


def fill(path: str, world: dict[str, Any], project: str) -> str:
    values = {
        "project_id": project,
        "application_id": str(world["apps"][project]),
        "username": "u_applicant" if project == OWN else "u_other",
        "site": SITE,
        "token_id": "1",
        "job_id": "1",
        "output_id": "1",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def body_for(method: str, path: str, project: str) -> Any:
    body = BODIES.get((method, path))
    if isinstance(body, dict) and body.get("project_id") == "{project}":
        return {**body, "project_id": project}
    return body


def test_every_endpoint_is_in_the_matrix(world: dict[str, Any]) -> None:
    known = {r.name for r in policy.rules()} | GATE_RULES
    found = operations(world["client"])
    assert len(found) >= 30
    assert [(m, p) for m, p, rule in found if rule not in known] == []


@pytest.mark.parametrize("project", [OWN, OTHER])
def test_no_call_without_a_token_gets_past_the_guard(world: dict[str, Any], project: str) -> None:
    client: TestClient = world["client"]
    for method, path, rule in operations(client):
        if rule == PUBLIC:
            continue
        url = fill(path, world, project)
        reply = client.request(method, url, json=body_for(method, path, project))
        assert reply.status_code == 401, f"{method.upper()} {url}: {reply.status_code}"


@pytest.mark.parametrize("role", [*ROLES, "other_applicant"])
@pytest.mark.parametrize("project", [OWN, OTHER])
def test_every_role_on_every_endpoint(world: dict[str, Any], role: str, project: str) -> None:
    client: TestClient = world["client"]
    headers = {"Authorization": f"Bearer {world['tokens'][role]}"}
    pf: Platform = world["pf"]
    for method, path, _rule in operations(client):
        if (method, path) in (("delete", "/v1/tokens/{token_id}"),):
            continue  # revoking token 1 would end another role's run of the matrix
        before = _denied(pf)
        url = fill(path, world, project)
        reply = client.request(method, url, json=body_for(method, path, project), headers=headers)
        where = f"{role} {method.upper()} {url} → {reply.status_code}: {reply.text[:300]}"
        assert reply.status_code < 500, where
        assert reply.headers["content-type"].startswith(
            ("application/json", "application/problem+json", "text/html")
        ), where
        if reply.status_code == 403:
            assert _denied(pf) > before, f"no denied audit entry: {where}"
        if project == OTHER and "{project_id}" in path and role == "project_member":
            assert reply.status_code in (403, 404), where  # another project stays closed


def _denied(pf: Platform) -> int:
    from sqlalchemy import func, select

    from pmhub.platform.models import AuditEntry

    with pf.db.read() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.outcome == "denied")
            )
            or 0
        )
