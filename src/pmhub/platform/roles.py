"""Roles, role grants and the principal a request acts as (no database here)."""

from __future__ import annotations

import dataclasses
import enum


class Role(enum.StrEnum):
    APPLICANT = "applicant"
    PROJECT_MEMBER = "project_member"
    IRB_REVIEWER = "irb_reviewer"
    DRB_MEMBER = "drb_member"
    STEWARD = "steward"
    PSEUDONYMIZATION_OFFICER = "pseudonymization_officer"
    OUTPUT_CHECKER = "output_checker"
    PLATFORM_ADMIN = "platform_admin"
    AUDITOR = "auditor"


class ScopeKind(enum.StrEnum):
    SITE = "site"
    PROJECT = "project"


@dataclasses.dataclass(frozen=True)
class ScopeRule:
    kind: ScopeKind | None
    required: bool


# Which scope a role takes: a steward speaks for one hospital, a member works in one project;
# an officer may be the data center's (any site) or one hospital's.
SCOPES: dict[Role, ScopeRule] = {
    Role.APPLICANT: ScopeRule(None, False),
    Role.PROJECT_MEMBER: ScopeRule(ScopeKind.PROJECT, True),
    Role.IRB_REVIEWER: ScopeRule(None, False),
    Role.DRB_MEMBER: ScopeRule(None, False),
    Role.STEWARD: ScopeRule(ScopeKind.SITE, True),
    Role.PSEUDONYMIZATION_OFFICER: ScopeRule(ScopeKind.SITE, False),
    Role.OUTPUT_CHECKER: ScopeRule(None, False),
    Role.PLATFORM_ADMIN: ScopeRule(None, False),
    Role.AUDITOR: ScopeRule(None, False),
}


@dataclasses.dataclass(frozen=True)
class Grant:
    role: Role
    scope: str | None = None
    external: bool = False  # DRB: from outside the data center
    represents_data_subjects: bool = False  # DRB: speaks for the patients

    @property
    def scope_kind(self) -> ScopeKind | None:
        return SCOPES[self.role].kind if self.scope is not None else None

    def covers(self, *, site: str | None = None, project: str | None = None) -> bool:
        """Whether this grant reaches the given site or project (unscoped reaches all)."""
        if self.scope is None:
            return True
        wanted = site if self.scope_kind is ScopeKind.SITE else project
        return wanted is not None and wanted == self.scope

    def label(self) -> str:
        marks = (("external", self.external), ("data subjects", self.represents_data_subjects))
        flags = [name for name, on in marks if on]
        scope = f"@{self.scope_kind}:{self.scope}" if self.scope is not None else ""
        return f"{self.role}{scope}" + (f" ({', '.join(flags)})" if flags else "")


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who acts: a user with their grants, or the local operator at the command line."""

    username: str
    user_id: int | None = None
    grants: tuple[Grant, ...] = ()
    system: bool = False

    @property
    def actor(self) -> str:
        return f"system:{self.username}" if self.system else f"user:{self.username}"

    def has(self, role: Role, *, site: str | None = None, project: str | None = None) -> bool:
        return any(g.role is role and g.covers(site=site, project=project) for g in self.grants)

    def has_any_scope(self, role: Role) -> bool:
        return any(g.role is role for g in self.grants)


def operator(name: str = "cli") -> Principal:
    """The operator of the platform home: whoever can read PMHUB_HOME holds its keys."""
    return Principal(username=name, system=True)
