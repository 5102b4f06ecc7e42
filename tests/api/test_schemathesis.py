"""Schemathesis against the service's own OpenAPI schema: every operation fuzzed with
valid and invalid requests, signed in as a platform admin and as an applicant, never
answers 5xx, and every 4xx is a problem+json body that names its status.

The world is one platform home in which a one-site request went the whole way
(extraction run in-process, sign-off, delivery), so that the workspace, its saved file
and an output request exist for the fuzzed ids, paths and SQL to reach. Each case gets a
fresh token: a fuzzed ``DELETE /v1/tokens/{id}`` may revoke any earlier one.
``PMHUB_FUZZ_EXAMPLES`` sets the examples per operation and caller (default 25).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from pmhub.platform.core import Platform
from tests.api.safezone_world import delivered_project, people

SITE = "chuncheon_univ"
EXAMPLES = int(os.environ.get("PMHUB_FUZZ_EXAMPLES", "25"))
PROBLEM = "application/problem+json"


@dataclass
class World:
    pf: Platform
    app: Any


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from pmhub.api.app import create_app
    from pmhub.cdm import schema
    from pmhub.platform.core import open_platform
    from pmhub.settings import load_settings
    from pmhub.sites import SiteRegistry
    from pmhub.synth.load import load_sites

    home = tmp_path_factory.mktemp("fuzz") / "home"
    saved = os.environ.get("PMHUB_HOME")
    os.environ["PMHUB_HOME"] = str(home)
    try:
        site = SiteRegistry(load_settings()).add(SITE)
        with site.connect() as backend:
            schema.init_cdm(backend, source_name=SITE, abbreviation=SITE, holder="pmhub")
            load_sites({SITE: backend}, patients=300, years=3, seed=5)
        pf = open_platform(load_settings())
        people(pf, [SITE])
        delivered_project(pf, SITE)
        yield World(pf, create_app(pf))
        pf.close()
    finally:
        if saved is None:
            os.environ.pop("PMHUB_HOME", None)
        else:
            os.environ["PMHUB_HOME"] = saved


def service_schema() -> Any:
    """The schema as the service publishes it (building the app opens no state)."""
    from pmhub.api.app import create_app

    return schemathesis.openapi.from_dict(create_app().openapi())


# (schemathesis.pytest.from_fixture would build it from the world, but its lazy tests
# break on pytest 9's nodes: 'Function' object has no attribute '_nodeid')
fuzzed = service_schema()


def fresh_token(pf: Platform, username: str) -> str:
    from pmhub.platform.roles import operator
    from pmhub.platform.tokens import create_token

    return create_token(pf, operator(), username, "fuzz").secret


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)


def call_as(case: Any, world: World, username: str) -> None:
    token = fresh_token(world.pf, username)
    response = case.call(
        base_url="http://testserver", app=world.app, headers={"Authorization": f"Bearer {token}"}
    )
    where = f"{username}: {case.method} {case.formatted_path} → {response.status_code}"
    assert response.status_code < 500, f"{where}: {response.text[:500]}"
    if 400 <= response.status_code < 500:
        assert response.headers.get("content-type", [""])[0].startswith(PROBLEM), where
        body = response.json()
        assert body["status"] == response.status_code, where
        assert isinstance(body["title"], str), where
        assert body["title"], where


@fuzzed.parametrize()
@FUZZ
def test_as_a_platform_admin_no_operation_answers_5xx(case: Any, world: World) -> None:
    call_as(case, world, "admin")


@fuzzed.parametrize()
@FUZZ
def test_as_an_applicant_no_operation_answers_5xx(case: Any, world: World) -> None:
    call_as(case, world, "kim")
