"""Who is calling: the bearer token resolved to a principal, before any route runs.

The guard of a route authenticates the caller (every rule but ``public`` needs a valid
token) and records the route's rule; the service function the route calls then checks the
rule against the resource (its project, site, owner, state) with ``policy.require``, so
the CLI and the API are held to the same check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Request

from pmhub.api.routing import PUBLIC

if TYPE_CHECKING:
    from pmhub.platform.core import Platform
    from pmhub.platform.roles import Principal


def platform_of(request: Request) -> Platform:
    found: Platform = request.app.state.platform
    return found


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def guard(rule: str) -> Callable[..., Any]:
    def check(request: Request) -> None:
        request.state.rule = rule
        if rule == PUBLIC:
            request.state.principal = None
            return
        request.state.principal = authenticate(request)

    return check


def authenticate(request: Request) -> Principal:
    from pmhub.platform import tokens
    from pmhub.platform.errors import AuthenticationError

    token = bearer(request)
    if token is None:
        raise AuthenticationError(
            "this operation needs a signed-in user (no bearer token)",
            hint="Send `Authorization: Bearer <token>`; get one from POST /v1/session.",
        )
    if len(token) > tokens.MAX_TOKEN_LENGTH:  # not a token of ours: say so, as for any other
        raise AuthenticationError("the bearer token is not valid (too long)")
    return tokens.resolve(platform_of(request), token)


def principal(request: Request) -> Principal:
    """The caller of a guarded route (its guard ran first)."""
    found: Principal = request.state.principal
    return found
