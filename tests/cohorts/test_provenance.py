"""The cohort_definition table records which definition made a cohort's rows; another
definition under the same id is refused unless replacing is asked for."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pmhub.cdm.backends import Backend
from pmhub.cohorts import library, provenance, service
from pmhub.cohorts.definition import Definition, digest, dumps, loads
from pmhub.cohorts.engines import PythonEngine, SqlEngine
from pmhub.cohorts.errors import CohortDefinitionError, CohortIdInUseError

T2DM = library.example("type2_diabetes")


def edited(definition: Definition, **changes: Any) -> Definition:
    data = json.loads(dumps(definition))
    data.update(changes)
    return loads(json.dumps(data))


def shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: shuffled(value[k], rng) for k in keys}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(library.names()), st.integers(min_value=0, max_value=10**6))
def test_the_hash_is_of_the_meaning_not_the_spelling(name: str, seed: int) -> None:
    """Key order, JSON or YAML, defaults written out or left out: one hash."""
    definition = library.example(name)
    data = shuffled(json.loads(dumps(definition)), random.Random(seed))
    as_yaml = loads(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    as_json = loads(json.dumps(data))
    from_file = loads(library.resolve(name).read_text(encoding="utf-8"))
    assert digest(as_yaml) == digest(as_json) == digest(from_file) == digest(definition)


@pytest.mark.parametrize(
    "changes",
    [{"name": "renamed"}, {"era_pad_days": 1}, {"limit": "first"}, {"description": "x"}],
)
def test_any_change_changes_the_hash(changes: dict[str, Any]) -> None:
    assert digest(edited(T2DM, **changes)) != digest(T2DM)


def _recorded(backend: Backend, definition_id: int) -> list[tuple[Any, ...]]:
    return backend.fetchall(
        "SELECT cohort_definition_name, cohort_definition_syntax, definition_type_concept_id, "
        "subject_concept_id, cohort_initiation_date FROM cohort_definition "
        "WHERE cohort_definition_id = ?",
        [definition_id],
    )


def test_a_generation_records_its_definition_beside_its_rows(cdm_backend: Backend) -> None:
    from pmhub.cohorts import benchdata

    benchdata.load(cdm_backend, 600, 4)
    engine = SqlEngine(cdm_backend)
    first = service.generate(T2DM, engine)
    rows = engine.cohort_rows(T2DM.id)
    assert first.rows == len(rows) > 0
    [(name, syntax, type_concept, subject_concept, initiated)] = _recorded(cdm_backend, T2DM.id)
    envelope = json.loads(syntax)
    assert (name, type_concept, subject_concept) == (T2DM.name, 0, 0)
    assert envelope["format"] == "pmhub-cohort"
    assert envelope["format_version"] == 1
    assert envelope["sha256"] == digest(T2DM)
    assert loads(json.dumps(envelope["definition"])) == T2DM  # the definition itself

    # idempotent: the same definition again leaves the same rows and the same record
    service.generate(T2DM, engine)
    assert engine.cohort_rows(T2DM.id) == rows
    assert _recorded(cdm_backend, T2DM.id) == [(name, syntax, 0, 0, initiated)]

    changed = edited(T2DM, era_pad_days=30)
    with pytest.raises(CohortIdInUseError, match="belongs to another definition") as refusal:
        service.generate(changed, engine)
    assert refusal.value.exit_code == 37
    assert "--replace" in refusal.value.hint
    assert engine.cohort_rows(T2DM.id) == rows  # the refusal rolled back nothing it wrote
    assert _recorded(cdm_backend, T2DM.id)[0][1] == syntax

    service.generate(changed, engine, replace=True)
    [(_, syntax_after, *_)] = _recorded(cdm_backend, T2DM.id)
    assert json.loads(syntax_after)["sha256"] == digest(changed)


def test_another_tools_definition_is_not_replaced_silently(cdm_backend: Backend) -> None:
    cdm_backend.execute(
        "INSERT INTO cohort_definition (cohort_definition_id, cohort_definition_name, "
        "definition_type_concept_id, cohort_definition_syntax, subject_concept_id) "
        "VALUES (?, 'ATLAS cohort', 0, '{\"ConceptSets\": []}', 0)",
        [T2DM.id],
    )
    with pytest.raises(CohortIdInUseError, match="'ATLAS cohort', a definition pmhub did not"):
        service.generate(T2DM, SqlEngine(cdm_backend))


def test_the_reference_engine_keeps_the_same_record() -> None:
    engine = PythonEngine({})
    record = provenance.of(T2DM)
    assert provenance.admit(record, *engine.holding(T2DM.id)) is True
    engine.tables["cohort_definition"].append(
        dict(zip(provenance.COLUMNS, record.row(), strict=True))
    )
    assert provenance.admit(record, *engine.holding(T2DM.id)) is False  # same: no rewrite
    with pytest.raises(CohortIdInUseError):
        provenance.admit(provenance.of(edited(T2DM, name="x")), *engine.holding(T2DM.id))
    assert provenance.admit(provenance.of(edited(T2DM, name="x"), replace=True), None, 5)


def test_one_call_cannot_give_two_definitions_one_id() -> None:
    other = edited(library.example("stroke"), id=T2DM.id)
    with pytest.raises(CohortDefinitionError, match="share cohort_definition_id 1001"):
        service.admit([T2DM, other], PythonEngine({}))
    service.admit([T2DM, T2DM], PythonEngine({}))  # the same definition twice is fine
