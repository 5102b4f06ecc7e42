"""The check file: the shipped one expands over the spec; malformed, hostile or unknown
entries are refused before any query runs."""

from __future__ import annotations

import csv
import datetime as dt
from importlib import resources
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pmhub.cdm import spec
from pmhub.quality import definitions
from pmhub.quality.checks import expand
from pmhub.quality.errors import CheckFileError, UnknownCheckTypeError

AS_OF = dt.date(2026, 1, 1)


def _write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "checks.yaml"
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc, encoding="utf-8")
    return path


def _entry(**changes: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "type": "is_required",
        "category": "completeness",
        "subcategory": "verification",
        "description": "{table}.{field} is NULL",
        "threshold": 0,
    }
    entry.update(changes)
    return entry


def test_shipped_checks_derive_from_the_spec():
    checks = expand(definitions.load(), AS_OF)
    ids = [c.id for c in checks]
    assert len(ids) == len(set(ids))
    by_type: dict[str, set[str]] = {}
    for c in checks:
        by_type.setdefault(c.type, set()).add(f"{c.table}.{c.field}")
    cdm = [t for t in spec.tables().values() if t.schema == "CDM"]
    required = {f"{t.name}.{f.name}" for t in cdm for f in t.fields if f.required}
    assert by_type["is_required"] == required
    foreign = {f"{t.name}.{f.name}" for t in cdm for f in t.fields if f.fk_table}
    foreign -= {f"fact_relationship.{f.name}" for f in spec.table("fact_relationship").fields}
    assert by_type["is_foreign_key"] == foreign
    domains = {f"{t.name}.{f.name}" for t in cdm for f in t.fields if f.fk_domain}
    assert by_type["fk_domain"] == domains
    assert "standard_valid_concept" in by_type
    assert "person.gender_source_concept_id" not in by_type["standard_valid_concept"]
    assert "visit_occurrence.visit_start_date" in by_type["start_before_end"]
    assert "procedure_occurrence.procedure_date" in by_type["start_before_end"]
    assert {c.category for c in checks} == set(definitions.CATEGORIES)


def test_thresholds_come_from_overrides_then_the_entry():
    checks = {c.id: c for c in expand(definitions.load(), AS_OF)}
    assert checks["standard_concept_missing/person.gender_concept_id"].threshold == 0
    assert (
        checks["standard_concept_missing/condition_occurrence.condition_concept_id"].threshold == 5
    )


def _vocabulary_concepts() -> dict[int, tuple[str, str]]:
    found: dict[int, tuple[str, str]] = {}
    folder = resources.files("pmhub.cdm").joinpath("data", "vocabulary")
    for name in ("CONCEPT.csv", "EXTRA_CONCEPTS.csv"):
        rows = csv.DictReader(folder.joinpath(name).read_text(encoding="utf-8").splitlines())
        for row in rows:
            found[int(row["concept_id"])] = (row["domain_id"], row["standard_concept"])
    return found


def test_plausible_ranges_and_sex_specific_concepts_name_real_concepts():
    concepts = _vocabulary_concepts()
    defs = definitions.load()
    for r in defs.ranges["plausible_ranges.csv"]:
        assert concepts[r.concept_id][0] == "Measurement", r
        assert concepts[r.unit_concept_id][0] == "Unit", r
        assert r.low < r.high
    for g in defs.gender_concepts["gender_specific_concepts.csv"]:
        assert concepts[g.concept_id] == (g.domain_id, "S"), g


def test_unknown_check_type_is_refused(tmp_path: Path):
    doc = {"version": 1, "checks": [_entry(), _entry(type="isPlausibleHoroscope")]}
    with pytest.raises(UnknownCheckTypeError, match="entry 2: unknown check type 'isPlausible"):
        definitions.load(_write(tmp_path, doc))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_entry(threshold=101), "threshold"),
        (_entry(threshold="lots"), "threshold"),
        (_entry(category="vibes"), "category"),
        (_entry(description="{table}; DROP TABLE person; {__class__}"), "placeholder"),
        (_entry(exclude=["person; DROP TABLE person"]), "names no table"),
        (_entry(exclude=["concept"]), "names no table"),
        (_entry(overrides={"person.no_such_field": 1}), "has no field"),
        (_entry(overrides={"person": 250}), "outside 0-100"),
        (_entry(params={"low": "1900-01-01"}), "unexpected params"),
        (_entry(surprise=1), "surprise"),
        (_entry(type="date_range", category="conformance"), "missing params"),
        (_entry(type="before_death", params={"grace_days": -5}), "grace_days"),
        (_entry(type="field_range", params={"ranges": {"person.x": [1, 2]}}), "no CDM field"),
        (
            _entry(type="field_range", params={"ranges": {"person.year_of_birth": [9, 1]}}),
            "above high",
        ),
        (
            _entry(type="field_range", params={"ranges": {"person.gender_source_value": [1, 2]}}),
            "not numeric",
        ),
        (_entry(type="measurement_unit", params={"ranges": "../../etc/passwd"}), "plain .csv"),
        (_entry(type="plausible_gender", params={"concepts": "nowhere.csv"}), "neither next"),
    ],
)
def test_malformed_entries_are_refused(tmp_path: Path, entry: dict[str, object], message: str):
    with pytest.raises(CheckFileError, match=message):
        definitions.load(_write(tmp_path, {"version": 1, "checks": [entry]}))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must be a mapping"),
        ("[1, 2, 3]", "must be a mapping"),
        ("version: 1\nchecks: [", "not valid YAML"),
        ("version: 2\nchecks: []", "version"),
        ("version: 1\nchecks: []", "checks"),
        ("version: 1\nchecks: {a: 1}", "checks"),
        ("version: 1\nchecks: [!!python/object:os.system {}]", "not valid YAML"),
    ],
)
def test_malformed_files_are_refused(tmp_path: Path, text: str, message: str):
    with pytest.raises(CheckFileError, match=message):
        definitions.load(_write(tmp_path, text))


