"""One chunk of people from birth of the simulation to its end: lives, then records.

A chunk's random streams come from ``SeedSequence([seed, chunk])`` alone, so a chunk is
the same whichever process runs it and however many chunks run beside it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pmhub.synth import identity, refdata
from pmhub.synth import params as pm
from pmhub.synth.config import CHUNK_SIZE, SynthConfig
from pmhub.synth.model import K_EVENT, NEVER, Arr, Network, State, init_population
from pmhub.synth.records import (
    CIDX,
    IP,
    Context,
    Records,
    event_visits,
    routine_visits,
    visit_contents,
)
from pmhub.synth.step import YearResult, step

EPOCH = dt.date(1970, 1, 1)
ID_BLOCK = 1_000_000_000  # ids of chunk c are c * ID_BLOCK + 1, 2, ...
STALE_PHONE = 0.10  # share of patients whose mobile number a hospital has out of date
OLD_PROVINCE_NAME = 0.15  # share of addresses a hospital still holds as 강원도 ...
assert CHUNK_SIZE * 100 * 200 < ID_BLOCK  # rows per chunk stay inside the block


def day_of(date: dt.date) -> int:
    return (date - EPOCH).days


@dataclass
class Snapshot:
    """The state at the start of a year, kept for the ground truth."""

    year: int  # index of the year in the simulation
    state: State
    result: YearResult | None = None


@dataclass
class Chunk:
    index: int
    state: State  # at the end
    tables: dict[str, dict[str, Arr]]  # canonical record tables
    people: dict[str, Arr]  # identifiers per person
    mrn: Arr  # (n, sites) record number at each site ('' where never seen)
    site_person: Arr  # (n, sites) person_id at each site (0 where never seen)
    norms: list[dict[str, Arr]] = field(default_factory=list)
    snapshots: dict[int, Snapshot] = field(default_factory=dict)
    events: dict[str, Arr] = field(default_factory=dict)  # every acute event: person, what, day
    seed: int = 0
    _at_site: dict[int, dict[str, Arr]] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)  # derived values shared by sites

    def at_site(self, site: int) -> dict[str, Arr]:
        """The identifiers as one hospital holds them: some mobile numbers there are out
        of date, and some addresses still carry the province's name from before 2023
        (강원도), so that records of one person differ between hospitals."""
        if site not in self._at_site:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.index, 500 + site]))
            people = dict(self.people)
            n = self.state.n
            stale = rng.random(n) < STALE_PHONE
            people["phone"] = np.where(stale, identity.mobile_phones(n, rng), people["phone"])
            old = rng.random(n) < OLD_PROVINCE_NAME
            renamed = np.char.replace(people["street"].astype(str), "강원특별자치도", "강원도")
            people["street"] = np.where(old, renamed, people["street"])
            self._at_site[site] = people
        return self._at_site[site]


def network(config: SynthConfig) -> tuple[tuple[refdata.SiteSpec, ...], Network]:
    sites = refdata.sites()[: config.sites]
    codes = [r.code for r in refdata.regions()]
    kinds = tuple(s.kind for s in sites)
    university = kinds.index("university") if "university" in kinds else -1
    obstetric = np.array([i for i, k in enumerate(kinds) if k != "county"], dtype=np.int64)
    net = Network(
        kinds=kinds,
        region_index=np.array([codes.index(s.region_code) for s in sites]),
        university=university,
        obstetric=obstetric,
    )
    return sites, net


def year_days(config: SynthConfig, t: int) -> tuple[int, int]:
    first = dt.date(config.start_year + t, 1, 1)
    return day_of(first), (dt.date(config.start_year + t + 1, 1, 1) - first).days


def simulate_chunk(config: SynthConfig, chunk: int, truth_years: tuple[int, ...] = ()) -> Chunk:
    sites, net = network(config)
    streams = np.random.SeedSequence([config.seed, chunk]).spawn(4)
    rng_pop, rng_sim, rng_rec, rng_id = (np.random.default_rng(s) for s in streams)
    lo, hi = config.chunk_bounds(chunk)
    start_day = day_of(config.start_date)
    end_day = day_of(config.end_date)
    state = init_population(np.arange(lo, hi), start_day, net, rng_pop)
    ctx = Context(
        sites=sites, kinds=np.array(net.kinds), start_day=start_day, end_day=end_day, rng=rng_rec
    )
    rec = Records()
    norms: list[dict[str, Arr]] = []
    snapshots: dict[int, Snapshot] = {}
    event_parts: list[dict[str, Arr]] = []
    for t in range(config.years):
        day0, ndays = year_days(config, t)
        if t in truth_years:
            snapshots[t] = Snapshot(t, state.take(np.arange(state.n)))
        result = step(state, day0, ndays, net, rng_sim)
        if t in snapshots:
            snapshots[t].result = result
        norms.append(result.norms)
        acute = result.log["kind"] == K_EVENT
        event_parts.append({k: result.log[k][acute] for k in ("person", "what", "day")})
        first = rec.visits.rows
        routine_visits(rec, state, result, day0, ndays, ctx)
        procs = event_visits(rec, state, result, ctx)
        visit_contents(rec, state, result, first, ctx, procs)
    tables = finish_records(rec, state, ctx)
    people = identities(state, config, rng_id)
    mrn, site_person = site_numbers(state, tables, len(sites), chunk)
    events = {k: np.concatenate([e[k] for e in event_parts]) for k in ("person", "what", "day")}
    return Chunk(
        chunk, state, tables, people, mrn, site_person, norms, snapshots, events, config.seed
    )


def _arrays(cols: Any, names: tuple[str, ...]) -> dict[str, Arr]:
    if cols.rows == 0:
        return {name: np.empty(0, dtype=np.int64) for name in names}
    result: dict[str, Arr] = cols.arrays()
    return result


TABLE_COLUMNS = {
    "visits": (
        "person",
        "site",
        "kind",
        "start",
        "end",
        "start_sec",
        "end_sec",
        "reason",
        "event",
        "provider",
        "preceding",
    ),
    "conditions": ("visit", "cond", "day"),
    "drugs": ("visit", "drug", "day", "days_supply", "quantity", "admin"),
    "measurements": ("visit", "measure", "day", "sec", "value"),
    "procedures": ("visit", "proc", "day", "sec"),
    "observations": ("visit", "day", "status"),
}


def finish_records(rec: Records, state: State, ctx: Context) -> dict[str, dict[str, Arr]]:
    """Cut everything at death and at the end of the simulation; add in-hospital deaths,
    death records per site, and observation periods."""
    tables = {name: _arrays(getattr(rec, name), cols) for name, cols in TABLE_COLUMNS.items()}
    _terminal_stays(tables, state, ctx)
    v = tables["visits"]
    death = state.death[v["person"]]
    keep = (v["start"] <= ctx.end_day) & (v["start"] <= death) & (v["start"] >= ctx.start_day)
    v["end"] = np.minimum(np.minimum(v["end"], ctx.end_day), death)
    _drop_visits(tables, keep)
    v = tables["visits"]
    v["died"] = (state.death[v["person"]] == v["end"]) & (v["kind"] == IP)
    tables["deaths"] = _death_rows(tables, state, ctx)
    tables["periods"] = _periods(tables, len(ctx.sites))
    return tables


def _terminal_stays(tables: dict[str, dict[str, Arr]], state: State, ctx: Context) -> None:
    """Some who die without an ongoing stay die in hospital after a short admission."""
    v = tables["visits"]
    dead = np.flatnonzero((state.death <= ctx.end_day) & (state.death >= ctx.start_day))
    covered = np.zeros(state.n, dtype=bool)
    ip = v["kind"] == IP
    covering = (
        ip & (v["start"] <= state.death[v["person"]]) & (v["end"] >= state.death[v["person"]])
    )
    covered[v["person"][covering]] = True
    rng = ctx.rng
    admitted = dead[~covered[dead] & (rng.random(len(dead)) < 0.45)]
    if len(admitted) == 0:
        return
    day = state.death[admitted]
    start = np.maximum(day - rng.integers(1, 15, size=len(admitted)), ctx.start_day)
    cause = state.death_cause[admitted]
    site = np.where(
        cause >= 0, state.care_site[admitted, np.maximum(cause, 0)], state.primary_site[admitted]
    )
    n = len(admitted)
    first = len(v["person"])
    new = {
        "person": admitted,
        "site": site,
        "kind": np.full(n, IP),
        "start": start,
        "end": day,
        "start_sec": 10 * 3600 + rng.integers(0, 600, size=n) * 60,
        "end_sec": rng.integers(0, 1440, size=n) * 60,
        "reason": np.full(n, -1),
        "event": np.array(
            [CIDX[pm.STATES[c]] if c >= 0 and pm.STATES[c] in CIDX else -1 for c in cause.tolist()]
        ),
        "provider": state.key[admitted] % 5,
        "preceding": np.full(n, -1),
    }
    for name, col in new.items():
        v[name] = np.concatenate([v[name], col.astype(v[name].dtype)])
    has = new["event"] >= 0
    c = tables["conditions"]
    rows = {"visit": (first + np.arange(n))[has], "cond": new["event"][has], "day": start[has]}
    for name, col in rows.items():
        c[name] = np.concatenate([c[name], col.astype(c[name].dtype)])


def _drop_visits(tables: dict[str, dict[str, Arr]], keep: Arr) -> None:
    new_index = np.cumsum(keep) - 1
    v = tables["visits"]
    for name in list(v):
        v[name] = v[name][keep]
    prec = v["preceding"]
    ok = prec >= 0
    valid = np.zeros(len(prec), dtype=bool)
    valid[ok] = keep[prec[ok]]
    v["preceding"] = np.where(valid, new_index[np.maximum(prec, 0)], -1)
    for name in ("conditions", "drugs", "measurements", "procedures", "observations"):
        t = tables[name]
        if len(t["visit"]) == 0:
            continue
        mask = keep[t["visit"]]
        for col in list(t):
            t[col] = t[col][mask]
        t["visit"] = new_index[t["visit"]]


def _death_rows(tables: dict[str, dict[str, Arr]], state: State, ctx: Context) -> dict[str, Arr]:
    """A site records a death when it happened there, otherwise with the site's capture
    rate (linkage to the national death register)."""
    v = tables["visits"]
    n_sites = len(ctx.sites)
    seen = np.zeros((state.n, n_sites), dtype=bool)
    seen[v["person"], v["site"]] = True
    died_at = np.full(state.n, -1)
    inside = v["died"]
    died_at[v["person"][inside]] = v["site"][inside]
    dead = (state.death <= ctx.end_day) & (state.death >= ctx.start_day)
    capture = np.array([s.death_capture for s in ctx.sites])
    draw = ctx.rng.random((state.n, n_sites))
    record = (
        seen
        & dead[:, None]
        & ((draw < capture[None, :]) | (died_at[:, None] == np.arange(n_sites)[None, :]))
    )
    person, site = np.nonzero(record)
    cause = state.death_cause[person]
    cond = np.array(
        [CIDX[pm.STATES[c]] if c >= 0 and pm.STATES[c] in CIDX else -1 for c in cause.tolist()],
        dtype=np.int64,
    )
    return {"person": person, "site": site, "day": state.death[person], "cause": cond}


def _periods(tables: dict[str, dict[str, Arr]], n_sites: int) -> dict[str, Arr]:
    v = tables["visits"]
    d = tables["deaths"]
    person = np.concatenate([v["person"], d["person"]])
    site = np.concatenate([v["site"], d["site"]])
    first_day = np.concatenate([v["start"], d["day"]])
    last_day = np.concatenate([v["end"], d["day"]])
    key = person * n_sites + site
    uniq, inverse = np.unique(key, return_inverse=True)
    start = np.full(len(uniq), NEVER, dtype=np.int64)
    end = np.full(len(uniq), -(10**9), dtype=np.int64)
    np.minimum.at(start, inverse, first_day)
    np.maximum.at(end, inverse, last_day)
    return {"person": uniq // n_sites, "site": uniq % n_sites, "start": start, "end": end}


def identities(state: State, config: SynthConfig, rng: np.random.Generator) -> dict[str, Arr]:
    birth_year = 1970 + state.birth // 365.25
    family, given = identity.korean_names(state.male, birth_year, state.foreign, rng)
    rrn = identity.registration_numbers(state.birth, state.male, state.foreign, rng)
    street, postcode = identity.addresses(state.region, rng)
    roman = dict(
        zip(
            refdata.names().surnames,
            (r["romanised"] for r in refdata.read_csv("surnames.csv")),
            strict=True,
        )
    )
    family_roman = np.array([roman.get(f, "Lee") for f in family.tolist()])
    return {
        "family": family,
        "given": given,
        "rrn": rrn,
        "phone": identity.mobile_phones(state.n, rng),
        "home_phone": identity.landline_phones(state.n, rng),
        "email": identity.emails(family_roman, rng),
        "street": street,
        "postcode": postcode,
        "family_roman": family_roman,
    }


def site_numbers(
    state: State, tables: dict[str, dict[str, Arr]], n_sites: int, chunk: int
) -> tuple[Arr, Arr]:
    """Record number and person_id of each person at each site where they have records."""
    seen = np.zeros((state.n, n_sites), dtype=bool)
    seen[tables["visits"]["person"], tables["visits"]["site"]] = True
    seen[tables["deaths"]["person"], tables["deaths"]["site"]] = True
    mrn = np.full((state.n, n_sites), "", dtype=object)
    site_person = np.zeros((state.n, n_sites), dtype=np.int64)
    for s, spec in enumerate(refdata.sites()[:n_sites]):
        rows = np.flatnonzero(seen[:, s])
        mrn[rows, s] = identity.record_numbers(state.key[rows], s, spec.mrn_digits)
        site_person[rows, s] = chunk * ID_BLOCK + np.arange(1, len(rows) + 1)
    return mrn, site_person
