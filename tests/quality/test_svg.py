"""The inline charts: well-formed SVG, escaped text, sane with empty or odd input."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from pmhub.quality import svg

names = st.text(max_size=60)
values = st.floats(min_value=-1e6, max_value=1e12, allow_nan=False)


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(names, values), max_size=30))
def test_every_chart_is_well_formed_svg_whatever_the_labels(items: list[tuple[str, float]]):
    charts = [
        svg.hbars(items, "bars"),
        svg.columns(items, "columns"),
        svg.lines([("a", [(n, v) for n, v in items]), ("<b>", items[:3])], "lines"),
        svg.shares([("site", items)], "shares"),
        svg.boxes(
            [(n, {"p10": v, "p25": v, "median": v, "p75": v, "p90": v}) for n, v in items],
            "boxes",
        ),
    ]
    for chart in charts:
        if str(chart):
            assert _parse(str(chart)).tag.endswith("svg")
            str(chart).encode("utf-8")  # writable as the report's encoding


def test_text_is_escaped_and_empty_input_draws_nothing():
    chart = str(svg.hbars([('<script>alert("x")</script>', 3.0)], 'a "label" & <more>'))
    assert "<script>" not in chart
    assert "&lt;script&gt;" in chart
    title = _parse(chart).find("{http://www.w3.org/2000/svg}title")
    assert title is not None
    assert title.text == 'a "label" & <more>'
    assert str(svg.hbars([], "x")) == ""
    assert str(svg.lines([], "x")) == ""
    assert str(svg.boxes([("a", {"p10": None, "p90": None})], "x")) == ""
