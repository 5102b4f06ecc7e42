"""Every OMOP output is internally consistent and uses only real concept ids."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import pytest

from pmhub.cdm import spec
from pmhub.synth.omop import TABLES
from pmhub.synth.service import SynthResult

from .conftest import read_csv

Sites = dict[str, dict[str, list[dict[str, str]]]]  # site -> table -> rows


def shipped_concepts() -> set[int]:
    folder = resources.files("pmhub.cdm").joinpath("data", "vocabulary")
    ids = set()
    for name in ("CONCEPT.csv", "EXTRA_CONCEPTS.csv"):
        with folder.joinpath(name).open(encoding="utf-8") as handle:
            ids |= {int(r["concept_id"]) for r in csv.DictReader(handle)}
    return ids


@pytest.fixture(scope="module")
def sites(omop_net: SynthResult) -> Sites:
    result: Sites = {}
    for folder in sorted(
        p for p in omop_net.folder.iterdir() if p.is_dir() and p.name != "ground_truth"
    ):
        result[folder.name] = {p.stem: read_csv(p) for p in folder.glob("*.csv")}
    return result


def test_every_site_has_every_table_with_the_spec_header(omop_net: SynthResult) -> None:
    for site in ("chuncheon_univ", "gangneung_general", "jeongseon_county"):
        for table in (*TABLES, "care_site", "provider", "cdm_source"):
            path = omop_net.folder / site / f"{table}.csv"
            first = path.read_text(encoding="utf-8").splitlines()[0]
            assert first.split(",") == list(spec.table(table).column_names)


def test_required_fields_are_filled(sites: Sites) -> None:
    for tables in sites.values():
        for name, rows in tables.items():
            if name not in spec.tables():  # sidecars: identifiers, notes, spans
                continue
            required = [f.name for f in spec.table(name).fields if f.required]
            for row in rows:
                assert all(row[f] != "" for f in required), (name, row)


def test_referential_integrity(sites: Sites) -> None:
    for site, t in sites.items():
        persons = {r["person_id"] for r in t["person"]}
        visits = {r["visit_occurrence_id"] for r in t["visit_occurrence"]}
        providers = {r["provider_id"] for r in t["provider"]}
        locations = {r["location_id"] for r in t["location"]}
        assert len(persons) == len(t["person"])
        assert len(persons) > 50
        assert len(visits) == len(t["visit_occurrence"])
        for name in (
            "condition_occurrence",
            "drug_exposure",
            "measurement",
            "procedure_occurrence",
            "observation",
        ):
            for row in t[name]:
                assert row["person_id"] in persons, (site, name)
                assert row["visit_occurrence_id"] in visits, (site, name)
                assert row["provider_id"] in providers
        for name in ("visit_occurrence", "observation_period", "death"):
            assert {r["person_id"] for r in t[name]} <= persons
        for row in t["visit_occurrence"]:
            assert row["provider_id"] in providers
            assert row["preceding_visit_occurrence_id"] in visits | {""}
        assert {r["location_id"] for r in t["person"]} <= locations
        assert {r["care_site_id"] for r in t["person"]} == {
            r["care_site_id"] for r in t["care_site"]
        }
        assert {r["person_id"] for r in t["person_identifiers"]} == persons


def test_events_fall_inside_observation_periods(sites: Sites) -> None:
    for t in sites.values():
        periods = {
            r["person_id"]: (r["observation_period_start_date"], r["observation_period_end_date"])
            for r in t["observation_period"]
        }
        assert set(periods) == {r["person_id"] for r in t["person"]}
        for row in t["visit_occurrence"]:
            start, end = periods[row["person_id"]]
            assert start <= row["visit_start_date"] <= row["visit_end_date"] <= end
        births = {p["person_id"]: p["year_of_birth"] for p in t["person"]}
        for row in t["death"]:
            assert periods[row["person_id"]][0] <= row["death_date"] <= periods[row["person_id"]][1]
            assert row["death_date"][:4] >= births[row["person_id"]]


def test_only_real_concept_ids(sites: Sites) -> None:
    known = shipped_concepts() | {0}
    for t in sites.values():
        for name, rows in t.items():
            if name not in spec.tables() or name == "cdm_source":  # cdm_source: as pmhub.cdm
                continue
            columns = [f.name for f in spec.table(name).fields if f.is_concept_id]
            for row in rows:
                for col in columns:
                    if row[col] != "":
                        assert int(row[col]) in known, (name, col, row[col])


def _units(t: dict[str, list[dict[str, str]]]) -> set[str]:
    glucose = ("2345-7", "2339-0")
    return {
        r["unit_source_value"] for r in t["measurement"] if r["measurement_source_value"] in glucose
    }


def _share_inpatient(t: dict[str, list[dict[str, str]]]) -> float:
    visits = t["visit_occurrence"]
    return sum(r["visit_concept_id"] == "9201" for r in visits) / len(visits)


def _cancer_per_person(t: dict[str, list[dict[str, str]]]) -> float:
    cancer_concepts = {"443387", "4180790", "443388", "4246127", "4112853", "4178976"}
    rows = t["condition_occurrence"]
    return sum(r["condition_concept_id"] in cancer_concepts for r in rows) / len(t["person"])


def _mean_age(t: dict[str, list[dict[str, str]]]) -> float:
    return sum(2025 - int(r["year_of_birth"]) for r in t["person"]) / len(t["person"])


def test_sites_differ_in_habits(sites: Sites) -> None:
    univ, general, county = (
        sites[n] for n in ("chuncheon_univ", "gangneung_general", "jeongseon_county")
    )
    assert _units(univ) == {"mg/dL"}
    assert _units(general) == {"mmol/L"}
    codes = {
        site: {r["condition_source_value"] for r in t["condition_occurrence"]}
        for site, t in sites.items()
    }
    assert "E11.9" in codes["chuncheon_univ"]
    assert "44054006" in codes["chuncheon_univ"]  # KCD-7 and SNOMED side by side
    assert "E119" in codes["gangneung_general"]
    assert not any(c.isdigit() for c in codes["gangneung_general"])  # KCD-7 only
    assert "E11" in codes["jeongseon_county"]
    assert _share_inpatient(univ) > _share_inpatient(county)
    assert _cancer_per_person(univ) > 2 * _cancer_per_person(county)
    assert _mean_age(univ) > _mean_age(general) - 10


def test_some_patients_are_seen_at_several_sites(omop_net: SynthResult) -> None:
    rows = read_csv(omop_net.folder / "ground_truth" / "linkage.csv")
    by_key: dict[str, set[str]] = {}
    for r in rows:
        by_key.setdefault(r["patient_key"], set()).add(r["site"])
    several = [k for k, s in by_key.items() if len(s) > 1]
    assert len(several) > 0.05 * len(by_key)
    mrns = {(r["site"], r["mrn"]) for r in rows}
    assert len(mrns) == len(rows)  # record numbers unique per site
    one = next(r for r in rows if r["patient_key"] == several[0])
    other = next(r for r in rows if r["patient_key"] == several[0] and r["site"] != one["site"])
    assert one["mrn"] != other["mrn"]


def test_manifest_counts_match_the_files(omop_net: SynthResult) -> None:
    for rel, rows in omop_net.rows.items():
        path: Path = omop_net.folder / rel
        assert len(read_csv(path)) == rows, rel


def test_hospitals_hold_slightly_different_identifiers(omop_net: SynthResult) -> None:
    """Linkage is not trivial: phones go out of date, addresses keep the old province name."""
    linkage = read_csv(omop_net.folder / "ground_truth" / "linkage.csv")
    ids = {
        site: {
            r["person_id"]: r for r in read_csv(omop_net.folder / site / "person_identifiers.csv")
        }
        for site in ("chuncheon_univ", "gangneung_general", "jeongseon_county")
    }
    by_key: dict[str, list[dict[str, str]]] = {}
    for row in linkage:
        by_key.setdefault(row["patient_key"], []).append(ids[row["site"]][row["person_id"]])
    pairs = [rows for rows in by_key.values() if len(rows) > 1]
    assert all(len({r["rrn"] for r in rows}) == 1 for rows in pairs)
    assert any(len({r["phone"] for r in rows}) > 1 for rows in pairs)
    addresses = [r["address"] for site in ids.values() for r in site.values()]
    assert any(a.startswith("강원도 ") for a in addresses)
    assert any(a.startswith("강원특별자치도 ") for a in addresses)
