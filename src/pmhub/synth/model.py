"""The life simulation: a population's health, treatment and death, one calendar year at
a time, vectorised over all people (no per-person Python loop).

Covariates are read at the start of each year; the year's hazards follow from them; the
year's onsets, events, treatment changes and deaths are drawn at once. The same
:func:`step` runs the main simulation and the Monte-Carlo replicates of the ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from pmhub.synth import params as pm
from pmhub.synth import refdata

Arr = npt.NDArray[Any]
Day = int | Arr  # one day for everyone, or a day per row
NEVER = np.int32(2**31 - 1)  # "has not happened": later than any day
DAYS_PER_YEAR = 365.25

# Treatment classes; each has regimens (lists of drug keys) drawn when it starts.
TREATMENTS: dict[str, tuple[tuple[tuple[str, ...], float], ...]] = {
    "antihypertensive": (
        (("losartan",), 0.25),
        (("valsartan",), 0.15),
        (("amlodipine",), 0.30),
        (("hydrochlorothiazide",), 0.05),
        (("losartan", "amlodipine"), 0.15),
        (("valsartan", "hydrochlorothiazide"), 0.10),
    ),
    "statin": ((("atorvastatin",), 0.5), (("rosuvastatin",), 0.35), (("simvastatin",), 0.15)),
    "metformin": ((("metformin",), 1.0),),
    "dpp4": ((("sitagliptin",), 0.7), (("glimepiride",), 0.3)),
    "sglt2": ((("empagliflozin",), 1.0),),
    "insulin": ((("insulin_glargine",), 1.0),),
    "anticoag": (
        (("warfarin",), 1.0),
        (("apixaban",), 0.0),
        (("rivaroxaban",), 0.0),
        (("edoxaban",), 0.0),
    ),
    "antiplatelet": (
        (("aspirin",), 0.6),
        (("clopidogrel",), 0.2),
        (("aspirin", "clopidogrel"), 0.2),
    ),
    "betablocker": ((("bisoprolol",), 1.0),),
    "loop_diuretic": ((("furosemide",), 1.0),),
    "donepezil": ((("donepezil",), 1.0),),
    "antidepressant": ((("escitalopram",), 0.6), (("sertraline",), 0.4)),
    "inhaler": (
        (("fluticasone_salmeterol", "salbutamol"), 0.6),
        (("fluticasone", "salbutamol"), 0.4),
    ),
    "endocrine_ca": ((("tamoxifen",), 1.0), (("letrozole",), 0.0)),
    "thyroid_hormone": ((("levothyroxine",), 1.0),),
}
TREAT = tuple(TREATMENTS)
TCOL = {name: i for i, name in enumerate(TREAT)}
# The condition a treatment is for: prescriptions are written where it is cared for.
INDICATION = {
    "antihypertensive": "hypertension",
    "statin": "dyslipidaemia",
    "metformin": "t2dm",
    "dpp4": "t2dm",
    "sglt2": "t2dm",
    "insulin": "t2dm",
    "anticoag": "af",
    "antiplatelet": "mi",
    "betablocker": "hf",
    "loop_diuretic": "hf",
    "donepezil": "dementia",
    "antidepressant": "depression",
    "inhaler": "copd",
    "endocrine_ca": "breast_ca",
    "thyroid_hormone": "thyroid_ca",
}
SMOKE_NEVER, SMOKE_FORMER, SMOKE_CURRENT = 0, 1, 2

# Event kinds in the year log
K_ONSET, K_EVENT, K_DELIVERY, K_DEATH, K_ADVERSE = 0, 1, 2, 3, 4
ADVERSE = ("hypoglycaemia", "gi_bleed")
# delivery flags
PREECLAMPSIA, GDM, PRETERM, CESAREAN = 1, 2, 4, 8


@dataclass
class State:
    """Everything the simulation knows about each person; rows are people."""

    key: Arr  # global patient key (int64)
    male: Arr  # bool
    birth: Arr  # days since 1970-01-01 (int32)
    region: Arr  # index into refdata.regions()
    insurance: Arr  # 0 NHI employee, 1 NHI self-employed, 2 Medical Aid
    foreign: Arr  # bool
    z: Arr  # (n, 6) person-level deviations: sbp, ldl, hba1c, egfr, bmi, hdl
    smoke: Arr  # int8
    onset: Arr  # (n, len(STATES)) day of first occurrence, NEVER if none
    last_event: Arr  # (n, len(EVENTS)) day of the latest occurrence
    treat_since: Arr  # (n, len(TREAT)) day the treatment started, NEVER if off
    regimen: Arr  # (n, len(TREAT)) regimen index within the class
    death: Arr  # day of death, NEVER if alive
    death_cause: Arr  # index into STATES, -1 none/other
    primary_site: Arr  # int8 index into the network's sites
    second_site: Arr  # int8, -1 none
    care_site: Arr  # (n, len(STATES)) site where the condition is cared for
    alzheimer: Arr  # bool: dementia coded as Alzheimer's disease
    pregnant_until: Arr  # day of the last delivery (to space pregnancies)

    @property
    def n(self) -> int:
        return len(self.key)

    def take(self, index: Arr) -> State:
        return State(**{f.name: getattr(self, f.name)[index].copy() for f in fields(self)})


@dataclass
class YearLog:
    """What happened in one year, as parallel arrays."""

    person: list[Arr] = field(default_factory=list)
    kind: list[Arr] = field(default_factory=list)
    what: list[Arr] = field(default_factory=list)  # STATES column (onset/event), flags (delivery)
    day: list[Arr] = field(default_factory=list)
    site: list[Arr] = field(default_factory=list)

    def add(self, person: Arr, kind: int, what: Arr | int, day: Arr, site: Arr) -> None:
        n = len(person)
        if n == 0:
            return
        self.person.append(person.astype(np.int64))
        self.kind.append(np.full(n, kind, dtype=np.int8))
        self.what.append(np.broadcast_to(np.asarray(what, dtype=np.int64), (n,)).copy())
        self.day.append(day.astype(np.int64))
        self.site.append(site.astype(np.int64))

    def arrays(self) -> dict[str, Arr]:
        def cat(parts: list[Arr], dtype: Any) -> Arr:
            return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

        return {
            "person": cat(self.person, np.int64),
            "kind": cat(self.kind, np.int8),
            "what": cat(self.what, np.int64),
            "day": cat(self.day, np.int64),
            "site": cat(self.site, np.int64),
        }


@dataclass
class TreatmentChanges:
    """Starts and stops within one year per treatment class (NEVER when none)."""

    start: Arr  # (n, len(TREAT))
    stop: Arr  # (n, len(TREAT))
    on_at_start: Arr  # (n, len(TREAT)) bool


@dataclass
class Network:
    """The sites of the simulated network, as arrays the simulation can index."""

    kinds: tuple[str, ...]
    region_index: Arr  # region index of each site
    university: int  # index of the university site, -1 if none
    obstetric: Arr  # sites with obstetrics (not county hospitals)


def age_years(state: State, day: Day) -> Arr:
    result: Arr = (day - state.birth) / DAYS_PER_YEAR
    return result


# --- latent clinical values -------------------------------------------------------------


def bmi(state: State, age: Arr) -> Arr:
    spec = pm.load().section("bmi")
    ages = np.array(spec["ages"], dtype=float)
    mean = np.where(
        state.male,
        np.interp(age, ages, np.array(spec["mean"]["M"], dtype=float)),
        np.interp(age, ages, np.array(spec["mean"]["F"], dtype=float)),
    )
    sd = np.where(state.male, spec["sd"]["M"], spec["sd"]["F"])
    scale = np.clip(age / 18.0, 0.4, 1.0)  # children vary less
    result: Arr = np.clip(mean + sd * scale * state.z[:, 4], 12.0, 50.0)
    return result


def has(state: State, name: str, day: Day) -> Arr:
    result: Arr = state.onset[:, pm.COLUMN[name]] < day
    return result


def on(state: State, treatment: str, day: Day) -> Arr:
    result: Arr = state.treat_since[:, TCOL[treatment]] <= day
    return result


def latents(state: State, day: Day) -> dict[str, Arr]:
    """Latent clinical values on ``day`` (measurements scatter around them)."""
    spec = pm.load().section("latent")
    age = age_years(state, day)
    body = bmi(state, age)
    htn = has(state, "hypertension", day)
    s = spec["sbp"]
    sbp = np.where(
        htn,
        np.clip(
            s["hypertensive"][0]
            + s["hypertensive"][1] * (age - 60)
            + s["hypertensive"][2] * state.z[:, 0],
            132,
            210,
        ),
        np.clip(
            s["normal"][0]
            + s["normal"][1] * (age - 30)
            + 0.8 * (body - 23)
            + 3 * state.male
            + s["normal"][2] * state.z[:, 0],
            88,
            139,
        ),
    )
    sbp = sbp + s["antihypertensive_effect"] * (htn & on(state, "antihypertensive", day))
    lipid = has(state, "dyslipidaemia", day)
    lp = spec["ldl_mmol"]
    ldl = np.where(
        lipid,
        np.clip(lp["dyslipidaemic"][0] + lp["dyslipidaemic"][2] * state.z[:, 1], 3.4, 7.0),
        np.clip(
            lp["normal"][0] + lp["normal"][1] * (age - 40) + lp["normal"][2] * state.z[:, 1],
            1.2,
            3.9,
        ),
    )
    ldl = ldl * np.where(on(state, "statin", day), lp["statin_factor"], 1.0)
    dm = has(state, "t2dm", day)
    ap = spec["hba1c"]
    a1c = np.where(
        dm,
        np.clip(ap["diabetic"][0] + ap["diabetic"][2] * state.z[:, 2], 6.5, 13.5),
        np.clip(
            ap["normal"][0] + ap["normal"][1] * (age - 40) + ap["normal"][2] * state.z[:, 2],
            4.4,
            6.4,
        ),
    )
    lowering = (
        ap["metformin"] * on(state, "metformin", day)
        + ap["dpp4"] * on(state, "dpp4", day)
        + ap["sglt2"] * on(state, "sglt2", day)
        + ap["insulin"] * on(state, "insulin", day)
    )
    a1c = np.where(dm, np.maximum(a1c + lowering, 5.6), a1c)
    ckd = has(state, "ckd", day)
    ep = spec["egfr"]
    years_ckd = np.where(ckd, (day - state.onset[:, pm.COLUMN["ckd"]]) / DAYS_PER_YEAR, 0.0)
    egfr = np.where(
        ckd,
        np.clip(ep["ckd"][0] + ep["ckd"][1] * 2 * years_ckd + ep["ckd"][2] * state.z[:, 3], 6, 59),
        np.clip(
            ep["normal"][0]
            + ep["normal"][1] * np.maximum(age - 30, 0)
            + ep["normal"][2] * state.z[:, 3],
            60,
            135,
        ),
    )
    hdl = np.clip(
        np.where(state.male, 1.2, 1.45) - 0.12 * (body >= 25) + 0.25 * state.z[:, 5], 0.6, 2.6
    )
    return {"age": age, "bmi": body, "sbp": sbp, "ldl": ldl, "hba1c": a1c, "egfr": egfr, "hdl": hdl}


def covariates(state: State, day: Day, lat: dict[str, Arr]) -> dict[str, Arr]:
    """The covariates of the risk models on ``day`` (see risk_models.yaml)."""
    x: dict[str, Arr] = {
        "female": (~state.male).astype(float),
        "obese": (lat["bmi"] >= 25).astype(float),
        "current_smoker": (state.smoke == SMOKE_CURRENT).astype(float),
        "former_smoker": (state.smoke == SMOKE_FORMER).astype(float),
    }
    for name in pm.CHRONIC:
        x[name] = has(state, name, day).astype(float)
    x["mi_history"] = has(state, "mi", day).astype(float)
    x["stroke_history"] = (has(state, "isch_stroke", day) | has(state, "haem_stroke", day)).astype(
        float
    )
    cancer_cols = [pm.COLUMN[c] for c in pm.CANCERS]
    since = day - state.onset[:, cancer_cols].astype(np.int64)
    x["cancer_active"] = ((since > 0) & (since < 5 * DAYS_PER_YEAR)).any(axis=1).astype(float)
    x["sbp_per_10"] = (lat["sbp"] - 120.0) / 10.0
    x["ldl_per_mmol"] = lat["ldl"] - 2.6
    x["hba1c_above_7"] = np.where(x["t2dm"] > 0, np.maximum(lat["hba1c"] - 7.0, 0.0), 0.0)
    anticoag = on(state, "anticoag", day)
    warfarin = state.regimen[:, TCOL["anticoag"]] == 0
    x["anticoag_warfarin"] = (anticoag & warfarin).astype(float)
    x["anticoag_doac"] = (anticoag & ~warfarin).astype(float)
    x["antiplatelet"] = on(state, "antiplatelet", day).astype(float)
    x["metformin"] = on(state, "metformin", day).astype(float)
    return x


def cha2ds2_vasc(state: State, day: Day, age: Arr, x: dict[str, Arr]) -> Arr:
    result: Arr = (
        x["hf"]
        + x["hypertension"]
        + 2 * (age >= 75)
        + x["t2dm"]
        + 2 * x["stroke_history"]
        + x["mi_history"]
        + ((age >= 65) & (age < 75))
        + x["female"]
    )
    return result


# --- normalisation of centred models -------------------------------------------------------


def band_centre(score: Arr, age: Arr, mask: Arr) -> Arr:
    """log mean exp(score) per age band over ``mask`` (0 where a band is empty)."""
    band = pm.age_band(age)
    weights = np.bincount(band[mask], weights=np.exp(score[mask]), minlength=pm.BANDS)
    counts = np.bincount(band[mask], minlength=pm.BANDS)
    result: Arr = np.where(
        counts > 0, np.log(np.maximum(weights, 1e-300) / np.maximum(counts, 1)), 0.0
    )
    return result


# --- population at the start --------------------------------------------------------------


def sample_ages(n: int, rng: np.random.Generator) -> tuple[Arr, Arr]:
    """(male, age in years) from the Gangwon age pyramid."""
    pyr = refdata.pyramid()
    p = np.concatenate([pyr.male, pyr.female])
    pick = rng.choice(len(p), size=n, p=p / p.sum())
    bands = len(pyr.male)
    male = pick < bands
    band = pick % bands
    lo = pyr.age_from[band].astype(float)
    width = (pyr.age_to[band] - pyr.age_from[band] + 1).astype(float)
    u = rng.random(n)
    age = lo + u * width
    # the open top band thins out with age rather than being uniform
    top = band == bands - 1
    age[top] = lo[top] + np.minimum(rng.exponential(4.5, size=int(top.sum())), width[top] - 1e-3)
    return male, age


def sample_regions(age: Arr, rng: np.random.Generator) -> Arr:
    regs = refdata.regions()
    pop = np.array([r.population for r in regs], dtype=float)
    old = np.array([r.share_65plus for r in regs])
    w_old = pop * old / (pop * old).sum()
    w_young = pop * (1 - old) / (pop * (1 - old)).sum()
    elderly = age >= 65
    result = np.empty(len(age), dtype=np.int64)
    result[elderly] = rng.choice(len(regs), size=int(elderly.sum()), p=w_old)
    result[~elderly] = rng.choice(len(regs), size=int((~elderly).sum()), p=w_young)
    return result


def distance_km(a: Arr, b: Arr) -> Arr:
    """Great-circle distance between region centroids (index arrays)."""
    regs = refdata.regions()
    lat = np.radians(np.array([r.lat for r in regs]))
    lon = np.radians(np.array([r.lon for r in regs]))
    dlat = lat[b] - lat[a]
    dlon = lon[b] - lon[a]
    h = np.sin(dlat / 2) ** 2 + np.cos(lat[a]) * np.cos(lat[b]) * np.sin(dlon / 2) ** 2
    result: Arr = 2 * 6371.0 * np.arcsin(np.sqrt(h))
    return result


def choose_sites(
    region: Arr, age: Arr, sick: Arr, net: Network, rng: np.random.Generator
) -> tuple[Arr, Arr]:
    """Primary and second hospital: nearer is likelier; the university hospital draws the
    old and the sick from further away, county hospitals keep their own elderly."""
    n_sites = len(net.kinds)
    n = len(region)
    weights = np.empty((n, n_sites))
    for s in range(n_sites):
        d = distance_km(region, np.full(n, net.region_index[s]))
        w = np.exp(-d / 45.0)
        kind = net.kinds[s]
        if kind == "university":
            w = w * np.where((age >= 60) | sick, 3.0, 1.0) + 0.02
        elif kind == "county":
            w = w * np.where(age >= 65, 1.6, 0.8)
        weights[:, s] = w + 1e-9
    primary = _pick_rows(weights, rng)
    util = pm.load().section("utilisation")
    second = np.full(n, -1, dtype=np.int64)
    if n_sites > 1:
        wants = rng.random(n) < util["second_site_share"]
        others = weights.copy()
        others[np.arange(n), primary] = 0.0
        second_pick = _pick_rows(others, rng)
        second[wants] = second_pick[wants]
    return primary, second


def _pick_rows(weights: Arr, rng: np.random.Generator) -> Arr:
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    result: Arr = np.minimum((cum < u[:, None]).sum(axis=1), weights.shape[1] - 1)
    return result


def init_population(keys: Arr, start_day: int, net: Network, rng: np.random.Generator) -> State:
    n = len(keys)
    male, age = sample_ages(n, rng)
    birth = (start_day - np.round(age * DAYS_PER_YEAR)).astype(np.int64)
    region = sample_regions(age, rng)
    foreign = rng.random(n) < np.where((age >= 20) & (age < 60), 0.025, 0.004)
    u = rng.random(n)
    aid = np.where(age >= 65, 0.08, 0.04)
    insurance = np.where(u < aid, 2, np.where(u < aid + np.where(region >= 7, 0.45, 0.28), 1, 0))
    nstates = len(pm.STATES)
    state = State(
        key=keys.astype(np.int64),
        male=male,
        birth=birth,
        region=region,
        insurance=insurance.astype(np.int8),
        foreign=foreign,
        z=rng.standard_normal((n, 6)),
        smoke=np.zeros(n, dtype=np.int8),
        onset=np.full((n, nstates), NEVER, dtype=np.int64),
        last_event=np.full((n, len(pm.EVENTS)), NEVER, dtype=np.int64),
        treat_since=np.full((n, len(TREAT)), NEVER, dtype=np.int64),
        regimen=np.zeros((n, len(TREAT)), dtype=np.int8),
        death=np.full(n, NEVER, dtype=np.int64),
        death_cause=np.full(n, -1, dtype=np.int64),
        primary_site=np.zeros(n, dtype=np.int64),
        second_site=np.full(n, -1, dtype=np.int64),
        care_site=np.zeros((n, nstates), dtype=np.int64),
        alzheimer=rng.random(n) < 0.4,
        pregnant_until=np.full(n, -(10**6), dtype=np.int64),
    )
    _init_smoking(state, age, rng)
    _init_history(state, start_day, age, rng)
    sick = (state.onset < start_day).sum(axis=1) >= 2
    state.primary_site, state.second_site = choose_sites(region, age, sick, net, rng)
    state.care_site[:] = state.primary_site[:, None]
    _init_treatment(state, start_day, age, net, rng)
    return state


def _init_smoking(state: State, age: Arr, rng: np.random.Generator) -> None:
    spec = pm.load().section("smoking")
    born = 2000 - age  # approximate cohort; only its decade matters
    ever = np.zeros(state.n)
    for sex, mask in (("M", state.male), ("F", ~state.male)):
        table = spec["ever"][sex]
        cohorts = sorted(int(k) for k in table)
        idx = np.clip(
            np.searchsorted(np.array(cohorts), born, side="right") - 1, 0, len(cohorts) - 1
        )
        values = np.array([table[c] for c in cohorts])
        ever = np.where(mask, values[idx], ever)
    ever = ever * np.clip((age - 15) / 5, 0, 1)
    cur = spec["current_given_ever"]
    p_current = np.where(state.male, pm.interp_table(cur, "M", age), pm.interp_table(cur, "F", age))
    is_ever = rng.random(state.n) < ever
    is_current = is_ever & (rng.random(state.n) < p_current)
    state.smoke = np.where(
        is_current, SMOKE_CURRENT, np.where(is_ever, SMOKE_FORMER, SMOKE_NEVER)
    ).astype(np.int8)


def _past_day(start_day: int, years_back: Arr, rng: np.random.Generator) -> Arr:
    result: Arr = (
        start_day
        - 1
        - np.floor(
            rng.random(len(years_back)) * np.maximum(years_back, 0.01) * DAYS_PER_YEAR
        ).astype(np.int64)
    )
    return result


def _init_history(state: State, start_day: int, age: Arr, rng: np.random.Generator) -> None:
    """Conditions present at the start: prevalence curves shifted by each person's risk
    score (centred within age bands), chronic conditions in dependency order."""
    prm = pm.load()
    alive = np.ones(state.n, dtype=bool)
    for name in pm.CHRONIC:
        lat = latents(state, start_day)
        x = covariates(state, start_day, lat)
        model = prm.chronic[name]
        s = pm.score(model.log_hr, x, state.n)
        prev = np.clip(model.prevalence(age, ~state.male), 1e-9, 1 - 1e-9)
        eligible = age >= model.min_age
        centred = s - band_centre(s, age, alive & eligible)[pm.age_band(age)]
        logit = np.log(prev / (1 - prev)) + centred
        p = np.where(eligible, 1 / (1 + np.exp(-logit)), 0.0)
        got = rng.random(state.n) < p
        years_back = np.minimum(age - model.min_age, 12.0)
        state.onset[got, pm.COLUMN[name]] = _past_day(start_day, years_back[got], rng)
    lat = latents(state, start_day)
    x = covariates(state, start_day, lat)
    for name in pm.EVENTS:
        event = prm.events[name]
        # history: cumulative incidence over the last ten years at today's covariates,
        # discounted for those it killed
        h = event.baseline(np.maximum(age - 5, 0), ~state.male) * np.exp(
            pm.score(event.log_hr, x, state.n)
        )
        survived = 1 - event.case_fatality - (3 * event.excess_mortality)
        p = (1 - np.exp(-10 * h)) * np.clip(survived, 0.2, 1.0)
        got = rng.random(state.n) < p
        day = _past_day(start_day, np.minimum(age[got] - 20, 10.0), rng)
        col = pm.COLUMN[name]
        state.onset[got, col] = day
        state.last_event[got, pm.EVENTS.index(name)] = day


def _init_treatment(
    state: State, start_day: int, age: Arr, net: Network, rng: np.random.Generator
) -> None:
    def start(treatment: str, mask: Arr, since: Arr) -> None:
        col = TCOL[treatment]
        state.treat_since[mask, col] = np.maximum(since[mask], start_day - 20 * 365)
        state.regimen[mask, col] = _regimens(treatment, int(mask.sum()), rng, start_day)

    def prevalent(name: str) -> tuple[Arr, Arr]:
        col = pm.COLUMN[name]
        return state.onset[:, col] < start_day, state.onset[:, col]

    u = rng.random((state.n, len(TREAT)))
    htn, htn_on = prevalent("hypertension")
    start("antihypertensive", htn & (u[:, 0] < 0.75), htn_on + 30)
    lipid, lipid_on = prevalent("dyslipidaemia")
    cv = (state.onset[:, pm.COLUMN["mi"]] < start_day) | (
        state.onset[:, pm.COLUMN["isch_stroke"]] < start_day
    )
    start(
        "statin",
        (lipid & (u[:, 1] < 0.6)) | (cv & (u[:, 1] < 0.8)),
        np.minimum(lipid_on, state.onset[:, pm.COLUMN["mi"]]) + 30,
    )
    dm, dm_on = prevalent("t2dm")
    start("metformin", dm & (u[:, 2] < 0.85), dm_on + 14)
    lat = latents(state, start_day)
    start("dpp4", dm & (lat["hba1c"] > 7.5) & (u[:, 3] < 0.5), dm_on + 365)
    start("insulin", dm & (lat["hba1c"] > 9.0) & (u[:, 5] < 0.4), dm_on + 730)
    af, af_on = prevalent("af")
    kinds = np.array(net.kinds)[state.primary_site]
    p_ac = np.select([kinds == "university", kinds == "general"], [0.7, 0.55], 0.4)
    start("anticoag", af & (age >= 65) & (u[:, 6] < p_ac), af_on + 14)
    start(
        "antiplatelet",
        cv & (u[:, 7] < 0.85),
        np.minimum(state.onset[:, pm.COLUMN["mi"]], state.onset[:, pm.COLUMN["isch_stroke"]]),
    )
    hf, hf_on = prevalent("hf")
    start("betablocker", (hf | af) & (u[:, 8] < 0.5), np.minimum(hf_on, af_on) + 14)
    start("loop_diuretic", hf & (u[:, 9] < 0.7), hf_on + 7)
    dem, dem_on = prevalent("dementia")
    start("donepezil", dem & (u[:, 10] < 0.7), dem_on + 14)
    dep, dep_on = prevalent("depression")
    start("antidepressant", dep & (u[:, 11] < 0.4), dep_on + 7)
    copd, copd_on = prevalent("copd")
    asthma, asthma_on = prevalent("asthma")
    start("inhaler", (copd | asthma) & (u[:, 12] < 0.8), np.minimum(copd_on, asthma_on) + 7)
    breast, breast_on = prevalent("breast_ca")
    endocrine = breast & (breast_on > start_day - 5 * 365) & (u[:, 13] < 0.7)
    start("endocrine_ca", endocrine, breast_on + 60)
    state.regimen[endocrine, TCOL["endocrine_ca"]] = (age[endocrine] >= 50).astype(np.int8)
    thyroid, thyroid_on = prevalent("thyroid_ca")
    start("thyroid_hormone", thyroid, thyroid_on + 30)


def _regimens(treatment: str, n: int, rng: np.random.Generator, day: int) -> Arr:
    options = TREATMENTS[treatment]
    weights = np.array([w for _, w in options], dtype=float)
    if treatment == "anticoag":
        share = doac_share(day)
        weights = np.array([1 - share, share * 0.4, share * 0.35, share * 0.25])
    result: Arr = rng.choice(len(options), size=n, p=weights / weights.sum()).astype(np.int8)
    return result


def doac_share(day: int) -> float:
    table = pm.load().section("treatment", "anticoagulant", "doac_share_by_year")
    years = np.array(sorted(int(y) for y in table), dtype=float)
    values = np.array([table[y] for y in sorted(table, key=int)], dtype=float)
    year = 1970 + day / DAYS_PER_YEAR
    return float(np.interp(year, years, values))
