"""Incidence, survival, life tables and Table 1: numbers checked by hand."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from pmhub.cdm import schema
from pmhub.cdm.backends import Backend
from pmhub.cdm.backends.duckdb import DuckDBBackend
from pmhub.cohorts import characterize, incidence, report, service, survival
from pmhub.cohorts.definition import parse
from pmhub.cohorts.errors import AggregateError, CohortNotGeneratedError
from pmhub.disclosure import MARK, Why, hidden, shown
from tests.backends import harness


def frame(*rows: tuple[str, str, int, float, int]) -> pd.DataFrame:
    """Time-at-risk rows: start, end, event, age, female."""
    data = pd.DataFrame(rows, columns=["start", "end", "event", "age", "female"])
    data["start"], data["end"] = pd.to_datetime(data["start"]), pd.to_datetime(data["end"])
    data["days"] = (data["end"] - data["start"]).dt.days + 1
    return data


def test_garwood_exact_intervals() -> None:
    low, high = incidence.garwood(0, 1000.0)
    assert low == 0.0
    assert high == pytest.approx(3.6889, abs=1e-3)  # -ln(0.025)
    low, high = incidence.garwood(10, 1000.0)
    assert low == pytest.approx(4.7954, abs=1e-3)
    assert high == pytest.approx(18.3904, abs=1e-3)


def test_incidence_splits_person_time_across_calendar_years() -> None:
    data = frame(
        ("2019-07-02", "2020-06-30", 1, 45.0, 1),  # 183 days in 2019, 182 in 2020
        ("2020-01-01", "2020-12-31", 0, 71.0, 0),  # 366 days (leap year)
    )
    rates = {(r.stratum, r.level): r for r in incidence.incidence(data, threshold=1)}
    overall = rates["overall", "all"]
    assert overall.events.value == 1
    assert overall.person_years == pytest.approx((365 + 366) / 365.25)
    assert overall.rate == pytest.approx(1000 / ((365 + 366) / 365.25))
    assert rates["year", "2019"].person_years == pytest.approx(183 / 365.25)
    assert rates["year", "2019"].events.value == 0
    assert rates["year", "2020"].person_years == pytest.approx((182 + 366) / 365.25)
    assert rates["year", "2020"].events.value == 1
    assert rates["sex", "female"].events.value == 1
    assert rates["sex", "male"].events.value == 0
    assert rates["age", "40-49"].persons.value == 1
    assert rates["age", "70-79"].persons.value == 1


def test_incidence_suppresses_small_counts_but_not_zero() -> None:
    data = frame(*[("2020-01-01", "2020-12-31", int(i < 3), 50.0, i % 2) for i in range(12)])
    rates = {(r.stratum, r.level): r for r in incidence.incidence(data, threshold=10)}
    overall = rates["overall", "all"]
    assert overall.events.hidden  # 3 events: below 10
    assert overall.rate is None
    assert overall.reason == "events suppressed"
    assert overall.persons.value == 12  # the row stays: only its events are small
    assert overall.person_years == pytest.approx(12 * 366 / 365.25)
    assert rates["sex", "male"].persons.hidden  # 6 persons
    assert rates["sex", "male"].person_years is None  # few persons' follow-up
    none = frame(*[("2020-01-01", "2020-12-31", 0, 50.0, 1)] * 12)
    assert incidence.incidence(none, threshold=10)[0].events.value == 0


def test_kaplan_meier_of_a_hand_example() -> None:
    data = frame(
        ("2020-01-01", "2020-01-02", 1, 50.0, 1),
        ("2020-01-01", "2020-01-03", 0, 50.0, 1),
        ("2020-01-01", "2020-01-04", 1, 50.0, 1),
    )
    curve = survival.kaplan_meier(data, "test")
    steps = dict(zip(curve.times, curve.survival, strict=True))
    assert steps[1.0] == pytest.approx(2 / 3)
    assert steps[3.0] == pytest.approx(0.0)  # 2/3 x (1 - 1/1)
    assert curve.cumulative_incidence()[-1] == pytest.approx(1.0)
    assert (curve.subjects, curve.events) == (3, 2)


def test_cumulative_incidence_with_death_competing_by_hand() -> None:
    data = frame(
        ("2020-01-01", "2020-01-02", 1, 50.0, 1),  # outcome on day 1
        ("2020-01-01", "2020-01-03", 0, 50.0, 1),  # died on day 2
        ("2020-01-01", "2020-01-04", 0, 50.0, 1),  # censored on day 3
        ("2020-01-01", "2020-01-05", 1, 50.0, 1),  # outcome on day 4
    )
    data["competing"] = [0, 1, 0, 0]
    aj = survival.competing_cumulative_incidence(data, "t")
    cif = dict(zip(aj.times, aj.cumulative_incidence(), strict=True))
    assert cif[1.0] == pytest.approx(0.25)
    assert cif[2.0] == pytest.approx(0.25)
    assert cif[4.0] == pytest.approx(0.25 + 0.5 * 1 / 1)  # S(4−) = 3/4 x 2/3
    km = survival.kaplan_meier(data, "t")
    assert km.cumulative_incidence()[-1] == pytest.approx(1.0)  # 1 − KM overstates it


@pytest.mark.parametrize(("fmt", "magic"), [("svg", b"<svg"), ("png", b"\x89PNG")])
def test_plots_are_files_of_their_format(fmt: str, magic: bytes) -> None:
    data = frame(*[("2020-01-01", f"2020-0{m}-01", m % 2, 50.0, 1) for m in range(2, 9)])
    data["competing"] = 0
    curve, competing = survival.safe_curves(data, "test", threshold=2)
    for kind in ("survival", "incidence"):
        image = survival.plot([curve, competing], kind, fmt, title="T", outcome="stroke")
        assert magic in image[:400]
    assert survival.plot([curve], "survival", "svg") == survival.plot([curve], "survival", "svg")
    with pytest.raises(ValueError, match="svg or png"):
        survival.plot([curve], "survival", "pdf")


def test_life_tables_carry_small_counts_and_stop_when_few_remain() -> None:
    assert survival._carry([3, 4, 5, 0, 12, 1], 10) == [0, 0, 12, 0, 12, 0]
    days = [5] * 3 + [15] * 4 + [25] * 5 + [35] * 20
    data = pd.DataFrame(
        {
            "start": pd.to_datetime(["2020-01-01"] * len(days)),
            "end": pd.to_datetime("2020-01-01") + pd.to_timedelta(days, unit="D"),
            "event": [1] * 12 + [0] * 20,
        }
    )
    table = survival.life_table(data, interval_days=10, horizon_days=50, threshold=10)
    assert table.events[:3] == [0, 0, 12]  # 3 + 4 + 5 reported together, never early
    assert table.at_risk == [32, 32, 32, 20]  # the interval after 20 leave has fewer than 10
    assert table.censored == [0, 0, 0, 20]
    assert table.survival()[2] == pytest.approx(1 - 12 / 32)


def test_pooled_life_tables_censor_a_site_where_its_table_stops() -> None:
    a = survival.LifeTable(30, [100, 80, 60], [10, 10, 0], [10, 10, 10])
    b = survival.LifeTable(30, [50, 30], [10, 0], [10, 0])
    pooled = survival.pool([a, b])
    assert pooled.at_risk == [150, 110, 60]
    assert pooled.events == [20, 10, 0]
    with pytest.raises(AggregateError, match="different intervals"):
        survival.pool([a, survival.LifeTable(90, [10], [0], [0])])
    with pytest.raises(AggregateError):
        survival.pool([])


def test_standardized_mean_differences() -> None:
    first, other = characterize.Cell(shown(50), 0.5), characterize.Cell(shown(30), 0.3)
    assert characterize.smd(first, other, "binary") == pytest.approx(
        (0.3 - 0.5) / math.sqrt((0.25 + 0.21) / 2)
    )
    mean_a = characterize.Cell(shown(10), 60.0, 10.0)
    mean_b = characterize.Cell(shown(10), 65.0, 14.0)
    assert characterize.smd(mean_a, mean_b, "continuous") == pytest.approx(5 / math.sqrt(148))
    assert characterize.smd(first, characterize.Cell(hidden(Why.SMALL), None), "binary") is None


TABLE1_DATA = """
person
  person_id | year_of_birth | gender_concept_id
  1         | 1940          | 8532
  2         | 1950          | 8507
  3         | 1980          | 8532

