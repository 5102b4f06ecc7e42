"""Hostile disclosure cases: what an attacker would try on the released figures.

Each case is an attack named in issue 24 (a hidden cell recovered by subtraction, tiny
strata, a Kaplan-Meier curve that tells one event, a hub that sums hidden cells as 0)
and asserts that the released figures do not give the small count back.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

from pmhub.cohorts import characterize, covariates, incidence, released, survival
from pmhub.cohorts.federated import Contribution, SiteAggregate, combine
from pmhub.disclosure import MARK, km
from pmhub.quality.suppress import shareable

THRESHOLD = 10


def people(ages: list[float], female: list[int] | None = None) -> pd.DataFrame:
    """Person features as Table 1 reads them, with no condition, drug or measurement."""
    n = len(ages)
    return pd.DataFrame(
        {
            "person_id": range(n),
            "age": ages,
            "female": female if female is not None else [0] * n,
            "charlson": [0] * n,
            "chads_vasc": [0] * n,
            **{c.key: [0] * n for c in covariates.CONDITIONS + covariates.DRUGS},
            **{c.key: [float("nan")] * n for c in covariates.MEASUREMENTS},
            **{c.key: [0] * n for c in covariates.CHARLSON_CONDITIONS},
        }
    )


def test_table1_total_less_the_shown_age_groups_is_not_the_hidden_group() -> None:
    # n = 38 with 12 + 22 shown gave the hidden 4 back
    frame = people([30.0] * 4 + [50.0] * 12 + [70.0] * 22)
    table = characterize.table1([(1, "cohort", frame)], THRESHOLD)
    assert table.cohorts[0][2].value == 38
    groups = {r.label: r.cells[0].n for r in table.rows if r.section == "Age group"}
    assert groups["18-39"].hidden
    hidden = [label for label, n in groups.items() if n.hidden]
    assert len(hidden) >= 2  # a partner is hidden with it
    shown = sum(n.value or 0 for n in groups.values())
    assert 38 - shown != 4
    text = "\n".join(released.table1_cell("binary", r.cells[0]) for r in table.rows)
    assert not re.search(r"(?<![\d.])4 \(", text)


def test_table1_a_share_whose_complement_is_small_is_hidden() -> None:
    # "35 women of 38" says "3 who are not"
    frame = people([50.0] * 38, female=[1] * 35 + [0] * 3)
    rows = {r.label: r for r in characterize.table1([(1, "c", frame)], THRESHOLD).rows}
    assert rows["Female"].cells[0].n.hidden
    assert rows["Female"].cells[0].value is None


def _tar(rows: list[tuple[int, int, float, int]]) -> pd.DataFrame:
    """Time at risk: days, event, age, female (all from 2020-01-01)."""
    data = pd.DataFrame(rows, columns=["days", "event", "age", "female"])
    data["start"] = pd.Timestamp("2020-01-01")
    data["end"] = data["start"] + pd.to_timedelta(data["days"] - 1, unit="D")
    return data


def test_a_tiny_stratum_hides_its_person_time_and_a_partners() -> None:
    rows = [(300, 0, 50.0, 0)] * 20 + [(300, 0, 60.0, 1)] * 20 + [(300, 0, 25.0, 1)] * 3
    rates = {(r.stratum, r.level): r for r in incidence.incidence(_tar(rows), THRESHOLD)}
    tiny = rates["age", "20-29"]
    assert tiny.persons.hidden
    assert tiny.person_years is None
    ages = [r for r in rates.values() if r.stratum == "age"]
    overall = rates["overall", "all"]
    assert overall.person_years is not None
    hidden_time = [r for r in ages if r.person_years is None]
    assert len(hidden_time) >= 2  # overall less the shown bands is not the tiny one
    persons = [r for r in ages if r.persons.hidden]
    assert len(persons) >= 2


def test_a_stratum_with_few_events_keeps_its_row() -> None:
    rows = (
        [(365, 1, 50.0, 0)] * 3
        + [(365, 0, 50.0, 0)] * 27
        + [(365, 1, 70.0, 1)] * 15
        + [(365, 0, 70.0, 1)] * 15
    )
    rates = {(r.stratum, r.level): r for r in incidence.incidence(_tar(rows), THRESHOLD)}
    few = rates["age", "50-59"]
    assert few.persons.value == 30  # the row stays
    assert few.person_years == pytest.approx(30 * 365 / 365.25)
    assert few.events.hidden
    assert few.rate is None
    assert few.reason == "events suppressed"
    overall = rates["overall", "all"]
    assert overall.events.value == 18
    # 18 events in all, 15 shown at 70-79 would give 3: the 70-79 events go too
    assert rates["age", "70-79"].events.hidden
    assert rates["sex", "male"].events.hidden  # and the same by sex


def test_a_kaplan_meier_curve_with_one_event_never_tells_one() -> None:
    durations = [100.0] + [400.0] * 49
    events = [1] + [0] * 49
    curve = km.kaplan_meier("one event", durations, events, THRESHOLD, (0, 365))
    drop = 1 - curve.survival[1]
    # OpenSAFELY's midpoints: 1..10 events count as 5, 41..50 subjects as 45
    assert drop == pytest.approx(5 / 45)
    assert drop != pytest.approx(1 / 50)
    assert all(n % 5 == 0 and n >= THRESHOLD for _, n in curve.at_risk)
    many = km.kaplan_meier("nine", [100.0] * 9 + [400.0] * 41, [1] * 9 + [0] * 41, 10, (0,))
    assert many.survival == curve.survival  # nine events show as the same step


def test_a_curve_stops_where_fewer_than_the_threshold_remain() -> None:
    durations = [float(d) for d in range(10, 130, 10)] + [500.0] * 3
    curve = km.kaplan_meier("few", durations, [1] * 12 + [0] * 3, THRESHOLD, (0, 365))
    assert curve.truncated
    assert curve.end < 500
    assert curve.survival_at(365) is None
    assert [t for t, _ in curve.at_risk] == [0.0]
    lines = released.survival_lines(curve, (365,))
    assert lines == [f"survival at 365 days: — (fewer than {THRESHOLD} at risk)"]


def test_the_plot_shows_only_rounded_counts() -> None:
    data = _tar([(100, 1, 50.0, 0)] + [(400, 0, 50.0, 0)] * 49)
    data["competing"] = 0
    curve, competing = survival.safe_curves(data, "AF", THRESHOLD)
    svg = survival.plot([curve, competing], "survival", "svg", title="t", outcome="stroke")
    text = svg.decode()
    assert "n=50" not in text
    assert "Number at risk" in text


def _aggregate(site: str, persons: int | None, events: int | None) -> SiteAggregate:
    return SiteAggregate(
        site=site,
        definition_id=1,
        fingerprint="f",
        threshold=THRESHOLD,
        persons=persons,
        entries=persons,
        by_sex={},
        by_age={},
        outcome_id=2,
    )


def _contribution(site: str, persons: int, events: int) -> Contribution:
    return Contribution(
        site=site,
        persons=persons,
        by_sex={"female": persons},
        by_age={"40-64": persons},
        strata=[("overall", "all", persons, events, float(persons))],
    )


def test_the_hub_does_not_release_a_total_that_gives_a_small_site_back() -> None:
    sites = [("a", 300, 20), ("b", 150, 15), ("tiny", 5, 0)]
    combined = combine(
        [_aggregate(s, p if p >= THRESHOLD else None, None) for s, p, _ in sites],
        [_contribution(s, p, e) for s, p, e in sites],
    )
    by_site = combined.persons_by_site
    assert by_site["tiny"].hidden
    total = combined.persons.value
    shown = sum(c.value or 0 for c in by_site.values())
    assert total is None or total - shown != 5


def test_the_hub_pools_sites_whose_own_counts_are_hidden() -> None:
    # every site has 4 events: each is hidden, the pool of 12 is not, and none is 0
    sites = [("a", 100, 4), ("b", 100, 4), ("c", 100, 4)]
    combined = combine(
        [_aggregate(s, p, None) for s, p, _ in sites],
        [_contribution(s, p, e) for s, p, e in sites],
    )
    rate = combined.pooled_rate
    assert rate is not None
    assert rate.events.value == 12
    assert rate.rate == pytest.approx(1000 * 12 / 300)


def test_a_rate_that_cannot_be_pooled_says_why() -> None:
    missing = Contribution(site="b", persons=100, by_sex={"female": 100}, by_age={"40-64": 100})
    combined = combine(
        [_aggregate("a", 100, None), _aggregate("b", 100, None)],
        [_contribution("a", 100, 20), missing],
    )
    assert combined.pooled_rate is not None
    assert combined.pooled_rate.rate is None
    assert combined.pooled_rate.reason == "not computable: the outcome was not generated at b"


def test_quality_years_of_birth_do_not_give_a_small_year_back() -> None:
    doc = {
        "row_counts": {"person": 38},
        "checks": [],
        "profiles": {
            "persons": {"total": 38, "by_year_of_birth": [[1950, 4], [1960, 12], [1970, 22]]}
        },
    }
    out = shareable(doc, THRESHOLD)["profiles"]["persons"]
    years = [n for _, n in out["by_year_of_birth"]]
    assert years[0] is None
    assert out["total"] is None or out["total"] - sum(n or 0 for n in years) != 4


def test_attrition_drops_do_not_give_a_small_count_back() -> None:
    rows = released.attrition_rows([("entry", 150, 150, 150), ("rule", 145, 145, 145)], 10)
    assert MARK in (rows[0][1], rows[1][1])
    assert MARK in (rows[0][2], rows[1][2])


def test_a_contribution_that_does_not_add_up_is_refused() -> None:
    from pmhub.cohorts.errors import AggregateError

    odd = Contribution(site="b", persons=100, by_sex={"female": 90}, by_age={"40-64": 100})
    with pytest.raises(AggregateError, match="does not add up"):
        combine(
            [_aggregate("a", 100, None), _aggregate("b", 100, None)],
            [_contribution("a", 100, 20), odd],
        )


def test_a_pooled_life_table_is_released_rounded_and_stopped() -> None:
    exact = survival.LifeTable(90, [100, 97, 60, 12, 8], [3, 0, 1, 0, 0], [0, 37, 47, 4, 8])
    table = survival.released_life_table(exact, THRESHOLD)
    assert all(n >= THRESHOLD and n % 5 == 0 for n in table.at_risk)
    assert table.events[0] == 5  # 3 events show as a step of the midpoint, never 3
    assert len(table.at_risk) < len(exact.at_risk)  # stopped before 8 at risk
    curve = survival.pooled_curve(table, "all sites", THRESHOLD)
    assert curve.at_risk[0] == (0.0, table.at_risk[0])
    assert all(n >= THRESHOLD for _, n in curve.at_risk)


def test_a_median_is_never_taken_as_if_hidden_cells_were_zero() -> None:
    from pmhub.quality.compare import _median

    # 100 persons: 60 born in 1950 (shown) and 40 in hidden years either side
    assert _median([[1940, None], [1950, 60], [1960, None]], 100) == 1950
    # 30 shown at 1950 and 70 hidden: the median depends on where they are
    assert _median([[1940, None], [1950, 30], [1960, None]], 100) is None
    assert _median([[1940, None], [1950, 30]], None) is None
    assert _median([[1940, 20], [1950, 30]], 50) == 1950
