"""Hospital records from simulated lives: visits, diagnoses, prescriptions, measurements,
procedures, smoking observations and deaths, per site, as columnar arrays.

Sites differ in how they record (see ``data/sites.csv``): units, test codes, how often
vitals and labs are taken, prescription length, how well deaths are captured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pmhub.synth import params as pm
from pmhub.synth import refdata
from pmhub.synth.model import (
    ADVERSE,
    CESAREAN,
    DAYS_PER_YEAR,
    GDM,
    INDICATION,
    K_ADVERSE,
    K_DELIVERY,
    K_EVENT,
    K_ONSET,
    NEVER,
    PREECLAMPSIA,
    PRETERM,
    TCOL,
    TREAT,
    TREATMENTS,
    Arr,
    State,
    _pick_rows,
    age_years,
    latents,
)
from pmhub.synth.step import YearResult

OP, IP, ER = 0, 1, 2
COND_KEYS = tuple(refdata.conditions())
CIDX = {k: i for i, k in enumerate(COND_KEYS)}
DRUG_KEYS = tuple(refdata.drugs())
DIDX = {k: i for i, k in enumerate(DRUG_KEYS)}
MEAS_KEYS = tuple(refdata.measures())
MIDX = {k: i for i, k in enumerate(MEAS_KEYS)}
PROC_KEYS = tuple(refdata.procedures())
PIDX = {k: i for i, k in enumerate(PROC_KEYS)}
MINOR = (
    "pharyngitis",
    "bronchitis",
    "sinusitis",
    "back_pain",
    "knee_oa",
    "uti",
    "headache",
    "anaemia",
)
MINOR_P = np.array([0.25, 0.1, 0.1, 0.2, 0.15, 0.1, 0.05, 0.05])
# Reasons for routine visits: the conditions that need follow-up
REASONS = (
    "hypertension",
    "t2dm",
    "dyslipidaemia",
    "ckd",
    "af",
    "hf",
    "copd",
    "asthma",
    "dementia",
    "depression",
    "cancer",
    "mi",
    "stroke",
)
LOS = {"mi": (3, 8), "isch_stroke": (7, 21), "haem_stroke": (10, 30), "hf": (5, 12)}
SURGERY = {
    "stomach_ca": "gastrectomy",
    "crc": "colectomy",
    "breast_ca": "lumpectomy",
    "thyroid_ca": "thyroidectomy",
}
DIAGNOSTIC = {
    "stomach_ca": "gastroscopy",
    "crc": "colonoscopy",
    "lung_ca": "lung_biopsy",
    "liver_ca": "ct_chest_abdomen",
    "breast_ca": "mammography",
    "thyroid_ca": "ct_chest_abdomen",
}
CHEMO = {
    "stomach_ca": ("oxaliplatin", "fluorouracil"),
    "crc": ("oxaliplatin", "fluorouracil"),
    "lung_ca": ("cisplatin",),
}
SMOKING_TEXT = ("Never smoker", "Former smoker", "Current every day smoker")


@dataclass
class Columns:
    """A growing table: named columns appended in blocks."""

    parts: dict[str, list[Arr]] = field(default_factory=dict)
    rows: int = 0

    def add(self, **cols: Any) -> Arr:
        sizes = [np.size(v) for v in cols.values() if np.ndim(v) > 0]
        n = max(sizes) if sizes else 1
        if n == 0:
            return np.empty(0, dtype=np.int64)
        for name, value in cols.items():
            self.parts.setdefault(name, []).append(np.broadcast_to(np.asarray(value), (n,)).copy())
        first = self.rows
        self.rows += n
        result: Arr = np.arange(first, first + n)
        return result

    def arrays(self) -> dict[str, Arr]:
        return {k: np.concatenate(v) for k, v in self.parts.items()}


@dataclass
class Records:
    """All records of one chunk of people (canonical form, before any output format)."""

    visits: Columns = field(default_factory=Columns)
    conditions: Columns = field(default_factory=Columns)
    drugs: Columns = field(default_factory=Columns)
    measurements: Columns = field(default_factory=Columns)
    procedures: Columns = field(default_factory=Columns)
    observations: Columns = field(default_factory=Columns)


@dataclass
class Context:
    """What record generation needs besides the state: the network and its habits."""

    sites: tuple[refdata.SiteSpec, ...]
    kinds: Arr  # kind of each site (str)
    start_day: int
    end_day: int  # last day of the simulation (inclusive)
    rng: np.random.Generator


# --- visits --------------------------------------------------------------------------------


def _visit_rates(state: State, result: YearResult, day0: int) -> tuple[Arr, Arr]:
    """Expected routine visits per year, and the weight of each follow-up reason."""
    util = pm.load().section("utilisation")
    x = result.x
    age = age_years(state, day0)
    base = pm.interp_table(util["base_by_age"], "rate", age)
    follow = util["followup"]
    recent = day0 - 2 * DAYS_PER_YEAR
    flags = {name: x[name] for name in REASONS[:10]}
    flags["cancer"] = x["cancer_active"]
    flags["mi"] = (state.last_event[:, pm.EVENTS.index("mi")] >= recent).astype(float) * x[
        "mi_history"
    ]
    stroke_last = np.maximum(
        np.where(state.last_event[:, 1] == NEVER, -1, state.last_event[:, 1]),
        np.where(state.last_event[:, 2] == NEVER, -1, state.last_event[:, 2]),
    )
    flags["stroke"] = (stroke_last >= recent).astype(float)
    rates = np.stack(
        [
            flags[r]
            * follow[
                {"cancer": "cancer_active", "mi": "mi_history", "stroke": "stroke_history"}.get(
                    r, r
                )
            ]
            for r in REASONS
        ],
        axis=1,
    )
    total = base + rates.max(axis=1) + 0.3 * (rates.sum(axis=1) - rates.max(axis=1))
    result_rate: Arr = np.minimum(total, util["cap"])
    return result_rate, rates


def _times(n: int, kind: Arr, rng: np.random.Generator) -> tuple[Arr, Arr]:
    """Start second-of-day and duration (seconds) for visits of each kind."""
    op_start = 8 * 3600 + 30 * 60 + rng.integers(0, 8 * 60, size=n) * 60
    er_start = rng.integers(0, 24 * 60, size=n) * 60
    ip_start = 10 * 3600 + rng.integers(0, 10 * 60, size=n) * 60
    start = np.select([kind == OP, kind == ER], [op_start, er_start], ip_start)
    op_len = rng.integers(10, 31, size=n) * 60
    er_len = rng.integers(120, 361, size=n) * 60
    duration = np.select([kind == OP, kind == ER], [op_len, er_len], 0)
    return start, duration


def routine_visits(
    rec: Records, state: State, result: YearResult, day0: int, ndays: int, ctx: Context
) -> None:
    rng = ctx.rng
    util = pm.load().section("utilisation")
    alive = state.death >= day0
    span = np.clip(np.minimum(state.death + 1, day0 + ndays) - day0, 0, ndays)
    rate, reasons = _visit_rates(state, result, day0)
    scale = np.array([s.visit_scale for s in ctx.sites])[state.primary_site]
    count = rng.poisson(rate * scale * span / ndays) * alive
    count = np.minimum(count, 24)
    person = np.repeat(np.arange(state.n), count)
    if len(person) == 0:
        return
    day = day0 + np.floor(rng.random(len(person)) * span[person]).astype(np.int64)
    weights = np.concatenate([reasons[person], np.full((len(person), 1), 0.6)], axis=1)
    reason = _pick_rows(weights, rng)
    reason = np.where(reason == len(REASONS), -1, reason)
    site = state.primary_site[person].copy()
    care_col = np.array([pm.COLUMN[_care_state(r)] for r in REASONS])
    specific = reason >= 0
    site[specific] = state.care_site[person[specific], care_col[reason[specific]]]
    second = state.second_site[person]
    move = (
        (second >= 0)
        & (rng.random(len(person)) < util["second_site_visits"])
        & ~np.isin(reason, [10, 11, 12])
    )
    site[move] = second[move]
    kind = np.full(len(person), OP)
    _add_visits(rec, person, site, kind, day, day, reason, state, ctx)
    _general_admissions(rec, state, day0, ndays, span, alive, ctx)
    # unscheduled emergency visits
    er_rate = pm.interp_table(util["emergency_per_year"], "rate", age_years(state, day0))
    er_count = rng.poisson(er_rate * span / ndays) * alive
    er_person = np.repeat(np.arange(state.n), er_count)
    if len(er_person):
        er_day = day0 + np.floor(rng.random(len(er_person)) * span[er_person]).astype(np.int64)
        _add_visits(
            rec,
            er_person,
            state.primary_site[er_person],
            np.full(len(er_person), ER),
            er_day,
            er_day,
            np.full(len(er_person), -1),
            state,
            ctx,
        )


ADMISSIONS = ("pneumonia", "uti", "hip_fracture", "cholecystitis")
ADMISSION_P = np.array([0.5, 0.2, 0.18, 0.12])


def _general_admissions(
    rec: Records, state: State, day0: int, ndays: int, span: Arr, alive: Arr, ctx: Context
) -> None:
    """Admissions for common acute illness of the old (pneumonia, falls, ...). They fill
    wards as in real hospitals; the risk models do not use them (no effect on survival)."""
    rng = ctx.rng
    age = age_years(state, day0)
    rate = np.select([age >= 85, age >= 75, age >= 65], [0.10, 0.06, 0.03], 0.008)
    frail = (state.onset[:, [pm.COLUMN[c] for c in ("copd", "hf", "dementia")]] < day0).any(axis=1)
    rate = rate * np.where(frail, 1.5, 1.0)
    person = np.flatnonzero(alive & (rng.random(state.n) < 1 - np.exp(-rate * span / ndays)))
    if len(person) == 0:
        return
    n = len(person)
    day = day0 + np.floor(rng.random(n) * span[person]).astype(np.int64)
    reason = np.array([CIDX[k] for k in ADMISSIONS])[
        rng.choice(len(ADMISSIONS), size=n, p=ADMISSION_P)
    ]
    site = state.primary_site[person]
    via_er = rng.random(n) < 0.6
    er = np.full(n, -1, dtype=np.int64)
    if via_er.any():
        k = int(via_er.sum())
        er[via_er] = _add_visits(
            rec,
            person[via_er],
            site[via_er],
            np.full(k, ER),
            day[via_er],
            day[via_er],
            np.full(k, -1),
            state,
            ctx,
            event=reason[via_er],
        )
    length = rng.integers(4, 15, size=n)
    stays = _add_visits(
        rec,
        person,
        site,
        np.full(n, IP),
        day,
        day + length,
        np.full(n, -1),
        state,
        ctx,
        event=reason,
        preceding=er,
    )
    pneumonia = reason == CIDX["pneumonia"]
    rec.procedures.add(
        visit=stays[pneumonia], proc=PIDX["chest_xray"], day=day[pneumonia], sec=10 * 3600
    )


def _care_state(reason: str) -> str:
    return {"cancer": "stomach_ca", "stroke": "isch_stroke"}.get(reason, reason)


def _add_visits(
    rec: Records,
    person: Arr,
    site: Arr,
    kind: Arr,
    start: Arr,
    end: Arr,
    reason: Arr,
    state: State,
    ctx: Context,
    *,
    event: Arr | int = -1,
    preceding: Arr | int = -1,
) -> Arr:
    """Append visits; ``reason`` indexes REASONS (routine), ``event`` a condition key."""
    n = len(person)
    sec, duration = _times(n, kind, ctx.rng)
    doctors = np.array([s.doctors for s in ctx.sites])[site]
    provider = (state.key[person] * 7 + np.maximum(reason, 0) * 3) % doctors
    end_sec = np.where(
        kind == IP,
        11 * 3600 + ctx.rng.integers(0, 4 * 60, size=n) * 60,
        np.minimum(sec + duration, 86_399),
    )
    return rec.visits.add(
        person=person,
        site=site,
        kind=kind,
        start=start,
        end=np.maximum(end, start),
        start_sec=sec,
        end_sec=np.where((kind != IP) & (end == start), np.maximum(end_sec, sec), end_sec),
        reason=reason,
        event=event,
        provider=provider,
        preceding=preceding,
    )


def _event_stay(
    rec: Records,
    state: State,
    person: Arr,
    site: Arr,
    day: Arr,
    cond: str,
    los: tuple[int, int],
    ctx: Context,
) -> tuple[Arr, Arr]:
    """An emergency visit followed by an inpatient stay; returns (er visits, stays)."""
    n = len(person)
    er = _add_visits(
        rec, person, site, np.full(n, ER), day, day, np.full(n, -1), state, ctx, event=CIDX[cond]
    )
    length = ctx.rng.integers(los[0], los[1] + 1, size=n)
    stay = _add_visits(
        rec,
        person,
        site,
        np.full(n, IP),
        day,
        day + length,
        np.full(n, -1),
        state,
        ctx,
        event=CIDX[cond],
        preceding=er,
    )
    return er, stay


def event_visits(rec: Records, state: State, result: YearResult, ctx: Context) -> dict[str, Arr]:
    """Visits for the year's diagnoses and events; returns procedure requests."""
    log = result.log
    rng = ctx.rng
    procs: dict[str, list[Arr]] = {"visit": [], "proc": []}

    def proc(visits: Arr, key: str) -> None:
        procs["visit"].append(visits)
        procs["proc"].append(np.full(len(visits), PIDX[key]))

    names = pm.STATES
    for col, name in enumerate(names):
        sel = ((log["kind"] == K_ONSET) | (log["kind"] == K_EVENT)) & (log["what"] == col)
        person, day, site = log["person"][sel], log["day"][sel], log["site"][sel]
        if len(person) == 0:
            continue
        cond = _condition_key(name, state, person, day)
        if name in ("mi", "isch_stroke", "haem_stroke", "hf"):
            via_er = (
                np.ones(len(person), dtype=bool) if name != "hf" else rng.random(len(person)) < 0.5
            )
            if name == "hf" and (~via_er).any():
                idx = ~via_er
                _add_visits(
                    rec,
                    person[idx],
                    site[idx],
                    np.full(int(idx.sum()), OP),
                    day[idx],
                    day[idx],
                    np.full(int(idx.sum()), -1),
                    state,
                    ctx,
                    event=CIDX["hf"],
                )
            person, day, site = person[via_er], day[via_er], site[via_er]
            if len(person) == 0:
                continue
            er, stay = _event_stay(rec, state, person, site, day, name, LOS[name], ctx)
            proc(er, "ecg" if name in ("mi", "hf") else "ct_head")
            if name == "mi":
                capable = np.isin(ctx.kinds[site], ["university", "general"])
                pci = capable & (
                    rng.random(len(person)) < np.where(ctx.kinds[site] == "university", 0.8, 0.5)
                )
                proc(stay[pci], "pci")
                proc(stay, "echo")
            if name == "hf":
                proc(stay, "echo")
            continue
        if name in pm.CANCERS:
            _cancer_visits(rec, state, person, site, day, name, ctx, proc)
            continue
        kind = np.where((name == "af") & (rng.random(len(person)) < 0.2), ER, OP)
        visits = _add_visits(
            rec, person, site, kind, day, day, np.full(len(person), -1), state, ctx, event=cond
        )
        if name == "af":
            proc(visits, "ecg")
        if name == "copd":
            proc(visits, "chest_xray")
    _delivery_visits(rec, state, log, ctx, proc)
    _adverse_visits(rec, state, log, ctx)
    if not procs["visit"]:
        return {"visit": np.empty(0, dtype=np.int64), "proc": np.empty(0, dtype=np.int64)}
    return {"visit": np.concatenate(procs["visit"]), "proc": np.concatenate(procs["proc"])}


