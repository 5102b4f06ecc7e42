"""Write a Synthea CSV export as a FHIR R4 transaction Bundle, the way Synthea's FHIR
exporter shapes it (urn:uuid fullUrls, conditional references to organizations and
practitioners, US Core race and ethnicity extensions), so that the same data can be
ingested from both formats and compared."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
ORG_ID = "https://github.com/synthetichealth/synthea"
CLASSES = {
    "ambulatory": "AMB",
    "wellness": "AMB",
    "outpatient": "AMB",
    "inpatient": "IMP",
    "emergency": "EMER",
    "urgentcare": "AMB",
}
RACES = {"white": "White", "black": "Black or African American", "asian": "Asian"}
ETHNICITIES = {"hispanic": "Hispanic or Latino", "nonhispanic": "Not Hispanic or Latino"}


def rows(folder: Path, name: str) -> list[dict[str, str]]:
    path = folder / f"{name}.csv"
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def ref(kind: str, rid: str) -> dict[str, str]:
    return {"reference": f"urn:uuid:{rid}"} if kind else {}


def concept(system: str, code: str, display: str = "") -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding], "text": display or code}


def bundle(folder: Path) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []

    def add(resource: dict[str, Any]) -> None:
        entries.append(
            {
                "fullUrl": f"urn:uuid:{resource['id']}",
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )

    for org in rows(folder, "organizations"):
        add(
            {
                "resourceType": "Organization",
                "id": org["Id"],
                "identifier": [{"system": ORG_ID, "value": org["Id"]}],
                "name": org["NAME"],
                "address": [
                    {
                        "line": [org["ADDRESS"]],
                        "city": org["CITY"],
                        "state": org["STATE"],
                        "postalCode": org["ZIP"],
                    }
                ],
            }
        )
    for pr in rows(folder, "providers"):
        given, family = pr["NAME"].split(" ", 1)
        add(
            {
                "resourceType": "Practitioner",
                "id": pr["Id"],
                "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": pr["Id"]}],
                "name": [{"given": [given], "family": family}],
                "gender": {"M": "male", "F": "female"}[pr["GENDER"]],
            }
        )
    for p in rows(folder, "patients"):
        add(_patient(p))
    for e in rows(folder, "encounters"):
        add(_encounter(e))
    for n, c in enumerate(rows(folder, "conditions")):
        add(_condition(n, c))
    for n, m in enumerate(rows(folder, "medications")):
        add(_medication(n, m))
    for n, i in enumerate(rows(folder, "immunizations")):
        add(
            {
                "resourceType": "Immunization",
                "id": f"imm-{n}",
                "status": "completed",
                "vaccineCode": concept(CVX, i["CODE"], i["DESCRIPTION"]),
                "patient": ref("Patient", i["PATIENT"]),
                "encounter": ref("Encounter", i["ENCOUNTER"]),
                "occurrenceDateTime": i["DATE"],
                "primarySource": True,
            }
        )
    for n, pr in enumerate(rows(folder, "procedures")):
        add(
            {
                "resourceType": "Procedure",
                "id": f"proc-{n}",
                "status": "completed",
                "code": concept(SNOMED, pr["CODE"], pr["DESCRIPTION"]),
                "subject": ref("Patient", pr["PATIENT"]),
                "encounter": ref("Encounter", pr["ENCOUNTER"]),
                "performedPeriod": {"start": pr["START"], "end": pr["STOP"]},
            }
        )
    for n, o in enumerate(rows(folder, "observations")):
        add(_observation(n, o))
    for n, a in enumerate(rows(folder, "allergies")):
        system = RXNORM if a["SYSTEM"] == "RxNorm" else SNOMED
        add(
            {
                "resourceType": "AllergyIntolerance",
                "id": f"allergy-{n}",
                "type": a["TYPE"],
                "category": [a["CATEGORY"]],
                "code": concept(system, a["CODE"], a["DESCRIPTION"]),
                "patient": ref("Patient", a["PATIENT"]),
                "encounter": ref("Encounter", a["ENCOUNTER"]),
                "recordedDate": a["START"],
            }
        )
    for n, d in enumerate(rows(folder, "devices")):
        add(
            {
                "resourceType": "Device",
                "id": f"device-{n}",
                "udiCarrier": [{"deviceIdentifier": d["UDI"][4:18], "carrierHRF": d["UDI"]}],
                "type": concept(SNOMED, d["CODE"], d["DESCRIPTION"]),
                "patient": ref("Patient", d["PATIENT"]),
                "manufactureDate": d["START"],
            }
        )
    payers = {py["Id"]: py["NAME"] for py in rows(folder, "payers")}
    for n, t in enumerate(rows(folder, "payer_transitions")):
        # Synthea 3.0 writes START_YEAR/END_YEAR; FHIR dateTime takes a year or a time
        add(
            {
                "resourceType": "Coverage",
                "id": f"coverage-{n}",
                "status": "active",
                "subscriberId": t["MEMBERID"],
                "beneficiary": ref("Patient", t["PATIENT"]),
                "period": {"start": t["START_YEAR"], "end": t["END_YEAR"]},
                "payor": [
                    {
                        "reference": f"Organization?identifier={ORG_ID}|{t['PAYER']}",
                        "display": payers.get(t["PAYER"], ""),
                    }
                ],
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _patient(p: dict[str, str]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": p["Id"],
        "extension": [
            _omb("us-core-race", "urn:oid:2.16.840.1.113883.6.238", RACES.get(p["RACE"], "Other")),
            _omb(
                "us-core-ethnicity",
                "urn:oid:2.16.840.1.113883.6.238",
                ETHNICITIES.get(p["ETHNICITY"], "Other"),
            ),
        ],
        "name": [{"use": "official", "family": p["LAST"], "given": [p["FIRST"]]}],
        "gender": {"M": "male", "F": "female"}[p["GENDER"]],
        "birthDate": p["BIRTHDATE"],
        "address": [
            {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/geolocation",
                        "extension": [
                            {"url": "latitude", "valueDecimal": float(p["LAT"])},
                            {"url": "longitude", "valueDecimal": float(p["LON"])},
                        ],
                    }
                ],
                "line": [p["ADDRESS"]],
                "city": p["CITY"],
                "district": p["COUNTY"],
                "state": p["STATE"],
                **({"postalCode": p["ZIP"]} if p["ZIP"] else {}),
                "country": "US",
            }
        ],
    }
    if p["DEATHDATE"]:
        resource["deceasedDateTime"] = p["DEATHDATE"]
    return resource


def _omb(name: str, system: str, display: str) -> dict[str, Any]:
    return {
        "url": f"http://hl7.org/fhir/us/core/StructureDefinition/{name}",
        "extension": [
            {
                "url": "ombCategory",
                "valueCoding": {"system": system, "code": "x", "display": display},
            },
            {"url": "text", "valueString": display},
        ],
    }


def _encounter(e: dict[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": e["Id"],
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": CLASSES[e["ENCOUNTERCLASS"]],
        },
        "type": [concept(SNOMED, e["CODE"], e["DESCRIPTION"])],
        "subject": ref("Patient", e["PATIENT"]),
        "participant": [
            {
                "individual": {
                    "reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|"
                    + e["PROVIDER"]
                }
            }
        ],
        "period": {"start": e["START"], "end": e["STOP"]},
        "serviceProvider": {"reference": f"Organization?identifier={ORG_ID}|{e['ORGANIZATION']}"},
    }


def _condition(n: int, c: dict[str, str]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": f"cond-{n}",
        "code": concept(SNOMED, c["CODE"], c["DESCRIPTION"]),
        "subject": ref("Patient", c["PATIENT"]),
        "onsetDateTime": c["START"],
        "recordedDate": c["START"],
    }
    if c["ENCOUNTER"]:
        resource["encounter"] = ref("Encounter", c["ENCOUNTER"])
    if c["STOP"]:
        resource["abatementDateTime"] = c["STOP"]
    return resource


def _medication(n: int, m: dict[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": f"med-{n}",
        "status": "stopped" if m["STOP"] else "active",
        "intent": "order",
        "medicationCodeableConcept": concept(RXNORM, m["CODE"], m["DESCRIPTION"]),
        "subject": ref("Patient", m["PATIENT"]),
        "encounter": ref("Encounter", m["ENCOUNTER"]),
        "authoredOn": m["START"],
        "dispenseRequest": {
            "validityPeriod": {"start": m["START"], "end": m["STOP"]},
            "quantity": {"value": float(m["DISPENSES"])},
        },
    }


def _observation(n: int, o: dict[str, str]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"obs-{n}",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": o["CATEGORY"],
                    }
                ]
            }
        ],
        "code": concept(LOINC, o["CODE"], o["DESCRIPTION"]),
        "subject": ref("Patient", o["PATIENT"]),
        "encounter": ref("Encounter", o["ENCOUNTER"]),
        "effectiveDateTime": o["DATE"],
    }
    if o["TYPE"] == "numeric":
        resource["valueQuantity"] = {
            "value": float(o["VALUE"]),
            "unit": o["UNITS"],
            "system": "http://unitsofmeasure.org",
            "code": o["UNITS"],
        }
    else:
        resource["valueCodeableConcept"] = {"text": o["VALUE"]}
    return resource


def write_bundle(folder: Path, target: Path) -> Path:
    target.write_text(json.dumps(bundle(folder), indent=1), encoding="utf-8")
    return target


def write_ndjson(folder: Path, target: Path) -> Path:
    """The same resources as bulk export writes them: one NDJSON file per type, relative
    ``Type/id`` references instead of urn:uuid."""
    target.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[str]] = {}
    for entry in bundle(folder)["entry"]:
        text = json.dumps(entry["resource"])
        by_type.setdefault(entry["resource"]["resourceType"], []).append(_relative(text))
    for kind, lines in by_type.items():
        (target / f"{kind}.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def _relative(text: str) -> str:
    """urn:uuid references → Type/id (a bulk export has no fullUrls)."""
    resource = json.loads(text)
    for key in ("subject", "patient", "encounter", "beneficiary"):
        value = resource.get(key)
        if isinstance(value, dict) and str(value.get("reference", "")).startswith("urn:uuid:"):
            kind = "Encounter" if key == "encounter" else "Patient"
            value["reference"] = f"{kind}/{value['reference'].removeprefix('urn:uuid:')}"
    return json.dumps(resource)
