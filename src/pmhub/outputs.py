"""Every file pmhub writes for a user (reports, plots, exports, results) goes through here.

A file is written to a temporary file in its own folder, flushed to disk and renamed over
the target, so that a reader sees the old file or the new one and a failed write leaves
what was there. Each ``OSError`` becomes a typed error whose hint fits the cause: a folder
that does not exist, a folder in the way of the file, no permission, a read-only or full
file system. :func:`check` runs the same tests before any work, so that a verb refuses a
path it cannot write before it changes anything.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pmhub.errors import FileWriteError, PmhubError

# called as error(message, hint=...); a layer passes its own class to keep its exit code
ErrorClass = Callable[..., PmhubError]

_HINTS = {
    errno.ENOENT: "Create the folder first (mkdir -p), or give a path in a folder that exists.",
    errno.ENOTDIR: "A part of the path is a file, not a folder; give another path.",
    errno.EISDIR: "Give a file name, not a folder.",
    errno.EACCES: "Choose a folder you can write, or fix its permissions.",
    errno.EPERM: "Choose a folder you can write, or fix its permissions (or attributes).",
    errno.EROFS: "The file system is read-only; choose a path on a writable disk.",
    errno.ENOSPC: "The disk is full; free some space or write somewhere else.",
    errno.EDQUOT: "The disk quota is used up; free some space or write somewhere else.",
    errno.EFBIG: "The file is larger than this system allows here; write somewhere else.",
    errno.ENAMETOOLONG: "Give a shorter file name.",
}


def _raise(path: Path, exc: OSError, what: str, error: ErrorClass) -> None:
    reason = exc.strerror or type(exc).__name__
    hint = _HINTS.get(exc.errno or 0, "Choose a path in a folder you can write.")
    raise error(f"cannot write the {what} {path}: {reason}", hint=hint) from None


def check(path: Path, *, what: str = "file", error: ErrorClass = FileWriteError) -> None:
    """Refuse, before any work, a path that cannot take the file: its folder missing or
    not a folder, the path a folder or a special file, the folder not writable."""
    folder = path.parent
    try:
        if not folder.exists():
            raise FileNotFoundError(errno.ENOENT, f"the folder {folder} does not exist")
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder")
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "it is a folder")
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            # a device or pipe: renaming over it would replace it, not write into it
            raise OSError(errno.EPERM, "it exists and is not a regular file")
        probe = folder / f".{path.name[:200]}.{secrets.token_hex(4)}.probe"
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        probe.unlink()
    except OSError as exc:
        _raise(path, exc, what, error)


def make_folder(folder: Path, *, what: str = "folder", error: ErrorClass = FileWriteError) -> Path:
    """A folder the user named for pmhub to fill (an export), made with its parents."""
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _raise(folder, exc, what, error)
    return folder


@contextmanager
def replacing(
    path: Path, *, what: str = "file", error: ErrorClass = FileWriteError
) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that takes a path (Parquet, DuckDB
    COPY); renamed over ``path`` when the block ends without error, removed otherwise."""
    check(path, what=what, error=error)
    temporary = path.with_name(f".{path.name[:200]}.{secrets.token_hex(4)}.tmp")
    try:
        yield temporary
        _sync(temporary)
        os.replace(temporary, path)
        _sync_folder(path.parent)
    except OSError as exc:
        _discard(temporary)
        _raise(path, exc, what, error)
    except BaseException:
        _discard(temporary)
        raise


def write_bytes(
    path: Path, data: bytes, *, what: str = "file", error: ErrorClass = FileWriteError
) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with replacing(path, what=what, error=error) as temporary:
        # 0o666 less the umask, as for any new file (mkstemp would give 0o600)
        fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    return path


def write_text(
    path: Path, text: str, *, what: str = "file", error: ErrorClass = FileWriteError
) -> Path:
    return write_bytes(path, text.encode("utf-8"), what=what, error=error)


def _sync(path: Path) -> None:
    """Flush a written file (or a folder's files) to disk before it is renamed into place."""
    if path.is_dir():
        for child in path.rglob("*"):
            if child.is_file():
                _fsync(child)
        return
    if path.exists():
        _fsync(path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    # some file systems cannot sync a folder; the rename itself has happened
    with contextlib.suppress(OSError):
        _fsync(folder)


def _discard(path: Path) -> None:
    # the error being raised says more than a failed clean-up would
    with contextlib.suppress(OSError):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