def _condition_key(name: str, state: State, person: Arr, day: Arr) -> Arr:
    if name == "dementia":
        result: Arr = np.where(state.alzheimer[person], CIDX["alzheimer"], CIDX["dementia"])
        return result
    return np.full(len(person), CIDX[name])


def _cancer_visits(
    rec: Records, state: State, person: Arr, site: Arr, day: Arr, name: str, ctx: Context, proc: Any
) -> None:
    rng = ctx.rng
    n = len(person)
    dx = _add_visits(
        rec, person, site, np.full(n, OP), day, day, np.full(n, 10), state, ctx, event=CIDX[name]
    )
    proc(dx, DIAGNOSTIC[name])
    operated = rng.random(n) < (0.4 if name == "lung_ca" else 0.0 if name == "liver_ca" else 0.9)
    if name in SURGERY or name == "lung_ca":
        when = day + rng.integers(14, 46, size=n)
        k = int(operated.sum())
        stays = _add_visits(
            rec,
            person[operated],
            site[operated],
            np.full(k, IP),
            when[operated],
            when[operated] + rng.integers(5, 11, size=k),
            np.full(k, -1),
            state,
            ctx,
            event=CIDX[name],
        )
        proc(stays, SURGERY.get(name, "lung_biopsy"))
    if name in CHEMO:
        chemo = rng.random(n) < 0.5
        for cycle in range(4):
            when = day + 60 + 21 * cycle
            k = int(chemo.sum())
            visits = _add_visits(
                rec,
                person[chemo],
                site[chemo],
                np.full(k, OP),
                when[chemo],
                when[chemo],
                np.full(k, 10),
                state,
                ctx,
                event=CIDX[name],
            )
            proc(visits, "chemotherapy")
            for drug in CHEMO[name]:
                rec.drugs.add(
                    visit=visits,
                    drug=DIDX[drug],
                    day=when[chemo],
                    days_supply=1,
                    quantity=1,
                    admin=True,
                )
    if name == "breast_ca":
        radio = rng.random(n) < 0.6
        k = int(radio.sum())
        visits = _add_visits(
            rec,
            person[radio],
            site[radio],
            np.full(k, OP),
            day[radio] + 75,
            day[radio] + 75,
            np.full(k, 10),
            state,
            ctx,
            event=CIDX[name],
        )
        proc(visits, "radiotherapy")


