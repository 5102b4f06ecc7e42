"""The definition format: what it accepts, and errors that name the field and its path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmhub.cohorts import library, service
from pmhub.cohorts.definition import FORMAT_VERSION, dumps, load, loads, parse
from pmhub.cohorts.errors import (
    CohortDefinitionError,
    DefinitionVersionError,
    EmptyConceptSetError,
    UnknownConceptError,
)

BASE: dict[str, Any] = {
    "format_version": 1,
    "id": 5,
    "name": "t",
    "concept_sets": [{"id": "t2dm", "items": [{"concept_id": 201826}]}],
    "entry": {"criteria": [{"domain": "condition", "concept_set": "t2dm"}]},
}


def with_(path: str, value: Any) -> dict[str, Any]:
    """BASE with the value at a dotted path (list indexes as numbers) replaced."""
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[int(last) if last.isdigit() else last] = value
    return data


def problems(data: object) -> list[str]:
    with pytest.raises(CohortDefinitionError) as caught:
        parse(data)
    return caught.value.problems


def test_the_smallest_definition_takes_circe_defaults() -> None:
    d = parse(BASE)
    assert d.entry.limit == "all"
    assert d.exit.type == "end_of_observation"
    assert d.era_pad_days == 0
    assert d.entry.observation.prior_days == 0


@pytest.mark.parametrize("name", library.names())
def test_library_examples_are_valid_and_round_trip(name: str) -> None:
    definition = library.example(name)
    assert loads(dumps(definition)) == definition
    resolved = service.validate(definition)
    assert resolved
    assert all(n > 0 for n in resolved.values())


def test_library_has_the_examples_the_demo_uses() -> None:
    assert {"type2_diabetes", "metformin_new_users", "atrial_fibrillation", "stroke"} <= set(
        library.names()
    )
    ids = [library.example(n).id for n in library.names()]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (with_("entry.criteria.0.window", 1), "entry.criteria[0].window: Extra inputs"),
        (with_("concept_sets.0.items", []), "concept_sets[0]: the concept set is empty"),
        (
            with_("concept_sets.0.items", [{"concept_id": 201826, "exclude": True}]),
            "concept_sets[0]: the concept set is empty",
        ),
        (with_("concept_sets.0.items.0", {}), "concept_sets[0].items[0]: give exactly one"),
        (with_("entry.observation.prior_days", "365"), "entry.observation.prior_days: Input"),
        (with_("entry.observation.prior_days", -1), "entry.observation.prior_days: Input"),
        (with_("entry.criteria.0.domain", "lab"), "entry.criteria[0].domain: Input should be"),
        (with_("entry.criteria.0.concept_set", "nope"), "unknown concept set 'nope'"),
        (with_("id", 0), "id: Input should be greater than or equal to 1"),
        (with_("id", True), "id: Input should be a valid integer"),
        (with_("entry.criteria", []), "entry.criteria: List should have at least 1 item"),
        (
            with_("entry.criteria.0", {"domain": "condition", "concept_set": "t2dm", "value": {}}),
            "entry.criteria[0].value: give min, max or both",
        ),
        (
            with_("entry.criteria.0.value", {"min": 7}),
            "entry.criteria[0]: value and unit_concept_ids apply to",
        ),
        (with_("entry.criteria.0", {"domain": "drug"}), "a drug criterion needs a concept_set"),
        (with_("exit", {"type": "fixed_offset"}), "exit.fixed_offset.days: Field required"),
        (with_("exit", {"type": "forever"}), "exit: Input tag 'forever'"),
        (with_("exit", {"type": "era_end", "concept_set": "x"}), "exit.concept_set: unknown"),
        (with_("format_version", 0), "format_version: Input should be 1"),
        (with_("format_version", "1"), "format_version: Input should be 1"),
    ],
)
def test_problems_name_the_field_and_path(data: dict[str, Any], expected: str) -> None:
    found = problems(data)
    assert any(expected in p for p in found), found


def test_a_window_that_ends_before_it_starts() -> None:
    rule = {
        "name": "r",
        "criteria": [
            {"age": {"min": 18}},
            {
                "events": {"domain": "condition", "concept_set": "t2dm"},
                "window": {"start": 10, "end": -10},
            },
        ],
    }
    found = problems(with_("inclusion_rules", [rule]))
    assert found == [
        "inclusion_rules[0].criteria[1].window: the window ends (day -10) before it starts (10)"
    ]


def test_inclusion_criteria_of_each_kind_report_their_own_problems() -> None:
    rule = {
        "name": "r",
        "criteria": [
            {"age": {"min": 70, "max": 18}},
            {"sex": ["other"]},
            {
                "events": {"domain": "condition", "concept_set": "t2dm"},
                "count": {"at_least": 1, "at_most": 3},
            },
        ],
    }
    found = problems(with_("inclusion_rules", [rule]))
    assert any(p.startswith("inclusion_rules[0].criteria[0]: age min 70 is above") for p in found)
    assert any(p.startswith("inclusion_rules[0].criteria[1].sex[0]") for p in found)
    assert any(
        p.startswith("inclusion_rules[0].criteria[2].count: give exactly one") for p in found
    )


def test_nested_groups_report_problems_and_unknown_sets_with_their_paths() -> None:
    inner = {
        "match": {"at_least": 1, "at_most": 2},
        "criteria": [
            {"events": {"domain": "condition", "concept_set": "nope"}},
            {"events": {"domain": "death"}, "same_visit": True},
        ],
    }
    rule = {"name": "r", "criteria": [{"age": {"min": 1}}, {"group": inner}]}
    found = problems(with_("inclusion_rules", [rule]))
    assert (
        "inclusion_rules[0].criteria[1].group.match: give exactly one of at_least, at_most, exactly"
        in found
    )
    assert (
        "inclusion_rules[0].criteria[1].group.criteria[1]: same_visit needs events that carry "
        "a visit; death records do not"
    ) in found
    era = {"events": {"domain": "drug_era", "concept_set": "t2dm"}, "same_visit": True}
    inner["criteria"][1] = era  # type: ignore[index]
    found = problems(with_("inclusion_rules", [rule]))
    assert (
        "inclusion_rules[0].criteria[1].group.criteria[1]: same_visit needs events that carry "
        "a visit; drug_era records do not"
    ) in found
    inner["criteria"][1] = {"race": []}  # type: ignore[index]
    found = problems(with_("inclusion_rules", [rule]))
    assert any(
        p.startswith("inclusion_rules[0].criteria[1].group.criteria[1].race:") for p in found
    )
    inner["match"] = "any"
    inner["criteria"][1] = {"events": {"domain": "death"}}  # type: ignore[index]
    found = problems(with_("inclusion_rules", [rule]))
    assert found == [
        "inclusion_rules[0].criteria[1].group.criteria[0].events.concept_set: unknown concept "
        "set 'nope' (defined: ['t2dm'])"
    ]


def test_hostile_nesting_is_refused_before_validation() -> None:
    group: dict[str, Any] = {"age": {"min": 1}}
    for _ in range(5000):  # deeper than Python's recursion limit
        group = {"group": {"criteria": [group]}}
    with pytest.raises(CohortDefinitionError, match="nested more than 40 levels"):
        parse(with_("inclusion_rules", [{"name": "r", "criteria": [group]}]))


def test_a_concept_set_defined_twice() -> None:
    sets = BASE["concept_sets"] * 2
    assert problems(with_("concept_sets", sets)) == [
        "concept_sets[1].id: concept set 't2dm' is defined twice"
    ]


def test_a_newer_format_version_is_refused_as_such() -> None:
    with pytest.raises(DefinitionVersionError, match="format_version 2 is newer"):
        parse(with_("format_version", FORMAT_VERSION + 1))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[1, 2]",
        "just a string",
        "{not json",
        "a: [unclosed",
        "!!python/object/apply:os.system ['true']",
        "\x00\x01",
    ],
)
def test_malformed_or_hostile_text_is_a_definition_error(text: str) -> None:
    with pytest.raises(CohortDefinitionError):
        loads(text)


def test_yaml_aliases_cannot_blow_up_memory() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    with pytest.raises(CohortDefinitionError):
        loads(bomb)  # parsed (aliases share objects), then refused as no definition


def test_oversized_and_unreadable_files(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_text(json.dumps({**BASE, "description": "x" * (2 << 20)}))
    with pytest.raises(CohortDefinitionError, match="larger than"):
        load(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(CohortDefinitionError, match="not UTF-8"):
        load(latin)
    with pytest.raises(CohortDefinitionError, match="cannot read"):
        load(tmp_path / "missing.yaml")


def test_unknown_concept_ids_are_named_with_their_paths() -> None:
    data = with_("concept_sets.0.items", [{"concept_id": 201826}, {"concept_id": 999999999}])
    data["entry"]["criteria"].append(
        {"domain": "measurement", "concept_set": "t2dm", "unit_concept_ids": [123456789]}
    )
    with pytest.raises(UnknownConceptError) as caught:
        service.validate(parse(data))
    assert caught.value.problems == [
        "concept_sets[0].items[1].concept_id: unknown concept id 999999999",
        "entry.criteria[1].unit_concept_ids[0]: unknown concept id 123456789",
    ]


def test_a_concept_set_that_resolves_to_nothing() -> None:
    codes = {"source_codes": {"vocabulary": "KCD7", "codes": ["Z99.9"]}}
    with pytest.raises(EmptyConceptSetError, match=r"concept_sets\[0\]: concept set 't2dm'"):
        service.validate(parse(with_("concept_sets.0.items", [codes])))
    excluded = [
        {"concept_id": 201820, "include_descendants": True},
        {"concept_id": 201820, "include_descendants": True, "exclude": True},
    ]
    with pytest.raises(EmptyConceptSetError):
        service.validate(parse(with_("concept_sets.0.items", excluded)))


@given(start=st.integers(-1000, 1000), end=st.integers(-1000, 1000))
def test_windows_are_valid_exactly_when_they_do_not_end_before_they_start(
    start: int, end: int
) -> None:
    rule = {
        "name": "r",
        "criteria": [
            {
                "events": {"domain": "condition", "concept_set": "t2dm"},
                "window": {"start": start, "end": end},
            }
        ],
    }
    data = with_("inclusion_rules", [rule])
    if end >= start:
        assert parse(data).inclusion_rules[0].criteria[0].window.end == end  # type: ignore[union-attr]
    else:
        assert problems(data)[0].startswith("inclusion_rules[0].criteria[0].window: the window")


def test_distinct_counts_events_not_the_criteria_of_a_match() -> None:
    rule = {
        "name": "r",
        "match": {"at_least": 1, "distinct": "visit"},
        "criteria": [{"age": {"min": 1}}],
    }
    assert problems(with_("inclusion_rules", [rule])) == [
        "inclusion_rules[0].match: distinct counts events; a match counts criteria that hold"
    ]


def test_a_match_count_no_group_can_reach_is_refused() -> None:
    rule = {"name": "r", "match": {"at_least": 3}, "criteria": [{"age": {"min": 1}}] * 2}
    assert problems(with_("inclusion_rules", [rule])) == [
        "inclusion_rules[0]: match asks for 3 criteria to hold; the group has 2"
    ]
    rule["match"] = {"at_most": 3}  # at most is always reachable
    parse(with_("inclusion_rules", [rule]))


def test_record_attributes_that_a_domain_lacks_are_refused_with_their_path() -> None:
    death = {"domain": "death", "visit_concept_ids": [9201]}
    era = {"domain": "drug_era", "concept_set": "t2dm", "type_concept_ids": [32817]}
    empty = {"domain": "condition", "concept_set": "t2dm", "type_concept_ids": []}
    assert problems(with_("entry.criteria", [death])) == [
        "entry.criteria[0]: visit_concept_ids: death records carry no visit"
    ]
    assert problems(with_("entry.criteria", [era])) == [
        "entry.criteria[0]: type_concept_ids: drug_era records have no type concept"
    ]
    assert problems(with_("entry.criteria", [empty]))[0].startswith(
        "entry.criteria[0].type_concept_ids:"
    )
    inverted = {"domain": "condition", "concept_set": "t2dm", "date_adjustment": {"x": 1}}
    assert problems(with_("entry.criteria", [inverted]))[0].startswith(
        "entry.criteria[0].date_adjustment.x:"
    )


def test_a_start_date_range_must_be_ordered_and_real_dates() -> None:
    def entry(start_date: Any) -> dict[str, Any]:
        events = {"domain": "condition", "concept_set": "t2dm", "start_date": start_date}
        return with_("entry.criteria", [events])

    assert parse(entry({"min": "2015-01-01"})).entry.criteria[0].start_date is not None
    assert problems(entry({"min": "2016-01-01", "max": "2015-01-01"})) == [
        "entry.criteria[0].start_date: min 2016-01-01 is after max 2015-01-01"
    ]
    assert problems(entry({"min": "2023-02-30"}))[0].startswith("entry.criteria[0].start_date.min:")
    assert problems(entry({}))[0] == "entry.criteria[0].start_date: give min, max or both"
    for wrong in (20150101, "2015-01-01T00:00", "01/02/2015", True):
        found = problems(entry({"min": wrong}))
        assert found[0].startswith("entry.criteria[0].start_date.min:"), (wrong, found)
