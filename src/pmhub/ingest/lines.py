"""Lines longer than the CSV reader's limit, found before it reads them.

DuckDB's reader quarantines a line over its ``max_line_size`` only while the line fits in
its read buffer: a line of some 16 MB or more (the buffer is 16 times the limit) may be
dropped without a trace, and the lines after it numbered one too low (measured with
DuckDB 2.0: a 33 MB line always, two 20 MB lines one of them). So such lines never
reach it. A line longer than ``limit`` bytes covers a whole aligned block of
``limit // 2`` bytes with no line break, and one ``find`` per block tells that a file
has none (at 1.8 GB, 1,800 look-ups that stop at the first break, a few hundred bytes
in). A file that does have such a line is copied with each long line replaced by a
stub of ``limit + 1`` bytes the reader is sure to reject; the stub's reject is then
given the line's length and its first characters.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

STUB_PREFIX = "pmhub-long-line-"
COPY_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class LongLine:
    start: int  # byte offsets in the file, end excluded (the line break not included)
    end: int
    raw: str  # its first characters, for the quarantine

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Fitted:
    path: Path  # what the reader reads: the file itself, or its copy with stubs
    stubs: dict[str, LongLine] = field(default_factory=dict)  # stub's first text → line


def fit(path: Path, workdir: Path, name: str, *, limit: int, raw_chars: int) -> Fitted:
    """``path`` if no line is longer than ``limit`` bytes, else a copy in ``workdir``
    (named by ``name``) in which each such line is a stub."""
    size = path.stat().st_size
    if size <= limit:
        return Fitted(path)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        lines = long_lines(mm, limit, raw_chars)
        if not lines:
            return Fitted(path)
        target = workdir / f"{name}.fitted.csv"
        stubs = {_stub_key(n): line for n, line in enumerate(lines)}
        if not target.exists():
            workdir.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".part")
            with partial.open("wb") as out:
                _copy_with_stubs(mm, out, lines, limit)
            partial.replace(target)
    return Fitted(target, stubs)


def long_lines(mm: mmap.mmap, limit: int, raw_chars: int) -> list[LongLine]:
    """Every line of more than ``limit`` bytes, in file order."""
    block = max(1, limit // 2)
    found: list[LongLine] = []
    end_of_last = -1
    for offset in range(0, len(mm), block):
        if offset < end_of_last or _has_break(mm, offset, min(offset + block, len(mm))):
            continue
        start = max(mm.rfind(b"\n", 0, offset), mm.rfind(b"\r", 0, offset)) + 1
        end = _next_break(mm, offset)
        end_of_last = end
        if end - start > limit:
            text = mm[start : start + 4 * raw_chars].decode("utf-8", errors="replace")
            found.append(LongLine(start, end, text[:raw_chars]))
    return found


def _has_break(mm: mmap.mmap, start: int, end: int) -> bool:
    return mm.find(b"\n", start, end) >= 0 or mm.find(b"\r", start, end) >= 0


def _next_break(mm: mmap.mmap, offset: int) -> int:
    ends = [i for i in (mm.find(b"\n", offset), mm.find(b"\r", offset)) if i >= 0]
    return min(ends) if ends else len(mm)


def _stub_key(number: int) -> str:
    return f"{STUB_PREFIX}{number}-"


def _copy_with_stubs(mm: mmap.mmap, out: BinaryIO, lines: list[LongLine], limit: int) -> None:
    position = 0
    for number, line in enumerate(lines):
        _copy_range(mm, out, position, line.start)
        key = _stub_key(number).encode()
        out.write(key + b"x" * (limit + 1 - len(key)))
        position = line.end  # (the line break stays)
    _copy_range(mm, out, position, len(mm))


def _copy_range(mm: mmap.mmap, out: BinaryIO, start: int, end: int) -> None:
    for offset in range(start, end, COPY_CHUNK):
        out.write(mm[offset : min(offset + COPY_CHUNK, end)])
