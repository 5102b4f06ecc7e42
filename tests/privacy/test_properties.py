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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmhub.privacy import hierarchy, keys, models, mondrian, policy, qitable, search, service
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
    st.lists(st.text(st.characters(blacklist_characters="\x00"), max_size=30), max_size=20),
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
        st.lists(st.integers(0, 3000), min_size=1, max_size=4),
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
            {"person_id": f"ID{p[0]}", "visit_date": f"{base + pd.Timedelta(days=d):%Y-%m-%d}"}
            for p in rows
            for d in p[4]
        ]
    )
    return person, visits


EXTRACT_POLICY = {
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
        "visit": {
            "columns": {
                "person_id": {"action": "pseudonym"},
                "visit_date": {"action": "date_shift", "max_days": 365},
            }
        },
    },
}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people)
def test_extract_keeps_no_identifier_and_shifts_dates_per_person(rows):
    person, visits = extract(rows)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        person.to_csv(folder / "person.csv", index=False)
        visits.to_csv(folder / "visit.csv", index=False)
        try:
            release = service.anonymize(
                folder, policy.parse(EXTRACT_POLICY), Path(tmp) / "out", key_for("gamma")
            )
        except UnsatisfiableError:
            return
        out_person = pd.read_csv(release.files["person"], dtype=str)
        out_visit = pd.read_csv(release.files["visit"], dtype=str)
    identifiers = set(person["person_id"]) | set(person["name"]) | set(person["phone"])
    for frame in (out_person, out_visit):
        assert not identifiers & set(frame.to_numpy().ravel().tolist())
    # The same person has the same pseudonym in both tables.
    assert set(out_visit["person_id"]) <= set(out_person["person_id"])
    # Shifting keeps every interval between a person's dates, and is never zero.
    before = visits.assign(when=pd.to_datetime(visits["visit_date"]))
    after = out_visit.assign(when=pd.to_datetime(out_visit["visit_date"]))
    shift = after["when"] - before["when"]
    per_person = shift.groupby(after["person_id"]).nunique()
    assert (per_person == 1).all()
    assert (shift.abs() >= pd.Timedelta(days=1)).all()
    assert (shift.abs() <= pd.Timedelta(days=365)).all()
