"""The reference data in ``data/`` (see its README for sources), read once and typed."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from pmhub.synth.errors import ReferenceDataError

Arr = npt.NDArray[Any]


def _text(name: str) -> str:
    try:
        return resources.files("pmhub.synth").joinpath("data", name).read_text(encoding="utf-8")
    except OSError as exc:  # a broken install
        raise ReferenceDataError(f"cannot read synth reference file {name}: {exc}") from exc


def read_csv(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(_text(name).splitlines()))


@dataclass(frozen=True)
class Region:
    code: str
    old_code: str
    name_ko: str
    name_en: str
    kind: str  # si | gun
    population: int
    share_65plus: float
    lat: float
    lon: float
    zip_prefixes: tuple[str, ...]
    roads: tuple[str, ...]


@dataclass(frozen=True)
class SiteSpec:
    name: str
    kind: str  # university | general | county
    region_code: str
    title_ko: str
    title_en: str
    mrn_digits: int
    snomed_coding: bool  # records SNOMED codes next to KCD-7
    kcd_style: str  # dotted (E11.9) | undotted (E119) | short (E11)
    si_glucose: bool  # glucose in mmol/L instead of mg/dL
    si_lipids: bool
    si_creatinine: bool  # creatinine in umol/L
    glucose_key: str
    creatinine_key: str
    vitals_p: float
    lab_p: float
    visit_scale: float
    days_supply: int
    death_capture: float
    doctors: int
    street: str
    phone: str


@dataclass(frozen=True)
class Condition:
    key: str
    kcd7: str
    kcd7_short: str
    concept_id: int
    snomed_code: str
    name_en: str
    name_ko: str


@dataclass(frozen=True)
class Drug:
    key: str
    atc: str
    ingredient: str
    name_ko: str
    rxnorm_code: str
    concept_id: int
    description: str
    daily_units: int


@dataclass(frozen=True)
class Procedure:
    key: str
    snomed_code: str
    concept_id: int
    description: str
    name_ko: str


@dataclass(frozen=True)
class Measure:
    key: str
    loinc: str
    concept_id: int
    description: str
    unit: str
    unit_concept_id: int
    si_unit: str
    si_unit_concept_id: int
    si_factor: float
    name_ko: str
    decimals: int


def _bool(value: str) -> bool:
    return value.strip() == "1"


@cache
def regions() -> tuple[Region, ...]:
    return tuple(
        Region(
            code=r["code"],
            old_code=r["old_code"],
            name_ko=r["name_ko"],
            name_en=r["name_en"],
            kind=r["kind"],
            population=int(r["population"]),
            share_65plus=float(r["share_65plus"]),
            lat=float(r["lat"]),
            lon=float(r["lon"]),
            zip_prefixes=tuple(r["zip_prefixes"].split(";")),
            roads=tuple(r["roads"].split(";")),
        )
        for r in read_csv("regions.csv")
    )


@cache
def sites() -> tuple[SiteSpec, ...]:
    return tuple(
        SiteSpec(
            name=r["name"],
            kind=r["kind"],
            region_code=r["region_code"],
            title_ko=r["title_ko"],
            title_en=r["title_en"],
            mrn_digits=int(r["mrn_digits"]),
            snomed_coding=_bool(r["snomed_coding"]),
            kcd_style=r["kcd_style"],
            si_glucose=_bool(r["si_glucose"]),
            si_lipids=_bool(r["si_lipids"]),
            si_creatinine=_bool(r["si_creatinine"]),
            glucose_key=r["glucose_key"],
            creatinine_key=r["creatinine_key"],
            vitals_p=float(r["vitals_p"]),
            lab_p=float(r["lab_p"]),
            visit_scale=float(r["visit_scale"]),
            days_supply=int(r["days_supply"]),
            death_capture=float(r["death_capture"]),
            doctors=int(r["doctors"]),
            street=r["street"],
            phone=r["phone"],
        )
        for r in read_csv("sites.csv")
    )


@cache
def conditions() -> dict[str, Condition]:
    return {
        r["key"]: Condition(
            key=r["key"],
            kcd7=r["kcd7"],
            kcd7_short=r["kcd7_short"],
            concept_id=int(r["concept_id"]),
            snomed_code=r["snomed_code"],
            name_en=r["name_en"],
            name_ko=r["name_ko"],
        )
        for r in read_csv("conditions.csv")
    }


@cache
def drugs() -> dict[str, Drug]:
    return {
        r["key"]: Drug(
            key=r["key"],
            atc=r["atc"],
            ingredient=r["ingredient"],
            name_ko=r["name_ko"],
            rxnorm_code=r["rxnorm_code"],
            concept_id=int(r["concept_id"]),
            description=r["description"],
            daily_units=int(r["daily_units"]),
        )
        for r in read_csv("drugs.csv")
    }


@cache
def procedures() -> dict[str, Procedure]:
    return {
        r["key"]: Procedure(
            key=r["key"],
            snomed_code=r["snomed_code"],
            concept_id=int(r["concept_id"]),
            description=r["description"],
            name_ko=r["name_ko"],
        )
        for r in read_csv("procedures.csv")
    }


@cache
def measures() -> dict[str, Measure]:
    return {
        r["key"]: Measure(
            key=r["key"],
            loinc=r["loinc"],
            concept_id=int(r["concept_id"]),
            description=r["description"],
            unit=r["unit"],
            unit_concept_id=int(r["unit_concept_id"]),
            si_unit=r["si_unit"],
            si_unit_concept_id=int(r["si_unit_concept_id"] or 0),
            si_factor=float(r["si_factor"] or 1.0),
            name_ko=r["name_ko"],
            decimals=int(r["decimals"]),
        )
        for r in read_csv("measurements.csv")
    }


@dataclass(frozen=True)
class Pyramid:
    age_from: Arr  # int, inclusive
    age_to: Arr  # int, inclusive
    male: Arr  # share of the population (sums with female to 1)
    female: Arr


@cache
def pyramid() -> Pyramid:
    rows = read_csv("age_pyramid.csv")
    male = np.array([float(r["male_pct"]) for r in rows])
    female = np.array([float(r["female_pct"]) for r in rows])
    total = male.sum() + female.sum()
    return Pyramid(
        age_from=np.array([int(r["age_from"]) for r in rows]),
        age_to=np.array([int(r["age_to"]) for r in rows]),
        male=male / total,
        female=female / total,
    )


@dataclass(frozen=True)
class Names:
    surnames: tuple[str, ...]
    surname_p: Arr
    given: dict[tuple[str, int], tuple[str, ...]]  # (sex, born_from) -> names
    eras: tuple[int, ...]  # born_from of each era, ascending
    foreign: tuple[tuple[str, str, str, str], ...]  # sex, family, given, nationality


@cache
def names() -> Names:
    rows = read_csv("surnames.csv")
    pct = np.array([float(r["pct"]) for r in rows])
    given: dict[tuple[str, int], list[str]] = {}
    for r in read_csv("given_names.csv"):
        given.setdefault((r["sex"], int(r["born_from"])), []).append(r["name"])
    foreign = tuple(
        (r["sex"], r["family"], r["given"], r["nationality"]) for r in read_csv("foreign_names.csv")
    )
    return Names(
        surnames=tuple(r["surname"] for r in rows),
        surname_p=pct / pct.sum(),
        given={k: tuple(v) for k, v in given.items()},
        eras=tuple(sorted({k[1] for k in given})),
        foreign=foreign,
    )


@cache
def risk_models() -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(_text("risk_models.yaml"))
    except yaml.YAMLError as exc:
        raise ReferenceDataError(f"risk_models.yaml is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ReferenceDataError("risk_models.yaml does not hold a mapping")
    return loaded
