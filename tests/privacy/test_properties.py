"""Property tests: releases satisfy their models or raise; identifiers never survive;
pseudonyms are stable per key and differ across keys; date shifts keep intervals."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmhub.privacy import (
    hierarchy,
    keys,
    metrics,
    models,
    mondrian,
    policy,
    qitable,
    search,
    service,
)
from pmhub.privacy.errors import UnsatisfiableError
from pmhub.privacy.keys import KeyStore, ProjectKey
from pmhub.settings import load_settings

REGIONS = ["춘천시", "원주시", "강릉시", "수원시", "성남시", "서울특별시 중구"]
SENSITIVE = ["E11", "I10", "J45", "K21"]

records = st.lists(
    st.tuples(
        st.integers(0, 99),
        st.sampled_from(["M", "F"]),
        st.sampled_from(REGIONS),
        st.sampled_from(SENSITIVE),
    ),
    min_size=1,
    max_size=60,
)


def frame_of(rows: list[tuple[int, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["age", "sex", "region", "dx"]).astype({"age": str})


def table_of(frame: pd.DataFrame) -> qitable.QiTable:
    trees = [
        hierarchy.intervals("age", frame["age"], [5, 10, 50]),
        hierarchy.flat("sex", frame["sex"]),
        hierarchy.region("region", frame["region"]),
    ]
    return qitable.from_frame(frame, ["age", "sex", "region"], trees, ["dx"])


def released_classes(table: qitable.QiTable, found: search.SearchResult) -> pd.DataFrame:
    """Rebuild the release as strings and group it without using the search's partition."""
    suppressed = found.check.suppressed[found.check.part.ids]
    labels = {
        q: table.hierarchies[i].labels(lv)[table.label_codes(i, lv)]
        for i, (q, lv) in enumerate(zip(table.qis, found.levels, strict=True))
    }
    out = pd.DataFrame(labels)
    out["dx"] = table.sensitive["dx"].values[table.sensitive["dx"].codes]
    out["n"] = table.counts
    out["suppressed"] = suppressed
    return out


model_choices = st.tuples(
    st.integers(1, 8),
    st.sampled_from([None, ("distinct", 2), ("entropy", 2), ("recursive", 2)]),
    st.sampled_from([None, 0.3, 0.6]),
    st.sampled_from([0.0, 0.05, 0.2]),
)


def build(choice: tuple[Any, ...]) -> tuple[list[models.Model], float]:
    k, diversity, t, suppression = choice
    chosen: list[models.Model] = [models.KAnonymity(k)]
    if diversity == ("distinct", 2):
        chosen.append(models.DistinctLDiversity("dx", 2))
    elif diversity == ("entropy", 2):
        chosen.append(models.EntropyLDiversity("dx", 2))
    elif diversity is not None:
        chosen.append(models.RecursiveCLDiversity("dx", 2, 2.0))
    if t is not None:
        chosen.append(models.TCloseness("dx", t))
    return chosen, suppression


def holds(group: pd.DataFrame, choice: tuple[Any, ...], overall: pd.Series) -> bool:
    k, diversity, t, _ = choice
    counts = group.groupby("dx")["n"].sum().sort_values(ascending=False)
    size = counts.sum()
    if size < k:
        return False
    if diversity is not None:
        kind = diversity[0]
        if kind == "distinct" and len(counts) < 2:
            return False
        shares = counts / size
        if kind == "entropy" and -(shares * np.log(shares)).sum() < math.log(2) - 1e-9:
            return False
        if kind == "recursive" and not counts.iloc[0] < 2.0 * counts.iloc[1:].sum():
            return False
    if t is not None:
        share = (counts / size).reindex(overall.index, fill_value=0.0)
        if (share - overall).abs().sum() / 2 > t + 1e-9:
            return False
    return True


@settings(max_examples=80, deadline=None)
@given(records, model_choices)
def test_optimal_release_satisfies_its_models_or_raises(rows, choice):
    frame = frame_of(rows)
    table = table_of(frame)
    chosen, suppression = build(choice)
    try:
        found = search.optimal(table, chosen, suppression)
    except UnsatisfiableError:
        return
    out = released_classes(table, found)
    assert out.loc[out["suppressed"], "n"].sum() <= suppression * table.n + 1e-9
    overall = out.groupby("dx")["n"].sum() / table.n
    kept = out[~out["suppressed"]]
    for _, group in kept.groupby(["age", "sex", "region"]):
        assert holds(group, choice, overall)


@settings(max_examples=60, deadline=None)
@given(records, st.integers(1, 6))
def test_mondrian_release_is_k_anonymous_or_raises(rows, k):
    table = table_of(frame_of(rows))
    try:
        found = mondrian.anonymize(table, [models.KAnonymity(k)])
    except UnsatisfiableError:
        assert k > table.n
        return
    out = pd.DataFrame(found.labels, columns=table.qis).assign(n=table.counts)
    assert out.groupby(table.qis)["n"].sum().min() >= k


