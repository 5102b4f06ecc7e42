"""Hostile input to every platform service function: a typed error, and nothing changed.

"Nothing changed" is checked on every row of every platform table. The one exception is
on purpose: a refused login or token is itself recorded (that is what the record is for),
so those cases check that the only change is the refusal's own row(s).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pmhub.platform import audit, auth, projects, tokens, users
from pmhub.platform.core import Platform, open_platform
from pmhub.platform.errors import (
    AuthenticationError,
    LockedOutError,
    PlatformError,
    PlatformInputError,
)
from pmhub.platform.models import AuditEntry, LoginAttempt
from pmhub.platform.passwords import Passwords
from pmhub.settings import load_settings
from pmhub.sites import SiteRegistry
from tests.platform.backends import FakeClock, as_operator, snapshot

OP = as_operator()
PASSWORD = "a long enough passphrase"
HUGE = "x" * 100_000
WRONG_TYPES: tuple[object, ...] = (None, 42, 1.5, b"bytes", ["a"], {"a": 1}, True, object())
BAD_TEXT: tuple[object, ...] = (*WRONG_TYPES[1:], HUGE, "a\x00b", "line\nbreak")
BAD_OPTIONAL_TEXT: tuple[object, ...] = BAD_TEXT
BAD_FLAG: tuple[object, ...] = ("yes", 1, 0, None, "true")
BAD_WHOLE: tuple[object, ...] = ("1", 1.5, None, True, -1, 0, 2**70, [1])
BAD_TTL: tuple[object, ...] = (5, "1d", None, dt.timedelta(0), dt.timedelta(days=10_000))


def seeded(folder: Path) -> Platform:
    """A platform with one of each thing the hostile calls refer to."""
    platform = open_platform(
        load_settings(home=folder / "home"),
        url=f"sqlite:///{folder / 'state.db'}",
        clock=FakeClock(),
        checkpoint_every=5,
        passwords=Passwords.fast(),
    )
    SiteRegistry(platform.settings).add("wonju")
    users.create_organisation(platform, OP, "Org", "hospital", site="wonju")
    users.create_user(platform, OP, "alice", password=PASSWORD, organisation="Org")
    projects.create_project(platform, OP, "proj-a", "A project")
    tokens.create_token(platform, OP, "alice", "laptop")
    return platform


@pytest.fixture
def pf(tmp_path: Path) -> Iterator[Platform]:
    platform = seeded(tmp_path)
    yield platform
    platform.close()


@pytest.fixture(scope="module")
def shared_pf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One platform for the hundreds of calls that must each leave it as it was."""
    platform = seeded(tmp_path_factory.mktemp("hostile"))
    yield platform
    platform.close()


Call = Callable[..., object]

