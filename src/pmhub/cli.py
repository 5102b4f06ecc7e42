"""The ``pmhub`` command: a thin front door; every verb calls a service function."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from pmhub import __version__
from pmhub.cdm import schema
from pmhub.errors import PmhubError
from pmhub.settings import Settings, load_settings
from pmhub.sites import Site, SiteRegistry

if TYPE_CHECKING:
    from pmhub.ingest.service import IngestReport

app = typer.Typer(
    name="pmhub",
    help="pmhub — Precision Medicine Hub: OMOP CDWs for a hospital network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
sites_app = typer.Typer(help="Register and list hospital sites.", no_args_is_help=True)
cdm_app = typer.Typer(
    help="Create and inspect a site's OMOP CDM v5.4 schema.", no_args_is_help=True
)
vocab_app = typer.Typer(
    help="Load the standard vocabulary into a site's CDW.", no_args_is_help=True
)
app.add_typer(sites_app, name="sites")
app.add_typer(cdm_app, name="cdm")
app.add_typer(vocab_app, name="vocab")

console = Console()
err_console = Console(stderr=True)

SiteOption = Annotated[
    str, typer.Option("--site", "-s", help="Site name (see `pmhub sites list`).")
]


def settings() -> Settings:
    return load_settings()


def registry() -> SiteRegistry:
    return SiteRegistry(settings())


def version_callback(value: bool) -> None:
    if value:
        console.print(f"pmhub {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    if debug:
        os.environ["PMHUB_DEBUG"] = "1"


# --- sites ------------------------------------------------------------------------------


@sites_app.command("add")
def sites_add(
    name: Annotated[str, typer.Argument(help="Short name: lowercase letters, digits, _.")],
    cdw: Annotated[
        str | None,
        typer.Option(
            help="CDW URL: duckdb:///path.duckdb or postgresql://… (default: DuckDB in PMHUB_HOME)."
        ),
    ] = None,
    title_ko: Annotated[str, typer.Option(help="Korean title.")] = "",
    title_en: Annotated[str, typer.Option(help="English title.")] = "",
) -> None:
    """Register a hospital site and its CDW."""
    site = registry().add(name, cdw, title_ko=title_ko, title_en=title_en)
    console.print(f"added site [bold]{site.name}[/] → {site.cdw_url}")


@sites_app.command("list")
def sites_list() -> None:
    """List the registered sites."""
    sites = registry().list()
    if not sites:
        console.print("no sites yet; add one with `pmhub sites add NAME`")
        return
    table = Table("name", "title (ko)", "title (en)", "CDW")
    for site in sites:
        table.add_row(site.name, site.title_ko, site.title_en, site.cdw_url)
    console.print(table)


@sites_app.command("remove")
def sites_remove(name: Annotated[str, typer.Argument(help="Site name.")]) -> None:
    """Unregister a site. Its CDW is left as it is."""
    site = registry().remove(name)
    console.print(f"removed site [bold]{site.name}[/]; its CDW at {site.cdw_url} was kept")


# --- cdm --------------------------------------------------------------------------------


def _site(name: str) -> Site:
    return registry().get(name)


@cdm_app.command("init")
def cdm_init(site: SiteOption) -> None:
    """Create the OMOP CDM v5.4 schema and load the vocabulary subset (idempotent)."""
    entry = _site(site)
    with entry.connect() as backend:
        result = schema.init_cdm(
            backend,
            source_name=entry.title_en or entry.name,
            abbreviation=entry.name,
            holder=entry.title_ko or entry.title_en or entry.name,
        )
    made = len(result.created_tables)
    console.print(f"site [bold]{site}[/]: CDM v5.4 ready ({made} tables created)")
    if result.vocabulary_rows:
        console.print(
            f"  vocabulary subset loaded: {result.vocabulary_rows.get('concept', 0):,} concepts"
        )


@cdm_app.command("status")
def cdm_status(site: SiteOption) -> None:
    """Row counts per table and the CDM and vocabulary versions."""
    with _site(site).connect() as backend:
        result = schema.status(backend)
    table = Table("table", "rows", title=f"{site}: OMOP CDM {result.cdm_version}")
    for name, rows in result.rows.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    console.print(f"vocabulary: {result.vocabulary_version}; CDW: {result.url}")


# --- vocab ------------------------------------------------------------------------------


@vocab_app.command("load")
def vocab_load(
    folder: Annotated[Path, typer.Argument(help="Unzipped Athena download (CONCEPT.csv, …).")],
    site: SiteOption,
) -> None:
    """Replace the site's vocabulary with a full Athena download (all tables or none)."""
    with _site(site).connect() as backend, _progress() as bar:
        tasks: dict[str, TaskID] = {}

        def report(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.update(tasks[table], completed=done)

        result = schema.load_vocabulary(backend, folder, report)
    for table, rows in result.rows.items():
        console.print(f"  {table}: {rows:,} rows")
    console.print(f"site [bold]{site}[/]: vocabulary loaded from {result.source}")


# --- ingest ---------------------------------------------------------------------------


@app.command("ingest")
def ingest_command(
    path: Annotated[Path, typer.Argument(help="Export folder (or FHIR JSON/NDJSON file).")],
    site: SiteOption,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="synthea-csv, fhir or omop-csv.")
    ] = "synthea-csv",
    allow_quarantine: Annotated[
        bool,
        typer.Option(
            "--allow-quarantine", help="Exit 0 even when rows were set aside in quarantine."
        ),
    ] = False,
    encoding: Annotated[
        str, typer.Option(help="auto (UTF-8, UTF-8 with BOM or CP949), utf-8 or cp949.")
    ] = "auto",
) -> None:
    """Import source data into a site's CDW; print where every source row went."""
    from pmhub.ingest import ingest_site
    from pmhub.ingest.errors import RowsQuarantinedError

    def say(message: str) -> None:
        err_console.print(f"[dim]{message}…[/]", highlight=False)

    report = ingest_site(site, fmt, path, encoding=encoding, allow_quarantine=True, progress=say)
    _print_ingest(site, report)
    if report.quarantined and not allow_quarantine:
        raise RowsQuarantinedError(
            f"{report.quarantined:,} of {report.read:,} source rows were quarantined "
            f"(load {report.load_id}); the other {report.loaded:,} were loaded"
        )


