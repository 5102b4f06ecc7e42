"""IRB approval uploads: real PDFs, PNGs and JPEGs pass; the type is the content's."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from typing import BinaryIO, cast

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from pmhub.safezone import upload
from pmhub.safezone.errors import UploadTooLargeError, UploadTypeError


def image_bytes(fmt: str, size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


def matplotlib_pdf() -> bytes:
    figure, axes = plt.subplots()
    axes.text(0.1, 0.5, "IRB approval 2026-017")
    out = io.BytesIO()
    figure.savefig(out, format="pdf")
    plt.close(figure)
    return out.getvalue()


def handmade_pdf(extra: str = "") -> bytes:
    """A minimal PDF with a correct cross-reference table (objects as given)."""
    objects = [
        "<< /Type /Catalog /Pages 2 0 R" + extra + " >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, text in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{text}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    return out + f"startxref\n{xref}\n%%EOF\n".encode()


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (matplotlib_pdf(), "application/pdf"),
        (image_bytes("PDF"), "application/pdf"),  # Pillow's PDF writer
        (handmade_pdf(), "application/pdf"),
        (image_bytes("PNG"), "image/png"),
        (image_bytes("JPEG"), "image/jpeg"),
    ],
    ids=["matplotlib-pdf", "pillow-pdf", "handmade-pdf", "png", "jpeg"],
)
def test_real_files_pass_with_the_type_of_their_content(data: bytes, media_type: str) -> None:
    document = upload.check_irb_document(data, "승인서 scan.bin")
    assert document.media_type == media_type
    assert document.sha256 == hashlib.sha256(data).hexdigest()
    assert document.size == len(data)
    assert document.filename == "승인서 scan" + upload.EXTENSIONS[media_type]


def test_the_name_and_extension_of_the_client_are_not_trusted() -> None:
    png = upload.check_irb_document(image_bytes("PNG"), "approval.pdf")
    assert (png.media_type, png.filename) == ("image/png", "approval.png")


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd", "passwd.pdf"),
        ("C:\\Users\\kim\\IRB 승인.PDF", "IRB 승인.pdf"),
        ("..pdf", "pdf.pdf"),
        ("", "irb-approval.pdf"),
        ("a\u202egnp.exe", "a_gnp.pdf"),  # a right-to-left override hides the real extension
        ("report\x00.png", "report.pdf"),
        ("x" * 300 + ".pdf", "x" * 100 + ".pdf"),
    ],
)
def test_file_names_are_reduced_to_safe_characters(name: str, safe: str) -> None:
    assert upload.safe_filename(name, "application/pdf") == safe


@given(st.text(max_size=400))
def test_any_name_becomes_a_plain_file_name_of_the_content_type(name: str) -> None:
    safe = upload.safe_filename(name, "image/jpeg")
    stem = safe.removesuffix(".jpg")
    assert safe.endswith(".jpg")
    assert 1 <= len(stem) <= 100
    assert "/" not in safe
    assert "\\" not in safe
    assert not safe.startswith(".")
    assert all(ch.isalnum() or ch in " -_()" for ch in stem)


def test_read_capped_stops_one_byte_past_the_cap() -> None:
    class Endless(io.RawIOBase):
        served = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            buffer[:] = b"\0" * len(buffer)
            self.served += len(buffer)
            return len(buffer)

    stream = Endless()
    with pytest.raises(UploadTooLargeError):
        upload.read_capped(cast(BinaryIO, stream), max_bytes=100_000)
    assert stream.served <= 100_001
    assert upload.read_capped(io.BytesIO(b"abc"), max_bytes=3) == b"abc"


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_a_png_bomb_declaring_huge_dimensions_is_refused() -> None:
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = (
        upload.PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    with pytest.raises(UploadTypeError, match="pixels"):
        upload.check_irb_document(data, "bomb.png")


def test_a_jpeg_cut_off_before_its_end_marker_is_refused() -> None:
    with pytest.raises(UploadTypeError, match="end marker"):
        upload.check_irb_document(image_bytes("JPEG", (400, 300))[:-2], "scan.jpg")


def test_a_pdf_whose_xref_offset_points_elsewhere_is_refused() -> None:
    data = handmade_pdf().replace(b"startxref\n", b"startxref\n1")
    with pytest.raises(UploadTypeError, match="cross-reference"):
        upload.check_irb_document(data, "x.pdf")


@pytest.mark.parametrize(
    "name", ["/OpenAction << /S /JavaScript /JS (app.alert(1)) >>", "/J#61vaScript 1"]
)
def test_a_pdf_with_scripts_is_refused_even_with_escaped_names(name: str) -> None:
    with pytest.raises(UploadTypeError, match="active content"):
        upload.check_irb_document(handmade_pdf(" " + name), "x.pdf")
