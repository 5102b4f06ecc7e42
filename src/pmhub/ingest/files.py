"""Input files: checksums, text encodings, headers and delimiters.

One streaming pass per file computes its checksum (BLAKE3, a cryptographic hash three
to four times faster than SHA-256 here; for the load log and the load's identity) and
finds its encoding. Korean exports arrive as UTF-8, UTF-8 with a byte-order
mark, or CP949 (a superset of EUC-KR); CP949 files are transcoded once to UTF-8 so that
the CSV reader sees one encoding. A file that is neither is read as UTF-8 and the lines
with bad bytes are quarantined by the reader, never dropped.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import blake3

from pmhub import textcodec
from pmhub.ingest.errors import EncodingError, InputFormatError

CHECKSUM = "blake3"
CHUNK = 8 * 1024 * 1024
SAMPLE = textcodec.SAMPLE
DELIMITERS = (",", "\t", ";", "|")


@dataclass(frozen=True)
class SourceFile:
    path: Path
    name: str  # as shown in the accounting: relative to the input folder
    checksum: str  # "blake3:" and the hex digest
    size: int
    encoding: str  # utf-8, utf-8-sig, cp949, or utf-8-invalid (bad lines go to quarantine)


def fingerprint(path: Path, name: str, declared: str = "auto") -> SourceFile:
    """Checksum and encoding of one file.

    The encoding is judged on the first SAMPLE bytes: a file whose CP949 text starts later
    still loses nothing, since the CSV reader quarantines each line that is not UTF-8 (and
    the reason suggests --encoding cp949).
    """
    declared = textcodec.declared(declared, EncodingError)
    with path.open("rb") as fh:
        sample = fh.read(SAMPLE + 1)
    size = path.stat().st_size
    # the checksum from the file mapped into memory (no copy into buffers: at 1.8 GB,
    # a fifth less CPU than reading it in chunks); read in chunks where it cannot be
    # mapped (a file system without mmap)
    digest = blake3.blake3()
    try:
        digest.update_mmap(str(path))
    except OSError:
        digest = blake3.blake3()
        for chunk in _chunks(path):
            digest.update(chunk)
    complete = len(sample) <= SAMPLE
    encoding = textcodec.choose(declared, sample[:SAMPLE], complete=complete)
    if encoding == "cp949" and declared == "cp949" and _utf8_text(sample[:SAMPLE], complete):
        raise EncodingError(
            f"{name} was given as CP949, but its Korean text is UTF-8 (read as CP949 it "
            "would load as garbled text); nothing was loaded",
            hint="Run the same command with --encoding auto (or utf-8).",
        )
    return SourceFile(path, name, f"{CHECKSUM}:{digest.hexdigest()}", size, encoding)


def _utf8_text(sample: bytes, complete: bool) -> bool:
    """Whether bytes beyond ASCII read as UTF-8: CP949 text almost never does."""
    return not sample.isascii() and textcodec.choose("utf-8", sample, complete=complete) in (
        "utf-8",
        "utf-8-sig",
    )


def folder_files(folder: Path, ignored: dict[str, str]) -> list[Path]:
    """The files in ``folder``, in name order (links followed); a folder or a link to
    nothing among them is noted in ``ignored``, so that no input goes unmentioned."""
    files = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file():
            files.append(entry)
        elif entry.is_dir():
            ignored[entry.name] = "a folder, not a file"
        elif entry.is_symlink():
            ignored[entry.name] = "a link to nothing"
        else:
            ignored[entry.name] = "not a regular file"
    return files


def sha256_of(path: Path) -> str:
    """A file's SHA-256, as hex: the checksum of loads recorded before BLAKE3."""
    digest = hashlib.sha256()
    for chunk in _chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def _chunks(path: Path) -> Iterator[bytes]:
    """A file's bytes, CHUNK at a time."""
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def readable_utf8(source: SourceFile, workdir: Path) -> Path:
    """A UTF-8 path the CSV reader can take: the file itself, or a transcoded copy."""
    if source.encoding != "cp949":
        return source.path
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / f"{source.checksum.partition(':')[2][:16]}.utf8.csv"
    if target.exists() and target.stat().st_size > 0:
        return target
    partial = target.with_suffix(".part")
    try:
        with (
            source.path.open("r", encoding="cp949", newline="") as src,
            partial.open("w", encoding="utf-8", newline="") as dst,
        ):
            while text := src.read(CHUNK):
                dst.write(text)
    except UnicodeDecodeError as exc:
        line = _first_bad_line(source.path, "cp949")
        raise EncodingError(
            f"{source.name} line {line:,} is neither CP949 nor UTF-8 (its first lines are "
            "CP949); nothing was loaded",
            hint="Fix or remove the bytes on that line, then run the same command again.",
        ) from exc
    partial.replace(target)
    return target


def _first_bad_line(path: Path, codec: str) -> int:
    """The number of the first line that does not decode (0 if none does not)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode(codec)
            except UnicodeDecodeError:
                return number
    return 0


@dataclass(frozen=True)
class Header:
    columns: tuple[str, ...]  # lower case, as written (BOM stripped)
    delimiter: str


def read_header(source: SourceFile, expected: set[str], path: Path | None = None) -> Header:
    """The header row and the delimiter that splits it into the columns we expect.

    The delimiter is the one of comma, tab, semicolon and bar that yields the most
    expected column names; a header none of them splits is a clear error.
    """
    line = _first_line(path, "utf-8") if path else _first_line(source.path, source.encoding)
    if not line.strip():
        raise InputFormatError(f"{source.name} is empty or has no header row")
    best: Header | None = None
    best_hits = 0
    for delimiter in DELIMITERS:
        columns = next(csv.reader(io.StringIO(line), delimiter=delimiter))
        names = tuple(c.strip().lower() for c in columns)
        hits = len(expected & set(names))
        if hits > best_hits:
            best, best_hits = Header(names, delimiter), hits
    if best is None:
        shown = line.strip()[:120]
        raise InputFormatError(
            f"{source.name}: the header {shown!r} names none of the expected columns "
            f"({', '.join(sorted(expected)[:6])}, …) with any of the delimiters , tab ; |"
        )
    if len(set(best.columns)) != len(best.columns):
        raise InputFormatError(f"{source.name}: the header names a column twice: {best.columns}")
    return best


def _first_line(path: Path, encoding: str) -> str:
    codec = {"utf-8-invalid": "utf-8", "utf-8-sig": "utf-8-sig"}.get(encoding, encoding)
    with path.open("rb") as fh:
        raw = fh.readline(1024 * 1024)
    return raw.decode(codec, errors="replace").lstrip("\ufeff").rstrip("\r\n")
