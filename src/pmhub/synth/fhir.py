"""FHIR R4 transaction bundles, one per patient and hospital (as Synthea writes them),
plus one bundle per hospital with its Organization and Practitioners. Vaccinations and
allergies are the Synthea export's (``synthea_extra``), as Immunization and
AllergyIntolerance resources.

Patients reference their hospital and doctors by conditional references on identifiers
(``Organization?identifier=...``), the way Synthea links patient bundles to its
hospital and practitioner bundles. Coding habits follow the site: KCD-7 only, or KCD-7
and SNOMED CT side by side. KCD-7 has no FHIR system URI of its own in this network:
``urn:pmhub:kcd7`` stands for it (swap in the national URI when one is adopted).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pmhub.synth import ids, refdata
from pmhub.synth.chunk import ID_BLOCK, Chunk
from pmhub.synth.config import SynthConfig
from pmhub.synth.model import Arr
from pmhub.synth.notes import NoteRows, site_notes
from pmhub.synth.omop import note_files, note_headers, site_values, staff
from pmhub.synth.records import COND_KEYS, DRUG_KEYS, ER, IP, MEAS_KEYS, PROC_KEYS

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
UCUM = "http://unitsofmeasure.org"
KCD7 = "urn:pmhub:kcd7"
ID_SYSTEM = "https://pmhub.example.org/fhir/identifier"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CVX = "http://hl7.org/fhir/sid/cvx"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
NOTE_TYPES = {
    "admission": ("34117-2", "History and physical note"),
    "discharge": ("18842-5", "Discharge summary"),
    "emergency": ("34111-5", "Emergency department note"),
    "outpatient": ("11506-3", "Progress note"),
}
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
VITALS = {"sbp", "dbp", "hr", "weight", "height", "bmi"}
SMOKING = (
    ("266919005", "Never smoked tobacco"),
    ("8517006", "Ex-smoker"),
    ("449868002", "Smokes tobacco daily"),
)
EPOCH = np.datetime64("1970-01-01", "s")


def _iso(days: Arr, seconds: Arr) -> list[str]:
    """ISO 8601 instants in UTC for arrays of days and seconds of the day."""
    stamps = pa.array(days.astype(np.int64) * 86_400 + seconds.astype(np.int64), pa.timestamp("s"))
    text: list[Any] = pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%SZ").to_pylist()
    return text


def _date(day: int) -> str:
    return str(np.datetime64("1970-01-01", "D") + np.timedelta64(int(day), "D"))


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _entry(uuid: str, resource: dict[str, Any]) -> dict[str, Any]:
    resource["id"] = uuid
    return {
        "fullUrl": f"urn:uuid:{uuid}",
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def _chunk_times(chunk: Chunk) -> dict[str, list[str]]:
    """ISO times of every row of a chunk, the same at every site (computed once per chunk)."""
    if "fhir_times" not in chunk.cache:
        t = chunk.tables
        v = t["visits"]
        end_sec = np.where(
            v["end"] > v["start"], v["end_sec"], np.maximum(v["end_sec"], v["start_sec"])
        )
        m, o, p = t["measurements"], t["observations"], t["procedures"]
        chunk.cache["fhir_times"] = {
            "visit_start": _iso(v["start"], v["start_sec"]),
            "visit_end": _iso(v["end"], end_sec),
            "drug": _iso(t["drugs"]["day"], v["start_sec"][t["drugs"]["visit"]]),
            "meas": _iso(m["day"], m["sec"]),
            "obs": _iso(o["day"], v["start_sec"][o["visit"]]),
            "proc": _iso(p["day"], p["sec"]),
            "proc_end": _iso(p["day"], np.minimum(p["sec"] + 1800, 86_399)),
        }
    result: dict[str, list[str]] = chunk.cache["fhir_times"]
    return result


class PatientBundles:
    """The bundles of one site's patients in one chunk."""

    def __init__(
        self, chunk: Chunk, site: int, config: SynthConfig, notes: NoteRows | None = None
    ) -> None:
        self.notes = notes
        self.c = chunk
        self.site = site
        self.spec = refdata.sites()[site]
        self.seed = config.seed
        v = chunk.tables["visits"]
        self.visit_uuid = ids.uuid_list(
            config.seed, ids.ENCOUNTER, chunk.index * ID_BLOCK + np.arange(len(v["site"])) + 1
        )
        self.org_ref = f"Organization?identifier={ID_SYSTEM}/organization|{self.spec.name}"
        self.conds = refdata.conditions()
        self._prepare(chunk, config)

    def _prepare(self, chunk: Chunk, config: SynthConfig) -> None:
        """Per-row ids, times and values of every table, computed at once (vectorised)."""
        t = chunk.tables
        self.uuid: dict[str, list[str]] = {}
        for space, name in enumerate(
            ("conditions", "drugs", "measurements", "observations", "procedures")
        ):
            rows = chunk.index * ID_BLOCK + np.arange(len(t[name]["visit"]))
            self.uuid[name] = ids.uuid_list(
                config.seed, ids.RESOURCE * 100 + space * 10 + self.site, rows
            )
        times = _chunk_times(chunk)
        self.visit_start, self.visit_end = times["visit_start"], times["visit_end"]
        self.drug_time, self.meas_time = times["drug"], times["meas"]
        self.obs_time, self.proc_start, self.proc_end = (
            times["obs"],
            times["proc"],
            times["proc_end"],
        )
        m = t["measurements"]
        value, unit, _ = site_values(self.spec, m["measure"], m["value"])
        self.meas_value = value.tolist()
        self.meas_unit = unit.to_pylist()
        self.meas_key = m["measure"].tolist()
        self.meas_visit = m["visit"].tolist()
        # resources share these (read-only) parts; the JSON writer copies them out
        self.encounter_ref = [{"reference": f"urn:uuid:{u}"} for u in self.visit_uuid]
        measures = refdata.measures()
        self.meas_code = [
            {
                "coding": [_coding(LOINC, measures[k].loinc, measures[k].description)],
                "text": measures[k].name_ko,
            }
            for k in MEAS_KEYS
        ]
        self.meas_category = [
            [{"coding": [_coding(OBSERVATION_CATEGORY, c, c)]}]
            for c in ("vital-signs" if k in VITALS else "laboratory" for k in MEAS_KEYS)
        ]
        n = self.notes
        self.note_time = _iso(np.array(n.day, dtype=np.int64), np.array(n.sec)) if n else []

    def _doctor(self, provider: int) -> dict[str, str]:
        query = f"identifier={ID_SYSTEM}/practitioner|{self.spec.name}-{provider + 1}"
        return {"reference": f"Practitioner?{query}"}

    def bundles(self) -> dict[str, bytes]:
        people = np.flatnonzero(self.c.site_person[:, self.site] > 0)
        rows = self._rows_by_person()
        result: dict[str, bytes] = {}
        patient_uuids = ids.uuid_list(
            self.seed, ids.PATIENT, self.c.state.key[people] * 64 + self.site
        )
        for person, uuid in zip(people.tolist(), patient_uuids, strict=True):
            entries = self._patient_entries(person, uuid, rows)
            bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
            # orjson writes the same bytes as json.dumps(ensure_ascii=False, compact), faster
            result[f"{self.spec.name}/fhir/{uuid}.json"] = orjson.dumps(bundle)
        return result

    @property
    def notes_by_person(self) -> dict[int, list[int]]:
        if not hasattr(self, "_notes_by_person"):
            grouped: dict[int, list[int]] = {}
            for i, person in enumerate(self.notes.person if self.notes else []):
                grouped.setdefault(person, []).append(i)
            self._notes_by_person = grouped
        return self._notes_by_person

    def _document(self, index: int, subject: dict[str, str]) -> dict[str, Any]:
        """A note as a DocumentReference with its text inline (UTF-8, base64)."""
        assert self.notes is not None
        n = self.notes
        code, display = NOTE_TYPES[n.kind[index]]
        visit = n.visit_id[index] - self.c.index * ID_BLOCK - 1
        data = base64.b64encode(n.text[index].encode("utf-8")).decode("ascii")
        uuid = ids.uuid_one(self.seed, ids.RESOURCE * 100 + 90 + self.site, n.note_id[index])
        resource = {
            "resourceType": "DocumentReference",
            "status": "current",
            "type": {"coding": [_coding(LOINC, code, display)], "text": n.title[index]},
            "subject": subject,
            "date": self.note_time[index],
            "author": [self._doctor(int(self.c.tables["visits"]["provider"][visit]))],
            "content": [
                {
                    "attachment": {
                        "contentType": "text/plain; charset=utf-8",
                        "language": "ko",
                        "data": data,
                        "title": n.title[index],
                    }
                }
            ],
            "context": {"encounter": [{"reference": f"urn:uuid:{self.visit_uuid[visit]}"}]},
        }
        return _entry(uuid, resource)

    def _rows_by_person(self) -> dict[str, dict[int, Arr]]:
        """For each table, the row indices of this site's rows per person."""
        v = self.c.tables["visits"]
        result: dict[str, dict[int, Arr]] = {}
        for name in ("visits", "conditions", "drugs", "measurements", "procedures", "observations"):
            t = self.c.tables[name]
            visit = np.arange(len(v["site"])) if name == "visits" else t["visit"]
            mine = (
                np.flatnonzero(v["site"][visit] == self.site)
                if len(visit)
                else np.zeros(0, np.int64)
            )
            person = v["person"][visit[mine]]
            order = np.argsort(person, kind="stable")
            groups = (
                np.split(mine[order], np.flatnonzero(np.diff(person[order])) + 1)
                if len(order)
                else []
            )
            result[name] = {int(v["person"][visit[g[0]]]): g for g in groups if len(g)}
        return result

    def _patient_entries(
        self, person: int, uuid: str, rows: dict[str, dict[int, Arr]]
    ) -> list[dict[str, Any]]:
        empty = np.zeros(0, dtype=np.int64)
        entries = [_entry(uuid, self._patient(person))]
        subject = {"reference": f"urn:uuid:{uuid}"}
        for visit in rows["visits"].get(person, empty).tolist():
            entries.append(_entry(self.visit_uuid[visit], self._encounter(visit, subject)))
        builders = (
            ("conditions", self._condition),
            ("drugs", self._medication),
            ("measurements", self._observation),
            ("observations", self._smoking),
            ("procedures", self._procedure),
        )
        for table, build in builders:
            ids_ = self.uuid[table]
            for row in rows[table].get(person, empty).tolist():
                entries.append(_entry(ids_[row], build(row, subject)))
        for index in self.notes_by_person.get(person, []):
            entries.append(self._document(index, subject))
        for name, build in (("vaccinations", self._immunization), ("allergies", self._allergy)):
            for row in self.extra_by_person[name].get(person, []):
                entries.append(_entry(self.extra_uuid[name][row], build(row, subject)))
        return entries

    @property
    def extra_by_person(self) -> dict[str, dict[int, list[int]]]:
        """Rows of the vaccinations and allergies (shared with the Synthea export) by person."""
        if not hasattr(self, "_extra_by_person"):
            from pmhub.synth import synthea_extra

            self.extra = {
                "vaccinations": synthea_extra.vaccinations(self.c, self.site, self.seed),
                "allergies": synthea_extra.allergy_rows(self.c, self.site, self.seed),
            }
            self.extra_uuid: dict[str, list[str]] = {}
            self._extra_by_person: dict[str, dict[int, list[int]]] = {}
            for k, (name, rows) in enumerate(self.extra.items()):
                grouped: dict[int, list[int]] = {}
                for i, person in enumerate(rows["person"].tolist()):
                    grouped.setdefault(person, []).append(i)
                self._extra_by_person[name] = grouped
                space = ids.RESOURCE * 100 + 60 + 10 * k + self.site  # 60s, 70s: free here
                # two vaccines may be given at one visit
                keys = (self.c.index * ID_BLOCK + rows["visit"]) * 2 + rows.get("vaccine", 0)
                self.extra_uuid[name] = ids.uuid_list(self.seed, space, keys)
            vac = self.extra["vaccinations"]
            self.vaccination_time = _iso(vac["day"], vac["sec"])
        return self._extra_by_person

    def _immunization(self, row: int, subject: dict[str, str]) -> dict[str, Any]:
        from pmhub.synth.synthea_extra import FLU, PPSV23

        r = self.extra["vaccinations"]
        code, display, _ = (FLU, PPSV23)[int(r["vaccine"][row])]
        return {
            "resourceType": "Immunization",
            "status": "completed",
            "vaccineCode": {"coding": [_coding(CVX, code, display)], "text": display},
            "patient": subject,
            "encounter": self.encounter_ref[int(r["visit"][row])],
            "occurrenceDateTime": self.vaccination_time[row],
            "primarySource": True,
        }

    def _allergy(self, row: int, subject: dict[str, str]) -> dict[str, Any]:
        from pmhub.synth.synthea_extra import ALLERGENS, REACTIONS, SEVERITIES

        r = self.extra["allergies"]
        code, system, display, category, _ = ALLERGENS[int(r["allergen"][row])]
        severity = SEVERITIES[int(r["severity"][row])].lower()
        reactions = [int(r["reaction"][row])] + (
            [int(r["reaction2"][row])] if r["reaction2"][row] >= 0 else []
        )
        return {
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": {"coding": [_coding(ALLERGY_CLINICAL, "active", "Active")]},
            "verificationStatus": {
                "coding": [_coding(ALLERGY_VERIFICATION, "confirmed", "Confirmed")]
            },
            "type": "allergy",
            "category": [category],
            "criticality": "high" if severity == "severe" else "low",
            "code": {
                "coding": [_coding(RXNORM if system == "RxNorm" else SNOMED, code, display)],
                "text": display,
            },
            "patient": subject,
            "encounter": self.encounter_ref[int(r["visit"][row])],
            "recordedDate": _date(r["day"][row]),
            "reaction": [
                {
                    "manifestation": [
                        {"coding": [_coding(SNOMED, *REACTIONS[i])], "text": REACTIONS[i][1]}
                    ],
                    "severity": severity if j == 0 else "mild",
                }
                for j, i in enumerate(reactions)
            ],
        }

    def _patient(self, person: int) -> dict[str, Any]:
        c = self.c
        s = c.state
        p = c.at_site(self.site)
        region = refdata.regions()[int(s.region[person])]
        street = str(p["street"][person])
        resource: dict[str, Any] = {
            "resourceType": "Patient",
            "identifier": [
                {
                    "type": {
                        "coding": [
                            _coding(
                                "http://terminology.hl7.org/CodeSystem/v2-0203",
                                "MR",
                                "Medical record number",
                            )
                        ]
                    },
                    "system": f"{ID_SYSTEM}/{self.spec.name}/mrn",
                    "value": str(c.mrn[person, self.site]),
                },
                {
                    "type": {
                        "coding": [
                            _coding(
                                "http://terminology.hl7.org/CodeSystem/v2-0203",
                                "NI",
                                "National unique individual identifier",
                            )
                        ]
                    },
                    "system": f"{ID_SYSTEM}/kr-rrn",
                    "value": str(p["rrn"][person]),
                },
            ],
            "name": [
                {
                    "use": "official",
                    "text": f"{p['family'][person]}{p['given'][person]}",
                    "family": str(p["family"][person]),
                    "given": [str(p["given"][person])],
                }
            ],
            "telecom": [
                {"system": "phone", "value": str(p["phone"][person]), "use": "mobile"},
                {"system": "phone", "value": str(p["home_phone"][person]), "use": "home"},
                {"system": "email", "value": str(p["email"][person])},
            ],
            "gender": "male" if s.male[person] else "female",
            "birthDate": _date(s.birth[person]),
            "address": [
                {
                    "text": street,
                    "line": [street.split(" ", 2)[-1]],
                    "city": region.name_ko,
                    "state": "강원특별자치도",
                    "postalCode": str(p["postcode"][person]),
                    "country": "KR",
                }
            ],
            "communication": [
                {"language": {"coding": [_coding("urn:ietf:bcp:47", "ko", "Korean")]}}
            ],
        }
        deaths = c.tables["deaths"]
        here = np.flatnonzero((deaths["person"] == person) & (deaths["site"] == self.site))
        if len(here):
            resource["deceasedDateTime"] = _date(deaths["day"][here[0]])
        return resource

    def _encounter(self, visit: int, subject: dict[str, str]) -> dict[str, Any]:
        v = self.c.tables["visits"]
        kind = int(v["kind"][visit])
        klass = (
            _coding(ACT, "EMER", "emergency")
            if kind == ER
            else _coding(ACT, "IMP", "inpatient encounter")
            if kind == IP
            else _coding(ACT, "AMB", "ambulatory")
        )
        code = {
            ER: ("50849002", "Emergency room admission"),
            IP: ("32485007", "Hospital admission"),
        }.get(kind, ("185347001", "Encounter for problem"))
        resource: dict[str, Any] = {
            "resourceType": "Encounter",
            "status": "finished",
            "class": klass,
            "type": [{"coding": [_coding(SNOMED, *code)], "text": code[1]}],
            "subject": subject,
            "participant": [{"individual": self._doctor(int(v["provider"][visit]))}],
            "period": {"start": self.visit_start[visit], "end": self.visit_end[visit]},
            "serviceProvider": {"reference": self.org_ref},
        }
        if v["died"][visit]:
            resource["hospitalization"] = {
                "dischargeDisposition": {
                    "coding": [
                        _coding(
                            "http://terminology.hl7.org/CodeSystem/discharge-disposition",
                            "exp",
                            "Expired",
                        )
                    ]
                }
            }
        return resource

    def _condition_code(self, cond: int) -> dict[str, Any]:
        info = self.conds[COND_KEYS[cond]]
        kcd = {"short": info.kcd7_short, "undotted": info.kcd7.replace(".", "")}.get(
            self.spec.kcd_style, info.kcd7
        )
        coding = [_coding(KCD7, kcd, info.name_ko)]
        if self.spec.snomed_coding:
            coding.append(_coding(SNOMED, info.snomed_code, info.name_en))
        return {"coding": coding, "text": info.name_ko}

    def _condition(self, row: int, subject: dict[str, str]) -> dict[str, Any]:
        c = self.c.tables["conditions"]
        visit = int(c["visit"][row])
        return {
            "resourceType": "Condition",
            "clinicalStatus": {
                "coding": [
                    _coding(
                        "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "active",
                        "Active",
                    )
                ]
            },
            "verificationStatus": {
                "coding": [
                    _coding(
                        "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                        "confirmed",
                        "Confirmed",
                    )
                ]
            },
            "category": [
                {
                    "coding": [
                        _coding(
                            "http://terminology.hl7.org/CodeSystem/condition-category",
                            "encounter-diagnosis",
                            "Encounter Diagnosis",
                        )
                    ]
                }
            ],
            "code": self._condition_code(int(c["cond"][row])),
            "subject": subject,
            "encounter": {"reference": f"urn:uuid:{self.visit_uuid[visit]}"},
            "onsetDateTime": _date(c["day"][row]),
            "recordedDate": _date(c["day"][row]),
        }

    def _medication(self, row: int, subject: dict[str, str]) -> dict[str, Any]:
        d = self.c.tables["drugs"]
        v = self.c.tables["visits"]
        drug = refdata.drugs()[DRUG_KEYS[int(d["drug"][row])]]
        visit = int(d["visit"][row])
        coding = [_coding(ATC, drug.atc, drug.ingredient)]
        if drug.rxnorm_code:
            coding.insert(0, _coding(RXNORM, drug.rxnorm_code, drug.description))
        days = int(max(d["days_supply"][row], 1))
        return {
            "resourceType": "MedicationRequest",
            "status": "completed" if d["admin"][row] else "active",
            "intent": "order",
            "medicationCodeableConcept": {"coding": coding, "text": drug.name_ko},
            "subject": subject,
            "encounter": {"reference": f"urn:uuid:{self.visit_uuid[visit]}"},
            "authoredOn": self.drug_time[row],
            "requester": self._doctor(int(v["provider"][visit])),
            "dosageInstruction": [{"text": f"1일 {drug.daily_units}회"}],
            "dispenseRequest": {
                "quantity": {"value": float(d["quantity"][row])},
                "expectedSupplyDuration": {
                    "value": days,
                    "unit": "days",
                    "system": UCUM,
                    "code": "d",
                },
            },
        }

    def _observation(self, row: int, subject: dict[str, str]) -> dict[str, Any]:
        key = self.meas_key[row]
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "category": self.meas_category[key],
            "code": self.meas_code[key],
            "subject": subject,
            "encounter": self.encounter_ref[self.meas_visit[row]],
            "effectiveDateTime": self.meas_time[row],
        }
        value = self.meas_value[row]
        if value != value:  # NaN: the specimen was unusable
            resource["dataAbsentReason"] = {"coding": [_coding(DATA_ABSENT, "error", "Error")]}
        else:
            unit = self.meas_unit[row]
            resource["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
        return resource

    def _smoking(self, row: int, subject: dict[str, str]) -> dict[str, Any]:
        o = self.c.tables["observations"]
        visit = int(o["visit"][row])
        code, display = SMOKING[int(o["status"][row])]
        return {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {
                    "coding": [
                        _coding(
                            "http://terminology.hl7.org/CodeSystem/observation-category",
                            "social-history",
                            "Social History",
                        )
                    ]
                }
            ],
            "code": {"coding": [_coding(LOINC, "72166-2", "Tobacco smoking status")]},
            "subject": subject,
            "encounter": {"reference": f"urn:uuid:{self.visit_uuid[visit]}"},
            "effectiveDateTime": self.obs_time[row],
            "valueCodeableConcept": {"coding": [_coding(SNOMED, code, display)]},
        }

    def _procedure(self, row: int, subject: dict[str, str]) -> dict[str, Any]:
        p = self.c.tables["procedures"]
        info = refdata.procedures()[PROC_KEYS[int(p["proc"][row])]]
        visit = int(p["visit"][row])
        code = (
            _coding(SNOMED, info.snomed_code, info.description)
            if info.snomed_code
            else _coding(
                f"{ID_SYSTEM}/{self.spec.name}/order-code",
                f"L-{info.key.upper()}",
                info.description,
            )
        )
        return {
            "resourceType": "Procedure",
            "status": "completed",
            "code": {"coding": [code], "text": info.name_ko},
            "subject": subject,
            "encounter": {"reference": f"urn:uuid:{self.visit_uuid[visit]}"},
            "performedPeriod": {"start": self.proc_start[row], "end": self.proc_end[row]},
        }