def key_for(project: str) -> ProjectKey:
    store = KeyStore(load_settings())
    if not store.exists(project):
        store.create(project)
    return store.get(project)


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_pseudonyms_are_stable_per_key_and_differ_across_keys(a, b):
    first, second = key_for("alpha"), key_for("beta")
    assert first.pseudonym("person_id", a) == first.pseudonym("person_id", a)
    assert first.pseudonym("person_id", a) != second.pseudonym("person_id", a)
    assert (first.pseudonym("person_id", a) == first.pseudonym("person_id", b)) == (a == b)


@settings(max_examples=30, deadline=None)
@given(
    # text a VARCHAR can hold: UTF-8 (no lone surrogates) without NUL
    st.lists(
        st.text(st.characters(codec="utf-8", blacklist_characters="\x00"), max_size=30),
        max_size=20,
    ),
    st.binary(min_size=16, max_size=100),
    st.text("ab'\"_ 가", max_size=8),
    st.integers(1, 3650),
)
def test_keyed_sql_computes_the_same_pseudonyms_and_offsets(values, secret, namespace, days):
    """The engine hashes in DuckDB; notes and tests use the Python path: they must agree."""
    key = ProjectKey("p", secret)
    con = duckdb.connect()
    con.execute("CREATE TABLE t (v VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [[v] for v in values] + [[None]])
    got = con.sql(
        f"SELECT v, {keys.pseudonym_sql(namespace, 'v', 40)},"
        f" {keys.offset_sql(namespace, 'v', days)} FROM t",
        params=key.sql_parameters(),
    )
    assert got is not None
    for value, pseudonym, offset in got.fetchall():
        if value is None:
            assert pseudonym is None
            continue
        assert pseudonym == key.pseudonym(namespace, value, 40)
        assert offset == key.offset(namespace, value, days)


names = st.text(alphabet="김이박최정민서지현수영준", min_size=2, max_size=4)
people = st.lists(
    st.tuples(
        st.text(alphabet="0123456789ABCDEF", min_size=6, max_size=10),
        names,
        st.integers(0, 9999),
        st.integers(20, 80),
        st.lists(st.tuples(st.integers(0, 3000), st.sampled_from("ABC")), min_size=1, max_size=4),
    ),
    min_size=4,
    max_size=25,
    unique_by=lambda p: p[0],
)


def extract(rows) -> tuple[pd.DataFrame, pd.DataFrame]:
    person = pd.DataFrame(
        {
            "person_id": [f"ID{p[0]}" for p in rows],
            "name": [p[1] for p in rows],
            "phone": [f"010-5555-{p[2]:04d}" for p in rows],
            "age": [str(p[3]) for p in rows],
        }
    )
    base = pd.Timestamp("2020-01-01")
    visits = pd.DataFrame(
        [
            {
                "person_id": f"ID{p[0]}",
                "visit_date": f"{base + pd.Timedelta(days=d):%Y-%m-%d}",
                "ward": ward,
            }
            for p in rows
            for d, ward in p[4]
        ]
    )
    return person, visits


def extract_policy(ward_k: int | None) -> dict[str, Any]:
    visit: dict[str, Any] = {
        "columns": {
            "person_id": {"action": "pseudonym"},
            "visit_date": {"action": "date_shift", "max_days": 365},
            "ward": {"action": "keep"},
        }
    }
    if ward_k is not None:  # a second table with models of its own
        visit["columns"]["ward"] = {"action": "generalize", "hierarchy": {"type": "flat"}}
        visit["models"] = {"k": ward_k, "max_suppression": 0.5}
    return {
        "name": "extract",
        "version": 1,
        "project": "gamma",
        "tables": {
            "person": {
                "columns": {
                    "person_id": {"action": "pseudonym"},
                    "name": {"action": "drop"},
                    "phone": {"action": "drop"},
                    "age": {
                        "action": "generalize",
                        "hierarchy": {"type": "interval", "widths": [10, 20]},
                    },
                },
                "models": {"k": 2, "max_suppression": 0.5},
            },
            "visit": visit,
        },
    }


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people, st.sampled_from([None, 2, 3]))
def test_extract_removes_suppressed_persons_everywhere_and_shifts_dates_per_person(rows, ward_k):
    person, visits = extract(rows)
    key = key_for("gamma")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        person.to_csv(folder / "person.csv", index=False)
        visits.to_csv(folder / "visit.csv", index=False)
        try:
            release = service.anonymize(
                folder, policy.parse(extract_policy(ward_k)), Path(tmp) / "out", key
            )
        except UnsatisfiableError:
            return
        out_person = pd.read_csv(release.files["person"], dtype=str)
        out_visit = pd.read_csv(release.files["visit"], dtype=str)
    # No direct identifier survives anywhere.
    identifiers = set(person["person_id"]) | set(person["name"]) | set(person["phone"])
    for frame in (out_person, out_visit):
        assert not identifiers & set(frame.to_numpy().ravel().tolist())
    # A suppressed person (missing from the person table) is in no table, under any name.
    pseudonym = {p: key.pseudonym("person_id", p) for p in person["person_id"]}
    kept = set(out_person["person_id"])
    assert kept <= set(pseudonym.values())
    gone = {p for p, code in pseudonym.items() if code not in kept}
    for frame in (out_person, out_visit):
        values = set(frame.to_numpy().ravel().tolist())
        assert not values & ({pseudonym[p] for p in gone} | gone)
    report = release.report
    assert report["suppressed_persons"] == len(gone)
    assert report["tables"]["person"]["rows_out"] == len(person) - len(gone)
    # Every visit of a kept person is released, with that person's pseudonym.
    kept_visits = visits[~visits["person_id"].isin(gone)]
    assert len(out_visit) == len(kept_visits)
    assert list(out_visit["person_id"]) == [pseudonym[p] for p in kept_visits["person_id"]]
    visit_report = report["tables"]["visit"]
    assert len(visits) - len(out_visit) == (
        visit_report["achieved"]["suppressed"] + visit_report["removed_with_suppressed_persons"]
    )
    # Each table's models hold on what is released.
    assert out_person.groupby("age").size().min() >= 2
    if ward_k is not None:
        assert out_visit.groupby("ward").size().min() >= ward_k
    # Shifting keeps every interval between a person's dates, and is never zero.
    before = pd.to_datetime(kept_visits["visit_date"]).to_numpy()
    after = pd.to_datetime(out_visit["visit_date"]).to_numpy()
    shift = pd.Series(after - before)
    per_person = shift.groupby(out_visit["person_id"].to_numpy()).nunique()
    assert (per_person == 1).all()
    assert (shift.abs() >= pd.Timedelta(days=1)).all()
    assert (shift.abs() <= pd.Timedelta(days=365)).all()


