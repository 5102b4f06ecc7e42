"""Hostile input to the cohort verbs, through the real ``pmhub`` entry point: each case
asserts the exit code, one message with a hint and no traceback, and that nothing else
changed (the CDW's cohort tables and the files around)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pmhub.cohorts import library
from pmhub.cohorts.definition import load
from pmhub.sites import Site
from tests.hostile.cohortkit import (
    CLOSED_PORT_URL,
    example,
    refused,
    register,
    snapshot,
    subprocess_cli,
    succeeds,
    write_definition,
)

DEFINITION_ERROR, UNKNOWN_CONCEPT, ID_IN_USE, PARTIAL, UNREACHABLE = 81, 83, 37, 89, 32


def alias_bomb() -> str:
    """Nine anchors of nine aliases: a few hundred bytes that expand to 9**9 strings."""
    lines = ["format_version: 1", "id: 4101", "name: bomb", 'l0: &l0 ["x","x","x","x","x"]']
    for level in range(1, 10):
        refs = ",".join([f"*l{level - 1}"] * 9)
        lines.append(f"l{level}: &l{level} [{refs}]")
    lines += ["concept_sets: *l9", "entry: {criteria: [{domain: condition, concept_set: a}]}"]
    return "\n".join(lines) + "\n"


# --- documents a parser must survive ----------------------------------------------------


def test_a_yaml_alias_bomb_is_refused_not_expanded(tmp_path: Path) -> None:
    path = write_definition(tmp_path, alias_bomb(), "bomb.yaml")
    # its own process, with a time limit: a hang fails the test instead of stalling it
    result = subprocess_cli("cohort", "validate", str(path))
    assert result.returncode == DEFINITION_ERROR, result.stderr
    assert "aliases expand to more than" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_an_alias_bomb_run_at_a_site_changes_nothing(tmp_path: Path, ward: Site) -> None:
    path = write_definition(tmp_path, alias_bomb(), "bomb.yaml")
    before = snapshot([ward], tmp_path)
    text = refused(DEFINITION_ERROR, "cohort", "run", str(path), "--site", "ward")
    assert "aliases expand" in text
    assert snapshot([ward], tmp_path) == before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[" * 10_000 + "]" * 10_000, "nested more than 40 levels deep"),
        ('{"a":' * 10_000 + "1" + "}" * 10_000, "nested more than 40 levels deep"),
        ("&a [*a]\n", "recursive"),
        ('{"format_version": 1, "id": 1, "id": 2}', "the key 'id' appears twice"),
        ('{"format_version": 1, "id": NaN}', "NaN is not a JSON number"),
        ('{"id": ' + "9" * 5000 + "}", "more than 4,300 digits"),
        ("id: !!python/object/apply:os.system ['echo pwned']\n", "could not determine"),
        ("name: [unclosed\n", "neither valid JSON nor YAML"),
    ],
    ids=["10k-deep-array", "10k-deep-object", "recursive-alias", "duplicate-key", "nan",
         "huge-int", "python-tag", "unclosed"],
)  # fmt: skip
def test_hostile_documents_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = write_definition(tmp_path, text, "hostile.yaml")
    out = refused(DEFINITION_ERROR, "cohort", "validate", str(path))
    assert expected in out
    assert "pwned" not in out


def test_a_200_mb_definition_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:
        handle.write(b'{"format_version": 1, "description": "')
        handle.truncate(200 << 20)  # sparse: 200 MB on paper, nothing on disk
    out = refused(DEFINITION_ERROR, "cohort", "validate", str(path))
    assert "larger than 1 MiB" in out


# --- wrong types in every field ------------------------------------------------------------

ENTRY = {"criteria": [{"domain": "condition", "concept_set": "t2dm"}]}
SETS = [{"id": "t2dm", "items": [{"concept_id": 201826}]}]
BASE: dict[str, Any] = {
    "format_version": 1,
    "id": 4201,
    "name": "t",
    "concept_sets": SETS,
    "entry": ENTRY,
}
EVENTS: dict[str, Any] = {"events": {"domain": "condition", "concept_set": "t2dm"}}
RULE: dict[str, Any] = {"name": "r", "criteria": [EVENTS]}
WRONG: list[tuple[str, dict[str, Any], str]] = [
    ("format_version", {"format_version": "1"}, "format_version"),
    ("id-text", {"id": "4201"}, "id: Input should be a valid integer"),
    ("id-negative", {"id": -1}, "id: Input should be greater than or equal to 1"),
    ("id-overflow", {"id": 2**31}, "id: Input should be less than or equal to 2147483647"),
    ("id-bool", {"id": True}, "id: Input should be a valid integer"),
    ("name-number", {"name": 7}, "name: Input should be a valid string"),
    ("name-empty", {"name": ""}, "name: String should have at least 1 character"),
    ("concept_sets-map", {"concept_sets": {"t2dm": 1}},
     "concept_sets: Input should be a valid list"),
    ("concept_id-text", {"concept_sets": [{"id": "t2dm", "items": [{"concept_id": "201826"}]}]},
     "concept_sets[0].items[0].concept_id"),
    ("descendants-text", {"concept_sets": [{"id": "t2dm", "items": [
        {"concept_id": 201826, "include_descendants": "yes"}]}]},
     "concept_sets[0].items[0].include_descendants"),
    ("criteria-text", {"entry": {"criteria": "t2dm"}},
     "entry.criteria: Input should be a valid list"),
    ("domain-unknown", {"entry": {"criteria": [{"domain": "blood", "concept_set": "t2dm"}]}},
     "entry.criteria[0].domain"),
    ("prior_days-negative", {"entry": {**ENTRY, "observation": {"prior_days": -1}}},
     "entry.observation.prior_days"),
    ("limit-unknown", {"limit": "some"}, "limit: Input should be 'first' or 'all'"),
    ("rules-map", {"inclusion_rules": {"r": 1}}, "inclusion_rules: Input should be a valid list"),
    ("exit-unknown", {"exit": {"type": "never"}}, "exit"),
    ("era_pad-float", {"era_pad_days": 1.5}, "era_pad_days: Input should be a valid integer"),
    ("value-nan", {"entry": {"criteria": [{"domain": "measurement", "concept_set": "t2dm",
                                            "value": {"min": float("nan")}}]}},
     "entry.criteria[0].value.min"),
    ("date-impossible", {"entry": {"criteria": [{"domain": "condition", "concept_set": "t2dm",
                                                  "start_date": {"min": "2020-13-01"}}]}},
     "entry.criteria[0].start_date.min"),
    ("window-huge",
     {"inclusion_rules": [{**RULE, "criteria": [{**EVENTS, "window": {"start": 10**9}}]}]},
     "inclusion_rules[0].criteria[0].window.start"),
    ("count-text",
     {"inclusion_rules": [{**RULE, "criteria": [{**EVENTS, "count": {"at_least": "2"}}]}]},
     "inclusion_rules[0].criteria[0].count.at_least"),
    ("unknown-field", {"cohort_name": "x"}, "cohort_name: Extra inputs are not permitted"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "expected"), [w[1:] for w in WRONG], ids=[w[0] for w in WRONG])
def test_wrong_types_name_their_field(
    tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    # as YAML, which carries NaN (.nan) where JSON cannot
    path = write_definition(tmp_path, yaml.safe_dump({**BASE, **changes}), "wrong.yaml")
    out = refused(DEFINITION_ERROR, "cohort", "validate", str(path))
    assert expected in out


# --- definitions meeting a CDW ---------------------------------------------------------------


def test_unknown_concept_ids_are_refused_at_the_site(tmp_path: Path, ward: Site) -> None:
    sets = [{"id": "t2dm", "items": [{"concept_id": 2_000_000_001}]}]
    path = write_definition(tmp_path, {**BASE, "id": 4301, "concept_sets": sets})
    before = snapshot([ward], tmp_path)
    out = refused(UNKNOWN_CONCEPT, "cohort", "run", str(path), "--site", "ward")
    assert "unknown concept id 2000000001" in out
    assert snapshot([ward], tmp_path) == before


def test_an_edited_definition_under_the_same_id_is_refused(tmp_path: Path, ward: Site) -> None:
    first = write_definition(tmp_path, example(id=4401), "first.json")
    edited_data = example(id=4401, name="Type 2 diabetes, edited")
    edited_data["entry"]["observation"]["prior_days"] = 30
    edited = write_definition(tmp_path, edited_data, "edited.json")
    succeeds("cohort", "run", str(first), "--site", "ward")
    made = snapshot([ward], tmp_path)
    assert [r for r in made["tables"]["ward"]["cohort"] if r[0] == 4401], "the cohort has rows"

    out = refused(ID_IN_USE, "cohort", "run", str(edited), "--site", "ward")
    assert "cohort_definition_id 4401 belongs to another definition" in out
    assert "'Type 2 diabetes mellitus'" in out
    assert "--replace" in out
    assert snapshot([ward], tmp_path) == made

    # the same definition again, as the library's YAML (defaults left out): the same rows
    yaml_text = library.resolve("type2_diabetes").read_text(encoding="utf-8")
    again = write_definition(tmp_path, yaml_text.replace("id: 1001", "id: 4401"), "again.yaml")
    succeeds("cohort", "run", str(again), "--site", "ward")
    assert snapshot([ward], tmp_path)["tables"] == made["tables"]

    succeeds("cohort", "run", str(edited), "--site", "ward", "--replace")
    replaced = snapshot([ward])["tables"]["ward"]
    record = [r for r in replaced["cohort_definition"] if r[0] == 4401]
    assert [r[1] for r in record] == ["Type 2 diabetes, edited"]
    envelope = json.loads(record[0][4])
    assert envelope["definition"]["entry"]["observation"]["prior_days"] == 30


def test_rows_no_recorded_definition_made_are_not_replaced(tmp_path: Path, ward: Site) -> None:
    with ward.connect() as backend:
        backend.execute("DELETE FROM cohort WHERE cohort_definition_id = 4501")
        backend.execute("INSERT INTO cohort VALUES (4501, 1, DATE '2020-01-01', DATE '2020-02-01')")
    path = write_definition(tmp_path, example(id=4501))
    before = snapshot([ward], tmp_path)
    out = refused(ID_IN_USE, "cohort", "run", str(path), "--site", "ward")
    assert "holds 1 rows that no recorded definition made" in out
    assert snapshot([ward], tmp_path) == before


def test_a_target_and_outcome_sharing_an_id_are_refused(tmp_path: Path, ward: Site) -> None:
    target = write_definition(tmp_path, example("atrial_fibrillation", id=4601), "t.json")
    outcome = write_definition(tmp_path, example("stroke", id=4601), "o.json")
    before = snapshot([ward], tmp_path)
    out = refused(DEFINITION_ERROR, "cohort", "incidence", str(target), str(outcome), "-s", "ward")
    assert "share cohort_definition_id 4601" in out
    assert snapshot([ward], tmp_path) == before


# --- the network with sites that do not answer ---------------------------------------------


@pytest.fixture
def network(duckdb_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> list[Site]:
    """Two sites that answer (DuckDB, and PostgreSQL when there is a server) and two that
    do not: a PostgreSQL URL to a closed port and a DuckDB file that is gone."""
    sites = [register("ward", duckdb_url)]
    # without a PostgreSQL server, the network has one site that answers
    with contextlib.suppress(pytest.skip.Exception):
        sites.append(register("clinic", request.getfixturevalue("postgresql_url")))
    register("closed", CLOSED_PORT_URL)
    register("gone", f"duckdb:///{(tmp_path / 'gone' / 'gone.duckdb').resolve()}")
    return sites


def test_run_across_a_network_with_unreachable_sites_is_partial(
    tmp_path: Path, network: list[Site]
) -> None:
    path = write_definition(tmp_path, example(id=4701))
    out = refused(PARTIAL, "cohort", "run", str(path), "--all-sites")
    answered = ", ".join(sorted(s.name for s in network))
    assert f"cohort 4701 at {answered}:" in out
    assert "not reached: closed (cannot connect to PostgreSQL" in out
    assert "not reached: gone (site 'gone': its CDW" in out
    assert "2 of " in out
    assert "sites did not answer" in out
    assert not (tmp_path / "gone").exists()  # a gone DuckDB is not made anew
    for site in network:  # the sites that answered have the cohort
        assert any(r[0] == 4701 for r in snapshot([site])["tables"][site.name]["cohort"])


def test_incidence_and_survival_across_a_partial_network_write_their_files(
    tmp_path: Path, network: list[Site]
) -> None:
    target = write_definition(tmp_path, example("atrial_fibrillation", id=4801), "af.json")
    outcome = write_definition(tmp_path, example("stroke", id=4802), "stroke.json")
    html, plot = tmp_path / "incidence.html", tmp_path / "km.svg"
    out = refused(
        PARTIAL,
        "cohort",
        "incidence",
        str(target),
        str(outcome),
        "--all-sites",
        "--html",
        str(html),
    )
    assert f"report written to {html}" in out
    page = html.read_text(encoding="utf-8")
    assert "Stroke after Atrial fibrillation: all sites" in page
    assert "not reached: closed, gone" in page
    out = refused(
        PARTIAL, "cohort", "survival", str(target), str(outcome), "--all-sites",
        "--plot", str(plot), "--html", str(tmp_path / "survival.html"),
    )  # fmt: skip
    assert f"plot written to {plot}" in out
    assert plot.read_text(encoding="utf-8").lstrip().startswith(("<?xml", "<svg"))
    survival_page = (tmp_path / "survival.html").read_text(encoding="utf-8")
    assert "Pooled survival (life table)" in survival_page


def test_a_network_where_no_site_answers_keeps_the_cause(tmp_path: Path) -> None:
    register("closed", CLOSED_PORT_URL)
    register("shut", CLOSED_PORT_URL.replace(":1/", ":2/"))
    out = refused(UNREACHABLE, "cohort", "run", "type2_diabetes", "--all-sites")
    assert "no site answered: closed (cannot connect" in out
    assert "shut (cannot connect" in out


def test_all_sites_html_reports_the_network(tmp_path: Path, duckdb_url: str) -> None:
    register("ward", duckdb_url)
    path = write_definition(tmp_path, example(id=4901))
    html = tmp_path / "attrition.html"
    out = succeeds("cohort", "run", str(path), "--all-sites", "--html", str(html))
    assert f"report written to {html}" in out
    page = html.read_text(encoding="utf-8")
    assert "Site: the network (ward)" in page
    assert "<h2>Attrition</h2>" in page


def test_library_definitions_still_load(tmp_path: Path) -> None:
    """The limits leave real definitions alone: every example round-trips as a file."""
    for name in ("type2_diabetes", "atrial_fibrillation", "stroke"):
        path = write_definition(tmp_path, example(name), f"{name}.json")
        assert load(path).name
