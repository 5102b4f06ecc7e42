"""The two state backends as mixins: a suite class inherits one to run on it (as Flower
runs one LinkState test class on its in-memory and SQLite states)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from pmhub.platform.core import Platform, open_platform
from pmhub.platform.models import Base
from pmhub.platform.passwords import Passwords
from pmhub.platform.roles import Principal, operator
from pmhub.settings import load_settings

START = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


class FakeClock:
    """A clock the test moves by hand (lockout windows, token expiry); each reading is a
    millisecond after the one before, as real time would be."""

    def __init__(self, start: dt.datetime = START) -> None:
        self.at = start

    def __call__(self) -> dt.datetime:
        self.at += dt.timedelta(milliseconds=1)
        return self.at

    def advance(self, **delta: float) -> dt.datetime:
        self.at += dt.timedelta(**delta)
        return self.at


def postgres_state_url(server_url: str, schema: str) -> str:
    """The URL of one schema: every connection's search_path points into it."""
    sep = "&" if "?" in server_url else "?"
    return f"{server_url}{sep}options={quote(f'-csearch_path={schema}')}"


class SqliteState:
    backend = "sqlite"

    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'state' / 'platform.db'}"


class PostgresState:
    backend = "postgresql"

    @pytest.fixture
    def url(self, pg_schema: tuple[str, str]) -> str:
        server, schema = pg_schema
        with psycopg.connect(server, autocommit=True) as con:
            con.execute(f'CREATE SCHEMA "{schema}"')
        return postgres_state_url(server, schema)


def snapshot(pf: Platform) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every platform table: equal before and after means nothing changed."""
    with pf.db.read() as session:
        return {
            name: [tuple(r) for r in session.execute(table.select().order_by(*table.primary_key))]
            for name, table in Base.metadata.tables.items()
        }


def as_operator() -> Principal:
    return operator("test")


class PlatformFixtures:
    """What every suite needs: a migrated platform on the backend's fresh state."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def pf(self, url: str, clock: FakeClock) -> Iterator[Platform]:
        platform = open_platform(
            load_settings(), url=url, clock=clock, checkpoint_every=5, passwords=Passwords.fast()
        )
        yield platform
        platform.close()
