"""Everything a site's prediction work lets out goes through here, and through
:mod:`pmhub.disclosure` (one place to audit): feature counts, attrition, metrics.

Counts from 1 to ``threshold - 1`` are hidden; a value feature's sums are released only
with a shown count; metrics of a group with fewer than ``threshold`` outcomes or
non-outcomes are withheld (a rank statistic of three cases says much about each).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pmhub.disclosure import Count, primary
from pmhub.predict.covariates import RawCovariates
from pmhub.predict.evaluate import Metrics
from pmhub.predict.population import Population


def count(value: int, threshold: int) -> Count:
    """The one function every released count of this layer passes through."""
    return primary(int(value), threshold)


@dataclass(frozen=True)
class FeatureCount:
    persons: Count
    total: float | None  # sum of the values (value features), with a shown count only
    squares: float | None


def feature_counts(raw: RawCovariates, threshold: int) -> dict[str, FeatureCount]:
    out = {}
    for key, row in raw.counts().iterrows():
        persons = count(int(row["persons"]), threshold)
        shown = not persons.hidden
        out[str(key)] = FeatureCount(
            persons,
            float(row["total"]) if shown else None,
            float(row["squares"]) if shown else None,
        )
    return out


def attrition(population: Population, threshold: int) -> list[dict[str, Any]]:
    return [
        {
            "step": s.step,
            "persons": count(s.persons, threshold).text(),
            "outcomes": "" if s.outcomes is None else count(s.outcomes, threshold).text(),
        }
        for s in population.attrition
    ]


def metrics(m: Metrics, threshold: int) -> dict[str, Any]:
    """A site's or a group's metrics as they may be shown or sent."""
    persons = count(m.persons, threshold)
    outcomes = count(m.outcomes, threshold)
    out: dict[str, Any] = {"persons": persons.text(), "outcomes": outcomes.text()}
    if min(m.outcomes, m.persons - m.outcomes) < threshold:
        out["withheld"] = f"fewer than {threshold} outcomes or non-outcomes"
        return out
    data = m.to_json()
    data["persons"], data["outcomes"] = m.persons, m.outcomes
    data["calibration"] = [
        {
            "persons": count(b.persons, threshold).text(),
            "observed": count(b.observed, threshold).text(),
            "mean_predicted": b.mean_predicted,
        }
        for b in m.calibration
    ]
    return data