def _delivery_visits(
    rec: Records, state: State, log: dict[str, Arr], ctx: Context, proc: Any
) -> None:
    sel = log["kind"] == K_DELIVERY
    person, day, site, flags = (
        log["person"][sel],
        log["day"][sel],
        log["site"][sel],
        log["what"][sel],
    )
    n = len(person)
    if n == 0:
        return
    for weeks_before in (34, 26, 20, 12, 3):
        when = day - weeks_before * 7
        ok = when >= ctx.start_day
        k = int(ok.sum())
        visits = _add_visits(
            rec,
            person[ok],
            site[ok],
            np.full(k, OP),
            when[ok],
            when[ok],
            np.full(k, -1),
            state,
            ctx,
            event=CIDX["pregnancy"],
        )
        if weeks_before == 20:
            proc(visits, "fetal_ultrasound")
        _pregnancy_conditions(rec, visits, when[ok], flags[ok], weeks_before)
    cesarean = (flags & CESAREAN) > 0
    length = np.where(cesarean, ctx.rng.integers(5, 8, size=n), ctx.rng.integers(2, 4, size=n))
    stays = _add_visits(
        rec,
        person,
        site,
        np.full(n, IP),
        day,
        day + length,
        np.full(n, -1),
        state,
        ctx,
        event=CIDX["pregnancy"],
    )
    proc(stays[cesarean], "cesarean")
    _pregnancy_conditions(rec, stays, day, flags, 0)


