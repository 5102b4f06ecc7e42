"""De-identify a file of notes: detect, replace, and write the notes and a summary.

Replacement is by type tag ('[NAME]') or by a realistic surrogate (a made-up name, a
well-formed but false registration number, ...). Surrogates and pseudonyms derive from the
project key, so one value gets the same surrogate in every note, and nobody without the key
can map surrogates back by trying candidate values. Dates are shifted by the person's
keyed offset, the same one the structured tables use, and written in their own style.
The output holds no original identifier: not the text, and not the detected spans' text.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pmhub import textcodec
from pmhub.privacy.errors import NotesFormatError, PrivacyInputError
from pmhub.privacy.keys import ProjectKey
from pmhub.privacy.sources import staging
from pmhub.privacy.text import patterns as p
from pmhub.privacy.text.detect import Span, detect
from pmhub.privacy.transforms import DATE_SHIFT

COLUMNS = ("note_id", "person_id", "note_date", "note_title", "note_text")
MAX_NOTE_CHARS = 1_000_000
Mode = Literal["tag", "surrogate"]


@dataclass
class Note:
    note_id: str
    person_id: str
    note_date: str
    title: str
    text: str


def read_notes(path: Path) -> Iterator[Note]:
    """Notes one by one (a file of any size), checking the format as they come.

    A file cut short is refused, not read up to the cut: a note cut inside a name would
    leave the name's first characters, which no detector can tell for a name, in the
    output. A file whose last line has no line break, or ends inside a quoted field, is
    taken to be cut (strict CSV parsing also refuses a stray quote)."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        _check_complete(path)
        handle = path.open(encoding=textcodec.codec_of(path), newline="")
    except OSError as exc:
        raise NotesFormatError(f"cannot read notes {path}: {exc.strerror or exc}") from exc
    with handle:
        line = 1
        try:
            reader = csv.DictReader(handle, strict=True)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise NotesFormatError(f"notes {path} lack the column(s) {missing}")
            for row in reader:
                line = reader.line_num
                yield note_of(row, path, line)
        except UnicodeDecodeError as exc:
            raise NotesFormatError(
                f"notes {path} are neither UTF-8 nor CP949 text: {exc.reason}"
            ) from exc
        except csv.Error as exc:
            raise NotesFormatError(
                f"notes {path} are not valid CSV after line {line:,}: {exc}",
                hint=TRUNCATED_HINT if "end of data" in str(exc) else None,
            ) from exc


TRUNCATED_HINT = (
    "The file ends inside a note: copy the whole file again (nothing was written). If it "
    "is complete, end it with a line break."
)


def _check_complete(path: Path) -> None:
    """Refuse a file whose last line has no line break: cut short, most likely."""
    if path.is_dir():
        raise NotesFormatError(f"notes {path} is a folder, not a CSV file")
    size = path.stat().st_size
    if size == 0:
        raise NotesFormatError(f"notes {path} are empty (not even a header row)")
    with path.open("rb") as handle:
        handle.seek(size - 1)
        last = handle.read(1)
    if last not in (b"\n", b"\r"):
        raise NotesFormatError(
            f"notes {path} end without a line break, in the middle of a line: cut short?",
            hint=TRUNCATED_HINT,
        )


def note_of(row: dict[str, str | None], path: Path, line: int) -> Note:
    values = {c: row.get(c) for c in COLUMNS}
    if any(v is None for v in values.values()):
        raise NotesFormatError(f"notes {path} line {line} has too few fields")
    text = values["note_text"] or ""
    if len(text) > MAX_NOTE_CHARS:
        raise NotesFormatError(f"note on line {line} of {path} is longer than 1,000,000 characters")
    return Note(
        str(values["note_id"]),
        str(values["person_id"]),
        str(values["note_date"]),
        str(values["note_title"]),
        text,
    )


# --- dates ------------------------------------------------------------------------------


def shift_date_text(text: str, days: int, note_date: dt.date | None) -> str | None:
    """The same date moved by ``days``, written in the original style; None if unparseable."""
    for index, pattern in enumerate(p.DATE_PATTERNS):
        match = pattern.fullmatch(text)
        if match is None:
            continue
        try:
            return _render(index, match, days, note_date)
        except ValueError:
            return None
    return None