@pytest.mark.parametrize(
    ("ward_k", "persons", "person_rows", "visit_rows"), [(None, 1, 5, 8), (2, 2, 4, 6)]
)
def test_suppressed_persons_are_counted_in_the_report(
    tmp_path, ward_k, persons, person_rows, visit_rows
):
    """A4 (age 77) is alone in its age band; with ward models, A3 is alone in ward C."""
    rows = [
        ("A1", "김김", 1, 21, [(0, "A")]),
        ("A2", "김김", 2, 22, [(3, "A"), (5, "B")]),
        ("A3", "김김", 3, 23, [(1, "A"), (2, "C")]),
        ("A4", "김김", 4, 77, [(4, "A")]),
        ("A5", "김김", 5, 24, [(7, "B")]),
        ("A6", "김김", 6, 25, [(8, "B"), (9, "A")]),
    ]
    person, visits = extract(rows)
    folder = tmp_path / "in"
    folder.mkdir()
    person.to_csv(folder / "person.csv", index=False)
    visits.to_csv(folder / "visit.csv", index=False)
    raw = extract_policy(ward_k)
    release = service.anonymize(folder, policy.parse(raw), tmp_path / "out", key_for("gamma"))
    report = release.report
    assert report["suppressed_persons"] == persons
    assert report["tables"]["person"]["rows_out"] == person_rows
    assert report["tables"]["visit"]["rows_out"] == visit_rows
    assert report["tables"]["visit"]["removed_with_suppressed_persons"] == 9 - visit_rows
    html = (tmp_path / "out" / "report.html").read_text()
    assert f"linked table)</th><td>{persons}</td>" in html


@settings(max_examples=120, deadline=None)
@given(records, model_choices)
def test_optimal_search_finds_the_least_loss_of_all_acceptable_nodes(rows, choice):
    """Against brute force over the whole lattice: pruning never skips a better node."""
    table = table_of(frame_of(rows))
    chosen, suppression = build(choice)
    budget = search.suppression_budget(table, suppression)
    best = math.inf
    for node in search.lattice(table):
        result = models.check(table, tuple(int(v) for v in node), chosen, budget)
        if result.ok:
            best = min(best, metrics.measure(table, result).loss)
    try:
        found = search.optimal(table, chosen, suppression)
    except UnsatisfiableError:
        assert best == math.inf
        return
    assert found.utility.loss == pytest.approx(best, abs=1e-9)