def hospital_bundle(config: SynthConfig, site: int) -> dict[str, Any]:
    """The hospital and its doctors, which patient bundles reference by identifier."""
    spec = refdata.sites()[site]
    reg = next(r for r in refdata.regions() if r.code == spec.region_code)
    org_uuid = ids.uuid_list(config.seed, ids.ORGANIZATION, np.array([site]))[0]
    organization = {
        "resourceType": "Organization",
        "identifier": [{"system": f"{ID_SYSTEM}/organization", "value": spec.name}],
        "active": True,
        "type": [
            {
                "coding": [
                    _coding(
                        "http://terminology.hl7.org/CodeSystem/organization-type",
                        "prov",
                        "Healthcare Provider",
                    )
                ]
            }
        ],
        "name": spec.title_ko,
        "alias": [spec.title_en],
        "telecom": [{"system": "phone", "value": spec.phone}],
        "address": [
            {"line": [spec.street], "city": reg.name_ko, "state": "강원특별자치도", "country": "KR"}
        ],
    }
    entries = [
        _conditional(org_uuid, organization, f"identifier={ID_SYSTEM}/organization|{spec.name}")
    ]
    st = staff(config.seed, site)
    doctor_uuids = ids.uuid_list(
        config.seed, ids.PROVIDER, site * 10_000 + np.arange(len(st.names))
    )
    for i, name in enumerate(st.names):
        practitioner = {
            "resourceType": "Practitioner",
            "identifier": [
                {"system": f"{ID_SYSTEM}/practitioner", "value": f"{spec.name}-{i + 1}"}
            ],
            "active": True,
            "name": [{"text": name, "family": name[0], "given": [name[1:]]}],
            "gender": "male" if st.male[i] else "female",
        }
        entries.append(
            _conditional(
                doctor_uuids[i],
                practitioner,
                f"identifier={ID_SYSTEM}/practitioner|{spec.name}-{i + 1}",
            )
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _conditional(uuid: str, resource: dict[str, Any], query: str) -> dict[str, Any]:
    resource["id"] = uuid
    return {
        "fullUrl": f"urn:uuid:{uuid}",
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": query},
    }


class FhirFormat:
    def __init__(self, config: SynthConfig) -> None:
        self.config = config
        self.sites = list(refdata.sites()[: config.sites])

    def headers(self) -> dict[str, bytes]:
        from pmhub.synth import truth

        result = {}
        for s, spec in enumerate(self.sites):
            text = json.dumps(hospital_bundle(self.config, s), ensure_ascii=False, indent=1)
            result[f"{spec.name}/fhir/hospitalInformation.json"] = text.encode()
            result.update(note_headers(spec.name))
        result.update(truth.headers())
        return result

    def render(self, index: int) -> dict[str, bytes]:
        from pmhub.synth import truth
        from pmhub.synth.chunk import simulate_chunk

        chunk = simulate_chunk(self.config, index, truth.index_years(self.config))
        result: dict[str, bytes] = {}
        for s, spec in enumerate(self.sites):
            notes = site_notes(chunk, s, self.config)
            result.update(PatientBundles(chunk, s, self.config, notes).bundles())
            keys = chunk.state.key * 64 + s
            patients = ids.uuid_list(self.config.seed, ids.PATIENT, keys)
            result.update(note_files(spec.name, notes, patients))
        result.update(truth.render(chunk, self.config))
        return result

    def finish(self, folder: Path, stats: dict[str, list[bytes]]) -> dict[str, Any]:
        from pmhub.synth import truth

        return truth.finish(folder, self.config)
