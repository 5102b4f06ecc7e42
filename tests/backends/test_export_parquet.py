"""A CDW exported as the Parquet folder of a Spark site: every table, the same rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pmhub.cohorts.spark import export_parquet
from tests.backends.conftest import SpecSite

DATA = """
person
  person_id | year_of_birth | gender_concept_id
  1         | 1950          | 8507
  2         | 1960          | 8532

observation_period
  person_id | observation_period_start_date | observation_period_end_date
  1         | 2010-01-01                    | 2020-12-31

condition_occurrence
  person_id | condition_concept_id | condition_start_date | visit_occurrence_id
  2         | 201826               | 2016-05-01           | 20
"""


@pytest.mark.parametrize(
    "site", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_export_writes_every_table_with_its_rows(site: SpecSite, tmp_path: Path) -> None:
    site.load(DATA)
    assert site.backend is not None
    (tmp_path / "person.parquet").mkdir()  # an older export as Spark writes it: replaced
    written = export_parquet(site.backend, tmp_path)
    assert written["person"] == 2
    assert written["condition_occurrence"] == 1
    assert written["concept"] > 1000  # the vocabulary goes along
    assert {p.stem for p in tmp_path.glob("*.parquet")} == set(written)
    rows = pq.read_table(tmp_path / "condition_occurrence.parquet").to_pylist()
    assert rows[0]["condition_start_date"] == dt.date(2016, 5, 1)
    assert rows[0]["visit_occurrence_id"] == 20
    assert not list(tmp_path.glob(".*"))  # no half-written files left
