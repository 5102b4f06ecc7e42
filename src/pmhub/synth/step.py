"""One simulated year for everyone at once: onsets, events, pregnancies, smoking,
treatment changes and deaths. Covariates are those at the start of the year."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pmhub.synth import params as pm
from pmhub.synth.model import (
    ADVERSE,
    CESAREAN,
    GDM,
    K_ADVERSE,
    K_DEATH,
    K_DELIVERY,
    K_EVENT,
    K_ONSET,
    NEVER,
    PREECLAMPSIA,
    PRETERM,
    SMOKE_CURRENT,
    SMOKE_FORMER,
    SMOKE_NEVER,
    TCOL,
    TREAT,
    Arr,
    Network,
    State,
    TreatmentChanges,
    YearLog,
    _regimens,
    age_years,
    band_centre,
    cha2ds2_vasc,
    covariates,
    latents,
)


@dataclass
class YearResult:
    log: dict[str, Arr]
    changes: TreatmentChanges
    norms: dict[str, Arr]
    x: dict[str, Arr]  # covariates at the start of the year
    lat: dict[str, Arr]  # latent values at the start of the year
    hazards: dict[str, Arr]  # the year's true hazards of the acute events


class _Year:
    """The working set of one year's step."""

    def __init__(
        self, state: State, day0: int, ndays: int, net: Network, rng: np.random.Generator
    ) -> None:
        self.s = state
        self.day0 = day0
        self.ndays = ndays
        self.net = net
        self.rng = rng
        self.n = state.n
        self.alive = state.death >= day0
        self.age = age_years(state, day0)
        self.female = ~state.male
        self.lat = latents(state, day0)
        self.x = covariates(state, day0, self.lat)
        self.log = YearLog()
        self.new: dict[str, Arr] = {}  # STATES name -> day of a new onset/event (NEVER if none)
        # a death already due (a fatal event late last year) stands unless one comes earlier
        self.death_day = np.where(self.alive, state.death, NEVER).astype(np.int64)
        self.cause = np.where(self.alive, state.death_cause, -1).astype(np.int64)
        self.hazards: dict[str, Arr] = {}

    def days(self) -> Arr:
        result: Arr = self.day0 + self.rng.integers(0, self.ndays, size=self.n)
        return result

    def hit(self, hazard: Arr, mask: Arr) -> Arr:
        result: Arr = mask & (self.rng.random(self.n) < 1.0 - np.exp(-hazard))
        return result


def step(
    state: State,
    day0: int,
    ndays: int,
    net: Network,
    rng: np.random.Generator,
    norms: dict[str, Arr] | None = None,
) -> YearResult:
    """Advance ``state`` by one year (in place) and return what happened."""
    y = _Year(state, day0, ndays, net, rng)
    before_onset = state.onset.copy()
    before_last = state.last_event.copy()
    used = _chronic_onsets(y, norms)
    _events(y)
    _adverse(y)
    _pregnancies(y)
    used["death"] = _deaths(y, norms)
    changes = _treatments(y)
    _smoking(y)
    _finish(y, before_onset, before_last, changes)
    return YearResult(y.log.arrays(), changes, used, y.x, y.lat, y.hazards)


def _chronic_onsets(y: _Year, norms: dict[str, Arr] | None) -> dict[str, Arr]:
    prm = pm.load()
    used: dict[str, Arr] = {}
    band = pm.age_band(y.age)
    for name in pm.CHRONIC:
        model = prm.chronic[name]
        col = pm.COLUMN[name]
        at_risk = y.alive & (y.s.onset[:, col] == NEVER) & (y.age >= model.min_age)
        s = pm.score(model.log_hr, y.x, y.n)
        centre = norms[name] if norms is not None else band_centre(s, y.age, at_risk)
        used[name] = centre
        hazard = model.hazard(y.age, y.female) * np.exp(s - centre[band])
        hit = y.hit(hazard, at_risk)
        day = y.days()
        y.new[name] = np.where(hit, day, NEVER)
        y.s.onset[hit, col] = day[hit]
        site = y.s.primary_site
        y.log.add(np.flatnonzero(hit), K_ONSET, col, day[hit], site[hit])
    return used


