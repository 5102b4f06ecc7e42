"""CDW backends, chosen by the site's CDW URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pmhub.cdm.backends.base import Backend, ColumnInfo
from pmhub.errors import InvalidCdwUrlError

__all__ = ["Backend", "ColumnInfo", "connect", "duckdb_path", "validate_url"]

SCHEMES = ("duckdb", "postgresql", "postgres")


def validate_url(url: str) -> str:
    """Check a CDW URL's form without connecting; return it normalised."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidCdwUrlError(
            f"unsupported CDW URL {url!r}: the scheme must be one of {SCHEMES}"
        )
    if scheme == "duckdb":
        duckdb_path(url)
    elif not urlsplit(url).hostname and "host=" not in url:
        raise InvalidCdwUrlError(f"PostgreSQL URL {url!r} names no host")
    return url


def duckdb_path(url: str) -> Path:
    """``duckdb:///rel/site.duckdb`` → a relative path, ``duckdb:////abs/site.duckdb`` →
    an absolute one (SQLAlchemy's convention for file databases)."""
    rest = url.split("://", 1)[1] if "://" in url else ""
    if not rest.startswith("/") or rest == "/":
        raise InvalidCdwUrlError(
            f"DuckDB URL {url!r} names no file (use duckdb:///path/site.duckdb)"
        )
    return Path(rest[1:])


def connect(url: str, *, schema: str = "public") -> Backend:
    scheme = urlsplit(validate_url(url)).scheme.lower()
    if scheme == "duckdb":
        from pmhub.cdm.backends.duckdb import DuckDBBackend

        return DuckDBBackend(duckdb_path(url))
    from pmhub.cdm.backends.postgres import PostgresBackend, split_schema

    conninfo, url_schema = split_schema(url)
    return PostgresBackend(conninfo, url_schema or schema)
