"""Ctrl-C and SIGTERM as an exception that long work ends cleanly on.

Python turns SIGINT into KeyboardInterrupt, and SIGTERM ends the process without running
any ``finally``. Inside :func:`signals_raise` both raise :class:`Stopped` (a
KeyboardInterrupt, so that nothing catching ``Exception`` swallows it) and are noted:
DuckDB turns an exception raised by a signal handler during a query into its own
``RuntimeError('Query interrupted')``, so work that ends on any exception asks
:func:`stopped_by` whether a signal was the cause.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


class Stopped(KeyboardInterrupt):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, _frame: FrameType | None) -> None:
    _received.append(signum)
    raise Stopped(signum)


@contextmanager
def signals_raise() -> Iterator[None]:
    """Within: SIGINT and SIGTERM raise :class:`Stopped` (in the main thread; elsewhere,
    where handlers cannot be set, nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.signal(s, _raise) for s in HANDLED}
    _received.clear()
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        _received.clear()


def stopped_by(exc: BaseException) -> int | None:
    """The signal that ended the work which raised ``exc``, if one did."""
    if isinstance(exc, Stopped):
        return exc.signum
    if _received:
        return _received[-1]
    if isinstance(exc, KeyboardInterrupt):
        return int(signal.SIGINT)
    return None


def exit_status(signum: int) -> int:
    """What a shell shows for a process ended by ``signum``: 130 for SIGINT, 143 for
    SIGTERM."""
    return 128 + signum