def event_hazard(name: str, age: Arr, female: Arr, x: dict[str, Arr]) -> Arr:
    """The true annual hazard of an acute event (absolute model, no centring)."""
    model = pm.load().events[name]
    result: Arr = model.baseline(age, female) * np.exp(pm.score(model.log_hr, x, len(age)))
    return result


def _referral_site(y: _Year) -> Arr:
    """University hospital for acute and cancer care when the network has one."""
    site = y.s.primary_site.copy()
    if y.net.university >= 0:
        p = pm.load().section("utilisation", "referral_to_university")
        go = y.rng.random(y.n) < p
        site[go] = y.net.university
    return site


def _events(y: _Year) -> None:
    for name in pm.EVENTS:
        col = pm.COLUMN[name]
        e = pm.EVENTS.index(name)
        hazard = event_hazard(name, y.age, y.female, y.x)
        y.hazards[name] = hazard
        hit = y.hit(hazard, y.alive & ((y.s.onset[:, col] == NEVER) | (name in pm.CV_EVENTS)))
        day = y.days()
        site = _referral_site(y)
        first = hit & (y.s.onset[:, col] == NEVER)
        y.s.onset[first, col] = day[first]
        y.s.care_site[first, col] = site[first]
        y.s.last_event[hit, e] = day[hit]
        y.new[name] = np.where(hit, day, NEVER)
        y.log.add(np.flatnonzero(hit), K_EVENT, col, day[hit], site[hit])
        fatality = pm.load().events[name].case_fatality
        if fatality > 0:
            dies = hit & (y.rng.random(y.n) < fatality)
            when = day + y.rng.integers(0, 30, size=y.n)
            earlier = dies & (when < y.death_day)
            y.death_day[earlier] = when[earlier]
            y.cause[earlier] = col


def _adverse(y: _Year) -> None:
    """Harms of treatment: hypoglycaemia on insulin, gastrointestinal bleeding on
    anticoagulants and antiplatelets (emergency visits; known effect of treatment)."""
    hypo = 0.03 * y.x["t2dm"] * (y.s.treat_since[:, TCOL["insulin"]] <= y.day0)
    bleed = (
        0.01 * y.x["anticoag_warfarin"] + 0.007 * y.x["anticoag_doac"] + 0.005 * y.x["antiplatelet"]
    )
    for what, hazard in enumerate((hypo, bleed)):
        hit = y.hit(hazard, y.alive)
        day = y.days()
        y.log.add(np.flatnonzero(hit), K_ADVERSE, what, day[hit], y.s.primary_site[hit])
    assert len(ADVERSE) == 2


def _pregnancies(y: _Year) -> None:
    spec = pm.load().section("pregnancy")
    table = spec["delivery_per_year"]
    p = np.interp(y.age, np.array(table["ages"], float), np.array(table["p"], float))
    eligible = (
        y.alive & y.female & (y.age >= 18) & (y.age < 46) & (y.day0 - y.s.pregnant_until > 400)
    )
    hit = eligible & (y.rng.random(y.n) < p)
    day = y.days()
    old = y.age >= 35
    obese = y.x["obese"] > 0
    htn = y.x["hypertension"] > 0
    u = y.rng.random((y.n, 4))
    pe = spec["preeclampsia"]
    p_pe = (
        pe["base"]
        * np.where(old, pe["age_35"], 1)
        * np.where(obese, pe["obese"], 1)
        * np.where(htn, pe["hypertension"], 1)
    )
    g = spec["gdm"]
    p_gdm = g["base"] * np.where(old, g["age_35"], 1) * np.where(obese, g["obese"], 1)
    has_pe = u[:, 0] < p_pe
    pt = spec["preterm"]
    p_pt = pt["base"] * np.where(has_pe, pt["preeclampsia"], 1) * np.where(old, pt["age_35"], 1)
    flags = PREECLAMPSIA * has_pe + GDM * (u[:, 1] < p_gdm) + PRETERM * (u[:, 2] < p_pt)
    cs = spec["cesarean"]
    flags = flags + CESAREAN * (u[:, 3] < cs["base"] + cs["complicated"] * (flags > 0))
    site = y.s.primary_site.copy()
    if len(y.net.obstetric):
        county = np.array([k == "county" for k in y.net.kinds])[site]
        site[county] = y.net.obstetric[y.rng.integers(0, len(y.net.obstetric), size=y.n)][county]
    y.s.pregnant_until[hit] = day[hit]
    y.log.add(np.flatnonzero(hit), K_DELIVERY, flags[hit], day[hit], site[hit])


