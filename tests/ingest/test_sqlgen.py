"""The CDM select's text rule: every text value reaches the CDM cut to the spec's length
and with NUL characters replaced, whatever its bytes (the fast path must agree); and the
rules' fast tests for blank and overlong values agree with ``trim`` and ``length``."""

from __future__ import annotations

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from pmhub.ingest.sqlgen import blank, cdm_select, longer

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


# what trim removes and what it keeps, printable ASCII, other scripts, and NUL
SPACED = st.text(
    alphabet=st.sampled_from(
        [" ", "\t", "\n", "\u00a0", "\u3000", "\u2003", "\x00", "!", "~", "a", "0", "é", "한", "😀"]
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.none(), SPACED), limit=st.integers(min_value=0, max_value=60))
def test_blank_and_longer_agree_with_trim_and_length(value: str | None, limit: int) -> None:
    con = duckdb.connect()
    row = con.execute(
        f"SELECT {blank('x')}, x IS NULL OR trim(x) = '', {longer('x', limit)}, "
        f"length(x) > {limit} FROM (SELECT CAST(? AS VARCHAR) AS x)",
        [value],
    ).fetchone()
    assert row is not None
    assert row[0] == row[1]
    assert row[2] == row[3] or (value is None and row[2] is None and row[3] is None)
    if value is not None:  # and what they say is what Python's characters say
        assert row[2] == (len(value) > limit)
