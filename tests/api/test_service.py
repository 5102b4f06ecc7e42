"""The HTTP service as a client meets it: a real server process, problem+json errors,
bearer tokens, body limits, and an OpenAPI schema in which every operation names its rule."""

from __future__ import annotations

import httpx
import pytest

from pmhub.api.routing import GATE_RULES, RULE_KEY
from pmhub.platform import policy
from pmhub.platform.core import Platform
from tests.api.conftest import PASSWORD, TIMEOUT, Server, start_server

PROBLEM = "application/problem+json"


@pytest.fixture
def server(platform: Platform, admin: str):
    found = start_server()
    yield found
    found.stop()


def sign_in(server: Server, username: str, password: str = PASSWORD) -> str:
    reply = httpx.post(
        timeout=TIMEOUT,
        url=f"{server.url}/v1/session",
        json={"username": username, "password": password},
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["token"])


def test_health_and_a_signed_in_user(server: Server) -> None:
    assert httpx.get(timeout=TIMEOUT, url=f"{server.url}/healthz").json()["status"] == "ok"
    with server.client(sign_in(server, "admin")) as client:
        me = client.get("/v1/me").json()
    assert me == {"username": "admin", "grants": ["platform_admin"]}


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "no bearer token"),
        ({"Authorization": "Bearer not-a-token"}, "unknown token"),
        ({"Authorization": "Basic YWRtaW46eA=="}, "no bearer token"),
        ({"Authorization": "Bearer " + "x" * 5000}, "token"),
    ],
)
def test_calls_without_a_valid_token_are_401_problems(
    server: Server, headers: dict[str, str], detail: str
) -> None:
    reply = httpx.get(timeout=TIMEOUT, url=f"{server.url}/v1/users", headers=headers)
    assert reply.status_code == 401
    assert reply.headers["content-type"] == PROBLEM
    assert detail in reply.json()["detail"]


def test_a_wrong_password_is_a_401_problem_with_the_cli_code(server: Server) -> None:
    reply = httpx.post(
        timeout=TIMEOUT,
        url=f"{server.url}/v1/session",
        json={"username": "admin", "password": "no"},
    )
    assert reply.status_code == 401
    body = reply.json()
    assert (body["status"], body["code"]) == (401, 105)
    assert "hint" in body


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{not json", 422),
        (b"[]", 422),
        (b'{"username": 7, "password": []}', 422),
        (b'{"username": "a", "password": "b", "extra": 1}', 422),
        ('{"username": "\ud800"}'.encode("utf-8", "surrogatepass"), 422),
        (b"x" * (2 << 20), 413),
    ],
)
def test_malformed_bodies_are_4xx_problems_never_5xx(
    server: Server, content: bytes, status: int
) -> None:
    reply = httpx.post(
        timeout=TIMEOUT,
        url=f"{server.url}/v1/session",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == PROBLEM


def test_every_operation_declares_a_rule_that_exists(server: Server) -> None:
    schema = httpx.get(timeout=TIMEOUT, url=f"{server.url}/openapi.json").json()
    known = {r.name for r in policy.rules()} | GATE_RULES
    operations = [
        (path, method, op) for path, item in schema["paths"].items() for method, op in item.items()
    ]
    assert len(operations) >= 15
    missing = [f"{m.upper()} {p}" for p, m, op in operations if op.get(RULE_KEY) not in known]
    assert missing == []


def test_a_denied_call_is_403_and_on_the_audit_record(server: Server, platform: Platform) -> None:
    from tests.api.conftest import make_user

    make_user(platform, "carol", ("applicant", None))
    with server.client(sign_in(server, "carol")) as client:
        reply = client.get("/v1/users")
        assert reply.status_code == 403
        assert reply.json()["code"] == 107
    with server.client(sign_in(server, "admin")) as client:
        trail = client.get("/v1/audit/entries", params={"limit": 1000}).json()
        verified = client.post("/v1/audit/verify").json()
    denied = [e for e in trail if e["outcome"] == "denied" and e["actor"] == "user:carol"]
    assert [e["action"] for e in denied] == ["user.read"]
    assert verified["ok"] is True
