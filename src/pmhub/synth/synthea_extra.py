"""The Synthea files beyond the core record: immunizations, allergies, care plans, imaging
studies, devices, supplies, claims and claim transactions (Synthea v3 CSV layout).

They are derived from the simulated record at each hospital, with their own random stream
(``SeedSequence([seed, chunk, 700 + site])``), so adding them changes no other output:

- immunizations: seasonal influenza (CVX 140) at an October-December outpatient visit for
  people aged 65 and over (free under Korea's National Immunization Program; 80 % take it
  each season) and one pneumococcal polysaccharide vaccine (PPSV23, CVX 33) at 65+ (60 % of
  those turning 65, 15 % of older people, most of whom had it before);
- allergies: about 6 % of patients have one recorded allergy (drug, food or environmental),
  entered at their first visit, with one or two reactions;
- care plans: the first diagnosis of hypertension, type 2 diabetes, COPD or asthma at a
  hospital starts a care plan that runs on; each pregnancy has routine antenatal care;
- imaging studies: one study per imaging procedure (X-ray, CT, mammography, ultrasound),
  with DICOM modality, SOP class and made-up study/instance UIDs under 1.2.840.99999999;
- devices: a coronary artery stent for each percutaneous coronary intervention, with a
  GS1-style UDI;
- supplies: blood glucose test strips with each insulin prescription;
- claims: one claim per encounter (diagnoses from the encounter, costs from the Synthea
  encounter costs), and its transactions: the charge, the insurer's payment and the
  patient's payment.

Codes: SNOMED CT (allergens, reactions, care plans, body sites, devices, supplies), RxNorm
for drug allergens, CVX for vaccines, DICOM for modalities and SOP classes, as Synthea
writes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from pmhub.synth import ids, refdata
from pmhub.synth.model import DAYS_PER_YEAR, Arr
from pmhub.synth.omop import lookup
from pmhub.synth.records import COND_KEYS, DRUG_KEYS, ER, IP, OP, PROC_KEYS

if TYPE_CHECKING:
    from pmhub.synth.chunk import Chunk
    from pmhub.synth.synthea import SiteExport

FLU = ("140", "Influenza  seasonal  injectable  preservative free", 0.80)
PPSV23 = ("33", "pneumococcal polysaccharide vaccine  23 valent", 0.60)
VACCINE_COST = 10_000.0
ALLERGY_SHARE = 0.06
# code, system, description, category, weight
ALLERGENS = (
    ("7980", "RxNorm", "Penicillin V", "medication", 4),
    ("1191", "RxNorm", "Aspirin", "medication", 2),
    ("256349002", "SNOMED-CT", "Peanut - dietary (substance)", "food", 1),
    ("102263004", "SNOMED-CT", "Eggs (edible) (substance)", "food", 1),
    ("260147004", "SNOMED-CT", "House dust mite (organism)", "environment", 3),
    ("111088007", "SNOMED-CT", "Latex (substance)", "environment", 1),
)
REACTIONS = (
    ("247472004", "Wheal (finding)"),
    ("271807003", "Eruption of skin (disorder)"),
    ("878820003", "Rhinoconjunctivitis (disorder)"),
    ("39579001", "Anaphylaxis (disorder)"),
)
SEVERITIES = ("MILD", "MODERATE", "SEVERE")
# condition key -> care plan (SNOMED code, description)
CAREPLANS = {
    "hypertension": ("443402002", "Lifestyle education regarding hypertension (procedure)"),
    "t2dm": ("698360004", "Diabetes self management plan"),
    "copd": ("412776001", "Chronic obstructive pulmonary disease clinical management plan"),
    "asthma": ("699728000", "Asthma self management"),
    "pregnancy": ("134435003", "Routine antenatal care"),
}
PREGNANCY_DAYS = 280
# procedure key -> (body site code, body site, modality, modality name, SOP class UID, SOP name)
IMAGING = {
    "chest_xray": (
        "51185008",
        "Thoracic structure (body structure)",
        "DX",
        "Digital Radiography",
        "1.2.840.10008.5.1.4.1.1.1.1",
        "Digital X-Ray Image Storage - For Presentation",
    ),
    "ct_head": (
        "69536005",
        "Head structure (body structure)",
        "CT",
        "Computed Tomography",
        "1.2.840.10008.5.1.4.1.1.2",
        "CT Image Storage",
    ),
    "ct_chest_abdomen": (
        "51185008",
        "Thoracic structure (body structure)",
        "CT",
        "Computed Tomography",
        "1.2.840.10008.5.1.4.1.1.2",
        "CT Image Storage",
    ),
    "mammography": (
        "76752008",
        "Breast structure (body structure)",
        "MG",
        "Mammography",
        "1.2.840.10008.5.1.4.1.1.1.2",
        "Digital Mammography X-Ray Image Storage - For Presentation",
    ),
    "echo": (
        "80891009",
        "Heart structure (body structure)",
        "US",
        "Ultrasound",
        "1.2.840.10008.5.1.4.1.1.6.1",
        "Ultrasound Image Storage",
    ),
    "fetal_ultrasound": (
        "35039007",
        "Uterine structure (body structure)",
        "US",
        "Ultrasound",
        "1.2.840.10008.5.1.4.1.1.6.1",
        "Ultrasound Image Storage",
    ),
}
UID_ROOT = "1.2.840.99999999"
STENT = ("705643001", "Coronary artery stent (physical object)")
STRIPS = ("337388004", "Blood glucose testing strips (physical object)")
STRIPS_PER_DAY = 2
# name spaces of the UUIDs made here (distinct from the FHIR export's RESOURCE * 100 + x)
CAREPLAN_IDS, IMAGING_IDS, CLAIM_IDS, TRANSACTION_IDS = (ids.RESOURCE * 1000 + k for k in range(4))
DEPARTMENT = np.array([1, 3, 2])  # OP, IP, ER: outpatient, ward, emergency department


def _rng(seed: int, chunk: Chunk, site: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, chunk.index, 700 + site]))


def _first(keys: Arr, order_by: Arr) -> Arr:
    """Positions of the first row (by ``order_by``) of each distinct key."""
    order = np.lexsort((order_by, keys))
    first = np.ones(len(order), dtype=bool)
    first[1:] = keys[order][1:] != keys[order][:-1]
    result: Arr = order[first]
    return result


def _site_visits(chunk: Chunk, site: int) -> dict[str, Arr]:
    v = chunk.tables["visits"]
    pos = np.flatnonzero(v["site"] == site)
    return {"pos": pos, **{k: v[k][pos] for k in ("person", "kind", "start", "start_sec")}}


def vaccinations(chunk: Chunk, site: int, seed: int) -> dict[str, Arr]:
    """The vaccinations given at a hospital: visit (row of the visit table), person, day,
    second and vaccine (0 influenza, 1 PPSV23), in time order. Shared by the Synthea and
    FHIR exports."""
    v = _site_visits(chunk, site)
    age = (v["start"] - chunk.state.birth[v["person"]]) / DAYS_PER_YEAR
    when = np.datetime64("1970-01-01") + v["start"].astype("timedelta64[D]")
    month = when.astype("datetime64[M]").astype(np.int64) % 12 + 1
    year = when.astype("datetime64[Y]").astype(np.int64)
    elder = (v["kind"] == OP) & (age >= 65)
    rng = _rng(seed, chunk, site)
    season = np.flatnonzero(elder & (month >= 10))
    flu = season[_first(v["person"][season] * 10_000 + year[season], v["start"][season])]
    flu = flu[rng.random(len(flu)) < FLU[2]]
    eligible = np.flatnonzero(elder)
    pneumo = eligible[_first(v["person"][eligible], v["start"][eligible])]
    # those already past 66 at their first visit here were mostly vaccinated before
    catch_up = age[pneumo] >= 66
    pneumo = pneumo[rng.random(len(pneumo)) < np.where(catch_up, 0.15, PPSV23[2])]
    rows = np.concatenate([flu, pneumo])
    vaccine = np.concatenate([np.zeros(len(flu), np.int64), np.ones(len(pneumo), np.int64)])
    order = np.lexsort((vaccine, v["start_sec"][rows], v["start"][rows]))
    rows, vaccine = rows[order], vaccine[order]
    return {
        "visit": v["pos"][rows],
        "person": v["person"][rows],
        "day": v["start"][rows],
        "sec": v["start_sec"][rows],
        "vaccine": vaccine,
    }


def immunizations(x: SiteExport) -> pa.Table:
    from pmhub.synth.synthea import _iso, _number, _table

    r = vaccinations(x.c, x.site, x.seed)
    n = len(r["visit"])
    return _table(
        "immunizations.csv",
        {
            "DATE": _iso(r["day"], r["sec"]),
            "PATIENT": x._str(x.patient_ids[r["person"]]),
            "ENCOUNTER": x._str(x.encounter_ids[r["visit"]]),
            "CODE": lookup([FLU[0], PPSV23[0]], r["vaccine"]),
            "DESCRIPTION": lookup([FLU[1], PPSV23[1]], r["vaccine"]),
            "BASE_COST": _number(np.full(n, VACCINE_COST)),
        },
        n,
    )


def allergy_rows(chunk: Chunk, site: int, seed: int) -> dict[str, Arr]:
    """The allergies a hospital records, at each patient's first visit there: visit, person,
    day, allergen, first reaction, severity (0 mild .. 2 severe), second reaction (-1 none).
    Shared by the Synthea and FHIR exports."""
    v = _site_visits(chunk, site)
    first = _first(v["person"], v["start"] * 86_400 + v["start_sec"])
    rng = _rng(seed, chunk, site)
    rng.random(1)  # a different draw than the vaccinations' (same stream seed)
    has = rng.random(len(first)) < ALLERGY_SHARE
    rows = first[has]
    n = len(rows)
    weights = np.array([a[4] for a in ALLERGENS], dtype=float)
    allergen = rng.choice(len(ALLERGENS), size=n, p=weights / weights.sum())
    food = np.array([a[3] == "food" for a in ALLERGENS])[allergen]
    reaction = np.where(food, 0, rng.choice(3, size=n, p=[0.45, 0.4, 0.15]))
    severe = rng.random(n) < 0.03
    reaction = np.where(severe, 3, reaction)
    severity = np.where(severe, 2, rng.choice(2, size=n, p=[0.7, 0.3]))
    second = ~severe & (rng.random(n) < 0.2)
    reaction2 = np.where(second, (reaction + 1) % 3, -1)
    order = np.argsort(v["start"][rows], kind="stable")
    return {
        "visit": v["pos"][rows][order],
        "person": v["person"][rows][order],
        "day": v["start"][rows][order],
        "allergen": allergen[order],
        "reaction": reaction[order],
        "severity": severity[order],
        "reaction2": reaction2[order],
    }


def allergies(x: SiteExport) -> pa.Table:
    from pmhub.synth.synthea import _date, _table

    r = allergy_rows(x.c, x.site, x.seed)
    reaction2 = r["reaction2"]
    return _table(
        "allergies.csv",
        {
            "START": _date(r["day"]),
            "PATIENT": x._str(x.patient_ids[r["person"]]),
            "ENCOUNTER": x._str(x.encounter_ids[r["visit"]]),
            "CODE": lookup([a[0] for a in ALLERGENS], r["allergen"]),
            "SYSTEM": lookup([a[1] for a in ALLERGENS], r["allergen"]),
            "DESCRIPTION": lookup([a[2] for a in ALLERGENS], r["allergen"]),
            "TYPE": "allergy",
            "CATEGORY": lookup([a[3] for a in ALLERGENS], r["allergen"]),
            "REACTION1": lookup([c[0] for c in REACTIONS], r["reaction"]),
            "DESCRIPTION1": lookup([c[1] for c in REACTIONS], r["reaction"]),
            "SEVERITY1": lookup(list(SEVERITIES), r["severity"]),
            "REACTION2": lookup([c[0] for c in REACTIONS], reaction2),
            "DESCRIPTION2": lookup([c[1] for c in REACTIONS], reaction2),
            "SEVERITY2": lookup(["MILD"], np.where(reaction2 >= 0, 0, -1)),
        },
        len(r["visit"]),
    )


def careplans(x: SiteExport) -> pa.Table:
    from pmhub.synth.synthea import _clean, _date, _table

    c = x._site_rows("conditions")
    keys = list(CAREPLANS)
    plan_of = np.full(len(COND_KEYS), -1)
    for i, key in enumerate(keys):
        plan_of[COND_KEYS.index(key)] = i
    plan = plan_of[c["cond"]] if len(c["cond"]) else np.zeros(0, np.int64)
    rows = np.flatnonzero(plan >= 0)
    person = x.c.tables["visits"]["person"][c["visit"][rows]]
    pregnant = plan[rows] == keys.index("pregnancy")
    episode = np.where(pregnant, c["day"][rows] // PREGNANCY_DAYS, 0)
    key = (person * len(keys) + plan[rows]) * 1_000 + episode
    rows = rows[_first(key, c["day"][rows])]
    rows = rows[np.argsort(c["day"][rows], kind="stable")]
    person = x.c.tables["visits"]["person"][c["visit"][rows]]
    p = plan[rows]
    start = c["day"][rows]
    end_of_life = np.minimum(x.c.state.death[person], np.iinfo(np.int64).max)
    stop = np.minimum(start + PREGNANCY_DAYS, end_of_life)
    ends = p == keys.index("pregnancy")
    conds = refdata.conditions()
    cond = c["cond"][rows]
    globals_ = x.c.index * 1_000_000_000 + rows
    return _table(
        "careplans.csv",
        {
            "Id": x._str(ids.uuid_strings(x.seed, CAREPLAN_IDS * 64 + x.site, globals_)),
            "START": _date(start),
            "STOP": pa.array(_date(np.maximum(stop, start)).to_pylist(), mask=~ends),
            "PATIENT": x._str(x.patient_ids[person]),
            "ENCOUNTER": x._str(x.encounter_ids[c["visit"][rows]]),
            "CODE": lookup([CAREPLANS[k][0] for k in keys], p),
            "DESCRIPTION": lookup([CAREPLANS[k][1] for k in keys], p),
            "REASONCODE": lookup([conds[k].snomed_code for k in COND_KEYS], cond),
            "REASONDESCRIPTION": lookup(_clean([conds[k].name_en for k in COND_KEYS]), cond),
        },
        len(rows),
    )


def _procedure_rows(x: SiteExport, keys: list[str]) -> tuple[dict[str, Arr], Arr, Arr]:
    """This site's procedures of the given kinds, their kind index and global row number."""
    p = x._site_rows("procedures")
    kind_of = np.full(len(PROC_KEYS), -1)
    for i, key in enumerate(keys):
        kind_of[PROC_KEYS.index(key)] = i
    kind = kind_of[p["proc"]] if len(p["proc"]) else np.zeros(0, np.int64)
    keep = kind >= 0
    rows = {k: a[keep] for k, a in p.items()}
    number = x.c.index * 1_000_000_000 + np.flatnonzero(keep)
    return rows, kind[keep], number


