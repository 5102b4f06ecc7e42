"""User JSON and YAML within limits: what parses is what json/yaml would give, and what
breaks a limit is refused with the caller's error, however it is built."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pmhub import documents
from pmhub.errors import PmhubError, SettingsError

LIMITS = documents.Limits(max_bytes=1 << 20, max_depth=12, max_aliases=50, max_nodes=5_000)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4),
    ),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


@settings(max_examples=150, deadline=None)
@given(trees)
def test_documents_within_the_limits_parse_as_json_and_yaml_do(value: Any) -> None:
    if depth(value) > LIMITS.max_depth:
        return
    text = json.dumps(value)
    assert documents.parse_json(text, source="t", error=SettingsError, limits=LIMITS) == value
    dumped = yaml.safe_dump(value)
    parsed = documents.parse_yaml(dumped, source="t", error=SettingsError, limits=LIMITS)
    assert parsed == yaml.safe_load(dumped)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=13, max_value=5_000), st.sampled_from(["[", '{"k":']))
def test_nesting_beyond_the_limit_is_refused_at_any_depth(levels: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = opener * levels + "1" + closer * levels
    with pytest.raises(SettingsError, match="nested more than 12 levels deep"):
        documents.parse_json(text, source="t", error=SettingsError, limits=LIMITS)
    with pytest.raises(SettingsError, match="nested more than 12 levels deep"):
        documents.parse_yaml(text, source="t", error=SettingsError, limits=LIMITS)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=2, max_value=9), st.integers(min_value=1, max_value=9))
def test_aliases_are_refused_exactly_when_they_expand_beyond_the_limit(
    width: int, levels: int
) -> None:
    """Anchors of ``width`` aliases each, ``levels`` deep: refused exactly when the
    expanded document has more nodes than the limit (or uses too many aliases)."""
    lines = ["a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    sizes = [1 + width]  # a list and its items
    for _ in range(1, levels):
        sizes.append(1 + width * sizes[-1])
    nodes = 1 + sum(1 + size for size in sizes)  # the mapping, each key and its value
    aliases = width * (levels - 1)
    text = "\n".join(lines)
    if nodes <= LIMITS.max_nodes and aliases <= LIMITS.max_aliases:
        parsed = documents.parse_yaml(text, source="t", error=SettingsError, limits=LIMITS)
        assert parsed == yaml.safe_load(text)
        return
    with pytest.raises(SettingsError, match=r"expand to more than|more than 50 aliases"):
        documents.parse_yaml(text, source="t", error=SettingsError, limits=LIMITS)


def test_strings_with_brackets_do_not_count_as_nesting() -> None:
    text = json.dumps({"note": "[" * 10_000, "x": ["]" * 50]})
    assert documents.parse_json(text, source="t", error=SettingsError, limits=LIMITS)["x"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\na: 2\n", "the key 'a' appears twice"),
        ("<<: {a: 1}\na: 2\n", None),  # a merge key may be overridden: that is YAML
        ("x: &x [*x]\n", "recursive"),
        ("x: " + "*y " * 3 + "\n", "found undefined alias"),
        ("\ufeffa: 1\n", None),
    ],
)
def test_yaml_rules(text: str, expected: str | None) -> None:
    if expected is None:
        assert documents.parse_yaml(text, source="t", error=SettingsError)
        return
    with pytest.raises(SettingsError, match=expected):
        documents.parse_yaml(text, source="t", error=SettingsError)


def test_too_many_aliases_even_when_small() -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 60) + "]\n"
    with pytest.raises(SettingsError, match="more than 50 aliases"):
        documents.parse_yaml(text, source="t", error=SettingsError, limits=LIMITS)


def test_read_refuses_a_large_file_without_reading_it_all(tmp_path: Any) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as handle:
        handle.truncate(64 << 20)
    with pytest.raises(PmhubError, match="larger than 1 MiB"):
        documents.read(path, error=PmhubError, what="policy")
    with pytest.raises(PmhubError, match="cannot read policy"):
        documents.read(tmp_path / "missing.yaml", error=PmhubError, what="policy")
