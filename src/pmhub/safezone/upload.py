"""The IRB approval document: size, type by content, structure, and a safe file name.

An upload's type is what its bytes are, never what its name or the browser's
Content-Type say: a PDF must start with a PDF header and end with a cross-reference
that points at a real cross-reference section; a PNG must be a chain of chunks whose
checksums hold, from IHDR to IEND with nothing after; a JPEG must run from its start
marker through a frame header to its end marker. A file that is several things at once
(a PNG with a ZIP after IEND, HTML with a PDF header) is refused. PDFs that carry
scripts, launch actions, embedded files or encryption are refused too: the document is
read by reviewers, and an encrypted one cannot be reviewed.

What the checks cannot see: names inside compressed object streams, and whether the
document really is an IRB approval (the IRB reviewer reads it).
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
import zlib
from typing import Annotated, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field

from pmhub.safezone.errors import UploadTooLargeError, UploadTypeError

MAX_IRB_BYTES = 10 << 20  # a scanned approval letter of a few pages; anything larger is not one
MAX_PIXELS = 100_000_000  # a decompression bomb declares more pixels than any scan has
READ_CHUNK = 1 << 16

MediaType = Literal["application/pdf", "image/png", "image/jpeg"]
EXTENSIONS: dict[str, str] = {"application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg"}


class IrbDocument(BaseModel):
    """What the application records of an accepted upload; the bytes are stored by hash."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    filename: Annotated[str, Field(min_length=1, max_length=128)]
    media_type: MediaType
    size: Annotated[int, Field(ge=1)]


