"""Hostile input to prediction: task files, model packages; typed errors, nothing written."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmhub.errors import PmhubError
from pmhub.predict import package, task
from pmhub.predict.errors import ModelPackageError, TaskDefinitionError

GOOD = {"name": "t", "target": "atrial_fibrillation", "outcome": "stroke"}


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ([1, 2], "a mapping"),
        ({**GOOD, "name": "1 bad name"}, "name"),
        ({**GOOD, "washout_days": "365"}, "washout_days"),
        ({**GOOD, "washout_days": -1}, "washout_days"),
        ({**GOOD, "washout_days": True}, "washout_days"),
        ({**GOOD, "extra": 1}, "extra"),
        ({**GOOD, "format_version": 2}, "newer"),
        ({**GOOD, "time_at_risk": {"start": 10, "end": 5}}, "end comes before start"),
        ({**GOOD, "index_date": "2020-02-30"}, "index_date"),
        (
            {**GOOD, "index_date": "2020-01-01", "time_at_risk": {"end_anchor": "cohort_end"}},
            "index_date",
        ),
        ({**GOOD, "covariates": {"windows": []}}, "windows"),
        ({**GOOD, "covariates": {"windows": [365, 365]}}, "each look-back window once"),
        ({**GOOD, "covariates": {"windows": [10**9]}}, "windows"),
        ({**GOOD, "model": {"kind": "deep"}}, "model.kind"),
        ({**GOOD, "validation": {"split": "time"}}, "time_cutoff"),
        ({**GOOD, "validation": {"test_share": 1.5}}, "test_share"),
    ],
)
def test_malformed_tasks_are_refused_naming_the_field(data: object, where: str) -> None:
    with pytest.raises(TaskDefinitionError) as caught:
        task.parse(data)
    assert where in caught.value.message
    assert caught.value.exit_code == 4


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "a: [unclosed",
        "- just\n- a list\n",
        "x" * (task.MAX_TASK_BYTES + 1),
        "a: &a [*a]\n",  # a recursive alias
        "name: t\ntarget: x\noutcome: y\nwhen: !!set {a, b}\n",
        "[" * 5000 + "]" * 5000,
    ],
)
def test_unreadable_task_text_is_a_typed_error(text: str) -> None:
    with pytest.raises(TaskDefinitionError):
        task.loads(text)


def test_missing_cohorts_and_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(TaskDefinitionError, match="neither a file nor a library example"):
        task.resolve(task.parse({**GOOD, "target": "no_such_cohort"}))
    with pytest.raises(TaskDefinitionError, match="cannot read prediction task"):
        task.load(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe name")
    with pytest.raises(TaskDefinitionError, match="not UTF-8"):
        task.load(tmp_path / "bad.yaml")
    (tmp_path / "cohort.yaml").write_text("format_version: 1\nid: x\n")
    with pytest.raises(TaskDefinitionError, match="target cohort"):
        task.resolve(task.parse({**GOOD, "target": "cohort.yaml"}), tmp_path)
    with pytest.raises(TaskDefinitionError, match="the same cohort"):
        task.resolve(task.parse({**GOOD, "outcome": "atrial_fibrillation"}))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_any_json_document_is_a_task_or_a_typed_error(data: object) -> None:
    with contextlib.suppress(PmhubError):
        task.parse(data)


def test_examples_load() -> None:
    for name in ("af_stroke", "t2dm_stroke", "t2dm_death"):
        loaded = task.load(name)
        assert loaded.name == name
        assert loaded.target.id != loaded.outcome.id


def test_a_package_is_refused_when_absent_altered_or_foreign(tmp_path: Path) -> None:
    with pytest.raises(ModelPackageError):
        package.read(tmp_path / "absent")
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "manifest.json").write_text("not json")
    with pytest.raises(ModelPackageError, match="not JSON"):
        package.read(folder)
    (folder / "manifest.json").write_text(json.dumps({"files": {"model.json": "0"}}))
    with pytest.raises(ModelPackageError, match="does not list"):
        package.read(folder)
