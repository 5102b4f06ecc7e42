"""The authorization rules: who may do what, on which project, site and state."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmhub.platform import policy
from pmhub.platform.errors import Forbidden
from pmhub.platform.policy import Context
from pmhub.platform.roles import SCOPES, Grant, Principal, Role, ScopeKind, operator

P, Q = "proj-a", "proj-b"


def who(*grants: Grant, user_id: int = 7) -> Principal:
    return Principal(username="u", user_id=user_id, grants=grants)


member_of_p = who(Grant(Role.PROJECT_MEMBER, P))
steward_wonju = who(Grant(Role.STEWARD, "wonju"))
checker = who(Grant(Role.OUTPUT_CHECKER))
checker_in_p = who(Grant(Role.OUTPUT_CHECKER), Grant(Role.PROJECT_MEMBER, P))
admin = who(Grant(Role.PLATFORM_ADMIN))
applicant = who(Grant(Role.APPLICANT))


@pytest.mark.parametrize(
    ("rule", "principal", "ctx", "allowed"),
    [
        ("workspace.query", member_of_p, Context(project_id=P), True),
        ("workspace.query", member_of_p, Context(project_id=Q), False),
        ("workspace.query", member_of_p, Context(), False),
        ("workspace.query", admin, Context(project_id=P), False),  # admins see no data
        ("site.approve", steward_wonju, Context(site="wonju"), True),
        ("site.approve", steward_wonju, Context(site="gangneung"), False),
        ("site.approve", steward_wonju, Context(), False),
        ("output.check", checker, Context(project_id=P), True),
        ("output.check", checker_in_p, Context(project_id=P), False),  # not one's own project
        ("output.check", checker_in_p, Context(project_id=Q), True),
        ("review.irb", who(Grant(Role.IRB_REVIEWER)), Context(owner_id=8), True),
        ("review.irb", who(Grant(Role.IRB_REVIEWER)), Context(owner_id=7), False),
        ("application.edit", applicant, Context(owner_id=7, application_state="draft"), True),
        ("application.edit", applicant, Context(owner_id=7, application_state="submitted"), False),
        ("application.edit", applicant, Context(owner_id=8, application_state="draft"), False),
        ("audit.read", who(Grant(Role.AUDITOR)), Context(), True),
        ("audit.read", member_of_p, Context(), False),
        ("user.passwd", who(), Context(owner_id=7), True),
        ("user.passwd", who(), Context(owner_id=8), False),
        ("user.manage", admin, Context(), True),
        ("user.manage", applicant, Context(), False),
    ],
)
def test_rules(rule, principal, ctx, allowed):
    assert policy.allows(rule, principal, ctx) is allowed


def test_a_refusal_is_a_typed_error_that_names_the_rule_and_what_it_needs():
    with pytest.raises(Forbidden) as refused:
        policy.require("site.approve", steward_wonju, Context(site="gangneung"))
    assert refused.value.rule == "site.approve"
    assert refused.value.http_status == 403
    assert "role steward for the site" in refused.value.message


def test_the_operator_may_administer_but_never_touch_project_data():
    op = operator()
    allowed = {r.name for r in policy.rules() if policy.allows(r.name, op, Context(project_id=P))}
    assert {"user.manage", "audit.read", "audit.checkpoint", "token.create"} <= allowed
    assert not allowed & {"workspace.query", "output.download", "output.check", "site.approve"}


def test_a_misspelt_rule_fails_loudly_instead_of_allowing():
    with pytest.raises(LookupError, match="no authorization rule"):
        policy.require("workspace.qeury", member_of_p, Context(project_id=P))


def test_the_registry_lists_every_rule_once_with_a_description():
    names = [r.name for r in policy.rules()]
    assert len(names) == len(set(names)) == len(policy.RULES)
    assert all(r.description and r.check.text for r in policy.rules())
    needed = {"application.submit", "review.irb", "review.drb", "site.approve", "output.check"}
    assert needed | {"audit.read", "workspace.query", "adequacy.signoff"} <= set(names)


def grants() -> st.SearchStrategy[Grant]:
    def scoped(role: Role) -> st.SearchStrategy[Grant]:
        rule = SCOPES[role]
        values = st.sampled_from([P, Q] if rule.kind is ScopeKind.PROJECT else ["wonju", "sokcho"])
        if rule.kind is None:
            return st.just(Grant(role))
        scopes = values if rule.required else st.none() | values
        return scopes.map(lambda s: Grant(role, s))

    return st.sampled_from(list(Role)).flatmap(scoped)


contexts = st.builds(
    Context,
    project_id=st.none() | st.sampled_from([P, Q]),
    site=st.none() | st.sampled_from(["wonju", "sokcho"]),
    owner_id=st.none() | st.integers(1, 3),
    application_state=st.none() | st.sampled_from(["draft", "returned", "submitted"]),
)


@given(st.lists(grants(), max_size=6), st.integers(1, 3), contexts)
def test_project_data_is_only_for_that_projects_members(gs, user_id, ctx):
    p = Principal("u", user_id, tuple(gs))
    is_member = ctx.project_id is not None and Grant(Role.PROJECT_MEMBER, ctx.project_id) in gs
    for name in ("workspace.query", "workspace.files", "output.request", "output.download"):
        assert policy.allows(name, p, ctx) is is_member


@given(st.lists(grants(), max_size=6), st.integers(1, 3), contexts)
def test_a_checker_or_reviewer_is_never_the_owner_or_a_member(gs, user_id, ctx):
    p = Principal("u", user_id, tuple(gs))
    for name in ("output.check", "review.irb", "review.drb", "site.approve", "adequacy.signoff"):
        if policy.allows(name, p, ctx):
            assert ctx.owner_id != user_id
            assert not (ctx.project_id and p.has(Role.PROJECT_MEMBER, project=ctx.project_id))


@given(st.lists(grants(), max_size=6), contexts)
def test_a_steward_approves_only_their_own_sites(gs, ctx):
    p = Principal("u", 1, tuple(gs))
    if policy.allows("site.approve", p, ctx):
        assert Grant(Role.STEWARD, ctx.site) in gs
