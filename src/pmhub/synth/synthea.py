"""Synthea-format CSV (the layout of Synthea v3 CSV export), one folder per hospital.

File names and columns are exactly Synthea's (``data/synthea_csv_columns.csv``, a copy of
the reference layout). Values follow Synthea's conventions so that a Synthea importer
reads them like real Synthea output: UUID ids; ISO 8601 UTC timestamps
(``2019-02-17T05:07:38Z``) for encounters, medications, observations and procedures; plain
dates for patients and conditions; SNOMED CT codes for encounters, conditions and
procedures, RxNorm for medications, LOINC for observations; values without commas.

Differences from a US Synthea run, by design: the simulation's clock is written as UTC;
costs are in Korean won; SSN holds the resident registration number; records whose code
has no SNOMED/RxNorm code (e.g. gastroscopy) are left out, because Synthea's
CODE columns must hold such a code. Immunizations, allergies, care plans, imaging studies,
devices, supplies, claims and claim transactions come from ``synthea_extra``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pmhub.synth import ids, refdata
from pmhub.synth.chunk import ID_BLOCK, Chunk
from pmhub.synth.config import SynthConfig
from pmhub.synth.model import INDICATION, TREATMENTS, Arr
from pmhub.synth.notes import site_notes
from pmhub.synth.omop import lookup, note_files, note_headers, site_values, staff
from pmhub.synth.records import COND_KEYS, DRUG_KEYS, ER, IP, MEAS_KEYS, OP, PROC_KEYS

PROVINCE = "강원특별자치도"
ACUTE = {"pharyngitis", "bronchitis", "sinusitis", "back_pain", "uti", "headache"}
EPISODES = ACUTE | {
    "mi",
    "isch_stroke",
    "haem_stroke",
    "hypoglycaemia",
    "gi_bleed",
    "pregnancy",
    "preeclampsia",
    "gdm",
    "preterm",
}
PAYERS = (("National Health Insurance Service", "국민건강보험공단"), ("Medical Aid", "의료급여"))
COST_OP, COST_ER, COST_IP_DAY, COST_PROC, COST_DRUG_DAY = (
    18_000.0,
    90_000.0,
    350_000.0,
    120_000.0,
    450.0,
)
ENCOUNTER_CODES = {
    "ambulatory_problem": ("185347001", "Encounter for problem (procedure)"),
    "ambulatory_symptom": ("185345009", "Encounter for symptom (procedure)"),
    "wellness": ("162673000", "General examination of patient (procedure)"),
    "prenatal": ("424619006", "Prenatal visit (regime/therapy)"),
    "emergency": ("50849002", "Emergency room admission (procedure)"),
    "inpatient": ("32485007", "Hospital admission (procedure)"),
}


def columns() -> dict[str, list[str]]:
    """Synthea's files and their columns, in order."""
    result: dict[str, list[str]] = {}
    for row in refdata.read_csv("synthea_csv_columns.csv"):
        result.setdefault(row["file"], []).append(row["column"])
    return result


def _clean(values: Sequence[str]) -> list[str]:
    """Synthea writes text without commas or line breaks."""
    return [v.replace(",", "").replace("\n", " ") for v in values]


def _iso(days: Arr, seconds: Arr) -> pa.Array[Any]:
    stamps = pa.array(days.astype(np.int64) * 86_400 + seconds.astype(np.int64), pa.timestamp("s"))
    text = pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%SZ")
    return text


def _date(days: Arr) -> pa.Array[Any]:
    return pa.array(days.astype(np.int32), pa.date32()).cast(pa.string())


def _number(values: Arr, decimals: int = 2) -> pa.Array[Any]:
    text = pa.array(np.round(values.astype(float), decimals)).cast(pa.string())
    has_point = pc.match_substring(text, ".")
    padded: Any = pc.binary_join_element_wise(text, pa.scalar(".0"), pa.scalar(""))  # type: ignore[call-overload]
    result: pa.Array[Any] = pc.if_else(has_point, text, padded)
    return result


