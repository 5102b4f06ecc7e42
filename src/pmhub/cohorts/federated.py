"""Federated cohorts: the same definition runs at every site; each site returns only
aggregates with small-cell suppression, and the hub combines them.

What crosses the site boundary for display is a :class:`SiteAggregate` (plain JSON):
counts by sex and age band, incidence rates and a life table, suppressed at the site by
:mod:`pmhub.disclosure`. Pooled figures are not sums of those (a hidden cell is not 0,
and dropping it biases the pool): each site also sends a :class:`Contribution` of exact
counts, which only :func:`combine` reads and which is released only after suppression of
the pooled table (sites by strata, with every margin). Here the hub process stands in for
secure aggregation, which will carry the same contribution once federated analytics
lands. A figure the hub cannot pool (a site sent no contribution) is not computable,
with the reason; it is never a sum over the sites that happened to report.
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd
from pydantic import BaseModel, ConfigDict

from pmhub.cohorts import incidence as inc
from pmhub.cohorts import query_model as q
from pmhub.cohorts import service, survival
from pmhub.cohorts.characterize import COHORT, _demographics, first_entries
from pmhub.cohorts.definition import Definition
from pmhub.cohorts.engines import Engine
from pmhub.cohorts.errors import AggregateError, CohortNotGeneratedError
from pmhub.cohorts.outcomes import time_at_risk
from pmhub.cohorts.released import attrition_released
from pmhub.disclosure import Count, Line, Why, hidden, primary, protect, shown

AGE_BANDS = ((0, 17, "0-17"), (18, 39, "18-39"), (40, 64, "40-64"), (65, 200, "65+"))


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RateModel(Frozen):
    stratum: str
    level: str
    persons: int | None
    events: int | None
    person_years: float | None
    rate: float | None
    lower: float | None
    upper: float | None
    reason: str | None = None  # why the rate is not shown


class LifeTableModel(Frozen):
    interval_days: int
    at_risk: list[int]
    events: list[int]
    censored: list[int]


class AttritionModel(Frozen):
    """Persons and index events left after a step (entry, then each inclusion rule)."""

    step: str
    persons: int | None
    events: int | None
    persons_alone: int | None = None  # meeting this rule by itself


class SiteAggregate(Frozen):
    site: str
    definition_id: int
    fingerprint: str  # of the definition: sites must have run the same one
    threshold: int
    persons: int | None
    entries: int | None
    by_sex: dict[str, int | None]
    by_age: dict[str, int | None]
    outcome_id: int | None = None
    rates: list[RateModel] = []
    life_table: LifeTableModel | None = None
    attrition: list[AttritionModel] = []


class Contribution(Frozen):
    """A site's exact counts for pooled figures: read only by :func:`combine`, never shown
    (the stand-in for a secure-aggregation share)."""

    site: str
    persons: int
    by_sex: dict[str, int]
    by_age: dict[str, int]
    attrition: list[tuple[str, int, int]] = []  # step, persons, events
    strata: list[tuple[str, str, int, int, float]] = []  # incidence: persons, events, PY
    life_table: LifeTableModel | None = None  # exact: no carrying, no truncation


def fingerprint(definition: Definition) -> str:
    text = json.dumps(definition.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def suppress(count: int, threshold: int) -> int | None:
    """Primary suppression of a lone count, as it travels in JSON (None: hidden)."""
    return primary(count, threshold).value


def _entries(definition_id: int) -> q.Relation:
    rows = q.Where(COHORT, q.eq(q.col("cohort_definition_id"), q.lit_int(definition_id)))
    return q.Aggregate(rows, (), (("entries", q.Agg("count", q.col("subject_id"))),))


def _exact_counts(engine: Engine, definition_id: int) -> tuple[int, dict[str, int], dict[str, int]]:
    people = pd.DataFrame(
        engine.rows(_demographics(first_entries(definition_id))),
        columns=["person_id", "start_date", "end_date", "age", "gender"],
    )
    sexes = {
        "female": int((people["gender"] == 8532).sum()),
        "male": int((people["gender"] == 8507).sum()),
    }
    sexes["other or unknown"] = len(people) - sexes["female"] - sexes["male"]
    ages = {
        label: int(people["age"].astype(float).between(lo, hi).sum()) for lo, hi, label in AGE_BANDS
    }
    ages["unknown"] = len(people) - sum(ages.values())  # ages outside every band
    return len(people), sexes, ages


def margins(
    persons: int, by_sex: dict[str, int], by_age: dict[str, int], threshold: int
) -> tuple[Count, dict[str, Count], dict[str, Count]]:
    """Persons, by sex and by age band, suppressed together (each adds up to persons)."""
    values = {("persons", ""): persons}
    values.update({("sex", k): v for k, v in by_sex.items()})
    values.update({("age", k): v for k, v in by_age.items()})
    lines = [
        Line(("persons", ""), tuple(("sex", k) for k in by_sex)),
        Line(("persons", ""), tuple(("age", k) for k in by_age)),
    ]
    cells = protect(values, lines, threshold).cells
    return (
        cells[("persons", "")],
        {k: cells[("sex", k)] for k in by_sex},
        {k: cells[("age", k)] for k in by_age if k != "unknown" or by_age[k]},
    )


def _counts(
    engine: Engine, definition_id: int, threshold: int
) -> tuple[dict[str, object], Contribution]:
    entries = int(engine.rows(_entries(definition_id))[0]["entries"])
    persons, sexes, ages = _exact_counts(engine, definition_id)
    total, by_sex, by_age = margins(persons, sexes, ages, threshold)
    shown_fields: dict[str, object] = {
        "persons": total.value,
        "entries": primary(entries, threshold).value,
        "by_sex": {k: c.value for k, c in by_sex.items()},
        "by_age": {k: c.value for k, c in by_age.items()},
    }
    return shown_fields, Contribution(site="", persons=persons, by_sex=sexes, by_age=ages)


def site_aggregate(
    site: str,
    place: service.Place,
    definition: Definition,
    threshold: int,
    outcome: Definition | None = None,
    interval_days: int = 90,
    horizon_days: int = 3650,
    *,
    replace: bool = False,
) -> SiteAggregate:
    """Run at one site: generate the cohort (and outcome), return only aggregates."""
    return site_result(
        site, place, definition, threshold, outcome, interval_days, horizon_days, replace=replace
    )[0]


def site_result(
    site: str,
    place: service.Place,
    definition: Definition,
    threshold: int,
    outcome: Definition | None = None,
    interval_days: int = 90,
    horizon_days: int = 3650,
    *,
    replace: bool = False,
) -> tuple[SiteAggregate, Contribution]:
    """Run at one site: the suppressed aggregate, and the exact contribution to pooling.
    Every definition's id is checked before anything is generated (see provenance.py)."""
    engine = service.as_engine(place)
    service.admit([definition, *([outcome] if outcome else [])], engine, replace=replace)
    service.generate(definition, engine, replace=replace)
    fields, contribution = _counts(engine, definition.id, threshold)
    steps = [
        (s.step, s.persons, s.events, s.persons_alone)
        for s in service.attrition(definition, engine)
    ]
    fields["attrition"] = [
        AttritionModel(step=name, persons=p.value, events=e.value, persons_alone=a.value)
        for name, p, e, a in attrition_released(steps, threshold)
    ]
    extra: dict[str, object] = {"attrition": [(n, p, e) for n, p, e, _ in steps]}
    if outcome is not None:
        service.generate(outcome, engine, replace=replace)
        shown_outcome, exact = _outcome_aggregates(
            engine, definition, outcome, threshold, interval_days, horizon_days
        )
        fields.update(shown_outcome)
        extra.update(exact)
    aggregate = SiteAggregate(
        site=site,
        definition_id=definition.id,
        fingerprint=fingerprint(definition) + (f"+{fingerprint(outcome)}" if outcome else ""),
        threshold=threshold,
        **fields,  # type: ignore[arg-type]
    )
    return aggregate, contribution.model_copy(update={"site": site, **extra})


