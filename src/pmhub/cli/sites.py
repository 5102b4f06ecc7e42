"""`pmhub sites …`: register and list hospital sites."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pmhub.cli import common

app = typer.Typer(help="Register and list hospital sites.", no_args_is_help=True)


@app.command("add")
def sites_add(
    name: Annotated[str, typer.Argument(help="Short name: lowercase letters, digits, _.")],
    cdw: Annotated[
        str | None,
        typer.Option(
            help="CDW URL: duckdb:///path.duckdb, postgresql://… or spark:///parquet-folder "
            "(default: DuckDB in PMHUB_HOME)."
        ),
    ] = None,
    title_ko: Annotated[str, typer.Option(help="Korean title.")] = "",
    title_en: Annotated[str, typer.Option(help="English title.")] = "",
) -> None:
    """Register a hospital site and its CDW."""
    site = common.registry().add(name, cdw, title_ko=title_ko, title_en=title_en)
    common.console.print(f"added site [bold]{site.name}[/] → {site.cdw_url}")


@app.command("list")
def sites_list() -> None:
    """List the registered sites."""
    sites = common.registry().list()
    if not sites:
        common.console.print("no sites yet; add one with `pmhub sites add NAME`")
        return
    table = Table("name", "title (ko)", "title (en)", "CDW")
    for site in sites:
        table.add_row(site.name, site.title_ko, site.title_en, site.cdw_url)
    common.console.print(table)


@app.command("remove")
def sites_remove(name: Annotated[str, typer.Argument(help="Site name.")]) -> None:
    """Unregister a site. Its CDW is left as it is."""
    site = common.registry().remove(name)
    common.console.print(f"removed site [bold]{site.name}[/]; its CDW at {site.cdw_url} was kept")
