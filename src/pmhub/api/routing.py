"""Routes that cannot be declared without an authorization rule.

Every operation names its rule (``rule="application.submit"``, or ``"public"``); the rule
is enforced by a dependency before the endpoint runs and shown in the OpenAPI schema as
``x-pmhub-rule``, where the authorization-matrix test reads it. A route added any other
way has no rule, and that test fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends

from pmhub.api.problems import MEDIA_TYPE, PROBLEM_SCHEMA

F = TypeVar("F", bound=Callable[..., Any])
RULE_KEY = "x-pmhub-rule"
PUBLIC = "public"  # anyone, signed in or not
SIGNED_IN = "signed-in"  # any signed-in user; the service decides the rest
GATE_RULES = frozenset({PUBLIC, SIGNED_IN})

_PROBLEM = {"content": {MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}}}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad request", **_PROBLEM},
    401: {"description": "Not signed in", **_PROBLEM},
    403: {"description": "Not allowed", **_PROBLEM},
    404: {"description": "Not found", **_PROBLEM},
    409: {"description": "Conflict with the current state", **_PROBLEM},
    413: {"description": "Body too large", **_PROBLEM},
    422: {"description": "Invalid request", **_PROBLEM},
}

Guard = Callable[[str], Callable[..., Any]]


class Routes:
    """An APIRouter whose every route carries its rule and that rule's guard."""

    def __init__(self, guard: Guard, *, prefix: str = "", tags: list[str] | None = None):
        self.router = APIRouter(prefix=prefix, tags=list(tags or []))
        self.guard = guard

    def get(self, path: str, *, rule: str, **kw: Any) -> Callable[[F], F]:
        return self._add("GET", path, rule, kw)

    def post(self, path: str, *, rule: str, **kw: Any) -> Callable[[F], F]:
        return self._add("POST", path, rule, kw)

    def put(self, path: str, *, rule: str, **kw: Any) -> Callable[[F], F]:
        return self._add("PUT", path, rule, kw)

    def delete(self, path: str, *, rule: str, **kw: Any) -> Callable[[F], F]:
        return self._add("DELETE", path, rule, kw)

    def _add(self, method: str, path: str, rule: str, kw: dict[str, Any]) -> Callable[[F], F]:
        if not rule:
            raise ValueError(f"{method} {path}: every route declares its authorization rule")

        def decorate(endpoint: F) -> F:
            self.router.add_api_route(
                path,
                endpoint,
                methods=[method],
                openapi_extra={RULE_KEY: rule},
                dependencies=[Depends(self.guard(rule))],
                responses={**ERROR_RESPONSES, **kw.pop("responses", {})},
                **kw,
            )
            return endpoint

        return decorate