observation_period
  person_id | observation_period_start_date | observation_period_end_date
  1         | 2010-01-01                    | 2020-12-31
  2         | 2010-01-01                    | 2020-12-31
  3         | 2010-01-01                    | 2020-12-31

condition_occurrence
  person_id | condition_concept_id | condition_start_date
  1         | 313217               | 2018-01-01
  1         | 320128               | 2017-06-01
  1         | 201826               | 2017-07-01
  1         | 443454               | 2016-01-01
  1         | 316139               | 2017-09-01
  2         | 313217               | 2018-01-01
  2         | 312327               | 2017-12-01
  2         | 443597               | 2017-12-01
  3         | 313217               | 2018-01-01

drug_exposure
  person_id | drug_concept_id | drug_exposure_start_date | drug_exposure_end_date
  1         | 1310149         | 2017-12-15               | 2018-01-14

measurement
  person_id | measurement_concept_id | measurement_date | value_as_number
  1         | 3004410                | 2017-08-01       | 7.0
  1         | 3004410                | 2017-11-01       | 8.0
  2         | 3004410                | 2015-01-01       | 9.0
"""


@pytest.fixture
def cdw(tmp_path: Path) -> Iterator[Backend]:
    backend = DuckDBBackend(tmp_path / "cdw.duckdb")
    schema.init_cdm(backend, source_name="t", abbreviation="t", holder="t")
    for name, rows in harness.parse(TABLE1_DATA).items():
        data = harness.arrow(name, rows)
        backend.insert_batches(name, data.schema, data.to_batches())
    yield backend
    backend.close()


AF = parse(
    {
        "format_version": 1,
        "id": 31,
        "name": "AF",
        "concept_sets": [{"id": "af", "items": [{"concept_id": 313217}]}],
        "entry": {"criteria": [{"domain": "condition", "concept_set": "af"}]},
    }
)


def test_table1_features_by_hand(cdw: Backend) -> None:
    table = service.characterize_at(cdw, [AF], threshold=1)
    rows = {r.label: r.cells[0] for r in table.rows}
    assert table.cohorts == [(31, "AF", shown(3))]
    assert rows["Female"] == characterize.Cell(shown(2), 2 / 3)
    assert rows["Age (years)"].value == pytest.approx((78 + 68 + 38) / 3)
    assert rows["Hypertension"].n.value == 1
    assert rows["Stroke"].n.value == 0  # 2016: more than a year before the index
    assert rows["Anticoagulant (warfarin or a DOAC)"].n.value == 1
    assert rows["HbA1c (%)"] == characterize.Cell(shown(1), 7.5, 0.0)  # person 2's is too old
    # person 1: CHF, diabetes (Charlson 2); CHA2DS2-VASc: CHF 1, HT 1, age≥75 2, DM 1, F 1 = 6
    # person 2: MI, CKD 3 (Charlson 1 + 2 = 3); CHA2DS2-VASc: age 65-74 1, MI 1 = 2
    # person 3: nothing; CHA2DS2-VASc: female 1
    assert rows["Charlson comorbidity index"].value == pytest.approx(5 / 3)
    assert rows["CHA2DS2-VASc"].value == pytest.approx(3.0)
    assert rows["CHA2DS2-VASc ≥ 2"].n.value == 2


def test_table1_of_two_cohorts_has_smds_and_suppresses_small_cells(cdw: Backend) -> None:
    women = AF.model_copy(
        update={"id": 32, "name": "AF women", "inclusion_rules": []},
    )
    table = service.characterize_at(cdw, [AF, women], threshold=1)
    assert len(table.rows[0].smd) == 1
    suppressed = service.characterize_at(cdw, [AF], threshold=10)
    assert suppressed.cohorts == [(31, "AF", hidden(Why.SMALL))]
    assert all(c.value is None for r in suppressed.rows for c in r.cells)
    assert all(c.n.hidden or c.n.value == 0 for r in suppressed.rows for c in r.cells)
    html = report.render(title="<b>AF</b>", site="s", threshold=10, table1=suppressed)
    assert "&lt;b&gt;AF&lt;/b&gt;" in html  # escaped: a definition name cannot inject HTML
    assert MARK in html
    assert "fewer than 10" in html


def test_characterizing_a_cohort_without_rows(cdw: Backend) -> None:
    empty = AF.model_copy(
        update={"id": 33, "entry": AF.entry.model_copy(update={"limit": "first"})}
    )
    cdw.execute("DELETE FROM condition_occurrence")
    with pytest.raises(CohortNotGeneratedError):
        service.characterize_at(cdw, [empty], threshold=1)


def test_outcome_analysis_at_a_site(cdw: Backend) -> None:
    stroke = parse(
        {
            "format_version": 1,
            "id": 34,
            "name": "Stroke",
            "concept_sets": [{"id": "s", "items": [{"concept_id": 443454}]}],
            "entry": {"criteria": [{"domain": "condition", "concept_set": "s"}]},
        }
    )
    cdw.execute(
        "INSERT INTO condition_occurrence (condition_occurrence_id, person_id, "
        "condition_concept_id, condition_start_date, condition_type_concept_id) "
        "VALUES (100, 2, 443454, DATE '2019-01-01', 32817)"
    )
    analysis = service.outcome_at(cdw, AF, stroke, threshold=1)
    # person 1 had a stroke before AF: not at risk; person 2's comes 365 days after
    overall = analysis.rates[0]
    assert (overall.persons.value, overall.events.value) == (2, 1)
    assert overall.person_years == pytest.approx(
        (366 + (dt.date(2020, 12, 31) - dt.date(2018, 1, 1)).days + 1) / 365.25
    )
    assert analysis.curve is not None
    assert analysis.events.value == 1
    assert analysis.competing is not None


def test_attrition_rows_suppress_small_counts_and_the_shares_they_give() -> None:
    from pmhub.cohorts.released import attrition_rows

    steps = [
        ("entry events", 200, 250, 200),
        ("adults", 150, 180, 150),
        ("rare", 4, 4, 9),
        ("none", 0, 0, 120),
    ]
    assert attrition_rows(steps, 10) == [
        ("entry events", "200", "250", "—", "—"),
        ("adults", "150", "180", "75.0 %", "150"),
        ("rare", MARK, MARK, "—", MARK),
        ("none", "0", "0", "—", "120"),
    ]
    # 150 then 145 would tell that the rule removed 5: one of the two is hidden
    nested = attrition_rows([("entry", 150, 150, 150), ("rule", 145, 145, 145)], 10)
    assert MARK in (nested[0][1], nested[1][1])


def test_table1_lists_each_charlson_condition() -> None:
    from pmhub.cohorts import covariates

    frame = pd.DataFrame(
        {
            "person_id": [1, 2],
            "age": [70.0, 50.0],
            "female": [1, 0],
            "charlson": [3, 0],
            "chads_vasc": [3, 0],
            **{c.key: [0, 0] for c in covariates.CONDITIONS + covariates.DRUGS},
            **{c.key: [float("nan")] * 2 for c in covariates.MEASUREMENTS},
            **{c.key: [0, 0] for c in covariates.CHARLSON_CONDITIONS},
        }
    )
    frame["cci_renal"] = [1, None]  # a flag the site's query did not give is absent
    table = characterize.table1([(1, "c", frame)], threshold=1)
    rows = {r.label: r for r in table.rows if r.section == "Charlson conditions (prior year)"}
    assert len(rows) == 17
    assert rows["CCI: Renal disease"].cells[0] == characterize.Cell(shown(1), 0.5)
    assert rows["CCI: HIV/AIDS"].cells[0] == characterize.Cell(shown(0), 0.0)
