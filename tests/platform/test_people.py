"""People: organisations, users, roles, passwords, logins and tokens, on both backends."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from pmhub.errors import UnknownSiteError
from pmhub.platform import audit, auth, projects, tokens, users
from pmhub.platform.core import Platform
from pmhub.platform.errors import (
    AuthenticationError,
    ConflictError,
    Forbidden,
    LockedOutError,
    NotFoundError,
    PlatformInputError,
)
from pmhub.platform.models import ApiToken, AuditEntry, LoginAttempt, RoleAssignment, User
from pmhub.platform.roles import Grant, Principal, Role
from pmhub.sites import SiteRegistry
from tests.platform.backends import (
    PlatformFixtures,
    PostgresState,
    SqliteState,
    as_operator,
    snapshot,
)

PASSWORD = "a long enough passphrase"
OP = as_operator()


def actions(pf) -> list[tuple[str, str, str]]:
    with pf.db.read() as s:
        rows = s.execute(
            select(AuditEntry.action, AuditEntry.target, AuditEntry.outcome).order_by(
                AuditEntry.seq
            )
        )
        return [tuple(r) for r in rows]


def principal(pf: Platform, username: str) -> Principal:
    with pf.db.read() as s:
        return users.principal_of(s, users.find_user(s, username))


class PeopleSuite(PlatformFixtures):
    @pytest.fixture
    def sites(self, pf):
        registry = SiteRegistry(pf.settings)
        for name in ("wonju", "gangneung"):
            registry.add(name)
        return registry

    # --- users and organisations -------------------------------------------------------

    def test_a_user_is_created_listed_and_disabled(self, pf):
        users.create_organisation(pf, OP, "Wonju Severance", "hospital")
        made = users.create_user(
            pf, OP, "kim.j", display_name="김주연", email="kim@example.org",
            organisation="Wonju Severance", password=PASSWORD,
        )  # fmt: skip
        assert (made.display_name, made.organisation, made.has_password) == (
            "김주연",
            "Wonju Severance",
            True,
        )
        token = auth.login(pf, "kim.j", PASSWORD)
        users.disable_user(pf, OP, "kim.j")
        listed = users.list_users(pf, OP)
        assert [(u.username, u.disabled) for u in listed] == [("kim.j", True)]
        with pytest.raises(AuthenticationError):
            tokens.resolve(pf, token.secret)  # disabling revoked the session
        with pytest.raises(AuthenticationError):
            auth.login(pf, "kim.j", PASSWORD)
        assert [a[0] for a in actions(pf)][:4] == [
            "org.create",
            "user.create",
            "auth.login",
            "user.disable",
        ]

    def test_names_are_unique(self, pf):
        users.create_user(pf, OP, "lee")
        users.create_organisation(pf, OP, "KNU", "university")
        before = snapshot(pf)
        with pytest.raises(ConflictError):
            users.create_user(pf, OP, "lee")
        with pytest.raises(ConflictError):
            users.create_organisation(pf, OP, "KNU", "company")
        assert snapshot(pf) == before

    def test_only_a_hospital_runs_a_site_and_the_site_must_be_registered(self, pf, sites):
        with pytest.raises(PlatformInputError, match="hospital"):
            users.create_organisation(pf, OP, "Acme", "company", site="wonju")
        with pytest.raises(UnknownSiteError):
            users.create_organisation(pf, OP, "Nowhere", "hospital", site="nowhere")
        org = users.create_organisation(pf, OP, "Wonju", "hospital", site="wonju")
        assert (org.kind, org.site) == ("hospital", "wonju")

    def test_a_user_of_an_unknown_organisation_is_refused(self, pf):
        with pytest.raises(NotFoundError, match="organisation"):
            users.create_user(pf, OP, "park", organisation="Missing")
        assert users.list_users(pf, OP) == []

    # --- roles -------------------------------------------------------------------------

    def test_roles_are_granted_with_their_scopes_and_revoked_on_record(self, pf, sites):
        users.create_user(pf, OP, "choi")
        projects.create_project(pf, OP, "sepsis-2026", "Sepsis risk")
        users.grant_role(pf, OP, "choi", "steward", scope="wonju")
        users.grant_role(pf, OP, "choi", "project_member", scope="sepsis-2026")
        users.grant_role(pf, OP, "choi", "drb_member", external=True, represents_data_subjects=True)
        p = principal(pf, "choi")
        assert p.has(Role.STEWARD, site="wonju")
        assert not p.has(Role.STEWARD, site="gangneung")
        assert p.has(Role.PROJECT_MEMBER, project="sepsis-2026")
        assert Grant(Role.DRB_MEMBER, None, True, True) in p.grants
        users.revoke_role(pf, OP, "choi", "steward", scope="wonju")
        assert not principal(pf, "choi").has(Role.STEWARD, site="wonju")
        with pf.db.read() as s:
            revoked = s.scalars(
                select(RoleAssignment).where(RoleAssignment.role == "steward")
            ).one()
        assert (revoked.revoked_by, revoked.revoked_at is not None) == ("system:test", True)

    @pytest.mark.parametrize(
        ("role", "kwargs", "error"),
        [
            ("steward", {}, PlatformInputError),  # a steward speaks for one site
            ("steward", {"scope": "nowhere"}, UnknownSiteError),
            ("project_member", {}, PlatformInputError),
            ("project_member", {"scope": "no-such-project"}, NotFoundError),
            ("auditor", {"scope": "wonju"}, PlatformInputError),
            ("auditor", {"external": True}, PlatformInputError),
            ("overlord", {}, PlatformInputError),
            ("drb_member", {"external": "yes"}, PlatformInputError),
        ],
    )
    def test_a_wrong_grant_is_refused_and_changes_nothing(self, pf, sites, role, kwargs, error):
        users.create_user(pf, OP, "han")
        before = snapshot(pf)
        with pytest.raises(error):
            users.grant_role(pf, OP, "han", role, **kwargs)
        assert snapshot(pf) == before

    def test_a_role_held_already_or_not_held_is_a_typed_error(self, pf):
        users.create_user(pf, OP, "yoon")
        users.grant_role(pf, OP, "yoon", "auditor")
        with pytest.raises(ConflictError):
            users.grant_role(pf, OP, "yoon", "auditor")
        with pytest.raises(NotFoundError):
            users.revoke_role(pf, OP, "yoon", "output_checker")

    def test_only_an_admin_manages_users_and_a_refusal_is_on_record(self, pf):
        users.create_user(pf, OP, "admin", password=PASSWORD)
        users.create_user(pf, OP, "bob", password=PASSWORD)
        users.grant_role(pf, OP, "admin", "platform_admin")
        bob = principal(pf, "bob")
        with pytest.raises(Forbidden) as refused:
            users.create_user(pf, bob, "mallory")
        assert refused.value.rule == "user.manage"
        assert actions(pf)[-1] == ("user.manage", "user:mallory", "denied")
        users.create_user(pf, principal(pf, "admin"), "carol")
        assert [u.username for u in users.list_users(pf, OP)] == ["admin", "bob", "carol"]

    # --- passwords and logins ---------------------------------------------------------

    def test_passwords_are_stored_as_argon2id_hashes_only(self, pf):
        users.create_user(pf, OP, "jung", password=PASSWORD)
        with pf.db.read() as s:
            stored = s.scalars(select(User.password_hash)).one()
        assert stored.startswith("$argon2id$")
        assert PASSWORD not in str(snapshot(pf))

    def test_a_user_sets_their_own_password_but_not_anothers(self, pf):
        users.create_user(pf, OP, "ahn", password=PASSWORD)
        users.create_user(pf, OP, "seo", password=PASSWORD)
        ahn = principal(pf, "ahn")
        auth.set_password(pf, ahn, "ahn", "another long passphrase")
        assert auth.login(pf, "ahn", "another long passphrase").secret
        with pytest.raises(Forbidden):
            auth.set_password(pf, ahn, "seo", "taken over passphrase")
        assert auth.login(pf, "seo", PASSWORD).secret

    def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(self, pf, clock):
        users.create_user(pf, OP, "oh", password=PASSWORD)
        for _ in range(4):
            with pytest.raises(AuthenticationError):
                auth.login(pf, "oh", "wrong guess number one", source="10.0.0.9")
        with pytest.raises(LockedOutError):
            auth.login(pf, "oh", "wrong guess number five", source="10.0.0.9")
        with pytest.raises(LockedOutError):
            auth.login(pf, "oh", PASSWORD, source="10.0.0.9")  # not even the right one
        clock.advance(minutes=15, seconds=1)
        assert auth.login(pf, "oh", PASSWORD, source="10.0.0.9").secret
        with pf.db.read() as s:
            outcomes = s.scalars(select(LoginAttempt.outcome).order_by(LoginAttempt.id)).all()
        assert outcomes == ["bad_password"] * 5 + ["locked", "success"]
        assert ("user.locked", "user:oh", "allowed") in actions(pf)

    def test_a_success_or_a_quiet_quarter_hour_resets_the_count(self, pf, clock):
        users.create_user(pf, OP, "kang", password=PASSWORD)
        for round_ in range(3):
            for _ in range(4):
                with pytest.raises(AuthenticationError):
                    auth.login(pf, "kang", "not the password at all")
            if round_ == 0:
                auth.login(pf, "kang", PASSWORD)
            else:
                clock.advance(minutes=16)
        assert auth.login(pf, "kang", PASSWORD).secret

    def test_many_failures_from_one_source_are_refused_even_for_unknown_names(self, pf):
        for i in range(auth.SOURCE_MAX_FAILURES):
            with pytest.raises(AuthenticationError):
                auth.login(pf, f"nobody{i}", "whatever it is now", source="203.0.113.7")
        users.create_user(pf, OP, "lim", password=PASSWORD)
        with pytest.raises(LockedOutError, match=r"203\.0\.113\.7"):
            auth.login(pf, "lim", PASSWORD, source="203.0.113.7")
        assert auth.login(pf, "lim", PASSWORD, source="198.51.100.1").secret

    def test_a_name_that_is_no_user_is_not_kept(self, pf):
        with pytest.raises(AuthenticationError):
            auth.login(pf, "hunter2-typed-into-the-name-field", PASSWORD)
        assert "hunter2" not in str(snapshot(pf))

    # --- tokens ------------------------------------------------------------------------

    def test_a_token_is_shown_once_and_stored_as_a_hash(self, pf):
        users.create_user(pf, OP, "baek")
        users.grant_role(pf, OP, "baek", "auditor")
        issued = tokens.create_token(pf, OP, "baek", "laptop")
        assert issued.secret.startswith(tokens.PREFIX)
        assert issued.secret not in str(snapshot(pf))
        p = tokens.resolve(pf, issued.secret)
        assert (p.username, p.has(Role.AUDITOR)) == ("baek", True)
        listed = tokens.list_tokens(pf, OP, "baek")
        assert [(t.name, t.revoked, t.last_used_at is not None) for t in listed] == [
            ("laptop", False, True)
        ]

    def test_expired_and_revoked_tokens_are_refused_on_record(self, pf, clock):
        users.create_user(pf, OP, "song")
        short = tokens.create_token(pf, OP, "song", "short", ttl=dt.timedelta(minutes=5))
        revoked = tokens.create_token(pf, OP, "song", "revoked")
        tokens.revoke_token(pf, OP, revoked.id)
        with pytest.raises(ConflictError):
            tokens.revoke_token(pf, OP, revoked.id)
        clock.advance(minutes=6)
        for secret, why in ((short.secret, "expired"), (revoked.secret, "revoked")):
            with pytest.raises(AuthenticationError, match=why):
                tokens.resolve(pf, secret)
        denied = [a for a in actions(pf) if a[0] == "auth.token"]
        assert denied == [
            ("auth.token", f"token:{short.id}", "denied"),
            ("auth.token", f"token:{revoked.id}", "denied"),
        ]

    def test_a_user_revokes_their_own_token_but_not_anothers(self, pf):
        users.create_user(pf, OP, "nam")
        users.create_user(pf, OP, "ryu")
        mine = tokens.create_token(pf, OP, "nam", "mine")
        theirs = tokens.create_token(pf, OP, "ryu", "theirs")
        nam = principal(pf, "nam")
        with pytest.raises(Forbidden):
            tokens.revoke_token(pf, nam, theirs.id)
        tokens.revoke_token(pf, nam, mine.id)
        with pf.db.read() as s:
            revoked = dict(s.execute(select(ApiToken.name, ApiToken.revoked_at.is_not(None))).all())
        assert revoked == {"mine": True, "theirs": False}

    def test_the_trail_of_all_this_verifies(self, pf, sites):
        users.create_user(pf, OP, "moon", password=PASSWORD)
        users.grant_role(pf, OP, "moon", "steward", scope="wonju")
        auth.login(pf, "moon", PASSWORD)
        assert audit.verify(pf, OP).ok


class TestPeopleSqlite(PeopleSuite, SqliteState):
    pass


class TestPeoplePostgres(PeopleSuite, PostgresState):
    pass
