"""Releases through the policy engine: Adult end to end, and every kind of bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pmhub.privacy import engine, policy, service
from pmhub.privacy.errors import (
    ColumnTypeError,
    EngineMemoryError,
    HierarchyError,
    KeyStoreError,
    OutputExistsError,
    PolicyError,
    PrivacyInputError,
    UnsatisfiableError,
)
from pmhub.privacy.keys import KeyStore, ProjectKey
from pmhub.settings import load_settings
from tests.privacy.conftest import ADULT_QIS, ARX_OPTIMUM, adult_dir, adult_policy, write_policy


def test_adult_release_is_the_arx_optimum_verified_and_reported(tmp_path):
    out = tmp_path / "release"
    release = service.anonymize(adult_dir() / "adult.csv", policy.parse(adult_policy()), out, None)
    table = release.report["tables"]["adult"]
    assert table["search"]["levels"] == dict(zip(ADULT_QIS, ARX_OPTIMUM, strict=True))
    assert table["achieved"] == {
        "records": 30162,
        "suppressed": 273,
        "min_class": 5,
        "classes": 147,
        "models_hold": True,
        "details": {"5-anonymity": 0.0},
        "figures": {"5-anonymity": 5.0},
    }
    assert round(table["utility"]["loss"], 3) == 0.359
    assert (
        table["risk_after"]["prosecutor"]["highest"]
        <= 0.2
        < table["risk_before"]["prosecutor"]["highest"]
    )
    released = pd.read_csv(out / "adult.csv", dtype=str)
    masked = (released[["sex", "age", "race"]] == "*").all(axis=1)
    assert masked.sum() == 273
    assert released[~masked].groupby(ADULT_QIS).size().min() >= 5
    assert sorted(p.name for p in out.iterdir()) == [
        "adult.csv",
        "policy.yaml",
        "report.html",
        "report.json",
    ]
    assert json.loads((out / "report.json").read_text())["policy"]["version"] == 1
    assert "가명처리 적정성 검토 자료" in (out / "report.html").read_text()


def small_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_id": [f"P{i}" for i in range(40)],
            "age": [str(20 + i % 30) for i in range(40)],
            "sex": ["M", "F"] * 20,
            "visit_date": [f"2024-01-{1 + i % 28:02d}" for i in range(40)],
            "dx": ["E11", "I10", "J45", "K21"] * 10,
        }
    )


def small_policy(**changes: Any) -> dict[str, Any]:
    raw = {
        "name": "small",
        "version": "2026.1",
        "project": "p1",
        "dataset": "data",
        "columns": {
            "person_id": {"action": "pseudonym"},
            "age": {"action": "generalize", "hierarchy": {"type": "interval", "widths": [5, 10]}},
            "sex": {"action": "generalize", "hierarchy": {"type": "flat"}},
            "visit_date": {"action": "date_shift", "max_days": 10},
            "dx": {"action": "keep", "sensitive": True},
        },
        "models": {"k": 3, "max_suppression": 0.05},
    }
    for key, value in changes.items():
        raw[key] = value
    return raw


@pytest.fixture
def key() -> ProjectKey:
    store = KeyStore(load_settings())
    store.create("p1")
    return store.get("p1")


def run(tmp_path: Path, frame: pd.DataFrame, raw: dict[str, Any], key: ProjectKey | None):
    source = tmp_path / "data.csv"
    frame.to_csv(source, index=False)
    return service.anonymize(source, policy.parse(raw), tmp_path / "out", key)


def assert_nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_small_release_pseudonymizes_and_shifts(tmp_path, key):
    release = run(tmp_path, small_frame(), small_policy(), key)
    out = pd.read_csv(release.files["data"], dtype=str)
    assert len(out) == 40
    assert not set(out["person_id"]) & set(small_frame()["person_id"])
    assert out["person_id"].str.fullmatch(r"[0-9a-f]{32}").all()
    assert (out["visit_date"] != small_frame()["visit_date"]).all()


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"columns": {"nope": {"action": "keep"}}}, PolicyError, "lacks"),
        (
            {"columns": {"age": {"action": "generalize", "hierarchy": {"type": "zodiac"}}}},
            PolicyError,
            "hierarchy",
        ),
        ({"columns": {"age": {"action": "generalize"}}}, PolicyError, "needs 'hierarchy'"),
        ({"models": {"k": 41}}, UnsatisfiableError, "larger than the data"),
        ({"models": {"k": 3, "max_suppression": 2}}, PolicyError, "max_suppression"),
        ({"models": {"k": 0}}, PolicyError, "k"),
    ],
)
def test_bad_policies_write_nothing(tmp_path, key, change, error, words):
    raw = small_policy()
    if "columns" in change:
        raw["columns"] = {**raw["columns"], **change["columns"]}
    else:
        raw.update(change)
    with pytest.raises(error, match=words):
        run(tmp_path, small_frame(), raw, key)
    assert_nothing_written(tmp_path)


def test_unlisted_column_is_an_error_unless_dropped(tmp_path, key):
    frame = small_frame().assign(secret="x")
    with pytest.raises(PolicyError, match="without a rule"):
        run(tmp_path, frame, small_policy(), key)
    assert_nothing_written(tmp_path)
    release = run(tmp_path, frame, small_policy(unlisted="drop"), key)
    assert "secret" not in pd.read_csv(release.files["data"]).columns


def test_hierarchy_that_misses_a_value_writes_nothing(tmp_path, key):
    tree = tmp_path / "sex.csv"
    tree.write_text("M;*\n", encoding="utf-8")
    raw = small_policy()
    raw["columns"]["sex"] = {"action": "generalize", "hierarchy": {"file": str(tree)}}
    with pytest.raises(HierarchyError, match="does not cover 1 value"):
        run(tmp_path, small_frame(), raw, key)
    assert_nothing_written(tmp_path)


def test_missing_hierarchy_file_writes_nothing(tmp_path, key):
    raw = small_policy()
    raw["columns"]["sex"] = {"action": "generalize", "hierarchy": {"file": "no-such.csv"}}
    with pytest.raises(HierarchyError, match="cannot read"):
        run(tmp_path, small_frame(), raw, key)
    assert_nothing_written(tmp_path)


def test_missing_key_writes_nothing(tmp_path):
    with pytest.raises(KeyStoreError, match="needs the key"):
        run(tmp_path, small_frame(), small_policy(), None)
    assert_nothing_written(tmp_path)
    with pytest.raises(KeyStoreError, match="no pseudonymization key"):
        KeyStore(load_settings()).get("p1")


def test_another_projects_key_is_refused(tmp_path):
    store = KeyStore(load_settings())
    store.create("p2")
    with pytest.raises(KeyStoreError, match="project 'p2'"):
        run(tmp_path, small_frame(), small_policy(), store.get("p2"))
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [("visit_date", "yesterday", "must hold dates"), ("age", "forty", "must hold numbers")],
)
def test_mistyped_column_writes_nothing(tmp_path, key, column, value, words):
    frame = small_frame()
    frame.loc[37, column] = value
    with pytest.raises(ColumnTypeError, match=words):
        run(tmp_path, frame, small_policy(), key)
    assert_nothing_written(tmp_path)


def test_existing_output_is_never_overwritten(tmp_path, key):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        run(tmp_path, small_frame(), small_policy(), key)
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_unreadable_inputs_are_clear_errors(tmp_path, key):
    raw = policy.parse(small_policy())
    with pytest.raises(PrivacyInputError, match="does not exist"):
        service.anonymize(tmp_path / "none.csv", raw, tmp_path / "out", key)
    binary = tmp_path / "blob.csv"
    binary.write_bytes(os.urandom(2000))
    with pytest.raises(PrivacyInputError):
        service.anonymize(binary, raw, tmp_path / "out", key)
    assert_nothing_written(tmp_path)


def test_hostile_column_names_are_quoted_not_executed(tmp_path, key):
    hostile = 'x"; DROP TABLE t; --'
    frame = small_frame().rename(columns={"dx": hostile})
    raw = small_policy()
    raw["columns"][hostile] = raw["columns"].pop("dx")
    release = run(tmp_path, frame, raw, key)
    assert hostile in pd.read_csv(release.files["data"]).columns


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2]",
        "name: x\nversion: 1\ncolumns: {a: {action: explode}}",
        "name: x\nversion: 1\ncolumns: {a: {action: round}}",
        ": : :",
        "name: [\n",
    ],
)
def test_malformed_policy_files_are_policy_errors(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError):
        policy.load(path)


def test_oversized_policy_is_refused(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("# " + "x" * (1 << 20), encoding="utf-8")
    with pytest.raises(PolicyError, match="larger than 1 MiB"):
        policy.load(path)


def test_policy_file_hierarchies_resolve_beside_the_policy(tmp_path, key):
    (tmp_path / "sex.csv").write_text("M;*\nF;*\n", encoding="utf-8")
    raw = small_policy()
    raw["columns"]["sex"] = {"action": "generalize", "hierarchy": {"file": "sex.csv"}}
    loaded = policy.load(write_policy(tmp_path, raw))
    source = tmp_path / "data.csv"
    small_frame().to_csv(source, index=False)
    release = service.anonymize(source, loaded, tmp_path / "out", key)
    assert release.report["tables"]["data"]["achieved"]["models_hold"]


def test_report_escapes_data_and_no_output_holds_the_key(tmp_path, key):
    frame = small_frame()
    frame.loc[0, "dx"] = "<script>alert('x')</script>"
    release = run(tmp_path, frame, small_policy(), key)
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html
    secret = (KeyStore(load_settings()).path("p1")).read_text().strip()
    for path in (tmp_path / "out").iterdir():
        data = path.read_bytes()
        assert secret.encode() not in data
        assert bytes.fromhex(secret) not in data
    assert "p1" in repr(key)
    assert secret not in repr(key)
    assert release.report["policy"]["project"] == "p1"


def test_key_file_readable_by_others_is_refused(key):
    store = KeyStore(load_settings())
    path = store.path("p1")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    path.chmod(0o644)
    with pytest.raises(KeyStoreError, match="readable by others"):
        store.get("p1")


def test_generalizing_everything_to_the_top_is_a_class_not_a_suppression(tmp_path, key):
    frame = pd.DataFrame(
        {
            "person_id": ["a", "b", "c", "d"],
            "age": ["56", "20", "80", "60"],
            "sex": ["M", "M", "M", "M"],
            "visit_date": ["2024-01-01"] * 4,
            "dx": ["x", "y", "x", "y"],
        }
    )
    release = run(tmp_path, frame, small_policy(models={"k": 2, "max_suppression": 0.5}), key)
    table = release.report["tables"]["data"]
    assert table["search"]["levels"]["age"] == 3  # '*': the only 2-anonymous choice
    assert table["achieved"]["suppressed"] == 0
    assert table["achieved"]["models_hold"]


def test_typed_parquet_columns_group_as_their_text(tmp_path, key):
    frame = small_frame()
    frame["age"] = frame["age"].astype(float)  # 40.0 must meet the hierarchy's '40'
    frame["visit_date"] = pd.to_datetime(frame["visit_date"])
    source = tmp_path / "data.parquet"
    frame.to_parquet(source, index=False)
    release = service.anonymize(source, policy.parse(small_policy()), tmp_path / "out", key)
    out = pd.read_parquet(release.files["data"])
    assert len(out) == 40
    assert release.report["tables"]["data"]["achieved"]["models_hold"]


def test_release_by_join_when_label_keys_could_overflow(tmp_path, key, monkeypatch):
    from pmhub.privacy import engine

    monkeypatch.setattr(engine, "class_keys", lambda codes, cards: None)
    frame = small_frame()
    release = run(tmp_path, frame, small_policy(models={"k": 6, "max_suppression": 0.2}), key)
    table = release.report["tables"]["data"]
    assert table["achieved"]["models_hold"]
    out = pd.read_csv(release.files["data"], dtype=str)
    assert (out[["age", "sex"]] == "*").all(axis=1).sum() == table["achieved"]["suppressed"]


def test_report_lists_unlisted_columns_as_dropped(tmp_path, key):
    frame = small_frame().assign(secret="x")
    release = run(tmp_path, frame, small_policy(unlisted="drop"), key)
    columns = release.report["tables"]["data"]["columns"]
    assert columns["secret"] == "drop (unlisted)"
    assert columns["person_id"] == "pseudonym"


def wide_frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_id": [f"P{i:07d}" for i in range(rows)],
            "age": [str(20 + i % 60) for i in range(rows)],
            "sex": ["M", "F"] * (rows // 2),
            "visit_date": [f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(rows)],
            "dx": ["E11", "I10", "J45", "K21"] * (rows // 4),
            "hba1c": [f"{5 + (i * 7919 % 400) / 100:.2f}" for i in range(rows)],
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_streams_in_batches_within_a_memory_limit(tmp_path, key, monkeypatch, suffix):
    rows = 40_000
    monkeypatch.setattr(engine, "BATCH_ROWS", 4096)
    seen: list[int] = []
    batches = engine.batches

    def counted(*args: Any) -> Any:
        for frame in batches(*args):
            seen.append(len(frame))
            yield frame

    monkeypatch.setattr(engine, "batches", counted)
    raw = small_policy()
    raw["columns"]["hba1c"] = {"action": "microaggregate", "k": 3}
    source = tmp_path / f"data{suffix}"
    frame = wide_frame(rows)
    frame.to_csv(source, index=False) if suffix == ".csv" else frame.to_parquet(source)
    release = service.anonymize(
        source, policy.parse(raw), tmp_path / "out", key, memory_limit="48MB"
    )
    path = release.files["data"]
    out = pd.read_csv(path, dtype={"age": str}) if suffix == ".csv" else pd.read_parquet(path)
    assert len(out) == rows == sum(seen[-((rows + 4095) // 4096) :])
    assert max(seen) <= 4096
    assert out.groupby(["age", "sex"]).size().min() >= 3
    # Micro-aggregation joined by position: each record gets its own group's mean (groups
    # of 3 neighbours in value order, ties by position, the last taking the remainder).
    values = wide_frame(rows)["hba1c"].astype(float).to_numpy()
    rank = np.empty(rows, dtype=np.int64)
    rank[np.lexsort((np.arange(rows), values))] = np.arange(rows)
    groups = np.minimum(rank // 3, rows // 3 - 1)
    expected = pd.Series(values).groupby(groups).transform("mean").to_numpy()
    assert np.allclose(out["hba1c"].to_numpy(), expected)


def test_too_little_memory_is_a_clear_error_and_writes_nothing(tmp_path, key):
    source = tmp_path / "data.csv"
    wide_frame(40_000).to_csv(source, index=False)
    raw = small_policy(unlisted="drop")
    with pytest.raises(EngineMemoryError, match="memory limit 1MB"):
        service.anonymize(source, policy.parse(raw), tmp_path / "out", key, memory_limit="1MB")
    assert_nothing_written(tmp_path)