def _deaths(y: _Year, norms: dict[str, Arr] | None) -> Arr:
    prm = pm.load()
    s = pm.score(prm.death.log_hr, y.x, y.n)
    centre = norms["death"] if norms is not None else band_centre(s, y.age, y.alive)
    hazard = prm.death.baseline(y.age, y.female) * np.exp(s - centre[pm.age_band(y.age)])
    excess = np.zeros((y.n, len(pm.CANCERS)))
    for i, name in enumerate(pm.CANCERS):
        onset = y.s.onset[:, pm.COLUMN[name]]
        model = prm.events[name]
        years = (y.day0 - onset) / 365.25
        had = onset < y.day0
        new = (onset >= y.day0) & (onset != NEVER)
        rate = np.where(
            years < 5, model.excess_mortality, model.excess_mortality * prm.cancer_excess_after_5
        )
        excess[:, i] = np.where(had, rate, 0.0) + np.where(new, 0.5 * model.excess_mortality, 0.0)
    total = hazard + excess.sum(axis=1)
    dies = y.hit(total, y.alive)
    day = y.days()
    cancer_share = excess.sum(axis=1) / np.maximum(total, 1e-12)
    cancer_cause = np.array([pm.COLUMN[c] for c in pm.CANCERS])[excess.argmax(axis=1)]
    chronic_cause = np.select(
        [y.x["hf"] > 0, y.x["copd"] > 0, y.x["dementia"] > 0, y.x["ckd"] > 0],
        [pm.COLUMN["hf"], pm.COLUMN["copd"], pm.COLUMN["dementia"], pm.COLUMN["ckd"]],
        -1,
    )
    cause = np.where(y.rng.random(y.n) < cancer_share, cancer_cause, chronic_cause)
    earlier = dies & (day < y.death_day)
    y.death_day[earlier] = day[earlier]
    y.cause[earlier] = cause[earlier]
    result: Arr = centre
    return result


def _smoking(y: _Year) -> None:
    spec = pm.load().section("smoking")
    s = y.s
    events = np.zeros(y.n, dtype=bool)
    for name in ("mi", "isch_stroke", "haem_stroke", "copd", "lung_ca"):
        events |= y.new[name] != NEVER
    quit_p = spec["quit"] + spec["quit_after_event"] * events
    current = s.smoke == SMOKE_CURRENT
    quits = current & (y.rng.random(y.n) < quit_p)
    young = (y.age >= 15) & (y.age < 30) & (s.smoke == SMOKE_NEVER)
    start_p = np.where(s.male, spec["initiation_15_29"]["M"], spec["initiation_15_29"]["F"])
    starts = young & (y.rng.random(y.n) < start_p)
    s.smoke[quits] = SMOKE_FORMER
    s.smoke[starts] = SMOKE_CURRENT


