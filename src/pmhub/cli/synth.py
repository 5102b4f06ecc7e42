"""`pmhub synth`: the synthetic hospital network."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from pmhub.cli import common


def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (new or empty).")],
    sites: Annotated[int, typer.Option(help="Hospitals in the network (1-12).")] = 3,
    patients: Annotated[int, typer.Option(help="People in the population.")] = 1_000,
    years: Annotated[int, typer.Option(help="Years of history.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same bytes.")] = 20261122,
    fmt: Annotated[str, typer.Option("--format", "-f", help="omop | synthea-csv | fhir")] = "omop",
    end_year: Annotated[int, typer.Option(help="Last simulated calendar year.")] = 2025,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty output folder.")] = False,
    force: Annotated[bool, typer.Option(help="Allow sizes above the documented limits.")] = False,
    workers: Annotated[
        int, typer.Option(help="Worker processes (output does not depend on it).")
    ] = 2,
) -> None:
    """Generate a synthetic Korean hospital network (Gangwon) with known ground truth."""
    from rich.progress import MofNCompleteColumn

    from pmhub.synth.service import generate

    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=common.err_console) as bar:
        task = bar.add_task("synth (chunks)", total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = generate(
            out,
            sites=sites,
            patients=patients,
            years=years,
            seed=seed,
            fmt=fmt,
            end_year=end_year,
            overwrite=overwrite,
            force=force,
            workers=workers,
            progress=report,
        )
    table = Table("file", "rows", title=f"pmhub synth: {result.format} in {result.folder}")
    for name, rows in sorted(result.rows.items()):
        table.add_row(name, f"{rows:,}")
    common.console.print(table)
