"""Output checking rules on small tables whose right answers are worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from pmhub.safezone.errors import SdcInputError
from pmhub.safezone.sdc import (
    ReleasedTable,
    RiskAppetite,
    TableSpec,
    check_file,
    check_table,
    evidence_from_contributions,
    read_output_table,
)
from pmhub.settings import load_settings

AGE_SEX = TableSpec(dimensions=("age", "sex"), counts=("n",))


def age_sex(counts: list[int | None]) -> pa.Table:
    return pa.table(
        {"age": ["40-49", "40-49", "50-59", "50-59"], "sex": ["F", "M", "F", "M"], "n": counts}
    )


def flagged(report: object, rule: str) -> list[tuple[int | None, str, dict[str, str | None]]]:
    return [(f.row, f.column, f.key) for f in report.flagged(rule)]  # type: ignore[attr-defined]


def test_a_table_of_large_counts_passes() -> None:
    report = check_table("t", age_sex([57, 43, 120, 98]), AGE_SEX)
    assert (report.verdict, report.flags, report.rows, report.cells) == ("pass", (), 4, 4)
    assert {r.rule: r.status for r in report.rules}["threshold"] == "pass"
    assert {r.rule: r.status for r in report.rules}["rounding"] == "not applied"


def test_counts_under_the_threshold_are_flagged_but_not_zeros_or_suppressed() -> None:
    report = check_table("t", age_sex([9, 10, None, 1]), AGE_SEX)
    assert flagged(report, "threshold") == [
        (0, "n", {"age": "40-49", "sex": "F"}),
        (3, "n", {"age": "50-59", "sex": "M"}),
    ]
    assert report.verdict == "review"
    assert report.flagged("threshold")[0].reason == "count 9 is under the minimum of 10"


def test_the_threshold_comes_from_the_settings() -> None:
    appetite = RiskAppetite.from_settings(load_settings(small_cell_threshold=5))
    report = check_table("t", age_sex([5, 6, 4, 50]), AGE_SEX, appetite=appetite)
    assert [f.value for f in report.flagged("threshold")] == [4]


def test_a_zero_in_a_populated_group_is_flagged_unless_zeros_are_not_disclosive() -> None:
    table = age_sex([57, 43, 120, 0])
    assert flagged(check_table("t", table, AGE_SEX), "zero") == [
        (3, "n", {"age": "50-59", "sex": "M"})
    ]
    relaxed = RiskAppetite(zeros_are_disclosive=False)
    assert check_table("t", table, AGE_SEX, appetite=relaxed).flagged("zero") == []


def test_a_group_whose_persons_share_one_category_is_flagged() -> None:
    # no men aged 50-59: every man is 40-49, and every person aged 50-59 is a woman
    report = check_table("t", age_sex([57, 43, 120, 0]), AGE_SEX)
    men, older = report.flagged("group-disclosure")
    assert (men.row, men.key, men.value) == (1, {"age": "40-49", "sex": "M"}, 43)
    assert men.reason == "all 43 with sex = M have age = 40-49: every other age is zero"
    assert (older.row, older.key, older.value) == (2, {"age": "50-59", "sex": "F"}, 120)
    assert older.reason == "all 120 with age = 50-59 have sex = F: every other sex is zero"


def test_an_absent_combination_counts_as_a_zero() -> None:
    table = pa.table(
        {"age": ["40-49", "40-49", "50-59"], "sex": ["F", "M", "F"], "n": [57, 43, 120]}
    )
    flags = check_table("t", table, AGE_SEX).flagged("group-disclosure")
    assert [f.key for f in flags] == [{"age": "40-49", "sex": "M"}, {"age": "50-59", "sex": "F"}]


def test_a_suppressed_cell_leaves_the_attribute_uncertain() -> None:
    report = check_table("t", age_sex([57, 43, 120, None]), AGE_SEX)
    assert report.flagged("group-disclosure") == []


def test_structural_zeros_disclose_nothing_but_must_be_zero() -> None:
    table = pa.table(
        {
            "sex": ["F", "F", "M", "M"],
            "pregnant": ["yes", "no", "yes", "no"],
            "n": [30, 70, 0, 95],
        }
    )
    spec = TableSpec(
        dimensions=("sex", "pregnant"),
        counts=("n",),
        structural_zeros=({"sex": "M", "pregnant": "yes"},),
    )
    report = check_table("t", table, spec)
    assert report.verdict == "pass"
    wrong = table.set_column(2, "n", pa.array([30, 70, 12, 95]))
    (flag,) = check_table("t", wrong, spec).flagged("structural-zero")
    assert (flag.row, flag.value) == (2, 12)


def test_a_wide_table_treats_its_count_columns_as_categories() -> None:
    table = pa.table({"age": ["40-49", "50-59"], "n_female": [57, 120], "n_male": [43, 0]})
    spec = TableSpec(
        dimensions=("age",), counts=("n_female", "n_male"), columns_are_categories=True
    )
    report = check_table("t", table, spec)
    assert flagged(report, "zero") == [(1, "n_male", {"age": "50-59"})]
    assert flagged(report, "group-disclosure") == [
        (0, "n_male", {"age": "40-49"}),  # every man is 40-49
        (1, "n_female", {"age": "50-59"}),  # everyone 50-59 is a woman
    ]


def test_unrounded_counts_are_flagged_when_a_base_is_required() -> None:
    report = check_table(
        "t", age_sex([55, 43, 120, 95]), AGE_SEX, appetite=RiskAppetite(rounding_base=5)
    )
    assert flagged(report, "rounding") == [(1, "n", {"age": "40-49", "sex": "M"})]


COST = TableSpec(dimensions=("ward",), counts=("n",), magnitudes=("cost",))


def cost_table(wards: dict[str, list[float]]) -> tuple[pa.Table, pa.Table]:
    table = pa.table(
        {
            "ward": list(wards),
            "n": [len(v) for v in wards.values()],
            "cost": [sum(v) for v in wards.values()],
        }
    )
    contributions = pa.table(
        {
            "ward": [w for w, vs in wards.items() for _ in vs],
            "column": ["cost" for vs in wards.values() for _ in vs],
            "unit": [f"{w}{i}" for w, vs in wards.items() for i, _ in enumerate(vs)],
            "value": [v for vs in wards.values() for v in vs],
        }
    )
    return table, evidence_from_contributions(contributions, COST)


def test_dominance_at_exactly_k_is_flagged_as_acro_does() -> None:
    table, evidence = cost_table({"a": [80.0, 10.0] + [1.0] * 10, "b": [50.0, 39.0] + [1.0] * 11})
    report = check_table("t", table, COST, evidence=evidence)
    assert [f.key for f in report.flagged("nk-rule")] == [{"ward": "a"}]  # 90/100 is dominated
    assert "90.0%" in report.flagged("nk-rule")[0].reason


def test_p_ratio_flags_a_second_contributor_who_can_estimate_the_first() -> None:
    # (100 - 60 - 35) / 60 = 0.083 < 0.10, while the top two are 95 % (nk flags too)
    table, evidence = cost_table({"a": [60.0, 35.0] + [0.5] * 10, "b": [10.0] * 12})
    report = check_table("t", table, COST, evidence=evidence, appetite=RiskAppetite(safe_nk_k=0.99))
    assert [f.key for f in report.flagged("p-ratio")] == [{"ward": "a"}]
    assert report.flagged("nk-rule") == []


def test_a_units_records_are_one_contribution() -> None:
    contributions = pa.table(
        {
            "ward": ["a"] * 3,
            "column": ["cost"] * 3,
            "unit": ["p1", "p1", "p2"],
            "value": [5.0, 7.0, 1.0],
        }
    )
    evidence = evidence_from_contributions(contributions, COST).to_pylist()
    assert evidence == [
        {
            "ward": "a",
            "column": "cost",
            "contributors": 2,
            "total": 13.0,
            "negatives": 0,
            "top1": 12.0,
            "top2": 1.0,
        }
    ]


def test_negative_contributions_make_dominance_undefined() -> None:
    table, evidence = cost_table({"a": [50.0, -40.0] + [1.0] * 10})
    report = check_table("t", table, COST, evidence=evidence)
    assert [f.rule for f in report.flags] == ["negative"]


def test_a_magnitude_without_evidence_needs_review() -> None:
    table, _ = cost_table({"a": [10.0] * 12})
    (flag,) = check_table("t", table, COST).flagged("nk-rule")
    assert "no contributor evidence" in flag.reason


def test_few_contributors_to_a_magnitude_are_under_the_threshold() -> None:
    table, evidence = cost_table({"a": [10.0, 11.0, 12.0]})
    assert {
        f.column for f in check_table("t", table, COST, evidence=evidence).flagged("threshold")
    } == {
        "n",
        "cost",
    }


EARLIER = ReleasedTable(
    "by_age_2025",
    pa.table({"age": ["40-49", "50-59"], "n": [103, 218]}),
    TableSpec(dimensions=("age",), counts=("n",)),
)


def test_a_small_difference_from_an_earlier_release_is_flagged() -> None:
    # 40-49: 57 + 43 = 100 now, 103 before: 3 persons were left out of one of the two
    report = check_table("t", age_sex([57, 43, 120, 98]), AGE_SEX, earlier=[EARLIER])
    keys = [(f.key, f.value) for f in report.flagged("differencing")]
    assert ({"age": "40-49"}, 100) in keys
    assert ({}, 318) in keys  # the whole table: 318 against 321
    assert all("by_age_2025" in f.reason for f in report.flagged("differencing"))
    assert ({"age": "50-59"}, 218) not in keys


def test_the_same_table_again_or_a_large_difference_is_not_differencing() -> None:
    again = ReleasedTable("same", age_sex([57, 43, 120, 98]), AGE_SEX)
    far = ReleasedTable("far", age_sex([80, 43, 120, 98]), AGE_SEX)
    report = check_table("t", age_sex([57, 43, 120, 98]), AGE_SEX, earlier=[again, far])
    assert report.flagged("differencing") == []


def test_a_margin_row_is_compared_as_given() -> None:
    spec = TableSpec(dimensions=("age", "sex"), counts=("n",), total_label="Total")
    table = pa.table(
        {
            "age": ["40-49", "40-49", "40-49"],
            "sex": ["F", "M", "Total"],
            "n": [57, 43, 105],  # the margin holds 105: five more than its cells
        }
    )
    report = check_table("t", table, spec, earlier=[EARLIER])
    flags = report.flagged("differencing")
    assert [(f.row, f.value) for f in flags if f.key == {"age": "40-49"}] == [(2, 105)]
    assert report.flagged("group-disclosure") == []  # the margin is not a category


def test_a_figure_is_checked_through_its_summary_table() -> None:
    report = check_table("km.png", age_sex([57, 43, 120, 98]), AGE_SEX, kind="figure")
    assert report.kind == "figure"
    assert any("summary table" in note for note in report.notes)


def test_the_report_is_json() -> None:
    report = check_table("t", age_sex([5, 43, 120, 0]), AGE_SEX, earlier=[EARLIER])
    data = json.loads(report.to_json())
    assert data["verdict"] == "review"
    assert {r["rule"] for r in data["rules"]} >= {"threshold", "zero", "differencing"}
    assert data["flags"][0] == {
        "rule": "threshold",
        "row": 0,
        "column": "n",
        "key": {"age": "40-49", "sex": "F"},
        "value": 5,
        "reason": "count 5 is under the minimum of 10",
    }


def test_output_tables_are_read_from_csv_and_parquet(tmp_path: Path) -> None:
    pacsv.write_csv(age_sex([57, 43, 120, 98]), tmp_path / "t.csv")
    assert check_table("t", read_output_table(tmp_path / "t.csv"), AGE_SEX).verdict == "pass"
    (tmp_path / "t.parquet").write_bytes(b"not parquet")
    with pytest.raises(SdcInputError, match="cannot read"):
        read_output_table(tmp_path / "t.parquet")
    with pytest.raises(SdcInputError, match=r"\.csv or \.parquet"):
        read_output_table(tmp_path / "t.xlsx")


@pytest.mark.parametrize(
    ("table", "spec", "message"),
    [
        (age_sex([1, 2, 3, 4]), TableSpec(dimensions=("age",), counts=("n",)), "same categories"),
        (age_sex([1, 2, 3, 4]), TableSpec(dimensions=("age", "sex"), counts=("m",)), "no column"),
        (age_sex([1, -2, 3, 4]), AGE_SEX, "not a count"),
        (pa.table({"age": ["a"], "sex": ["F"], "n": [2.5]}), AGE_SEX, "not a count"),
        (pa.table({"age": ["a"], "sex": ["F"], "n": ["12"]}), AGE_SEX, "not a number"),
        (pa.table({"age": ["a"], "sex": ["F"], "n": [float("inf")]}), AGE_SEX, "infinite"),
        (pa.table({"age": ["a"], "sex": ["F"], "n": [True]}), AGE_SEX, "not a number"),
    ],
)
def test_malformed_tables_are_refused(table: pa.Table, spec: TableSpec, message: str) -> None:
    with pytest.raises(SdcInputError, match=message):
        check_table("t", table, spec)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"counts": ["n"]}, "'dimensions' is required"),
        ({"dimensions": ["a"], "counts": ["n"], "colour": 1}, "unknown field"),
        ({"dimensions": "age", "counts": ["n"]}, "must be a list"),
        ({"dimensions": ["a"]}, "at least one count"),
        ({"dimensions": ["a"], "counts": ["a"]}, "two roles"),
        ({"dimensions": ["a"], "counts": ["n"], "total_label": 1}, "must be a string"),
        (
            {"dimensions": ["a"], "counts": ["n"], "structural_zeros": [{"b": "x"}]},
            "structural zero",
        ),
        ({"dimensions": ["a"], "counts": ["n"], "structural_zeros": "x"}, "must be a list"),
        ({"dimensions": ["a"], "counts": [""]}, "non-empty strings"),
        ([], "must be an object"),
    ],
)
def test_malformed_specs_are_refused(data: object, message: str) -> None:
    with pytest.raises(SdcInputError, match=message):
        TableSpec.from_dict(data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "appetite",
    [
        {"safe_threshold": 0},
        {"safe_threshold": 2.5},
        {"safe_nk_k": 1.5},
        {"safe_nk_n": 0},
        {"safe_pratio_p": -0.1},
        {"rounding_base": 1},
        {"zeros_are_disclosive": "yes"},
        {"safe_nk_k": float("nan")},
    ],
)
def test_malformed_risk_appetites_are_refused(appetite: dict[str, object]) -> None:
    with pytest.raises(SdcInputError, match="risk appetite"):
        RiskAppetite(**appetite)  # type: ignore[arg-type]


def test_evidence_must_match_the_table() -> None:
    table, evidence = cost_table({"a": [10.0] * 12})
    stranger = evidence.set_column(0, "ward", pa.array(["zz"]))
    with pytest.raises(SdcInputError, match="does not have"):
        check_table("t", table, COST, evidence=stranger)
    with pytest.raises(SdcInputError, match=r"top1\.\.top2"):
        check_table("t", table, COST, evidence=evidence.drop_columns(["top2"]))
    with pytest.raises(SdcInputError, match="repeat the cell"):
        check_table("t", table, COST, evidence=pa.concat_tables([evidence, evidence]))
    with pytest.raises(SdcInputError, match="no column"):
        evidence_from_contributions(pa.table({"ward": ["a"]}), COST)


def test_spec_round_trips_through_a_dict() -> None:
    spec = TableSpec(
        dimensions=("a",), counts=("n",), total_label="All", structural_zeros=({"a": "x"},)
    )
    assert TableSpec.from_dict(spec.to_dict()) == spec


def test_a_saved_result_and_its_evidence_are_checked_from_files(tmp_path: Path) -> None:
    table, evidence = cost_table({"a": [80.0, 15.0] + [1.0] * 10})
    pacsv.write_csv(table, tmp_path / "cost.csv")
    pacsv.write_csv(evidence, tmp_path / "cost_evidence.csv")
    report = check_file(tmp_path / "cost.csv", COST, evidence=tmp_path / "cost_evidence.csv")
    assert (report.output, [f.rule for f in report.flags]) == ("cost.csv", ["nk-rule"])
