"""One settings object, read from ``PMHUB_*`` environment variables and ``pmhub.toml``.

Precedence, highest first: keyword arguments, environment variables, ``pmhub.toml``
(in the working directory, or the file named by ``PMHUB_CONFIG``), defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pmhub.errors import HomeNotWritableError, SettingsError


def config_file() -> Path:
    return Path(os.environ.get("PMHUB_CONFIG", "pmhub.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PMHUB_", extra="forbid")

    home: Path = Field(default=Path(".pmhub"), description="Platform home: sites, state, CDWs.")
    small_cell_threshold: int = Field(
        default=10, ge=1, description="Aggregates below this count are suppressed."
    )
    rounding_base: int = Field(
        default=1,
        ge=1,
        le=100,
        description="Released counts are rounded to a multiple of this (1: not rounded).",
    )
    seed: int = Field(default=20261122, description="Default seed for generators.")
    jobs_url: str = Field(
        default="",
        description=(
            "Job queue: redis://host:6379/0 at scale; empty means the SQLite file"
            " PMHUB_HOME/jobs.db (one worker process: `pmhub worker`)."
        ),
    )
    platform_url: str = Field(
        default="",
        description=(
            "Platform state database: sqlite:///path or postgresql://user@host/db;"
            " empty means the SQLite file PMHUB_HOME/platform.db."
        ),
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file())
        return (init_settings, env_settings, toml)

    def home_path(self) -> Path:
        """The platform home, without creating it: for verbs that only read."""
        return self.home.expanduser()

    def home_dir(self) -> Path:
        """The platform home, created on first use (by verbs that write)."""
        home = self.home.expanduser()
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HomeNotWritableError(
                f"cannot create platform home {home}: {exc.strerror}"
            ) from exc
        if not os.access(home, os.W_OK):
            raise HomeNotWritableError(f"platform home {home} is not writable")
        return home


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from exc
    except (OSError, ValueError) as exc:  # unreadable or malformed pmhub.toml
        raise SettingsError(f"cannot read {config_file()}: {exc}") from exc
