"""`pmhub request|review|workspace|output …`: the safe zone's steps at the command line.

A person acts with their own API token (`--token`, or PMHUB_TOKEN; `pmhub users
token-create` makes one), so the CLI is held to the same rules and leaves the same audit
entries as the API: these verbs call the very service functions the routes call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from pmhub.cli import common

if TYPE_CHECKING:
    from pmhub.platform.core import Platform
    from pmhub.platform.roles import Principal

request_app = typer.Typer(
    help="Data-use applications: draft, submit, follow.", no_args_is_help=True
)
review_app = typer.Typer(
    help="Reviews and approvals: IRB, DRB votes, site stewards, adequacy sign-off.",
    no_args_is_help=True,
)
workspace_app = typer.Typer(
    help="A project's closed workspace: tables, queries, files.", no_args_is_help=True
)
output_app = typer.Typer(help="Outputs: ask for release, check, download.", no_args_is_help=True)

TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="PMHUB_TOKEN", help="Your API token (or PMHUB_TOKEN)."),
]
# ids are 64-bit keys: a larger number is a usage error here, not a database overflow
MAX_ID = 2**63 - 1
AppArg = Annotated[
    int, typer.Argument(help="Application id (see `pmhub request list`).", min=1, max=MAX_ID)
]
ProjectArg = Annotated[str, typer.Argument(help="Project id.")]
ReasonOption = Annotated[str | None, typer.Option(help="Why (needed to return or refuse).")]


@contextmanager
def acting(token: str | None) -> Iterator[tuple[Platform, Principal]]:
    """The platform state and the person the token stands for."""
    from pmhub.platform import tokens
    from pmhub.platform.core import open_platform
    from pmhub.platform.errors import AuthenticationError

    if not token:
        raise AuthenticationError(
            "this verb acts as a person: give your API token",
            hint="Pass --token or set PMHUB_TOKEN (a platform admin makes one with "
            "`pmhub users token-create USER`).",
        )
    pf = open_platform(common.settings())
    try:
        yield pf, tokens.resolve(pf, token)
    finally:
        pf.close()


def show_json(value: Any) -> None:
    common.console.print_json(json.dumps(value, default=str, ensure_ascii=False))


def show_application(found: Any) -> None:
    data = found.as_dict()
    common.console.print(
        f"application [bold]{data['id']}[/] ({data['project_id']}): {data['status']}"
        f" — {data['title']}"
    )
    table = Table("site", "phase", "steward", "reason")
    for site, progress in data["sites"].items():
        table.add_row(site, progress["phase"], progress["steward"] or "", progress["reason"] or "")
    common.console.print(table)


# --- request ------------------------------------------------------------------------------


@request_app.command("project-create")
def project_create(
    project: ProjectArg,
    title: Annotated[str, typer.Option(help="The project's title.")],
    token: TokenOption = None,
) -> None:
    """Start a project (an applicant's, before its first application)."""
    from pmhub.platform import projects

    with acting(token) as (pf, by):
        made = projects.create_project(pf, by, project, title)
    common.console.print(f"project [bold]{made.id}[/] created")


@request_app.command("draft")
def request_draft(
    project: ProjectArg,
    body: Annotated[Path, typer.Option(help="The application as JSON or YAML.")],
    irb: Annotated[Path | None, typer.Option(help="The IRB approval (PDF, PNG, JPEG).")] = None,
    token: TokenOption = None,
) -> None:
    """Draft an application from a file (purpose, plan, sites, cohort, variables, period)."""
    from pmhub.safezone import service, upload

    document = _read_document(body)
    with acting(token) as (pf, by):
        if irb is not None:
            with _open(irb) as stream:
                data = upload.read_capped(stream)
            document["irb_document"] = service.store_irb_document(
                pf, by, data, irb.name
            ).model_dump()
        made = service.draft_application(pf, by, project, document)
    show_application(made)


def _read_document(path: Path) -> dict[str, Any]:
    from pmhub.safezone.application import MAX_BODY_BYTES
    from pmhub.safezone.errors import ApplicationInvalidError

    with _open(path) as stream:
        raw = stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ApplicationInvalidError(f"{path} is larger than {MAX_BODY_BYTES:,} bytes")
    try:
        import yaml

        loaded = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ApplicationInvalidError(f"{path} is not UTF-8 JSON or YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise ApplicationInvalidError(f"{path} holds no application object")
    return loaded


@contextmanager
def _open(path: Path) -> Iterator[Any]:
    from pmhub.safezone.errors import ApplicationInvalidError

    try:
        stream = path.open("rb")
    except OSError as exc:
        raise ApplicationInvalidError(f"cannot read {path}: {exc.strerror}") from None
    with stream:
        yield stream


def _step(token: str | None, application: int, kind: str, **fields: Any) -> None:
    from pmhub.safezone import service

    with acting(token) as (pf, by):
        show_application(service.take_step(pf, by, application, kind, **fields))


@request_app.command("submit")
def request_submit(application: AppArg, token: TokenOption = None) -> None:
    """Submit a draft (or resubmit a returned application)."""
    from pmhub.safezone import service

    with acting(token) as (pf, by):
        status = service.get_application(pf, by, application).state.status.value
    _step(token, application, "resubmitted" if status == "returned" else "submitted")


@request_app.command("close")
def request_close(application: AppArg, token: TokenOption = None) -> None:
    """Close an application (its workspace locks)."""
    _step(token, application, "closed")


@request_app.command("show")
def request_show(
    application: AppArg,
    token: TokenOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """An application's state, sites and history."""
    from pmhub.safezone import service

    with acting(token) as (pf, by):
        found = service.get_application(pf, by, application)
    if as_json:
        show_json(found.as_dict())
        return
    show_application(found)
    history = Table("#", "step", "when", "who", "site", "reason")
    for r in found.as_dict()["history"]:
        history.add_row(
            str(r["seq"]), r["kind"], r["at"][:19], r["actor"], r["site"] or "", r["reason"] or ""
        )
    common.console.print(history)


@request_app.command("list")
def request_list(token: TokenOption = None) -> None:
    """The applications you may see."""
    from pmhub.safezone import service

    with acting(token) as (pf, by):
        found = service.list_applications(pf, by)
    table = Table("id", "project", "status", "title")
    for a in found:
        table.add_row(str(a.id), a.project_id, a.state.status.value, a.state.body.title)
    common.console.print(table)


# --- review -------------------------------------------------------------------------------

DECISION_KINDS = {
    ("irb", "approve"): "irb_approved",
    ("irb", "reject"): "irb_rejected",
    ("irb", "return"): "returned",
    ("drb", "return"): "returned",
    ("site", "approve"): "site_approved",
    ("site", "refuse"): "site_refused",
    ("adequacy", "approve"): "adequacy_signed_off",
}


@review_app.command("irb")
def review_irb(
    application: AppArg,
    decision: Annotated[str, typer.Argument(help="approve, reject or return.")],
    reason: ReasonOption = None,
    token: TokenOption = None,
) -> None:
    """Record the IRB's decision."""
    _step(token, application, _kind("irb", decision), reason=reason)


@review_app.command("drb-vote")
def review_drb_vote(
    application: AppArg,
    choice: Annotated[str, typer.Argument(help="approve, reject or abstain.")],
    conflict: Annotated[bool, typer.Option(help="Declare a conflict of interest.")] = False,
    comment: Annotated[str, typer.Option(help="A comment for the record.")] = "",
    token: TokenOption = None,
) -> None:
    """Cast your vote as a member of the data review committee."""
    vote = {"choice": choice, "conflict_of_interest": conflict, "comment": comment}
    _step(token, application, "drb_vote_cast", vote=vote)


@review_app.command("drb-decide")
def review_drb_decide(application: AppArg, token: TokenOption = None) -> None:
    """Close the vote: the decision says which rule of the committee's policy it met."""
    _step(token, application, "drb_decided")


@review_app.command("drb-return")
def review_drb_return(
    application: AppArg, reason: ReasonOption = None, token: TokenOption = None
) -> None:
    """Return the application to the applicant, with a reason."""
    _step(token, application, "returned", reason=reason)


@review_app.command("site")
def review_site(
    application: AppArg,
    site: Annotated[str, typer.Argument(help="Your site.")],
    decision: Annotated[str, typer.Argument(help="approve or refuse.")],
    reason: ReasonOption = None,
    token: TokenOption = None,
) -> None:
    """Release (or refuse) your site's part; an approval starts the site's extraction job."""
    _step(token, application, _kind("site", decision), site=site, reason=reason)


@review_app.command("adequacy")
def review_adequacy(
    application: AppArg,
    site: Annotated[str, typer.Argument(help="The site whose release you reviewed.")],
    token: TokenOption = None,
) -> None:
    """Sign off a site's pseudonymized release after reading its adequacy report."""
    _step(token, application, "adequacy_signed_off", site=site)


def _kind(group: str, decision: str) -> str:
    found = DECISION_KINDS.get((group, decision))
    if found is None:
        allowed = sorted(d for g, d in DECISION_KINDS if g == group)
        raise typer.BadParameter(f"{decision!r}: say {' or '.join(allowed)}")
    return found


# --- workspace ----------------------------------------------------------------------------


@workspace_app.command("tables")
def workspace_tables(project: ProjectArg, token: TokenOption = None) -> None:
    """The delivered tables of a project's workspace."""
    from pmhub.safezone import outputs

    with acting(token) as (pf, by):
        found = outputs.tables(pf, by, project)
    table = Table("table", "rows", "columns")
    for t in found:
        table.add_row(t["name"], f"{t['rows']:,}", ", ".join(c[0] for c in t["columns"]))
    common.console.print(table)


@workspace_app.command("query")
def workspace_query(
    project: ProjectArg,
    sql: Annotated[str, typer.Argument(help="One read-only SELECT.")],
    save_as: Annotated[
        str | None, typer.Option(help="Save the whole result: NAME.csv|parquet.")
    ] = None,
    token: TokenOption = None,
) -> None:
    """Run read-only SQL in the workspace; a preview is shown, the result saved if asked."""
    from pmhub.safezone import outputs

    with acting(token) as (pf, by):
        result = outputs.query(pf, by, project, sql, save_as=save_as)
    table = Table(*(c[0] for c in result["columns"]))
    for row in result["rows"]:
        table.add_row(*("" if v is None else str(v) for v in row))
    common.console.print(table)
    if result.get("saved"):
        common.console.print(f"saved as workspace file {result['saved']['name']}")


@workspace_app.command("files")
def workspace_files(project: ProjectArg, token: TokenOption = None) -> None:
    """The saved results of a project's workspace."""
    from pmhub.safezone import outputs

    with acting(token) as (pf, by):
        found = outputs.files(pf, by, project)
    table = Table("file", "rows", "bytes", "sha256")
    for f in found:
        table.add_row(f["name"], str(f["rows"] or ""), f"{f['bytes']:,}", f["sha256"][:16])
    common.console.print(table)


@workspace_app.command("sweep")
def workspace_sweep() -> None:
    """Lock workspaces whose period of use ended; destroy those past the grace period."""
    from pmhub.platform.core import open_platform
    from pmhub.safezone import outputs

    pf = open_platform(common.settings())
    try:
        done = outputs.sweep(pf)
    finally:
        pf.close()
    common.console.print(
        f"locked: {done['locked'] or 'none'}; destroyed: {done['destroyed'] or 'none'}"
    )


# --- output -------------------------------------------------------------------------------


@output_app.command("request")
def output_request(
    project: ProjectArg,
    file: Annotated[str, typer.Argument(help="A workspace file (see `pmhub workspace files`).")],
    spec: Annotated[
        str, typer.Option(help='Its columns as JSON: {"dimensions": [...], "counts": [...]}.')
    ],
    description: Annotated[str, typer.Option(help="What the output is, for the checkers.")],
    token: TokenOption = None,
) -> None:
    """Ask for a result to be released; the disclosure checks run at once."""
    from pmhub.safezone import outputs

    try:
        parsed = json.loads(spec)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--spec is not JSON: {exc}") from None
    with acting(token) as (pf, by):
        made = outputs.request_output(pf, by, project, file, parsed, description)
    _show_output(made.as_dict())


def _show_output(data: dict[str, Any]) -> None:
    common.console.print(
        f"output [bold]{data['id']}[/] {data['file']}: {data['state']},"
        f" checks say {data['verdict']}"
    )
    for flag in data["report"].get("flags", [])[:20]:
        common.console.print(f"  {flag['rule']}: {flag['reason']}")


@output_app.command("check")
def output_check(
    output: Annotated[int, typer.Argument(help="Output request id.", min=1, max=MAX_ID)],
    decision: Annotated[str, typer.Argument(help="approve, return or reject.")],
    reason: Annotated[str, typer.Option(help="Why: every decision gives one.")],
    token: TokenOption = None,
) -> None:
    """An output checker's decision; two approvals release the output."""
    from pmhub.safezone import outputs

    with acting(token) as (pf, by):
        _show_output(outputs.review_output(pf, by, output, decision, reason).as_dict())


@output_app.command("list")
def output_list(token: TokenOption = None) -> None:
    """Output requests you may see (yours, or a checker's queue)."""
    from pmhub.safezone import outputs

    with acting(token) as (pf, by):
        found = outputs.list_outputs(pf, by)
    table = Table("id", "project", "file", "state", "checks")
    for o in found:
        table.add_row(str(o.id), o.project_id, o.file, o.state, str(o.report.get("verdict")))
    common.console.print(table)


@output_app.command("download")
def output_download(
    output: Annotated[int, typer.Argument(help="A released output's id.", min=1, max=MAX_ID)],
    out: Annotated[Path, typer.Option(help="File to write.")],
    token: TokenOption = None,
) -> None:
    """Download a released output (nothing else ever leaves a workspace)."""
    from pmhub.safezone import outputs

    with acting(token) as (pf, by):
        name, data = outputs.download_output(pf, by, output)
    from pmhub.outputs import write_bytes

    write_bytes(out, data, what="output file")
    common.console.print(f"wrote released output {name} to {out} ({len(data):,} bytes)")
