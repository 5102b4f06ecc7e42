"""Bad input gets a clear error, and nothing is lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmhub.synth import config
from pmhub.synth.errors import (
    InvalidSynthArgumentError,
    OutputNotEmptyError,
    OutputNotWritableError,
    SizeLimitError,
    SynthError,
    UnknownFormatError,
)
from pmhub.synth.service import generate


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("patients", 0),
        ("patients", -5),
        ("sites", 0),
        ("years", -1),
        ("seed", -1),
        ("patients", 1.5),
        ("patients", "10"),
        ("patients", None),
        ("years", True),
        ("seed", 2**64),
        ("end_year", 1900),
    ],
)
def test_bad_counts_are_refused(tmp_path: Path, field: str, value: Any) -> None:
    with pytest.raises(InvalidSynthArgumentError):
        generate(tmp_path / "out", **{field: value})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", ["csv", "OMOP", "", None, 3, "fhir-json"])
def test_unknown_formats_are_refused(tmp_path: Path, fmt: Any) -> None:
    with pytest.raises(UnknownFormatError, match="known formats"):
        generate(tmp_path / "out", fmt=fmt, patients=10, years=1)


def test_absurd_sizes_need_force(tmp_path: Path) -> None:
    with pytest.raises(SizeLimitError, match="--force"):
        generate(tmp_path / "a", patients=config.SOFT_MAX_PATIENTS + 1, years=1)
    with pytest.raises(SizeLimitError):
        generate(tmp_path / "b", patients=100_000, years=25)  # 2.5 M person-years
    with pytest.raises(SizeLimitError, match="even with --force"):
        generate(tmp_path / "c", patients=config.HARD_MAX_PATIENTS + 1, years=1, force=True)
    with pytest.raises(SizeLimitError, match="sites"):
        generate(tmp_path / "d", sites=13, patients=10, years=1)
    assert not any(tmp_path.iterdir())


def test_force_lifts_the_soft_limit() -> None:
    made = config.make_config(
        patients=config.SOFT_MAX_PATIENTS + 1, years=1, force=True, max_sites=12
    )
    assert made.patients == config.SOFT_MAX_PATIENTS + 1


def test_a_non_empty_folder_is_kept_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    keep = out / "precious.txt"
    keep.write_text("mine")
    with pytest.raises(OutputNotEmptyError) as caught:
        generate(out, patients=20, years=1, workers=1)
    assert "--overwrite" in caught.value.hint
    assert keep.read_text() == "mine"
    generate(out, patients=20, years=1, workers=1, overwrite=True)
    assert not keep.exists()
    assert (out / "manifest.json").is_file()


def test_a_file_as_output_folder_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(OutputNotWritableError):
        generate(target, patients=5, years=1)


def test_a_failed_run_leaves_the_old_output_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    generate(out, patients=20, years=1, workers=1)
    before = sorted(p.name for p in out.rglob("*"))

    def broken(self: Any, index: int) -> dict[str, bytes]:
        raise RuntimeError("disk on fire")

    from pmhub.synth.omop import OmopFormat

    monkeypatch.setattr(OmopFormat, "render", broken)
    with pytest.raises(RuntimeError):
        generate(out, patients=20, years=1, workers=1, overwrite=True)
    assert sorted(p.name for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2", True])
def test_bad_worker_counts_are_refused(tmp_path: Path, workers: Any) -> None:
    with pytest.raises(InvalidSynthArgumentError):
        generate(tmp_path / "out", patients=5, years=1, workers=workers)


def test_every_error_has_a_unique_exit_code_in_the_synth_range() -> None:
    classes: list[type[SynthError]] = [SynthError, *SynthError.__subclasses__()]
    codes = [c.exit_code for c in classes]
    assert len(codes) == len(set(codes))
    assert all(90 <= c <= 99 for c in codes)
    assert all(c.hint for c in classes)


def test_the_filesystem_root_is_never_overwritten() -> None:
    with pytest.raises(OutputNotWritableError):
        generate(Path("/"), patients=5, years=1, overwrite=True)


@settings(max_examples=40, deadline=None)
@given(
    field=st.sampled_from(["sites", "patients", "years"]),
    value=st.one_of(
        st.integers(max_value=0), st.floats(allow_nan=True), st.text(max_size=5), st.none()
    ),
)
def test_any_non_positive_or_non_integer_count_is_refused(field: str, value: Any) -> None:
    with pytest.raises(InvalidSynthArgumentError):
        config.make_config(**{field: value}, max_sites=12)


@pytest.mark.parametrize("fmt", ["omop", "synthea-csv", "fhir"])
def test_the_smallest_network_is_generated(tmp_path: Path, fmt: str) -> None:
    """One person for one year: most sites see nobody, some years have no visit at all."""
    result = generate(tmp_path / "net", fmt=fmt, sites=3, patients=1, years=1, seed=1, workers=1)
    assert (result.folder / "manifest.json").is_file()
    assert result.rows["ground_truth/patients.csv"] == 1
