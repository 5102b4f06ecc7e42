"""Canonical records → OMOP CDM v5.4 tables (Arrow), one set per site.

Concept ids are real ids of the shipped vocabulary (``pmhub/cdm/data/vocabulary``):
conditions are SNOMED standard concepts reached from KCD-7 source codes, drugs RxNorm
(the ATC code is the source value), measurements LOINC with UCUM units; 0 where the shipped
vocabulary has no concept (the source value is kept). Type concepts: 32817 EHR, 32838 EHR
prescription, 32818 EHR administration record, 32856 Lab, 32815 Death Certificate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa

from pmhub.cdm import spec
from pmhub.synth import identity, refdata
from pmhub.synth.chunk import ID_BLOCK, Chunk
from pmhub.synth.config import SynthConfig
from pmhub.synth.model import DAYS_PER_YEAR, Arr
from pmhub.synth.records import COND_KEYS, DRUG_KEYS, IP, MEAS_KEYS, OP, PROC_KEYS

TABLES = (
    "person",
    "observation_period",
    "visit_occurrence",
    "condition_occurrence",
    "drug_exposure",
    "measurement",
    "procedure_occurrence",
    "observation",
    "death",
    "location",
    "note",
    "payer_plan_period",
)
SITE_TABLES = ("care_site", "provider", "cdm_source")
EHR, PRESCRIPTION, ADMINISTRATION, LAB, DEATH_CERTIFICATE = 32817, 32838, 32818, 32856, 32815
MALE, FEMALE, ASIAN, NOT_HISPANIC = 8507, 8532, 8515, 38003564
VISIT_CONCEPT = np.array([9202, 9201, 9203])  # OP, IP, ER
VISIT_SOURCE = ["외래", "입원", "응급"]
SMOKING_CONCEPT = 43054909  # LOINC 72166-2 Tobacco smoking status
NOTE_CLASS, UTF8 = 706391, 32678  # LOINC Doc Kind 'Note'; the encoding UTF-8 (CDM v5.4 spec)
KOREAN = 4175771  # the Korean language (OHDSI KCD7 vocabulary: the language of its synonyms)
CARE_SITE_LOCATION = 10**15  # location ids of hospitals (people use their person_id)
SPECIALTIES = (
    "내과",
    "가정의학과",
    "순환기내과",
    "내분비내과",
    "신경과",
    "호흡기내과",
    "신장내과",
    "종양내과",
    "산부인과",
    "정신건강의학과",
    "응급의학과",
    "외과",
)
STREET_PROVINCE = "강원특별자치도"
PROVINCE_CODE = "51"  # location.state is varchar(2): the province's administrative code


def lookup(values: list[str], index: Arr) -> pa.Array[Any]:
    """``values[index]`` as an Arrow string array, vectorised; index -1 gives null."""
    idx: Any = pa.array(np.where(index < 0, 0, index), mask=index < 0)
    result: pa.Array[Any] = pa.array(values, pa.string()).take(idx)
    return result


def dates(days: Arr) -> pa.Array[Any]:
    return pa.array(days.astype(np.int32), pa.date32())


def stamps(days: Arr, seconds: Arr) -> pa.Array[Any]:
    return pa.array(days.astype(np.int64) * 86_400 + seconds.astype(np.int64), pa.timestamp("s"))


def table(name: str, columns: dict[str, Any], n: int) -> pa.Table:
    """A table in the spec's column order and types; absent columns are null."""
    schema = spec.arrow_schema(spec.table(name))
    arrays = []
    for f in schema:
        value = columns.get(f.name)
        if value is None:
            arrays.append(pa.nulls(n, f.type))
        elif isinstance(value, (int, float, str)):
            arrays.append(pa.array([value] * n, f.type) if n else pa.array([], f.type))
        else:
            arrays.append(
                pa.array(value).cast(f.type)
                if not isinstance(value, pa.Array)
                else value.cast(f.type)
            )
    return pa.Table.from_arrays(arrays, schema=schema)


@dataclass(frozen=True)
class Staff:
    names: tuple[str, ...]
    male: Arr
    birth_year: Arr
    specialty: tuple[str, ...]


