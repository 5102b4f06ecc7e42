"""Fixtures of the quality tests: hand-built CDWs (clean, and with the planted defects), built
once per session and xdist worker, never written to by the tests that read them, and
registered as a site in each test's own home."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmhub.cdm import schema
from pmhub.cdm.backends.duckdb import DuckDBBackend
from pmhub.settings import load_settings
from pmhub.sites import Site, SiteRegistry
from tests.quality import cdw


def build_duckdb(path: Path, rows: cdw.Rows) -> Path:
    with DuckDBBackend(path) as backend:
        schema.init_cdm(backend, source_name="Test", abbreviation="test", holder="pmhub")
        cdw.load(backend, rows)
    return path


@pytest.fixture(scope="session")
def defects_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_duckdb(tmp_path_factory.mktemp("cdw") / "defects.duckdb", cdw.with_defects())


@pytest.fixture(scope="session")
def clean_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_duckdb(tmp_path_factory.mktemp("cdw") / "clean.duckdb", cdw.clean_rows())


def register(name: str, path: Path, title_en: str = "", title_ko: str = "") -> Site:
    registry = SiteRegistry(load_settings())
    return registry.add(name, f"duckdb:///{path.resolve()}", title_en=title_en, title_ko=title_ko)


@pytest.fixture
def defects_site(defects_file: Path) -> Site:
    return register("defects", defects_file, "Defects Hospital", "결함병원")


@pytest.fixture
def clean_site(clean_file: Path) -> Site:
    return register("clean", clean_file, "Clean Hospital", "청정병원")
