"""What every verb group shares: the consoles, settings, the site registry, progress bars.

Verb modules print through ``common.console`` (looked up at call time) so that tests can
swap the consoles. Nothing heavy is imported here: ``pmhub --help`` must stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

console = Console()
err_console = Console(stderr=True)

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