@cache
def staff(seed: int, site: int) -> Staff:
    """The doctors of a site (deterministic in the seed); they sign notes too."""
    spec_ = refdata.sites()[site]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 10_000 + site]))
    n = spec_.doctors
    male = rng.random(n) < 0.7
    birth_year = rng.integers(1960, 1995, size=n)
    family, given = identity.korean_names(male, birth_year, np.zeros(n, dtype=bool), rng)
    names = tuple(f + g for f, g in zip(family.tolist(), given.tolist(), strict=True))
    specialty = tuple(SPECIALTIES[i % len(SPECIALTIES)] for i in range(n))
    return Staff(names, male, birth_year, specialty)


def provider_id(site: int, index: Arr) -> Arr:
    result: Arr = (site + 1) * 100_000 + index + 1
    return result


def kcd_code(cond: Arr, style: str) -> pa.Array[Any]:
    conds = refdata.conditions()
    if style == "short":
        values = [conds[k].kcd7_short for k in COND_KEYS]
    elif style == "undotted":
        values = [conds[k].kcd7.replace(".", "") for k in COND_KEYS]
    else:
        values = [conds[k].kcd7 for k in COND_KEYS]
    return lookup(values, cond)


class SiteTables:
    """Builds one site's OMOP tables from one chunk."""

    def __init__(self, chunk: Chunk, site: int, config: SynthConfig) -> None:
        self.c = chunk
        self.site = site
        self.config = config
        self.spec = refdata.sites()[site]
        self.base = chunk.index * ID_BLOCK + 1
        self.person_id = chunk.site_person[:, site]
        self._notes: Any = None

    def _rows(self, name: str) -> tuple[dict[str, Arr], Arr]:
        """Rows of a canonical table at this site, and their original positions."""
        t = self.c.tables[name]
        visits = self.c.tables["visits"]
        if name == "visits":
            keep = visits["site"] == self.site
        elif "visit" in t:
            keep = visits["site"][t["visit"]] == self.site if len(t["visit"]) else np.zeros(0, bool)
        else:
            keep = t["site"] == self.site
        pos = np.flatnonzero(keep)
        return {k: v[pos] for k, v in t.items()}, pos

    def visit_id(self, visit: Arr) -> Arr:
        result: Arr = self.base + visit
        return result

    def person(self) -> pa.Table:
        rows = np.flatnonzero(self.person_id > 0)
        s = self.c.state
        birth = (np.datetime64("1970-01-01") + s.birth[rows].astype("timedelta64[D]")).astype(
            dt.date
        )
        n = len(rows)
        return table(
            "person",
            {
                "person_id": self.person_id[rows],
                "gender_concept_id": np.where(s.male[rows], MALE, FEMALE),
                "year_of_birth": np.array([b.year for b in birth], dtype=np.int32),
                "month_of_birth": np.array([b.month for b in birth], dtype=np.int32),
                "day_of_birth": np.array([b.day for b in birth], dtype=np.int32),
                "birth_datetime": stamps(s.birth[rows], np.zeros(n)),
                "race_concept_id": ASIAN,
                "ethnicity_concept_id": NOT_HISPANIC,
                "location_id": self.person_id[rows],
                "care_site_id": self.site + 1,
                "person_source_value": pa.array(self.c.mrn[rows, self.site].tolist(), pa.string()),
                "gender_source_value": lookup(["F", "M"], s.male[rows].astype(np.int64)),
                "gender_source_concept_id": 0,
                "race_source_value": lookup(["내국인", "외국인"], s.foreign[rows].astype(np.int64)),
                "race_source_concept_id": 0,
                "ethnicity_source_concept_id": 0,
            },
            n,
        )

    def location(self) -> pa.Table:
        rows = np.flatnonzero(self.person_id > 0)
        regs = refdata.regions()
        region = self.c.state.region[rows]
        people = self.c.at_site(self.site)
        street = people["street"][rows].tolist()
        n = len(rows)
        return table(
            "location",
            {
                "location_id": self.person_id[rows],
                "address_1": pa.array([a.split(", ")[0] for a in street], pa.string()),
                "address_2": pa.array(
                    [a.split(", ")[1] if ", " in a else None for a in street], pa.string()
                ),
                "city": lookup([r.name_ko for r in regs], region),
                "state": PROVINCE_CODE,
                "zip": pa.array(people["postcode"][rows].tolist(), pa.string()),
                "county": lookup([r.name_ko for r in regs], region),
                "location_source_value": lookup([r.code for r in regs], region),
                "country_source_value": "KR",
                "latitude": np.array([r.lat for r in regs])[region],
                "longitude": np.array([r.lon for r in regs])[region],
            },
            n,
        )

    def observation_period(self) -> pa.Table:
        p, _ = self._rows("periods")
        n = len(p["person"])
        return table(
            "observation_period",
            {
                "observation_period_id": self.person_id[p["person"]],
                "person_id": self.person_id[p["person"]],
                "observation_period_start_date": dates(p["start"]),
                "observation_period_end_date": dates(p["end"]),
                "period_type_concept_id": EHR,
            },
            n,
        )

    def payer_plan_period(self) -> pa.Table:
        """Health insurance over each observation period: National Health Insurance
        (employee or self-employed) or Medical Aid; no concepts shipped, so 0 + source."""
        p, _ = self._rows("periods")
        n = len(p["person"])
        insurance = self.c.state.insurance[p["person"]].astype(np.int64)
        return table(
            "payer_plan_period",
            {
                "payer_plan_period_id": self.person_id[p["person"]],
                "person_id": self.person_id[p["person"]],
                "payer_plan_period_start_date": dates(p["start"]),
                "payer_plan_period_end_date": dates(p["end"]),
                "payer_concept_id": 0,
                "payer_source_value": lookup(
                    ["국민건강보험", "국민건강보험", "의료급여"], insurance
                ),
                "plan_concept_id": 0,
                "plan_source_value": lookup(["직장가입자", "지역가입자", "의료급여"], insurance),
            },
            n,
        )

    def visit_occurrence(self) -> pa.Table:
        v, pos = self._rows("visits")
        n = len(pos)
        prec = v["preceding"]
        return table(
            "visit_occurrence",
            {
                "visit_occurrence_id": self.visit_id(pos),
                "person_id": self.person_id[v["person"]],
                "visit_concept_id": VISIT_CONCEPT[v["kind"]],
                "visit_start_date": dates(v["start"]),
                "visit_start_datetime": stamps(v["start"], v["start_sec"]),
                "visit_end_date": dates(v["end"]),
                "visit_end_datetime": stamps(
                    v["end"],
                    np.where(
                        v["end"] > v["start"],
                        v["end_sec"],
                        np.maximum(v["end_sec"], v["start_sec"]),
                    ),
                ),
                "visit_type_concept_id": EHR,
                "provider_id": provider_id(self.site, v["provider"]),
                "care_site_id": self.site + 1,
                "visit_source_value": lookup(VISIT_SOURCE, v["kind"]),
                "visit_source_concept_id": 0,
                "admitted_from_source_value": lookup(
                    ["응급실 경유"], np.where((v["kind"] == IP) & (prec >= 0), 0, -1)
                ),
                "discharged_to_source_value": lookup(["사망"], np.where(v["died"], 0, -1)),
                "preceding_visit_occurrence_id": pa.array(
                    self.visit_id(np.maximum(prec, 0)), mask=prec < 0
                ),
            },
            n,
        )

    def condition_occurrence(self) -> pa.Table:
        c, pos = self._rows("conditions")
        n = len(pos)
        visits = self.c.tables["visits"]
        conds = refdata.conditions()
        concept = np.array([conds[k].concept_id for k in COND_KEYS])[c["cond"]]
        source = kcd_code(c["cond"], self.spec.kcd_style)
        source_concept = np.zeros(n, dtype=np.int64)
        if self.spec.snomed_coding:
            # problem-list entries recorded in SNOMED CT directly (about a third)
            snomed = (self.c.state.key[visits["person"][c["visit"]]] + c["cond"]) % 3 == 0
            snomed_codes = lookup([conds[k].snomed_code for k in COND_KEYS], c["cond"])
            source = pa.array(
                np.where(
                    snomed,
                    np.array(snomed_codes.to_pylist(), dtype=object),
                    np.array(source.to_pylist(), dtype=object),
                ).tolist(),
                pa.string(),
            )
            source_concept = np.where(snomed, concept, 0)
        person = visits["person"][c["visit"]]
        return table(
            "condition_occurrence",
            {
                "condition_occurrence_id": self.base + pos,
                "person_id": self.person_id[person],
                "condition_concept_id": concept,
                "condition_start_date": dates(c["day"]),
                "condition_start_datetime": stamps(c["day"], visits["start_sec"][c["visit"]]),
                "condition_type_concept_id": EHR,
                "provider_id": provider_id(self.site, visits["provider"][c["visit"]]),
                "visit_occurrence_id": self.visit_id(c["visit"]),
                "condition_source_value": source,
                "condition_source_concept_id": source_concept,
            },
            n,
        )

    def drug_exposure(self) -> pa.Table:
        d, pos = self._rows("drugs")
        n = len(pos)
        visits = self.c.tables["visits"]
        drugs = refdata.drugs()
        concept = np.array([drugs[k].concept_id for k in DRUG_KEYS])[d["drug"]]
        end = d["day"] + np.maximum(d["days_supply"], 1) - 1
        admin = d["admin"].astype(bool)
        sig = [f"1일 {drugs[k].daily_units}회 {drugs[k].name_ko}" for k in DRUG_KEYS]
        return table(
            "drug_exposure",
            {
                "drug_exposure_id": self.base + pos,
                "person_id": self.person_id[visits["person"][d["visit"]]],
                "drug_concept_id": concept,
                "drug_exposure_start_date": dates(d["day"]),
                "drug_exposure_start_datetime": stamps(d["day"], visits["start_sec"][d["visit"]]),
                "drug_exposure_end_date": dates(end),
                "drug_type_concept_id": np.where(admin, ADMINISTRATION, PRESCRIPTION),
                "refills": 0,
                "quantity": d["quantity"].astype(float),
                "days_supply": d["days_supply"],
                "sig": lookup(sig, d["drug"]),
                "provider_id": provider_id(self.site, visits["provider"][d["visit"]]),
                "visit_occurrence_id": self.visit_id(d["visit"]),
                "drug_source_value": lookup([drugs[k].atc for k in DRUG_KEYS], d["drug"]),
                "drug_source_concept_id": 0,
                "route_source_value": lookup([_route(k) for k in DRUG_KEYS], d["drug"]),
            },
            n,
        )

    def measurement(self) -> pa.Table:
        m, pos = self._rows("measurements")
        n = len(pos)
        visits = self.c.tables["visits"]
        value, unit, unit_concept = site_values(self.spec, m["measure"], m["value"])
        measures = refdata.measures()
        concept = np.array([measures[k].concept_id for k in MEAS_KEYS])[m["measure"]]
        vital = np.isin(
            m["measure"],
            [MEAS_KEYS.index(k) for k in ("sbp", "dbp", "hr", "weight", "height", "bmi")],
        )
        missing = np.isnan(value)
        return table(
            "measurement",
            {
                "measurement_id": self.base + pos,
                "person_id": self.person_id[visits["person"][m["visit"]]],
                "measurement_concept_id": concept,
                "measurement_date": dates(m["day"]),
                "measurement_datetime": stamps(m["day"], m["sec"]),
                "measurement_type_concept_id": np.where(vital, EHR, LAB),
                "value_as_number": pa.array(value, mask=missing),
                "unit_concept_id": unit_concept,
                "provider_id": provider_id(self.site, visits["provider"][m["visit"]]),
                "visit_occurrence_id": self.visit_id(m["visit"]),
                "measurement_source_value": lookup(
                    [measures[k].loinc for k in MEAS_KEYS], m["measure"]
                ),
                "measurement_source_concept_id": concept,
                "unit_source_value": unit,
                "value_source_value": lookup(["검체 부적합"], np.where(missing, 0, -1)),
            },
            n,
        )

    def procedure_occurrence(self) -> pa.Table:
        p, pos = self._rows("procedures")
        n = len(pos)
        visits = self.c.tables["visits"]
        procs = refdata.procedures()
        concept = np.array([procs[k].concept_id for k in PROC_KEYS])[p["proc"]]
        source = [procs[k].snomed_code or f"L-{k.upper()}" for k in PROC_KEYS]
        return table(
            "procedure_occurrence",
            {
                "procedure_occurrence_id": self.base + pos,
                "person_id": self.person_id[visits["person"][p["visit"]]],
                "procedure_concept_id": concept,
                "procedure_date": dates(p["day"]),
                "procedure_datetime": stamps(p["day"], p["sec"]),
                "procedure_type_concept_id": EHR,
                "quantity": 1,
                "provider_id": provider_id(self.site, visits["provider"][p["visit"]]),
                "visit_occurrence_id": self.visit_id(p["visit"]),
                "procedure_source_value": lookup(source, p["proc"]),
                "procedure_source_concept_id": concept,
            },
            n,
        )

    def observation(self) -> pa.Table:
        o, pos = self._rows("observations")
        n = len(pos)
        visits = self.c.tables["visits"]
        return table(
            "observation",
            {
                "observation_id": self.base + pos,
                "person_id": self.person_id[visits["person"][o["visit"]]],
                "observation_concept_id": SMOKING_CONCEPT,
                "observation_date": dates(o["day"]),
                "observation_datetime": stamps(o["day"], visits["start_sec"][o["visit"]]),
                "observation_type_concept_id": EHR,
                "value_as_string": lookup(
                    ["Never smoker", "Former smoker", "Current every day smoker"],
                    o["status"].astype(np.int64),
                ),
                "provider_id": provider_id(self.site, visits["provider"][o["visit"]]),
                "visit_occurrence_id": self.visit_id(o["visit"]),
                "observation_source_value": "72166-2",
                "observation_source_concept_id": SMOKING_CONCEPT,
                "value_source_value": lookup(
                    ["비흡연", "과거흡연", "현재흡연"], o["status"].astype(np.int64)
                ),
            },
            n,
        )

    def death(self) -> pa.Table:
        d, pos = self._rows("deaths")
        n = len(pos)
        visits = self.c.tables["visits"]
        in_hospital = np.zeros(self.c.state.n, dtype=bool)
        died = visits["died"] & (visits["site"] == self.site)
        in_hospital[visits["person"][died]] = True
        conds = refdata.conditions()
        cause = d["cause"]
        cause_concept = np.array([conds[k].concept_id for k in COND_KEYS])[np.maximum(cause, 0)]
        return table(
            "death",
            {
                "person_id": self.person_id[d["person"]],
                "death_date": dates(d["day"]),
                "death_type_concept_id": np.where(in_hospital[d["person"]], EHR, DEATH_CERTIFICATE),
                "cause_concept_id": pa.array(cause_concept, mask=cause < 0),
                "cause_source_value": kcd_code(cause, "dotted"),
                "cause_source_concept_id": pa.array(np.zeros(n, dtype=np.int64), mask=cause < 0),
            },
            n,
        )

    def note(self) -> pa.Table:
        rows = self.notes
        n = len(rows.note_id)
        return table(
            "note",
            {
                "note_id": rows.note_id,
                "person_id": rows.person_id,
                "note_date": dates(np.array(rows.day, dtype=np.int64)),
                "note_datetime": stamps(np.array(rows.day, dtype=np.int64), np.array(rows.sec)),
                "note_type_concept_id": EHR,
                "note_class_concept_id": NOTE_CLASS,
                "note_title": pa.array(rows.title, pa.string()),
                "note_text": pa.array(rows.text, pa.string()),
                "encoding_concept_id": UTF8,
                "language_concept_id": KOREAN,
                "provider_id": rows.provider_id,
                "visit_occurrence_id": rows.visit_id,
                "note_source_value": pa.array(rows.kind, pa.string()),
            },
            n,
        )

    @property
    def notes(self) -> Any:
        """The site's notes from this chunk (written once, used by the note table and the
        notes/spans files)."""
        if self._notes is None:
            from pmhub.synth import notes

            self._notes = notes.site_notes(self.c, self.site, self.config)
        return self._notes

    def build(self, name: str) -> pa.Table:
        result: pa.Table = getattr(self, name)()
        return result