def rate_model(rate: inc.Rate) -> RateModel:
    return RateModel(
        stratum=rate.stratum,
        level=rate.level,
        persons=rate.persons.value,
        events=rate.events.value,
        person_years=rate.person_years,
        rate=rate.rate,
        lower=rate.lower,
        upper=rate.upper,
        reason=rate.reason,
    )


def _outcome_aggregates(
    engine: Engine,
    definition: Definition,
    outcome: Definition,
    threshold: int,
    interval_days: int,
    horizon_days: int,
) -> tuple[dict[str, object], dict[str, object]]:
    try:
        frame = time_at_risk(engine, definition.id, outcome.id)
    except CohortNotGeneratedError:
        return {"outcome_id": outcome.id}, {}
    strata = inc.strata(frame)
    rates = [rate_model(r) for r in inc.suppressed(strata, threshold)]
    table = survival.life_table(frame, interval_days, horizon_days, threshold)
    exact = survival.exact_life_table(frame, interval_days, horizon_days)
    return (
        {"outcome_id": outcome.id, "rates": rates, "life_table": LifeTableModel(**table.__dict__)},
        {"strata": strata, "life_table": LifeTableModel(**exact.__dict__)},
    )


# --- the hub ------------------------------------------------------------------------------


class PooledRate(Frozen):
    """The pooled overall rate as released: from every site's exact person-time and
    events; hidden cells stay hidden, and ``reason`` says why a rate is not shown."""

    persons: Count
    events: Count
    person_years: float | None
    rate: float | None
    lower: float | None
    upper: float | None
    reason: str | None = None


