"""The site registry, and CDW URLs that cannot be used."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmhub.cdm.backends import connect, duckdb_path
from pmhub.errors import (
    CdwError,
    CdwUnreachableError,
    InvalidSiteNameError,
    SettingsError,
    UnknownSiteError,
)
from pmhub.settings import load_settings
from pmhub.sites import NAME, SiteRegistry
from tests.conftest import postgres_url


def registry() -> SiteRegistry:
    return SiteRegistry(load_settings())


def test_registry_survives_reopening_and_keeps_korean_titles():
    registry().add("wonju", title_ko="원주세브란스", title_en="Wonju")
    site = registry().get("wonju")
    assert (site.title_ko, site.cdw_url.startswith("duckdb:////")) == ("원주세브란스", True)


def test_corrupt_registry_is_a_clear_error_and_is_not_overwritten(pmhub_home: Path):
    registry().add("wonju")
    path = pmhub_home / "sites.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(SettingsError, match="unreadable"):
        registry().add("other")
    assert path.read_text(encoding="utf-8") == "{not json"


def test_registry_file_is_valid_json_after_every_write(pmhub_home: Path):
    for name in ("a", "b", "c"):
        registry().add(name)
    registry().remove("b")
    assert sorted(json.loads((pmhub_home / "sites.json").read_text())["sites"]) == ["a", "c"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_only_safe_site_names_are_accepted(name: str):
    if NAME.fullmatch(name):
        assert name.isascii()
        assert name[0].isalpha()
        return
    with pytest.raises(InvalidSiteNameError):
        SiteRegistry.__new__(SiteRegistry).add(name)  # refused before touching any file


def test_unknown_site_lists_the_known_ones():
    registry().add("wonju")
    with pytest.raises(UnknownSiteError, match="registered: wonju"):
        registry().get("gangneung")


def test_duckdb_urls_follow_sqlalchemys_convention():
    assert duckdb_path("duckdb:///rel/site.duckdb") == Path("rel/site.duckdb")
    assert duckdb_path("duckdb:////abs/site.duckdb") == Path("/abs/site.duckdb")


def test_duckdb_cdw_under_a_file_is_a_clear_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CdwError, match="cannot create the directory"):
        connect(f"duckdb:///{blocker}/cdw/site.duckdb")


def test_duckdb_cdw_that_is_not_a_database_is_a_clear_error(tmp_path: Path):
    bogus = tmp_path / "site.duckdb"
    bogus.write_bytes(b"this is not a duckdb file" * 100)
    with pytest.raises(CdwUnreachableError, match="cannot open DuckDB CDW"):
        connect(f"duckdb:///{bogus}")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_duckdb_cdw_in_a_read_only_directory(tmp_path: Path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    with pytest.raises(CdwError):
        connect(f"duckdb:///{folder}/site.duckdb")


def test_unreachable_postgres_is_a_clear_error_without_the_password():
    with pytest.raises(CdwUnreachableError) as caught:
        connect("postgresql://postgres:s3cret@127.0.0.1:1/postgres")
    assert "cannot connect to PostgreSQL" in caught.value.message
    assert "s3cret" not in caught.value.message


def test_postgres_unknown_role_or_database_is_a_clear_error():
    url = postgres_url()
    base = url.rsplit("/", 1)[0]
    with pytest.raises(CdwUnreachableError, match="no_such_database_pmhub"):
        connect(f"{base}/no_such_database_pmhub")
    host = url.split("@", 1)[1]
    with pytest.raises(CdwUnreachableError, match="no_such_role"):
        connect(f"postgresql://no_such_role:wrong@{host}")


def test_postgres_site_gets_its_own_schema(pg_schema: tuple[str, str]):
    url, schema = pg_schema
    with connect(f"{url}?schema={schema}") as backend:
        backend.execute("CREATE TABLE t (x integer)")
        assert backend.tables() == {"t"}
