"""`pmhub ingest`: source data into a site's CDW, every row accounted for."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pmhub.cli import common

if TYPE_CHECKING:
    from pmhub.ingest.service import IngestReport


def ingest_command(
    path: Annotated[Path, typer.Argument(help="Export folder (or FHIR JSON/NDJSON file).")],
    site: common.SiteOption,
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
        common.err_console.print(f"[dim]{message}…[/]", highlight=False)

    report = ingest_site(site, fmt, path, encoding=encoding, allow_quarantine=True, progress=say)
    _print_ingest(site, report)
    if report.quarantined and not allow_quarantine:
        raise RowsQuarantinedError(
            f"{report.quarantined:,} of {report.read:,} source rows were quarantined "
            f"(load {report.load_id}); the other {report.loaded:,} were loaded"
        )


# A FHIR export is a bundle per patient: thousands of files. Past this many, the files are
# summed in one row (those with quarantined rows still shown) and rows go by resource type.
FILES_SHOWN = 20


def _print_ingest(site: str, report: IngestReport) -> None:
    files = Table("file", "read", "loaded", "quarantined", "encoding", title="source rows")
    many = len(report.files) > FILES_SHOWN
    shown = [f for f in report.files if f.quarantined][:FILES_SHOWN] if many else report.files
    for f in shown:
        files.add_row(f.file, f"{f.read:,}", f"{f.loaded:,}", f"{f.quarantined:,}", f.encoding)
    if many:
        rest = len(report.files) - len(shown)
        files.add_row(f"… {rest:,} other files", "", "", "", "")
    files.add_row(
        f"total ({len(report.files):,} files)" if many else "total",
        f"{report.read:,}",
        f"{report.loaded:,}",
        f"{report.quarantined:,}",
        "",
    )
    common.console.print(files)
    if report.stage_rows:
        kinds = Table("resources (as staged)", "loaded", "quarantined", title="FHIR resources")
        for name, (good, bad) in sorted(report.stage_rows.items()):
            kinds.add_row(name, f"{good:,}", f"{bad:,}")
        common.console.print(kinds)
    tables = Table("CDM table", "rows written", title="CDM rows")
    for name, rows in report.tables.items():
        tables.add_row(name, f"{rows:,}")
    common.console.print(tables)
    if report.reasons:
        reasons = Table("file", "field", "reason", "rows", title="quarantined (commonest)")
        for file, field, why, rows in report.reasons:
            reasons.add_row(file, field, why, f"{rows:,}")
        common.console.print(reasons)
    for name, rows in report.unmapped.items():
        common.console.print(f"  {name}: {rows:,} rows with codes no vocabulary maps (concept 0)")
    for name, why in report.ignored.items():
        common.console.print(f"  ignored {name}: {why}")
    for other in report.unfinished:
        common.err_console.print(
            f"[yellow]warning:[/] load {other['load_id']} ({other['format']} from "
            f"{other['source']}) stopped unfinished ({other['status']}) after "
            f"{other['steps']} committed step(s); load the same input again to finish it",
            highlight=False,
        )
    state = "already loaded; nothing changed" if report.already_loaded else "loaded"
    common.console.print(
        f"site [bold]{site}[/]: load {report.load_id} {state} "
        f"(read {report.read:,} = loaded {report.loaded:,} + quarantined {report.quarantined:,})"
    )
