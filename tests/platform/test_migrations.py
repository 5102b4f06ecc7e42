"""Migrations: a fresh state and an old one both reach head, and a second run is a no-op."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from pmhub.platform import db
from pmhub.platform.errors import StateError
from pmhub.platform.models import Base
from tests.platform.backends import PostgresState, SqliteState

FIRST = "0001"
AT = "'2026-01-01 00:00:00'"
H0, H1 = "0" * 64, "1" * 64
ONE_ROW_EACH = (
    f"INSERT INTO audit_entries VALUES (1, {AT}, 'a', 'x', 't', 'allowed', '{{}}', '{H0}', '{H1}')",
    f"INSERT INTO audit_checkpoints VALUES (1, '{H1}', {AT}, 'k', 's')",
    f"INSERT INTO users (id, username, display_name, created_at) VALUES (1, 'u', 'U', {AT})",
    f"INSERT INTO projects VALUES ('p', 'P', NULL, 'u', {AT})",
    f"INSERT INTO applications VALUES (1, 'p', 1, 'draft', 1, {AT}, {AT})",
    f"INSERT INTO application_events VALUES (1, 1, 1, 'created', 'u', {AT}, NULL, '{{}}')",
)


class MigrationSuite:
    def test_an_empty_database_reaches_head_and_a_second_run_is_a_no_op(self, url):
        first = db.migrate(url)
        again = db.migrate(url)
        assert (first.before, first.after, first.changed) == (None, db.head_revision(), True)
        assert (again.before, again.after, again.changed) == (first.after, first.after, False)
        engine = db.create_state_engine(url)
        tables = set(inspect(engine).get_table_names())
        engine.dispose()
        assert set(Base.metadata.tables) <= tables

    def test_a_database_at_the_first_revision_is_upgraded_in_place(self, url):
        assert db.migrate(url, to=FIRST).after == FIRST
        engine = db.create_state_engine(url)
        with engine.begin() as con:
            con.execute(
                text(
                    "INSERT INTO users (username, display_name, created_at)"
                    " VALUES ('alice', 'Alice', '2026-01-01 00:00:00')"
                )
            )
        assert "projects" not in inspect(engine).get_table_names()
        upgraded = db.migrate(url)
        with engine.connect() as con:
            users = con.execute(text("SELECT username FROM users")).scalars().all()
        tables = inspect(engine).get_table_names()
        engine.dispose()
        assert (upgraded.before, upgraded.after) == (FIRST, db.head_revision())
        assert (users, "projects" in tables) == (["alice"], True)

    def test_the_migrations_create_exactly_the_models(self, url):
        db.migrate(url)
        engine = db.create_state_engine(url)
        with engine.connect() as con:
            diff = compare_metadata(MigrationContext.configure(con), Base.metadata)
        engine.dispose()
        assert diff == []

    def test_a_state_newer_than_this_pmhub_is_refused_untouched(self, url):
        db.migrate(url)
        engine = db.create_state_engine(url)
        with engine.begin() as con:
            con.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(StateError, match="newer"):
            db.migrate(url)
        with engine.connect() as con:
            version = con.execute(text("SELECT version_num FROM alembic_version")).scalar()
        engine.dispose()
        assert version == "9999"

    @pytest.mark.parametrize("table", ["audit_entries", "audit_checkpoints", "application_events"])
    def test_history_tables_refuse_updates_and_deletes(self, url, table):
        db.migrate(url)
        engine = db.create_state_engine(url)
        with engine.begin() as con:
            for statement in ONE_ROW_EACH:
                con.execute(text(statement))
        for statement in (f"UPDATE {table} SET seq = seq + 1", f"DELETE FROM {table}"):
            with pytest.raises(Exception, match="append-only"), engine.begin() as con:
                con.execute(text(statement))
        engine.dispose()


class TestMigrationsSqlite(MigrationSuite, SqliteState):
    pass


class TestMigrationsPostgres(MigrationSuite, PostgresState):
    pass


@pytest.mark.parametrize(
    "url",
    ["", "mysql://x@y/z", "sqlite://", "sqlite:///:memory:", "not a url", 42, None],
)
def test_unusable_urls_are_refused(url):
    with pytest.raises(StateError):
        db.normalise_url(url)


def test_an_unreachable_server_is_a_state_error():
    with pytest.raises(StateError, match="failed"):
        db.migrate("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")


def test_the_default_state_is_a_file_in_the_home(pmhub_home):
    from pmhub.settings import load_settings

    url = db.default_url(load_settings())
    assert url == f"sqlite:///{(pmhub_home / 'platform.db').resolve()}"
    assert db.default_url(load_settings(platform_url="postgresql://h/d")) == "postgresql://h/d"


def test_the_platform_url_setting_comes_from_the_environment(monkeypatch):
    from pmhub.settings import load_settings

    monkeypatch.setenv("PMHUB_PLATFORM_URL", "postgresql://x@h/d")
    assert load_settings().platform_url == "postgresql://x@h/d"


def test_sqlite_state_outside_a_transaction_is_not_shared_memory(tmp_path):
    # A plain engine (no pmhub events) sees what the platform engine wrote: one file.
    url = f"sqlite:///{tmp_path / 's.db'}"
    db.migrate(url)
    plain = create_engine(url)
    with plain.connect() as con:
        assert con.execute(text("SELECT version_num FROM alembic_version")).scalar()
    plain.dispose()
