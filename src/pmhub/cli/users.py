"""`pmhub users …`: organisations, users, roles and API tokens of the platform.

The command line acts as the home's operator (whoever can read PMHUB_HOME): it may
administer, and every change it makes is on the audit trail as ``system:cli:<os user>``.
Passwords are read from standard input, never from arguments (they would stay in the
shell's history and in ``ps``).
"""

from __future__ import annotations

import getpass
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pmhub.cli import common

if TYPE_CHECKING:
    from pmhub.platform.core import Platform
    from pmhub.platform.roles import Principal

app = typer.Typer(help="Users, roles and API tokens of the platform.", no_args_is_help=True)

UserArg = Annotated[str, typer.Argument(help="Username (lowercase letters, digits, . _ -).")]
RoleArg = Annotated[
    str,
    typer.Argument(
        help="applicant, project_member, irb_reviewer, drb_member, steward, "
        "pseudonymization_officer, output_checker, platform_admin or auditor."
    ),
]
ScopeOption = Annotated[
    str | None,
    typer.Option(help="A site (steward, officer) or a project id (project_member)."),
]


def operator() -> Principal:
    from pmhub.platform.roles import operator as principal

    who = re.sub(r"[^a-z0-9._-]", "_", getpass.getuser().lower())[:40] or "unknown"
    return principal(f"cli:{who}")


@contextmanager
def platform() -> Iterator[Platform]:
    """The home's platform state, created or upgraded on first use."""
    from pmhub.platform.core import opened

    with opened(common.settings()) as pf:
        yield pf


def read_password(confirm: bool = True) -> str:
    """A password from the terminal (asked twice), or one line of piped input."""
    if sys.stdin.isatty():
        return str(typer.prompt("password", hide_input=True, confirmation_prompt=confirm))
    return sys.stdin.readline().rstrip("\r\n")


@app.command("org-add")
def users_org_add(
    name: Annotated[str, typer.Argument(help="Organisation name.")],
    kind: Annotated[str, typer.Option(help="hospital, company, university or data_center.")],
    site: Annotated[str | None, typer.Option(help="The site a hospital runs.")] = None,
) -> None:
    """Register an organisation (a hospital with its site, a company, a university…)."""
    from pmhub.platform import users

    with platform() as pf:
        org = users.create_organisation(pf, operator(), name, kind, site=site)
    common.console.print(f"added organisation [bold]{org.name}[/] ({org.kind})")


@app.command("add")
def users_add(
    username: UserArg,
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,
    org: Annotated[str | None, typer.Option("--org", help="Organisation (see org-add).")] = None,
    password: Annotated[
        bool, typer.Option("--password", help="Set a password now (asked, or read from stdin).")
    ] = False,
) -> None:
    """Create a user without roles (grant them with `pmhub users grant`)."""
    from pmhub.platform import users

    secret = read_password() if password else None
    with platform() as pf:
        user = users.create_user(
            pf, operator(), username, display_name=name, email=email, organisation=org,
            password=secret,
        )  # fmt: skip
    common.console.print(f"added user [bold]{user.username}[/]")


@app.command("list")
def users_list() -> None:
    """List users, their organisations and roles."""
    from pmhub.platform import users

    with platform() as pf:
        found = users.list_users(pf, operator())
    if not found:
        common.console.print("no users yet; add one with `pmhub users add NAME`")
        return
    table = Table("user", "name", "organisation", "roles", "state")
    for u in found:
        state = "disabled" if u.disabled else ("locked" if u.locked_until else "active")
        roles = ", ".join(g.label() for g in u.grants) or "-"
        table.add_row(u.username, u.display_name, u.organisation or "-", roles, state)
    common.console.print(table)


@app.command("disable")
def users_disable(username: UserArg) -> None:
    """Disable a user: no more logins, and every token of theirs is revoked."""
    from pmhub.platform import users

    with platform() as pf:
        users.disable_user(pf, operator(), username)
    common.console.print(f"disabled [bold]{username}[/] and revoked their tokens")


@app.command("passwd")
def users_passwd(username: UserArg) -> None:
    """Set a user's password (asked, or read from stdin); this also lifts a lockout."""
    from pmhub.platform import auth

    secret = read_password()
    with platform() as pf:
        auth.set_password(pf, operator(), username, secret)
    common.console.print(f"set the password of [bold]{username}[/]")


@app.command("grant")
def users_grant(
    username: UserArg,
    role: RoleArg,
    scope: ScopeOption = None,
    external: Annotated[bool, typer.Option(help="DRB: a member from outside.")] = False,
    represents_data_subjects: Annotated[
        bool, typer.Option(help="DRB: the member who speaks for the data subjects.")
    ] = False,
) -> None:
    """Give a user a role, for a site or a project where the role needs one."""
    from pmhub.platform import users

    with platform() as pf:
        grant = users.grant_role(
            pf, operator(), username, role, scope=scope, external=external,
            represents_data_subjects=represents_data_subjects,
        )  # fmt: skip
    common.console.print(f"[bold]{username}[/] now holds {grant.label()}")


@app.command("revoke-role")
def users_revoke_role(username: UserArg, role: RoleArg, scope: ScopeOption = None) -> None:
    """Take a role away (the grant stays on record, with who revoked it and when)."""
    from pmhub.platform import users

    with platform() as pf:
        grant = users.revoke_role(pf, operator(), username, role, scope=scope)
    common.console.print(f"[bold]{username}[/] no longer holds {grant.label()}")


@app.command("token-create")
def users_token_create(
    username: UserArg,
    name: Annotated[str, typer.Option(help="What the token is for.")] = "api",
    days: Annotated[int, typer.Option(help="Days until it expires (1-366).")] = 90,
) -> None:
    """Create an API bearer token; its secret is printed this once and never stored."""
    import datetime as dt

    from pmhub.platform import tokens
    from pmhub.platform.errors import PlatformInputError

    if not 1 <= days <= 366:
        raise PlatformInputError(f"--days must be from 1 to 366, not {days}")
    with platform() as pf:
        token = tokens.create_token(pf, operator(), username, name, ttl=dt.timedelta(days=days))
    common.err_console.print(
        f"token {token.id} for {username}, expires {token.expires_at:%Y-%m-%d %H:%M} UTC; "
        "the secret below is shown only now:"
    )
    common.console.print(token.secret, highlight=False, soft_wrap=True)


@app.command("token-list")
def users_token_list(username: UserArg) -> None:
    """List a user's tokens (never their secrets)."""
    from pmhub.platform import tokens

    with platform() as pf:
        found = tokens.list_tokens(pf, operator(), username)
    table = Table("id", "name", "kind", "expires (UTC)", "last used (UTC)", "state")
    for t in found:
        last = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "-"
        state = "revoked" if t.revoked else "active"
        table.add_row(str(t.id), t.name, t.kind, f"{t.expires_at:%Y-%m-%d %H:%M}", last, state)
    common.console.print(table)


@app.command("token-revoke")
def users_token_revoke(
    token_id: Annotated[int, typer.Argument(help="Token id (see token-list).")],
) -> None:
    """Revoke an API token at once."""
    from pmhub.platform import tokens

    with platform() as pf:
        tokens.revoke_token(pf, operator(), token_id)
    common.console.print(f"revoked token {token_id}")