def _pad(original: str, value: int) -> str:
    return f"{value:02d}" if len(original) == 2 else str(value)


def _render(index: int, m: re.Match[str], days: int, note_date: dt.date | None) -> str | None:
    groups = m.groupdict()
    if index == 0:
        day = dt.date(int(m["y"]), int(m["m"]), int(m["d"])) + dt.timedelta(days=days)
        sep = m["s"]
        return (
            f"{day.year}{sep}{_pad(m['m'], day.month)}{sep}{_pad(m['d'], day.day)}{m['dot'] or ''}"
        )
    if index == 1:
        first = groups.get("d") or "1"
        day = dt.date(int(m["y"]), int(m["m"]), int(first)) + dt.timedelta(days=days)
        spaced = " " if re.search(r"년\s", m.group(0)) else ""
        text = f"{day.year}년{spaced}{_pad(m['m'], day.month)}월"
        if groups.get("d"):
            gap = " " if re.search(r"월\s", m.group(0)) else ""
            text += f"{gap}{_pad(m['d'], day.day)}일"
        return text
    if index == 2:
        day = dt.date(2000 + int(m["yy"]), int(m["m"]), int(m["d"])) + dt.timedelta(days=days)
        return f"{day:%y}{m['s']}{day:%m}{m['s']}{day:%d}"
    if index == 4:
        day = dt.date(int(m["y"]), int(m["m"]), int(m["d"])) + dt.timedelta(days=days)
        return f"{_pad(m['m'], day.month)}/{_pad(m['d'], day.day)}/{day.year}"
    if index == 5:
        day = dt.date(int(m["y"]), int(m["m"]), int(m["d"])) + dt.timedelta(days=days)
        return f"{day:%Y%m%d}"
    year = note_date.year if note_date else 2000
    day = dt.date(year, int(m["m"]), int(m["d"])) + dt.timedelta(days=days)
    spaced = " " if re.search(r"월\s", m.group(0)) else ""
    return f"{_pad(m['m'], day.month)}월{spaced}{_pad(m['d'], day.day)}일"


# --- surrogates -------------------------------------------------------------------------

SURROGATE_SURNAMES = "김이박최정강조윤장임한오서신권황안송홍"
SURROGATE_GIVEN = "민서지현수영준우진호연은재성경미훈희태윤아주하예유원승"


def _draw(key: ProjectKey, kind: str, value: str, count: int) -> list[int]:
    digest = key.digest(f"surrogate:{kind}", value)
    return [digest[i % len(digest)] for i in range(count)]


def _digits(key: ProjectKey, kind: str, value: str, count: int) -> str:
    return "".join(str(b % 10) for b in _draw(key, kind, value, count))


def surrogate(span: Span, key: ProjectKey) -> str:
    kind, value = span.type, span.text
    if kind == "NAME":
        a, b, c = _draw(key, kind, value, 3)
        return (
            SURROGATE_SURNAMES[a % len(SURROGATE_SURNAMES)]
            + SURROGATE_GIVEN[b % len(SURROGATE_GIVEN)]
            + SURROGATE_GIVEN[c % len(SURROGATE_GIVEN)]
        )
    if kind in ("RRN", "FRN"):
        # Well-formed, but for an impossible month (13-19), so never somebody's real number.
        digits = re.sub(r"\D", "", value)
        sex = digits[6] if len(digits) > 6 else "1"
        month = 13 + _draw(key, kind, value, 1)[0] % 7
        tail = _digits(key, kind, value + "!", 6)
        return f"{_digits(key, kind, value, 2)}{month}01-{sex}{tail}"
    if kind == "PHONE":
        return f"010-{_digits(key, kind, value, 4)}-{_digits(key, kind, value + '!', 4)}"
    if kind == "EMAIL":
        return f"user{_digits(key, kind, value, 6)}@example.com"
    if kind == "MRN":  # same shape, keyed digits
        fresh = iter(_digits(key, kind, value, len(value)))
        return re.sub(r"\d", lambda _m: next(fresh), value)
    if kind == "ADDRESS":
        return f"가상시 가명로 {1 + _draw(key, kind, value, 1)[0] % 200}"
    return f"[{kind}]"