def _table(file: str, cols: dict[str, Any], n: int) -> pa.Table:
    names = columns()[file]
    arrays: list[Any] = []
    for name in names:
        value = cols.get(name)
        if value is None:
            arrays.append(pa.nulls(n, pa.string()))
        elif isinstance(value, str):
            arrays.append(pa.array([value] * n, pa.string()))
        elif isinstance(value, pa.Array):
            arrays.append(value.cast(pa.string()))
        else:
            arrays.append(pa.array(np.asarray(value)).cast(pa.string()))
    return pa.Table.from_arrays(arrays, names=names)


class SiteExport:
    """One site's Synthea rows from one chunk."""

    def __init__(self, chunk: Chunk, site: int, config: SynthConfig) -> None:
        self.c = chunk
        self.site = site
        self.config = config
        self.spec = refdata.sites()[site]
        self.seed = config.seed
        t = chunk.tables
        v = t["visits"]
        self.vmask = v["site"] == site
        self.vpos = np.flatnonzero(self.vmask)
        self.visit_global = chunk.index * ID_BLOCK + np.arange(len(v["site"])) + 1
        self.encounter_ids = ids.uuid_strings(self.seed, ids.ENCOUNTER, self.visit_global)
        self.patient_ids = ids.uuid_strings(self.seed, ids.PATIENT, chunk.state.key * 64 + site)
        self.payer = (chunk.state.insurance == 2).astype(np.int64)
        self.payer_ids = ids.uuid_strings(self.seed, ids.PAYER, np.arange(len(PAYERS)))
        self.org_id = ids.uuid_strings(self.seed, ids.ORGANIZATION, np.array([site]))[0]
        self.main = self._main_condition()
        self.costs = self._costs()

    def _str(self, raw: Arr) -> pa.Array[Any]:
        return pa.array(raw, pa.binary(36)).cast(pa.string())

    def _main_condition(self) -> Arr:
        """The first diagnosis of each visit (-1 for none): the encounter's reason."""
        c = self.c.tables["conditions"]
        n_visits = len(self.c.tables["visits"]["site"])
        main = np.full(n_visits, -1, dtype=np.int64)
        order = np.argsort(c["visit"], kind="stable")
        first = np.ones(len(order), dtype=bool)
        first[1:] = c["visit"][order][1:] != c["visit"][order][:-1]
        main[c["visit"][order][first]] = c["cond"][order][first]
        return main

    def _costs(self) -> dict[str, Arr]:
        t = self.c.tables
        v = t["visits"]
        n = len(v["site"])
        days = np.maximum(v["end"] - v["start"], 1)
        base = np.select([v["kind"] == OP, v["kind"] == ER], [COST_OP, COST_ER], COST_IP_DAY * days)
        drug = np.bincount(
            t["drugs"]["visit"], weights=COST_DRUG_DAY * t["drugs"]["days_supply"], minlength=n
        )
        proc = np.bincount(t["procedures"]["visit"], minlength=n) * COST_PROC
        total = base + drug + proc
        aid = self.c.state.insurance[v["person"]] == 2
        share = np.where(aid, 0.95, np.where(v["kind"] == IP, 0.8, 0.7))
        return {"base": base, "total": total, "covered": np.round(total * share, 2)}

    # --- files ---------------------------------------------------------------------------

    def patients(self) -> pa.Table:
        c = self.c
        rows = np.flatnonzero(c.site_person[:, self.site] > 0)
        s = c.state
        regs = refdata.regions()
        region = s.region[rows]
        n = len(rows)
        deaths = c.tables["deaths"]
        here = deaths["site"] == self.site
        death_day = np.full(s.n, -1)
        death_day[deaths["person"][here]] = deaths["day"][here]
        v = c.tables["visits"]
        mine = self.vmask
        paid = np.bincount(
            v["person"][mine],
            weights=(self.costs["total"] - self.costs["covered"])[mine],
            minlength=s.n,
        )
        covered = np.bincount(v["person"][mine], weights=self.costs["covered"][mine], minlength=s.n)
        age = (c.tables["periods"]["end"].max(initial=0) - s.birth[rows]) / 365.25
        married = np.where(
            age >= 30, np.where((s.key[rows] % 10) < 7, "M", "S"), np.where(age >= 18, "S", "")
        )
        jitter = ((s.key[rows] % 1000) / 1000.0 - 0.5) * 0.04
        return _table(
            "patients.csv",
            {
                "Id": self._str(self.patient_ids[rows]),
                "BIRTHDATE": _date(s.birth[rows]),
                "DEATHDATE": pa.array(
                    _date(np.maximum(death_day[rows], 0)).to_pylist(), mask=death_day[rows] < 0
                ),
                "SSN": pa.array(c.at_site(self.site)["rrn"][rows].tolist(), pa.string()),
                "FIRST": pa.array(c.at_site(self.site)["given"][rows].tolist(), pa.string()),
                "LAST": pa.array(c.at_site(self.site)["family"][rows].tolist(), pa.string()),
                "MARITAL": pa.array(married.tolist(), pa.string()),
                "RACE": "asian",
                "ETHNICITY": "nonhispanic",
                "GENDER": pa.array(np.where(s.male[rows], "M", "F").tolist(), pa.string()),
                "BIRTHPLACE": lookup(
                    _clean([f"{r.name_ko}  {PROVINCE}  KR" for r in regs]), region
                ),
                "ADDRESS": pa.array(
                    _clean(c.at_site(self.site)["street"][rows].tolist()), pa.string()
                ),
                "CITY": lookup([r.name_ko for r in regs], region),
                "STATE": PROVINCE,
                "COUNTY": lookup([r.name_ko for r in regs], region),
                "ZIP": pa.array(c.at_site(self.site)["postcode"][rows].tolist(), pa.string()),
                "LAT": _number(np.array([r.lat for r in regs])[region] + jitter, 6),
                "LON": _number(np.array([r.lon for r in regs])[region] - jitter, 6),
                "HEALTHCARE_EXPENSES": _number(paid[rows]),
                "HEALTHCARE_COVERAGE": _number(covered[rows]),
            },
            n,
        )

    def encounters(self) -> pa.Table:
        v = {k: a[self.vpos] for k, a in self.c.tables["visits"].items()}
        n = len(self.vpos)
        main = self.main[self.vpos]
        conds = refdata.conditions()
        pregnancy = COND_KEYS.index("pregnancy")
        minor = np.isin(main, [COND_KEYS.index(k) for k in ACUTE])
        kind_name = np.select(
            [
                v["kind"] == ER,
                v["kind"] == IP,
                (v["event"] == pregnancy) & (v["kind"] == OP),
                main < 0,
                minor,
            ],
            ["emergency", "inpatient", "prenatal", "wellness", "ambulatory_symptom"],
            "ambulatory_problem",
        )
        keys = list(ENCOUNTER_CODES)
        code_index = np.array([keys.index(k) for k in kind_name.tolist()], dtype=np.int64)
        enc_class = np.select(
            [v["kind"] == ER, v["kind"] == IP, main < 0],
            ["emergency", "inpatient", "wellness"],
            "ambulatory",
        )
        stop_sec = np.where(
            v["end"] > v["start"], v["end_sec"], np.maximum(v["end_sec"], v["start_sec"])
        )
        person = v["person"]
        doctor_ids = ids.uuid_strings(self.seed, ids.PROVIDER, self.site * 10_000 + v["provider"])
        return _table(
            "encounters.csv",
            {
                "Id": self._str(self.encounter_ids[self.vpos]),
                "START": _iso(v["start"], v["start_sec"]),
                "STOP": _iso(v["end"], stop_sec),
                "PATIENT": self._str(self.patient_ids[person]),
                "ORGANIZATION": self._str(np.full(n, self.org_id)),
                "PROVIDER": self._str(doctor_ids),
                "PAYER": self._str(self.payer_ids[self.payer[person]]),
                "ENCOUNTERCLASS": pa.array(enc_class.tolist(), pa.string()),
                "CODE": lookup([ENCOUNTER_CODES[k][0] for k in keys], code_index),
                "DESCRIPTION": lookup([ENCOUNTER_CODES[k][1] for k in keys], code_index),
                "BASE_ENCOUNTER_COST": _number(self.costs["base"][self.vpos]),
                "TOTAL_CLAIM_COST": _number(self.costs["total"][self.vpos]),
                "PAYER_COVERAGE": _number(self.costs["covered"][self.vpos]),
                "REASONCODE": lookup([conds[k].snomed_code for k in COND_KEYS], main),
                "REASONDESCRIPTION": lookup(_clean([conds[k].name_en for k in COND_KEYS]), main),
            },
            n,
        )

    def _site_rows(self, name: str) -> dict[str, Arr]:
        t = self.c.tables[name]
        keep = self.vmask[t["visit"]] if len(t["visit"]) else np.zeros(0, dtype=bool)
        return {k: a[keep] for k, a in t.items()}

    def conditions(self) -> pa.Table:
        c = self._site_rows("conditions")
        person = self.c.tables["visits"]["person"][c["visit"]]
        episode = np.isin(c["cond"], [COND_KEYS.index(k) for k in EPISODES])
        # a chronic condition once (its first diagnosis); an episode once per day
        key = np.where(episode, c["day"], -1)
        order = np.lexsort((c["day"], key, c["cond"], person))
        sorted_keys = np.stack([person[order], c["cond"][order], key[order]], axis=1)
        first = np.ones(len(order), dtype=bool)
        first[1:] = (sorted_keys[1:] != sorted_keys[:-1]).any(axis=1)
        rows = order[first]
        rows = rows[np.argsort(c["day"][rows], kind="stable")]
        conds = refdata.conditions()
        acute = np.isin(c["cond"][rows], [COND_KEYS.index(k) for k in ACUTE])
        stop = c["day"][rows] + 10
        return _table(
            "conditions.csv",
            {
                "START": _date(c["day"][rows]),
                "STOP": pa.array(_date(stop).to_pylist(), mask=~acute),
                "PATIENT": self._str(self.patient_ids[person[rows]]),
                "ENCOUNTER": self._str(self.encounter_ids[c["visit"][rows]]),
                "CODE": lookup([conds[k].snomed_code for k in COND_KEYS], c["cond"][rows]),
                "DESCRIPTION": lookup(
                    _clean([conds[k].name_en for k in COND_KEYS]), c["cond"][rows]
                ),
            },
            len(rows),
        )

    def medications(self) -> pa.Table:
        d = self._site_rows("drugs")
        drugs = refdata.drugs()
        has_code = np.array([bool(drugs[k].rxnorm_code) for k in DRUG_KEYS])[d["drug"]]
        d = {k: a[has_code] for k, a in d.items()}
        v = self.c.tables["visits"]
        person = v["person"][d["visit"]]
        sec = v["start_sec"][d["visit"]]
        days = np.maximum(d["days_supply"], 1)
        cost = np.round(COST_DRUG_DAY * days, 2)
        covered = np.round(cost * np.where(self.c.state.insurance[person] == 2, 0.95, 0.7), 2)
        reason = _drug_reason()[d["drug"]]
        reason = np.where(reason < 0, self.main[d["visit"]], reason)
        conds = refdata.conditions()
        return _table(
            "medications.csv",
            {
                "START": _iso(d["day"], sec),
                "STOP": _iso(d["day"] + days, sec),
                "PATIENT": self._str(self.patient_ids[person]),
                "PAYER": self._str(self.payer_ids[self.payer[person]]),
                "ENCOUNTER": self._str(self.encounter_ids[d["visit"]]),
                "CODE": lookup([drugs[k].rxnorm_code for k in DRUG_KEYS], d["drug"]),
                "DESCRIPTION": lookup(_clean([drugs[k].description for k in DRUG_KEYS]), d["drug"]),
                "BASE_COST": _number(cost),
                "PAYER_COVERAGE": _number(covered),
                "DISPENSES": pa.array(np.ones(len(person), dtype=np.int64)),
                "TOTALCOST": _number(cost),
                "REASONCODE": lookup([conds[k].snomed_code for k in COND_KEYS], reason),
                "REASONDESCRIPTION": lookup(_clean([conds[k].name_en for k in COND_KEYS]), reason),
            },
            len(person),
        )

    def observations(self) -> pa.Table:
        m = self._site_rows("measurements")
        value, unit, _ = site_values(self.spec, m["measure"], m["value"])
        ok = ~np.isnan(value)
        m = {k: a[ok] for k, a in m.items()}
        value, unit = value[ok], unit.filter(pa.array(ok))
        person = self.c.tables["visits"]["person"][m["visit"]]
        measures = refdata.measures()
        vital = np.isin(
            m["measure"],
            [MEAS_KEYS.index(k) for k in ("sbp", "dbp", "hr", "weight", "height", "bmi")],
        )
        numeric = _table(
            "observations.csv",
            {
                "DATE": _iso(m["day"], m["sec"]),
                "PATIENT": self._str(self.patient_ids[person]),
                "ENCOUNTER": self._str(self.encounter_ids[m["visit"]]),
                "CATEGORY": pa.array(
                    np.where(vital, "vital-signs", "laboratory").tolist(), pa.string()
                ),
                "CODE": lookup([measures[k].loinc for k in MEAS_KEYS], m["measure"]),
                "DESCRIPTION": lookup(
                    _clean([measures[k].description for k in MEAS_KEYS]), m["measure"]
                ),
                "VALUE": _number(value),
                "UNITS": unit,
                "TYPE": "numeric",
            },
            len(person),
        )
        o = self._site_rows("observations")
        v = self.c.tables["visits"]
        status = o["status"].astype(np.int64)
        smoking = _table(
            "observations.csv",
            {
                "DATE": _iso(o["day"], v["start_sec"][o["visit"]]),
                "PATIENT": self._str(self.patient_ids[v["person"][o["visit"]]]),
                "ENCOUNTER": self._str(self.encounter_ids[o["visit"]]),
                "CATEGORY": "survey",
                "CODE": "72166-2",
                "DESCRIPTION": "Tobacco smoking status",
                "VALUE": lookup(["Never smoker", "Former smoker", "Every day smoker"], status),
                "TYPE": "text",
            },
            len(status),
        )
        return pa.concat_tables([numeric, smoking])

    def procedures(self) -> pa.Table:
        p = self._site_rows("procedures")
        procs = refdata.procedures()
        has_code = np.array([bool(procs[k].snomed_code) for k in PROC_KEYS])[p["proc"]]
        p = {k: a[has_code] for k, a in p.items()}
        person = self.c.tables["visits"]["person"][p["visit"]]
        reason = self.main[p["visit"]]
        conds = refdata.conditions()
        n = len(person)
        return _table(
            "procedures.csv",
            {
                "START": _iso(p["day"], p["sec"]),
                "STOP": _iso(p["day"], np.minimum(p["sec"] + 1800, 86_399)),
                "PATIENT": self._str(self.patient_ids[person]),
                "ENCOUNTER": self._str(self.encounter_ids[p["visit"]]),
                "CODE": lookup([procs[k].snomed_code for k in PROC_KEYS], p["proc"]),
                "DESCRIPTION": lookup(_clean([procs[k].description for k in PROC_KEYS]), p["proc"]),
                "BASE_COST": _number(np.full(n, COST_PROC)),
                "REASONCODE": lookup([conds[k].snomed_code for k in COND_KEYS], reason),
                "REASONDESCRIPTION": lookup(_clean([conds[k].name_en for k in COND_KEYS]), reason),
            },
            n,
        )

    def payer_transitions(self) -> pa.Table:
        c = self.c
        rows = np.flatnonzero(c.site_person[:, self.site] > 0)
        s = c.state
        start = np.maximum(s.birth[rows], _day(self.config.start_date))
        end = np.minimum(s.death[rows], _day(self.config.end_date))
        full = [
            f + g
            for f, g in zip(
                c.at_site(self.site)["family"][rows].tolist(),
                c.at_site(self.site)["given"][rows].tolist(),
                strict=True,
            )
        ]
        return _table(
            "payer_transitions.csv",
            {
                "PATIENT": self._str(self.patient_ids[rows]),
                "MEMBERID": self._str(
                    ids.uuid_strings(self.seed, ids.MEMBER, s.key[rows] * 64 + self.site)
                ),
                "START_YEAR": _iso(start, np.zeros(len(rows))),
                "END_YEAR": _iso(end, np.full(len(rows), 86_399)),
                "PAYER": self._str(self.payer_ids[self.payer[rows]]),
                "OWNERSHIP": "Self",
                "OWNERNAME": pa.array(full, pa.string()),
            },
            len(rows),
        )

    def stats(self) -> dict[str, Any]:
        v = self.c.tables["visits"]
        mine = self.vmask
        doctors = np.bincount(v["provider"][mine], minlength=self.spec.doctors)
        payer = self.payer[v["person"][mine]]
        covered = self.costs["covered"][mine]
        total = self.costs["total"][mine]
        rows = np.flatnonzero(self.c.site_person[:, self.site] > 0)
        return {
            "encounters": int(mine.sum()),
            "revenue": float(total.sum()),
            "doctors": doctors.tolist(),
            "payer_covered": np.bincount(payer, weights=covered, minlength=2).tolist(),
            "payer_uncovered": np.bincount(payer, weights=total - covered, minlength=2).tolist(),
            "payer_encounters": np.bincount(payer, minlength=2).tolist(),
            "payer_members": np.bincount(self.payer[rows], minlength=2).tolist(),
        }


