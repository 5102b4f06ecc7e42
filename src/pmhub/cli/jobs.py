"""`pmhub worker` and `pmhub jobs …`: the workers that run long jobs, and their records."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pmhub.cli import common

app = typer.Typer(help="Long jobs: their state and progress.", no_args_is_help=True)


def worker(
    workers: Annotated[int, typer.Option(help="Jobs run at once.", min=1, max=32)] = 1,
    recover_after: Annotated[
        float,
        typer.Option(
            help="Seconds without a heartbeat after which a running job counts as abandoned "
            "and is queued again (0: every running job, right for a single worker)."
        ),
    ] = 0.0,
) -> None:
    """Run queued jobs (extractions, sweeps) until stopped with Ctrl-C or SIGTERM."""
    import datetime as dt

    from pmhub.platform.core import open_platform
    from pmhub.safezone import jobs

    settings = common.settings()
    jobs.preload()
    platform = open_platform(settings)
    queue = jobs.make_queue(settings)
    again = jobs.recover(platform, queue, stale_after=dt.timedelta(seconds=recover_after))
    platform.close()
    if again:
        common.err_console.print(f"queued again {len(again)} job(s) left unfinished: {again}")
    common.err_console.print(
        f"pmhub worker: {workers} at once, queue {jobs.queue_location(settings)}"
    )
    queue.consumer(workers).run()


@app.command("probe")
def jobs_probe(
    steps: Annotated[int, typer.Option(help="Steps of the probe job.", min=1, max=1000)] = 3,
    key: Annotated[str, typer.Option(help="The job's key; the same key is the same job.")] = "",
) -> None:
    """Queue a harmless job that a running `pmhub worker` should finish in seconds."""
    import uuid

    from pmhub.platform.core import open_platform
    from pmhub.safezone import jobs

    settings = common.settings()
    platform = open_platform(settings)
    try:
        made = jobs.enqueue(
            platform,
            jobs.make_queue(settings),
            key=key or f"probe/{uuid.uuid4().hex[:12]}",
            kind="probe",
            payload={"steps": steps},
        )
    finally:
        platform.close()
    common.console.print(f"job {made.id} ({made.key}): {made.state}")


@app.command("list")
def jobs_list() -> None:
    """Every job with its state, progress and attempts."""
    from pmhub.platform.core import open_platform
    from pmhub.safezone import jobs

    platform = open_platform(common.settings())
    try:
        found = jobs.list_jobs(platform)
    finally:
        platform.close()
    table = Table("id", "key", "kind", "state", "progress", "attempts", "error")
    for job in found:
        table.add_row(
            str(job.id),
            job.key,
            job.kind,
            job.state,
            f"{job.progress:.0%}",
            str(job.attempts),
            (job.error or "")[:80],
        )
    common.console.print(table)
