"""The ``pmhub`` command: thin front doors, one module per verb group; every verb calls a
service function of its layer.

Verb modules import their layer inside each verb, so that ``pmhub --help`` and a typo'd
verb answer without loading DuckDB, pandas or SciPy.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated

import typer

from pmhub import __version__, interrupts
from pmhub.cli import (
    audit,
    cdm,
    cohort,
    common,
    ingest,
    jobs,
    predict,
    privacy,
    quality,
    safezone,
    serve,
    sites,
    synth,
    users,
    vocab,
)
from pmhub.errors import PmhubError

app = typer.Typer(
    name="pmhub",
    help="pmhub — Precision Medicine Hub: OMOP CDWs for a hospital network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(sites.app, name="sites")
app.add_typer(cdm.app, name="cdm")
app.add_typer(vocab.app, name="vocab")
app.command("synth")(synth.synth)
app.command("ingest")(ingest.ingest_command)
app.add_typer(privacy.app, name="privacy")
app.add_typer(quality.app, name="quality")
app.add_typer(cohort.app, name="cohort")
app.add_typer(predict.app, name="predict")
app.command("federate")(predict.federate)
app.command("serve")(serve.serve)
app.command("worker")(jobs.worker)
app.add_typer(jobs.app, name="jobs")
app.add_typer(users.app, name="users")
app.add_typer(audit.app, name="audit")
app.add_typer(safezone.request_app, name="request")
app.add_typer(safezone.review_app, name="review")
app.add_typer(safezone.workspace_app, name="workspace")
app.add_typer(safezone.output_app, name="output")


def version_callback(value: bool) -> None:
    if value:
        common.console.print(f"pmhub {__version__}")
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


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors as one message and a stable exit code, no traceback."""
    err = common.err_console
    try:
        # Ctrl-C and SIGTERM end the work as an exception: a load marks itself interrupted
        with interrupts.signals_raise():
            app(args=argv, standalone_mode=False)
    except PmhubError as exc:
        if os.environ.get("PMHUB_DEBUG") == "1" or "--debug" in (argv or sys.argv):
            err.print_exception()
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        err.print(f"[yellow]hint:[/] {exc.hint}", highlight=False)
        # work stopped by a signal exits as the shell expects of it (130, 143)
        signum = getattr(exc, "signum", None)
        sys.exit(interrupts.exit_status(signum) if isinstance(signum, int) else exc.exit_code)
    except (typer.Abort, KeyboardInterrupt) as exc:
        err.print("aborted")
        sys.exit(interrupts.exit_status(interrupts.stopped_by(exc) or signal.SIGINT))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