def _route(key: str) -> str:
    if key in ("oxaliplatin", "fluorouracil", "cisplatin"):
        return "IV"
    if key == "insulin_glargine":
        return "SC"
    if key in ("salbutamol", "fluticasone", "fluticasone_salmeterol"):
        return "INH"
    return "PO"


def site_values(site: refdata.SiteSpec, measure: Arr, value: Arr) -> tuple[Arr, pa.Array[Any], Arr]:
    """Values in the site's units (mg/dL or mmol/L ...), rounded as the site reports them."""
    measures = refdata.measures()
    factor = np.ones(len(MEAS_KEYS))
    si_unit = np.zeros(len(MEAS_KEYS), dtype=bool)
    for i, key in enumerate(MEAS_KEYS):
        m = measures[key]
        if not m.si_unit:
            continue
        group = (
            "creatinine"
            if key.startswith("creatinine")
            else "glucose"
            if key.startswith("glucose")
            else "lipids"
        )
        wants = {
            "creatinine": site.si_creatinine,
            "glucose": site.si_glucose,
            "lipids": site.si_lipids,
        }[group]
        if wants:
            factor[i] = m.si_factor
            si_unit[i] = True
    decimals = np.array([measures[k].decimals for k in MEAS_KEYS])
    si_decimals = np.where(
        si_unit, np.where(np.array([k.startswith("creatinine") for k in MEAS_KEYS]), 0, 2), decimals
    )
    scaled = value * factor[measure]
    out = np.empty(len(value))
    for d in np.unique(si_decimals[measure]) if len(measure) else []:
        rows = si_decimals[measure] == d
        out[rows] = np.round(scaled[rows], int(d))
    units = [
        measures[k].si_unit if si_unit[i] else measures[k].unit for i, k in enumerate(MEAS_KEYS)
    ]
    unit_concepts = np.array(
        [
            measures[k].si_unit_concept_id if si_unit[i] else measures[k].unit_concept_id
            for i, k in enumerate(MEAS_KEYS)
        ]
    )
    return out, lookup(units, measure), unit_concepts[measure]