def read_capped(stream: BinaryIO, max_bytes: int = MAX_IRB_BYTES) -> bytes:
    """Read an upload, stopping one byte past the cap so an endless stream costs nothing."""
    parts: list[bytes] = []
    total = 0
    while total <= max_bytes:
        chunk = stream.read(min(READ_CHUNK, max_bytes + 1 - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    if total > max_bytes:
        raise _too_large(max_bytes)
    return b"".join(parts)


def _too_large(max_bytes: int) -> UploadTooLargeError:
    return UploadTooLargeError(f"the upload is larger than {max_bytes // (1 << 20)} MiB")


def check_irb_document(
    data: bytes, filename: str, *, max_bytes: int = MAX_IRB_BYTES
) -> IrbDocument:
    """Accept an IRB approval upload, or raise a typed error saying why not."""
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    if not data:
        raise UploadTypeError("the upload is empty")
    media_type = sniff(data)
    return IrbDocument(
        sha256=hashlib.sha256(data).hexdigest(),
        filename=safe_filename(filename, media_type),
        media_type=media_type,
        size=len(data),
    )


def sniff(data: bytes) -> MediaType:
    """The type the content proves, after its structure is checked."""
    if data.startswith(b"%PDF-"):
        check_pdf(data)
        return "application/pdf"
    if data.startswith(PNG_SIGNATURE):
        check_png(data)
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        check_jpeg(data)
        return "image/jpeg"
    raise UploadTypeError(f"the upload is not a PDF, PNG or JPEG file; {_looks_like(data)}")


def _looks_like(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script")):
        return "it is HTML"
    if head.startswith(b"<?xml") or head.startswith(b"<svg"):
        return "it is XML or SVG"
    if data.startswith(b"PK\x03\x04"):
        return "it is a ZIP archive (or an office document)"
    if data.startswith((b"\x7fELF", b"MZ")):
        return "it is a program"
    return "its first bytes match none of them"


# --- PDF ----------------------------------------------------------------------------------

_PDF_HEADER = re.compile(rb"%PDF-[12]\.[0-9]")
_STARTXREF = re.compile(rb"startxref\s+(\d{1,12})\s+%%EOF\s*\Z")
_XREF_AT = re.compile(rb"\s*(xref\b|\d{1,10}\s+\d{1,5}\s+obj\b)")
_PDF_NAME = re.compile(rb"/([^\s()<>\[\]{}/%]{1,127})")
_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
# names of actions and contents a reviewer's reader should never be made to run or open
FORBIDDEN_PDF_NAMES = frozenset(
    {b"JavaScript", b"JS", b"Launch", b"EmbeddedFile", b"EmbeddedFiles", b"RichMedia", b"XFA"}
)


def check_pdf(data: bytes) -> None:
    if not _PDF_HEADER.match(data):
        raise UploadTypeError("the upload starts like a PDF but has no PDF version header")
    tail = data[-1024:]
    found = _STARTXREF.search(tail)
    if found is None:
        raise UploadTypeError(
            "the upload has a PDF header but does not end with a PDF trailer"
            " (startxref … %%EOF); it is not a whole PDF file"
        )
    offset = int(found.group(1))
    if not 0 < offset < len(data) - len(tail) + found.start() or not _XREF_AT.match(data, offset):
        raise UploadTypeError("the PDF's cross-reference offset points at no cross-reference")
    if b"/Root" not in data:
        raise UploadTypeError("the PDF has no document catalogue (/Root)")
    names = {_NAME_ESCAPE.sub(_unescape, m.group(1)) for m in _PDF_NAME.finditer(data)}
    if b"Encrypt" in names:
        raise UploadTypeError(
            "the PDF is encrypted and cannot be reviewed", hint="Upload the PDF without a password."
        )
    active = sorted(n.decode("latin-1") for n in names & FORBIDDEN_PDF_NAMES)
    if active:
        raise UploadTypeError(
            f"the PDF carries active content ({', '.join(active)})",
            hint="Print the approval to a plain PDF (no scripts, forms or attachments).",
        )


def _unescape(match: re.Match[bytes]) -> bytes:
    return bytes([int(match.group(1), 16)])


# --- PNG ----------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png(data: bytes) -> None:
    position, kinds = len(PNG_SIGNATURE), list[bytes]()
    while position < len(data):
        if position + 12 > len(data):
            raise UploadTypeError("the PNG is cut off inside a chunk header")
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        end = position + 12 + length
        if length > 0x7FFFFFFF or end > len(data):
            raise UploadTypeError("the PNG is cut off: a chunk runs past the end of the file")
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(kind + body) != crc:
            raise UploadTypeError(f"the PNG's {kind.decode('latin-1')!r} chunk fails its checksum")
        if not kinds:
            _png_header(kind, body)
        kinds.append(kind)
        position = end
        if kind == b"IEND":
            break
    if not kinds or kinds[-1] != b"IEND":
        raise UploadTypeError("the PNG has no end chunk (IEND); it is cut off")
    if position != len(data):
        raise UploadTypeError("the PNG has data after its end chunk (IEND)")
    if b"IDAT" not in kinds:
        raise UploadTypeError("the PNG holds no image data (IDAT)")


def _png_header(kind: bytes, body: bytes) -> None:
    if kind != b"IHDR" or len(body) != 13:
        raise UploadTypeError("the PNG does not start with its header chunk (IHDR)")
    width, height = struct.unpack(">II", body[:8])
    _check_size(width, height, "PNG")


def _check_size(width: int, height: int, kind: str) -> None:
    if width == 0 or height == 0:
        raise UploadTypeError(f"the {kind} declares an empty image ({width}×{height})")
    if width * height > MAX_PIXELS:
        raise UploadTypeError(
            f"the {kind} declares {width}×{height} pixels, more than any scanned document"
        )


# --- JPEG ---------------------------------------------------------------------------------

_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn carry no length
_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOFn, not DHT/JPG/DAC


def check_jpeg(data: bytes) -> None:
    position, framed = 2, False
    while True:
        if position + 4 > len(data) or data[position] != 0xFF:
            raise UploadTypeError("the JPEG's segments are broken or cut off")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if length < 2 or position + 2 + length > len(data):
            raise UploadTypeError("the JPEG's segments are broken or cut off")
        if marker in _FRAMES:
            _jpeg_frame(data[position + 4 : position + 2 + length])
            framed = True
        if marker == 0xDA:  # start of scan: entropy-coded data follows until the end marker
            break
        position += 2 + length
    if not framed:
        raise UploadTypeError("the JPEG has no frame header before its image data")
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise UploadTypeError("the JPEG does not end with its end marker; it is cut off")


def _jpeg_frame(body: bytes) -> None:
    if len(body) < 5:
        raise UploadTypeError("the JPEG's frame header is cut off")
    height, width = struct.unpack(">HH", body[1:5])
    _check_size(width, height, "JPEG")


# --- names --------------------------------------------------------------------------------


def safe_filename(name: str, media_type: MediaType) -> str:
    """The client's name reduced to letters, digits and a few marks, with the extension of
    the type its content proved (a client's path, extension and controls are dropped)."""
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", name))[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    kept = "".join(ch if ch.isalnum() or ch in " -_()" else "_" for ch in stem)
    stem = re.sub(r"[ _]{2,}", "_", kept).strip(" ._-")[:100]
    return (stem or "irb-approval") + EXTENSIONS[media_type]
