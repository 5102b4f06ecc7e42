"""Federated cohorts: the same definition runs at every site; each site returns only
aggregates with small-cell suppression, and the hub combines them.

What crosses the site boundary is a :class:`SiteAggregate` (plain JSON): counts by sex
and age band, incidence rates and a life table, every count below the threshold
suppressed at the site. The hub never sees a row.
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


def fingerprint(definition: Definition) -> str:
    text = json.dumps(definition.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def suppress(count: int, threshold: int) -> int | None:
    return None if 0 < count < threshold else count


def _entries(definition_id: int) -> q.Relation:
    rows = q.Where(COHORT, q.eq(q.col("cohort_definition_id"), q.lit_int(definition_id)))
    return q.Aggregate(rows, (), (("entries", q.Agg("count", q.col("subject_id"))),))


def _counts(engine: Engine, definition_id: int, threshold: int) -> dict[str, object]:
    entries = engine.rows(_entries(definition_id))[0]["entries"]
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
    return {
        "persons": suppress(len(people), threshold),
        "entries": suppress(int(entries), threshold),
        "by_sex": {k: suppress(v, threshold) for k, v in sexes.items()},
        "by_age": {k: suppress(v, threshold) for k, v in ages.items()},
    }


def site_aggregate(
    site: str,
    place: service.Place,
    definition: Definition,
    threshold: int,
    outcome: Definition | None = None,
    interval_days: int = 90,
    horizon_days: int = 3650,
) -> SiteAggregate:
    """Run at one site: generate the cohort (and outcome), return only aggregates."""
    engine = service.as_engine(place)
    service.generate(definition, engine)
    fields: dict[str, object] = _counts(engine, definition.id, threshold)
    fields["attrition"] = [
        AttritionModel(
            step=s.step,
            persons=suppress(s.persons, threshold),
            events=suppress(s.events, threshold),
            persons_alone=suppress(s.persons_alone, threshold),
        )
        for s in service.attrition(definition, engine)
    ]
    if outcome is not None:
        service.generate(outcome, engine)
        fields.update(
            _outcome_aggregates(engine, definition, outcome, threshold, interval_days, horizon_days)
        )
    return SiteAggregate(
        site=site,
        definition_id=definition.id,
        fingerprint=fingerprint(definition) + (f"+{fingerprint(outcome)}" if outcome else ""),
        threshold=threshold,
        **fields,  # type: ignore[arg-type]
    )


def _outcome_aggregates(
    engine: Engine,
    definition: Definition,
    outcome: Definition,
    threshold: int,
    interval_days: int,
    horizon_days: int,
) -> dict[str, object]:
    try:
        frame = time_at_risk(engine, definition.id, outcome.id)
    except CohortNotGeneratedError:
        return {"outcome_id": outcome.id}
    rates = [RateModel(**r.__dict__) for r in inc.incidence(frame, threshold)]
    table = survival.life_table(frame, interval_days, horizon_days, threshold)
    return {
        "outcome_id": outcome.id,
        "rates": rates,
        "life_table": LifeTableModel(**table.__dict__),
    }


# --- the hub ------------------------------------------------------------------------------


class Combined(Frozen):
    definition_id: int
    sites: list[str]
    persons: int  # sum of the sites that reported a count
    persons_suppressed_at: list[str]  # sites whose count was below the threshold
    by_sex: dict[str, int]
    by_age: dict[str, int]
    pooled_rate: RateModel | None
    life_table: LifeTableModel | None
    survival: list[float]
    # each step: the sums of the sites' reported counts (suppressed cells count 0)
    attrition: list[AttritionModel] = []


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


def _sum(dicts: list[dict[str, int | None]]) -> dict[str, int]:
    keys = sorted({k for d in dicts for k in d})
    return {k: sum(d.get(k) or 0 for d in dicts) for k in keys}


def _pooled_rate(aggregates: list[SiteAggregate], threshold: int) -> RateModel | None:
    overall = [r for a in aggregates for r in a.rates if r.stratum == "overall"]
    usable = [r for r in overall if r.events is not None and r.person_years]
    if not usable:
        return None
    events = sum(r.events or 0 for r in usable)
    person_years = sum(r.person_years or 0.0 for r in usable)
    persons = sum(r.persons or 0 for r in usable)
    rate = inc.make_rate("overall", "pooled", persons, events, person_years, threshold)
    return RateModel(**rate.__dict__)


def combine(aggregates: list[SiteAggregate]) -> Combined:
    """Counts, pooled incidence and pooled survival of the sites' aggregates."""
    _check(aggregates)
    threshold = aggregates[0].threshold
    tables = [survival.LifeTable(**a.life_table.model_dump()) for a in aggregates if a.life_table]
    pooled = survival.pool(tables) if tables else None
    return Combined(
        definition_id=aggregates[0].definition_id,
        sites=[a.site for a in aggregates],
        persons=sum(a.persons or 0 for a in aggregates),
        persons_suppressed_at=[a.site for a in aggregates if a.persons is None],
        by_sex=_sum([a.by_sex for a in aggregates]),
        by_age=_sum([a.by_age for a in aggregates]),
        pooled_rate=_pooled_rate(aggregates, threshold),
        life_table=LifeTableModel(**pooled.__dict__) if pooled else None,
        survival=pooled.survival() if pooled else [],
        attrition=_attrition(aggregates),
    )


def _attrition(aggregates: list[SiteAggregate]) -> list[AttritionModel]:
    steps = aggregates[0].attrition  # the same definition everywhere: the same steps
    return [
        AttritionModel(
            step=step.step,
            persons=sum(a.attrition[k].persons or 0 for a in aggregates if a.attrition),
            events=sum(a.attrition[k].events or 0 for a in aggregates if a.attrition),
            persons_alone=sum(a.attrition[k].persons_alone or 0 for a in aggregates if a.attrition),
        )
        for k, step in enumerate(steps)
    ]
