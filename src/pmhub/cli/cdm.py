"""`pmhub cdm …`: create and inspect a site's OMOP CDM v5.4 schema."""

from __future__ import annotations

import typer
from rich.table import Table

from pmhub.cli import common

app = typer.Typer(help="Create and inspect a site's OMOP CDM v5.4 schema.", no_args_is_help=True)


@app.command("init")
def cdm_init(site: common.SiteOption) -> None:
    """Create the OMOP CDM v5.4 schema and load the vocabulary subset (idempotent)."""
    from pmhub.cdm import schema

    entry = common.site(site)
    with entry.connect() as backend:
        result = schema.init_cdm(
            backend,
            source_name=entry.title_en or entry.name,
            abbreviation=entry.name,
            holder=entry.title_ko or entry.title_en or entry.name,
        )
    made = len(result.created_tables)
    common.console.print(f"site [bold]{site}[/]: CDM v5.4 ready ({made} tables created)")
    if result.vocabulary_rows:
        common.console.print(
            f"  vocabulary subset loaded: {result.vocabulary_rows.get('concept', 0):,} concepts"
        )


@app.command("status")
def cdm_status(site: common.SiteOption) -> None:
    """Row counts per table and the CDM and vocabulary versions."""
    from pmhub.cdm import schema

    with common.site(site).connect() as backend:
        result = schema.status(backend)
    table = Table("table", "rows", title=f"{site}: OMOP CDM {result.cdm_version}")
    for name, rows in result.rows.items():
        table.add_row(name, f"{rows:,}")
    common.console.print(table)
    common.console.print(f"vocabulary: {result.vocabulary_version}; CDW: {result.url}")