def _pregnancy_conditions(
    rec: Records, visits: Arr, day: Arr, flags: Arr, weeks_before: int
) -> None:
    for bit, key, latest in (
        (PREECLAMPSIA, "preeclampsia", 12),
        (GDM, "gdm", 12),
        (PRETERM, "preterm", 0),
    ):
        has = ((flags & bit) > 0) & (weeks_before <= latest)
        rec.conditions.add(visit=visits[has], cond=CIDX[key], day=day[has])


def _adverse_visits(rec: Records, state: State, log: dict[str, Arr], ctx: Context) -> None:
    for what, key in enumerate(ADVERSE):
        sel = (log["kind"] == K_ADVERSE) & (log["what"] == what)
        person, day, site = log["person"][sel], log["day"][sel], log["site"][sel]
        n = len(person)
        if n == 0:
            continue
        er = _add_visits(
            rec, person, site, np.full(n, ER), day, day, np.full(n, -1), state, ctx, event=CIDX[key]
        )
        if key == "gi_bleed":
            admit = ctx.rng.random(n) < 0.5
            k = int(admit.sum())
            _add_visits(
                rec,
                person[admit],
                site[admit],
                np.full(k, IP),
                day[admit],
                day[admit] + ctx.rng.integers(3, 8, size=k),
                np.full(k, -1),
                state,
                ctx,
                event=CIDX[key],
                preceding=er[admit],
            )