def imaging_studies(x: SiteExport) -> pa.Table:
    from pmhub.synth.synthea import _iso, _table

    keys = list(IMAGING)
    p, kind, number = _procedure_rows(x, keys)
    person = x.c.tables["visits"]["person"][p["visit"]]
    procs = refdata.procedures()
    stem = f"{UID_ROOT}.{x.seed % 10**8}.{x.site + 1}"
    series = pa.array([f"{stem}.{k}.1" for k in number.tolist()], pa.string())
    instance = pa.array([f"{stem}.{k}.1.1" for k in number.tolist()], pa.string())

    def column(i: int) -> pa.Array[Any]:
        return lookup([IMAGING[k][i] for k in keys], kind)

    return _table(
        "imaging_studies.csv",
        {
            "Id": x._str(ids.uuid_strings(x.seed, IMAGING_IDS * 64 + x.site, number)),
            "DATE": _iso(p["day"], p["sec"]),
            "PATIENT": x._str(x.patient_ids[person]),
            "ENCOUNTER": x._str(x.encounter_ids[p["visit"]]),
            "SERIES_UID": series,
            "BODYSITE_CODE": column(0),
            "BODYSITE_DESCRIPTION": column(1),
            "MODALITY_CODE": column(2),
            "MODALITY_DESCRIPTION": column(3),
            "INSTANCE_UID": instance,
            "SOP_CODE": column(4),
            "SOP_DESCRIPTION": column(5),
            "PROCEDURE_CODE": lookup([procs[k].snomed_code for k in keys], kind),
        },
        len(kind),
    )


