"""Passwords and logins, with rate limiting and lockout.

Five wrong passwords for one account within 15 minutes lock it for 15 minutes; twenty
failures from one source within 15 minutes refuse that source for the rest of the window.
While locked, no password is checked at all, so guessing goes on at no more than five
tries per quarter hour. Every try is a row in ``login_attempts`` and an audit entry; the
name given is kept only when it is a real user's (a password typed into the name field
must not end up in the log).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pmhub.platform import validate
from pmhub.platform.audit import append, authorize
from pmhub.platform.core import Platform
from pmhub.platform.errors import AuthenticationError, LockedOutError, PlatformError
from pmhub.platform.models import LoginAttempt, User
from pmhub.platform.passwords import MAX_LENGTH
from pmhub.platform.policy import Context
from pmhub.platform.roles import Principal
from pmhub.platform.tokens import IssuedToken, issue
from pmhub.platform.users import find_user

MAX_FAILURES = 5
SOURCE_MAX_FAILURES = 20
WINDOW = dt.timedelta(minutes=15)
LOCK_FOR = dt.timedelta(minutes=15)
SESSION_TTL = dt.timedelta(hours=8)
UNKNOWN = "?"
FAILED = ("bad_password", "unknown_user", "disabled", "no_password")


def set_password(pf: Platform, by: Principal, username: str, password: str) -> None:
    """Set a user's password (their own, or anyone's for an admin); this also lifts a lock."""
    username = validate.username(username)
    hashed = pf.passwords.hash(password)
    with pf.db.read() as session:
        owner = find_user(session, username).id
    authorize(pf, "user.passwd", by, Context(owner_id=owner), target=f"user:{username}")
    with pf.db.write() as session:
        user = find_user(session, username)
        user.password_hash = hashed
        user.password_changed_at = pf.now()
        user.locked_until = None
        append(pf, session, actor=by.actor, action="user.passwd", target=f"user:{username}")


@dataclasses.dataclass(frozen=True)
class _Outcome:
    token: IssuedToken | None
    error: PlatformError | None


def login(pf: Platform, username: str, password: str, *, source: str | None = None) -> IssuedToken:
    """A session token for a right username and password; every try is recorded."""
    given = validate.text("username", username, max_len=200)
    secret = validate.secret("password", password, max_len=MAX_LENGTH)
    if source is not None:
        source = validate.text("source", source, max_len=64)
    # The attempt is recorded even when it fails: commit first, raise after.
    with pf.db.write() as session:
        outcome = _attempt(pf, session, given, secret, source)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.token is not None
    return outcome.token


def _attempt(
    pf: Platform, session: Session, given: str, password: str, source: str | None
) -> _Outcome:
    now = pf.now()
    user = session.scalar(select(User).where(User.username == given))
    name = user.username if user else UNKNOWN
    if source is not None and _source_failures(session, source, now) >= SOURCE_MAX_FAILURES:
        _note(pf, session, user, name, source, "rate_limited")
        return _Outcome(None, LockedOutError(f"too many failed logins from {source}; try later"))
    if user is not None and user.locked_until is not None and user.locked_until > now:
        _note(pf, session, user, name, source, "locked")
        return _Outcome(None, _locked(user.locked_until))
    ok = pf.passwords.verify(user.password_hash if user else None, password)
    if user is None or not ok or user.disabled_at is not None:
        reason = _failure_reason(user, ok)
        _note(pf, session, user, name, source, reason)
        if user is not None and reason == "bad_password" and _should_lock(session, user, now):
            user.locked_until = now + LOCK_FOR
            append(
                pf,
                session,
                actor="system:auth",
                action="user.locked",
                target=f"user:{name}",
                details={"locked_until": user.locked_until.isoformat(), "attempts": MAX_FAILURES},
            )
            return _Outcome(None, _locked(user.locked_until))
        return _Outcome(None, AuthenticationError("wrong username or password"))
    assert user.password_hash is not None
    if pf.passwords.needs_rehash(user.password_hash):
        user.password_hash = pf.passwords.hash(password)
    token = issue(pf, session, user, "login", "session", SESSION_TTL)
    _note(pf, session, user, name, source, "success", token_id=token.id)
    return _Outcome(token, None)


def _failure_reason(user: User | None, ok: bool) -> str:
    if user is None:
        return "unknown_user"
    if user.password_hash is None:
        return "no_password"
    return "bad_password" if not ok else "disabled"


def _locked(until: dt.datetime) -> LockedOutError:
    return LockedOutError(f"the account is locked until {until:%Y-%m-%d %H:%M:%S} UTC")


def _note(
    pf: Platform,
    session: Session,
    user: User | None,
    name: str,
    source: str | None,
    outcome: str,
    *,
    token_id: int | None = None,
) -> None:
    session.add(
        LoginAttempt(
            username=name,
            user_id=user.id if user else None,
            source=source,
            at=pf.now(),
            outcome=outcome,
        )
    )
    session.flush()
    append(
        pf,
        session,
        actor=f"user:{name}" if user else "anonymous",
        action="auth.login",
        target=f"user:{name}",
        outcome="allowed" if outcome == "success" else "denied",
        details={"reason": outcome, "source": source, "token_id": token_id},
    )


def _window_start(session: Session, user: User, now: dt.datetime) -> dt.datetime:
    """Failures count since the window opened, the last success or the last reset."""
    last_success = session.scalar(
        select(func.max(LoginAttempt.at)).where(
            LoginAttempt.user_id == user.id, LoginAttempt.outcome == "success"
        )
    )
    bounds = [now - WINDOW, last_success, user.password_changed_at]
    return max(b for b in bounds if b is not None)


def _should_lock(session: Session, user: User, now: dt.datetime) -> bool:
    failures = session.scalar(
        select(func.count()).where(
            LoginAttempt.user_id == user.id,
            LoginAttempt.outcome == "bad_password",
            LoginAttempt.at > _window_start(session, user, now),
        )
    )
    return (failures or 0) >= MAX_FAILURES


def _source_failures(session: Session, source: str, now: dt.datetime) -> int:
    count = session.scalar(
        select(func.count()).where(
            LoginAttempt.source == source,
            LoginAttempt.outcome.in_(FAILED),
            LoginAttempt.at > now - WINDOW,
        )
    )
    return count or 0
