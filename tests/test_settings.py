"""Settings come from PMHUB_* variables and pmhub.toml, and bad values are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmhub.errors import HomeNotWritableError, SettingsError
from pmhub.settings import load_settings


def test_defaults_then_toml_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PMHUB_HOME")
    assert load_settings().home == Path(".pmhub")
    config = tmp_path / "pmhub.toml"
    config.write_text('home = "/srv/pmhub"\nsmall_cell_threshold = 5\n', encoding="utf-8")
    assert (load_settings().home, load_settings().small_cell_threshold) == (Path("/srv/pmhub"), 5)
    monkeypatch.setenv("PMHUB_SMALL_CELL_THRESHOLD", "11")
    assert load_settings().small_cell_threshold == 11


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("small_cell_threshold = 0\n", "small_cell_threshold"),
        ('small_cell_threshold = "ten"\n', "small_cell_threshold"),
        ("unknown_setting = 1\n", "unknown_setting"),
        ("home = [\n", "pmhub.toml"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, toml: str, message: str):
    (tmp_path / "pmhub.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(SettingsError, match=message):
        load_settings()


def test_bad_environment_value_is_named(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PMHUB_SMALL_CELL_THRESHOLD", "-3")
    with pytest.raises(SettingsError, match="small_cell_threshold"):
        load_settings()


def test_home_under_a_file_is_not_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("PMHUB_HOME", str(blocker / "home"))
    with pytest.raises(HomeNotWritableError, match="cannot create platform home"):
        load_settings().home_dir()