# --- what happens at a visit ---------------------------------------------------------------


def visit_contents(
    rec: Records, state: State, result: YearResult, first: int, ctx: Context, procs: dict[str, Arr]
) -> None:
    """Diagnoses, prescriptions, measurements, procedures and smoking status for the
    visits added this year (rows ``first:`` of the visit table)."""
    v = {k: np.concatenate(parts)[first:] for k, parts in rec.visits.parts.items()}
    if not v or len(v["person"]) == 0:  # no visits yet (a tiny network)
        return
    index = np.arange(first, first + len(v["person"]))
    _conditions(rec, state, result, v, index, ctx)
    _drugs(rec, state, result, v, index, ctx)
    _measurements(rec, state, result, v, index, ctx)
    _procedures(rec, state, v, index, ctx, procs)
    _smoking(rec, state, v, index, ctx)


def _active(state: State, name: str, person: Arr, day: Arr) -> Arr:
    result: Arr = state.onset[person, pm.COLUMN[name]] < day
    return result


def _conditions(
    rec: Records, state: State, result: YearResult, v: dict[str, Arr], index: Arr, ctx: Context
) -> None:
    rng = ctx.rng
    person, day, site, reason, event = v["person"], v["start"], v["site"], v["reason"], v["event"]
    has_event = event >= 0
    rec.conditions.add(visit=index[has_event], cond=event[has_event], day=day[has_event])
    routine = (reason >= 0) & ~has_event
    for r, name in enumerate(REASONS):
        main = routine & (reason == r)
        if not main.any():
            continue
        keys = _reason_condition(name, state, person[main], day[main])
        rec.conditions.add(visit=index[main], cond=keys, day=day[main])
    # other active conditions cared for at the same site, as secondary diagnoses
    chronic_visit = (reason >= 0) | has_event
    for name in pm.CHRONIC:
        col = pm.COLUMN[name]
        mask = (
            chronic_visit
            & _active(state, name, person, day)
            & (state.care_site[person, col] == site)
        )
        mask &= (REASONS.index(name) != reason) & (rng.random(len(person)) < 0.35)
        if mask.any():
            rec.conditions.add(
                visit=index[mask],
                cond=_reason_condition(name, state, person[mask], day[mask]),
                day=day[mask],
            )
    # visits with no chronic reason: a minor complaint, or a health check-up (no diagnosis)
    minor = (reason < 0) & ~has_event & (rng.random(len(person)) < 0.65)
    age = (day - state.birth[person]) / DAYS_PER_YEAR
    pick = np.array([CIDX[m] for m in MINOR])[
        rng.choice(len(MINOR), size=len(person), p=MINOR_P / MINOR_P.sum())
    ]
    pick = np.where((pick == CIDX["knee_oa"]) & (age < 45), CIDX["back_pain"], pick)
    rec.conditions.add(visit=index[minor], cond=pick[minor], day=day[minor])
    smoker = (state.smoke[person] == 2) & (rng.random(len(person)) < 0.08)
    rec.conditions.add(visit=index[smoker], cond=CIDX["nicotine"], day=day[smoker])
    lat_bmi = result.lat["bmi"][person]
    obese = (lat_bmi >= 30) & (rng.random(len(person)) < 0.15)
    rec.conditions.add(visit=index[obese], cond=CIDX["obesity"], day=day[obese])


