"""The registry of hospital sites: a site is the unit of data custody.

Each site has a name, titles, and the URL of its CDW. The registry is one JSON file in
the platform home, rewritten atomically so that a crash never leaves it half-written.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError

from pmhub.cdm.backends import Backend, connect, validate_url
from pmhub.errors import (
    InvalidSiteNameError,
    SettingsError,
    SiteExistsError,
    UnknownSiteError,
)
from pmhub.settings import Settings

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
REGISTRY_FILE = "sites.json"


class Site(BaseModel):
    name: str
    cdw_url: str
    title_ko: str = ""
    title_en: str = ""
    schema_name: str = Field(default="", description="PostgreSQL schema; the name if empty.")

    def connect(self) -> Backend:
        return connect(self.cdw_url, schema=self.schema_name or self.name)


class SiteRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # reading the registry must not create the home: `sites list` run in the wrong
        # folder would leave an empty ./.pmhub behind
        self.path = settings.home_path() / REGISTRY_FILE

    def _read(self) -> dict[str, Site]:
        if not self.path.exists():
            return {}
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return {name: Site.model_validate(site) for name, site in raw["sites"].items()}
        except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
            raise SettingsError(
                f"the site registry {self.path} is unreadable: {exc}",
                hint="Restore it from a backup, or move it away and add the sites again.",
            ) from exc

    def _write(self, sites: dict[str, Site]) -> None:
        payload = {"sites": {name: s.model_dump() for name, s in sorted(sites.items())}}
        self.settings.home_dir()
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".sites.", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, ensure_ascii=False, indent=2)
        os.replace(tmp, self.path)

    def list(self) -> list[Site]:
        return list(self._read().values())

    def get(self, name: str) -> Site:
        sites = self._read()
        if name not in sites:
            known = ", ".join(sorted(sites)) or "none"
            raise UnknownSiteError(f"unknown site {name!r} (registered: {known})")
        return sites[name]

    def default_url(self, name: str) -> str:
        path = (self.settings.home_dir() / "cdw" / f"{name}.duckdb").resolve()
        return f"duckdb:///{path}"

    def add(
        self, name: str, cdw_url: str | None = None, *, title_ko: str = "", title_en: str = ""
    ) -> Site:
        if not NAME.fullmatch(name):
            raise InvalidSiteNameError(f"invalid site name {name!r}")
        sites = self._read()
        if name in sites:
            raise SiteExistsError(f"site {name!r} is already registered ({sites[name].cdw_url})")
        url = validate_url(cdw_url) if cdw_url else self.default_url(name)
        if urlsplit(url).scheme.lower().startswith("postgres") and name.startswith("pg_"):
            raise InvalidSiteNameError(
                f"site name {name!r} cannot be a PostgreSQL schema (the pg_ prefix is "
                "PostgreSQL's own)",
                hint="Pick a name that does not start with pg_ (e.g. the hospital's town).",
            )
        site = Site(name=name, cdw_url=url, title_ko=title_ko, title_en=title_en)
        sites[name] = site
        self._write(sites)
        return site

    def remove(self, name: str) -> Site:
        sites = self._read()
        site = self.get(name)
        del sites[name]
        self._write(sites)
        return site
