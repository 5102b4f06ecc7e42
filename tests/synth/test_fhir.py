"""FHIR R4 transaction bundles: valid R4 (fhir.resources R4B models), references resolve."""

from __future__ import annotations

import json

import pytest

from pmhub.synth.service import SynthResult, generate

fhir_bundle = pytest.importorskip("fhir.resources.R4B.bundle")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    out = tmp_path_factory.mktemp("fhir") / "net"
    return generate(out, fmt="fhir", sites=2, patients=120, years=3, seed=8, workers=1)


def test_every_bundle_is_valid_r4(net: SynthResult) -> None:
    files = sorted(net.folder.glob("*/fhir/*.json"))
    assert len(files) > 100
    for path in files:
        bundle = fhir_bundle.Bundle.model_validate_json(path.read_text(encoding="utf-8"))
        assert bundle.type == "transaction"


def test_references_resolve_inside_the_bundle_or_by_identifier(net: SynthResult) -> None:
    for site in ("chuncheon_univ", "gangneung_general"):
        hospital = json.loads(
            (net.folder / site / "fhir" / "hospitalInformation.json").read_text(encoding="utf-8")
        )
        known = {e["request"]["ifNoneExist"] for e in hospital["entry"]}
        for path in sorted((net.folder / site / "fhir").glob("*.json")):
            if path.name == "hospitalInformation.json":
                continue
            bundle = json.loads(path.read_text(encoding="utf-8"))
            full_urls = {e["fullUrl"] for e in bundle["entry"]}
            assert len(full_urls) == len(bundle["entry"])
            assert bundle["entry"][0]["resource"]["resourceType"] == "Patient"
            for ref in _references(bundle):
                if ref.startswith("urn:uuid:"):
                    assert ref in full_urls
                else:
                    assert ref.split("?", 1)[1] in known, ref


def _references(node: object) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_references(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_references(item))
    return found


def test_coding_habits_differ_between_sites(net: SynthResult) -> None:
    def systems(site: str) -> set[str]:
        result: set[str] = set()
        for path in list((net.folder / site / "fhir").glob("*.json"))[:40]:
            bundle = json.loads(path.read_text(encoding="utf-8"))
            for entry in bundle["entry"]:
                if entry["resource"]["resourceType"] == "Condition":
                    result |= {c["system"] for c in entry["resource"]["code"]["coding"]}
        return result

    assert systems("chuncheon_univ") == {"urn:pmhub:kcd7", "http://snomed.info/sct"}
    assert systems("gangneung_general") == {"urn:pmhub:kcd7"}


def test_patients_carry_identifiers(net: SynthResult) -> None:
    path = next(
        p
        for p in (net.folder / "chuncheon_univ" / "fhir").glob("*.json")
        if p.name != "hospitalInformation.json"
    )
    patient = json.loads(path.read_text(encoding="utf-8"))["entry"][0]["resource"]
    types = {i["type"]["coding"][0]["code"] for i in patient["identifier"]}
    assert types == {"MR", "NI"}
    assert patient["telecom"][0]["value"].startswith("010-")


def test_notes_travel_as_document_references(net: SynthResult) -> None:
    import base64

    from .conftest import read_csv

    for site in ("chuncheon_univ", "gangneung_general"):
        texts = []
        for path in (net.folder / site / "fhir").glob("*.json"):
            for entry in json.loads(path.read_text(encoding="utf-8"))["entry"]:
                resource = entry["resource"]
                if resource["resourceType"] == "DocumentReference":
                    data = resource["content"][0]["attachment"]["data"]
                    texts.append(base64.b64decode(data).decode("utf-8"))
        notes = [r["note_text"] for r in read_csv(net.folder / site / "notes.csv")]
        assert sorted(texts) == sorted(notes)
        assert texts


def test_vaccinations_and_allergies_are_in_the_bundles(net: SynthResult) -> None:
    found: dict[str, list[dict[str, object]]] = {"Immunization": [], "AllergyIntolerance": []}
    for path in sorted(net.folder.glob("*/fhir/*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8")).get("entry", []):
            resource = entry["resource"]
            if resource["resourceType"] in found:
                found[resource["resourceType"]].append(resource)
    assert found["Immunization"]
    assert found["AllergyIntolerance"]
    for resource in found["Immunization"]:
        coding = resource["vaccineCode"]["coding"][0]  # type: ignore[index]
        assert coding["system"] == "http://hl7.org/fhir/sid/cvx"
        assert coding["code"] in {"140", "33"}
    for resource in found["AllergyIntolerance"]:
        assert resource["category"] in (["medication"], ["food"], ["environment"])
        assert resource["reaction"]