def _print_ingest(site: str, report: IngestReport) -> None:
    files = Table("file", "read", "loaded", "quarantined", "encoding", title="source rows")
    for f in report.files:
        files.add_row(f.file, f"{f.read:,}", f"{f.loaded:,}", f"{f.quarantined:,}", f.encoding)
    files.add_row("total", f"{report.read:,}", f"{report.loaded:,}", f"{report.quarantined:,}", "")
    console.print(files)
    tables = Table("CDM table", "rows written", title="CDM rows")
    for name, rows in report.tables.items():
        tables.add_row(name, f"{rows:,}")
    console.print(tables)
    if report.reasons:
        reasons = Table("file", "field", "reason", "rows", title="quarantined (commonest)")
        for file, field, why, rows in report.reasons:
            reasons.add_row(file, field, why, f"{rows:,}")
        console.print(reasons)
    for name, rows in report.unmapped.items():
        console.print(f"  {name}: {rows:,} rows with codes no vocabulary maps (concept 0)")
    for name, why in report.ignored.items():
        console.print(f"  ignored {name}: {why}")
    state = "already loaded; nothing changed" if report.already_loaded else "loaded"
    console.print(
        f"site [bold]{site}[/]: load {report.load_id} {state} "
        f"(read {report.read:,} = loaded {report.loaded:,} + quarantined {report.quarantined:,})"
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors as one message and a stable exit code, no traceback."""
    try:
        app(args=argv, standalone_mode=False)
    except PmhubError as exc:
        if os.environ.get("PMHUB_DEBUG") == "1" or "--debug" in (argv or sys.argv):
            err_console.print_exception()
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        err_console.print(f"[yellow]hint:[/] {exc.hint}", highlight=False)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
