"""What every verb group shares: the consoles, settings, the site registry, progress bars.

Verb modules print through ``common.console`` (looked up at call time) so that tests can
swap the consoles. Nothing heavy is imported here: ``pmhub --help`` must stay fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

if TYPE_CHECKING:
    from pmhub.settings import Settings
    from pmhub.sites import Site, SiteRegistry

# Rich wraps at 80 columns when it does not write to a terminal, which cut paths and Korean
# titles in logs and pipes. Off a terminal, lines are as long as they need to be.
UNWRAPPED_WIDTH = 1000


def make_console(stream: TextIO | None = None, *, stderr: bool = False) -> Console:
    """A console as wide as the terminal, or unwrapped when output is not a terminal."""
    target = stream or (sys.stderr if stderr else sys.stdout)
    if target.isatty():
        return Console(file=stream, stderr=stderr)
    return Console(file=stream, stderr=stderr, width=UNWRAPPED_WIDTH)


console = make_console()
err_console = make_console(stderr=True)

SiteOption = Annotated[
    str, typer.Option("--site", "-s", help="Site name (see `pmhub sites list`).")
]
HtmlOption = Annotated[Path, typer.Option("--html", help="The HTML file to write.")]


def settings() -> Settings:
    from pmhub.settings import load_settings

    return load_settings()


def registry() -> SiteRegistry:
    from pmhub.sites import SiteRegistry

    return SiteRegistry(settings())


def site(name: str) -> Site:
    return registry().get(name)


def progress() -> Progress:
    """A bar per table of bytes read, for loads of files."""
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def count_progress() -> Progress:
    """A bar of steps done out of steps known, with what is being done."""
    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[what]}"),
        console=err_console,
        transient=False,
    )