def _reason_condition(name: str, state: State, person: Arr, day: Arr) -> Arr:
    if name == "cancer":
        cols = np.array([pm.COLUMN[c] for c in pm.CANCERS])
        latest = np.where(
            state.onset[person][:, cols] < day[:, None], state.onset[person][:, cols], -1
        ).argmax(axis=1)
        result: Arr = np.array([CIDX[c] for c in pm.CANCERS])[latest]
        return result
    if name == "stroke":
        haem = (
            state.onset[person, pm.COLUMN["haem_stroke"]]
            < state.onset[person, pm.COLUMN["isch_stroke"]]
        )
        return np.where(haem, CIDX["haem_stroke"], CIDX["isch_stroke"])
    if name == "ckd":
        egfr = latents(state.take(person), day)["egfr"]
        return np.select([egfr < 15, egfr < 30], [CIDX["ckd5"], CIDX["ckd4"]], CIDX["ckd"])
    return _condition_key(name, state, person, day)


def _on_treatment(result: YearResult, person: Arr, col: int, day: Arr) -> Arr:
    ch = result.changes
    stop = ch.stop[person, col]
    start = ch.start[person, col]
    result_mask: Arr = (
        (ch.on_at_start[person, col] & (day < stop)) | ((start <= day) & (day < stop))
    ) & (day >= 0)
    return result_mask


def _drugs(
    rec: Records, state: State, result: YearResult, v: dict[str, Arr], index: Arr, ctx: Context
) -> None:
    person, day, site, kind = v["person"], v["start"], v["site"], v["kind"]
    supply = np.array([s.days_supply for s in ctx.sites])[site]
    prescribing = ((v["reason"] >= 0) | (v["event"] >= 0)) & (kind != ER)
    for treatment in TREAT:
        col = TCOL[treatment]
        cared = state.care_site[person, pm.COLUMN[INDICATION[treatment]]]
        where = (site == cared) | (site == state.primary_site[person])
        mask = prescribing & where & _on_treatment(result, person, col, day)
        if not mask.any():
            continue
        regimen = state.regimen[person, col]
        for r, (drugs, _) in enumerate(TREATMENTS[treatment]):
            rows = mask & (regimen == r)
            if not rows.any():
                continue
            for key in drugs:
                days = np.where(kind[rows] == IP, v["end"][rows] - day[rows] + 1, supply[rows])
                units = refdata.drugs()[key].daily_units
                rec.drugs.add(
                    visit=index[rows],
                    drug=DIDX[key],
                    day=day[rows],
                    days_supply=days,
                    quantity=days * units,
                    admin=kind[rows] == IP,
                )
    nitro = (v["event"] == CIDX["mi"]) & (kind == IP)
    rec.drugs.add(
        visit=index[nitro],
        drug=DIDX["nitroglycerin"],
        day=day[nitro],
        days_supply=30,
        quantity=1,
        admin=False,
    )