def _day(date: Any) -> int:
    delta: Any = np.datetime64(date, "D") - np.datetime64("1970-01-01", "D")
    return int(delta.astype(np.int64))


def _drug_reason() -> Arr:
    """The condition each drug is for (via its treatment class), -1 for the visit's reason."""
    reason = np.full(len(DRUG_KEYS), -1, dtype=np.int64)
    for treatment, regimens in TREATMENTS.items():
        for drugs, _ in regimens:
            for key in drugs:
                reason[DRUG_KEYS.index(key)] = COND_KEYS.index(INDICATION[treatment])
    return reason


FILES = (
    "patients",
    "encounters",
    "conditions",
    "medications",
    "observations",
    "procedures",
    "payer_transitions",
)


class SyntheaFormat:
    def __init__(self, config: SynthConfig) -> None:
        self.config = config
        self.sites = list(refdata.sites()[: config.sites])

    def headers(self) -> dict[str, bytes]:
        from pmhub.synth import truth
        from pmhub.synth.output import header

        result: dict[str, bytes] = {}
        for spec in self.sites:
            for file, names in columns().items():
                if file.removesuffix(".csv") in ("organizations", "providers", "payers"):
                    continue
                result[f"{spec.name}/{file}"] = header(names)
            result.update(note_headers(spec.name))
        result.update(truth.headers())
        return result

    def render(self, index: int) -> dict[str, bytes]:
        from pmhub.synth import synthea_extra, truth
        from pmhub.synth.chunk import simulate_chunk
        from pmhub.synth.output import csv_bytes

        chunk = simulate_chunk(self.config, index, truth.index_years(self.config))
        result: dict[str, bytes] = {}
        for s, spec in enumerate(self.sites):
            export = SiteExport(chunk, s, self.config)
            for name in FILES:
                result[f"{spec.name}/{name}.csv"] = csv_bytes(getattr(export, name)(), quote=False)
            for name, build in synthea_extra.FILES.items():
                result[f"{spec.name}/{name}.csv"] = csv_bytes(build(export), quote=False)
            result[f"@{spec.name}"] = json.dumps(export.stats()).encode()
            patients = [u.decode() for u in export.patient_ids.tolist()]
            result.update(note_files(spec.name, site_notes(chunk, s, self.config), patients))
        result.update(truth.render(chunk, self.config))
        return result

    def finish(self, folder: Path, stats: dict[str, list[bytes]]) -> dict[str, Any]:
        from pmhub.synth import truth
        from pmhub.synth.output import csv_bytes, header

        for s, spec in enumerate(self.sites):
            parts = [json.loads(b) for b in stats.get(f"@{spec.name}", [])]
            for name, tab in _site_files(self.config, s, parts).items():
                path = folder / spec.name / f"{name}.csv"
                path.write_bytes(header(columns()[f"{name}.csv"]) + csv_bytes(tab, quote=False))
        return truth.finish(folder, self.config)