class Combined(Frozen):
    """What the hub shows of a cohort across the network: every count pooled from the
    sites' exact contributions, then suppressed as one table of sites and strata."""

    definition_id: int
    sites: list[str]
    threshold: int
    persons: Count
    persons_by_site: dict[str, Count]
    by_sex: dict[str, Count]
    by_age: dict[str, Count]
    pooled_rate: PooledRate | None  # None: no outcome asked for
    life_table: LifeTableModel | None  # rounded, stopped below the threshold at risk
    survival: list[float]
    attrition: list[tuple[str, Count, Count]] = []  # step, persons, events
    not_pooled: str | None = None  # why nothing could be pooled

    @property
    def persons_suppressed_at(self) -> list[str]:
        return [s for s, c in self.persons_by_site.items() if c.hidden]


def _check(aggregates: list[SiteAggregate]) -> None:
    if not aggregates:
        raise AggregateError("no site aggregates to combine")
    for field in ("definition_id", "fingerprint", "threshold"):
        values = {getattr(a, field) for a in aggregates}
        if len(values) != 1:
            raise AggregateError(f"site aggregates differ in {field}: {sorted(map(str, values))}")
    names = [a.site for a in aggregates]
    if len(set(names)) != len(names):
        raise AggregateError(f"a site reported twice: {names}")


def _missing(aggregates: list[SiteAggregate], contributions: list[Contribution]) -> list[str]:
    have = {c.site for c in contributions}
    return [a.site for a in aggregates if a.site not in have]


def _by_site(
    contributions: list[Contribution], threshold: int
) -> tuple[Count, dict[str, Count], dict[str, Count], dict[str, Count]]:
    """Persons by site and, pooled, by sex and age band: one table of sites by strata
    whose inner cells (a site's persons of one sex) are never shown."""
    values: dict[tuple[str, str, str], int] = {("all", "", ""): 0}
    lines: list[Line[tuple[str, str, str]]] = []
    never: list[tuple[str, str, str]] = []
    for kind in ("sex", "age"):
        keys = sorted({k for c in contributions for k in getattr(c, f"by_{kind}")})
        for key in keys:
            values[("all", kind, key)] = sum(
                getattr(c, f"by_{kind}").get(key, 0) for c in contributions
            )
            inner = tuple(("site", c.site, f"{kind}:{key}") for c in contributions)
            for c, cell in zip(contributions, inner, strict=True):
                values[cell] = getattr(c, f"by_{kind}").get(key, 0)
            never += inner
            lines.append(Line(("all", kind, key), inner))
        lines.append(Line(("all", "", ""), tuple(("all", kind, k) for k in keys)))
        for c in contributions:
            lines.append(
                Line(("site", c.site, ""), tuple(("site", c.site, f"{kind}:{k}") for k in keys))
            )
    for c in contributions:
        values[("site", c.site, "")] = c.persons
    values[("all", "", "")] = sum(c.persons for c in contributions)
    lines.append(Line(("all", "", ""), tuple(("site", c.site, "") for c in contributions)))
    cells = protect(values, lines, threshold, unreleased=never).cells

    def strata(kind: str) -> dict[str, Count]:
        return {
            k[2]: v
            for k, v in cells.items()
            if k[0] == "all" and k[1] == kind and not (k[2] == "unknown" and v.value == 0)
        }

    return (
        cells[("all", "", "")],
        {c.site: cells[("site", c.site, "")] for c in contributions},
        strata("sex"),
        strata("age"),
    )