def _measurements(
    rec: Records, state: State, result: YearResult, v: dict[str, Arr], index: Arr, ctx: Context
) -> None:
    rng = ctx.rng
    person, day, site, kind, sec = v["person"], v["start"], v["site"], v["kind"], v["start_sec"]
    n = len(person)
    lat = latents(state.take(person), day)
    spec = ctx.sites
    vitals_p = np.array([s.vitals_p for s in spec])[site]
    lab_p = np.array([s.lab_p for s in spec])[site] * 0.5
    u = rng.random((n, 8))
    x = {
        name: _active(state, name, person, day)
        for name in ("t2dm", "dyslipidaemia", "ckd", "hypertension", "hf", "af")
    }
    statin = state.treat_since[person, TCOL["statin"]] <= day
    warfarin = (state.treat_since[person, TCOL["anticoag"]] <= day) & (
        state.regimen[person, TCOL["anticoag"]] == 0
    )
    acute = kind != OP
    screening = (v["reason"] < 0) & (v["event"] < 0) & (kind == OP) & (u[:, 7] < 0.35)
    vitals = (u[:, 0] < vitals_p) | screening
    anthro = (kind == OP) & ((u[:, 1] < 0.25) | screening)
    dm_lab = x["t2dm"] & (u[:, 2] < lab_p)
    lipid_lab = (x["dyslipidaemia"] | statin) & (u[:, 3] < lab_p)
    renal_lab = (x["ckd"] | x["hypertension"] | x["t2dm"]) & (u[:, 4] < lab_p)
    electrolyte = (x["hf"] | x["ckd"]) & (u[:, 5] < lab_p)
    inr = warfarin & (u[:, 6] < 0.9)
    panel = acute | screening
    glucose_key = np.array([MIDX[s.glucose_key] for s in spec])[site]
    creat_key = np.array([MIDX[s.creatinine_key] for s in spec])[site]
    values = _values(state, person, day, lat, rng)
    plan: list[tuple[Arr, Arr | int, str]] = [
        (vitals, MIDX["sbp"], "sbp"),
        (vitals, MIDX["dbp"], "dbp"),
        (vitals, MIDX["hr"], "hr"),
        (anthro, MIDX["weight"], "weight"),
        (anthro, MIDX["height"], "height"),
        (anthro, MIDX["bmi"], "bmi"),
        (dm_lab, MIDX["hba1c"], "hba1c"),
        (dm_lab | panel, glucose_key, "glucose"),
        (lipid_lab | screening, MIDX["cholesterol"], "cholesterol"),
        (lipid_lab | screening, MIDX["ldl"], "ldl"),
        (lipid_lab | screening, MIDX["hdl"], "hdl"),
        (lipid_lab | screening, MIDX["triglyceride"], "triglyceride"),
        (renal_lab | panel, creat_key, "creatinine"),
        (renal_lab | panel, MIDX["egfr"], "egfr"),
        (electrolyte | panel, MIDX["hemoglobin"], "hemoglobin"),
        (electrolyte | acute, MIDX["sodium"], "sodium"),
        (electrolyte | acute, MIDX["potassium"], "potassium"),
        (panel, MIDX["alt"], "alt"),
        (panel, MIDX["ast"], "ast"),
        (inr, MIDX["inr"], "inr"),
    ]
    county = ctx.kinds[site] == "county"
    for mask, key, name in plan:
        if not mask.any():
            continue
        keys = np.broadcast_to(np.asarray(key), (n,))[mask]
        value = values[name][mask]
        lost = rng.random(int(mask.sum())) < np.where(county[mask], 0.03, 0.01)
        value = np.where(lost, np.nan, value)
        rec.measurements.add(
            visit=index[mask],
            measure=keys,
            day=day[mask],
            sec=np.minimum(sec[mask] + 1800, 86_399),
            value=value,
        )