def _treatments(y: _Year) -> TreatmentChanges:
    spec = pm.load().section("treatment")
    s = y.s
    n_t = len(TREAT)
    on_at_start = s.treat_since <= y.day0
    start = np.full((y.n, n_t), NEVER, dtype=np.int64)
    stop = np.full((y.n, n_t), NEVER, dtype=np.int64)
    u = y.rng.random((y.n, n_t, 3))
    anyday = y.days()

    def new(name: str) -> Arr:
        result: Arr = y.new[name] != NEVER
        return result

    def begin(treatment: str, mask: Arr, day: Arr) -> None:
        col = TCOL[treatment]
        mask = mask & ~on_at_start[:, col] & y.alive & (start[:, col] == NEVER)
        day = np.minimum(day, y.day0 + y.ndays - 1)
        start[mask, col] = day[mask]
        s.regimen[mask, col] = _regimens(treatment, int(mask.sum()), y.rng, y.day0)
        s.treat_since[mask, col] = day[mask]

    def end(treatment: str, p_stop: float) -> None:
        col = TCOL[treatment]
        mask = on_at_start[:, col] & (u[:, col, 2] < p_stop)
        stop[mask, col] = anyday[mask]

    def untreated(name: str) -> Arr:
        result: Arr = y.x[name] > 0
        return result

    a = spec["antihypertensive"]
    c = TCOL["antihypertensive"]
    begin(
        "antihypertensive",
        new("hypertension") & (u[:, c, 0] < a["at_diagnosis"]),
        y.new["hypertension"] + 14,
    )
    begin("antihypertensive", untreated("hypertension") & (u[:, c, 1] < a["per_year"]), anyday)
    end("antihypertensive", a["stop"])

    st = spec["statin"]
    c = TCOL["statin"]
    cv_day = np.minimum(y.new["mi"], y.new["isch_stroke"])
    begin("statin", (cv_day != NEVER) & (u[:, c, 0] < st["after_cv_event"]), cv_day + 7)
    begin(
        "statin",
        new("dyslipidaemia") & (u[:, c, 0] < st["at_diagnosis"]),
        y.new["dyslipidaemia"] + 14,
    )
    begin("statin", untreated("dyslipidaemia") & (u[:, c, 1] < st["per_year"]), anyday)
    begin("statin", untreated("t2dm") & (y.age >= 40) & (u[:, c, 1] < st["diabetic_40"]), anyday)
    end("statin", st["stop"])

    m = spec["metformin"]
    c = TCOL["metformin"]
    begin("metformin", new("t2dm") & (u[:, c, 0] < m["at_diagnosis"]), y.new["t2dm"] + 7)
    begin("metformin", untreated("t2dm") & (u[:, c, 1] < m["per_year"]), anyday)
    end("metformin", m["stop"])
    dm = untreated("t2dm")
    for name in ("dpp4", "sglt2", "insulin"):
        r = spec[name]
        allowed = 1970 + y.day0 / 365.25 >= r.get("from_year", 0)
        begin(
            name,
            dm
            & (y.lat["hba1c"] > r["hba1c_over"])
            & allowed
            & (u[:, TCOL[name], 1] < r["per_year"]),
            anyday,
        )

    ac = spec["anticoagulant"]
    c = TCOL["anticoag"]
    kinds = np.array(y.net.kinds)[s.primary_site]
    by_site = ac["at_diagnosis_by_site"]
    p_dx = np.select(
        [kinds == "university", kinds == "general"],
        [by_site["university"], by_site["general"]],
        by_site["county"],
    )
    score = cha2ds2_vasc(s, y.day0, y.age, y.x)
    p_dx = p_dx * np.where(score + 1 * (y.age >= 65) >= 2, 1.0, 0.4)
    begin("anticoag", new("af") & (u[:, c, 0] < p_dx), y.new["af"] + 7)
    begin("anticoag", untreated("af") & (score >= 2) & (u[:, c, 1] < ac["per_year"]), anyday)
    end("anticoag", ac["stop"])

    ap = spec["antiplatelet"]
    c = TCOL["antiplatelet"]
    begin("antiplatelet", (cv_day != NEVER) & (u[:, c, 0] < ap["after_cv_event"]), cv_day + 1)
    end("antiplatelet", ap["stop"])

    bb = spec["betablocker"]
    c = TCOL["betablocker"]
    hf_mi = np.minimum(y.new["hf"], y.new["mi"])
    begin("betablocker", (hf_mi != NEVER) & (u[:, c, 0] < bb["hf_or_mi"]), hf_mi + 7)
    begin("betablocker", new("af") & (u[:, c, 1] < bb["af"]), y.new["af"] + 7)
    end("betablocker", bb["stop"])
    begin(
        "loop_diuretic",
        new("hf") & (u[:, TCOL["loop_diuretic"], 0] < spec["loop_diuretic"]["hf"]),
        y.new["hf"] + 3,
    )
    begin(
        "donepezil",
        new("dementia") & (u[:, TCOL["donepezil"], 0] < spec["donepezil"]["at_diagnosis"]),
        y.new["dementia"] + 14,
    )
    ad = spec["antidepressant"]
    begin(
        "antidepressant",
        new("depression") & (u[:, TCOL["antidepressant"], 0] < ad["at_diagnosis"]),
        y.new["depression"] + 3,
    )
    end("antidepressant", ad["stop"])
    lung = np.minimum(y.new["copd"], y.new["asthma"])
    begin(
        "inhaler",
        (lung != NEVER) & (u[:, TCOL["inhaler"], 0] < spec["inhaler"]["at_diagnosis"]),
        lung + 1,
    )
    begin(
        "endocrine_ca",
        new("breast_ca") & (u[:, TCOL["endocrine_ca"], 0] < 0.7),
        y.new["breast_ca"] + 60,
    )
    fresh = start[:, TCOL["endocrine_ca"]] != NEVER
    s.regimen[fresh, TCOL["endocrine_ca"]] = (y.age[fresh] >= 50).astype(np.int8)
    begin("thyroid_hormone", new("thyroid_ca"), y.new["thyroid_ca"] + 30)
    # a treatment that started late in December may not outlive the year's stop draw
    stop = np.where(stop <= start, NEVER, stop)
    return TreatmentChanges(start=start, stop=stop, on_at_start=on_at_start)


