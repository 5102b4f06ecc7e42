"""Who may do what: every authorization rule of the platform, in one place.

A rule is a named predicate over the principal and the resource's context (its project,
its site, its owner, the application's state). Front doors name the rule of each
operation (``require("review.irb", principal, ctx)``); the API's authorization-matrix test
reads :func:`rules` to check that every endpoint declares a rule that exists.

Only rules marked ``operator`` let the local operator (``roles.operator()``, the person
holding PMHUB_HOME) through: administration, yes; reading a project's data, never.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from pmhub.platform.errors import Forbidden
from pmhub.platform.roles import Principal, Role


@dataclasses.dataclass(frozen=True)
class Context:
    """What the rule may look at about the resource acted on."""

    project_id: str | None = None
    site: str | None = None
    owner_id: int | None = None  # the user the resource belongs to (an applicant, a token's)
    application_state: str | None = None


Test = Callable[[Principal, Context], bool]


@dataclasses.dataclass(frozen=True)
class Check:
    """A predicate with the words that explain it when it fails."""

    text: str
    test: Test

    def __or__(self, other: Check) -> Check:
        return Check(
            f"{self.text} or {other.text}", lambda p, c: self.test(p, c) or other.test(p, c)
        )

    def __and__(self, other: Check) -> Check:
        return Check(
            f"{self.text}, and {other.text}", lambda p, c: self.test(p, c) and other.test(p, c)
        )

    def __call__(self, principal: Principal, ctx: Context) -> bool:
        return self.test(principal, ctx)


def role(r: Role) -> Check:
    return Check(f"role {r}", lambda p, c: p.has(r))


def member() -> Check:
    return Check(
        "membership of the project",
        lambda p, c: c.project_id is not None and p.has(Role.PROJECT_MEMBER, project=c.project_id),
    )


def not_member() -> Check:
    return Check(
        "not being a member of the project (independence)",
        lambda p, c: (
            not (c.project_id is not None and p.has(Role.PROJECT_MEMBER, project=c.project_id))
        ),
    )


def at_site(r: Role) -> Check:
    return Check(
        f"role {r} for the site", lambda p, c: c.site is not None and p.has(r, site=c.site)
    )


def own() -> Check:
    return Check("being its owner", lambda p, c: p.user_id is not None and p.user_id == c.owner_id)


def not_own() -> Check:
    return Check("not being its owner", lambda p, c: p.user_id is None or p.user_id != c.owner_id)


def state_in(*states: str) -> Check:
    return Check(
        f"the application being {' or '.join(states)}",
        lambda p, c: c.application_state in states,
    )


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: Check
    operator: bool = False


ADMIN = role(Role.PLATFORM_ADMIN)
AUDITOR = role(Role.AUDITOR)
REVIEWERS = (
    role(Role.IRB_REVIEWER)
    | role(Role.DRB_MEMBER)
    | Check("a steward's role", lambda p, c: p.has_any_scope(Role.STEWARD))
    | Check(
        "a pseudonymization officer's role",
        lambda p, c: p.has_any_scope(Role.PSEUDONYMIZATION_OFFICER),
    )
)
INDEPENDENT = not_own() & not_member()

_RULES = (
    Rule("user.manage", "create, disable and list users; grant and revoke roles", ADMIN, True),
    Rule("user.read", "see users and their roles", own() | ADMIN | AUDITOR, True),
    Rule("user.passwd", "set a user's password", own() | ADMIN, True),
    Rule("org.manage", "create organisations", ADMIN, True),
    Rule("token.create", "create an API token for a user", own() | ADMIN, True),
    Rule("token.revoke", "revoke a user's API token", own() | ADMIN, True),
    Rule("project.create", "start a project", role(Role.APPLICANT) | ADMIN, True),
    Rule("project.read", "see a project", member() | ADMIN | AUDITOR | REVIEWERS),
    Rule("application.create", "draft a data-use application", role(Role.APPLICANT)),
    Rule(
        "application.edit",
        "change a draft or returned application",
        own() & state_in("draft", "returned"),
    ),
    Rule("application.submit", "submit (or resubmit) one's application", own()),
    Rule("application.read", "see an application", own() | member() | ADMIN | AUDITOR | REVIEWERS),
    Rule("review.irb", "record the IRB decision", role(Role.IRB_REVIEWER) & INDEPENDENT),
    Rule("review.drb", "vote in the data review committee", role(Role.DRB_MEMBER) & INDEPENDENT),
    Rule("site.approve", "release a site's part of the data", at_site(Role.STEWARD) & INDEPENDENT),
    Rule("extraction.run", "start or retry a site's extraction", at_site(Role.STEWARD) | ADMIN),
    Rule(
        "adequacy.signoff",
        "sign the pseudonymization adequacy review",
        at_site(Role.PSEUDONYMIZATION_OFFICER) & INDEPENDENT,
    ),
    Rule("application.revoke", "revoke an approved application", ADMIN),
    Rule("application.close", "close an application", own() | ADMIN),
    Rule("workspace.query", "run read-only SQL in the project's workspace", member()),
    Rule("workspace.files", "list and read the project's workspace files", member()),
    Rule("output.request", "ask for a result to be released", member()),
    Rule(
        "output.check",
        "approve, return or reject an output",
        role(Role.OUTPUT_CHECKER) & INDEPENDENT,
    ),
    Rule("output.download", "download a released output", member()),
    Rule("job.read", "see a job's progress", ADMIN | at_site(Role.STEWARD) | member()),
    Rule("audit.read", "read, verify and export the audit trail", AUDITOR | ADMIN, True),
    Rule("audit.checkpoint", "sign a checkpoint of the audit trail", AUDITOR | ADMIN, True),
)
RULES: dict[str, Rule] = {r.name: r for r in _RULES}


def rules() -> list[Rule]:
    """Every rule, for the authorization-matrix test and the API's documentation."""
    return list(_RULES)


def rule(name: str) -> Rule:
    try:
        return RULES[name]
    except KeyError:
        # A misspelt rule in code: fail loudly at once, never fall through to "allowed".
        raise LookupError(f"no authorization rule named {name!r}") from None


def allows(name: str, principal: Principal, ctx: Context | None = None) -> bool:
    found = rule(name)
    if principal.system:
        return found.operator
    return found.check(principal, ctx or Context())


def require(name: str, principal: Principal, ctx: Context | None = None) -> None:
    """Return if ``principal`` may do ``name`` on the resource; else raise :class:`Forbidden`."""
    if allows(name, principal, ctx):
        return
    found = rule(name)
    needs = "the operator may not do this" if principal.system else f"it needs {found.check.text}"
    raise Forbidden(f"{principal.actor} may not {found.description} ({name}): {needs}", rule=name)