# (function, valid keyword arguments, the argument made hostile, the hostile values)
CASES: list[tuple[str, Call, dict[str, Any], str, tuple[object, ...]]] = [
    ("org name", users.create_organisation, {"name": "New", "kind": "company"}, "name", BAD_TEXT),
    ("org kind", users.create_organisation, {"name": "New", "kind": "company"}, "kind", BAD_TEXT),
    (
        "org site",
        users.create_organisation,
        {"name": "New", "kind": "hospital"},
        "site",
        BAD_OPTIONAL_TEXT[1:],
    ),
    ("user name", users.create_user, {"username": "bob"}, "username", (*BAD_TEXT, "Bob", "b", "")),
    ("display name", users.create_user, {"username": "bob"}, "display_name", BAD_TEXT),
    ("email", users.create_user, {"username": "bob"}, "email", (*BAD_TEXT[1:], "not-an-email")),
    ("organisation", users.create_user, {"username": "bob"}, "organisation", BAD_TEXT[1:]),
    (
        "password",
        users.create_user,
        {"username": "bob"},
        "password",
        (*BAD_TEXT[1:], "short", " padded passphrase "),
    ),
    ("get user", users.get_user, {"username": "alice"}, "username", BAD_TEXT),
    ("disable", users.disable_user, {"username": "alice"}, "username", BAD_TEXT),
    (
        "grant user",
        users.grant_role,
        {"username": "alice", "role": "auditor"},
        "username",
        BAD_TEXT,
    ),
    ("grant role", users.grant_role, {"username": "alice", "role": "auditor"}, "role", BAD_TEXT),
    (
        "grant scope",
        users.grant_role,
        {"username": "alice", "role": "steward"},
        "scope",
        BAD_TEXT,
    ),
    (
        "grant external",
        users.grant_role,
        {"username": "alice", "role": "drb_member"},
        "external",
        BAD_FLAG,
    ),
    (
        "grant represents",
        users.grant_role,
        {"username": "alice", "role": "drb_member"},
        "represents_data_subjects",
        BAD_FLAG,
    ),
    ("revoke role", users.revoke_role, {"username": "alice", "role": "auditor"}, "role", BAD_TEXT),
    (
        "revoke scope",
        users.revoke_role,
        {"username": "alice", "role": "auditor"},
        "scope",
        BAD_TEXT[1:],
    ),
    (
        "passwd",
        auth.set_password,
        {"username": "alice", "password": PASSWORD},
        "password",
        (*BAD_TEXT[1:], "short"),
    ),
    (
        "passwd user",
        auth.set_password,
        {"username": "alice", "password": PASSWORD},
        "username",
        BAD_TEXT,
    ),
    (
        "token user",
        tokens.create_token,
        {"username": "alice", "name": "t"},
        "username",
        BAD_TEXT,
    ),
    ("token name", tokens.create_token, {"username": "alice", "name": "t"}, "name", BAD_TEXT),
    ("token ttl", tokens.create_token, {"username": "alice", "name": "t"}, "ttl", BAD_TTL),
    ("token revoke", tokens.revoke_token, {"token_id": 1}, "token_id", BAD_WHOLE),
    ("token list", tokens.list_tokens, {"username": "alice"}, "username", BAD_TEXT),
    (
        "project id",
        projects.create_project,
        {"project_id": "proj-b", "title": "B"},
        "project_id",
        (*BAD_TEXT, "Proj B", "../etc", "p"),
    ),
    (
        "project title",
        projects.create_project,
        {"project_id": "proj-b", "title": "B"},
        "title",
        BAD_TEXT,
    ),
    ("get project", projects.get_project, {"project_id": "proj-a"}, "project_id", BAD_TEXT),
    ("audit after", audit.entries, {"after": 0}, "after", BAD_WHOLE[:4]),
    ("audit limit", audit.entries, {"limit": 10}, "limit", (*BAD_WHOLE, 1001)),
    ("audit export", audit.export, {"out": Path("x")}, "out", ("a-string-path", 5, None)),
]


def hostile_calls() -> Iterator[Any]:
    for label, fn, valid, arg, values in CASES:
        for i, value in enumerate(values):
            yield pytest.param(fn, valid, arg, value, id=f"{label}-{i}")


@pytest.mark.parametrize(("fn", "valid", "arg", "value"), list(hostile_calls()))
def test_hostile_input_is_a_typed_error_and_changes_nothing(shared_pf, fn, valid, arg, value):
    before = snapshot(shared_pf)
    with pytest.raises(PlatformError) as raised:
        fn(shared_pf, OP, **{**valid, arg: value})
    assert raised.value.message
    assert raised.value.hint
    assert snapshot(shared_pf) == before


@pytest.mark.parametrize("by", [None, "system:cli", 7, {"username": "x"}])
def test_a_caller_that_is_no_principal_is_refused(pf, by):
    before = snapshot(pf)
    with pytest.raises(PlatformInputError, match="principal"):
        users.create_user(pf, by, "bob")
    assert snapshot(pf) == before


def test_sql_in_a_text_field_is_stored_as_text(pf):
    name = "Robert'); DROP TABLE users;--"
    made = users.create_user(pf, OP, "bobby", display_name=name)
    assert made.display_name == name
    assert [u.username for u in users.list_users(pf, OP)] == ["alice", "bobby"]