def test_oversized_binary_and_missing_files_are_refused(tmp_path: Path):
    big = tmp_path / "big.yaml"
    big.write_text("#" * (definitions.MAX_FILE_BYTES + 1))
    with pytest.raises(CheckFileError, match="larger than 1 MiB"):
        definitions.load(big)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CheckFileError, match="not valid YAML"):
        definitions.load(binary)
    with pytest.raises(CheckFileError, match="cannot read"):
        definitions.load(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        ("a,b\n1,2\n", "must have the columns"),
        (
            "concept_id,concept_name,unit_concept_id,unit_name,low,high\nx,y,1,u,0,1\n",
            "line 2",
        ),
        (
            "concept_id,concept_name,unit_concept_id,unit_name,low,high\n1,y,1,u,5,1\n",
            "at most high",
        ),
        (
            "concept_id,concept_name,unit_concept_id,unit_name,low,high\n1,y,1,u,nan,1\n",
            "at most high",
        ),
        (
            "concept_id,concept_name,unit_concept_id,unit_name,low,high\n"
            "1,y,1,u,0,1\n1,y,1,u,0,2\n",
            "repeats",
        ),
    ],
)
def test_a_bad_ranges_file_is_refused(tmp_path: Path, csv_text: str, message: str):
    (tmp_path / "mine.csv").write_text(csv_text, encoding="utf-8")
    entry = _entry(type="measurement_unit", category="plausibility", params={"ranges": "mine.csv"})
    with pytest.raises(CheckFileError, match=message):
        definitions.load(_write(tmp_path, {"version": 1, "checks": [entry]}))


def test_a_bad_gender_file_is_refused(tmp_path: Path):
    (tmp_path / "g.csv").write_text(
        "concept_id,concept_name,domain_id,plausible_gender\n1,x,Condition,OTHER\n"
    )
    entry = _entry(type="plausible_gender", category="plausibility", params={"concepts": "g.csv"})
    with pytest.raises(CheckFileError, match="MALE or FEMALE"):
        definitions.load(_write(tmp_path, {"version": 1, "checks": [entry]}))


def test_a_custom_file_with_its_own_ranges_runs_only_its_checks(tmp_path: Path):
    (tmp_path / "mine.csv").write_text(
        "concept_id,concept_name,unit_concept_id,unit_name,low,high\n3004249,SBP,8876,mmHg,50,250\n"
    )
    entry = _entry(
        type="measurement_value_range",
        category="plausibility",
        description="{concept} in {unit} outside {low}-{high}",
        params={"ranges": "mine.csv"},
    )
    checks = expand(definitions.load(_write(tmp_path, {"version": 1, "checks": [entry]})), AS_OF)
    assert [(c.id, c.description) for c in checks] == [
        (
            "measurement_value_range/measurement.value_as_number/3004249/8876",
            "SBP in mmHg outside 50-250",
        )
    ]


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_any_type_name_other_than_a_known_one_is_refused(name: str):
    import tempfile

    if name in definitions.KNOWN_TYPES:
        return
    with tempfile.TemporaryDirectory() as tmp, pytest.raises(CheckFileError):
        definitions.load(_write(Path(tmp), {"version": 1, "checks": [_entry(type=name)]}))


def test_a_yaml_alias_bomb_is_refused(tmp_path: Path):
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        levels.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    text = "\n".join(levels) + "\nversion: 1\nchecks: [*a8]\n"
    with pytest.raises(CheckFileError):
        definitions.load(_write(tmp_path, text))
    entry_bomb = "\n".join(levels) + (
        "\nversion: 1\nchecks:\n- {type: is_required, category: completeness, subcategory: x,"
        " description: x, threshold: 0, exclude: *a8}\n"
    )
    with pytest.raises(CheckFileError):
        definitions.load(_write(tmp_path, entry_bomb))
