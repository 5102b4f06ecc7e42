"""Sign-in, users, roles, tokens, organisations and projects (pmhub.platform's services)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import Request

from pmhub.api.guard import guard, platform_of, principal
from pmhub.api.routing import PUBLIC, SIGNED_IN, Routes
from pmhub.api.shapes import (
    Login,
    NewGrant,
    NewOrganisation,
    NewPassword,
    NewProject,
    NewToken,
    NewUser,
    RowId,
    out,
)

routes = Routes(guard, prefix="/v1", tags=["people"])


@routes.post("/session", rule=PUBLIC, summary="Sign in: a bearer token for a password")
def login(request: Request, body: Login) -> dict[str, Any]:
    from pmhub.platform import auth

    source = request.client.host if request.client else None
    issued = auth.login(platform_of(request), body.username, body.password, source=source)
    return {"token": issued.secret, "token_id": issued.id, "expires_at": issued.expires_at}


@routes.get("/me", rule=SIGNED_IN, summary="Who the token belongs to and the roles it holds")
def me(request: Request) -> dict[str, Any]:
    who = principal(request)
    return {"username": who.username, "grants": [g.label() for g in who.grants]}


@routes.get("/users", rule="user.read", summary="Every user and their roles")
def list_users(request: Request) -> Any:
    from pmhub.platform import users

    return out(users.list_users(platform_of(request), principal(request)))


@routes.post("/users", rule="user.manage", status_code=201, summary="Create a user")
def create_user(request: Request, body: NewUser) -> Any:
    from pmhub.platform import users

    return out(
        users.create_user(
            platform_of(request),
            principal(request),
            body.username,
            display_name=body.display_name,
            email=body.email,
            organisation=body.organisation,
            password=body.password,
        )
    )


@routes.get("/users/{username}", rule="user.read", summary="One user")
def get_user(request: Request, username: str) -> Any:
    from pmhub.platform import users

    return out(users.get_user(platform_of(request), principal(request), username))


@routes.post("/users/{username}/disable", rule="user.manage", summary="Disable a user")
def disable_user(request: Request, username: str) -> Any:
    from pmhub.platform import users

    return out(users.disable_user(platform_of(request), principal(request), username))


@routes.put("/users/{username}/password", rule="user.passwd", summary="Set a password")
def set_password(request: Request, username: str, body: NewPassword) -> dict[str, str]:
    from pmhub.platform import auth

    auth.set_password(platform_of(request), principal(request), username, body.password)
    return {"status": "password set"}


@routes.post("/users/{username}/roles", rule="user.manage", status_code=201, summary="Grant")
def grant(request: Request, username: str, body: NewGrant) -> Any:
    from pmhub.platform import users

    return out(
        users.grant_role(
            platform_of(request),
            principal(request),
            username,
            body.role,
            scope=body.scope,
            external=body.external,
            represents_data_subjects=body.represents_data_subjects,
        )
    )


@routes.post("/users/{username}/roles/revoke", rule="user.manage", summary="Revoke a role")
def revoke(request: Request, username: str, body: NewGrant) -> Any:
    from pmhub.platform import users

    return out(
        users.revoke_role(
            platform_of(request), principal(request), username, body.role, scope=body.scope
        )
    )


@routes.get("/users/{username}/tokens", rule="token.create", summary="A user's tokens")
def list_tokens(request: Request, username: str) -> Any:
    from pmhub.platform import tokens

    return out(tokens.list_tokens(platform_of(request), principal(request), username))


@routes.post(
    "/users/{username}/tokens", rule="token.create", status_code=201, summary="A new API token"
)
def create_token(request: Request, username: str, body: NewToken) -> Any:
    from pmhub.platform import tokens

    issued = tokens.create_token(
        platform_of(request),
        principal(request),
        username,
        body.name,
        ttl=dt.timedelta(days=body.ttl_days),
    )
    return {"token": issued.secret, "token_id": issued.id, "expires_at": issued.expires_at}


@routes.delete("/tokens/{token_id}", rule="token.revoke", summary="Revoke an API token")
def revoke_token(request: Request, token_id: RowId) -> Any:
    from pmhub.platform import tokens

    return out(tokens.revoke_token(platform_of(request), principal(request), token_id))


@routes.get("/organisations", rule="user.read", summary="Hospitals, companies, universities")
def list_organisations(request: Request) -> Any:
    from pmhub.platform import users

    return out(users.list_organisations(platform_of(request), principal(request)))


@routes.post("/organisations", rule="org.manage", status_code=201, summary="An organisation")
def create_organisation(request: Request, body: NewOrganisation) -> Any:
    from pmhub.platform import users

    return out(
        users.create_organisation(
            platform_of(request), principal(request), body.name, body.kind, site=body.site
        )
    )


@routes.post("/projects", rule="project.create", status_code=201, summary="Start a project")
def create_project(request: Request, body: NewProject) -> Any:
    from pmhub.platform import projects

    return out(
        projects.create_project(
            platform_of(request),
            principal(request),
            body.id,
            body.title,
            organisation=body.organisation,
        )
    )


@routes.get("/projects/{project_id}", rule="project.read", summary="One project")
def get_project(request: Request, project_id: str) -> Any:
    from pmhub.platform import projects

    return out(projects.get_project(platform_of(request), principal(request), project_id))