def _pooled_rate(contributions: list[Contribution], threshold: int) -> PooledRate:
    overall = [r for c in contributions for r in c.strata if r[0] == "overall"]
    if len(overall) != len(contributions):
        lacking = [c.site for c in contributions if not any(r[0] == "overall" for r in c.strata)]
        return PooledRate(
            persons=hidden(Why.COMPLEMENT),
            events=hidden(Why.COMPLEMENT),
            person_years=None,
            rate=None,
            lower=None,
            upper=None,
            reason=f"not computable: the outcome was not generated at {', '.join(lacking)}",
        )
    persons = sum(r[2] for r in overall)
    events = sum(r[3] for r in overall)
    person_years = sum(r[4] for r in overall)
    rate = inc.rate_of(
        "overall",
        "pooled",
        primary(persons, threshold),
        primary(events, threshold),
        person_years if persons >= threshold else None,
    )
    reason = rate.reason
    if rate.events.hidden:
        reason = f"not computable: fewer than {threshold} events across the sites"
    return PooledRate(
        persons=rate.persons,
        events=rate.events,
        person_years=rate.person_years,
        rate=rate.rate,
        lower=rate.lower,
        upper=rate.upper,
        reason=reason,
    )


def _pooled_life_table(
    contributions: list[Contribution], threshold: int
) -> survival.LifeTable | None:
    tables = [c.life_table for c in contributions if c.life_table is not None]
    if not tables or len(tables) != len(contributions):
        return None
    if len({t.interval_days for t in tables}) != 1:
        raise AggregateError("life tables of different intervals cannot be pooled")
    length = max(len(t.at_risk) for t in tables)

    def total(name: str, i: int) -> int:
        return sum(getattr(t, name)[i] for t in tables if len(t.at_risk) > i)

    exact = survival.LifeTable(
        tables[0].interval_days,
        [total("at_risk", i) for i in range(length)],
        [total("events", i) for i in range(length)],
        [total("censored", i) for i in range(length)],
    )
    return survival.released_life_table(exact, threshold)


def _attrition(contributions: list[Contribution], threshold: int) -> list[tuple[str, Count, Count]]:
    steps = contributions[0].attrition
    pooled = [
        (
            name,
            sum(c.attrition[k][1] for c in contributions),
            sum(c.attrition[k][2] for c in contributions),
            0,
        )
        for k, (name, _, _) in enumerate(steps)
    ]
    return [(name, p, e) for name, p, e, _ in attrition_released(pooled, threshold)]


def combine(
    aggregates: list[SiteAggregate], contributions: list[Contribution] | None = None
) -> Combined:
    """Counts, pooled incidence and pooled survival of the sites: from their exact
    contributions, released after suppression; without every site's contribution nothing
    is pooled and ``not_pooled`` says which site is missing."""
    _check(aggregates)
    threshold = aggregates[0].threshold
    names = [a.site for a in aggregates]
    missing = _missing(aggregates, contributions or [])
    if missing:
        return Combined(
            definition_id=aggregates[0].definition_id,
            sites=names,
            threshold=threshold,
            persons=hidden(Why.COMPLEMENT),
            persons_by_site={a.site: _released(a.persons) for a in aggregates},
            by_sex={},
            by_age={},
            pooled_rate=None,
            life_table=None,
            survival=[],
            not_pooled=f"not computable: no exact contribution from {', '.join(missing)}",
        )
    for c in contributions or []:
        for kind in ("sex", "age"):
            if sum(getattr(c, f"by_{kind}").values()) != c.persons:
                raise AggregateError(
                    f"site {c.site!r}'s contribution does not add up: its persons by {kind} "
                    f"are not its {c.persons} persons",
                    hint="The site runs another pmhub version, or its aggregate was altered; "
                    "rerun it there.",
                )
    order = {name: i for i, name in enumerate(names)}
    parts = sorted((c for c in contributions or [] if c.site in order), key=lambda c: order[c.site])
    persons, by_site, by_sex, by_age = _by_site(parts, threshold)
    has_outcome = any(a.outcome_id is not None for a in aggregates)
    table = _pooled_life_table(parts, threshold) if has_outcome else None
    return Combined(
        definition_id=aggregates[0].definition_id,
        sites=names,
        threshold=threshold,
        persons=persons,
        persons_by_site=by_site,
        by_sex=by_sex,
        by_age=by_age,
        pooled_rate=_pooled_rate(parts, threshold) if has_outcome else None,
        life_table=LifeTableModel(**table.__dict__) if table else None,
        survival=table.survival() if table else [],
        attrition=_attrition(parts, threshold) if parts[0].attrition else [],
    )


def _released(value: int | None) -> Count:
    return hidden(Why.SMALL) if value is None else shown(value)