def care_site(config: SynthConfig, site: int) -> pa.Table:
    s = refdata.sites()[site]
    return table(
        "care_site",
        {
            "care_site_id": site + 1,
            "care_site_name": s.title_ko,
            "location_id": CARE_SITE_LOCATION + site,
            "care_site_source_value": s.name,
            "place_of_service_source_value": s.kind,
        },
        1,
    )


def care_site_location(site: int) -> pa.Table:
    s = refdata.sites()[site]
    reg = next(r for r in refdata.regions() if r.code == s.region_code)
    return table(
        "location",
        {
            "location_id": CARE_SITE_LOCATION + site,
            "address_1": f"{STREET_PROVINCE} {reg.name_ko} {s.street}",
            "city": reg.name_ko,
            "state": PROVINCE_CODE,
            "zip": f"{reg.zip_prefixes[0]}00",
            "county": reg.name_ko,
            "location_source_value": reg.code,
            "country_source_value": "KR",
            "latitude": reg.lat,
            "longitude": reg.lon,
        },
        1,
    )


def provider(config: SynthConfig, site: int) -> pa.Table:
    st = staff(config.seed, site)
    n = len(st.names)
    return table(
        "provider",
        {
            "provider_id": provider_id(site, np.arange(n)),
            "provider_name": pa.array(list(st.names), pa.string()),
            "care_site_id": site + 1,
            "year_of_birth": st.birth_year,
            "gender_concept_id": np.where(st.male, MALE, FEMALE),
            "provider_source_value": pa.array(
                [f"D{site + 1:02d}{i + 1:04d}" for i in range(n)], pa.string()
            ),
            "specialty_source_value": pa.array(list(st.specialty), pa.string()),
            "gender_source_value": lookup(["F", "M"], st.male.astype(np.int64)),
        },
        n,
    )