def devices(x: SiteExport) -> pa.Table:
    from pmhub.synth.synthea import _iso, _table

    p, _, number = _procedure_rows(x, ["pci"])
    person = x.c.tables["visits"]["person"][p["visit"]]
    n = len(number)
    rng = _rng(x.seed, x.c, x.site)
    rng.random(2)
    gtin = rng.integers(10**13, 10**14, size=n)
    lot = rng.integers(10**10, 10**11, size=n)
    serial = rng.integers(1000, 10_000, size=n)
    made = np.datetime64("1970-01-01") + (p["day"] - 14).astype("timedelta64[D]")
    expires = made + np.timedelta64(5 * 365, "D")
    udi = [
        f"(01){g}(11){m.strftime('%y%m%d')}(17){e.strftime('%y%m%d')}(10){lo}(21){s}"
        for g, m, e, lo, s in zip(
            gtin.tolist(),
            made.astype(object).tolist(),
            expires.astype(object).tolist(),
            lot.tolist(),
            serial.tolist(),
            strict=True,
        )
    ]
    return _table(
        "devices.csv",
        {
            "START": _iso(p["day"], p["sec"]),
            "PATIENT": x._str(x.patient_ids[person]),
            "ENCOUNTER": x._str(x.encounter_ids[p["visit"]]),
            "CODE": STENT[0],
            "DESCRIPTION": STENT[1],
            "UDI": pa.array(udi, pa.string()),
        },
        n,
    )


