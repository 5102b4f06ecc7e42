"""Which text encoding a file is in: UTF-8, UTF-8 with a byte-order mark, or CP949.

Korean exports arrive in all three (CP949 is Windows' superset of EUC-KR). Every verb
that reads a text file tells them apart the same way: the first ``SAMPLE`` bytes are
tried as UTF-8 and then, unless the user named an encoding, as CP949.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from pmhub.errors import PmhubError

SAMPLE = 16 * 1024 * 1024
ENCODINGS = ("auto", "utf-8", "cp949")
ALIASES = {"utf8": "utf-8", "euc-kr": "cp949", "euckr": "cp949", "ms949": "cp949", "uhc": "cp949"}
BOM = codecs.BOM_UTF8
INVALID = "utf-8-invalid"  # neither: read as UTF-8, its bad lines set aside or refused


def declared(name: str, error: type[PmhubError]) -> str:
    """A user's encoding name as one of ENCODINGS (``error`` if it is none of them)."""
    name = ALIASES.get(name.lower(), name.lower())
    if name not in ENCODINGS:
        raise error(f"unknown encoding {name!r}; use one of {', '.join(ENCODINGS)}")
    return name


def choose(declared: str, sample: bytes, *, complete: bool) -> str:
    """utf-8, utf-8-sig, cp949 or INVALID for a file starting with ``sample`` (all of it
    when ``complete``). A file named CP949 is CP949; one named UTF-8 is never CP949."""
    if declared == "cp949":
        return "cp949"
    if _decodes("utf-8", sample, complete=complete):
        return "utf-8-sig" if sample.startswith(BOM) else "utf-8"
    if declared == "auto" and _decodes("cp949", sample, complete=complete):
        return "cp949"
    return INVALID


def sniff(path: Path, declared: str = "auto") -> str:
    """The encoding of the file at ``path`` (see :func:`choose`)."""
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE + 1)
    return choose(declared, sample[:SAMPLE], complete=len(sample) <= SAMPLE)


def _decodes(codec: str, sample: bytes, *, complete: bool) -> bool:
    # incremental, so that a character cut at the sample's end is not taken for bad bytes
    decoder = codecs.getincrementaldecoder(codec)()
    try:
        decoder.decode(sample, complete)
    except UnicodeDecodeError:
        return False
    return True


def codec_of(path: Path) -> str:
    """The Python codec to open the text file at ``path`` with: utf-8-sig for UTF-8 (a
    byte-order mark is dropped), cp949, or utf-8-sig for a file that is neither, so that
    reading it raises UnicodeDecodeError where its bad bytes are."""
    return "cp949" if sniff(path) == "cp949" else "utf-8-sig"
