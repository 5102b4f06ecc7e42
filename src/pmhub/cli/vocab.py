"""`pmhub vocab …`: load the standard vocabulary into a site's CDW."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TaskID

from pmhub.cli import common

app = typer.Typer(help="Load the standard vocabulary into a site's CDW.", no_args_is_help=True)


@app.command("load")
def vocab_load(
    folder: Annotated[Path, typer.Argument(help="Unzipped Athena download (CONCEPT.csv, …).")],
    site: common.SiteOption,
    min_concepts: Annotated[
        int, typer.Option(help="Refuse a download with fewer concepts than this.")
    ] = 1,
    force: Annotated[
        bool, typer.Option("--force", help="Load even a download that is too small or empty.")
    ] = False,
) -> None:
    """Replace the site's vocabulary with a full Athena download (all tables or none)."""
    from pmhub.cdm import schema

    with common.site(site).connect() as backend, common.progress() as bar:
        tasks: dict[str, TaskID] = {}

        def report(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.update(tasks[table], completed=done)

        result = schema.load_vocabulary(
            backend, folder, report, min_concepts=min_concepts, force=force
        )
    for table, rows in result.rows.items():
        common.console.print(f"  {table}: {rows:,} rows")
    common.console.print(f"site [bold]{site}[/]: vocabulary loaded from {result.source}")