def _values(
    state: State, person: Arr, day: Arr, lat: dict[str, Arr], rng: np.random.Generator
) -> dict[str, Arr]:
    """Measured values (conventional units) scattered around the latent values."""
    n = len(person)
    e = rng.standard_normal((n, 12))
    male = state.male[person]
    age = lat["age"]
    af = _active(state, "af", person, day)
    beta = state.treat_since[person, TCOL["betablocker"]] <= day
    sbp = lat["sbp"] + 8 * e[:, 0]
    adult = np.where(
        male, 172 - 0.12 * np.maximum(age - 35, 0), 159 - 0.12 * np.maximum(age - 35, 0)
    )
    height = np.minimum(adult, 52 + 6.2 * age) + 2 * e[:, 1]
    weight = lat["bmi"] * (height / 100) ** 2
    a1c = lat["hba1c"] + 0.2 * e[:, 2]
    tg = np.exp(
        np.log(1.3)
        + 0.3 * (lat["bmi"] >= 25)
        + 0.3 * _active(state, "t2dm", person, day)
        + 0.35 * e[:, 3]
    )
    ldl = np.maximum(lat["ldl"] + 0.15 * e[:, 4], 0.5)
    egfr = np.clip(lat["egfr"] + 4 * e[:, 5], 4, 150)
    female_factor = np.where(male, 1.0, 0.742)
    creat = (egfr / (175 * np.maximum(age, 18) ** -0.203 * female_factor)) ** (-1 / 1.154)
    liver = _active(state, "liver_ca", person, day)
    cancer = np.zeros(n, dtype=bool)
    for c in pm.CANCERS:
        cancer |= _active(state, c, person, day)
    ckd = _active(state, "ckd", person, day)
    warfarin = (state.treat_since[person, TCOL["anticoag"]] <= day) & (
        state.regimen[person, TCOL["anticoag"]] == 0
    )
    return {
        "sbp": sbp,
        "dbp": 0.45 * sbp + 17 + 6 * e[:, 6],
        "hr": 72 + 9 * e[:, 7] + 14 * af - 8 * beta,
        "weight": weight,
        "height": height,
        "bmi": weight / (height / 100) ** 2,
        "hba1c": a1c,
        "glucose": np.maximum(28.7 * a1c - 46.7 + 12 * e[:, 8], 50),
        "cholesterol": (ldl + lat["hdl"] + tg / 2.2) / 0.02586,
        "ldl": ldl / 0.02586,
        "hdl": lat["hdl"] / 0.02586,
        "triglyceride": tg / 0.01129,
        "creatinine": creat,
        "egfr": egfr,
        "hemoglobin": np.where(male, 14.6, 13.0) - 1.5 * ckd - 1.0 * cancer + 1.0 * e[:, 9],
        "sodium": 140 + 2.5 * e[:, 10],
        "potassium": 4.3 + 0.4 * ckd + 0.35 * e[:, 11],
        "alt": np.exp(np.log(20) + 0.4 * e[:, 0]) * np.where(liver, 3.0, 1.0),
        "ast": np.exp(np.log(23) + 0.35 * e[:, 1]) * np.where(liver, 3.0, 1.0),
        "inr": np.where(warfarin, 2.4 + 0.5 * e[:, 2], 1.0 + 0.08 * e[:, 2]),
    }


def _procedures(
    rec: Records, state: State, v: dict[str, Arr], index: Arr, ctx: Context, procs: dict[str, Arr]
) -> None:
    rng = ctx.rng
    first = index[0]
    visit = procs["visit"]
    mine = visit >= first
    visit, proc = visit[mine], procs["proc"][mine]
    local = visit - first
    rec.procedures.add(visit=visit, proc=proc, day=v["start"][local], sec=v["start_sec"][local])
    person, day, kind = v["person"], v["start"], v["kind"]
    routine = (v["reason"] >= 0) & (kind == OP)
    u = rng.random((len(person), 5))
    univ = ctx.kinds[v["site"]] == "university"
    ecg = (
        routine
        & (
            _active(state, "af", person, day)
            | _active(state, "hf", person, day)
            | _active(state, "hypertension", person, day)
        )
        & (u[:, 0] < np.where(univ, 0.15, 0.06))
    )
    xray = routine & _active(state, "copd", person, day) & (u[:, 1] < 0.2)
    age = (day - state.birth[person]) / DAYS_PER_YEAR
    mammo = (
        (v["reason"] < 0)
        & (v["event"] < 0)
        & ~state.male[person]
        & (age >= 40)
        & (age < 70)
        & (u[:, 2] < 0.08)
    )
    colon = (v["reason"] < 0) & (v["event"] < 0) & (age >= 50) & (u[:, 3] < 0.03)
    ckd = routine & _active(state, "ckd", person, day)
    dialysis = np.zeros(len(person), dtype=bool)
    if ckd.any():  # end-stage kidney disease: dialysed at every visit
        dialysis[ckd] = latents(state.take(person[ckd]), day[ckd])["egfr"] < 12
    for mask, key in (
        (ecg, "ecg"),
        (xray, "chest_xray"),
        (mammo, "mammography"),
        (colon, "colonoscopy"),
        (dialysis, "hemodialysis"),
    ):
        rec.procedures.add(
            visit=index[mask], proc=PIDX[key], day=day[mask], sec=v["start_sec"][mask]
        )


def _smoking(rec: Records, state: State, v: dict[str, Arr], index: Arr, ctx: Context) -> None:
    """Smoking status asked at the first visit of the year at each site."""
    person, site, day = v["person"], v["site"], v["start"]
    adult = (day - state.birth[person]) / DAYS_PER_YEAR >= 15
    key = person * 64 + site
    order = np.lexsort((day, key))
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    chosen = order[first]
    chosen = chosen[adult[chosen]]
    rec.observations.add(visit=index[chosen], day=day[chosen], status=state.smoke[person[chosen]])