def cdm_source(config: SynthConfig, site: int) -> pa.Table:
    s = refdata.sites()[site]
    release = dt.date(config.end_year + 1, 1, 1)
    return table(
        "cdm_source",
        {
            "cdm_source_name": s.title_en,
            "cdm_source_abbreviation": s.name[:25],
            "cdm_holder": s.title_ko,
            "source_description": (
                f"pmhub synthetic network (seed {config.seed}, {config.years} years)"
            ),
            "source_release_date": pa.array([release], pa.date32()),
            "cdm_release_date": pa.array([release], pa.date32()),
            "cdm_version": "v5.4",
            "cdm_version_concept_id": 756265,
            "vocabulary_version": "pmhub-subset-2026.11",
        },
        1,
    )


def site_level(config: SynthConfig, site: int) -> dict[str, pa.Table]:
    return {
        "care_site": care_site(config, site),
        "provider": provider(config, site),
        "cdm_source": cdm_source(config, site),
        "location": care_site_location(site),
    }


def age_at(chunk: Chunk, day: int) -> Arr:
    result: Arr = (day - chunk.state.birth) / DAYS_PER_YEAR
    return result


__all__ = ["OP", "SITE_TABLES", "TABLES", "SiteTables", "site_level"]


IDENTIFIER_COLUMNS = (
    "person_id",
    "mrn",
    "family_name",
    "given_name",
    "rrn",
    "phone",
    "home_phone",
    "email",
    "address",
    "postcode",
)


