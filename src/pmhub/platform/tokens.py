"""API bearer tokens: a random secret shown once; the database keeps only its SHA-256.

A token's secret has 256 random bits, so a plain SHA-256 is enough to store it (a slow
password hash would only slow every request); looking it up by its hash leaks nothing
about the secret.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from pmhub.platform import validate
from pmhub.platform.audit import append, authorize, record
from pmhub.platform.core import Platform
from pmhub.platform.errors import AuthenticationError, ConflictError, NotFoundError
from pmhub.platform.models import ApiToken, User
from pmhub.platform.policy import Context
from pmhub.platform.roles import Principal
from pmhub.platform.users import find_user, principal_of

PREFIX = "pmh_"
MAX_TOKEN_LENGTH = 200
DEFAULT_TTL = dt.timedelta(days=90)
MAX_TTL = dt.timedelta(days=366)
MIN_TTL = dt.timedelta(minutes=1)
# last_used_at is a hint for admins, not a log: writing it on every request would make
# every read a write.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


@dataclasses.dataclass(frozen=True)
class IssuedToken:
    """The only time the secret is seen: give it to the user, then forget it."""

    id: int
    name: str
    secret: str
    expires_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class TokenInfo:
    id: int
    username: str
    name: str
    kind: str
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked: bool
    last_used_at: dt.datetime | None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def issue(
    pf: Platform, session: Session, user: User, name: str, kind: str, ttl: dt.timedelta
) -> IssuedToken:
    """Create a token inside the caller's transaction (a login, or an admin's request)."""
    secret = PREFIX + secrets.token_urlsafe(32)
    now = pf.now()
    row = ApiToken(
        user_id=user.id,
        name=name,
        kind=kind,
        secret_sha256=digest(secret),
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(row)
    session.flush()
    return IssuedToken(row.id, name, secret, row.expires_at)


def create_token(
    pf: Platform, by: Principal, username: str, name: str, *, ttl: dt.timedelta = DEFAULT_TTL
) -> IssuedToken:
    username = validate.username(username)
    name = validate.text("token name", name, max_len=80)
    ttl = validate.duration("token lifetime", ttl, low=MIN_TTL, high=MAX_TTL)
    with pf.db.read() as session:
        owner = find_user(session, username).id
    authorize(pf, "token.create", by, Context(owner_id=owner), target=f"user:{username}")
    with pf.db.write() as session:
        user = find_user(session, username)
        if user.disabled_at is not None:
            raise ConflictError(f"user {username!r} is disabled")
        token = issue(pf, session, user, name, "api", ttl)
        append(
            pf,
            session,
            actor=by.actor,
            action="token.create",
            target=f"user:{username}",
            details={
                "token_id": token.id,
                "token_name": name,
                "expires_at": token.expires_at.isoformat(),
            },
        )
        return token


def revoke_token(pf: Platform, by: Principal, token_id: int) -> TokenInfo:
    token_id = validate.whole("token id", token_id, low=1, high=2**62)
    with pf.db.read() as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise NotFoundError(f"no token {token_id}")
        owner = row.user_id
    authorize(pf, "token.revoke", by, Context(owner_id=owner), target=f"token:{token_id}")
    with pf.db.write() as session:
        row = session.get_one(ApiToken, token_id)
        if row.revoked_at is not None:
            raise ConflictError(f"token {token_id} is revoked already")
        row.revoked_at = pf.now()
        append(pf, session, actor=by.actor, action="token.revoke", target=f"token:{token_id}")
        return _info(session, row)


def list_tokens(pf: Platform, by: Principal, username: str) -> list[TokenInfo]:
    username = validate.username(username)
    with pf.db.read() as session:
        owner = find_user(session, username).id
    authorize(pf, "user.read", by, Context(owner_id=owner), target=f"user:{username}")
    with pf.db.read() as session:
        rows = session.scalars(
            select(ApiToken).where(ApiToken.user_id == owner).order_by(ApiToken.id)
        )
        return [_info(session, r) for r in rows]


def _info(session: Session, row: ApiToken) -> TokenInfo:
    user = session.get_one(User, row.user_id)
    return TokenInfo(
        row.id,
        user.username,
        row.name,
        row.kind,
        row.created_at,
        row.expires_at,
        row.revoked_at is not None,
        row.last_used_at,
    )


def _refusal(row: ApiToken | None, user: User | None, now: dt.datetime) -> str | None:
    if row is None or user is None:
        return "unknown token"
    if row.revoked_at is not None:
        return "revoked token"
    if row.expires_at <= now:
        return "expired token"
    if user.disabled_at is not None:
        return "disabled user"
    return None


def resolve(pf: Platform, secret: str) -> Principal:
    """The principal a bearer token stands for, or :class:`AuthenticationError`."""
    value = validate.secret("token", secret, max_len=MAX_TOKEN_LENGTH)
    now = pf.now()
    with pf.db.read() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.secret_sha256 == digest(value)))
        user = session.get(User, row.user_id) if row else None
        refusal = _refusal(row, user, now)
        if refusal is None:
            assert row is not None
            assert user is not None
            principal = principal_of(session, user)
            token_id, stale = (
                row.id,
                row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION,
            )
    if refusal is not None:
        target = f"token:{row.id}" if row else "token:?"
        record(
            pf,
            actor="anonymous",
            action="auth.token",
            target=target,
            outcome="denied",
            details={"reason": refusal},
        )
        raise AuthenticationError(f"the bearer token is not valid ({refusal})")
    if stale:
        with pf.db.write() as session:
            session.get_one(ApiToken, token_id).last_used_at = now
    return principal
