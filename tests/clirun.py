"""Run the real ``pmhub`` entry point in-process and capture what it printed.

The verb modules print through ``pmhub.cli.common``'s consoles, looked up at call time;
swapping them here captures the output at a fixed width (no terminal), as CI sees it.
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

from rich.console import Console

from pmhub.cli import common, main


def run_cli(*args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``pmhub ARGS``."""
    out, err = io.StringIO(), io.StringIO()
    saved = common.console, common.err_console
    common.console = Console(file=out, width=200)
    common.err_console = Console(file=err, width=200)
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    finally:  # other tests capture the module's own consoles
        common.console, common.err_console = saved
    return code, out.getvalue(), err.getvalue()