def supplies(x: SiteExport) -> pa.Table:
    from pmhub.synth.synthea import _date, _table

    d = x._site_rows("drugs")
    keep = d["drug"] == DRUG_KEYS.index("insulin_glargine") if len(d["drug"]) else []
    d = {k: a[keep] for k, a in d.items()}
    person = x.c.tables["visits"]["person"][d["visit"]]
    n = len(person)
    return _table(
        "supplies.csv",
        {
            "DATE": _date(d["day"]),
            "PATIENT": x._str(x.patient_ids[person]),
            "ENCOUNTER": x._str(x.encounter_ids[d["visit"]]),
            "CODE": STRIPS[0],
            "DESCRIPTION": STRIPS[1],
            "QUANTITY": pa.array(np.maximum(d["days_supply"], 1) * STRIPS_PER_DAY),
        },
        n,
    )


def _diagnoses(x: SiteExport) -> list[Arr]:
    """Up to eight distinct diagnoses (condition index, -1 for none) of each visit."""
    c = x.c.tables["conditions"]
    n_visits = len(x.c.tables["visits"]["site"])
    slots = [np.full(n_visits, -1, dtype=np.int64) for _ in range(8)]
    if len(c["visit"]) == 0:
        return slots
    key = c["visit"] * len(COND_KEYS) + c["cond"]
    firsts = _first(key, np.arange(len(key)))
    visit, cond = c["visit"][firsts], c["cond"][firsts]
    order = np.argsort(visit, kind="stable")
    visit, cond = visit[order], cond[order]
    start = np.r_[0, np.flatnonzero(np.diff(visit)) + 1]
    rank = np.arange(len(visit)) - np.repeat(start, np.diff(np.r_[start, len(visit)]))
    for r in range(8):
        at = rank == r
        slots[r][visit[at]] = cond[at]
    return slots


