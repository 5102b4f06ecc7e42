"""`pmhub quality …`: profiles and data-quality checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import TaskID
from rich.table import Table

from pmhub.cli import common

app = typer.Typer(
    help="Data quality: Achilles-style profiles and DQD-style checks of a site's CDW.",
    no_args_is_help=True,
)


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


@app.command("run")
def quality_run(
    site: common.SiteOption,
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
    from pmhub.disclosure import note
    from pmhub.quality import service
    from pmhub.quality.suppress import shareable

    with common.count_progress() as bar:
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
    common.console.print(table)
    threshold = common.settings().small_cell_threshold
    shown = {c["id"]: c for c in shareable(run.document, threshold)["checks"]}
    for check in (shown[c["id"]] for c in run.failed[:20]):
        common.console.print(f"  [red]failed[/] {_failed(check)}", highlight=False)
    if len(run.failed) > 20:
        common.console.print(f"  … and {len(run.failed) - 20} more (see the report)")
    if any(shown[c["id"]]["violated"] is None for c in run.failed[:20]):
        common.console.print(note(threshold), style="dim", highlight=False)
    common.console.print(f"site [bold]{site}[/]: run {run.run_id} stored in {run.path}")
    if run.copy is not None:
        common.console.print(f"  copy: {run.copy}")


def _failed(check: dict[str, Any]) -> str:
    """A failed check as the terminal shows it: its counts as released (small ones and
    the percent they give hidden)."""
    from pmhub.disclosure import MARK

    def count(n: int | None) -> str:
        return MARK if n is None else f"{n:,}"

    pct = MARK if check["pct_violated"] is None else f"{check['pct_violated']:.2f}"
    return (
        f"{check['id']}: {count(check['violated'])} of {count(check['denominator'])} "
        f"({pct} % > {check['threshold']:g} %)"
    )


@app.command("report")
def quality_report(
    site: common.SiteOption,
    html: common.HtmlOption,
    run: Annotated[str | None, typer.Option("--run", help="Run id (default: the latest).")] = None,
    exact: Annotated[
        bool,
        typer.Option(
            "--exact",
            help="Site-internal: exact counts, small cells included (keep it at the site).",
        ),
    ] = False,
) -> None:
    """Write a site's stored run as one self-contained HTML report (small cells suppressed,
    unless --exact)."""
    from pmhub.quality import service

    path = service.write_report(site, html, run_id=run, exact=exact)
    common.console.print(f"site [bold]{site}[/]: report written to {path}")


@app.command("compare")
def quality_compare(
    sites: Annotated[str, typer.Option("--sites", help="Sites to compare: A,B,C.")],
    html: common.HtmlOption,
) -> None:
    """Put the latest runs of several sites side by side and highlight what differs."""
    from pmhub.quality import service

    path = service.write_comparison(sites.split(","), html)
    common.console.print(f"comparison of {sites} written to {path}")


@app.command("export")
def quality_export(
    site: common.SiteOption,
    out: Annotated[Path, typer.Option("--out", help="The JSON file to write.")],
    run: Annotated[str | None, typer.Option("--run", help="Run id (default: the latest).")] = None,
) -> None:
    """Write a stored run for sharing outside the site: small cells suppressed."""
    from pmhub.quality import service

    path = service.export_run(site, out, run_id=run)
    common.console.print(f"site [bold]{site}[/]: shareable results written to {path}")


@app.command("runs")
def quality_runs(site: common.SiteOption) -> None:
    """List a site's stored quality runs."""
    from pmhub.quality import service

    runs = service.list_runs(site)
    if not runs:
        common.console.print(
            f"site {site} has no quality run yet; run `pmhub quality run --site {site}`"
        )
        return
    table = Table("run", "finished", "failed checks")
    for entry in runs:
        failed = sum(c.get("fail", 0) for c in entry.get("summary", {}).values())
        table.add_row(str(entry["run_id"]), str(entry["finished_at"]), str(failed))
    common.console.print(table)
