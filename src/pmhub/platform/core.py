"""The platform handle every service function takes: state, home, clock, audit options."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pmhub.platform.db import Database, default_url, migrate_engine
from pmhub.platform.passwords import DEFAULT, Passwords
from pmhub.settings import Settings, load_settings

Clock = Callable[[], dt.datetime]
DEFAULT_CHECKPOINT_EVERY = 100


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass
class Platform:
    settings: Settings
    db: Database
    clock: Clock = utcnow
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    passwords: Passwords = DEFAULT

    @property
    def home(self) -> Path:
        return self.settings.home_dir()

    def now(self) -> dt.datetime:
        return self.clock().astimezone(dt.UTC)

    def close(self) -> None:
        self.db.dispose()


@contextmanager
def opened(settings: Settings | None = None) -> Iterator[Platform]:
    """The home's platform for the length of one command."""
    platform = open_platform(settings)
    try:
        yield platform
    finally:
        platform.close()


def open_platform(
    settings: Settings | None = None,
    *,
    url: str | None = None,
    clock: Clock = utcnow,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    migrate: bool = True,
    passwords: Passwords = DEFAULT,
) -> Platform:
    """Open (and by default create or upgrade) the platform state of a home."""
    settings = settings or load_settings()
    db = Database.open(url or default_url(settings))
    if migrate:
        migrate_engine(db.engine)
    platform = Platform(settings, db, clock, checkpoint_every, passwords)
    if migrate:
        # The key exists from the first start, so that it is backed up with the new home.
        from pmhub.platform.audit import ensure_signing_key  # audit builds on this module

        ensure_signing_key(platform)
    return platform
