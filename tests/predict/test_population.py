"""The study population and its covariates on a little CDW, on DuckDB and PostgreSQL."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pmhub.cdm.backends import Backend
from pmhub.predict import covariates, population, task, vocabulary
from pmhub.predict import release as rel
from pmhub.predict.errors import PredictError
from tests.predict import cdw

AF_STROKE = """
format_version: 1
name: af_stroke
target: atrial_fibrillation
outcome: stroke
time_at_risk: {start: 1, end: 1825}
washout_days: 365
min_time_at_risk_days: 365
"""


def loaded(text: str = AF_STROKE, **changes: object) -> task.LoadedTask:
    parsed = task.loads(text)
    if changes:
        parsed = task.parse({**parsed.model_dump(mode="json"), **changes})
    return task.resolve(parsed)


@pytest.fixture
def site(cdm_backend: Backend) -> Backend:
    cdw.load(cdm_backend, cdw.NETWORK)
    return cdm_backend


def labels(pop: population.Population) -> dict[int, int]:
    return dict(zip(pop.frame["person_id"], pop.frame["outcome"], strict=True))


def test_population_follows_the_time_at_risk_rules(site: Backend) -> None:
    pop = population.build(site, loaded(), "s")
    assert labels(pop) == {1: 1, 2: 0, 4: 0, 6: 1}
    steps = {s.step: (s.persons, s.outcomes) for s in pop.attrition}
    assert steps["target cohort entries"] == (6, None)
    assert steps["no outcome before the time at risk"] == (5, 2)  # person 3 removed
    assert steps["at least 365 days at risk"] == (4, 2)  # person 5 removed
    row = pop.frame.set_index("person_id").loc[6]
    assert row["days_at_risk"] == 213  # 2020-06-02 .. 2020-12-31, cut at observation end
    assert row["age"] == 80
    assert row["female"] == 1


def test_prior_outcome_kept_when_not_removed_and_short_times_dropped_without_outcomes(
    site: Backend,
) -> None:
    pop = population.build(
        site, loaded(remove_prior_outcome=False, include_all_outcomes=False), "s"
    )
    # person 3's stroke on the index day is before the time at risk: no label; person 6's
    # outcome does not save a 213-day time at risk any more
    assert labels(pop) == {1: 1, 2: 0, 3: 0, 4: 0}


def test_a_fixed_index_date_indexes_everyone_in_the_cohort_on_that_day(site: Backend) -> None:
    pop = population.build(site, loaded(index_date="2016-01-01", min_time_at_risk_days=1), "s")
    # persons 1-4 entered on 2015-01-01 and stay to the end of observation; 3's stroke
    # is before 2016-01-02; 1's (2016-06-01) and 4's (2020-03-01) are inside 1825 days
    assert labels(pop) == {1: 1, 2: 0, 4: 1}
    assert {d.isoformat() for d in population.index_dates(pop)} == {"2016-01-01"}


def test_covariates_in_look_back_windows(site: Backend) -> None:
    pop = population.build(site, loaded(), "s")
    settings = task.Covariates.model_validate({"windows": [365, 30]})
    raw = covariates.extract(site, pop, settings)
    releases = [rel.feature_counts(raw, threshold=1)]
    dictionary = vocabulary.fix(releases, raw.info, min_persons=1)
    x = covariates.matrix(raw, dictionary).toarray()
    row = {pid: i for i, pid in enumerate(pop.frame["person_id"])}

    def value(person: int, key: str) -> float:
        return float(x[row[person], dictionary.position[key]])

    hypertension = f"condition:{cdw.HYPERTENSION}:365"
    assert value(1, hypertension) == 1  # 2014-12-01: inside 365 days
    assert f"condition:{cdw.HYPERTENSION}:30" not in dictionary.position  # 31 days before
    assert value(2, hypertension) == 0  # 2010: outside the window
    assert "hypertension" in dictionary.features[dictionary.position[hypertension]].name.lower()
    groups = [k for k in dictionary.position if k.startswith("condition_group:")]
    assert groups  # the ancestors of AF and hypertension in the shipped vocabulary
    assert all(dictionary.features[dictionary.position[k]].name.startswith("any ") for k in groups)
    assert value(1, f"visits:{cdw.OUTPATIENT}:30") == pytest.approx(math.log1p(1))
    assert value(1, f"visits:{cdw.OUTPATIENT}:365") == pytest.approx(math.log1p(2))
    sbp = dictionary.features[dictionary.position[f"measurement:{cdw.SBP}:365"]]
    # latest values 130 (person 1) and 120 (person 2), standardised by their mean and SD
    assert sbp.mean == pytest.approx(125.0)
    assert sbp.sd == pytest.approx(5.0)
    assert value(1, sbp.key) == pytest.approx(1.0)
    assert value(2, sbp.key) == pytest.approx(-1.0)
    assert value(4, sbp.key) == 0  # not measured: the mean
    assert value(1, f"measured:{cdw.SBP}:365") == 1
    assert value(4, f"measured:{cdw.SBP}:365") == 0
    trends = raw.long[raw.long["key"] == f"measurement_trend:{cdw.SBP}:365"]
    # per year, from the first value in the window; person 2 has one value: no trend
    assert trends["row_id"].tolist() == [row[1]]
    assert trends["value"].tolist() == [pytest.approx((130 - 150) / (202 / 365.25))]
    assert value(1, "female") == 0
    assert value(2, "female") == 1
    age = dictionary.features[dictionary.position["age"]]
    assert age.mean == pytest.approx(np.mean([65, 60, 55, 80]))


def test_rare_features_are_dropped_and_hidden_counts_add_nothing(site: Backend) -> None:
    pop = population.build(site, loaded(), "s")
    raw = covariates.extract(site, pop, task.Covariates.model_validate({"windows": [365]}))
    release = rel.feature_counts(raw, threshold=2)
    hypertension = release[f"condition:{cdw.HYPERTENSION}:365"]
    assert hypertension.persons.hidden
    assert hypertension.total is None
    assert release["female"].persons.value == 3  # persons 2, 4 and 6
    dictionary = vocabulary.fix([release, release], raw.info, min_persons=4)
    assert "female" in dictionary.position  # 3 + 3 shown
    assert f"condition:{cdw.HYPERTENSION}:365" not in dictionary.position  # hidden twice
    assert dictionary.dropped > 0


def test_an_empty_target_cohort_gives_an_empty_population_with_the_reason(
    cdm_backend: Backend,
) -> None:
    pop = population.build(cdm_backend, loaded(), "empty")
    assert pop.persons == 0
    assert "empty" in pop.reason
    with pytest.raises(PredictError, match="no one is at risk"):
        population.require_events(pop, 10)