def _finish(y: _Year, before_onset: Arr, before_last: Arr, changes: TreatmentChanges) -> None:
    """Apply deaths: nothing happens to anybody after their death."""
    s = y.s
    # deaths due after the year's end (case fatality within 30 days of a December event)
    # are kept, so that next year honours them
    dead = (y.death_day != NEVER) & y.alive
    s.death[dead] = y.death_day[dead]
    s.death_cause[dead] = y.cause[dead]
    after = s.onset > s.death[:, None]
    s.onset[after] = before_onset[after]
    later = s.last_event > s.death[:, None]
    s.last_event[later] = before_last[later]
    starts_after = changes.start > s.death[:, None]
    changes.start[starts_after] = NEVER
    s.treat_since[starts_after] = NEVER
    stopped = changes.stop < NEVER
    cols = np.nonzero(stopped)
    s.treat_since[cols] = NEVER
    new = dead & (s.death < y.day0 + y.ndays)
    y.log.add(np.flatnonzero(new), K_DEATH, s.death_cause[new], s.death[new], s.primary_site[new])
    arrays = y.log.arrays()
    keep = arrays["day"] <= s.death[arrays["person"]]
    y.log = _filtered(arrays, keep)


def _filtered(arrays: dict[str, Arr], keep: Arr) -> Any:
    log = YearLog()
    if keep.any():
        log.person.append(arrays["person"][keep])
        log.kind.append(arrays["kind"][keep])
        log.what.append(arrays["what"][keep])
        log.day.append(arrays["day"][keep])
        log.site.append(arrays["site"][keep])
    return log
