"""Writing a generated network to a folder: chunks render to bytes (in worker processes),
the parent appends them to files in chunk order, so the bytes do not depend on the number
of workers. Everything is written to a temporary folder first and moved into place at the
end: a failed run leaves the output folder as it was."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.csv as pacsv

from pmhub.synth.config import SynthConfig
from pmhub.synth.errors import OutputNotEmptyError, OutputNotWritableError

Progress = Callable[[int, int], None]  # chunks done, chunks in all


class CsvBytes(bytes):
    """CSV data rows that know how many rows they hold (counting quoted CSV is slow)."""

    rows: int = 0


def csv_bytes(tab: pa.Table, *, quote: bool = True) -> CsvBytes:
    """Rows without the header; timestamps to the second."""
    columns = []
    for col in tab.columns:
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("s"))
        columns.append(col)
    tab = pa.Table.from_arrays(columns, names=tab.column_names)
    sink = io.BytesIO()
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed" if quote else "none")
    pacsv.write_csv(tab, sink, options)
    result = CsvBytes(sink.getvalue())
    result.rows = tab.num_rows
    return result


def header(names: list[str] | tuple[str, ...]) -> bytes:
    return (",".join(names) + "\n").encode()


class Format(Protocol):
    def headers(self) -> dict[str, bytes]:
        """Every file the format writes, with its first bytes (a CSV header, or empty)."""

    def render(self, chunk: int) -> dict[str, bytes]:
        """The bytes one chunk appends to each file (new files allowed: e.g. one per patient)."""

    def finish(self, folder: Path, stats: dict[str, list[bytes]]) -> dict[str, Any]:
        """Files written once at the end, from the chunks' statistics (render's keys that
        start with "@"); returns facts for the manifest."""


@dataclass
class Written:
    folder: Path
    files: dict[str, int] = field(default_factory=dict)  # relative path -> bytes
    rows: dict[str, int] = field(default_factory=dict)  # CSV relative path -> data rows


def prepare_folder(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise OutputNotWritableError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputNotEmptyError(f"the output folder {out} is not empty")
    resolved = out.resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        raise OutputNotWritableError(
            f"refusing to write into {resolved}", hint="Choose a dedicated folder."
        )


def write(
    config: SynthConfig,
    fmt: Format,
    out: Path,
    *,
    overwrite: bool,
    workers: int,
    progress: Progress | None = None,
    manifest: dict[str, Any],
) -> Written:
    prepare_folder(out, overwrite)
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    except OSError as exc:
        raise OutputNotWritableError(
            f"cannot create a folder next to {out}: {exc.strerror}"
        ) from exc
    try:
        written, stats = _fill(config, fmt, tmp, workers, progress)
        facts = fmt.finish(tmp, stats)
        _count_final(tmp, written)
        _manifest(tmp, written, {**manifest, **facts})
        _swap(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputNotWritableError(f"cannot write the output to {out}: {exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    written.folder = out
    return written


def _fill(
    config: SynthConfig, fmt: Format, folder: Path, workers: int, progress: Progress | None
) -> tuple[Written, dict[str, list[bytes]]]:
    written = Written(folder)
    stats: dict[str, list[bytes]] = {}
    handles: dict[str, Any] = {}
    try:
        for rel, first in fmt.headers().items():
            handle = _open(folder, rel, handles)
            handle.write(first)
            written.files[rel] = len(first)
            if rel.endswith(".csv"):
                written.rows[rel] = max(_count_rows(first) - 1, 0)  # rows after the header
        for done, parts in enumerate(_rendered(config, fmt, workers), start=1):
            for rel, data in parts.items():
                if rel.startswith("@"):
                    stats.setdefault(rel, []).append(data)
                    continue
                _open(folder, rel, handles).write(data)
                written.files[rel] = written.files.get(rel, 0) + len(data)
                if rel.endswith(".csv"):
                    rows = data.rows if isinstance(data, CsvBytes) else _count_rows(data)
                    written.rows[rel] = written.rows.get(rel, 0) + rows
            if progress is not None:
                progress(done, config.chunks)
    finally:
        for handle in handles.values():
            handle.close()
    return written, stats


def _count_final(folder: Path, written: Written) -> None:
    """Files that finish() wrote are counted as well."""
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_file() and rel not in written.files:
            data = path.read_bytes()
            written.files[rel] = len(data)
            if rel.endswith(".csv"):
                written.rows[rel] = max(_count_rows(data) - 1, 0)


def _count_rows(data: bytes) -> int:
    """Data rows in CSV bytes (quoted newlines inside notes are not row ends)."""
    if b'"' not in data:
        return data.count(b"\n")
    rows = 0
    quoted = False
    for piece in data.split(b'"'):
        if not quoted:
            rows += piece.count(b"\n")
        quoted = not quoted
    return rows


def _open(folder: Path, rel: str, handles: dict[str, Any]) -> Any:
    """Declared files stay open; files a chunk adds (one per patient) are appended once."""
    if rel in handles:
        return handles[rel]
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if rel.endswith(".csv"):
        handles[rel] = path.open("ab")
        return handles[rel]
    return _AppendOnce(path)


class _AppendOnce:
    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, data: bytes) -> None:
        with self.path.open("ab") as handle:
            handle.write(data)


def _rendered(config: SynthConfig, fmt: Format, workers: int) -> Iterator[dict[str, bytes]]:
    if workers <= 1 or config.chunks == 1:
        for chunk in range(config.chunks):
            yield fmt.render(chunk)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(fmt.render, range(config.chunks))


def _manifest(folder: Path, written: Written, facts: dict[str, Any]) -> None:
    payload = {
        **facts,
        "files": dict(sorted(written.files.items())),
        "rows": dict(sorted(written.rows.items())),
    }
    (folder / "manifest.json").write_text(
        json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def _swap(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
