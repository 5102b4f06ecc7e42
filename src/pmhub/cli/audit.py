"""`pmhub audit …`: verify, export and checkpoint the tamper-evident audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pmhub.cli import common
from pmhub.cli.users import operator, platform

if TYPE_CHECKING:
    from pmhub.platform.audit import Verification

app = typer.Typer(
    help="Verify, export and checkpoint the platform's audit trail.", no_args_is_help=True
)


def show(result: Verification, where: str) -> None:
    """Print the outcome; a trail that does not verify exits with its error code."""
    if result.ok:
        head = f", signed head at entry {result.head_seq}" if result.head_seq else ""
        common.console.print(
            f"[green]verified[/] {where}: {result.entries} entries, "
            f"{result.checkpoints} signed checkpoints{head}"
        )
        return
    table = Table("problem", "entry", "what")
    for problem in result.problems:
        table.add_row(problem.kind, str(problem.seq or "-"), problem.message)
    common.console.print(table)
    result.raise_if_broken()


@app.command("verify")
def audit_verify(
    export: Annotated[
        Path | None, typer.Option(help="Verify this export folder instead of the state.")
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(help="The platform's public key (PEM); needed with --export."),
    ] = None,
) -> None:
    """Check the hash chain, the signed checkpoints and the signed head."""
    from pmhub.platform import audit
    from pmhub.platform.errors import PlatformInputError

    if export is not None:
        if public_key is None:
            raise PlatformInputError(
                "--export needs --public-key",
                hint="Verify with the key you hold, not the copy inside the export.",
            )
        show(audit.verify_export(export, public_key), str(export))
        return
    with platform() as pf:
        result = audit.verify(pf, operator(), public_key=public_key)
    show(result, "the platform state")


@app.command("export")
def audit_export(
    out: Annotated[Path, typer.Argument(help="A new folder for the export.")],
) -> None:
    """Write the trail (JSON Lines), its checkpoints, the signed head and the public key."""
    from pmhub.platform import audit

    with platform() as pf:
        done = audit.export(pf, operator(), out)
    common.console.print(
        f"exported {done.entries} entries and {done.checkpoints} checkpoints to {done.folder} "
        f"(key {done.key_id}); verify with `pmhub audit verify --export {done.folder} "
        "--public-key KEY.pem`"
    )


@app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the current head of the trail now."""
    from pmhub.platform import audit

    with platform() as pf:
        cp = audit.checkpoint(pf, operator())
    common.console.print(f"signed entry {cp.seq} ({cp.hash[:16]}…) with key {cp.key_id}")


@app.command("list")
def audit_list(
    after: Annotated[int, typer.Option(help="Show entries after this seq.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many (1-1000).")] = 50,
) -> None:
    """Show entries of the trail."""
    from pmhub.platform import audit

    with platform() as pf:
        found = audit.entries(pf, operator(), after=after, limit=limit)
    table = Table("seq", "at (UTC)", "actor", "action", "target", "outcome", "details")
    for e in found:
        table.add_row(str(e.seq), e.at[:19], e.actor, e.action, e.target, e.outcome, e.details)
    common.console.print(table)
