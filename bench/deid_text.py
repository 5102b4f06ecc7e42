"""Korean note de-identification: per-type precision and recall on gold spans, and speed.

Notes come from pmhub's seeded note maker (the format the synthetic-data generator also
writes: notes.csv + spans.csv); give other files with NOTES=... SPANS=... to score those.
Presidio is not used: its default NLP engine downloads a spaCy model at first use, which
cannot happen here; the rules are pure Python.

BENCH_SMALL=1 uses 1,000 notes instead of 20,000. The last line is one JSON object.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from pmhub.privacy.keys import KeyStore
from pmhub.privacy.text import synth
from pmhub.privacy.text.evaluate import evaluate_deid
from pmhub.privacy.text.notes import deidentify_notes
from pmhub.settings import load_settings

SMALL = os.environ.get("BENCH_SMALL") == "1"


def main() -> None:
    count = 1_000 if SMALL else 20_000
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if os.environ.get("NOTES") and os.environ.get("SPANS"):
            notes, spans = Path(os.environ["NOTES"]), Path(os.environ["SPANS"])
        else:
            notes, spans = synth.write_notes(work / "gold", count, seed=20261122)
        started = time.perf_counter()
        scores = evaluate_deid(notes, spans)
        detect_seconds = time.perf_counter() - started
        os.environ["PMHUB_HOME"] = str(work / "home")
        store = KeyStore(load_settings())
        store.create("bench")
        started = time.perf_counter()
        release = deidentify_notes(notes, work / "out", store.get("bench"), mode="surrogate")
        release_seconds = time.perf_counter() - started
    print(
        f"{release.notes:,} notes; detection and scoring {detect_seconds:.2f} s,"
        f" file-to-file surrogate release {release_seconds:.2f} s"
        f" ({release.notes / release_seconds:,.0f} notes/s)"
    )
    print(f"{'type':<8} {'gold':>7} {'found':>7} {'recall':>7} {'precision':>9} {'coverage':>8}")
    for kind, s in scores.items():
        print(
            f"{kind:<8} {s['gold']:>7} {s['detected']:>7} {s['recall']:>7.4f}"
            f" {s['precision']:>9.4f} {s['coverage']:>8.4f}"
        )
    figures: dict[str, object] = {
        "notes": release.notes,
        "release_seconds": round(release_seconds, 3),
        "notes_per_second": round(release.notes / release_seconds),
    }
    for kind, s in scores.items():
        figures[f"{kind.lower()}_recall"] = round(float(s["recall"]), 4)
        figures[f"{kind.lower()}_precision"] = round(float(s["precision"]), 4)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
