"""Privacy models, risk and column transforms on small hand-computed cases; OMOP extracts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from pmhub.cdm import schema
from pmhub.cdm.backends.duckdb import DuckDBBackend
from pmhub.privacy import hierarchy, models, policy, qitable, risk, service
from pmhub.privacy.errors import HierarchyError, PolicyError, UnsatisfiableError
from pmhub.privacy.keys import KeyStore, ProjectKey
from pmhub.privacy.transforms import DATE_SHIFT
from pmhub.settings import load_settings


def one_class(values: list[str], column: str = "s") -> tuple[qitable.QiTable, models.Partition]:
    frame = pd.DataFrame({"q": ["x"] * len(values), column: values})
    table = qitable.from_frame(frame, ["q"], [hierarchy.flat("q", ["x"])], [column])
    return table, models.partition(table, (0,))


@pytest.mark.parametrize(
    ("values", "entropy_ok", "recursive_ok"),
    [
        (["a", "a", "b", "b"], True, True),
        (["a", "a", "a", "b"], False, False),
        (["a", "a", "b", "c"], True, True),
    ],
)
def test_entropy_and_recursive_diversity(values, entropy_ok, recursive_ok):
    table, part = one_class(values)
    entropy = models.EntropyLDiversity("s", 2)
    recursive = models.RecursiveCLDiversity("s", 2, 2.0)  # r1 < 2 * (r2 + ...)
    assert bool(entropy.violations(table, part)[0]) is not entropy_ok
    assert bool(recursive.violations(table, part)[0]) is not recursive_ok


def test_equal_distance_closeness():
    frame = pd.DataFrame({"q": ["x", "x", "y", "y"], "s": ["a", "a", "b", "b"]})
    table = qitable.from_frame(frame, ["q"], [hierarchy.flat("q", ["x", "y"])], ["s"])
    part = models.partition(table, (0,))
    distances = models.TCloseness("s", 0.4).distances(table, part)
    assert distances.tolist() == pytest.approx([0.5, 0.5])
    assert models.TCloseness("s", 0.5).violations(table, part).tolist() == [False, False]


def test_hierarchical_distance_closeness_matches_the_hand_computed_emd():
    tree = hierarchy.from_rows(
        "s", [["a1", "A", "*"], ["a2", "A", "*"], ["b1", "B", "*"], ["b2", "B", "*"]]
    )
    frame = pd.DataFrame({"q": ["x", "y", "y", "y"], "s": ["a1", "a2", "b1", "b2"]})
    table = qitable.from_frame(frame, ["q"], [hierarchy.flat("q", ["x", "y"])], ["s"])
    part = models.partition(table, (0,))
    model = models.TCloseness("s", 0.5, "hierarchical", tree)
    # Class x holds only a1: move 0.25 to a2 (distance 1/2) and 0.5 to the B leaves (1).
    assert model.distances(table, part)[part.ids[0]] == pytest.approx(0.625)


def test_k_map_counts_the_population_class():
    sample = pd.DataFrame({"age": ["30", "31", "50"]})
    people = pd.DataFrame({"age": ["30"] * 4 + ["31"] * 4 + ["50"] * 2})
    tree = hierarchy.intervals("age", ["30", "31", "50"], [10])
    table = qitable.from_frame(sample, ["age"], [tree])
    population = qitable.from_frame(people, ["age"], [tree])
    model = models.KMap(3, population)
    fine = models.partition(table, (0,))
    coarse = models.partition(table, (1,))
    assert model.population_counts(table, fine)[fine.ids].tolist() == [4, 4, 2]
    assert model.violations(table, coarse)[coarse.ids].tolist() == [False, False, True]


def test_risk_measures_by_hand():
    sizes = np.array([1, 1, 2, 4])
    found = risk.assess(sizes, threshold=0.3, population_sizes=np.array([10, 1, 4, 40]))
    assert found.prosecutor.highest == 1.0
    assert found.prosecutor.average == pytest.approx(4 / 8)
    assert found.prosecutor.share_above == pytest.approx(4 / 8)
    assert found.journalist.highest == 1.0
    assert found.marketer == pytest.approx((1 / 10 + 1 + 2 / 4 + 4 / 40) / 8)
    assert (found.sample_uniques, found.population_uniques_estimate) == (2, 1)


def test_population_uniqueness_estimate_falls_as_the_population_grows():
    sizes = np.array([1] * 50 + [2] * 30 + [5] * 10)
    same = risk.assess(sizes, cells=1000)
    assert same.population_uniques_estimate == 50
    estimates = [
        risk.assess(sizes, population_size=n, cells=1000).population_uniques_estimate
        for n in (200, 1000, 10_000)
    ]
    assert 50 > estimates[0] > estimates[1] > estimates[2] >= 0


def test_risk_refuses_empty_data():
    with pytest.raises(Exception, match="no records"):
        risk.assess(np.array([], dtype=int))


@pytest.mark.parametrize(
    ("maker", "args", "error"),
    [
        (hierarchy.intervals, (["1", "x"], [5]), HierarchyError),
        (hierarchy.intervals, (["1"], [5, 7]), HierarchyError),
        (hierarchy.dates, (["2024-13-01"],), HierarchyError),
        (hierarchy.kcd, (["123"],), HierarchyError),
        (hierarchy.region, (["중구"],), HierarchyError),
    ],
)
def test_generated_hierarchies_refuse_bad_values(maker, args, error):
    with pytest.raises(error):
        maker("c", *args)


def test_generated_hierarchies():
    assert hierarchy.kcd("dx", ["E11.9"]).rows[0] == ("E11.9", "E11", "E00-E90", "*")
    assert hierarchy.region("r", ["서울특별시 중구"]).rows[0] == (
        "서울특별시 중구",
        "서울특별시",
        "*",
    )
    assert hierarchy.region("r", ["춘천시"]).rows[0] == ("춘천시", "강원특별자치도", "*")
    assert hierarchy.prefixes("z", ["24341"], [3, 1]).rows[0] == ("24341", "243**", "2****", "*")
    assert hierarchy.dates("d", ["2024-05-06"]).rows[0] == ("2024-05-06", "2024-05", "2024", "*")


def test_a_hierarchy_must_be_a_tree():
    with pytest.raises(HierarchyError, match="two parents"):
        hierarchy.from_rows("h", [["a", "A", "X"], ["b", "A", "Y"]])


def run_policy(tmp_path: Path, frame: pd.DataFrame, columns: dict[str, Any], **extra: Any):
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    raw = {"name": "t", "version": 1, "dataset": "in", "columns": columns, **extra}
    release = service.anonymize(source, policy.parse(raw), tmp_path / "out", None)
    return pd.read_csv(release.files["in"], dtype=str, keep_default_na=False), release.report


def test_record_level_transforms(tmp_path):
    frame = pd.DataFrame(
        {
            "lab": ["7", "1", "3", "2", "6", "5", "4"],
            "income": ["10", "500", "90", "", "1000", "40", "60"],
            "weight": ["61.2", "58.9", "72.6", "80.1", "49.9", "66.6", "70"],
            "town": ["a", "a", "a", "b", "b", "c", "a"],
            "visit": [
                "2024-01-05",
                "2024-02-29",
                "2023-12-31",
                "2024-03-01",
                "2024-01-01",
                "2024-01-02",
                "",
            ],
        }
    )
    columns = {
        "lab": {"action": "microaggregate", "k": 3},
        "income": {"action": "top_bottom", "top": 100, "bottom": 20},
        "weight": {"action": "round", "base": 5},
        "town": {"action": "suppress_cells", "min_count": 2},
        "visit": {"action": "date_generalize", "to": "month"},
    }
    out, report = run_policy(tmp_path, frame, columns)
    # Sorted 1..7 in groups of 3, the last group taking the remainder: means 2 and 5.5.
    assert out["lab"].astype(float).tolist() == [5.5, 2, 2, 2, 5.5, 5.5, 5.5]
    assert out["income"].tolist()[3] == ""
    income = out["income"].drop(index=3).astype(float).tolist()
    assert income == [20, 100, 90, 100, 40, 60]
    assert out["weight"].astype(float).tolist() == [60, 60, 75, 80, 50, 65, 70]
    assert out["town"].tolist() == ["a", "a", "a", "b", "b", "", "a"]
    assert out["visit"].tolist() == [
        "2024-01",
        "2024-02",
        "2023-12",
        "2024-03",
        "2024-01",
        "2024-01",
        "",
    ]
    assert report["tables"]["in"]["suppressed_cells"] == {"town": 1}


def test_mondrian_through_the_policy(tmp_path):
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {"age": rng.integers(20, 80, 300).astype(str), "sex": rng.choice(["M", "F"], 300)}
    )
    columns = {
        "age": {"action": "generalize", "hierarchy": {"type": "interval", "widths": [5, 10, 20]}},
        "sex": {"action": "generalize", "hierarchy": {"type": "flat"}},
    }
    out, report = run_policy(
        tmp_path, frame, columns, models={"k": 10}, search={"method": "mondrian"}
    )
    assert out.groupby(["age", "sex"]).size().min() >= 10
    assert report["tables"]["in"]["search"]["method"] == "mondrian"
    assert report["tables"]["in"]["achieved"]["models_hold"]


def test_k_map_through_the_policy(tmp_path):
    people = pd.DataFrame({"age": [str(a) for a in range(20, 60)] * 3})
    people.to_csv(tmp_path / "population.csv", index=False)
    frame = pd.DataFrame({"age": [str(a) for a in range(20, 60, 2)]})
    columns = {
        "age": {"action": "generalize", "hierarchy": {"type": "interval", "widths": [5, 10]}}
    }
    models_spec = {"k_map": {"k": 16, "population": str(tmp_path / "population.csv")}}
    out, report = run_policy(tmp_path, frame, columns, models=models_spec)
    assert report["tables"]["in"]["search"]["levels"] == {
        "age": 2
    }  # 5-year bands hold 15 people, 10-year 30
    assert set(out["age"]) == {"20-29", "30-39", "40-49", "50-59"}


def test_unknown_sensitive_column_in_a_model_is_a_policy_error():
    with pytest.raises(PolicyError, match="no rule"):
        policy.parse(
            {
                "name": "t",
                "version": 1,
                "columns": {"a": {"action": "keep"}},
                "models": {"l_diversity": [{"column": "b", "l": 2}]},
            }
        )


def test_unsatisfiable_diversity_is_reported(tmp_path):
    frame = pd.DataFrame({"age": ["30", "31"], "dx": ["a", "a"]})
    columns = {
        "age": {"action": "generalize", "hierarchy": {"type": "interval", "widths": [10]}},
        "dx": {"action": "keep"},
    }
    with pytest.raises(UnsatisfiableError):
        run_policy(tmp_path, frame, columns, models={"l_diversity": [{"column": "dx", "l": 2}]})
    assert not (tmp_path / "out").exists()


@pytest.fixture
def key() -> ProjectKey:
    store = KeyStore(load_settings())
    store.create("omop")
    return store.get("omop")


def small_cdm(path: Path, births: dict[int, int]) -> None:
    """A DuckDB CDM: persons with these years of birth, two conditions each."""
    backend = DuckDBBackend(path)
    schema.init_cdm(backend, source_name="t", abbreviation="t", holder="t")
    for pid, year in births.items():
        backend.execute(
            "INSERT INTO person (person_id, gender_concept_id, year_of_birth, race_concept_id,"
            " ethnicity_concept_id) VALUES (?, ?, ?, 0, 0)",
            [pid, 8507 if pid % 2 else 8532, year],
        )
        for visit in range(2):
            backend.execute(
                "INSERT INTO condition_occurrence (condition_occurrence_id, person_id,"
                " condition_concept_id, condition_start_date, condition_type_concept_id)"
                " VALUES (?, ?, 201826, ?, 32817)",
                [pid * 10 + visit, pid, f"2024-0{visit + 1}-{pid % 28 + 1:02d}"],
            )
    backend.close()


def omop_policy(**person_models: Any) -> dict[str, Any]:
    return {
        "name": "omop-extract",
        "version": 1,
        "project": "omop",
        "tables": {
            "person": {
                "unlisted": "drop",
                "columns": {
                    "person_id": {"action": "pseudonym"},
                    "gender_concept_id": {"action": "generalize", "hierarchy": {"type": "flat"}},
                    "year_of_birth": {
                        "action": "generalize",
                        "hierarchy": {"type": "interval", "widths": [5, 10, 20]},
                    },
                },
                "models": {"k": 5, **person_models},
            },
            "condition_occurrence": {
                "unlisted": "drop",
                "columns": {
                    "condition_occurrence_id": {"action": "pseudonym"},
                    "person_id": {"action": "pseudonym"},
                    "condition_concept_id": {"action": "keep"},
                    "condition_start_date": {"action": "date_shift", "max_days": 20},
                },
            },
        },
    }


def test_omop_extract_removes_a_suppressed_person_from_every_table(tmp_path, key):
    """Person 99, born 1890, is alone in every band low enough to keep: suppressed, and
    their conditions (BIGINT person_id in a DuckDB CDM) go with them."""
    path = tmp_path / "cdw.duckdb"
    small_cdm(path, {**{pid: 1940 + pid for pid in range(1, 31)}, 99: 1890})
    raw = omop_policy(max_suppression=0.05)
    release = service.anonymize(path, policy.parse(raw), tmp_path / "out", key)
    person = pd.read_parquet(release.files["person"])
    conditions = pd.read_parquet(release.files["condition_occurrence"])
    gone = key.pseudonym("person_id", "99")
    assert gone not in set(person["person_id"]) | set(conditions["person_id"])
    assert len(person) == 30
    assert len(conditions) == 60
    assert set(conditions["person_id"]) == set(person["person_id"])
    assert release.report["suppressed_persons"] == 1
    tables = release.report["tables"]
    assert tables["person"]["achieved"]["suppressed"] == 1
    assert tables["condition_occurrence"]["removed_with_suppressed_persons"] == 2


def test_omop_extract_from_a_cdm_keeps_people_linked(tmp_path, key):
    path = tmp_path / "cdw.duckdb"
    small_cdm(path, {pid: 1940 + pid for pid in range(1, 31)})
    raw = omop_policy()
    release = service.anonymize(path, policy.parse(raw), tmp_path / "out", key)
    person = pd.read_parquet(release.files["person"])
    conditions = pd.read_parquet(release.files["condition_occurrence"])
    assert person.groupby(["gender_concept_id", "year_of_birth"]).size().min() >= 5
    assert set(conditions["person_id"]) == set(person["person_id"])
    assert person["person_id"].iloc[0] == key.pseudonym("person_id", "1")
    original = (
        duckdb.connect(str(path), read_only=True)
        .execute(
            "SELECT person_id, condition_start_date FROM condition_occurrence"
            " ORDER BY condition_occurrence_id"
        )
        .fetchall()
    )
    shifted = conditions.assign(when=pd.to_datetime(conditions["condition_start_date"]))
    for (pid, day), (_, row) in zip(original, shifted.iterrows(), strict=True):
        offset = key.offset(DATE_SHIFT, str(pid), 20)
        assert row["when"].date() == day + pd.Timedelta(days=offset)
        assert row["person_id"] == key.pseudonym("person_id", str(pid))
    assert math.isfinite(release.report["tables"]["person"]["utility"]["loss"])


def test_report_states_the_achieved_figures(tmp_path):
    rng = np.random.default_rng(8)
    frame = pd.DataFrame(
        {"age": rng.integers(20, 80, 400).astype(str), "dx": rng.choice(["a", "b", "c", "d"], 400)}
    )
    columns = {
        "age": {"action": "generalize", "hierarchy": {"type": "interval", "widths": [5, 10, 20]}},
        "dx": {"action": "keep"},
    }
    models_spec = {
        "k": 8,
        "l_diversity": [
            {"column": "dx", "l": 2, "variant": "entropy"},
            {"column": "dx", "l": 3, "variant": "recursive", "c": 3},
        ],
        "t_closeness": [{"column": "dx", "t": 0.3}],
    }
    _, report = run_policy(tmp_path, frame, columns, models=models_spec)
    figures = report["tables"]["in"]["achieved"]["figures"]
    assert figures["8-anonymity"] >= 8
    assert figures["entropy 2-diversity of dx"] >= 2
    assert figures["recursive (3,3)-diversity of dx"] < 3
    assert figures["0.3-closeness of dx (equal distance)"] <= 0.3


def test_kcd_error_names_the_column():
    with pytest.raises(HierarchyError, match=r"hierarchy 'condition_source_value'.*10509002"):
        hierarchy.kcd("condition_source_value", ["E11.9", "10509002"])
