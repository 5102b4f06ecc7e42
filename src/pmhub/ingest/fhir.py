"""FHIR R4 → OMOP: Bundles (JSON), single resources, and bulk-export NDJSON.

Resources are flattened into the same Synthea-shaped stage tables the Synthea importer
fills (one row per resource; an Observation with components gives one row per component,
as Synthea's CSV writes blood-pressure panels), and the shared clinical transform maps
them. Each stage row keeps its file, its position (the Bundle entry number, or the NDJSON
line) and the resource's JSON, so a row set aside is traceable.

References are resolved by ``fullUrl`` (``urn:uuid:…``), by ``Type/id`` (relative or
absolute), and by conditional ``Type?identifier=system|value`` (as Synthea writes for
organizations and practitioners). A reference to a resource that is neither in the input
nor in earlier loads sends the referring resource to quarantine, with the reason.

Conventions where FHIR and Synthea's CSV differ (documented, and the tests allow them):
* Encounter.class AMB stands for Synthea's ambulatory, wellness and outpatient classes
  (all three become visit concept 9202 either way).
* FHIR R4 Device has no encounter, so device_exposure rows have no visit.
* MedicationRequest's end is ``dispenseRequest.validityPeriod.end`` and its quantity
  ``dispenseRequest.quantity``; a request without them has no end.
* DiagnosticReport (which Synthea's CSV does not export) becomes a measurement or
  observation row of its code, without a value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from pmhub.ingest import clinical
from pmhub.ingest.engine import STAGE, Engine
from pmhub.ingest.errors import EmptyInputError, InputNotFoundError, NotFhirError
from pmhub.ingest.files import SourceFile, fingerprint, folder_files
from pmhub.ingest.plan import Plan
from pmhub.ingest.sqlgen import RAW_LIMIT
from pmhub.ingest.stage import QUARANTINE_DDL, Staged

Resource = dict[str, Any]
Row = dict[str, str | None]

SUPPORTED = (
    "Patient", "Encounter", "Condition", "Observation", "MedicationRequest",
    "MedicationStatement", "MedicationAdministration", "Procedure", "Immunization",
    "AllergyIntolerance", "DiagnosticReport", "Device", "Organization", "Practitioner",
    "Coverage",
)  # fmt: skip
# Read only to resolve references (a MedicationRequest's medicationReference).
LOOKUP_ONLY = ("Medication",)
CLASS_CODES = {
    "AMB": "ambulatory",
    "IMP": "inpatient",
    "ACUTE": "inpatient",
    "NONAC": "inpatient",
    "EMER": "emergency",
    "HH": "home",
    "VR": "virtual",
    "OBSENC": "outpatient",
    "SS": "outpatient",
}
RACES = {
    "white": "white",
    "black or african american": "black",
    "asian": "asian",
    "american indian or alaska native": "native",
    "native hawaiian or other pacific islander": "hawaiian",
}
ETHNICITIES = {"hispanic or latino": "hispanic", "not hispanic or latino": "nonhispanic"}
SUFFIXES = (".json", ".ndjson")
# Python's JSON reader recurses once per level and stops at its recursion limit (1,000):
# FHIR R4 resources nest a few dozen levels, so a deeper one is not a resource to map
TOO_DEEP = "JSON nested too deeply to read (FHIR resources nest a few dozen levels)"


@dataclass
class Entry:
    file: str
    line: int
    resource: Resource


@dataclass
class Parsed:
    entries: list[Entry] = field(default_factory=list)
    rejected: list[tuple[str, int, str, str, str]] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)


def discover(path: Path, encoding: str) -> Plan:
    if not path.exists():
        raise InputNotFoundError(f"{path} does not exist")
    plan = Plan(fmt="fhir", root=path if path.is_dir() else path.parent)
    files = folder_files(path, plan.ignored) if path.is_dir() else [path]
    for file in files:
        if file.suffix.lower() in SUFFIXES:
            plan.sources[file.name] = fingerprint(file, file.name, encoding)
        else:
            plan.ignored[file.name] = "not a .json or .ndjson file"
    if not plan.sources:
        raise EmptyInputError(
            f"{path} holds no FHIR files (.json Bundles or resources, .ndjson bulk exports)",
            hint="Point at a FHIR Bundle, an NDJSON file, or a folder of them.",
        )
    return plan


def stage(engine: Engine, plan: Plan) -> None:
    engine.run(QUARANTINE_DDL)
    parsed = Parsed()
    for source in plan.sources.values():
        _parse_file(source, parsed)
    for type_name, count in sorted(parsed.ignored.items()):
        plan.ignored[f"{type_name} resources"] = f"{count:,} not mapped to clinical tables"
    tables = _rows(parsed)
    for name, rows in tables.items():
        columns = [*clinical.COLUMNS[name], "_file", "_line", "_pos", "_raw"]
        data = pa.table({c: pa.array([r.get(c) for r in rows], pa.string()) for c in columns})
        engine.put(f"{name}_raw", data)
        engine.run(
            f"CREATE OR REPLACE TABLE {STAGE}.{name} AS SELECT * REPLACE "
            f"(CAST(_line AS BIGINT) AS _line, CAST(_pos AS BIGINT) AS _pos) "
            f"FROM {STAGE}.{name}_raw"
        )
    if parsed.rejected:
        engine.put("fhir_rejected", _rejected_table(parsed.rejected))
        engine.run(f"INSERT INTO {STAGE}.quarantine SELECT * FROM {STAGE}.fhir_rejected")
    _account(plan, tables, parsed)


def _rows(parsed: Parsed) -> dict[str, list[Row]]:
    """Stage rows per Synthea-shaped table; a resource that cannot be read is rejected."""
    index = _Index(parsed.entries)
    tables: dict[str, list[Row]] = {}
    for entry in parsed.entries:
        type_name = str(entry.resource.get("resourceType"))
        if type_name in LOOKUP_ONLY:
            continue
        try:
            raw = json.dumps(entry.resource, ensure_ascii=False)[:RAW_LIMIT]
        except (RecursionError, ValueError):  # (ValueError: a circular structure)
            parsed.rejected.append((entry.file, entry.line, type_name, TOO_DEEP, ""))
            continue
        try:
            flat = list(_flatten(entry, index))
        except (AttributeError, TypeError, IndexError, KeyError, ValueError) as exc:
            reason = f"malformed {type_name}: {type(exc).__name__} {exc}"[:500]
            parsed.rejected.append((entry.file, entry.line, type_name, reason, raw))
            continue
        for name, row in flat:
            rows = tables.setdefault(name, [])
            # _line orders and joins rows (unique); _pos is where the resource was
            row["_line"], row["_pos"] = str(len(rows) + 1), str(entry.line)
            row["_file"], row["_raw"] = entry.file, raw
            rows.append(row)
    return tables


def _rejected_table(rejected: list[tuple[str, int, str, str, str]]) -> pa.Table:
    return pa.table(
        {
            "file": pa.array([r[0] for r in rejected], pa.string()),
            "line": pa.array([r[1] for r in rejected], pa.int64()),
            "field": pa.array([r[2] for r in rejected], pa.string()),
            "reason": pa.array([r[3] for r in rejected], pa.string()),
            "raw": pa.array([r[4] for r in rejected], pa.string()),
        }
    )


def _account(plan: Plan, tables: dict[str, list[Row]], parsed: Parsed) -> None:
    good: dict[str, int] = {}
    for rows in tables.values():
        for row in rows:
            good[str(row["_file"])] = good.get(str(row["_file"]), 0) + 1
    bad: dict[str, int] = {}
    for file, *_ in parsed.rejected:
        bad[file] = bad.get(file, 0) + 1
    present = tuple(tables)
    for name, source in plan.sources.items():
        plan.staged[name] = Staged(source, name, present, good.get(name, 0), bad.get(name, 0))
    plan.present = set(present)


def transform(engine: Engine, plan: Plan, bases: dict[str, int], now: str) -> None:
    clinical.Transform(engine, bases, now, present=plan.present, load_id=plan.load_id).run()


def publish_order(engine: Engine) -> list[str]:
    return list(clinical.PUBLISH_ORDER)


def derived(plan: Plan) -> list[str]:
    return ["observation_period", "condition_era", "drug_era"]


# --- reading ---------------------------------------------------------------------------


def _parse_file(source: SourceFile, parsed: Parsed) -> None:
    codec = "utf-8-sig" if source.encoding.startswith("utf-8") else source.encoding
    if source.path.suffix.lower() == ".ndjson":
        with source.path.open(encoding=codec, errors="replace") as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    _take(source.name, number, line, parsed)
        return
    text = source.path.read_text(encoding=codec, errors="replace")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotFhirError(f"{source.name} is not JSON: {exc.msg} at line {exc.lineno}") from exc
    except RecursionError:
        # one document: nothing in it can be read, and it is accounted as one rejected row
        parsed.rejected.append((source.name, 1, "", TOO_DEEP, text[:RAW_LIMIT]))
        return
    if not isinstance(document, dict) or "resourceType" not in document:
        raise NotFhirError(f"{source.name} is JSON but not a FHIR resource (no resourceType)")
    if document["resourceType"] != "Bundle":
        _add(source.name, 1, document, parsed)
        return
    entries = document.get("entry") or []
    if not isinstance(entries, list):
        raise NotFhirError(f"{source.name}: Bundle.entry is not a list")
    for number, entry in enumerate(entries, start=1):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or "resourceType" not in resource:
            raw = json.dumps(entry, ensure_ascii=False)[:RAW_LIMIT]
            reason = "entry without a resource"
            parsed.rejected.append((source.name, number, "resource", reason, raw))
            continue
        if isinstance(entry, dict) and entry.get("fullUrl"):
            resource = {**resource, "_fullUrl": entry["fullUrl"]}
        _add(source.name, number, resource, parsed)


def _take(file: str, number: int, line: str, parsed: Parsed) -> None:
    try:
        resource = json.loads(line)
    except json.JSONDecodeError as exc:
        parsed.rejected.append((file, number, "", f"invalid JSON: {exc.msg}", line[:RAW_LIMIT]))
        return
    except RecursionError:
        parsed.rejected.append((file, number, "", TOO_DEEP, line[:RAW_LIMIT]))
        return
    if not isinstance(resource, dict) or "resourceType" not in resource:
        reason = "not a FHIR resource (no resourceType)"
        parsed.rejected.append((file, number, "resourceType", reason, line[:RAW_LIMIT]))
        return
    _add(file, number, resource, parsed)


def _add(file: str, number: int, resource: Resource, parsed: Parsed) -> None:
    kind = str(resource["resourceType"])
    if kind in SUPPORTED or kind in LOOKUP_ONLY:
        parsed.entries.append(Entry(file, number, resource))
    else:
        parsed.ignored[kind] = parsed.ignored.get(kind, 0) + 1


class _Index:
    """Resolves references to the referenced resource's id (or the reference's own id
    when the input does not hold it, so that validation can name what is missing)."""

    def __init__(self, entries: list[Entry]) -> None:
        self.by_url: dict[str, Resource] = {}
        self.by_identifier: dict[str, str] = {}
        for entry in entries:
            r = entry.resource
            rid = str(r.get("id", ""))
            kind = str(r["resourceType"])
            if r.get("_fullUrl"):
                self.by_url[str(r["_fullUrl"])] = r
            if rid:
                self.by_url[f"{kind}/{rid}"] = r
            for ident in r.get("identifier") or []:
                if isinstance(ident, dict) and ident.get("value"):
                    key = f"{kind}?identifier={ident.get('system', '')}|{ident['value']}"
                    self.by_identifier[key] = rid

    def id(self, reference: Any) -> str | None:
        if not isinstance(reference, dict):
            return None
        ref = reference.get("reference")
        if not isinstance(ref, str) or not ref:
            return None
        if ref in self.by_url:
            return str(self.by_url[ref].get("id") or ref.rsplit(":", 1)[-1])
        if ref in self.by_identifier:
            return self.by_identifier[ref]
        if "?identifier=" in ref:
            return ref.rsplit("|", 1)[-1]
        if ref.startswith("urn:uuid:"):
            return ref.removeprefix("urn:uuid:")
        parts = ref.rstrip("/").split("/")
        return parts[-1] if len(parts) >= 2 else ref

    def resource(self, reference: Any) -> Resource | None:
        if isinstance(reference, dict) and isinstance(reference.get("reference"), str):
            return self.by_url.get(reference["reference"])
        return None


# --- flattening ---------------------------------------------------------------------------


def _coding(concept: Any) -> tuple[str | None, str | None, str | None]:
    """(code, system, display) of a CodeableConcept's first coding."""
    if not isinstance(concept, dict):
        return None, None, None
    codings = concept.get("coding") or []
    first = codings[0] if codings and isinstance(codings[0], dict) else {}
    display = first.get("display") or concept.get("text")
    return _s(first.get("code")), _s(first.get("system")), _s(display)