def replace(note: Note, spans: list[Span], mode: Mode, key: ProjectKey, max_days: int) -> str:
    days = key.offset(DATE_SHIFT, note.person_id, max_days)
    try:
        note_day: dt.date | None = dt.date.fromisoformat(note.note_date[:10])
    except ValueError:
        note_day = None
    out, last = [], 0
    for span in sorted(spans):
        out.append(note.text[last : span.start])
        if span.type == "DATE":
            out.append(shift_date_text(span.text, days, note_day) or "[DATE]")
        elif mode == "surrogate":
            out.append(surrogate(span, key))
        else:
            out.append(f"[{span.type}]")
        last = span.end
    out.append(note.text[last:])
    return "".join(out)


def read_names(path: Path | None) -> dict[str, list[str]]:
    """person_id,name rows: the patients' and staff's names (empty person_id: every note)."""
    if path is None:
        return {}
    names: dict[str, list[str]] = {}
    try:
        with path.open(encoding=textcodec.codec_of(path), newline="") as handle:
            reader = csv.DictReader(handle)
            if not {"person_id", "name"} <= set(reader.fieldnames or []):
                raise NotesFormatError(f"names file {path} needs columns person_id,name")
            for row in reader:
                if row["name"]:
                    names.setdefault(row["person_id"] or "", []).append(row["name"].strip())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NotesFormatError(f"cannot read names file {path}: {exc}") from exc
    return names


@dataclass
class TextRelease:
    notes: int
    found: dict[str, int]
    out: Path


def deidentify_notes(
    notes_csv: Path,
    out: Path,
    key: ProjectKey,
    *,
    mode: Mode = "tag",
    names_csv: Path | None = None,
    max_days: int = 30,
) -> TextRelease:
    """Write ``out/notes.csv`` (same columns, de-identified) and ``out/summary.json``."""
    check_options(mode, max_days)
    known = read_names(names_csv)
    counts: Counter[str] = Counter()
    total = 0
    with staging(out) as stage:
        with (stage / "notes.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(COLUMNS)
            for note in read_notes(notes_csv):
                names = known.get(note.person_id, []) + known.get("", [])
                writer.writerow(deidentified_row(note, names, mode, key, max_days, counts))
                total += 1
        summary = {
            "notes": total,
            "mode": mode,
            "found": dict(sorted(counts.items())),
            "project": key.project,
        }
        (stage / "summary.json").write_text(
            json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8"
        )
    return TextRelease(total, dict(counts), out)


MAX_DAYS = 3650


def check_options(mode: str, max_days: object) -> None:
    """The replacement mode and the date shift's bound, each refused with what to give."""
    if mode not in ("tag", "surrogate"):
        raise PrivacyInputError(
            f"the mode must be tag or surrogate, not {mode!r}",
            hint="Give --mode tag (identifiers become [NAME], [RRN], …) or --mode surrogate "
            "(made-up values).",
        )
    if isinstance(max_days, bool) or not isinstance(max_days, int) or not 1 <= max_days <= MAX_DAYS:
        raise PrivacyInputError(
            f"the largest date shift must be 1 to {MAX_DAYS:,} days, not {max_days!r}",
            hint=f"Give --max-days between 1 and {MAX_DAYS:,} (30 unless the project says more).",
        )


def deidentified_row(
    note: Note, names: list[str], mode: Mode, key: ProjectKey, max_days: int, counts: Counter[str]
) -> list[str]:
    spans = detect(note.text, names)
    counts.update(s.type for s in spans)
    title = replace(
        Note(note.note_id, note.person_id, note.note_date, "", note.title),
        detect(note.title, names),
        mode,
        key,
        max_days,
    )
    days = key.offset(DATE_SHIFT, note.person_id, max_days)
    return [
        key.pseudonym("note_id", note.note_id),
        key.pseudonym("person_id", note.person_id),
        shift_date_text(note.note_date[:10], days, None) or "",
        title,
        replace(note, spans, mode, key, max_days),
    ]