def _visit_codes() -> tuple[list[str], list[str]]:
    from pmhub.synth.synthea import ENCOUNTER_CODES

    codes = [ENCOUNTER_CODES[k] for k in ("ambulatory_problem", "inpatient", "emergency")]
    return [c[0] for c in codes], [c[1] for c in codes]


def claims(x: SiteExport) -> pa.Table:
    from pmhub.synth.synthea import _iso, _number, _table

    v = x.c.tables["visits"]
    pos = x.vpos
    n = len(pos)
    person = v["person"][pos]
    doctor = x._str(ids.uuid_strings(x.seed, ids.PROVIDER, x.site * 10_000 + v["provider"][pos]))
    conds = refdata.conditions()
    codes = [conds[k].snomed_code for k in COND_KEYS]
    slots = _diagnoses(x)
    start = _iso(v["start"][pos], v["start_sec"][pos])
    end = _iso(v["end"][pos], np.maximum(v["end_sec"][pos], v["start_sec"][pos]))
    kind = v["kind"][pos]
    columns: dict[str, Any] = {
        "Id": x._str(ids.uuid_strings(x.seed, CLAIM_IDS * 64 + x.site, x.visit_global[pos])),
        "PATIENTID": x._str(x.patient_ids[person]),
        "PROVIDERID": doctor,
        "PRIMARYPATIENTINSURANCEID": x._str(x.payer_ids[x.payer[person]]),
        "SECONDARYPATIENTINSURANCEID": "0",
        "DEPARTMENTID": pa.array(DEPARTMENT[kind]),
        "PATIENTDEPARTMENTID": pa.array(DEPARTMENT[kind]),
        "REFERRINGPROVIDERID": doctor,
        "APPOINTMENTID": x._str(x.encounter_ids[pos]),
        "CURRENTILLNESSDATE": start,
        "SERVICEDATE": start,
        "SUPERVISINGPROVIDERID": doctor,
        "STATUS1": "CLOSED",
        "STATUSP": "CLOSED",
        "OUTSTANDING1": _number(np.zeros(n)),
        "OUTSTANDINGP": _number(np.zeros(n)),
        "LASTBILLEDDATE1": end,
        "LASTBILLEDDATEP": end,
        "HEALTHCARECLAIMTYPEID1": pa.array(np.where(kind == OP, 1, 2)),
    }
    for r, slot in enumerate(slots):
        columns[f"DIAGNOSIS{r + 1}"] = lookup(codes, slot[pos])
    return _table("claims.csv", columns, n)


