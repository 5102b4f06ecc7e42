"""Score a detector against gold spans, per identifier type.

A gold span is found when a detected span of the same type overlaps it; a detected span
is correct when it overlaps a gold span of its type. Character coverage (the share of
gold characters inside any detected span, whatever its type) is reported too: it is what
matters for leakage, since a name tagged as an address is still removed.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from pmhub import textcodec
from pmhub.privacy.text.detect import TYPES, Span, detect
from pmhub.privacy.text.notes import read_notes


@dataclass
class Score:
    gold: int
    detected: int
    found: int
    correct: int
    covered_chars: int
    gold_chars: int

    @property
    def recall(self) -> float:
        return self.found / self.gold if self.gold else 1.0

    @property
    def precision(self) -> float:
        return self.correct / self.detected if self.detected else 1.0

    @property
    def coverage(self) -> float:
        return self.covered_chars / self.gold_chars if self.gold_chars else 1.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            **asdict(self),
            "recall": self.recall,
            "precision": self.precision,
            "coverage": self.coverage,
        }


def read_spans(path: Path) -> dict[str, list[Span]]:
    gold: dict[str, list[Span]] = defaultdict(list)
    with path.open(encoding=textcodec.codec_of(path), newline="") as handle:
        for row in csv.DictReader(handle):
            gold[row["note_id"]].append(
                Span(int(row["start"]), int(row["end"]), row["type"], row["text"])
            )
    return gold


def overlaps(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def evaluate_deid(notes_csv: Path, spans_csv: Path) -> dict[str, dict[str, float | int]]:
    """Per-type precision, recall and coverage of :func:`detect` on any notes in the format."""
    gold = read_spans(spans_csv)
    scores = {t: Score(0, 0, 0, 0, 0, 0) for t in TYPES}
    for note in read_notes(notes_csv):
        predicted = detect(note.text)
        truth = gold.get(note.note_id, [])
        for g in truth:
            score = scores.setdefault(g.type, Score(0, 0, 0, 0, 0, 0))
            score.gold += 1
            score.found += any(p.type == g.type and overlaps(p, g) for p in predicted)
            score.gold_chars += g.end - g.start
            score.covered_chars += sum(
                max(0, min(p.end, g.end) - max(p.start, g.start)) for p in predicted
            )
        for p in predicted:
            score = scores.setdefault(p.type, Score(0, 0, 0, 0, 0, 0))
            score.detected += 1
            score.correct += any(g.type == p.type and overlaps(p, g) for g in truth)
    total = Score(
        *(
            sum(getattr(s, f) for s in scores.values())
            for f in ("gold", "detected", "found", "correct", "covered_chars", "gold_chars")
        )
    )
    result = {t: s.as_dict() for t, s in scores.items() if s.gold or s.detected}
    result["ALL"] = total.as_dict()
    return result