def identifiers(chunk: Chunk, site: int) -> pa.Table:
    """The identifiers a hospital holds but OMOP has no place for (sidecar file)."""
    rows = np.flatnonzero(chunk.site_person[:, site] > 0)
    p = chunk.at_site(site)
    return pa.table(
        {
            "person_id": pa.array(chunk.site_person[rows, site]),
            "mrn": pa.array(chunk.mrn[rows, site].tolist(), pa.string()),
            "family_name": pa.array(p["family"][rows].tolist(), pa.string()),
            "given_name": pa.array(p["given"][rows].tolist(), pa.string()),
            "rrn": pa.array(p["rrn"][rows].tolist(), pa.string()),
            "phone": pa.array(p["phone"][rows].tolist(), pa.string()),
            "home_phone": pa.array(p["home_phone"][rows].tolist(), pa.string()),
            "email": pa.array(p["email"][rows].tolist(), pa.string()),
            "address": pa.array(p["street"][rows].tolist(), pa.string()),
            "postcode": pa.array(p["postcode"][rows].tolist(), pa.string()),
        }
    )


class OmopFormat:
    """OMOP CDM v5.4 CSV: one folder per site, the spec's columns in the spec's order."""

    def __init__(self, config: SynthConfig) -> None:
        self.config = config
        self.site_names = [s.name for s in refdata.sites()[: config.sites]]

    def headers(self) -> dict[str, bytes]:
        from pmhub.synth import truth
        from pmhub.synth.output import csv_bytes, header

        result: dict[str, bytes] = {}
        for s, name in enumerate(self.site_names):
            for t in TABLES:
                result[f"{name}/{t}.csv"] = header(spec.table(t).column_names)
            for t, tab in site_level(self.config, s).items():
                result[f"{name}/{t}.csv"] = result.get(
                    f"{name}/{t}.csv", header(tab.column_names)
                ) + csv_bytes(tab)
            result[f"{name}/person_identifiers.csv"] = header(IDENTIFIER_COLUMNS)
            result.update(note_headers(name))
        result.update(truth.headers())
        return result

    def render(self, index: int) -> dict[str, bytes]:
        from pmhub.synth import truth
        from pmhub.synth.chunk import simulate_chunk
        from pmhub.synth.output import csv_bytes

        chunk = simulate_chunk(self.config, index, truth.index_years(self.config))
        result: dict[str, bytes] = {}
        for s, name in enumerate(self.site_names):
            builder = SiteTables(chunk, s, self.config)
            for t in TABLES:
                result[f"{name}/{t}.csv"] = csv_bytes(builder.build(t))
            result[f"{name}/person_identifiers.csv"] = csv_bytes(identifiers(chunk, s))
            result.update(note_files(name, builder.notes, chunk.site_person[:, s].tolist()))
        result.update(truth.render(chunk, self.config))
        return result

    def finish(self, folder: Any, stats: dict[str, list[bytes]]) -> dict[str, Any]:
        from pmhub.synth import truth

        return truth.finish(folder, self.config)


def note_headers(site_name: str) -> dict[str, bytes]:
    from pmhub.synth import notes
    from pmhub.synth.output import header

    return {
        f"{site_name}/notes.csv": header(notes.NOTE_COLUMNS),
        f"{site_name}/note_spans.csv": header(notes.SPAN_COLUMNS),
    }


def note_files(site_name: str, rows: Any, person_ids: list[Any]) -> dict[str, bytes]:
    """The notes and their gold-standard spans (the same files in every format)."""
    from pmhub.synth import notes
    from pmhub.synth.output import csv_bytes

    note_table, span_table = notes.tables(rows, person_ids)
    return {
        f"{site_name}/notes.csv": csv_bytes(note_table),
        f"{site_name}/note_spans.csv": csv_bytes(span_table),
    }
