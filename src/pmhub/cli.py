"""The ``pmhub`` command: a thin front door; every verb calls a service function."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
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


# --- quality ---------------------------------------------------------------------------

quality_app = typer.Typer(
    help="Data quality: Achilles-style profiles and DQD-style checks of a site's CDW.",
    no_args_is_help=True,
)
app.add_typer(quality_app, name="quality")

HtmlOption = Annotated[Path, typer.Option("--html", help="The HTML file to write.")]


def _as_of(text: str | None) -> dt.date | None:
    from pmhub.quality.errors import QualityError

    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise QualityError(
            f"--as-of {text[:40]!r} is not a date", hint="Write it as YYYY-MM-DD."
        ) from None


@quality_app.command("run")
def quality_run(
    site: SiteOption,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the results JSON into this folder.")
    ] = None,
    checks: Annotated[
        Path | None, typer.Option("--checks", help="A check file (default: the shipped one).")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Dates after this day are implausible (default: today)."),
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Most frequent concepts per table.")] = 20,
) -> None:
    """Profile the site's CDW and run every check; store the results."""
    from pmhub.quality import service

    with _count_progress() as bar:
        tasks: dict[str, TaskID] = {}

        def report(phase: str, done: int, total: int, what: str) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total, what="")
            bar.update(tasks[phase], completed=done, total=total, what=what)

        run = service.run_quality(
            site, out_dir=out, check_file=checks, as_of=_as_of(as_of), top_n=top, progress=report
        )
    table = Table("category", "passed", "failed", "not applicable", "could not run")
    for category, counts in run.document["summary"].items():
        table.add_row(
            category,
            str(counts["pass"]),
            f"[red]{counts['fail']}[/]" if counts["fail"] else "0",
            str(counts["not_applicable"]),
            str(counts["error"]),
        )
    console.print(table)
    for check in run.failed[:20]:
        console.print(
            f"  [red]failed[/] {check['id']}: {check['violated']:,} of {check['denominator']:,} "
            f"({check['pct_violated']:.2f} % > {check['threshold']:g} %)",
            highlight=False,
        )
    if len(run.failed) > 20:
        console.print(f"  … and {len(run.failed) - 20} more (see the report)")
    console.print(f"site [bold]{site}[/]: run {run.run_id} stored in {run.path}")
    if run.copy is not None:
        console.print(f"  copy: {run.copy}")


@quality_app.command("report")
def quality_report(
    site: SiteOption,
    html: HtmlOption,
    run: Annotated[str | None, typer.Option("--run", help="Run id (default: the latest).")] = None,
) -> None:
    """Write a site's stored run as one self-contained HTML report."""
    from pmhub.quality import service

    path = service.write_report(site, html, run_id=run)
    console.print(f"site [bold]{site}[/]: report written to {path}")


@quality_app.command("compare")
def quality_compare(
    sites: Annotated[str, typer.Option("--sites", help="Sites to compare: A,B,C.")],
    html: HtmlOption,
) -> None:
    """Put the latest runs of several sites side by side and highlight what differs."""
    from pmhub.quality import service

    path = service.write_comparison(sites.split(","), html)
    console.print(f"comparison of {sites} written to {path}")


@quality_app.command("runs")
def quality_runs(site: SiteOption) -> None:
    """List a site's stored quality runs."""
    from pmhub.quality import service

    runs = service.list_runs(site)
    if not runs:
        console.print(f"site {site} has no quality run yet; run `pmhub quality run --site {site}`")
        return
    table = Table("run", "finished", "failed checks")
    for entry in runs:
        failed = sum(c.get("fail", 0) for c in entry.get("summary", {}).values())
        table.add_row(str(entry["run_id"]), str(entry["finished_at"]), str(failed))
    console.print(table)


def _count_progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[what]}"),
        console=err_console,
        transient=False,
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
