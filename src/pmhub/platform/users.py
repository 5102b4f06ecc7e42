"""People: organisations, users and their roles.

Every function checks its input, then the caller's right (policy rule), then writes the
change and its audit entry in one transaction; a refusal changes nothing but the record.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pmhub.platform import validate
from pmhub.platform.audit import append, authorize
from pmhub.platform.core import Platform
from pmhub.platform.errors import ConflictError, NotFoundError, PlatformInputError
from pmhub.platform.models import ApiToken, Organisation, Project, RoleAssignment, User
from pmhub.platform.policy import Context
from pmhub.platform.roles import SCOPES, Grant, Principal, Role, ScopeKind
from pmhub.sites import SiteRegistry


class OrganisationKind(enum.StrEnum):
    HOSPITAL = "hospital"
    COMPANY = "company"
    UNIVERSITY = "university"
    DATA_CENTER = "data_center"


@dataclasses.dataclass(frozen=True)
class OrganisationInfo:
    id: int
    name: str
    kind: OrganisationKind
    site: str | None


@dataclasses.dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    display_name: str
    email: str | None
    organisation: str | None
    created_at: dt.datetime
    disabled: bool
    locked_until: dt.datetime | None
    has_password: bool
    grants: tuple[Grant, ...]


def _registered_site(pf: Platform, name: object) -> str:
    site = validate.site(name)
    SiteRegistry(pf.settings).get(site)  # UnknownSiteError names the registered ones
    return site


# --- organisations ---------------------------------------------------------------------


def create_organisation(
    pf: Platform, by: Principal, name: str, kind: str, *, site: str | None = None
) -> OrganisationInfo:
    name = validate.text("organisation name", name, max_len=80)
    org_kind = validate.choice("organisation kind", kind, OrganisationKind)
    if site is not None:
        if org_kind is not OrganisationKind.HOSPITAL:
            raise PlatformInputError("only a hospital runs a site")
        site = _registered_site(pf, site)
    authorize(pf, "org.manage", by, None, target=f"organisation:{name}")
    try:
        with pf.db.write() as session:
            org = Organisation(name=name, kind=org_kind.value, site=site, created_at=pf.now())
            session.add(org)
            session.flush()
            append(
                pf,
                session,
                actor=by.actor,
                action="org.create",
                target=f"organisation:{name}",
                details={"kind": org_kind.value, "site": site},
            )
            return _org_info(org)
    except IntegrityError as exc:
        raise ConflictError(
            f"an organisation named {name!r} (or for site {site!r}) exists"
        ) from exc


def list_organisations(pf: Platform, by: Principal) -> list[OrganisationInfo]:
    authorize(pf, "user.read", by, None, target="organisations")
    with pf.db.read() as session:
        return [
            _org_info(o) for o in session.scalars(select(Organisation).order_by(Organisation.name))
        ]


def _org_info(org: Organisation) -> OrganisationInfo:
    return OrganisationInfo(org.id, org.name, OrganisationKind(org.kind), org.site)


# --- users -----------------------------------------------------------------------------


def find_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"no user named {username!r}")
    return user


def create_user(
    pf: Platform,
    by: Principal,
    username: str,
    *,
    display_name: str = "",
    email: str | None = None,
    organisation: str | None = None,
    password: str | None = None,
) -> UserInfo:
    """A new user without roles; with a password if given (else set it later)."""
    username = validate.username(username)
    display_name = validate.text("display name", display_name, max_len=200, min_len=0)
    email = None if email is None else validate.email(email)
    if organisation is not None:
        organisation = validate.text("organisation", organisation, max_len=80)
    hashed = None if password is None else pf.passwords.hash(password)
    authorize(pf, "user.manage", by, None, target=f"user:{username}")
    try:
        with pf.db.write() as session:
            org = _organisation(session, organisation)
            now = pf.now()
            user = User(
                username=username,
                display_name=display_name or username,
                email=email,
                organisation_id=org.id if org else None,
                password_hash=hashed,
                password_changed_at=now if hashed else None,
                created_at=now,
            )
            session.add(user)
            session.flush()
            append(
                pf,
                session,
                actor=by.actor,
                action="user.create",
                target=f"user:{username}",
                details={"organisation": organisation},
            )
            return _user_info(session, user)
    except IntegrityError as exc:
        raise ConflictError(f"a user named {username!r} exists") from exc


def _organisation(session: Session, name: str | None) -> Organisation | None:
    if name is None:
        return None
    org = session.scalar(select(Organisation).where(Organisation.name == name))
    if org is None:
        raise NotFoundError(
            f"no organisation named {name!r}", hint="Create it first (`pmhub users org-add`)."
        )
    return org


def list_users(pf: Platform, by: Principal) -> list[UserInfo]:
    authorize(pf, "user.read", by, None, target="users")
    with pf.db.read() as session:
        users = session.scalars(select(User).order_by(User.username)).all()
        return [_user_info(session, u) for u in users]


def get_user(pf: Platform, by: Principal, username: str) -> UserInfo:
    username = validate.username(username)
    with pf.db.read() as session:
        user = find_user(session, username)
        owner = user.id
    authorize(pf, "user.read", by, Context(owner_id=owner), target=f"user:{username}")
    with pf.db.read() as session:
        return _user_info(session, find_user(session, username))


def disable_user(pf: Platform, by: Principal, username: str) -> UserInfo:
    """Disable a user: they cannot log in, and their tokens are revoked."""
    username = validate.username(username)
    authorize(pf, "user.manage", by, None, target=f"user:{username}")
    with pf.db.write() as session:
        user = find_user(session, username)
        if user.disabled_at is not None:
            raise ConflictError(f"user {username!r} is disabled already")
        if by.user_id == user.id:
            raise ConflictError("you cannot disable your own account", hint="Ask another admin.")
        now = pf.now()
        user.disabled_at = now
        tokens = session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        ).all()
        for token in tokens:
            token.revoked_at = now
        append(
            pf,
            session,
            actor=by.actor,
            action="user.disable",
            target=f"user:{username}",
            details={"count": len(tokens)},
        )
        return _user_info(session, user)


def grants_of(session: Session, user_id: int) -> tuple[Grant, ...]:
    rows = session.scalars(
        select(RoleAssignment)
        .where(RoleAssignment.user_id == user_id, RoleAssignment.revoked_at.is_(None))
        .order_by(RoleAssignment.id)
    )
    return tuple(Grant(Role(r.role), r.scope, r.external, r.represents_data_subjects) for r in rows)


def principal_of(session: Session, user: User) -> Principal:
    return Principal(username=user.username, user_id=user.id, grants=grants_of(session, user.id))


def _user_info(session: Session, user: User) -> UserInfo:
    org = session.get(Organisation, user.organisation_id) if user.organisation_id else None
    return UserInfo(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        email=user.email,
        organisation=org.name if org else None,
        created_at=user.created_at,
        disabled=user.disabled_at is not None,
        locked_until=user.locked_until,
        has_password=user.password_hash is not None,
        grants=grants_of(session, user.id),
    )


# --- roles -----------------------------------------------------------------------------


def _grant_of(
    pf: Platform, role: str, scope: str | None, external: bool, represents: bool
) -> Grant:
    r = validate.choice("role", role, Role)
    validate.flag("external", external)
    validate.flag("represents_data_subjects", represents)
    if (external or represents) and r is not Role.DRB_MEMBER:
        raise PlatformInputError("external and represents_data_subjects are for drb_member only")
    rule = SCOPES[r]
    if scope is None and rule.required:
        raise PlatformInputError(f"role {r} needs a scope: a {rule.kind}")
    if scope is not None and rule.kind is None:
        raise PlatformInputError(f"role {r} takes no scope")
    if scope is not None:
        scope = (
            _registered_site(pf, scope)
            if rule.kind is ScopeKind.SITE
            else validate.project_id(scope)
        )
    return Grant(r, scope, external, represents)


def grant_role(
    pf: Platform,
    by: Principal,
    username: str,
    role: str,
    *,
    scope: str | None = None,
    external: bool = False,
    represents_data_subjects: bool = False,
) -> Grant:
    """Give a user a role (a steward: for a site; a project member: for a project)."""
    username = validate.username(username)
    grant = _grant_of(pf, role, scope, external, represents_data_subjects)
    authorize(pf, "user.manage", by, None, target=f"user:{username}")
    with pf.db.write() as session:
        user = find_user(session, username)
        if grant.scope_kind is ScopeKind.PROJECT and session.get(Project, grant.scope) is None:
            raise NotFoundError(f"no project {grant.scope!r}")
        if _active_grant(session, user.id, grant.role, grant.scope) is not None:
            raise ConflictError(f"{username} holds {grant.label()} already")
        session.add(
            RoleAssignment(
                user_id=user.id,
                role=grant.role.value,
                scope_kind=grant.scope_kind.value if grant.scope_kind else None,
                scope=grant.scope,
                external=grant.external,
                represents_data_subjects=grant.represents_data_subjects,
                granted_by=by.actor,
                granted_at=pf.now(),
            )
        )
        session.flush()
        append(
            pf,
            session,
            actor=by.actor,
            action="role.grant",
            target=f"user:{username}",
            details={
                "role": grant.role.value,
                "scope": grant.scope,
                "external": grant.external,
                "represents_data_subjects": grant.represents_data_subjects,
            },
        )
        return grant


def _active_grant(
    session: Session, user_id: int, role: Role, scope: str | None
) -> RoleAssignment | None:
    query = select(RoleAssignment).where(
        RoleAssignment.user_id == user_id,
        RoleAssignment.role == role.value,
        RoleAssignment.revoked_at.is_(None),
    )
    query = query.where(
        RoleAssignment.scope.is_(None) if scope is None else RoleAssignment.scope == scope
    )
    return session.scalar(query)


def revoke_role(
    pf: Platform, by: Principal, username: str, role: str, *, scope: str | None = None
) -> Grant:
    """Take a role away; the grant stays on record with who revoked it and when."""
    username = validate.username(username)
    r = validate.choice("role", role, Role)
    if scope is not None:
        scope = validate.text("scope", scope, max_len=40)
    authorize(pf, "user.manage", by, None, target=f"user:{username}")
    with pf.db.write() as session:
        user = find_user(session, username)
        row = _active_grant(session, user.id, r, scope)
        if row is None:
            where = f" for {scope}" if scope else ""
            raise NotFoundError(f"{username} does not hold {r}{where}")
        row.revoked_at = pf.now()
        row.revoked_by = by.actor
        append(
            pf,
            session,
            actor=by.actor,
            action="role.revoke",
            target=f"user:{username}",
            details={"role": r.value, "scope": scope},
        )
        return Grant(r, row.scope, row.external, row.represents_data_subjects)
