"""Korean notes and their gold-standard spans (the de-identification test set)."""

from __future__ import annotations

import re

import pytest

from pmhub.synth import identity, notes
from pmhub.synth.service import SynthResult, generate

from .conftest import read_csv

SITES = ("chuncheon_univ", "gangneung_general", "jeongseon_county")


@pytest.fixture(scope="module", params=["synthea-csv", "fhir"])
def other_format(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> SynthResult:
    out = tmp_path_factory.mktemp("notes") / "net"
    return generate(out, fmt=request.param, sites=3, patients=200, years=3, seed=13, workers=1)


def load(net: SynthResult, site: str) -> tuple[dict[str, dict[str, str]], list[dict[str, str]]]:
    note_rows = read_csv(net.folder / site / "notes.csv")
    spans = read_csv(net.folder / site / "note_spans.csv")
    return {r["note_id"]: r for r in note_rows}, spans


def check_spans(net: SynthResult) -> int:
    total = 0
    for site in SITES:
        by_id, spans = load(net, site)
        assert len(by_id) > 0
        for span in spans:
            text = by_id[span["note_id"]]["note_text"]
            start, end = int(span["start"]), int(span["end"])
            assert 0 <= start < end <= len(text)
            assert text[start:end] == span["text"]
            assert span["type"] in notes.SPAN_TYPES
            if span["type"] in ("RRN", "FRN"):
                assert identity.is_valid_rrn(span["text"])
            if span["type"] == "DATE":
                assert re.search(r"\d", span["text"])
        total += len(spans)
    return total


def test_files_have_exactly_the_agreed_columns(omop_net: SynthResult) -> None:
    for site in SITES:
        head = (omop_net.folder / site / "notes.csv").read_text(encoding="utf-8").split("\n", 1)[0]
        assert head == "note_id,person_id,note_date,note_title,note_text"
        head = (
            (omop_net.folder / site / "note_spans.csv")
            .read_text(encoding="utf-8")
            .split("\n", 1)[0]
        )
        assert head == "note_id,start,end,type,text"


def test_gold_spans_match_the_note_text(omop_net: SynthResult) -> None:
    assert check_spans(omop_net) > 500


def test_gold_spans_match_in_the_other_formats(other_format: SynthResult) -> None:
    assert check_spans(other_format) > 100


def test_every_identifier_in_a_note_is_marked(omop_net: SynthResult) -> None:
    """Completeness: each occurrence of a patient's identifiers lies inside a span."""
    for site in SITES:
        by_id, spans = load(omop_net, site)
        people = {
            r["person_id"]: r for r in read_csv(omop_net.folder / site / "person_identifiers.csv")
        }
        covered: dict[str, list[tuple[int, int]]] = {}
        for span in spans:
            covered.setdefault(span["note_id"], []).append((int(span["start"]), int(span["end"])))
        for note_id, row in by_id.items():
            person = people[row["person_id"]]
            values = [
                person["mrn"],
                person["rrn"],
                person["phone"],
                person["email"],
                person["family_name"] + person["given_name"],
            ]
            for value in values:
                for match in re.finditer(re.escape(value), row["note_text"]):
                    assert any(
                        s <= match.start() and match.end() <= e for s, e in covered.get(note_id, [])
                    ), (value, note_id)


def test_all_kinds_of_identifiers_occur(omop_net: SynthResult) -> None:
    kinds = set()
    titles = set()
    for site in SITES:
        by_id, spans = load(omop_net, site)
        kinds |= {s["type"] for s in spans}
        titles |= {r["note_title"] for r in by_id.values()}
    assert kinds >= {"RRN", "PHONE", "EMAIL", "ADDRESS", "MRN", "NAME", "DATE"}
    assert titles == {"입원기록", "퇴원요약", "응급실 기록", "외래 경과기록"}


def test_notes_are_in_the_omop_note_table(omop_net: SynthResult) -> None:
    for site in SITES:
        table = read_csv(omop_net.folder / site / "note.csv")
        by_id, _ = load(omop_net, site)
        assert {r["note_id"] for r in table} == set(by_id)
        persons = {r["person_id"] for r in read_csv(omop_net.folder / site / "person.csv")}
        visits = {
            r["visit_occurrence_id"]
            for r in read_csv(omop_net.folder / site / "visit_occurrence.csv")
        }
        for row in table:
            assert row["person_id"] in persons
            assert row["visit_occurrence_id"] in visits
            assert row["note_text"] == by_id[row["note_id"]]["note_text"]
