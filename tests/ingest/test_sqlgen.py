"""The CDM select's text rule: every text value reaches the CDM cut to the spec's length
and with NUL characters replaced, whatever its bytes (the fast path must agree)."""

from __future__ import annotations

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from pmhub.ingest.sqlgen import cdm_select

# measurement_source_value and value_source_value are varchar(50)
TEXT = st.text(
    alphabet=st.sampled_from(["a", "Z", "0", " ", "\x00", "é", "한", "글", "😀", ",", "'"]),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(source=TEXT, value=TEXT)
def test_text_is_cut_and_cleaned_like_the_rule(source: str, value: str) -> None:
    select = cdm_select("measurement", {"measurement_source_value": "s", "value_source_value": "v"})
    con = duckdb.connect()
    con.execute("CREATE TABLE t (s VARCHAR, v VARCHAR)")
    con.execute("INSERT INTO t VALUES (?, ?)", [source, value])
    row = con.execute(
        f"SELECT measurement_source_value, value_source_value FROM (SELECT {select} FROM t)"
    ).fetchone()
    assert row == (
        source.replace("\x00", "\ufffd")[:50],
        value.replace("\x00", "\ufffd")[:50],
    )


def test_null_text_stays_null() -> None:
    select = cdm_select("measurement", {"measurement_source_value": "s"})
    con = duckdb.connect()
    row = con.execute(
        f"SELECT measurement_source_value FROM (SELECT {select} FROM (SELECT NULL AS s))"
    ).fetchone()
    assert row == (None,)