def _s(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _period(r: Resource, name: str) -> tuple[str | None, str | None]:
    period = r.get(f"{name}Period")
    if isinstance(period, dict):
        return _s(period.get("start")), _s(period.get("end"))
    return _s(r.get(f"{name}DateTime")), None


def _flatten(entry: Entry, index: _Index) -> Iterator[tuple[str, Row]]:
    r = entry.resource
    kind = r["resourceType"]
    handler = _HANDLERS[kind]
    yield from handler(r, index)


def _patient(r: Resource, index: _Index) -> Iterator[tuple[str, Row]]:
    address = (r.get("address") or [{}])[0]
    lat = lon = None
    for ext in address.get("extension") or []:
        for sub in ext.get("extension") or []:
            if sub.get("url") == "latitude":
                lat = _s(sub.get("valueDecimal"))
            if sub.get("url") == "longitude":
                lon = _s(sub.get("valueDecimal"))
    gender = {"male": "M", "female": "F"}.get(str(r.get("gender", "")).lower(), _s(r.get("gender")))
    yield (
        "patients",
        {
            "id": _s(r.get("id")),
            "birthdate": _s(r.get("birthDate")),
            "deathdate": _s(r.get("deceasedDateTime")),
            "race": _category(r, "us-core-race", RACES),
            "ethnicity": _category(r, "us-core-ethnicity", ETHNICITIES),
            "gender": gender,
            "address": _s((address.get("line") or [None])[0]),
            "city": _s(address.get("city")),
            "state": _s(address.get("state")),
            "county": _s(address.get("district")),
            "zip": _s(address.get("postalCode")),
            "lat": lat,
            "lon": lon,
        },
    )


def _category(r: Resource, url_part: str, names: dict[str, str]) -> str | None:
    for ext in r.get("extension") or []:
        if url_part not in str(ext.get("url", "")):
            continue
        for sub in ext.get("extension") or []:
            if sub.get("url") == "ombCategory":
                display = str((sub.get("valueCoding") or {}).get("display", "")).lower()
                return names.get(display, display or None)
            if sub.get("url") == "text":
                text = str(sub.get("valueString", "")).lower()
                return names.get(text, text or None)
    return None


def _encounter(r: Resource, index: _Index) -> Iterator[tuple[str, Row]]:
    period = r.get("period") or {}
    start, stop = _s(period.get("start")), _s(period.get("end"))
    klass = r.get("class") or {}
    code = str(klass.get("code", "")).upper() if isinstance(klass, dict) else ""
    participants = r.get("participant") or [{}]
    code_value, _, _ = _coding((r.get("type") or [None])[0])
    yield (
        "encounters",
        {
            "id": _s(r.get("id")),
            "start": start,
            "stop": stop,
            "patient": index.id(r.get("subject")),
            "organization": index.id(r.get("serviceProvider")),
            "provider": index.id(participants[0].get("individual")),
            "encounterclass": CLASS_CODES.get(code, code.lower() or None),
            "code": code_value,
        },
    )


def _condition(r: Resource, index: _Index) -> Iterator[tuple[str, Row]]:
    code, system, _ = _coding(r.get("code"))
    start, _ = _period(r, "onset")
    stop, _ = _period(r, "abatement")
    yield (
        "conditions",
        {
            "start": start or _s(r.get("recordedDate")),
            "stop": stop,
            "patient": index.id(r.get("subject")),
            "encounter": index.id(r.get("encounter")),
            "system": _system(system),
            "code": code,
        },
    )


def _system(url: str | None) -> str | None:
    """Synthea 3.0 conditions carry no system: SNOMED is the default, so say None for it."""
    if url is None or "snomed" in url.lower():
        return None
    return url


def _observation(r: Resource, index: _Index) -> Iterator[tuple[str, Row]]:
    date, _ = _period(r, "effective")
    category, _, _ = _coding((r.get("category") or [None])[0])
    base = {
        "date": date or _s(r.get("issued")),
        "patient": index.id(r.get("subject")),
        "encounter": index.id(r.get("encounter")),
        "category": category,
    }
    components = r.get("component") or []
    parts = components if components else [r]
    for part in parts:
        code, _, _ = _coding(part.get("code"))
        value, units = _value(part)
        yield "observations", {**base, "code": code, "value": value, "units": units}


def _value(part: Resource) -> tuple[str | None, str | None]:
    """An observation's value and units, as text."""
    quantity = part.get("valueQuantity")
    if isinstance(quantity, dict):
        units = quantity.get("code") or quantity.get("unit")
        return _s(quantity.get("value")), _s(units)
    concept = part.get("valueCodeableConcept")
    if isinstance(concept, dict):
        _, _, display = _coding(concept)
        return display, None
    for key in ("valueString", "valueInteger", "valueBoolean"):
        if key in part:
            return _s(part[key]), None
    return None, None


def _report(r: Resource, index: _Index) -> Iterator[tuple[str, Row]]:
    date, _ = _period(r, "effective")
    category, _, _ = _coding((r.get("category") or [None])[0])
    code, _, _ = _coding(r.get("code"))
    yield (
        "observations",
        {
            "date": date or _s(r.get("issued")),
            "patient": index.id(r.get("subject")),
            "encounter": index.id(r.get("encounter")),
            "category": category or "diagnostic-report",
            "code": code,
        },
    )


def _medication(r: Resource, index: _Index) -> Iterator[tuple[str, Row]]:
    kind = r["resourceType"]
    code, _, _ = _coding(r.get("medicationCodeableConcept"))
    if code is None:
        med = index.resource(r.get("medicationReference"))
        code, _, _ = _coding(med.get("code") if med else None)
    if kind == "MedicationRequest":
        dispense = r.get("dispenseRequest") or {}
        start = _s(r.get("authoredOn"))
        stop = _s((dispense.get("validityPeriod") or {}).get("end"))
        quantity = _s((dispense.get("quantity") or {}).get("value"))
    else:
        start, stop = _period(r, "effective")
        quantity = None
    encounter = r.get("encounter") or r.get("context")
    yield (
        "medications",
        {
            "start": start,
            "stop": stop,
            "patient": index.id(r.get("subject")),
            "encounter": index.id(encounter),
            "code": code,
            "dispenses": quantity,
        },
    )


def _procedure(r: Resource, index: _Index) -> Iterator[tuple[str, Row]]:
    start, stop = _period(r, "performed")
    code, system, _ = _coding(r.get("code"))
    yield (
        "procedures",
        {
            "start": start,
            "stop": stop,
            "patient": index.id(r.get("subject")),
            "encounter": index.id(r.get("encounter")),
            "system": _system(system),
            "code": code,
        },
    )


def _immunization(r: Resource, index: _Index) -> Iterator[tuple[str, Row]]:
    code, _, _ = _coding(r.get("vaccineCode"))
    date, _ = _period(r, "occurrence")
    yield (
        "immunizations",
        {
            "date": date,
            "patient": index.id(r.get("patient")),
            "encounter": index.id(r.get("encounter")),
            "code": code,
        },
    )


def _allergy(r: Resource, index: _Index) -> Iterator[tuple[str, Row]]:
    code, system, _ = _coding(r.get("code"))
    onset, _ = _period(r, "onset")
    categories = r.get("category") or [None]
    yield (
        "allergies",
        {
            "start": onset or _s(r.get("recordedDate")),
            "stop": _s(r.get("lastOccurrence")),
            "patient": index.id(r.get("patient")),
            "encounter": index.id(r.get("encounter")),
            "system": _system(system),
            "code": code,
            "category": _s(categories[0]),
        },
    )


def _device(r: Resource, index: _Index) -> Iterator[tuple[str, Row]]:
    code, _, _ = _coding(r.get("type"))
    carrier = (r.get("udiCarrier") or [{}])[0]
    yield (
        "devices",
        {
            "start": _s(r.get("manufactureDate")),
            "stop": None,
            "patient": index.id(r.get("patient")),
            "encounter": None,
            "code": code,
            "udi": _s(carrier.get("carrierHRF") or carrier.get("deviceIdentifier")),
        },
    )


def _organization(r: Resource, index: _Index) -> Iterator[tuple[str, Row]]:
    address = (r.get("address") or [{}])[0]
    yield (
        "organizations",
        {
            "id": _s(r.get("id")),
            "name": _s(r.get("name")),
            "address": _s((address.get("line") or [None])[0]),
            "city": _s(address.get("city")),
            "state": _s(address.get("state")),
            "zip": _s(address.get("postalCode")),
        },
    )


def _practitioner(r: Resource, index: _Index) -> Iterator[tuple[str, Row]]:
    names = r.get("name") or [{}]
    name = names[0]
    text = " ".join([*(name.get("given") or []), str(name.get("family", ""))]).strip()
    yield (
        "providers",
        {
            "id": _s(r.get("id")),
            "organization": None,
            "name": text or None,
            "gender": {"male": "M", "female": "F"}.get(str(r.get("gender", ""))),
            "speciality": None,
        },
    )


def _coverage(r: Resource, index: _Index) -> Iterator[tuple[str, Row]]:
    """Coverage → a payer transition (→ payer_plan_period): the beneficiary, the first
    payor (its id; its name from the resource or the reference's display), the period."""
    payor = (r.get("payor") or [{}])[0]
    found = index.resource(payor) or {}
    period: Resource = r["period"] if isinstance(r.get("period"), dict) else {}
    start, end = _s(period.get("start")), _s(period.get("end"))
    yield (
        "payer_transitions",
        {
            "patient": index.id(r.get("beneficiary")),
            "memberid": _s(r.get("subscriberId")),
            "start_date": start,
            "end_date": end,
            "payer": index.id(payor) or _s(payor.get("display")),
            "payer_name": _s(found.get("name")) or _s(payor.get("display")),
        },
    )


_HANDLERS = {
    "Patient": _patient,
    "Encounter": _encounter,
    "Condition": _condition,
    "Observation": _observation,
    "DiagnosticReport": _report,
    "MedicationRequest": _medication,
    "MedicationStatement": _medication,
    "MedicationAdministration": _medication,
    "Procedure": _procedure,
    "Immunization": _immunization,
    "AllergyIntolerance": _allergy,
    "Device": _device,
    "Organization": _organization,
    "Practitioner": _practitioner,
    "Coverage": _coverage,
}