def only_new_rows_are(
    pf: Platform, before: dict[str, list[Any]], tables: set[str], *, updated: str = ""
) -> None:
    """Rows were only added, to ``tables`` (and ``updated`` may have changed in place)."""
    after = snapshot(pf)
    for table, rows in before.items():
        if table in tables:
            assert after[table][: len(rows)] == rows, table
        elif table != updated:
            assert after[table] == rows, table


# --- logins ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password"),
    [(42, PASSWORD), ("alice", None), ("alice", b"bytes"), (HUGE, PASSWORD), ("alice", HUGE)],
)
def test_a_wrong_typed_or_oversized_login_is_refused_before_anything_is_recorded(
    pf, username, password
):
    before = snapshot(pf)
    with pytest.raises(PlatformInputError):
        auth.login(pf, username, password)
    assert snapshot(pf) == before


def test_a_password_spray_locks_every_account_it_touches_and_records_every_try(pf):
    for name in ("bob", "carol"):
        users.create_user(pf, OP, name, password=PASSWORD)
    before = snapshot(pf)
    tries = 0
    for guess in range(5):
        for name in ("alice", "bob", "carol"):
            tries += 1
            with pytest.raises(AuthenticationError):  # LockedOutError is one too
                auth.login(pf, name, f"common password {guess}")
    for name in ("alice", "bob", "carol"):
        with pytest.raises(LockedOutError):
            auth.login(pf, name, PASSWORD)
    only_new_rows_are(
        pf, before, {"login_attempts", "audit_entries", "audit_checkpoints"}, updated="users"
    )
    assert all(u.locked_until for u in users.list_users(pf, OP))
    with pf.db.read() as s:
        outcomes = s.scalars(select(LoginAttempt.outcome)).all()
    assert (outcomes.count("bad_password"), outcomes.count("locked")) == (tries, 3)


# --- tokens ----------------------------------------------------------------------------


def garbage_tokens(real: str) -> list[str]:
    return [
        "",
        "Bearer " + real,
        real[:-1] + ("A" if real[-1] != "A" else "B"),  # one character off
        real.upper(),
        real + " ",
        "pmh_" + secrets.token_urlsafe(32),  # well-formed, never issued
        "' OR '1'='1",
        "\x00" * 10,
        "😀" * 50,
        "x" * tokens.MAX_TOKEN_LENGTH,
    ]


def test_garbage_tokens_are_refused_and_only_the_refusal_is_recorded(pf):
    real = tokens.create_token(pf, OP, "alice", "real").secret
    for garbage in garbage_tokens(real):
        before = snapshot(pf)
        with pytest.raises(AuthenticationError, match="unknown token"):
            tokens.resolve(pf, garbage)
        only_new_rows_are(pf, before, {"audit_entries", "audit_checkpoints"})
    with pf.db.read() as s:
        details = s.scalars(select(AuditEntry.details).where(AuditEntry.action == "auth.token"))
        assert real not in " ".join(details)
    assert tokens.resolve(pf, real).username == "alice"


@pytest.mark.parametrize(
    "value", [None, 42, b"pmh_x", ["pmh_x"], "x" * (tokens.MAX_TOKEN_LENGTH + 1)]
)
def test_a_wrong_typed_or_oversized_token_is_an_input_error_and_changes_nothing(pf, value):
    before = snapshot(pf)
    with pytest.raises(PlatformInputError):
        tokens.resolve(pf, value)
    assert snapshot(pf) == before


def test_expired_revoked_and_disabled_users_tokens_are_all_refused(pf):
    clock = pf.clock
    assert isinstance(clock, FakeClock)
    short = tokens.create_token(pf, OP, "alice", "short", ttl=dt.timedelta(minutes=1)).secret
    revoked = tokens.create_token(pf, OP, "alice", "revoked")
    tokens.revoke_token(pf, OP, revoked.id)
    users.create_user(pf, OP, "gone")
    gone = tokens.create_token(pf, OP, "gone", "t").secret
    users.disable_user(pf, OP, "gone")
    clock.advance(minutes=2)
    for secret, why in ((short, "expired"), (revoked.secret, "revoked"), (gone, "revoked")):
        with pytest.raises(AuthenticationError, match=why):
            tokens.resolve(pf, secret)