def _site_files(config: SynthConfig, site: int, parts: list[dict[str, Any]]) -> dict[str, pa.Table]:
    spec = refdata.sites()[site]
    reg = next(r for r in refdata.regions() if r.code == spec.region_code)
    encounters = sum(p["encounters"] for p in parts)
    revenue = sum(p["revenue"] for p in parts)
    doctors = np.sum([p["doctors"] for p in parts], axis=0) if parts else np.zeros(spec.doctors)

    def total(key: str) -> Arr:
        return np.sum([p[key] for p in parts], axis=0) if parts else np.zeros(2)

    org_id = ids.uuid_list(config.seed, ids.ORGANIZATION, np.array([site]))[0]
    address = f"{reg.name_ko} {spec.street}"
    organizations = _table(
        "organizations.csv",
        {
            "Id": org_id,
            "NAME": spec.title_ko,
            "ADDRESS": address,
            "CITY": reg.name_ko,
            "STATE": PROVINCE,
            "ZIP": f"{reg.zip_prefixes[0]}00",
            "LAT": f"{reg.lat:.6f}",
            "LON": f"{reg.lon:.6f}",
            "PHONE": spec.phone,
            "REVENUE": f"{revenue:.2f}",
            "UTILIZATION": str(encounters),
        },
        1,
    )
    st = staff(config.seed, site)
    n = len(st.names)
    providers = _table(
        "providers.csv",
        {
            "Id": ids.uuids(config.seed, ids.PROVIDER, site * 10_000 + np.arange(n)),
            "ORGANIZATION": org_id,
            "NAME": pa.array(list(st.names), pa.string()),
            "GENDER": pa.array(np.where(st.male, "M", "F").tolist(), pa.string()),
            "SPECIALITY": pa.array(list(st.specialty), pa.string()),
            "ADDRESS": address,
            "CITY": reg.name_ko,
            "STATE": PROVINCE,
            "ZIP": f"{reg.zip_prefixes[0]}00",
            "LAT": f"{reg.lat:.6f}",
            "LON": f"{reg.lon:.6f}",
            "UTILIZATION": pa.array(np.asarray(doctors, dtype=np.int64)),
        },
        n,
    )
    payers = _table(
        "payers.csv",
        {
            "Id": ids.uuids(config.seed, ids.PAYER, np.arange(len(PAYERS))),
            "NAME": pa.array([p[0] for p in PAYERS], pa.string()),
            "CITY": "원주시",
            "STATE_HEADQUARTERED": PROVINCE,
            "AMOUNT_COVERED": _number(total("payer_covered")),
            "AMOUNT_UNCOVERED": _number(total("payer_uncovered")),
            "REVENUE": _number(np.zeros(2)),
            "COVERED_ENCOUNTERS": pa.array(total("payer_encounters").astype(np.int64)),
            "UNCOVERED_ENCOUNTERS": pa.array(np.zeros(2, dtype=np.int64)),
            "COVERED_MEDICATIONS": pa.array(np.zeros(2, dtype=np.int64)),
            "UNCOVERED_MEDICATIONS": pa.array(np.zeros(2, dtype=np.int64)),
            "COVERED_PROCEDURES": pa.array(np.zeros(2, dtype=np.int64)),
            "UNCOVERED_PROCEDURES": pa.array(np.zeros(2, dtype=np.int64)),
            "COVERED_IMMUNIZATIONS": pa.array(np.zeros(2, dtype=np.int64)),
            "UNCOVERED_IMMUNIZATIONS": pa.array(np.zeros(2, dtype=np.int64)),
            "UNIQUE_CUSTOMERS": pa.array(total("payer_members").astype(np.int64)),
            "QOLS_AVG": _number(np.ones(2)),
            "MEMBER_MONTHS": pa.array(
                (total("payer_members") * 12 * config.years).astype(np.int64)
            ),
        },
        2,
    )
    return {"organizations": organizations, "providers": providers, "payers": payers}