def claims_transactions(x: SiteExport) -> pa.Table:
    """Per claim: the charge, the insurer's payment of its share, the patient's payment."""
    from pmhub.synth.synthea import _iso, _number, _table

    v = x.c.tables["visits"]
    pos = x.vpos
    n = len(pos)
    total = x.costs["total"][pos]
    covered = x.costs["covered"][pos]
    own = np.round(total - covered, 2)
    line = np.repeat(np.arange(3)[None, :], n, axis=0).ravel()  # 0 charge, 1 insurer, 2 patient
    row = np.repeat(pos, 3)
    amount = np.stack([total, covered, own], axis=1).ravel()
    outstanding = np.stack([total, own, np.zeros(n)], axis=1).ravel()
    person = v["person"][row]
    kind = v["kind"][row]
    doctor = x._str(ids.uuid_strings(x.seed, ids.PROVIDER, x.site * 10_000 + v["provider"][row]))
    main = x.main[row]
    code_values, code_names = _visit_codes()
    kind_index = np.select([kind == IP, kind == ER], [1, 2], 0)
    member = ids.uuid_strings(x.seed, ids.MEMBER, x.c.state.key[person] * 64 + x.site)
    when = _iso(v["start"][row], v["start_sec"][row])
    until = _iso(v["end"][row], np.maximum(v["end_sec"][row], v["start_sec"][row]))
    payment = line > 0
    claim = ids.uuid_strings(x.seed, CLAIM_IDS * 64 + x.site, x.visit_global[row])
    number = x.visit_global[row] * 3 + line
    return _table(
        "claims_transactions.csv",
        {
            "ID": x._str(ids.uuid_strings(x.seed, TRANSACTION_IDS * 64 + x.site, number)),
            "CLAIMID": x._str(claim),
            "CHARGEID": pa.array(np.ones(3 * n, dtype=np.int64)),
            "PATIENTID": x._str(x.patient_ids[person]),
            "TYPE": lookup(["CHARGE", "PAYMENT", "PAYMENT"], line),
            "AMOUNT": _number(amount),
            "METHOD": lookup(["ECHECK", "CASH"], np.where(payment, line - 1, -1)),
            "FROMDATE": when,
            "TODATE": until,
            "PLACEOFSERVICE": x._str(np.full(3 * n, x.org_id)),
            "PROCEDURECODE": lookup(code_values, kind_index),
            "DIAGNOSISREF1": pa.array(np.ones(3 * n, dtype=np.int64), mask=main < 0),
            "UNITS": pa.array(np.ones(3 * n, dtype=np.int64)),
            "DEPARTMENTID": pa.array(DEPARTMENT[kind]),
            "NOTES": lookup(code_names, kind_index),
            "UNITAMOUNT": _number(np.repeat(total, 3)),
            "TRANSFERTYPE": lookup(["1", "p"], np.where(payment, line - 1, -1)),
            "PAYMENTS": _number(np.where(payment, amount, 0.0)),
            "ADJUSTMENTS": _number(np.zeros(3 * n)),
            "TRANSFERS": _number(np.zeros(3 * n)),
            "OUTSTANDING": _number(outstanding),
            "APPOINTMENTID": x._str(x.encounter_ids[row]),
            "PATIENTINSURANCEID": x._str(member),
            "FEESCHEDULEID": pa.array(np.ones(3 * n, dtype=np.int64)),
            "PROVIDERID": doctor,
            "SUPERVISINGPROVIDERID": doctor,
        },
        3 * n,
    )


FILES = {
    "immunizations": immunizations,
    "allergies": allergies,
    "careplans": careplans,
    "imaging_studies": imaging_studies,
    "devices": devices,
    "supplies": supplies,
    "claims": claims,
    "claims_transactions": claims_transactions,
}
